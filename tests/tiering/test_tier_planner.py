"""Tier assignments for a partitioned dataset, fee-aware cases included."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from datamove.errors import UsageError
from datamove.tiering import (
    AccessEvent,
    ObjectInfo,
    TierPlan,
    load_prices,
    parse_policy,
    plan_tiers,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)
MIB = 1 << 20
ROOT = "lake-prod/transactions"


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def shard(
    date: str, part: int = 0, size: int = 256 * MIB, **kwargs: object
) -> ObjectInfo:
    created = kwargs.pop("created", datetime.fromisoformat(date).replace(tzinfo=UTC))
    return ObjectInfo(
        f"{ROOT}/date={date}/part-{part:05d}.parquet",
        size,
        created,  # type: ignore[arg-type]
        kwargs.pop("current_class", "STANDARD"),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def read(info: ObjectInfo, when: datetime, size: int | None = None) -> AccessEvent:
    return AccessEvent(when, info.path, info.size if size is None else size, "GET")


# A dataset partitioned by day, and a year of logs (from the first event on).
RECENT = shard("2026-11-25")
WARM = shard("2026-08-01")
OLD = shard("2025-06-01")
OLD_1 = shard("2025-06-01", 1)
MONTHLY = shard("2025-01-31")
TINY = shard("2025-02-01", size=10 * 1024)
PARTITION_READ = [shard("2026-10-15", 0), shard("2026-10-15", 1)]
OBJECTS = [RECENT, WARM, OLD, OLD_1, MONTHLY, TINY, *PARTITION_READ]


def events() -> list[AccessEvent]:
    found = [
        AccessEvent(
            days_ago(364), f"{ROOT}/date=2025-05-01/part-00000.parquet", 1, "GET"
        ),
        read(RECENT, days_ago(6)),
        read(RECENT, days_ago(1)),
        read(WARM, days_ago(110)),
        read(WARM, days_ago(100), size=4 * MIB),
        # A whole partition read as a directory, 50 days ago.
        AccessEvent(days_ago(50), f"{ROOT}/date=2026-10-15/", 0, "GET"),
    ]
    # The month-end partition feeds a report on the 5th of every month.
    for month in range(12):
        found.append(read(MONTHLY, datetime(2026, month + 1, 5, 6, tzinfo=UTC)))
    return sorted(found, key=lambda e: e.timestamp)


def by_path(plan: TierPlan) -> dict[str, tuple[str, str | None, str]]:
    return {a.path: (a.tier, a.storage_class, a.reason) for a in plan.assignments}


def test_default_policy_on_a_partitioned_dataset() -> None:
    plan = plan_tiers(OBJECTS, events(), provider="s3", now=NOW)
    got = by_path(plan)

    assert got[RECENT.path][:2] == ("hot", "STANDARD")
    assert got[RECENT.path][2] == (
        "rule 'recent' (accessed within 30 days) -> hot; already in STANDARD"
    )
    assert got[WARM.path][:2] == ("cold", "STANDARD_IA")
    assert got[WARM.path][2].endswith("moves from STANDARD to STANDARD_IA")
    assert got[OLD.path][:2] == ("archive", "GLACIER_IR")
    assert got[OLD_1.path][:2] == ("archive", "GLACIER_IR")
    for item in PARTITION_READ:  # read through their directory
        assert got[item.path][:2] == ("cold", "STANDARD_IA")
    # Read on the 5th of each month: hot by recency (26 days).
    assert got[MONTHLY.path][:2] == ("hot", "STANDARD")

    assert plan.events_matched == 17
    assert plan.events_unmatched == 1
    assert any("1 logged reads matched no object" in w for w in plan.warnings)
    assert plan.summary()["archive"] == {"objects": 2, "bytes": 2 * 256 * MIB}


def test_a_small_object_is_not_moved_below_its_minimum_billable_size() -> None:
    plan = plan_tiers(OBJECTS, events(), provider="s3", now=NOW)
    tier, storage_class, reason = by_path(plan)[TINY.path]

    assert (tier, storage_class) == ("hot", "STANDARD")
    assert "-> archive, but kept hot" in reason
    assert "GLACIER_IR bills at least 131072 bytes and the object has 10240" in reason


def test_an_object_read_monthly_stays_out_of_archive() -> None:
    aggressive = parse_policy(
        "rules:\n  - {name: this-week, tier: hot, accessed_within_days: 7}\n"
        "default_tier: archive\n",
        "aggressive.yaml",
    )
    plan = plan_tiers(OBJECTS, events(), provider="s3", policy=aggressive, now=NOW)
    got = by_path(plan)

    tier, _, reason = got[MONTHLY.path]
    assert tier != "archive"
    assert "-> archive, but kept" in reason
    assert "retrieval" in reason
    # Objects nobody reads still go to archive under the same policy.
    assert got[OLD.path][0] == "archive"
    assert got[WARM.path][0] == "archive"


def test_early_deletion_and_minimum_duration_keep_a_young_object_in_place() -> None:
    young = shard("2025-03-01", current_class="STANDARD_IA", class_since=days_ago(5))
    short = parse_policy("horizon_months: 1\n", "short.yaml")
    plan = plan_tiers([young], [], provider="s3", policy=short, now=NOW)
    tier, storage_class, reason = by_path(plan)[young.path]

    assert (tier, storage_class) == ("cold", "STANDARD_IA")
    assert "early deletion" in reason
    assert "90-day minimum storage" in reason

    # Over a year the same move pays for itself.
    long = plan_tiers([young], [], provider="s3", now=NOW)
    assert long.assignments[0].tier == "archive"
    assert long.changes() == long.assignments


def test_a_class_that_needs_a_restore_is_kept_from_objects_still_read() -> None:
    deep = parse_policy(
        "classes: {s3: {archive: DEEP_ARCHIVE}}\n"
        "rules: [{tier: hot, accessed_within_days: 7}]\ndefault_tier: archive\n",
        "deep.yaml",
    )
    plan = plan_tiers(OBJECTS, events(), provider="s3", policy=deep, now=NOW)
    tier, _, reason = by_path(plan)[MONTHLY.path]
    assert tier != "archive"
    assert "DEEP_ARCHIVE needs a restore before each read" in reason
    old = plan.assignment(OLD.path)
    assert old is not None
    assert (old.storage_class, old.restore_required) == ("DEEP_ARCHIVE", True)


def test_a_forced_override_skips_the_fee_check() -> None:
    forced = parse_policy(
        "overrides:\n"
        "  - {partition: {date: '2025-02-*'}, tier: archive, force: true}\n",
        "forced.yaml",
    )
    plan = plan_tiers(OBJECTS, events(), provider="s3", policy=forced, now=NOW)
    tier, storage_class, reason = by_path(plan)[TINY.path]
    assert (tier, storage_class) == ("archive", "GLACIER_IR")
    assert "forced, fees not checked" in reason


def test_moving_hotter_must_pay_for_itself_too() -> None:
    once = shard("2025-04-01", 0, current_class="GLACIER_IR", class_since=days_ago(200))
    daily = shard(
        "2025-04-01", 1, current_class="GLACIER_IR", class_since=days_ago(200)
    )
    reads = [read(once, days_ago(1))] + [read(daily, days_ago(d)) for d in range(1, 15)]
    # The logs start 90 days back (with a read of something else).
    reads.append(AccessEvent(days_ago(90), "lake-prod/other/x.parquet", 1, "GET"))

    plan = plan_tiers([once, daily], reads, provider="s3", now=NOW)
    got = by_path(plan)

    # One ad-hoc read: copying it back to STANDARD costs more than it saves.
    assert got[once.path][0] == "archive"
    assert "-> hot, but kept archive" in got[once.path][2]
    assert got[daily.path][:2] == ("hot", "STANDARD")


def test_source_files_map_to_shards() -> None:
    shards = [shard("2026-06-20", 0), shard("2026-06-20", 1), shard("2026-06-21", 0)]
    atime = [AccessEvent(days_ago(3), "/data/src/sales-2026-06-20.csv", 0, "READ")]
    mapping = {"/data/src/sales-2026-06-20.csv": [f"{ROOT}/date=2026-06-20"]}

    plan = plan_tiers(shards, atime, provider="s3", now=NOW, mapping=mapping)
    got = by_path(plan)

    assert got[shards[0].path][0] == "hot"
    assert got[shards[1].path][0] == "hot"
    assert got[shards[2].path][0] == "cold"  # created 163 days ago, never read
    assert plan.events_unmatched == 0


def test_gcs_and_azure_classes() -> None:
    gcs = [ObjectInfo(o.path, o.size, o.created, "STANDARD") for o in OBJECTS]
    plan = plan_tiers(gcs, events(), provider="gcs", now=NOW)
    assert {a.storage_class for a in plan.assignments} == {
        "STANDARD",
        "NEARLINE",
        "ARCHIVE",
    }
    assert plan.region == "us-central1"

    azure = [ObjectInfo(o.path, o.size, o.created, "Hot") for o in OBJECTS]
    plan = plan_tiers(azure, events(), provider="azure", now=NOW)
    # Azure Archive needs rehydration: only never-read objects go there.
    assert plan.class_for(OLD.path) == "Archive"
    assert plan.class_for(WARM.path) == "Cool"
    assert plan.costs is not None and plan.costs.scenario("automatic") is not None


def test_new_objects_for_sync_are_written_into_their_tier() -> None:
    fresh = [ObjectInfo(o.path, o.size, NOW, None) for o in (OLD, RECENT)]
    plan = plan_tiers(fresh, [], provider="s3", now=NOW)

    # Just written: its creation counts as an access, so it starts hot.
    assert plan.class_for(OLD.path) == "STANDARD"
    assert plan.changes() == ()
    assert plan.assignments[0].reason.endswith("written as STANDARD")
    assert plan.costs is not None
    plan_cost = plan.costs.scenario("plan")
    assert plan_cost is not None and plan_cost.breakdown.transition > 0


def test_a_store_without_classes_records_the_tier_only() -> None:
    plan = plan_tiers(OBJECTS, events(), provider=None, now=NOW)
    assert plan.costs is None and plan.provider is None
    old = plan.assignment(OLD.path)
    assert old is not None
    assert (old.tier, old.storage_class) == ("archive", None)
    assert old.reason.endswith("the store has no storage classes: tier recorded only")
    assert plan.changes() == ()


def test_the_plan_round_trips_through_json() -> None:
    plan = plan_tiers(OBJECTS, events(), provider="s3", now=NOW)
    text = json.dumps(plan.to_dict())
    again = TierPlan.from_dict(json.loads(text))

    assert again == plan
    data = json.loads(text)
    assert data["summary"]["hot"]["objects"] == 3
    assert {s["name"] for s in data["costs"]["scenarios"]} == {
        "all_hot",
        "plan",
        "automatic",
    }
    assert data["assignments"][0]["needs_change"] in (True, False)
    with pytest.raises(UsageError, match="not a tier plan written by datamove"):
        TierPlan.from_dict({"assignments": [{}]})


def test_short_logs_and_unpriced_classes_are_warned_about() -> None:
    odd = shard("2025-07-01", current_class="REDUCED_REDUNDANCY")
    recent_only = [read(RECENT, days_ago(20))]
    plan = plan_tiers([RECENT, odd], recent_only, provider="s3", now=NOW)

    assert any("the access logs cover 20 days" in w for w in plan.warnings)
    assert any("'REDUCED_REDUNDANCY' has no price" in w for w in plan.warnings)
    nothing = plan_tiers([RECENT], [], provider="s3", now=NOW)
    assert any("no access events were read" in w for w in nothing.warnings)


def test_configuration_errors() -> None:
    unpriced = parse_policy("classes: {s3: {cold: STANDARD_XL}}\n", "tiers.yaml")
    with pytest.raises(UsageError, match=r"tiers\.yaml: class 'STANDARD_XL' for tier"):
        plan_tiers(OBJECTS, [], provider="s3", policy=unpriced, now=NOW)
    with pytest.raises(UsageError, match="no region 'mars-1'"):
        plan_tiers(OBJECTS, [], provider="s3", region="mars-1", now=NOW)
    with pytest.raises(UsageError, match="listed twice"):
        plan_tiers([OLD, OLD], [], provider="s3", now=NOW, prices=load_prices())


def test_sync_plans_new_shards_from_their_source_files() -> None:
    # Shards about to be written from old source files: `created` is when the
    # source data was last modified, and the source files' access times are
    # mapped onto the shards that will hold their rows.
    modified = days_ago(400)
    shards = [
        ObjectInfo(f"{ROOT}/date=2025-10-01/part-00000.parquet", 256 * MIB, modified),
        ObjectInfo(f"{ROOT}/date=2025-10-02/part-00000.parquet", 256 * MIB, modified),
    ]
    atime = [
        AccessEvent(days_ago(300), "/data/src/2025-10-01.csv", 0, "READ"),
        AccessEvent(days_ago(2), "/data/src/2025-10-02.csv", 0, "READ"),
    ]
    mapping = {
        "/data/src/2025-10-01.csv": [shards[0].path],
        "/data/src/2025-10-02.csv": [shards[1].path],
    }

    plan = plan_tiers(shards, atime, provider="s3", now=NOW, mapping=mapping)

    assert plan.class_for(shards[0].path) == "GLACIER_IR"
    assert plan.class_for(shards[1].path) == "STANDARD"
    assert plan.changes() == ()
    first = plan.assignment(shards[0].path)
    assert first is not None and first.reason.endswith("written as GLACIER_IR")
