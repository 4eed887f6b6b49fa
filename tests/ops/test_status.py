"""``destination_status`` on complete, interrupted, running and empty destinations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import datamove
from datamove.lease import Lease
from datamove.samples import generate_transactions
from datamove.status import destination_status, recorded_options
from datamove.storage import Location
from tests.ops.conftest import S3Bucket

SHARD = "128KiB"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("status") / "src"
    generate_transactions(src, 8_000_000, files=2, seed=3)
    return src


def _sync_command(src: Path, dst: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "datamove.cli",
        "sync",
        str(src),
        str(dst),
        "--shard-size",
        SHARD,
        "--workers",
        "1",
        "--no-progress",
        "-q",
    ]


def _kill_when(command: list[str], ready: Callable[[], bool]) -> None:
    """Run ``command``; SIGKILL its process group once ``ready()`` holds."""
    process = subprocess.Popen(command, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if ready():
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return
            if process.poll() is not None:
                raise AssertionError("the sync finished before the kill point")
            time.sleep(0.005)
        raise AssertionError("the sync did not reach the kill point")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _receipts(dst: Path) -> int:
    folder = dst / "_datamove" / "receipts"
    return len(list(folder.glob("*.json"))) if folder.exists() else 0


def test_empty_destinations_exit_2(tmp_path: Path, s3: S3Bucket) -> None:
    for dest, options in (
        (str(tmp_path / "never-written"), None),
        (str(tmp_path), None),
        (s3.url("nothing"), s3.options),
    ):
        status = destination_status(dest, options)
        assert status.state == "empty"
        assert status.exit_code == 2
        assert status.last_run is None and status.runs == ()
        assert "datamove sync" in status.notes[0]


def test_complete_destination_exits_0_until_a_shard_is_damaged(
    source: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    report = datamove.sync(str(source), str(dst), shard_size=SHARD, workers=1)

    status = destination_status(str(dst), source=str(source))
    assert status.state == "complete", status.lines()
    assert status.exit_code == 0
    assert status.verified is True and status.problems == ()
    assert status.runs == () and status.pending_receipts == 0
    assert status.lease is None
    last = status.last_run
    assert last is not None
    assert last["run_id"] == report.run_id
    assert last["rows"] == report.rows_written
    assert last["shards"] == report.shards_written
    assert last["bytes"] == report.bytes_written
    assert last["status"] == "ok"
    # The re-run plan uses the options recorded in the manifest.
    assert status.rerun is not None and status.rerun["noop"] is True
    assert status.rerun["units_to_skip"] == report.units_written
    assert json.loads(json.dumps(status.to_dict()))["exit_code"] == 0

    shard = next(p for p in dst.rglob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10])
    damaged = destination_status(str(dst))
    assert damaged.state == "damaged" and damaged.exit_code == 1
    assert damaged.verified is False
    assert any(shard.name in problem for problem in damaged.problems)


def test_changed_source_makes_the_destination_outdated(
    source: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    generate_transactions(src, 2_000_000, files=1, seed=4)
    dst = tmp_path / "dst"
    datamove.sync(str(src), str(dst), shard_size=SHARD, workers=1)
    generate_transactions(src, 2_100_000, files=1, seed=5)

    status = destination_status(str(dst), source=str(src), verify=False)
    assert status.state == "outdated" and status.exit_code == 1
    assert status.verified is None
    assert status.rerun is not None and status.rerun["units_to_write"] > 0
    assert not destination_status(str(dst), verify=False).exit_code


@pytest.mark.slow
def test_interrupted_run_shows_progress_then_resumes_to_complete(
    source: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    _kill_when(_sync_command(source, dst), lambda: _receipts(dst) >= 2)

    options = datamove.SyncOptions(shard_size=128 << 10)
    status = destination_status(str(dst), source=str(source), options=options)
    assert status.state == "incomplete", status.lines()
    assert status.exit_code == 1
    assert status.last_run is None and status.verified is None
    (run,) = status.runs
    assert run.state == "interrupted"
    assert 2 <= run.units_done < run.units_total
    assert run.shards_done >= run.units_done
    assert run.bytes_done > 0 and run.rows_done > 0
    assert run.last_progress is not None and run.started is not None
    assert status.pending_receipts == run.units_done
    # The killed run's lease is left behind; its owner is gone.
    assert status.lease is not None
    assert status.lease["run_id"] == run.run_id and status.lease["stale"] is True
    # A re-run writes only what the killed run had not finished.
    assert status.rerun is not None
    assert status.rerun["units_to_write"] == run.units_total - run.units_done
    assert status.rerun["units_to_skip"] == run.units_done
    assert status.rerun["options"] == "given"
    guessed = destination_status(str(dst), source=str(source), verify=False)
    assert guessed.rerun is not None and guessed.rerun["options"] == "default"
    assert any("uses the defaults" in note for note in guessed.notes)
    text = "\n".join(status.lines())
    assert f"{run.units_done}/{run.units_total} units" in text

    subprocess.run(_sync_command(source, dst), check=True)
    resumed = destination_status(str(dst), source=str(source))
    assert resumed.state == "complete" and resumed.exit_code == 0
    assert resumed.runs == () and resumed.lease is None


def test_a_live_lease_shows_a_running_sync(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    with Lease(Location.parse(str(dst)), "20250101T000000Z-abcdef"):
        status = destination_status(str(dst), verify=False)
    assert status.state == "running" and status.exit_code == 1
    assert status.lease is not None and status.lease["stale"] is False
    assert status.lease["run_id"] == "20250101T000000Z-abcdef"


def test_status_of_an_s3_destination(source: Path, s3: S3Bucket) -> None:
    dst = s3.url("data")
    report = datamove.sync(
        str(source), dst, dest_options=s3.options, shard_size=SHARD, workers=1
    )
    status = destination_status(dst, s3.options)
    assert status.state == "complete" and status.exit_code == 0
    assert status.verified is True
    assert status.last_run is not None
    assert status.last_run["shards"] == report.shards_written

    # A journal and one receipt of a run that never finished.
    unit = "0123456789abcdef"
    s3.fs.pipe(
        f"{s3.name}/data/_datamove/journal/20990101T000000Z-000000.json",
        json.dumps(
            {"run_id": "20990101T000000Z-000000", "units": [unit, "f" * 16]}
        ).encode(),
    )
    receipt = {
        "unit_id": unit,
        "source": "x.csv",
        "piece": "x.csv",
        "fingerprint": {},
        "shards": [
            {"path": "x-0.parquet", "size": 10, "crc32c": "AAAAAA==", "rows": 1}
        ],
        "rows": 1,
        "bytes_read": 5,
        "written_at": "2099-01-01T00:00:05+00:00",
    }
    s3.fs.pipe(
        f"{s3.name}/data/_datamove/receipts/{unit}.json", json.dumps(receipt).encode()
    )
    # The other unit has committed a shard but not yet its receipt.
    s3.fs.pipe(f"{s3.name}/data/part-{'f' * 16}-000.parquet", b"PAR1")
    status = destination_status(dst, s3.options, verify=False)
    assert status.state == "incomplete" and status.exit_code == 1
    (run,) = status.runs
    assert (run.units_done, run.units_total, run.bytes_done) == (1, 2, 10)
    assert run.shards_without_receipt == 1 and status.unlisted_shards == 1
    assert run.last_progress == "2099-01-01T00:00:05+00:00"
    assert run.started == "2099-01-01T00:00:00+00:00"


def test_recorded_options_round_trip_the_output_config() -> None:
    options = datamove.SyncOptions(
        shard_size=1 << 20,
        compression="snappy",
        partition_by=("day",),
        column_types=(("zip", "string"),),
        on_bad_rows="quarantine",
    )
    recorded = recorded_options(options.output_config())
    assert recorded.output_config() == options.output_config()


def test_failed_run_is_reported_with_its_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    generate_transactions(src, 3_000_000, files=2, seed=9)
    bad = sorted(src.iterdir())[-1]
    with open(bad, "a", encoding="utf-8") as handle:
        # Far beyond the sampled head: a value the inferred types cannot hold.
        handle.write("not-a-number" + ",x" * 16 + "\n")
    dst = tmp_path / "dst"
    with pytest.raises(datamove.SyncFailedError):
        datamove.sync(
            str(src), str(dst), shard_size=SHARD, workers=1, sample_bytes="256KiB"
        )

    status = destination_status(str(dst))
    assert status.state == "incomplete" and status.exit_code == 1
    (run,) = status.runs
    assert run.state == "failed"
    assert run.error is not None and bad.name in run.error
    assert 0 < run.units_done < run.units_total
    assert status.lease is None  # a failed run releases its lease


def test_crash_before_clean_up_leaves_cleanup_pending(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    generate_transactions(src, 2_000_000, files=1, seed=4)
    dst = tmp_path / "dst"
    datamove.sync(str(src), str(dst), shard_size=SHARD, workers=1)
    # New content: every shard gets a new name; the old ones become obsolete.
    generate_transactions(src, 2_100_000, files=1, seed=5)

    def crash(*args: object) -> int:
        raise KeyboardInterrupt("simulated crash right after the manifest")

    monkeypatch.setattr("datamove.orchestrator.delete_quietly", crash)
    with pytest.raises(KeyboardInterrupt):
        datamove.sync(str(src), str(dst), shard_size=SHARD, workers=1)
    monkeypatch.undo()

    status = destination_status(str(dst))
    assert status.state == "cleanup-pending" and status.exit_code == 1
    assert status.verified is True
    assert status.unlisted_shards > 0  # the obsolete shards of the first run
    (run,) = status.runs
    assert run.state == "cleanup"
    assert status.last_run is not None and run.run_id == status.last_run["run_id"]
    assert run.units_done == run.units_total == status.last_run["units"]

    datamove.sync(str(src), str(dst), shard_size=SHARD, workers=1)
    clean = destination_status(str(dst))
    assert clean.exit_code == 0 and clean.unlisted_shards == 0


def test_a_lone_journal_of_the_completed_run_is_harmless(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dst = tmp_path / "dst"

    def crash(*args: object) -> int:
        raise KeyboardInterrupt("simulated crash right after the manifest")

    monkeypatch.setattr("datamove.orchestrator.delete_quietly", crash)
    with pytest.raises(KeyboardInterrupt):
        datamove.sync(str(source), str(dst), shard_size=SHARD, workers=1)
    monkeypatch.undo()

    status = destination_status(str(dst))
    assert status.state == "complete" and status.exit_code == 0
    (run,) = status.runs
    assert run.state == "cleanup"
    assert any("journal of the completed run" in note for note in status.notes)
