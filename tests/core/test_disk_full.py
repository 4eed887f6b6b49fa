"""A local destination that runs out of space or hits a file-size limit.

Both faults must end in a clear, non-zero failure that names the destination
and the cause, must record nothing that is not whole, and must let a re-run
complete once there is room again.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import datamove
import datamove.stores.local as local_store
from tests.core.helpers import parquet_files, read_rows, write_csv

# Small shards, so that the test files make several units.
SHARD_SIZE = "64KiB"


def _recorded(dest: Path) -> set[str]:
    """Shard paths that a receipt or the manifest at ``dest`` names."""
    state = dest / "_datamove"
    units: list[dict[str, Any]] = [
        json.loads(path.read_text()) for path in (state / "receipts").glob("*.json")
    ]
    manifest = state / "manifest.json"
    if manifest.exists():
        units += json.loads(manifest.read_text())["units"]
    return {shard["path"] for unit in units for shard in unit["shards"]}


def _partial_files(dest: Path) -> list[Path]:
    return [p for p in dest.rglob("*") if p.name.endswith(".dm-partial")]


def _unrecorded_shards(dest: Path) -> list[Path]:
    recorded = _recorded(dest)
    return [
        p for p in parquet_files(dest) if p.relative_to(dest).as_posix() not in recorded
    ]


def _check_failed_run_left_nothing_damaged(dest: Path, failed_units: set[str]) -> None:
    """What a failed run may leave: recorded shards, and whole shards of failed units.

    A unit's shards are committed one by one and its receipt after the last,
    so a unit that failed part-way can leave committed shards without a
    receipt; they are whole Parquet files, and the next run rewrites them.
    Nothing else may be there: no shard of an unknown unit, no manifest.
    """
    assert not (dest / "_datamove" / "manifest.json").exists()
    for shard in _unrecorded_shards(dest):
        assert any(unit in shard.name for unit in failed_units), shard
        pq.read_metadata(shard)  # whole: its footer is there


class _FillingDisk:
    """``open`` for the local store on a disk that fills up part-way.

    The disk is full from the first shard file opened after a unit's receipt
    was written, so exactly one unit finishes. Files are buffered as usual;
    what reaches the disk (a flush, the close that flushes) then fails with
    ENOSPC, as on a real full file system.
    """

    def __init__(self) -> None:
        self.receipts = 0
        self.full = False

    def open(self, path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode != "wb":
            return builtins.open(path, mode, *args, **kwargs)
        if f"{os.sep}receipts{os.sep}" in path:
            self.receipts += 1
        elif ".parquet." in os.path.basename(path) and self.receipts:
            self.full = True
        return io.BufferedWriter(_DiskFile(path, self))


class _DiskFile(io.RawIOBase):
    """The unbuffered file under :meth:`_FillingDisk.open`."""

    def __init__(self, path: str, disk: _FillingDisk) -> None:
        super().__init__()
        self._file = builtins.open(path, "wb", buffering=0)  # noqa: SIM115
        self._disk = disk
        self.name = path

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._disk.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
        written: int = self._file.write(data)
        return written

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()
        super().close()


def _write_source(source: Path) -> None:
    for index in range(6):
        write_csv(source / f"f{index}.csv", 3_000, seed=index,
                  start=index * 10_000)  # fmt: skip


def _fill_the_disk_mid_sync(
    source: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> datamove.SyncFailedError:
    """Sync onto a disk that fills up once the first unit is finished."""
    _write_source(source)
    disk = _FillingDisk()
    # workers=1 runs every unit in this process, so the patched open applies.
    with monkeypatch.context() as patched:
        patched.setattr(local_store, "open", disk.open, raising=False)
        with pytest.raises(datamove.SyncFailedError) as caught:
            datamove.sync(str(source), str(dest), workers=1,
                          shard_size=SHARD_SIZE)  # fmt: skip
    assert disk.full
    return caught.value


def test_disk_full_mid_sync_fails_clearly_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, dest = tmp_path / "src", tmp_path / "dst"
    error = _fill_the_disk_mid_sync(source, dest, monkeypatch)

    message = str(error)
    assert str(dest) in message
    assert "ENOSPC" in message and "no space left" in message
    assert error.exit_code == 1
    report = error.report  # type: ignore[attr-defined]
    assert report.units_written == 1 and report.units_failed >= 1
    # Every later unit failed at its first shard: nothing unrecorded at all,
    # and each failed unit discarded its open shard's hidden partial file.
    assert _unrecorded_shards(dest) == []
    assert _partial_files(dest) == []
    assert not (dest / "_datamove" / "manifest.json").exists()
    kept = _recorded(dest)
    assert kept

    # Space again: the next run keeps the finished unit and completes.
    resumed = datamove.sync(str(source), str(dest), workers=1,
                            shard_size=SHARD_SIZE)  # fmt: skip
    assert resumed.status == "ok"
    assert resumed.units_written == report.units_failed
    assert resumed.shards_skipped == len(kept)
    assert datamove.verify(str(dest), deep=True).ok
    assert _partial_files(dest) == [] and _unrecorded_shards(dest) == []
    assert read_rows(dest).num_rows == 18_000


def _cli_with_file_size_limit(limit: int | None, *args: str) -> Any:
    """Run the CLI in a child whose files may not grow past ``limit`` bytes.

    RLIMIT_FSIZE is enforced by the kernel: a write past it fails with EFBIG
    (Python ignores the SIGXFSZ signal that would otherwise kill it).
    """
    launcher = (
        "import resource, runpy, sys\n"
        "limit = int(sys.argv[1])\n"
        "if limit >= 0:\n"
        "    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
        "sys.argv = ['datamove', *sys.argv[2:]]\n"
        "runpy.run_module('datamove', run_name='__main__')\n"
    )
    command = [sys.executable, "-c", launcher, str(-1 if limit is None else limit)]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120
    )


def test_file_size_limit_fails_clearly_and_resumes(tmp_path: Path) -> None:
    source = tmp_path / "src"
    # a and c make a few kB of Parquet; b makes shards of tens of kB, some
    # past the 32 KiB limit.
    write_csv(source / "a.csv", 300, seed=1)
    write_csv(source / "b.csv", 20_000, seed=2, start=100_000)
    write_csv(source / "c.csv", 300, seed=3, start=200_000)
    dest = tmp_path / "dst"
    sync = ["sync", str(source), str(dest), "--workers", "1", "-q"]
    sync += ["--shard-size", SHARD_SIZE, "--json"]

    failed = _cli_with_file_size_limit(32 << 10, *sync)
    assert failed.returncode == 1, failed.stderr
    assert str(dest) in failed.stderr
    assert "EFBIG" in failed.stderr and "file-size limit" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert _partial_files(dest) == []
    report = json.loads(failed.stdout)
    failed_units = {item["unit"] for item in report["failed"]}
    assert failed_units and all("b.csv" in i["piece"] for i in report["failed"])
    _check_failed_run_left_nothing_damaged(dest, failed_units)
    # The unit of a and c (one group of small files) finished and is kept.
    receipts = [
        json.loads(path.read_text())
        for path in (dest / "_datamove" / "receipts").glob("*.json")
    ]
    assert sum(r["rows"] for r in receipts if r["source"] != "b.csv") == 600

    resumed = _cli_with_file_size_limit(None, *sync)
    assert resumed.returncode == 0, resumed.stderr
    assert datamove.verify(str(dest), deep=True).ok
    assert _partial_files(dest) == [] and _unrecorded_shards(dest) == []
    assert read_rows(dest).num_rows == 20_600
