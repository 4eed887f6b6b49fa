"""`sync --format files` end to end: pack a tree, verify, unpack, re-sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import datamove
import datamove.files
from datamove.errors import SyncFailedError, UsageError, VerificationError
from datamove.files import INDEX, read_index
from datamove.storage import Location

from .helpers import LARGE, make_tree

OPTIONS = {"shard_size": "256KiB", "large_file_size": LARGE, "workers": 1}


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        path.relative_to(root).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in root.rglob("*")
        if path.is_file()
    }


def _sync(source: Path, dest: Path, **extra: object) -> datamove.SyncReport:
    return datamove.sync(str(source), str(dest), **{**OPTIONS, **extra})


def _objects(dest: Path) -> list[str]:
    return sorted(
        p.name for p in dest.iterdir() if p.is_file() and not p.name.startswith(".")
    )


@pytest.fixture(scope="module")
def synced(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, dict[str, bytes], datamove.SyncReport]:
    source = tmp_path_factory.mktemp("tree")
    dest = tmp_path_factory.mktemp("lake") / "packed"
    files = make_tree(source)
    report = _sync(source, dest, format="files")
    return source, dest, files, report


def test_round_trip_restores_every_byte_path_and_mtime(
    synced: tuple[Path, Path, dict[str, bytes], datamove.SyncReport], tmp_path: Path
) -> None:
    source, dest, files, report = synced
    assert report.status == "ok"
    assert report.rows_written == len(files)
    names = _objects(dest)
    blobs = [name for name in names if name.endswith(".blob")]
    shards = [name for name in names if name.endswith(".parquet")]
    # One large file stored whole; the rest packed into shards near the target.
    assert len(blobs) == 1
    total = sum(len(data) for data in files.values())
    assert 3 <= len(shards) < total / (64 << 10)
    assert datamove.verify(str(dest), deep=True).ok

    restored = datamove.unpack(str(dest), str(tmp_path / "restored"))
    assert restored.restored == len(files)
    assert _tree(tmp_path / "restored") == _tree(source)


def test_every_file_has_an_index_row_and_opens_alone(
    synced: tuple[Path, Path, dict[str, bytes], datamove.SyncReport],
) -> None:
    _, dest, files, _ = synced
    index = read_index(Location.parse(str(dest)))
    assert sorted(index.column("path").to_pylist()) == sorted(files)
    for relpath in ("odd/emoji 🎉.png", "odd/.hidden", "big/large file.bin"):
        assert datamove.files.open(str(dest), relpath) == files[relpath]
    # Row groups stay small enough that one file is a short read away.
    shard = next(p for p in dest.iterdir() if p.suffix == ".parquet")
    metadata = pq.ParquetFile(shard).metadata
    for group in range(metadata.num_row_groups):
        assert metadata.row_group(group).total_byte_size < 8 << 20
    # No min/max of file bytes in the footer.
    data = metadata.schema.to_arrow_schema().get_field_index("data")
    assert not metadata.row_group(0).column(data).is_stats_set


def test_a_rerun_with_nothing_changed_does_nothing(
    synced: tuple[Path, Path, dict[str, bytes], datamove.SyncReport],
) -> None:
    source, dest, _, _ = synced
    assert _sync(source, dest, format="files").status == "noop"


def test_a_changed_file_rewrites_only_its_shard(tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dst"
    files = make_tree(source, count=600)
    first = _sync(source, dest, format="files")
    before = set(_objects(dest))
    changed = sorted(name for name in files if name.endswith(".bin"))[10]
    (source / changed).write_bytes(b"new bytes")
    second = _sync(source, dest, format="files")
    after = set(_objects(dest))
    assert second.shards_written == 1
    assert second.shards_deleted == 1
    assert len(before - after) == 1 and len(after - before) == 1
    assert second.shards_skipped == first.shards_written - 1
    assert datamove.files.open(str(dest), changed) == b"new bytes"
    assert datamove.verify(str(dest), deep=True).ok


def test_an_added_and_a_removed_file_keep_the_other_shards(tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dst"
    files = make_tree(source, count=600)
    first = _sync(source, dest, format="files")
    (source / "d3" / "brand-new.bin").parent.mkdir(exist_ok=True)
    (source / "d3" / "brand-new.bin").write_bytes(b"added")
    removed = sorted(name for name in files if name.endswith(".png"))[3]
    (source / removed).unlink()
    second = _sync(source, dest, format="files")
    # Each change touches the group it falls in (two when it sits on a
    # boundary); everything else is kept.
    assert 1 <= second.shards_written <= 4
    assert second.shards_skipped >= first.shards_written - 4
    restored = datamove.unpack(str(dest), str(tmp_path / "out"))
    assert restored.restored == len(files)
    assert _tree(tmp_path / "out") == _tree(source)


def test_a_source_with_no_tables_is_packed_without_asking(tmp_path: Path) -> None:
    source, dest = tmp_path / "images", tmp_path / "dst"
    source.mkdir()
    for index in range(5):
        (source / f"scan{index}.png").write_bytes(bytes([index]) * 100)
    report = datamove.sync(str(source), str(dest), workers=1)
    assert report.status == "ok" and report.rows_written == 5
    manifest = json.loads((dest / "_datamove" / "manifest.json").read_text())
    assert manifest["config"]["format"] == "files"
    assert datamove.files.open(str(dest), "scan3.png") == b"\x03" * 100
    # The second run takes the same decision and finds nothing to do.
    assert datamove.sync(str(source), str(dest), workers=1).status == "noop"


def test_a_flipped_byte_is_caught_by_verify_and_unpack(tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dst"
    make_tree(source, count=300)
    _sync(source, dest, format="files")
    for suffix in (".parquet", ".blob"):
        target = next(p for p in sorted(dest.iterdir()) if p.suffix == suffix)
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
    checked = datamove.verify(str(dest))
    assert not checked.ok
    assert len(checked.problems) == 2
    assert any(".blob" in problem for problem in checked.problems)
    with pytest.raises(VerificationError) as caught:
        datamove.unpack(str(dest), str(tmp_path / "out"))
    assert len(caught.value.problems) == 2
    # The damaged objects' files are not written; the others are.
    assert any((tmp_path / "out").rglob("*"))
    # A re-sync rewrites the damaged objects and the dataset verifies again.
    assert _sync(source, dest, format="files").shards_written == 2
    assert datamove.verify(str(dest), deep=True).ok


def test_a_missing_index_is_written_again(tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dst"
    make_tree(source, count=100)
    _sync(source, dest, format="files")
    (dest / INDEX).unlink()
    assert not datamove.verify(str(dest)).ok
    report = _sync(source, dest, format="files")
    assert report.status == "ok" and report.shards_written == 0
    assert datamove.verify(str(dest)).ok


def test_a_failed_group_keeps_the_others_and_the_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, dest = tmp_path / "src", tmp_path / "dst"
    files = make_tree(source, count=400)
    victim = source / sorted(name for name in files if name.startswith("d"))[0]
    _after_planning(monkeypatch, victim.unlink)
    with pytest.raises(SyncFailedError, match="disappeared") as caught:
        _sync(source, dest, format="files")
    monkeypatch.undo()
    report = caught.value.report  # type: ignore[attr-defined]
    assert report.units_failed == 1 and report.units_written >= 2
    assert not (dest / "_datamove" / "manifest.json").exists()
    assert not (dest / INDEX).exists()
    resumed = _sync(source, dest, format="files")
    # The finished groups are kept; the failed one's files (one fewer now)
    # form the only new unit.
    assert resumed.units_written == 1
    assert resumed.shards_skipped == report.shards_written
    assert datamove.verify(str(dest), deep=True).ok


def _after_planning(
    monkeypatch: pytest.MonkeyPatch, action: Callable[[], object]
) -> None:
    """Run ``action`` between a sync's plan and its execution."""
    import datamove.orchestrator as orchestrator

    real_plan = orchestrator.plan_sync

    def plan_then_act(*args: Any, **kwargs: Any) -> Any:
        planned = real_plan(*args, **kwargs)
        action()
        return planned

    monkeypatch.setattr(orchestrator, "plan_sync", plan_then_act)


def test_a_policy_may_not_change_the_bytes_of_packed_files(tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dst"
    make_tree(source, count=20)
    policy = tmp_path / "policy.yaml"
    policy.write_text("columns:\n  data: drop\n  path: keep\ndefault: keep\n")
    with pytest.raises(UsageError, match="may not change data"):
        _sync(source, dest, format="files", anonymize=str(policy))
    assert not dest.exists() or not any(dest.rglob("*.parquet"))


def test_packing_refuses_options_that_only_tables_have(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--partition-by"):
        datamove.sync(
            str(tmp_path), str(tmp_path / "d"), format="files", partition_by=["x"]
        )


def test_unpack_of_a_table_dataset_names_the_way_out(tmp_path: Path) -> None:
    from tests.core.helpers import write_csv

    write_csv(tmp_path / "src" / "a.csv", 100)
    datamove.sync(str(tmp_path / "src"), str(tmp_path / "dst"), workers=1)
    with pytest.raises(UsageError, match="--format files"):
        datamove.unpack(str(tmp_path / "dst"), str(tmp_path / "out"))


def test_a_file_changed_after_planning_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, dest = tmp_path / "src", tmp_path / "dst"
    files = make_tree(source, count=50)
    victim = source / sorted(files)[5]
    _after_planning(monkeypatch, lambda: victim.write_bytes(b"changed after planning"))
    with pytest.raises(SyncFailedError, match="changed since it was planned"):
        _sync(source, dest, format="files")
    monkeypatch.undo()
    assert _sync(source, dest, format="files").status == "ok"
    assert datamove.files.open(str(dest), sorted(files)[5]) == victim.read_bytes()


def test_cli_sync_and_unpack(tmp_path: Path) -> None:
    source, dest, out = tmp_path / "src", tmp_path / "dst", tmp_path / "out"
    make_tree(source, count=50)
    command = [sys.executable, "-m", "datamove"]
    synced = subprocess.run(
        [*command, "sync", str(source), str(dest), "--format", "files",
         "--workers", "1", "--large-file-size", str(LARGE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    unpacked = subprocess.run(
        [*command, "unpack", str(dest), str(out), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert unpacked.returncode == 0, unpacked.stderr
    assert json.loads(unpacked.stdout)["restored"] == len(_tree(source))
    assert _tree(out) == _tree(source)
    again = subprocess.run(
        [*command, "unpack", str(dest), str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 0 and "0 files restored" in again.stdout
    missing = subprocess.run(
        [*command, "unpack", str(tmp_path / "nowhere"), str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "datamove: error:" in missing.stderr


def _every_byte(root: Path) -> bytes:
    """Every object under ``root``, Parquet pages decompressed as well."""
    import pyarrow as pa

    chunks = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        chunks.append(path.read_bytes())
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for column in table.columns:
                if pa.types.is_string(column.type) or pa.types.is_binary(column.type):
                    chunks.extend(v.encode() if isinstance(v, str) else v
                                  for v in column.to_pylist() if v)  # fmt: skip
    return b"\n".join(chunks)


def test_hashed_paths_leave_no_file_name_at_the_destination(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, dest = tmp_path / "patients", tmp_path / "dst"
    names = [f"smith-john-{index:03d}-scan.dcm" for index in range(40)]
    for index, name in enumerate(names):
        (source / "2024").mkdir(parents=True, exist_ok=True)
        (source / "2024" / name).write_bytes(bytes([index]) * 2000)
    # The large file's name must not leak either.
    (source / "smith-john-full-record.pdf").write_bytes(os.urandom(LARGE + 1))
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: keep\ncolumns:\n  path: hash\n")
    key = tmp_path / "key"
    key.write_text("files-test-key-8Jq2vXr0LmZ4tPy7WcN5bHd3KfS6gTa1")
    caplog.set_level("DEBUG", logger="datamove")
    report = _sync(
        source, dest, format="files", anonymize=str(policy), anon_key=str(key)
    )
    assert report.status == "ok" and report.rows_written == 41
    written = (
        _every_byte(dest) + caplog.text.encode() + json.dumps(report.to_dict()).encode()
    )
    assert b"smith" not in written
    # The bytes are intact under pseudonyms: unpack restores them.
    out = tmp_path / "out"
    datamove.unpack(str(dest), str(out))
    restored = sorted(p.read_bytes() for p in out.rglob("*") if p.is_file())
    original = sorted(p.read_bytes() for p in source.rglob("*") if p.is_file())
    assert restored == original
    # The same key gives the same pseudonyms on the next run: nothing to do.
    again = _sync(
        source, dest, format="files", anonymize=str(policy), anon_key=str(key)
    )
    assert again.status == "noop"


def test_sampling_a_packed_source_shows_names_never_bytes(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src", count=30)
    table = datamove.sample(str(tmp_path / "src"), format="files")
    assert sorted(table.column("path").to_pylist()) == sorted(files)
    assert set(table.column("data").to_pylist()) == {b""}


def test_bytes_that_do_not_compress_are_stored_as_they_are(tmp_path: Path) -> None:
    for kind, make in (("random", os.urandom), ("text", lambda n: b"ab " * (n // 3))):
        source = tmp_path / kind
        source.mkdir()
        for index in range(20):
            (source / f"{index}.bin").write_bytes(make(20_000))
        _sync(source, tmp_path / f"{kind}-dst", format="files")
        shard = next((tmp_path / f"{kind}-dst").glob("*.parquet"))
        metadata = pq.ParquetFile(shard).metadata
        names = metadata.schema.to_arrow_schema().names
        codecs = {
            name: metadata.row_group(0).column(i).compression
            for i, name in enumerate(names)
        }
        assert codecs["path"] == "ZSTD"
        assert codecs["data"] == ("UNCOMPRESSED" if kind == "random" else "ZSTD")


def test_a_packed_shard_takes_the_hottest_tier_of_its_files(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.tiering import lake

    at = datetime.now(UTC).replace(microsecond=0)
    source = tmp_path / "src"
    files = make_tree(source, count=400)
    old = (at - timedelta(days=400)).timestamp()
    for relpath in files:
        os.utime(source / relpath, (old, old))
    hot = sorted(name for name in files if name.startswith("d1/"))[0]
    policy, _ = lake.write_files(tmp_path / "cfg", at)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "reads.csv").write_text(
        f"timestamp,path\n{(at - timedelta(days=2)).isoformat()},{hot}\n"
    )
    dest = tmp_path / "dst"
    report = _sync(
        source, dest, format="files", tier_policy=str(policy),
        access_logs=[str(logs)],
    )  # fmt: skip
    assert report.status == "ok"
    manifest = json.loads((dest / "_datamove" / "manifest.json").read_text())
    tiers = {
        path: record["tier"] for path, record in manifest["extra"]["tiers"].items()
    }
    holder = datamove.files.lookup(Location.parse(str(dest)), hot)["object"]
    assert tiers[holder] == "hot"
    others = {tier for path, tier in tiers.items() if path != holder}
    assert others == {"archive"}
