"""Tiers decided before a sync reads its source (``classes_for_sync``).

The decisions come from the source files' access times, logs naming source
files or destination partitions, and reads of the shards an earlier sync
wrote. The cloud tests write objects in the decided class through the store
adapter, as the sharder does, and read the class back through the store's
own client.
"""

from __future__ import annotations

import os
import pickle
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import datamove
from datamove.state import UnitReceipt, read_manifest
from datamove.storage import Location
from datamove.stores.base import WriteOptions
from datamove.tiering.commands import SyncTiering, classes_for_sync
from datamove.tiering.records import tier_records
from tests.stores.conftest import Bucket
from tests.tiering import lake

AGES = (2, 70, 130, 300, 500)
TIERS = {2: "hot", 70: "cold", 130: "hot", 300: "archive", 500: "hot"}


def source_with_history(root: Path, at: datetime) -> tuple[Path, Path, Path]:
    """A source whose 130-day file was read 5 days ago (its access time), and
    a generic log reading the 500-day partition at the destination."""
    source = lake.write_source(root / "src", at, AGES)
    policy, _ = lake.write_files(root / "cfg", at)
    old = source / f"events-{lake.day_of(130, at)}.csv"
    read = (at - timedelta(days=5)).timestamp()
    os.utime(old, (read, old.stat().st_mtime))
    logs = root / "logs"
    logs.mkdir()
    (logs / "reads.csv").write_text(
        "timestamp,path\n"
        f"{(at - timedelta(days=15)).isoformat()},day={lake.day_of(500, at)}\n"
    )
    return source, policy, logs


def decide(
    tiering: SyncTiering, at: datetime, ages: tuple[int, ...] = AGES
) -> dict[int, str]:
    found = {}
    for age in ages:
        day = lake.day_of(age, at)
        found[age] = tiering.assignment(f"events-{day}.csv", f"day={day}").tier
    return found


def test_tiers_come_from_access_times_logs_and_data_age(tmp_path: Path) -> None:
    at = lake.now()
    source, policy, logs = source_with_history(tmp_path, at)
    dest = tmp_path / "lake"

    tiering = classes_for_sync(
        str(source), str(dest), access_logs=[str(logs)], policy_file=policy, now=at
    )

    assert decide(tiering, at) == TIERS
    assert tiering.provider is None
    assert tiering.class_for(f"events-{lake.day_of(70, at)}.csv", "") is None
    assert (tiering.events_matched, tiering.events_unmatched) == (1, 0)
    assert tiering.preview().summary()["hot"]["objects"] == 2  # 2 and 130 days

    blind = classes_for_sync(
        str(source), str(dest), policy_file=policy, now=at, scan_access_times=False
    )
    assert decide(blind, at)[130] == "cold"  # only its access time said otherwise


def test_reads_of_the_shards_an_earlier_sync_wrote_count(tmp_path: Path) -> None:
    at = lake.now()
    source, policy, _ = source_with_history(tmp_path, at)
    dest = tmp_path / "lake"
    datamove.sync(str(source), str(dest), workers=1, partition_by=["day"])
    manifest = read_manifest(Location.parse(str(dest)))
    assert manifest is not None
    old = lake.shards_by_age(manifest.to_dict(), at, AGES)[300]
    logs = tmp_path / "store-logs"
    logs.mkdir()
    (logs / "reads.jsonl").write_text(
        f'{{"timestamp": "{(at - timedelta(days=3)).isoformat()}", '
        f'"path": "{dest}/{old.path}", "bytes": 100}}\n'
    )

    tiering = classes_for_sync(
        str(source), str(dest), access_logs=[str(logs)], policy_file=policy, now=at
    )

    assert decide(tiering, at)[300] == "hot"


def test_the_decisions_travel_to_workers_unchanged(tmp_path: Path) -> None:
    at = lake.now()
    source, policy, logs = source_with_history(tmp_path, at)
    tiering = classes_for_sync(
        str(source), str(tmp_path / "lake"), access_logs=[str(logs)], policy_file=policy
    )

    copy = pickle.loads(pickle.dumps(tiering))

    assert decide(copy, at) == decide(tiering, at) == TIERS


def test_tier_records_describe_the_written_shards(tmp_path: Path) -> None:
    at = lake.now()
    source, policy, logs = source_with_history(tmp_path, at)
    tiering = classes_for_sync(
        str(source), str(tmp_path / "lake"), access_logs=[str(logs)], policy_file=policy
    )
    day = lake.day_of(300, at)
    receipt = UnitReceipt.from_dict(
        {
            "unit_id": "u1",
            "source": f"events-{day}.csv",
            "piece": "all",
            "fingerprint": {},
            "rows": 1,
            "bytes_read": 1,
            "written_at": "2026-12-01T00:00:00+00:00",
            "shards": [
                {
                    "path": f"day={day}/events-{day}-u1-000.parquet",
                    "size": 1,
                    "crc32c": "AAAAAA==",
                    "rows": 1,
                    "partition": f"day={day}",
                }
            ],
        }
    )

    records = tiering.tier_records([receipt])

    assert records == {
        f"day={day}/events-{day}-u1-000.parquet": {
            "tier": "archive",
            "storage_class": None,
            "restore_required": False,
            "since": "2026-12-01T00:00:00+00:00",
        }
    }


@pytest.mark.cloud
@pytest.mark.parametrize("store", ["s3", "azure", "gcs"])
def test_a_shard_written_in_its_decided_class_is_in_it(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    name = {"s3": "s3_bucket", "azure": "azure_container", "gcs": "gcs_bucket"}
    bucket: Bucket = request.getfixturevalue(name[store])
    at = lake.now()
    source, policy, logs = source_with_history(tmp_path, at)
    dest = f"{bucket.server.url}{bucket.name}/lake"
    options = dict(bucket.server.storage_options)
    location = Location.parse(dest, options)

    tiering = classes_for_sync(
        str(source),
        dest,
        access_logs=[str(logs)],
        policy_file=policy,
        dest_options=options,
        now=at,
    )

    classes = lake.CLASSES[bucket.server.protocol]
    assert decide(tiering, at) == TIERS
    for age in AGES:
        day = lake.day_of(age, at)
        relative = f"day={day}/events-{day}-unit-000.parquet"
        wanted = tiering.class_for(f"events-{day}.csv", f"day={day}", relative)
        assert wanted == classes[TIERS[age]]
        writer = location.adapter.open_write(
            location.fs, location.path(relative), WriteOptions(storage_class=wanted)
        )
        writer.write(b"PAR1 shard bytes PAR1")
        writer.commit()
        assert lake.native_class(bucket, f"lake/{relative}") == wanted


@pytest.mark.cloud
def test_sync_with_a_tier_policy_writes_each_shard_in_its_class(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    at = lake.now()
    source, policy, logs = source_with_history(tmp_path, at)
    dest = f"s3://{s3_bucket.name}/lake"
    options = dict(s3_bucket.server.storage_options)

    datamove.sync(  # type: ignore[call-arg]
        str(source),
        dest,
        dest_options=options,
        workers=1,
        partition_by=["day"],
        tier_policy=str(policy),
        access_logs=[str(logs)],
    )

    manifest = read_manifest(Location.parse(dest, options))
    assert manifest is not None
    shards = lake.shards_by_age(manifest.to_dict(), at, AGES)
    receipts = {s.path: s.storage_class for s in manifest.shards}
    records = tier_records(manifest)
    for age, shard in shards.items():
        wanted = lake.CLASSES["s3"][TIERS[age]]
        assert lake.native_class(s3_bucket, f"lake/{shard.path}") == wanted
        assert receipts[shard.path] == wanted
        assert records[shard.path].tier == TIERS[age]
        assert records[shard.path].restore_required == (age == 300)


def test_a_shard_of_many_files_takes_the_hottest_tier_of_them(tmp_path: Path) -> None:
    at = lake.now()
    source, policy, logs = source_with_history(tmp_path, at)
    tiering = classes_for_sync(
        str(source), str(tmp_path / "lake"), access_logs=[str(logs)],
        policy_file=policy, now=at,
    )  # fmt: skip
    names = {age: f"events-{lake.day_of(age, at)}.csv" for age in AGES}
    together = tiering.assignment_for_sources([names[70], names[300], names[2]])
    assert together.tier == "hot"
    assert tiering.assignment_for_sources([names[300], names[70]]).tier == "cold"
    assert tiering.assignment_for_sources([names[300]]).tier == "archive"
