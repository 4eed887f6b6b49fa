"""Many small table files: grouped into units of about one shard, stably."""

from __future__ import annotations

from pathlib import Path

import pytest

import datamove
from datamove.state import read_manifest
from datamove.storage import Location
from tests.core.helpers import read_rows, write_csv

SHARD = "256KiB"


def _tree(root: Path, count: int = 300, rows: int = 40) -> Path:
    for index in range(count):
        folder = root / f"day={index % 7}"
        write_csv(folder / f"part-{index:04d}.csv", rows, seed=index,
                  start=index * 1_000)  # fmt: skip
    return root


def _sync(source: Path, dest: Path, **extra: object) -> datamove.SyncReport:
    return datamove.sync(str(source), str(dest), shard_size=SHARD, workers=1, **extra)


def _shards(dest: Path) -> set[str]:
    return {p.relative_to(dest).as_posix() for p in dest.rglob("*.parquet")
            if "_datamove" not in p.parts}  # fmt: skip


def _expected_ids(count: int = 300, rows: int = 40) -> list[int]:
    return sorted(i * 1_000 + r for i in range(count) for r in range(rows))


def test_small_files_share_shards_and_lose_no_row(tmp_path: Path) -> None:
    source, dest = _tree(tmp_path / "src"), tmp_path / "dst"
    report = _sync(source, dest)
    assert report.status == "ok"
    # 300 files of ~3 KiB: a handful of groups, not 300 shards.
    assert report.shards_written < 30
    assert report.units_written == report.shards_written
    assert sorted(read_rows(dest).column("id").to_pylist()) == _expected_ids()
    assert datamove.verify(str(dest), deep=True).ok
    assert _sync(source, dest).status == "noop"


def test_one_changed_file_rewrites_only_its_group(tmp_path: Path) -> None:
    source, dest = _tree(tmp_path / "src"), tmp_path / "dst"
    first = _sync(source, dest)
    before = _shards(dest)
    write_csv(source / "day=3" / "part-0010.csv", 41, seed=99, start=10_000)
    second = _sync(source, dest)
    after = _shards(dest)
    assert second.units_written == 1 and second.shards_written == 1
    assert len(before - after) == 1 and len(after - before) == 1
    assert second.shards_skipped == first.shards_written - 1
    ids = read_rows(dest).column("id").to_pylist()
    assert len(ids) == 300 * 40 + 1


def test_added_and_removed_files_touch_few_groups(tmp_path: Path) -> None:
    source, dest = _tree(tmp_path / "src"), tmp_path / "dst"
    first = _sync(source, dest)
    write_csv(source / "day=1" / "part-9999.csv", 40, seed=1, start=9_999_000)
    (source / "day=2" / "part-0100.csv").unlink()
    second = _sync(source, dest)
    assert 1 <= second.units_written <= 4
    assert second.shards_skipped >= first.shards_written - 4
    ids = read_rows(dest).column("id").to_pylist()
    assert len(ids) == 300 * 40
    assert 100_000 not in ids and 9_999_000 in ids


def test_the_grouping_is_recorded_and_kept(tmp_path: Path) -> None:
    source, dest = _tree(tmp_path / "src", count=60), tmp_path / "dst"
    _sync(source, dest)
    manifest = read_manifest(Location.parse(str(dest)))
    assert manifest is not None
    modulus = manifest.extra["small_files_modulus"]
    # Many more files of another size would choose another modulus; the
    # recorded one stays, so the existing groups keep their boundaries.
    for index in range(60, 200):
        write_csv(source / "more" / f"x-{index}.csv", 400, seed=index,
                  start=index * 1_000)  # fmt: skip
    second = _sync(source, dest)
    manifest = read_manifest(Location.parse(str(dest)))
    assert manifest is not None
    assert manifest.extra["small_files_modulus"] == modulus
    assert second.shards_skipped >= 1


def test_a_large_file_keeps_its_own_units_beside_groups(tmp_path: Path) -> None:
    source, dest = _tree(tmp_path / "src", count=50), tmp_path / "dst"
    write_csv(source / "big.csv", 60_000, seed=5, start=10_000_000)
    plan = datamove.plan(str(source), str(dest), shard_size=SHARD)
    big = [u for u in plan.to_write if u.piece.relpath == "big.csv"]
    assert len(big) >= 3 and all(not u.members for u in big)
    groups = [u for u in plan.to_write if u.members]
    assert (
        groups
        and sum(len(u.members) for u in groups)
        + len(plan.to_write)
        - len(groups)
        - len(big)
        == 50
    )
    _sync(source, dest)
    assert len(read_rows(dest)) == 50 * 40 + 60_000


def test_bad_rows_of_a_grouped_file_name_that_file(tmp_path: Path) -> None:
    source, dest = _tree(tmp_path / "src", count=40), tmp_path / "dst"
    ragged = source / "day=0" / "part-0007.csv"
    ragged.write_text(ragged.read_text() + "1,2,3,4,5,6,7,8,9\n")
    with pytest.raises(datamove.SyncFailedError, match=r"part-0007\.csv"):
        _sync(source, dest)
    quarantine = tmp_path / "quarantine"
    report = _sync(
        source, dest, on_bad_rows="quarantine", quarantine_dir=str(quarantine)
    )
    assert report.bad_rows == 1
    (kept,) = list(quarantine.iterdir())
    assert "day=0/part-0007.csv" in kept.read_text().splitlines()[0]


def test_a_grouped_file_changed_during_the_run_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datamove.orchestrator as orchestrator

    source, dest = _tree(tmp_path / "src", count=40), tmp_path / "dst"
    victim = source / "day=5" / "part-0012.csv"
    real_plan = orchestrator.plan_sync

    def plan_then_touch(*args: object, **kwargs: object) -> object:
        planned = real_plan(*args, **kwargs)  # type: ignore[arg-type]
        write_csv(victim, 45, seed=3, start=12_000)
        return planned

    monkeypatch.setattr(orchestrator, "plan_sync", plan_then_touch)
    with pytest.raises(datamove.SyncFailedError, match=r"part-0012\.csv: changed"):
        _sync(source, dest)
    monkeypatch.undo()
    assert _sync(source, dest).status == "ok"
    assert len(read_rows(dest)) == 40 * 40 + 5


def test_a_group_key_keeps_files_of_different_tiers_apart(tmp_path: Path) -> None:
    from datamove.orchestrator import build_options
    from datamove.planner import plan_sync

    source = _tree(tmp_path / "src", count=60)
    options = build_options(shard_size=SHARD)
    src, dst = Location.parse(str(source)), Location.parse(str(tmp_path / "dst"))

    def tier(relpath: str) -> str | None:
        index = int(relpath.rsplit("-", 1)[1].split(".")[0])
        return None if index == 7 else ("hot" if index % 2 else "cold")

    plan = plan_sync(src, dst, options, group_key=tier)
    grouped = [unit for unit in plan.to_write if unit.members]
    assert grouped
    for unit in grouped:
        assert len({tier(relpath) for relpath in unit.sources}) == 1
    alone = [u for u in plan.to_write if "day=0/part-0007.csv" in u.sources]
    assert len(alone) == 1 and not alone[0].members
    assert sorted(s for u in plan.to_write for s in u.sources) == sorted(
        p.relative_to(source).as_posix() for p in source.rglob("*.csv")
    )


def test_partitioned_output_keeps_one_unit_per_file(tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", count=20)
    plan = datamove.plan(
        str(source), str(tmp_path / "dst"), shard_size=SHARD, partition_by=["id"]
    )
    assert len(plan.to_write) == 20 and not any(u.members for u in plan.to_write)
