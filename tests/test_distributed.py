"""A real Dask cluster by address: a scheduler and worker processes on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import datamove
from tests.core.helpers import read_rows, write_csv

DASK = str(Path(sys.executable).with_name("dask"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout="20s") as client:
        client.wait_for_workers(count, timeout=60)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[psutil.Process]]]:
    """``dask scheduler`` and two ``dask worker`` processes, as a user starts them."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    logs = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115
    common = {"stdout": logs, "stderr": logs, "start_new_session": True}
    scheduler = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", port,
         "--dashboard-address", ":0"],
        **common,
    )  # fmt: skip
    workers = []
    for index in range(2):
        command = [DASK, "worker", address, "--nthreads", "1", "--nworkers", "1"]
        folder = str(tmp_path / f"w{index}")
        options = ["--dashboard-address", ":0", "--local-directory", folder]
        workers.append(subprocess.Popen([*command, *options], **common))
    try:
        _wait_for_workers(address, 2)
        yield address, [psutil.Process(w.pid) for w in workers]
    finally:
        for process in [*workers, scheduler]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*workers, scheduler]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        logs.close()


def _pids(processes: list[psutil.Process]) -> set[int]:
    found = set()
    for process in processes:
        found.add(process.pid)
        found.update(child.pid for child in process.children(recursive=True))
    return found


def _source(tmp_path: Path, files: int) -> Path:
    for index in range(files):
        write_csv(tmp_path / "src" / f"f{index:02d}.csv", 3_000, seed=index,
                  start=index * 10_000)  # fmt: skip
    return tmp_path / "src"


@pytest.mark.slow
def test_sync_runs_on_the_cluster_by_address(
    cluster: tuple[str, list[psutil.Process]], tmp_path: Path
) -> None:
    address, workers = cluster
    source = _source(tmp_path, 6)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    command = [
        sys.executable, "-m", "datamove.cli", "sync", str(source),
        str(tmp_path / "lake"), "--scheduler", address, "--json", "--no-progress",
        "--shard-size", "64KiB",  # files over half a shard: a unit each
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["executor"] == f"dask cluster at {address}"
    ran_on = {int(worker.rsplit(":", 1)[1]) for worker in report["workers"]}
    assert ran_on <= _pids(workers), "units ran outside the cluster's workers"
    assert len(ran_on) == 2, "both workers should have taken units"
    # The CLI started no cluster of its own: no process of ours but the CLI ran.
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before | _pids(workers)
    assert read_rows(tmp_path / "lake").num_rows == 18_000


@pytest.mark.slow
def test_killed_worker_does_not_fail_the_job(
    cluster: tuple[str, list[psutil.Process]], tmp_path: Path
) -> None:
    address, workers = cluster
    source = _source(tmp_path, 16)
    lake = tmp_path / "lake"
    receipts = lake / "_datamove" / "receipts"
    victim = workers[0]

    def kill_when_started() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if receipts.exists() and len(list(receipts.iterdir())) >= 2:
                for child in victim.children(recursive=True):
                    child.kill()
                victim.kill()
                return
            time.sleep(0.01)

    import threading

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    report = datamove.sync(
        str(source), str(lake), scheduler=address, shard_size="64KiB"
    )
    killer.join()
    assert not victim.is_running() or victim.status() == psutil.STATUS_ZOMBIE
    assert report.status == "ok"
    assert read_rows(lake).num_rows == 48_000
    assert datamove.verify(str(lake), deep=True).ok
