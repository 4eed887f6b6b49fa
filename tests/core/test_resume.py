"""kill -9 at several points, then resume: the same dataset as an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import datamove
from tests.core.helpers import kill_when, parquet_files, read_rows, write_csv

ARGS = ["--shard-size", "128KiB", "--no-progress", "-q"]


def _command(
    src: Path, dst: Path, workers: int, cluster_above: str = "2GiB"
) -> list[str]:
    cli = [sys.executable, "-m", "datamove.cli", "sync", str(src), str(dst)]
    return [*cli, *ARGS, "--workers", str(workers), "--cluster-above", cluster_above]


def _receipts(dst: Path) -> int:
    folder = dst / "_datamove" / "receipts"
    return len(list(folder.glob("*.json"))) if folder.exists() else 0


def _assert_clean_and_equal(dst: Path, reference: Path) -> None:
    assert read_rows(dst).equals(read_rows(reference))
    manifest = json.loads((dst / "_datamove" / "manifest.json").read_text())
    listed = {shard["path"] for unit in manifest["units"] for shard in unit["shards"]}
    present = {p.relative_to(dst).as_posix() for p in parquet_files(dst)}
    assert present == listed, "duplicate or orphaned shards"
    leftovers = [p for p in dst.rglob("*") if p.name.endswith(".dm-partial")]
    assert not leftovers, leftovers
    assert datamove.verify(str(dst), deep=True).ok


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    src = root / "src"
    write_csv(src / "a.csv", 70_000, seed=4)
    write_csv(src / "b.csv", 30_000, seed=5, start=70_000)
    reference = root / "reference"
    datamove.sync(str(src), str(reference), shard_size="128KiB", workers=1)
    return src, reference


@pytest.mark.slow
@pytest.mark.parametrize("after_receipts", [0, 1, 4])
def test_kill_during_units_then_resume(
    dataset: tuple[Path, Path], tmp_path: Path, after_receipts: int
) -> None:
    src, reference = dataset
    dst = tmp_path / "dst"
    total = len(parquet_files(reference))
    if after_receipts == 0:
        # Killed as soon as the first shard bytes appear, before any receipt.
        killed = kill_when(
            _command(src, dst, 1),
            lambda: any(dst.rglob("*.parquet")) or any(dst.rglob("*.dm-partial")),
        )
    else:
        killed = kill_when(
            _command(src, dst, 1), lambda: _receipts(dst) >= after_receipts
        )
    assert killed
    assert not (dst / "_datamove" / "manifest.json").exists()

    report = subprocess.run(
        [*_command(src, dst, 1), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(report.stdout)
    assert result["status"] == "ok"
    # Committed units were not written again.
    assert result["units_written"] <= total - after_receipts or after_receipts == 0
    _assert_clean_and_equal(dst, reference)


@pytest.mark.slow
@pytest.mark.parametrize(
    "cluster_above",
    [pytest.param("0", id="cluster"), pytest.param("2GiB", id="threads")],
)
def test_kill_a_parallel_run_mid_run_then_resume(
    dataset: tuple[Path, Path], tmp_path: Path, cluster_above: str
) -> None:
    # An embedded cluster of worker processes, or units on threads of the
    # command: killed with units finished and units running, then resumed.
    src, reference = dataset
    dst = tmp_path / "dst"
    command = _command(src, dst, 2, cluster_above)
    assert kill_when(command, lambda: _receipts(dst) >= 3)
    subprocess.run(command, check=True)
    _assert_clean_and_equal(dst, reference)


def test_crash_between_manifest_and_cleanup_then_resume(
    dataset: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, reference = dataset
    dst = tmp_path / "dst"
    datamove.sync(str(src), str(dst), shard_size="128KiB", workers=1)
    old_shards = {p.name for p in parquet_files(dst)}
    # The same rows with a new modification time: every shard gets a new name.
    os.utime(src / "a.csv")
    os.utime(src / "b.csv")

    def crash(*args: object) -> int:
        raise KeyboardInterrupt("simulated crash right after the manifest")

    monkeypatch.setattr("datamove.orchestrator.delete_quietly", crash)
    with pytest.raises(KeyboardInterrupt):
        datamove.sync(str(src), str(dst), shard_size="128KiB", workers=1)
    monkeypatch.undo()
    # The new manifest is in force; the old shards are still there.
    assert old_shards <= {p.name for p in parquet_files(dst)}
    report = datamove.sync(str(src), str(dst), shard_size="128KiB", workers=1)
    assert report.shards_written == 0
    assert report.shards_deleted == len(old_shards)
    _assert_clean_and_equal(dst, reference)
