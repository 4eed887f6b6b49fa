"""The operators' own logic, run in this process on local folders.

Airflow's task runtime is not involved here: ``execute`` gets a minimal
context. ``test_airflow_dags.py`` runs the same operators inside Airflow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow")

from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
)

import datamove
from datamove.airflow import (
    DataMoveSyncOperator,
    DataMoveTierApplyOperator,
    DataMoveVerifyOperator,
    storage_options_for,
)
from datamove.airflow.operators import ProgressLog, sync_option_names
from datamove.errors import UsageError
from datamove.orchestrator import Progress


class FakeTaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class RecordingLogger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)


def _csv(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def _progress(done: int, total: int) -> Progress:
    return Progress(
        units_done=done,
        units_total=total,
        rows=10 * done,
        bytes_read=1024 * done,
        bytes_total=1024 * total,
        bytes_written=512 * done,
        shards_written=done,
        failed=0,
    )


def test_options_accept_every_sync_argument_and_option_field() -> None:
    names = sync_option_names()
    assert {"shard_size", "partition_by", "workers", "compression", "dry_run"} <= names
    assert not names & {"source_options", "dest_options", "progress", "client"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"shard_sise": "64MiB"},
            r"options\['shard_sise'\] is not an argument.*shard_size",
        ),
        ({"dest_options": {"key": "k"}}, r"options\['dest_options'\].*dest_conn_id"),
        ({"scheduler": "tcp://s:8786"}, r"options\['scheduler'\].*scheduler argument"),
    ],
)
def test_wrong_options_fail_when_the_dag_is_parsed(
    options: dict[str, Any], expected: str
) -> None:
    with pytest.raises(UsageError, match=expected):
        DataMoveSyncOperator(
            task_id="sync", source="/src", dest="/dst", options=options
        )


def test_templated_fields() -> None:
    assert {"source", "dest", "options"} <= set(DataMoveSyncOperator.template_fields)
    assert "dest" in DataMoveVerifyOperator.template_fields


def test_execute_returns_the_report_as_plain_json(tmp_path: Path) -> None:
    src = _csv(tmp_path / "src", "a.csv", "id,v\n1,2\n2,3\n3,4\n")
    operator = DataMoveSyncOperator(
        task_id="sync",
        source=str(src),
        dest=str(tmp_path / "dst"),
        options={"workers": 1, "partition_by": ["v"]},
    )
    result = operator.execute({"ti": FakeTaskInstance()})
    assert json.loads(json.dumps(result)) == result
    assert result["status"] == "ok" and result["rows_written"] == 3
    assert datamove.verify(str(tmp_path / "dst"), deep=True).ok

    again = operator.execute({"ti": FakeTaskInstance()})
    assert again["status"] == "noop"


def test_scheduler_runs_the_units_on_an_existing_dask_cluster(
    tmp_path: Path, dask_client: Any
) -> None:
    src = tmp_path / "src"
    for name in ("a.csv", "b.csv"):
        _csv(src, name, "id,v\n1,2\n2,3\n")
    address = dask_client.scheduler.address
    operator = DataMoveSyncOperator(
        task_id="sync", source=str(src), dest=str(tmp_path / "dst"), scheduler=address
    )
    result = operator.execute({"ti": FakeTaskInstance()})
    assert result["status"] == "ok" and result["rows_written"] == 4
    assert result["executor"] == f"dask cluster at {address}"


def test_bad_options_fail_the_task_without_retries(tmp_path: Path) -> None:
    src = _csv(tmp_path / "src", "a.csv", "id,v\n1,2\n")
    operator = DataMoveSyncOperator(
        task_id="sync",
        source=str(src),
        dest=str(tmp_path / "dst"),
        options={"compression": "bogus"},
    )
    with pytest.raises(AirflowFailException, match="--compression") as caught:
        operator.execute({"ti": FakeTaskInstance()})
    assert isinstance(caught.value.__cause__, UsageError)


def test_failed_units_are_named_and_their_report_pushed(tmp_path: Path) -> None:
    src = _csv(tmp_path / "src", "a.csv", "id,v\n1,2\n2,3,4\n3,4\n")
    ti = FakeTaskInstance()
    operator = DataMoveSyncOperator(
        task_id="sync",
        source=str(src),
        dest=str(tmp_path / "dst"),
        options={"workers": 1},
    )
    # A malformed row cannot be fixed by retrying: the task fails at once.
    with pytest.raises(AirflowFailException, match=r"Failed: a\.csv") as caught:
        operator.execute({"ti": ti})
    assert isinstance(caught.value.__cause__, datamove.SyncFailedError)
    assert ti.pushed["report"]["status"] == "failed"
    assert ti.pushed["report"]["failed"][0]["piece"].startswith("a.csv")


def test_a_missing_source_fails_the_task_without_retries(tmp_path: Path) -> None:
    operator = DataMoveSyncOperator(
        task_id="sync", source=str(tmp_path / "missing"), dest=str(tmp_path / "dst")
    )
    with pytest.raises(AirflowFailException, match="missing: source does not exist"):
        operator.execute({"ti": FakeTaskInstance()})


def test_storage_errors_propagate_for_airflow_to_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def throttled(*args: Any, **kwargs: Any) -> None:
        raise datamove.TransientStorageError("s3://b/p: throttled; try again later")

    monkeypatch.setattr(datamove, "sync", throttled)
    operator = DataMoveSyncOperator(task_id="sync", source="/src", dest="s3://b/p")
    with pytest.raises(datamove.TransientStorageError, match="throttled"):
        operator.execute({"ti": FakeTaskInstance()})


def test_unit_failures_worth_retrying_raise_airflow_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failed = [
        {"unit": f"u{i}", "piece": f"f{i}.csv", "error": "503"} for i in range(12)
    ]
    report = datamove.SyncReport(
        status="failed",
        source="/src",
        dest="s3://b/p",
        run_id="r",
        failed=tuple(failed),
    )

    def partly_failed(*args: Any, **kwargs: Any) -> None:
        error = datamove.SyncFailedError(
            "12 of 20 units failed", failed=[item["piece"] for item in failed]
        )
        error.report = report  # type: ignore[attr-defined]
        raise error

    monkeypatch.setattr(datamove, "sync", partly_failed)
    operator = DataMoveSyncOperator(task_id="sync", source="/src", dest="s3://b/p")
    ti = FakeTaskInstance()
    with pytest.raises(AirflowException) as caught:
        operator.execute({"ti": ti})
    assert not isinstance(caught.value, AirflowFailException)
    message = str(caught.value)
    assert "f0.csv (503)" in message and "f9.csv (503)" in message
    assert "f10.csv" not in message and "and 2 more" in message
    assert len(ti.pushed["report"]["failed"]) == 12


def test_connection_from_an_airflow_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"conn_type": "aws", "login": "AKIAENV", "password": "env-secret"}
    monkeypatch.setenv("AIRFLOW_CONN_DM_ENV_TEST", json.dumps(connection))
    assert storage_options_for("s3://bucket/prefix", "dm_env_test") == {
        "key": "AKIAENV",
        "secret": "env-secret",
    }
    assert storage_options_for("s3://bucket/prefix", None) is None
    with pytest.raises(AirflowException, match="dm_missing"):
        storage_options_for("s3://bucket/prefix", "dm_missing")


def test_verify_fails_the_task_and_pushes_the_problems(tmp_path: Path) -> None:
    src = _csv(tmp_path / "src", "a.csv", "id,v\n1,2\n2,3\n")
    datamove.sync(str(src), str(tmp_path / "dst"), workers=1)
    verify = DataMoveVerifyOperator(task_id="verify", dest=str(tmp_path / "dst"))
    assert verify.execute({"ti": FakeTaskInstance()})["status"] == "ok"

    shard = next(p for p in (tmp_path / "dst").glob("*.parquet"))
    shard.unlink()
    ti = FakeTaskInstance()
    with pytest.raises(AirflowFailException, match=shard.name):
        verify.execute({"ti": ti})
    assert ti.pushed["report"]["status"] == "failed"


def test_tier_apply_operator_records_tiers_and_fails_on_bad_input(
    tmp_path: Path,
) -> None:
    src = _csv(tmp_path / "src", "a.csv", "id,v\n1,2\n2,3\n")
    datamove.sync(str(src), str(tmp_path / "dst"), workers=1)
    apply = DataMoveTierApplyOperator(task_id="tiers", dest=str(tmp_path / "dst"))
    result = apply.execute({"ti": FakeTaskInstance()})
    assert result["shards"] == 1 and result["recorded_only"] == 1
    again = apply.execute({"ti": FakeTaskInstance()})
    assert again["changed"] == 0
    nowhere = DataMoveTierApplyOperator(task_id="t", dest=str(tmp_path / "none"))
    with pytest.raises(AirflowFailException, match="not retried"):
        nowhere.execute({"ti": FakeTaskInstance()})


def test_progress_is_logged_at_intervals_and_once_at_the_end() -> None:
    logger = RecordingLogger()
    with ProgressLog(logger, "s3://b/p", interval=0.01) as progress:
        deadline = time.monotonic() + 10
        while not logger.lines and time.monotonic() < deadline:
            time.sleep(0.01)
        assert logger.lines, "no line before the first unit finished"
        assert logger.lines[0].startswith("s3://b/p: planning")
        progress(_progress(1, 4))
        progress(_progress(4, 4))
        finished = list(logger.lines)
    assert finished[-1].startswith("s3://b/p: 4/4 units, 40 rows, 4.0 KiB of 4.0 KiB")
    assert "(100%)" in finished[-1]
    # Nothing after the last unit: the sync logs its own summary.
    assert logger.lines == finished


DOCS = Path(__file__).resolve().parents[2] / "docs" / "airflow.md"


def _python_block(heading: str) -> str:
    section = DOCS.read_text().split(heading, 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_documented_example_dag_parses() -> None:
    namespace: dict[str, Any] = {"__name__": "migrate_transactions"}
    exec(compile(_python_block("## A complete example"), str(DOCS), "exec"), namespace)
    dag = namespace["dag"]
    assert set(dag.task_ids) == {"sync", "verify", "announce"}
    assert dag.get_task("sync").options["partition_by"] == ["country"]
    assert dag.get_task("announce").upstream_task_ids == {"sync", "verify"}


def test_the_documented_library_call_compiles() -> None:
    namespace: dict[str, Any] = {"__name__": "archive"}
    code = _python_block("## Calling the library from a task")
    exec(compile(code, str(DOCS), "exec"), namespace)
    assert callable(namespace["archive_2019"])
