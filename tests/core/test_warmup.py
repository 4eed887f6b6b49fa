"""Where units run: on threads in this process for small plans, otherwise on
the embedded cluster, started while planning and only when there is work;
and the Arrow allocator of both."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar

import pytest

import datamove
from datamove import executor as executor_module
from tests.core.helpers import read_rows, write_csv

SHARD = "64KiB"
WARM = "starting the embedded cluster while planning"


class _Recorded(executor_module.DaskExecutor):
    """A real DaskExecutor that remembers being made and closed."""

    made: ClassVar[list[_Recorded]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = False
        _Recorded.made.append(self)

    def close(self) -> None:
        self.closed = True
        super().close()


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[_Recorded]:
    _Recorded.made = []
    monkeypatch.setattr(executor_module, "DaskExecutor", _Recorded)
    return _Recorded.made


def _source(root: Path, files: int = 2, rows: int = 6_000) -> Path:
    for index in range(files):
        write_csv(root / f"part-{index}.csv", rows, seed=index, start=index * rows)
    return root


@pytest.mark.slow
def test_a_sync_with_work_starts_its_cluster_while_planning(
    tmp_path: Path, recorded: list[_Recorded], caplog: pytest.LogCaptureFixture
) -> None:
    source, dest = _source(tmp_path / "src"), tmp_path / "dst"
    with caplog.at_level(logging.DEBUG, logger="datamove"):
        report = datamove.sync(
            str(source), str(dest), shard_size=SHARD, workers=2, cluster_above=0
        )
    messages = [record.getMessage() for record in caplog.records]
    warm = messages.index("executor: " + WARM)
    planned = next(i for i, m in enumerate(messages) if ": plan: " in m)
    assert warm < planned  # started before the plan was complete
    assert report.status == "ok" and report.units_written > 1
    assert report.executor == "embedded dask cluster of 2 worker processes"
    # One cluster, the warm one, used for the run and closed after it.
    assert len(recorded) == 1 and recorded[0].closed
    assert read_rows(dest).num_rows == 12_000
    assert datamove.verify(str(dest), deep=True).ok

    # Nothing changed: no cluster at all.
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="datamove"):
        again = datamove.sync(
            str(source), str(dest), shard_size=SHARD, workers=2, cluster_above=0
        )
    assert again.status == "noop"
    assert len(recorded) == 1
    assert not any(WARM in record.getMessage() for record in caplog.records)


def test_a_change_of_one_unit_runs_in_process_without_a_cluster(
    tmp_path: Path, recorded: list[_Recorded]
) -> None:
    source, dest = _source(tmp_path / "src", rows=500), tmp_path / "dst"
    datamove.sync(str(source), str(dest), shard_size="1MiB", workers=1)
    write_csv(source / "part-1.csv", 600, seed=7, start=500)
    report = datamove.sync(str(source), str(dest), shard_size="1MiB", workers=2)
    assert report.units_written == 1
    assert report.executor == "in-process"
    assert recorded == []


@pytest.mark.slow
def test_a_plan_that_fails_closes_the_warm_cluster(
    tmp_path: Path, recorded: list[_Recorded]
) -> None:
    source, dest = _source(tmp_path / "src"), tmp_path / "dst"
    (source / "broken.parquet").write_bytes(b"PAR1" + b"\x00" * 5_000)
    with pytest.raises(datamove.InputError, match=r"broken\.parquet"):
        datamove.sync(
            str(source), str(dest), shard_size=SHARD, workers=2, cluster_above=0
        )
    assert len(recorded) == 1 and recorded[0].closed
    assert not (dest / "_datamove" / "manifest.json").exists()


def test_a_small_plan_runs_on_threads_without_a_cluster(
    tmp_path: Path, recorded: list[_Recorded], caplog: pytest.LogCaptureFixture
) -> None:
    source, dest = _source(tmp_path / "src", files=4), tmp_path / "dst"
    updates: list[datamove.Progress] = []
    with caplog.at_level(logging.DEBUG, logger="datamove"):
        report = datamove.sync(
            str(source), str(dest), shard_size=SHARD, workers=2, progress=updates.append
        )
    assert report.status == "ok" and report.units_written > 2
    assert report.executor == "2 threads in this process"
    assert recorded == []
    assert not any(WARM in record.getMessage() for record in caplog.records)
    assert read_rows(dest).num_rows == 24_000
    assert datamove.verify(str(dest), deep=True).ok
    assert updates[-1].units_done == report.units_written


class _Stub:
    """Stands in for DaskExecutor: records the workers it was asked for."""

    def __init__(self, workers: int | None = None, **_: Any) -> None:
        self.workers = workers


@pytest.mark.parametrize(
    ("input_bytes", "workers", "kind"),
    [
        (1_000, None, executor_module.ThreadExecutor),
        (1_001, None, _Stub),
        (1_000, 1, executor_module.SerialExecutor),
        (5_000, 1, executor_module.SerialExecutor),
        (1_000, 3, executor_module.ThreadExecutor),
    ],
)
def test_plans_up_to_the_threshold_run_in_this_process(
    monkeypatch: pytest.MonkeyPatch, input_bytes: int, workers: int | None, kind: type
) -> None:
    monkeypatch.setattr(executor_module, "DaskExecutor", _Stub)
    monkeypatch.setattr(executor_module, "default_workers", lambda: 2)
    chosen = executor_module.make_executor(
        4, workers=workers, input_bytes=input_bytes, cluster_above=1_000
    )
    assert type(chosen) is kind
    if isinstance(chosen, executor_module.ThreadExecutor):
        assert chosen.slots == (workers or 2)
    if isinstance(chosen, _Stub):
        assert chosen.workers == 2


def test_a_failed_unit_on_threads_leaves_the_others_done(tmp_path: Path) -> None:
    source, dest = _source(tmp_path / "src", files=3, rows=20_000), tmp_path / "dst"
    bad = source / "part-1.csv"
    text = bad.read_text()
    bad.write_text(text + "oops,,,\n")
    options: dict[str, Any] = {"shard_size": SHARD, "workers": 2}
    with pytest.raises(
        datamove.SyncFailedError, match=r"1 of \d+ units failed"
    ) as caught:
        datamove.sync(str(source), str(dest), **options)
    planned = caught.value.report.units_written + 1  # type: ignore[attr-defined]
    assert planned > 3
    bad.write_text(text)
    again = datamove.sync(str(source), str(dest), **options)
    # The fixed file's units are written again (its fingerprint changed);
    # the other files' units, finished on threads beside the failure, are not.
    assert 1 <= again.units_written < planned - 2
    assert read_rows(dest).num_rows == 60_000


def test_sampling_in_threads_reports_the_first_failing_file(tmp_path: Path) -> None:
    source = _source(tmp_path / "src", files=6, rows=50)
    for name in ("b-broken.parquet", "z-broken.parquet"):
        (source / name).write_bytes(b"PAR1" + b"\x00" * 100)
    with pytest.raises(datamove.InputError, match=r"b-broken\.parquet"):
        datamove.plan(str(source), str(tmp_path / "dst"))


def _backend() -> str:
    import pyarrow as pa

    return str(pa.default_memory_pool().backend_name)


def _malloc_tuning() -> str | None:
    return os.environ.get(executor_module.DASK_TRIM_ENV)


@pytest.mark.slow
def test_embedded_workers_allocate_through_jemalloc_and_glibc_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    monkeypatch.delenv(executor_module.DASK_TRIM_ENV, raising=False)
    expected = executor_module.worker_environment().get(
        "ARROW_DEFAULT_MEMORY_POOL", _backend()
    )
    with executor_module.DaskExecutor(workers=1) as executor:
        assert executor.client.submit(_backend, pure=False).result() == expected
        # Dask's own default would set it to 65536 in every worker it spawns.
        assert executor.client.submit(_malloc_tuning, pure=False).result() is None


def test_a_pool_the_user_chose_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
    assert executor_module.worker_environment() == {}
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        assert executor_module.worker_environment() == {}
    else:
        assert executor_module.worker_environment() == {
            "ARROW_DEFAULT_MEMORY_POOL": "jemalloc"
        }


def test_the_command_allocates_like_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyarrow as pa

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    before = pa.default_memory_pool()
    expected = executor_module.worker_environment().get(
        "ARROW_DEFAULT_MEMORY_POOL", before.backend_name
    )
    try:
        executor_module.use_worker_memory_pool()
        assert pa.default_memory_pool().backend_name == expected
    finally:
        pa.set_memory_pool(before)
