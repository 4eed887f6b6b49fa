"""``tier plan`` and ``tier apply`` against real S3 (moto), Azure (Azurite) and
GCS (gcp-storage-emulator) servers.

A day-partitioned dataset is synced, access logs of it are written in the
store's own log format (plus a generic log of the old system), and the plan
is applied. Each shard's class is read back through the store's own client,
not through datamove.

Emulator limits, as observed and asserted here:

* moto keeps ``DEEP_ARCHIVE`` objects unreadable until restored and refuses
  to copy them to another class (``ObjectNotInActiveTierError``), as S3 does.
* Azurite refuses to read ``Archive`` blobs (``BlobArchived``), as Azure
  does, but rehydrates them to another tier at once, where Azure takes hours.
* gcp-storage-emulator (and fake-gcs-server) answer an ``objects.rewrite``
  with a new class as done but keep the old class; objects written with a
  class do get it. ``tier apply`` reports such shards as unconfirmed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import datamove
from datamove.state import Manifest, read_json, read_manifest, receipt_path
from datamove.storage import Location
from datamove.stores.base import WriteOptions
from datamove.tiering.commands import (
    TierChange,
    read_plan_file,
    tier_apply,
    tier_plan,
)
from datamove.tiering.records import restore_required_paths, tier_records
from tests.servers import AZURITE_ACCOUNT
from tests.stores.conftest import Bucket
from tests.tiering import lake

pytestmark = pytest.mark.cloud

MOVED = sorted(age for age, tier in lake.TIER_BY_AGE.items() if tier != "hot")


@dataclass(frozen=True)
class Lake:
    """A synced destination, its access logs and the tier inputs."""

    bucket: Bucket
    dest: str
    options: dict[str, Any]
    location: Location
    shards: dict[int, lake.Shard]
    logs: Path
    policy: Path
    prices: Path
    at: datetime
    tmp: Path

    @property
    def protocol(self) -> str:
        return self.bucket.server.protocol

    def plan_args(self) -> dict[str, Any]:
        return {
            "access_logs": [str(self.logs)],
            "policy_file": self.policy,
            "prices_file": self.prices,
            "dest_options": self.options,
            "now": self.at,
        }

    def manifest(self) -> Manifest:
        found = read_manifest(self.location)
        assert found is not None
        return found

    def store_class(self, relative: str) -> str:
        """The class the store's own client reports for one shard."""
        return lake.native_class(self.bucket, f"lake/{relative}")


def secrets_of(options: dict[str, Any]) -> list[str]:
    """The secret values among storage options (keys, connection strings)."""
    names = ("secret", "key", "connection_string")
    return [str(v) for k, v in options.items() if k in names and v]


def store_log(bucket: Bucket, shards: dict[int, lake.Shard], at: datetime) -> list[str]:
    """The store's reads in the store's own log format."""
    reads = lake.store_reads(shards, at)
    if bucket.server.protocol == "s3":
        return [
            lake.s3_log_line(bucket.name, f"lake/{path}", when, 4096, number)
            for number, (path, when) in enumerate(reads)
        ]
    assert bucket.server.protocol == "az"
    return [
        lake.azure_log_line(AZURITE_ACCOUNT, bucket.name, f"lake/{path}", when, 4096)
        for path, when in reads
    ]


def build_lake(bucket: Bucket, tmp: Path, with_logs: bool = True) -> Lake:
    at = lake.now()
    source = lake.write_source(tmp / "src", at)
    policy, prices = lake.write_files(tmp / "cfg", at)
    dest = f"{bucket.server.url}{bucket.name}/lake"
    options = dict(bucket.server.storage_options)
    datamove.sync(
        str(source), dest, dest_options=options, workers=1, partition_by=["day"]
    )
    location = Location.parse(dest, options)
    manifest = read_manifest(location)
    assert manifest is not None
    shards = lake.shards_by_age(manifest.to_dict(), at)
    lines = store_log(bucket, shards, at) if with_logs else []
    logs = lake.write_logs(
        tmp / "logs", store_lines=lines, source_root=source, shards=shards, at=at
    )
    return Lake(bucket, dest, options, location, shards, logs, policy, prices, at, tmp)


@pytest.fixture(params=["s3", "azure"])
def classed_lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    """A synced lake at S3 and at Azure, the stores whose emulators change
    classes in place."""
    name = {"s3": "s3_bucket", "azure": "azure_container"}[request.param]
    return build_lake(request.getfixturevalue(name), tmp_path)


def expected_class(protocol: str, age: int) -> str:
    return lake.CLASSES[protocol][lake.TIER_BY_AGE[age]]


# --- plan and apply ----------------------------------------------------------------


def test_plan_then_apply_leaves_each_shard_in_its_planned_class(
    classed_lake: Lake,
) -> None:
    lk = classed_lake
    out_json, out_png = lk.tmp / "plan.json", lk.tmp / "costs.png"

    plan = tier_plan(lk.dest, **lk.plan_args(), out_json=out_json, out_png=out_png)

    by_age = {
        age: plan.assignment(lk.location.path(s.path)) for age, s in lk.shards.items()
    }
    assert {age: a.tier for age, a in by_age.items() if a} == lake.TIER_BY_AGE
    for age, assignment in by_age.items():
        assert assignment is not None
        assert assignment.storage_class == expected_class(lk.protocol, age)
        assert assignment.current_class == lake.CLASSES[lk.protocol]["hot"]
    assert plan.events_matched == 3  # the manifest read is not a data read
    assert plan.events_unmatched == 0
    assert plan.costs is not None and plan.costs.savings("all_hot") is not None
    saved, header = read_plan_file(out_json)
    assert header == {"dest": lk.location.url, "manifest_run_id": lk.manifest().run_id}
    text = out_json.read_text()
    for secret in secrets_of(lk.options):
        assert secret not in text
    assert [a.to_dict() for a in saved.assignments] == [
        a.to_dict() for a in plan.assignments
    ]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    report = tier_apply(lk.dest, plan_file=out_json, dest_options=lk.options)

    assert report.ok and report.status == "ok"
    assert (report.changed, report.already) == (len(MOVED), 7 - len(MOVED))
    assert report.restore_required == 1
    adapter = lk.location.adapter
    for age, shard in lk.shards.items():
        wanted = expected_class(lk.protocol, age)
        assert lk.store_class(shard.path) == wanted, age
        head = adapter.head(lk.location.fs, lk.location.path(shard.path))
        assert adapter.storage_class_of(head) == wanted

    manifest = lk.manifest()
    records = tier_records(manifest)
    classes = {s.path: s.storage_class for s in manifest.shards}
    for age, shard in lk.shards.items():
        assert classes[shard.path] == expected_class(lk.protocol, age)
        assert records[shard.path].tier == lake.TIER_BY_AGE[age]
        assert records[shard.path].restore_required == (age == 300)
    assert restore_required_paths(manifest, lk.protocol) == {lk.shards[300].path}
    for unit in manifest.units:  # the receipts say what the manifest says
        stored = read_json(lk.location, receipt_path(unit.unit_id))
        assert stored is not None
        assert [s["storage_class"] for s in stored["shards"]] == [
            s.storage_class for s in unit.shards
        ]


def test_a_second_apply_changes_nothing_and_sync_stays_a_noop(
    classed_lake: Lake,
) -> None:
    lk = classed_lake
    first = tier_apply(lk.dest, **lk.plan_args())
    assert first.changed == len(MOVED)
    manifest_before = lk.manifest().to_dict()

    again = tier_apply(lk.dest, **lk.plan_args())

    assert again.status == "noop"
    assert (again.changed, again.already) == (0, 7)
    assert (again.receipts_written, again.manifest_written) == (0, False)
    assert lk.manifest().to_dict() == manifest_before
    for age, shard in lk.shards.items():
        assert lk.store_class(shard.path) == expected_class(lk.protocol, age)
    # The versions recorded after the class change still match the store,
    # so a sync of the unchanged source rewrites nothing.
    source = lk.tmp / "src"
    report = datamove.sync(
        str(source), lk.dest, dest_options=lk.options, workers=1, partition_by=["day"]
    )
    assert report.status == "noop"


def test_s3_cheap_verify_passes_after_classes_change(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    lk = build_lake(s3_bucket, tmp_path)
    tier_apply(lk.dest, **lk.plan_args())

    report = datamove.verify(lk.dest, dest_options=lk.options)

    # S3 keeps the full-object CRC32C through the copy that changes the class.
    assert report.ok, report.problems
    assert report.shards_checked == 7


class Killed(Exception):
    """Stands for the process being killed midway through an apply."""


def kill_after(count: int, seen: list[TierChange]) -> Callable[[TierChange], None]:
    def on_change(change: TierChange) -> None:
        seen.append(change)
        if len(seen) == count:
            raise Killed

    return on_change


def test_a_killed_apply_resumes_where_it_stopped(classed_lake: Lake) -> None:
    lk = classed_lake
    seen: list[TierChange] = []
    before = lk.manifest()

    with pytest.raises(Killed):
        tier_apply(lk.dest, **lk.plan_args(), on_change=kill_after(2, seen))

    # Units go in manifest order (oldest day first): 300 then 250 changed.
    assert [c.path for c in seen] == [lk.shards[300].path, lk.shards[250].path]
    assert lk.store_class(lk.shards[300].path) == expected_class(lk.protocol, 300)
    assert lk.store_class(lk.shards[250].path) == expected_class(lk.protocol, 250)
    assert lk.store_class(lk.shards[70].path) == lake.CLASSES[lk.protocol]["hot"]
    assert lk.manifest().to_dict() == before.to_dict()  # written only at the end
    units = {s.path: u.unit_id for u in before.units for s in u.shards}
    done = read_json(lk.location, receipt_path(units[lk.shards[300].path]))
    cut = read_json(lk.location, receipt_path(units[lk.shards[250].path]))
    assert done is not None and cut is not None
    assert done["shards"][0]["storage_class"] == expected_class(lk.protocol, 300)
    assert cut["shards"][0]["storage_class"] is None  # as the sync wrote it

    resumed = tier_apply(lk.dest, **lk.plan_args())

    assert resumed.ok
    assert (resumed.changed, resumed.already) == (len(MOVED) - 2, 7 - len(MOVED) + 2)
    manifest = lk.manifest()
    classes = {s.path: s.storage_class for s in manifest.shards}
    for age, shard in lk.shards.items():
        assert lk.store_class(shard.path) == expected_class(lk.protocol, age)
        assert classes[shard.path] == expected_class(lk.protocol, age)
    assert restore_required_paths(manifest, lk.protocol) == {lk.shards[300].path}


def test_s3_apply_reports_an_archived_shard_it_cannot_move_without_restore(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    lk = build_lake(s3_bucket, tmp_path)
    tier_apply(lk.dest, **lk.plan_args())
    archived = lk.shards[300]
    assert lk.store_class(archived.path) == "DEEP_ARCHIVE"
    pinned = lk.tmp / "cfg" / "pinned.yaml"
    pinned.write_text(
        lake.POLICY + 'overrides:\n  - {match: "*", tier: hot, force: true}\n'
    )

    report = tier_apply(lk.dest, **{**lk.plan_args(), "policy_file": pinned})

    assert not report.ok and report.status == "incomplete"
    assert [path for path, _ in report.failed] == [archived.path]
    assert "restore it" in report.failed[0][1]
    assert lk.store_class(archived.path) == "DEEP_ARCHIVE"
    assert report.changed == len(MOVED) - 1  # the two STANDARD_IA shards went back
    manifest = lk.manifest()
    assert {s.path: s.storage_class for s in manifest.shards}[archived.path] == (
        "DEEP_ARCHIVE"
    )
    assert tier_records(manifest)[archived.path].restore_required


# --- verify and archived shards ----------------------------------------------------


def test_the_store_refuses_to_read_an_archived_shard(classed_lake: Lake) -> None:
    lk = classed_lake
    tier_apply(lk.dest, **lk.plan_args())
    adapter, fs = lk.location.adapter, lk.location.fs

    path = lk.location.path(lk.shards[300].path)
    with pytest.raises(Exception) as caught, adapter.open_read(fs, path) as handle:
        handle.read()

    assert type(caught.value).__name__ in ("PermissionError", "ResourceExistsError")


def test_deep_verify_does_not_read_archived_shards(classed_lake: Lake) -> None:
    lk = classed_lake
    tier_apply(lk.dest, **lk.plan_args())

    report = datamove.verify(lk.dest, deep=True, dest_options=lk.options)

    assert report.ok, report.problems
    assert report.shards_checked == 7


# --- GCS: the emulator's limits ----------------------------------------------------


def test_gcs_emulator_keeps_the_class_on_rewrite_and_apply_says_so(
    gcs_bucket: Bucket, tmp_path: Path
) -> None:
    lk = build_lake(gcs_bucket, tmp_path, with_logs=False)
    legacy = lk.logs / "legacy.csv"  # the old system's reads still count
    args = {**lk.plan_args(), "access_logs": [str(legacy)]}
    plan = tier_plan(lk.dest, **args)
    planned = {a.path: a for a in plan.assignments}
    moved = sorted(
        age
        for age, shard in lk.shards.items()
        if planned[lk.location.path(shard.path)].storage_class != "STANDARD"
    )
    # Without the store log, the 250-day shard counts as never read.
    assert moved == [70, 250, 300]

    report = tier_apply(lk.dest, **args)

    # The emulator answers the rewrite as done but keeps STANDARD.
    assert report.status == "incomplete" and report.changed == 0
    assert sorted(c.path for c in report.unconfirmed) == sorted(
        lk.shards[age].path for age in moved
    )
    assert {c.confirmed for c in report.unconfirmed} == {"STANDARD"}
    manifest = lk.manifest()
    records = tier_records(manifest)
    for shard in lk.shards.values():
        assert lk.store_class(shard.path) == "STANDARD"
        # Receipts and records hold what the store reports, not the wish.
        assert {s.path: s.storage_class for s in manifest.shards}[shard.path] == (
            "STANDARD"
        )
        assert records[shard.path].tier == "hot"
    # A shard written with a class does get it: the path sync takes.
    adapter = lk.location.adapter
    path = lk.location.path("written-cold.parquet")
    writer = adapter.open_write(
        lk.location.fs, path, WriteOptions(storage_class="NEARLINE")
    )
    writer.write(b"PAR1 not really parquet PAR1")
    writer.commit()
    assert lk.store_class("written-cold.parquet") == "NEARLINE"
