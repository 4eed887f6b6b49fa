"""The tier commands on a local destination, and their building blocks.

A local store has no storage classes: ``tier apply`` records the tier only.
These tests need no emulator.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import datamove
from datamove.errors import UsageError
from datamove.state import Manifest, ShardReceipt, UnitReceipt, read_manifest
from datamove.storage import Location
from datamove.tiering import (
    AccessEvent,
    ObjectInfo,
    attribute_events,
    load_prices,
    plan_tiers,
)
from datamove.tiering.commands import (
    list_destination,
    shard_mapping,
    shard_objects,
    tier_apply,
    tier_plan,
)
from datamove.tiering.records import (
    RESTORE_REQUIRED_CLASSES,
    TIERS_KEY,
    needs_restore,
    restore_required_paths,
    tier_records,
)
from tests.tiering import lake

AGES = (2, 70, 300)
TIERS = {2: "hot", 70: "cold", 300: "archive"}


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, datetime]:
    """A local source of three days; each test syncs it to its own place."""
    at = lake.now()
    root = tmp_path_factory.mktemp("tier-local")
    lake.write_source(root / "src", at, AGES)
    lake.write_files(root / "cfg", at)
    return root, at


def sync_to(root: Path, dest: Path) -> Manifest:
    datamove.sync(str(root / "src"), str(dest), workers=1, partition_by=["day"])
    manifest = read_manifest(Location.parse(str(dest)))
    assert manifest is not None
    return manifest


def test_a_local_destination_gets_its_tiers_recorded_only(
    synced: tuple[Path, datetime], tmp_path: Path
) -> None:
    root, at = synced
    dest = tmp_path / "lake"
    manifest = sync_to(root, dest)
    shards = lake.shards_by_age(manifest.to_dict(), at, AGES)
    policy = root / "cfg" / "tiers.yaml"

    plan = tier_plan(str(dest), policy_file=policy, now=at)

    assert plan.provider is None and plan.costs is None
    by_path = {a.path: a for a in plan.assignments}
    for age, shard in shards.items():
        found = by_path[f"{dest}/{shard.path}"]
        assert (found.tier, found.storage_class) == (TIERS[age], None)

    report = tier_apply(str(dest), policy_file=policy, now=at)

    assert (report.recorded_only, report.changed, report.already) == (3, 0, 0)
    assert report.manifest_written and report.receipts_written == 0
    after = read_manifest(Location.parse(str(dest)))
    assert after is not None
    records = tier_records(after)
    assert {age: records[s.path].tier for age, s in shards.items()} == TIERS
    assert all(s.storage_class is None for s in after.shards)
    assert restore_required_paths(after, "file") == frozenset()
    assert after.extra["files"] == manifest.extra["files"]  # the rest is kept

    again = tier_apply(str(dest), policy_file=policy, now=at)

    assert again.status == "noop" and not again.manifest_written


def test_a_chart_of_a_store_without_classes_is_refused(
    synced: tuple[Path, datetime], tmp_path: Path
) -> None:
    root, at = synced
    dest = tmp_path / "lake"
    sync_to(root, dest)

    with pytest.raises(UsageError, match="leave out --chart"):
        tier_plan(str(dest), now=at, out_png=tmp_path / "chart.png")

    assert not (tmp_path / "chart.png").exists()


def test_a_destination_without_manifest_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no datamove manifest"):
        tier_plan(str(tmp_path))
    with pytest.raises(UsageError, match="no datamove manifest"):
        tier_apply(str(tmp_path))


def test_a_plan_for_another_destination_is_refused(
    synced: tuple[Path, datetime], tmp_path: Path
) -> None:
    root, at = synced
    first, second = tmp_path / "a", tmp_path / "b"
    sync_to(root, first)
    sync_to(root, second)
    saved = tmp_path / "plan.json"
    tier_plan(str(first), now=at, out_json=saved)

    with pytest.raises(UsageError, match="made for"):
        tier_apply(str(second), plan_file=saved)

    saved.write_text(json.dumps({"assignments": []}))
    with pytest.raises(UsageError, match="not a datamove tier plan"):
        tier_apply(str(first), plan_file=saved)


def test_a_saved_plan_older_than_the_last_sync_leaves_new_shards_alone(
    tmp_path: Path,
) -> None:
    at = lake.now()
    source = lake.write_source(tmp_path / "src", at, AGES)
    dest = tmp_path / "lake"
    datamove.sync(str(source), str(dest), workers=1, partition_by=["day"])
    saved = tmp_path / "plan.json"
    tier_plan(str(dest), now=at, out_json=saved)
    changed = source / f"events-{lake.day_of(2, at)}.csv"
    with open(changed, "a", encoding="utf-8") as handle:
        handle.write(f"999999,tnew,1.00,{lake.day_of(2, at)}\n")
    datamove.sync(str(source), str(dest), workers=1, partition_by=["day"])
    manifest = read_manifest(Location.parse(str(dest)))
    assert manifest is not None
    new = lake.shards_by_age(manifest.to_dict(), at, AGES)[2]

    report = tier_apply(str(dest), plan_file=saved)

    assert report.not_planned == (new.path,)
    assert report.recorded_only == 2
    after = read_manifest(Location.parse(str(dest)))
    assert after is not None
    assert new.path not in tier_records(after)


def test_logged_names_reach_the_shards_they_cover(
    synced: tuple[Path, datetime], tmp_path: Path
) -> None:
    root, at = synced
    dest = tmp_path / "lake"
    manifest = sync_to(root, dest)
    location = Location.parse(str(dest))
    shards = lake.shards_by_age(manifest.to_dict(), at, AGES)
    objects, missing = shard_objects(location, manifest, list_destination(location))
    assert missing == []
    full = {age: location.path(s.path) for age, s in shards.items()}
    when = at - timedelta(days=1)
    logged = {
        "source file, absolute": str(root / "src" / f"events-{shards[2].day}.csv"),
        "source file, relative": f"events-{shards[70].day}.csv",
        "shard, absolute": full[300],
        "shard, relative": shards[2].path,
        "partition, absolute": f"{dest}/day={shards[70].day}",
        "partition, relative": f"day={shards[300].day}",
        "the whole destination": str(dest),
        "source directory": str(root / "src"),
        "nothing of this data": "/elsewhere/file.csv",
    }
    expected = {
        "source file, absolute": {2},
        "source file, relative": {70},
        "shard, absolute": {300},
        "shard, relative": {2},
        "partition, absolute": {70},
        "partition, relative": {300},
        "the whole destination": {2, 70, 300},
        "source directory": {2, 70, 300},
        "nothing of this data": set(),
    }
    mapping = shard_mapping(location, manifest)
    for name, path in logged.items():
        event = AccessEvent(when, path, 0, "GET")
        found = attribute_events([event], objects, mapping=mapping)
        touched = {age for age, p in full.items() if p.lstrip("/") in found.stats}
        assert touched == expected[name], name


def test_restore_classes_agree_with_the_packaged_price_table() -> None:
    table = load_prices()
    for provider in ("s3", "gcs", "azure"):
        region = table.region_for(provider)
        priced = {
            name
            for (p, r, name), price in table.classes.items()
            if p == provider and r == region and price.restore_required
        }
        assert priced == set(RESTORE_REQUIRED_CLASSES.get(provider, ())), provider
    assert needs_restore("s3", "DEEP_ARCHIVE") and needs_restore("abfs", "archive")
    assert not needs_restore("gs", "ARCHIVE") and not needs_restore("s3", "GLACIER_IR")
    assert not needs_restore("file", None)


def test_restore_required_paths_reads_records_and_receipt_classes() -> None:
    def shard(path: str, storage_class: str | None) -> ShardReceipt:
        return ShardReceipt(path, 1, "AAAAAA==", 1, storage_class=storage_class)

    unit = UnitReceipt(
        unit_id="u1",
        source="a.csv",
        piece="all",
        fingerprint={},
        shards=(
            shard("deep.parquet", "DEEP_ARCHIVE"),
            shard("instant.parquet", "GLACIER_IR"),
            shard("marked.parquet", "STANDARD"),
            shard("plain.parquet", None),
        ),
        rows=4,
        bytes_read=4,
    )
    records = {"marked.parquet": {"tier": "archive", "restore_required": True}}
    manifest = Manifest(
        "run", "now", "src", {}, "digest", {}, (unit,), extra={TIERS_KEY: records}
    )

    assert restore_required_paths(manifest, "s3") == {"deep.parquet", "marked.parquet"}


def test_price_files_are_laid_over_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    layer = (
        "providers:\n  s3:\n    regions:\n      us-east-1:\n        classes:\n"
        "          STANDARD: {{storage_gb_month: {price}}}\n"
    )
    first.write_text(layer.format(price=0.5))
    second.write_text(layer.format(price=0.25))

    table = load_prices(first, None, second)

    assert table.price("s3", "us-east-1", "STANDARD").storage_gb_month == 0.25
    assert table.files[1:] == (str(first), str(second))


def test_observed_from_stretches_the_rate_window_of_a_partial_history() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    shard = ObjectInfo("b/x.parquet", 1 << 30, now - timedelta(days=400), "STANDARD")
    reads = [
        AccessEvent(now - timedelta(days=d), "b/x.parquet", 0, "GET") for d in (1, 2)
    ]

    alone = plan_tiers([shard], reads, provider="s3", now=now)
    longer = plan_tiers(
        [shard],
        reads,
        provider="s3",
        now=now,
        observed_from=now - timedelta(days=90),
    )

    # Two reads seen over 7 days (the minimum window) against over 90 days.
    assert alone.assignments[0].reads_per_month > longer.assignments[0].reads_per_month
    assert longer.observed_from == now - timedelta(days=90)


def test_source_access_times_are_taken_only_after_the_write(tmp_path: Path) -> None:
    from datamove.tiering.sync import _access_time

    path = tmp_path / "f.csv"
    path.write_text("a\n")
    written = datetime(2026, 1, 1, tzinfo=UTC)
    os.utime(path, (written.timestamp(), written.timestamp()))
    assert _access_time(str(path), written) is None
    read = written + timedelta(days=3)
    os.utime(path, (read.timestamp(), written.timestamp()))
    assert _access_time(str(path), written) == (read, 0, "READ")
