"""DAGs with the datamove operators, run by Airflow 3 against a local S3 server.

Airflow runs in child processes (``run_dags.py``) with a fresh
``AIRFLOW_HOME`` and SQLite database; the S3 credentials reach the task
only through the connection ``AIRFLOW_CONN_DATAMOVE_S3``. Each child pays
Airflow's start-up (about 20 s), so the module runs two of them once and
the tests read what they left:

1. a child runs ``datamove_resume`` and is killed (SIGKILL to its process
   group) once some units have their receipts but the manifest is not
   written yet;
2. a second child runs ``datamove_sync`` (sync, then deep verify) and then
   ``datamove_resume`` again. That is a new DAG run rather than try 2 of the
   killed one (``dag.test()`` has no scheduler to notice a dead task), which
   makes no difference to datamove: a sync resumes from the destination.

An uninterrupted ``datamove.sync`` of the same source with the same options
is the reference the resumed dataset must equal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import datamove
from datamove.samples import generate_transactions
from tests.servers import StoreServer, moto_s3

pytest.importorskip("airflow")
# About a minute in all, most of it Airflow starting in two child processes.
pytestmark = [pytest.mark.slow, pytest.mark.cloud]

HERE = Path(__file__).resolve().parent
BUCKET = "datamove-airflow"
# Distinctive values: neither may appear in any log.
LOGIN = "AKIADATAMOVEAIRFLOWTEST"
PASSWORD = "datamove-airflow-secret-7f3a9c"
RESUME_OPTIONS = {"shard_size": "64KiB", "workers": 1}
CHILD_TIMEOUT = 300


@dataclass(frozen=True)
class Runs:
    """What the two child processes did."""

    server: StoreServer
    reference: dict[str, Any]
    receipts_at_kill: int
    manifest_at_kill: bool
    results: dict[str, Any]
    logs: str


def _child_env(tmp: Path, server: StoreServer, source: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    home = tmp / "airflow-home"
    home.mkdir()
    connection = {
        "conn_type": "aws",
        "login": LOGIN,
        "password": PASSWORD,
        "extra": {"endpoint_url": server.endpoint},
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(HERE / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW_CONN_DATAMOVE_S3=json.dumps(connection),
        DATAMOVE_TEST_SOURCE=str(source),
        DATAMOVE_TEST_DEST=f"s3://{BUCKET}",
    )
    return env


def _command(result: Path, *dag_ids: str, migrate: bool = False) -> list[str]:
    flags = ["--migrate"] if migrate else []
    return [sys.executable, str(HERE / "run_dags.py"), *flags, str(result), *dag_ids]


def _kill_mid_sync(
    command: list[str], env: dict[str, str], log: Path, server: StoreServer
) -> tuple[int, bool]:
    """Run ``command``; SIGKILL its process group once two units are committed.

    Returns the receipts found and whether a manifest existed at the kill.
    """
    fs = server.filesystem()
    state = f"{BUCKET}/resumed/_datamove"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT
        while time.monotonic() < deadline:
            fs.invalidate_cache()
            receipts = fs.glob(f"{state}/receipts/*.json")
            if len(receipts) >= 2:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                fs.invalidate_cache()
                return len(receipts), fs.exists(f"{state}/manifest.json")
            if process.poll() is not None:
                pytest.fail(
                    f"the task ended before the kill:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.02)
        pytest.fail("the sync reached no second unit in time")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _run(command: list[str], env: dict[str, str], log: Path) -> None:
    with open(log, "wb") as output:
        done = subprocess.run(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=CHILD_TIMEOUT,
            start_new_session=True,
        )
    if done.returncode != 0:
        pytest.fail(f"dag.test() failed:\n{log.read_text()[-5000:]}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    tmp = tmp_path_factory.mktemp("airflow")
    source = tmp / "source"
    generate_transactions(source, 6 << 20, files=12)
    with moto_s3() as server:
        server.filesystem().mkdir(BUCKET)
        reference = datamove.sync(
            str(source),
            f"s3://{BUCKET}/reference",
            dest_options=server.storage_options,
            **RESUME_OPTIONS,
        )
        env = _child_env(tmp, server, source)

        killed_log = tmp / "killed.log"
        command = _command(tmp / "killed.json", "datamove_resume", migrate=True)
        receipts, manifest = _kill_mid_sync(command, env, killed_log, server)

        log = tmp / "runs.log"
        result = tmp / "runs.json"
        _run(_command(result, "datamove_sync", "datamove_resume"), env, log)
        yield Runs(
            server=server,
            reference=reference.to_dict(),
            receipts_at_kill=receipts,
            manifest_at_kill=manifest,
            results=json.loads(result.read_text()),
            logs=killed_log.read_text() + log.read_text(),
        )


def _rows(server: StoreServer, prefix: str) -> pa.Table:
    fs = server.filesystem()
    table = ds.dataset(f"{BUCKET}/{prefix}", filesystem=fs, format="parquet").to_table()
    return table.sort_by("transaction_id")


def _shards(server: StoreServer, prefix: str) -> set[str]:
    fs = server.filesystem()
    root = f"{BUCKET}/{prefix}/"
    return {
        path[len(root) :]
        for path in fs.find(root)
        if path.endswith(".parquet") and "/_datamove/" not in path
    }


def test_sync_dag_succeeds_and_reports_to_xcom(runs: Runs) -> None:
    run = runs.results["datamove_sync"]
    assert run["state"] == "success"
    sync, verify = run["tasks"]["sync"], run["tasks"]["verify"]
    assert sync["state"] == verify["state"] == "success"

    report = sync["xcom"]["return_value"]
    assert report["status"] == "ok"
    assert report["dest"] == f"s3://{BUCKET}/datamove_sync"  # a rendered template
    assert report["rows_written"] == runs.reference["rows_written"]
    assert report["executor"].startswith("embedded dask cluster of 2")
    checked = verify["xcom"]["return_value"]
    assert checked["status"] == "ok" and checked["deep"] is True
    assert checked["rows_checked"] == report["rows_written"]
    assert _rows(runs.server, "datamove_sync").equals(_rows(runs.server, "reference"))


def test_progress_goes_to_the_task_log_and_credentials_nowhere(runs: Runs) -> None:
    progress = re.compile(rf"s3://{BUCKET}/datamove_sync: 12/12 units, \d+ rows, ")
    assert progress.search(runs.logs), "no progress line in the task log"
    assert LOGIN not in runs.logs
    assert PASSWORD not in runs.logs


def test_a_killed_task_resumes_to_the_dataset_of_an_uninterrupted_run(
    runs: Runs,
) -> None:
    assert runs.receipts_at_kill >= 2 and not runs.manifest_at_kill

    retry = runs.results["datamove_resume"]
    assert retry["state"] == "success"
    report = retry["tasks"]["sync"]["xcom"]["return_value"]
    assert report["status"] == "ok"
    assert report["shards_skipped"] > 0, "the retry rewrote the finished units"
    assert report["units_written"] < runs.reference["units_written"]

    assert _rows(runs.server, "resumed").equals(_rows(runs.server, "reference"))
    assert _shards(runs.server, "resumed") == _shards(runs.server, "reference")
    verified = datamove.verify(
        f"s3://{BUCKET}/resumed", deep=True, dest_options=runs.server.storage_options
    )
    assert verified.ok, verified.problems
