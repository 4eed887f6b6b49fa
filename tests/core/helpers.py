"""Small data builders for the core tests."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

HEADER = "id,zip,amount,note,score,day\n"


def write_csv(path: Path, rows: int, seed: int = 0, start: int = 0) -> Path:
    """A CSV with leading-zero strings, quoted text, NA markers and dates."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(HEADER)
        for i in range(start, start + rows):
            score = "NA" if i % 7 == 0 else str(rng.randint(0, 99))
            note = f'"note, {i} ""quoted"""'
            handle.write(
                f"{i},{rng.randint(0, 99999):05d},{rng.random() * 1000:.2f},{note},"
                f"{score},2024-01-{1 + i % 28:02d}\n"
            )
    return path


def read_rows(dest: Path | str) -> pa.Table:
    """Every row at a destination, sorted by id, as pyarrow reads it."""
    table = ds.dataset(str(dest), format="parquet", partitioning="hive").to_table()
    return table.sort_by("id")


def parquet_files(dest: Path) -> list[Path]:
    return sorted(p for p in dest.rglob("*.parquet") if "_datamove" not in p.parts)


def kill_when(
    command: list[str], ready: Callable[[], bool], timeout: float = 120
) -> bool:
    """Run ``command``; SIGKILL its whole process group once ``ready()`` is true.

    Returns whether the kill happened before the command finished by itself.
    """
    process = subprocess.Popen(command, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if ready():
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return True
            if process.poll() is not None:
                return False
            time.sleep(0.005)
        raise AssertionError("the command neither finished nor reached the kill point")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
