"""DAGs the Airflow tests run with ``dag.test()``.

The tests set where the data is and how to reach the store through the
environment: ``DATAMOVE_TEST_SOURCE`` (a local folder of CSV files),
``DATAMOVE_TEST_DEST`` (an ``s3://bucket`` prefix) and the connection
``AIRFLOW_CONN_DATAMOVE_S3`` (type ``aws``, pointing at a moto server).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from datamove.airflow import DataMoveSyncOperator, DataMoveVerifyOperator

SOURCE = os.environ.get("DATAMOVE_TEST_SOURCE", "/nonexistent")
DEST = os.environ.get("DATAMOVE_TEST_DEST", "s3://nonexistent")
START = datetime(2024, 1, 1)

# A sync then a deep verify. The destination and the shard size are
# templates, rendered when the task runs; two workers start an embedded Dask
# cluster inside the task (cluster_above=0: the plan is small enough to run
# on threads otherwise).
with DAG(
    "datamove_sync",
    schedule=None,
    start_date=START,
    params={"shard_size": "256KiB"},
) as sync_dag:
    sync = DataMoveSyncOperator(
        task_id="sync",
        source=SOURCE,
        dest=DEST + "/{{ dag.dag_id }}",
        dest_conn_id="datamove_s3",
        options={
            "shard_size": "{{ params.shard_size }}",
            "workers": 2,
            "cluster_above": 0,
        },
        progress_interval=1.0,
    )
    verify = DataMoveVerifyOperator(
        task_id="verify",
        dest=DEST + "/{{ dag.dag_id }}",
        dest_conn_id="datamove_s3",
        deep=True,
    )
    sync >> verify

# Many small units written one after another, so that a test can kill the
# task between two of them and run it again.
with DAG("datamove_resume", schedule=None, start_date=START) as resume_dag:
    DataMoveSyncOperator(
        task_id="sync",
        source=SOURCE,
        dest=DEST + "/resumed",
        dest_conn_id="datamove_s3",
        options={"shard_size": "64KiB", "workers": 1},
        progress_interval=1.0,
    )
