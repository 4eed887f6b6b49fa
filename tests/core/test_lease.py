"""One writing run per destination: the lease."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import datamove
from datamove.lease import LEASE, Lease, read_lease
from datamove.storage import Location
from tests.core.helpers import read_rows, write_csv


def _lease(dest: Path, run_id: str, expires_in: float, pid: int = 1) -> None:
    now = datetime.now(UTC)
    (dest / "_datamove").mkdir(parents=True, exist_ok=True)
    record = {
        "run_id": run_id,
        "host": "elsewhere",
        "pid": pid,
        "acquired": now.isoformat(timespec="seconds"),
        "expires": (now + timedelta(seconds=expires_in)).isoformat(timespec="seconds"),
    }
    (dest / LEASE).write_text(json.dumps(record))


def test_a_live_lease_refuses_a_second_run_with_a_clear_message(tmp_path: Path) -> None:
    write_csv(tmp_path / "src" / "a.csv", 100)
    dest = tmp_path / "dst"
    _lease(dest, "other-run", expires_in=600)
    with pytest.raises(datamove.LeaseHeldError) as caught:
        datamove.sync(str(tmp_path / "src"), str(dest), workers=1)
    message = str(caught.value)
    assert (
        "other-run" in message and "elsewhere" in message and "--wait-lease" in message
    )
    assert not list(dest.glob("*.parquet"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "datamove.cli",
            "sync",
            str(tmp_path / "src"),
            str(dest),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "another sync is writing here" in result.stderr


def test_the_lease_of_a_dead_local_process_is_taken_over_at_once(
    tmp_path: Path,
) -> None:
    write_csv(tmp_path / "src" / "a.csv", 100)
    dest = tmp_path / "dst"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)  # fmt: skip
    _lease(dest, "killed-run", expires_in=600, pid=int(dead.stdout))
    lease = json.loads((dest / LEASE).read_text())
    lease["host"] = socket.gethostname()
    (dest / LEASE).write_text(json.dumps(lease))
    assert datamove.sync(str(tmp_path / "src"), str(dest), workers=1).status == "ok"


def test_an_expired_lease_of_a_dead_run_is_taken_over(tmp_path: Path) -> None:
    write_csv(tmp_path / "src" / "a.csv", 100)
    dest = tmp_path / "dst"
    _lease(dest, "dead-run", expires_in=-1)
    report = datamove.sync(str(tmp_path / "src"), str(dest), workers=1)
    assert report.status == "ok"
    assert read_rows(dest).num_rows == 100
    assert not (dest / LEASE).exists(), "the lease is released after the run"


def test_waiting_for_a_lease_then_replanning(tmp_path: Path) -> None:
    location = Location.parse(str(tmp_path / "dst"))
    _lease(tmp_path / "dst", "short-run", expires_in=2)
    with Lease(location, "mine", ttl=30, wait=10) as lease:
        assert lease.contended
        holder = read_lease(location)
        assert holder is not None and holder.run_id == "mine"
        assert holder.host == socket.gethostname() and holder.pid == os.getpid()
    assert read_lease(location) is None


def test_two_syncs_at_once_one_writes_the_other_refuses(tmp_path: Path) -> None:
    for index in range(6):
        write_csv(tmp_path / "src" / f"f{index}.csv", 20_000, seed=index,
                  start=index * 100_000)  # fmt: skip
    dest = tmp_path / "dst"
    command = [
        sys.executable, "-m", "datamove.cli", "sync", str(tmp_path / "src"), str(dest),
        "--workers", "1", "--shard-size", "128KiB", "--no-progress",
        # Slow enough that the two runs overlap, however quiet the machine.
        "--bwlimit", "256KiB",
    ]  # fmt: skip
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    _, first_err = first.communicate(timeout=120)
    _, second_err = second.communicate(timeout=120)
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 1], (first_err, second_err)
    assert "another sync is writing here" in first_err + second_err
    assert read_rows(dest).num_rows == 120_000
    assert datamove.verify(str(dest), deep=True).ok
