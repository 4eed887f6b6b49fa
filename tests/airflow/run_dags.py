"""Run DAGs with ``dag.test()`` in this process; write what happened as JSON.

Usage: ``python tests/airflow/run_dags.py [--migrate] RESULT.json DAG_ID...``

The environment names the Airflow home, its SQLite database and the DAG
folder (see ``conftest.airflow_env``); ``--migrate`` creates the database
first. For each DAG the result holds the run's state and, per task, its
state, try number and XCom values by key. The tests run this script as a
child process so that Airflow's logging, database and in-process API server
never enter the pytest process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

DAG_FILE = "datamove_test_dags.py"


def _load_dags() -> dict[str, Any]:
    from airflow.sdk import DAG

    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / DAG_FILE
    spec = importlib.util.spec_from_file_location("datamove_test_dags", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {v.dag_id: v for v in vars(module).values() if isinstance(v, DAG)}


def _outcome(run: Any) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    tasks: dict[str, Any] = {}
    with create_session() as session:
        for ti in run.get_task_instances(session=session):
            tasks[ti.task_id] = {
                "state": str(ti.state),
                "try_number": ti.try_number,
                "xcom": {},
            }
        query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id)
        for row in session.scalars(query):
            value = XComModel.deserialize_value(row)
            tasks[row.task_id]["xcom"][row.key] = value
    return {"state": str(run.state), "run_id": run.run_id, "tasks": tasks}


def main(arguments: list[str]) -> int:
    if arguments and arguments[0] == "--migrate":
        from airflow.utils.db import upgradedb

        upgradedb()
        arguments = arguments[1:]
    result_path, dag_ids = Path(arguments[0]), arguments[1:]
    dags = _load_dags()
    results = {dag_id: _outcome(dags[dag_id].test()) for dag_id in dag_ids}
    result_path.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
