"""Estimates: checked against what a sync of a generated dataset really did."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest

import datamove
from datamove.bandwidth import parse_bwlimit
from datamove.errors import UsageError
from datamove.estimate import (
    ASSUMED_BANDWIDTH,
    compare,
    estimate_plan,
    measure_corrections,
    measure_upload_rate,
    transfer_seconds,
    upload_requests,
)
from datamove.planner import Plan
from datamove.samples import SampleCompression, SampleFormat, generate_transactions
from datamove.tiering.prices import GB, parse_prices
from tests.ops.conftest import S3Bucket

MiB = 1 << 20
SHARD = "256KiB"


def _dataset(
    root: Path,
    fmt: SampleFormat = "csv",
    compression: SampleCompression = None,
    size: int = 6_000_000,
) -> str:
    src = root / f"src-{fmt}-{compression}"
    generate_transactions(src, size, files=2, seed=7, fmt=fmt, compression=compression)
    return str(src)


@pytest.fixture(scope="module")
def csv_plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """The plan of a generated CSV dataset into an empty local folder."""
    root = tmp_path_factory.mktemp("estimate")
    return datamove.plan(_dataset(root), str(root / "dst"), shard_size=SHARD)


def _within(estimated: float, actual: float, tolerance: float) -> bool:
    return abs(actual - estimated) <= tolerance * actual


# --- against real runs ---------------------------------------------------------


def test_estimate_matches_a_local_sync(tmp_path: Path) -> None:
    src, dst = _dataset(tmp_path), str(tmp_path / "dst")
    plan = datamove.plan(src, dst, shard_size=SHARD)
    estimate = estimate_plan(plan)
    report = datamove.sync(src, dst, shard_size=SHARD, workers=1)

    assert estimate.shards_exact
    assert estimate.shards_to_write == report.shards_written
    assert estimate.units == report.units_written
    assert estimate.bytes_to_read == report.bytes_read
    assert _within(estimate.bytes_to_write, report.bytes_written, 0.25)
    assert estimate.bill is None  # a local path has no price
    assert estimate.bandwidth == ASSUMED_BANDWIDTH
    assert estimate.bandwidth_source == "assumed"

    compared = compare(estimate, report.to_dict())
    assert compared["shards_written"]["error"] == 0.0
    assert abs(compared["bytes_written"]["error"]) <= 0.25
    assert compared["bytes_written"]["actual"] == report.bytes_written

    # Nothing left to do: the estimate of a no-op plan is empty.
    again = estimate_plan(datamove.plan(src, dst, shard_size=SHARD))
    assert again.units == again.shards_to_write == again.bytes_to_write == 0
    assert again.shards_kept == report.shards_written


def test_estimate_matches_a_sync_to_s3_objects_requests_and_bill(
    tmp_path: Path, s3: S3Bucket
) -> None:
    src, dst = _dataset(tmp_path), s3.url("data")
    plan = datamove.plan(src, dst, dest_options=s3.options, shard_size=SHARD)
    estimate = estimate_plan(plan, bandwidth=50 * MiB)
    report = datamove.sync(
        src, dst, dest_options=s3.options, shard_size=SHARD, workers=1
    )

    assert estimate.shards_to_write == report.shards_written
    assert _within(estimate.bytes_to_write, report.bytes_written, 0.25)
    # Everything at the destination afterwards: shards, receipts, manifest,
    # the run record (the journal, lease and probe are gone).
    objects = s3.fs.find(f"{s3.name}/data")
    assert len(objects) == estimate.objects_after

    # Small shards go up in one PutObject each; state objects one PUT each.
    assert estimate.requests.put == report.shards_written + estimate.state_objects + 1
    assert estimate.requests.get >= report.shards_written

    bill = estimate.bill
    assert bill is not None
    assert (bill.provider, bill.region, bill.storage_class) == (
        "s3",
        "us-east-1",
        "STANDARD",
    )
    assert bill.currency == "USD"
    expected_storage = estimate.bytes_after / GB * 0.023
    assert bill.storage == pytest.approx(expected_storage, rel=1e-4)
    requests = estimate.requests
    expected_requests = (
        (requests.put + requests.list) * 0.005 + requests.get * 0.0004
    ) / 1000
    assert bill.requests == pytest.approx(expected_requests, rel=1e-6)
    assert bill.total == pytest.approx(bill.storage + bill.requests)
    assert estimate.duration_s == pytest.approx(
        (estimate.bytes_to_write + estimate.state_bytes) / (50 * MiB)
    )


@pytest.mark.parametrize(
    ("fmt", "compression"), [("csv", "gz"), ("jsonl", "zst"), ("parquet", None)]
)
def test_measured_corrections_fix_compressed_text_and_parquet(
    tmp_path: Path, fmt: SampleFormat, compression: SampleCompression
) -> None:
    src, dst = _dataset(tmp_path, fmt, compression), str(tmp_path / "dst")
    plan = datamove.plan(src, dst, shard_size=SHARD)
    factors = measure_corrections(plan)
    assert set(factors) == {file.relpath for file in plan.inventory.files}
    raw = estimate_plan(plan)
    corrected = estimate_plan(plan, corrections=factors)
    report = datamove.sync(src, dst, shard_size=SHARD, workers=1)

    assert not _within(raw.bytes_to_write, report.bytes_written, 0.25)
    assert any("without reading them again" in note for note in raw.assumptions)
    assert _within(corrected.bytes_to_write, report.bytes_written, 0.25)
    assert not any("without reading" in note for note in corrected.assumptions)


# --- the pieces ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "size", "requests"),
    [
        ("s3", 1 * MiB, 1),
        ("s3", 16 * MiB - 1, 1),
        ("s3", 16 * MiB, 3),  # create, one part, complete
        ("s3", 40 * MiB, 5),
        ("gcs", 16 * MiB, 1),  # under one chunk plus the 256 KiB kept back
        ("gcs", 40 * MiB, 4),  # start, two chunks, the final request
        ("azure", 4 * MiB, 1),
        ("azure", 40 * MiB, 4),  # three blocks and the block list
        (None, 40 * MiB, 1),
    ],
)
def test_upload_requests_follow_each_adapter(
    provider: str | None, size: int, requests: int
) -> None:
    assert upload_requests(provider, size, 16 * MiB) == requests


def test_transfer_seconds_walk_the_timetable() -> None:
    limit = parse_bwlimit("08:00,1MiB 20:00,off")
    link = 10 * MiB
    monday = datetime(2024, 1, 1)
    # Uncapped until 08:00.
    assert transfer_seconds(100 * MiB, link, limit, monday.replace(hour=7)) == 10.0
    # One minute at the cap, then the rest at link speed after 20:00.
    start = monday.replace(hour=19, minute=59)
    assert transfer_seconds(100 * MiB, link, limit, start) == pytest.approx(64.0)
    # Ten whole days from 08:00: 12 h at 1 MiB/s and 12 h at 10 MiB/s a day.
    per_day = 12 * 3600 * (1 + 10) * MiB
    start = monday.replace(hour=8)
    assert transfer_seconds(10 * per_day, link, limit, start) == pytest.approx(
        10 * 86400
    )
    assert transfer_seconds(10 * MiB, link, parse_bwlimit("2MiB"), start) == 5.0


def test_estimate_duration_follows_the_bwlimit(csv_plan: Plan) -> None:
    estimate = estimate_plan(
        csv_plan, bandwidth=100 * MiB, bwlimit=parse_bwlimit("1MiB")
    )
    total = estimate.bytes_to_write + estimate.state_bytes
    assert estimate.duration_s == pytest.approx(total / MiB)
    assert estimate.bwlimit == "1MiB"
    assert estimate.to_dict()["bandwidth_source"] == "given"
    assert any("--bwlimit 1MiB" in line for line in estimate.lines())


PRICES = """
version: 1
currency: EUR
providers:
  s3:
    default_region: test-1
    regions:
      test-1:
        as_of: 2025-06-01
        source: a test
        classes:
          STANDARD:
            storage_gb_month: 0.02
            min_storage_days: 0
            early_deletion: none
            retrieval_gb: 0.0
            put_per_1000: 0.01
            get_per_1000: 0.001
            min_billable_bytes: 0
          COLD:
            storage_gb_month: 0.01
            min_storage_days: 30
            early_deletion: prorated
            retrieval_gb: 0.01
            put_per_1000: 0.1
            get_per_1000: 0.001
            min_billable_bytes: 1048576
"""


def _as_s3(plan: Plan) -> Plan:
    return dataclasses.replace(plan, dest="s3://bucket/prefix")


def test_bill_uses_the_class_minimum_size_and_put_price(csv_plan: Plan) -> None:
    plan = _as_s3(csv_plan)
    table = parse_prices(PRICES, "test-prices.yaml")
    estimate = estimate_plan(plan, storage_class="COLD", prices=table)
    bill = estimate.bill
    assert bill is not None and bill.currency == "EUR" and bill.region == "test-1"
    shards = estimate.shards_to_write
    # Every shard is under 1 MiB, so each is billed as 1 MiB at the COLD price;
    # the state objects stay in the default class.
    expected = shards * MiB / GB * 0.01 + estimate.state_bytes / GB * 0.02
    assert bill.storage == pytest.approx(expected)
    state_puts = estimate.requests.put - shards
    expected_requests = (
        shards * 0.1 + (state_puts + estimate.requests.list) * 0.01
    ) / 1000 + estimate.requests.get * 0.001 / 1000
    assert bill.requests == pytest.approx(expected_requests)
    assert bill.prices_as_of == "2025-06-01"
    assert any(
        line.startswith("first month:") and "EUR" in line and "COLD" in line
        for line in estimate.lines()
    )

    with pytest.raises(UsageError, match="GLACIER"):
        estimate_plan(plan, storage_class="GLACIER", prices=table)
    with pytest.raises(UsageError, match="no region"):
        estimate_plan(plan, region="mars-1", prices=table)


def test_intelligent_tiering_adds_monitoring_for_large_shards(csv_plan: Plan) -> None:
    estimate = estimate_plan(_as_s3(csv_plan), storage_class="INTELLIGENT_TIERING")
    assert estimate.bill is not None
    # Shards of about 300 KB are over the 128 KiB monitoring threshold.
    assert estimate.bill.monitoring == pytest.approx(
        estimate.shards_to_write * 0.0025 / 1000
    )


def test_upload_probe_measures_and_leaves_nothing(tmp_path: Path) -> None:
    rate = measure_upload_rate(str(tmp_path), size=2 * MiB)
    assert rate > 0
    assert list(tmp_path.rglob("*probe*")) == []


def test_compare_needs_a_run_report(csv_plan: Plan) -> None:
    estimate = estimate_plan(csv_plan)
    with pytest.raises(UsageError, match=r"SyncReport\.to_dict"):
        compare(estimate, {"bytes_read": 1})
