"""Bandwidth limits: parsing, timetables on an injected clock, the token bucket,
and real measurements against the S3 server and a Dask cluster."""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import datamove
from datamove.bandwidth import (
    BandwidthLimit,
    Throttle,
    ThrottledWriter,
    parse_bwlimit,
    sending_seconds,
    throttle_for,
    transfer_summary,
    worker_share,
)
from datamove.errors import UsageError
from datamove.samples import generate_transactions
from datamove.stores.base import WriteOptions, adapter_for
from tests.ops.conftest import S3Bucket

MiB = 1 << 20
# 2024-01-01 is a Monday.
MONDAY = datetime(2024, 1, 1)


def at(day: int, clock: str) -> datetime:
    """Monday + ``day`` days at HH:MM[:SS]."""
    parts = [int(p) for p in clock.split(":")]
    hour, minute, second = (*parts, 0)[:3]
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute, seconds=second)


class FakeTime:
    """A monotonic clock and a wall clock that only move when slept on."""

    def __init__(self, start: datetime = MONDAY) -> None:
        self.seconds = 0.0
        self.start = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.seconds += seconds

    def throttle(self, limit: BandwidthLimit, **kwargs: float) -> Throttle:
        return Throttle(
            limit, clock=self.clock, now=self.now, sleep=self.sleep, **kwargs
        )


# --- parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("50MiB", 50 * MiB),
        ("10M", 10 * MiB),
        ("1.5MB", 1_500_000),
        ("512k", 512 * 1024),
        ("off", None),
        ("0", None),
    ],
)
def test_constant_limits(text: str, rate: float | None) -> None:
    limit = parse_bwlimit(text)
    for moment in (at(0, "00:00"), at(3, "13:37"), at(6, "23:59")):
        assert limit.rate_at(moment) == rate
    assert limit.unlimited is (rate is None)
    assert limit.next_change(at(0, "12:00")) is None


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("fast", "cannot read the rate"),
        ("", "empty value"),
        ("08:00 20:00,off", "lacks a rate"),
        ("25:00,1M 08:00,off", "not a time of day"),
        ("8h,1M 20:00,off", "cannot read the time"),
        ("Xyz-08:00,1M 20:00,off", "unknown weekday"),
        ("08:00,1M 08:00,2M", "appears twice"),
        ("08:00,1M:2M 20:00,off", "upload:download"),
        ("08:00,-1M 20:00,off", "cannot read the rate"),
    ],
)
def test_invalid_limits_say_what_to_write(text: str, hint: str) -> None:
    with pytest.raises(UsageError, match=hint) as caught:
        parse_bwlimit(text)
    assert "--bwlimit" in str(caught.value)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(UsageError, match="unknown time zone"):
        parse_bwlimit("08:00,1M 20:00,off", timezone="Mars/Olympus")


# --- timetables on an injected clock -------------------------------------------


def test_daily_timetable_switches_at_the_given_times() -> None:
    limit = parse_bwlimit("08:00,20MiB 20:00,off")
    assert limit.is_timetable
    for day in range(7):
        assert limit.rate_at(at(day, "07:59:59")) is None
        assert limit.rate_at(at(day, "08:00")) == 20 * MiB
        assert limit.rate_at(at(day, "19:59:59")) == 20 * MiB
        assert limit.rate_at(at(day, "20:00")) is None
    assert limit.next_change(at(2, "07:30:10")) == at(2, "08:00")
    assert limit.next_change(at(2, "21:00")) == at(3, "08:00")


def test_the_last_entry_of_a_day_holds_past_midnight() -> None:
    limit = parse_bwlimit("06:00,5M 22:00,1M")
    assert limit.rate_at(at(0, "21:59")) == 5 * MiB
    assert limit.rate_at(at(0, "22:00")) == 1 * MiB
    assert limit.rate_at(at(0, "23:59:59")) == 1 * MiB
    assert limit.rate_at(at(1, "00:00")) == 1 * MiB
    assert limit.rate_at(at(1, "05:59")) == 1 * MiB
    assert limit.rate_at(at(1, "06:00")) == 5 * MiB
    # Sunday night wraps into Monday morning too.
    assert limit.rate_at(at(0, "03:00")) == 1 * MiB
    assert limit.next_change(at(0, "23:00")) == at(1, "06:00")


def test_weekday_timetable_wraps_around_the_week() -> None:
    limit = parse_bwlimit("Mon-08:00,10M Fri-18:00,off Saturday-10:00,1M")
    assert limit.rate_at(at(0, "07:59")) == 1 * MiB  # from last Saturday
    assert limit.rate_at(at(0, "08:00")) == 10 * MiB
    assert limit.rate_at(at(3, "03:00")) == 10 * MiB
    assert limit.rate_at(at(4, "17:59")) == 10 * MiB
    assert limit.rate_at(at(4, "18:00")) is None
    assert limit.rate_at(at(5, "09:59")) is None
    assert limit.rate_at(at(5, "10:00")) == 1 * MiB
    assert limit.rate_at(at(6, "23:59")) == 1 * MiB
    assert limit.next_change(at(6, "12:00")) == at(7, "08:00")


def test_weekday_entries_override_daily_ones_at_the_same_time() -> None:
    limit = parse_bwlimit("08:00,4M 20:00,off Sun-08:00,off")
    assert limit.rate_at(at(5, "09:00")) == 4 * MiB
    assert limit.rate_at(at(6, "09:00")) is None
    assert limit.rate_at(at(7, "09:00")) == 4 * MiB


def test_a_pinned_time_zone_reads_aware_times_on_its_own_clock() -> None:
    limit = parse_bwlimit("08:00,20MiB 20:00,off", timezone="Europe/Paris")
    # 07:30 UTC in January is 08:30 in Paris.
    assert limit.rate_at(datetime(2024, 1, 3, 7, 30, tzinfo=UTC)) == 20 * MiB
    assert limit.rate_at(datetime(2024, 1, 3, 6, 30, tzinfo=UTC)) is None
    assert limit.now().tzinfo is not None


def test_worker_share_splits_every_rate() -> None:
    limit = parse_bwlimit("08:00,20MiB 20:00,off")
    share = worker_share(limit, 4)
    assert share.rate_at(at(0, "09:00")) == 5 * MiB
    assert share.rate_at(at(0, "21:00")) is None
    assert worker_share(limit, 0).rate_at(at(0, "09:00")) == 20 * MiB
    assert "x 0.25" in share.describe()
    assert share.to_dict()["schedule"][0] == {
        "at": "Mon-08:00",
        "bytes_per_s": 20 * MiB,
    }


# --- the token bucket ---------------------------------------------------------


def test_token_bucket_holds_the_rate_exactly_on_a_fake_clock() -> None:
    fake = FakeTime()
    throttle = fake.throttle(parse_bwlimit("4MiB"))
    for _ in range(100):
        throttle.consume(MiB)
    # The bucket starts empty: 100 MiB at 4 MiB/s take 25 s.
    assert fake.seconds == pytest.approx(25.0)
    stats = throttle.stats()
    assert stats.bytes == 100 * MiB
    assert stats.rate == pytest.approx(4 * MiB)
    assert stats.waited_s == pytest.approx(25.0)


def test_token_bucket_makes_up_short_pauses_but_not_long_ones() -> None:
    fake = FakeTime()
    throttle = fake.throttle(parse_bwlimit("4MiB"), burst_s=1.0)
    throttle.consume(4 * MiB)
    assert fake.seconds == pytest.approx(1.0)
    fake.seconds += 0.5  # a pause the bucket makes up
    assert throttle.consume(2 * MiB) == pytest.approx(0.0)
    fake.seconds += 60.0  # a long pause earns at most one second's worth
    assert throttle.consume(4 * MiB) == pytest.approx(0.0)
    assert throttle.consume(4 * MiB) == pytest.approx(1.0)


def test_token_bucket_follows_the_timetable_across_a_switch() -> None:
    fake = FakeTime(start=at(0, "07:59:50"))
    throttle = fake.throttle(parse_bwlimit("08:00,1MiB 09:00,off"))
    sent_before = 0
    while fake.now() < at(0, "08:00"):
        throttle.consume(MiB)
        sent_before += MiB
        fake.seconds += 1.0  # the caller's own work between writes
    assert sent_before == 10 * MiB and fake.sleeps == []
    started = fake.seconds
    for _ in range(30):
        throttle.consume(MiB)
    assert fake.seconds - started == pytest.approx(30.0)
    # At 09:00 the cap lifts: no more waiting.
    fake.seconds = (at(0, "09:00") - fake.start).total_seconds()
    waits = len(fake.sleeps)
    for _ in range(50):
        throttle.consume(MiB)
    assert len(fake.sleeps) == waits


def test_concurrent_consumers_queue_without_losing_tokens() -> None:
    fake = FakeTime()
    lock = threading.Lock()
    waits: list[float] = []

    def record(seconds: float) -> None:
        with lock:  # the clock stands still: only the reservations count
            waits.append(seconds)

    throttle = Throttle(
        parse_bwlimit("4MiB"), clock=fake.clock, now=fake.now, sleep=record
    )

    def worker() -> None:
        for _ in range(10):
            throttle.consume(MiB)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 40 reservations of 1 MiB at 4 MiB/s: waits 0.25 s, 0.5 s ... 10 s.
    assert sorted(waits) == pytest.approx([0.25 * k for k in range(1, 41)])


def test_throttled_writer_forwards_every_byte_in_paced_pieces() -> None:
    fake = FakeTime()
    throttle = fake.throttle(parse_bwlimit("1MiB"))
    received: list[bytes] = []

    class Sink:
        def write(self, data: bytes) -> int:
            received.append(bytes(data))
            return len(data)

    writer = ThrottledWriter(Sink(), throttle)
    payload = os.urandom(3 * MiB + 123)
    assert writer.write(payload[:MiB]) == MiB
    assert writer.write(bytearray(payload[MiB:])) == 2 * MiB + 123
    assert b"".join(received) == payload
    # A quarter second's worth per piece at 1 MiB/s.
    assert max(len(piece) for piece in received) == MiB // 4
    assert writer.bytes_written == len(payload)
    assert writer.effective_rate == pytest.approx(MiB, rel=1e-3)


def test_throttled_writer_passes_writes_through_when_unlimited() -> None:
    fake = FakeTime()
    received: list[int] = []

    class Sink:
        def write(self, data: bytes) -> int:
            received.append(len(data))
            return len(data)

    writer = ThrottledWriter(Sink(), fake.throttle(parse_bwlimit("off")))
    writer.write(b"x" * (5 * MiB))
    assert received == [5 * MiB] and fake.sleeps == []


def test_transfer_summary_reports_the_effective_rate() -> None:
    limit = parse_bwlimit("08:00,8MiB 20:00,off")
    summary = transfer_summary(limit, 80 * MiB, 10.0, slots=2, started=at(0, "09:00"))
    data = summary.to_dict()
    assert data["effective_bytes_per_s"] == pytest.approx(8 * MiB)
    assert data["cap_bytes_per_s_at_start"] == 8 * MiB
    assert data["bwlimit"] == "08:00,8MiB 20:00,off"


def test_sending_seconds_join_overlapping_windows() -> None:
    assert sending_seconds([]) == 0.0
    assert sending_seconds([(5.0, 6.0), (0.0, 2.0), (1.0, 3.0)]) == 4.0
    assert sending_seconds([(0.0, 10.0), (2.0, 3.0)]) == 10.0


def test_transfer_summary_rates_over_sending_time_and_wall_time() -> None:
    limit = parse_bwlimit("8MiB")
    summary = transfer_summary(
        limit, 48 * MiB, 10.0, slots=2, windows=[(100.0, 105.0), (101.0, 106.0)]
    )
    data = summary.to_dict()
    assert data["sending_s"] == 6.0 and data["wall_s"] == 10.0
    assert data["effective_bytes_per_s"] == pytest.approx(8 * MiB)
    assert data["overall_bytes_per_s"] == pytest.approx(4.8 * MiB)


def test_each_thread_keeps_one_throttle_per_run() -> None:
    limit = parse_bwlimit("4MiB")
    first = throttle_for(limit, "run-1")
    assert throttle_for(limit, "run-1") is first
    assert throttle_for(limit, "run-2") is not first
    assert throttle_for(parse_bwlimit("2MiB"), "run-2") is not first
    others: list[Throttle] = []
    thread = threading.Thread(
        target=lambda: others.append(throttle_for(limit, "run-1"))
    )
    thread.start()
    thread.join()
    assert others[0] is not first


def test_throttled_writer_marks_the_send_window() -> None:
    fake = FakeTime()
    throttle = fake.throttle(parse_bwlimit("64MiB"))

    class Sink:
        def write(self, data: bytes) -> int:
            return len(data)

    assert throttle.window.span() is None
    ThrottledWriter(Sink(), throttle).write(b"x" * MiB)
    span = throttle.window.span()
    assert span is not None and span[0] <= span[1]


# --- one real measurement ------------------------------------------------------


def test_effective_rate_to_s3_stays_within_ten_percent_of_the_cap(
    s3: S3Bucket,
) -> None:
    cap = 4 * MiB
    # Two 5 MiB parts go up during the writes, the last 1 MiB on commit.
    payload = os.urandom(11 * MiB)
    path = f"{s3.name}/throttled.bin"
    target = adapter_for("s3").open_write(s3.fs, path, WriteOptions(part_size=5 * MiB))
    writer = ThrottledWriter(target, Throttle(parse_bwlimit("4MiB")))

    started = time.monotonic()
    for offset in range(0, len(payload), 3 * MiB // 2):
        writer.write(payload[offset : offset + 3 * MiB // 2])
    target.commit()
    elapsed = time.monotonic() - started

    # The rate under the cap: first byte handed over to the last, including
    # the part uploads made during the writes.
    assert writer.effective_rate is not None
    assert 0.9 * cap <= writer.effective_rate <= 1.1 * cap
    # End to end, the commit (last part, completion) adds time outside the
    # throttle; never above the cap, and only a little below it.
    overall = len(payload) / elapsed
    assert 0.75 * cap <= overall <= 1.1 * cap, f"{overall / MiB:.2f} MiB/s"
    assert s3.fs.cat_file(path) == payload


def _drain_through_throttle(limit: BandwidthLimit, nbytes: int) -> tuple[float, float]:
    """Runs on a Dask worker: push ``nbytes`` through a throttle to nowhere."""

    class Sink:
        def write(self, data: bytes) -> int:
            return len(data)

    writer = ThrottledWriter(Sink(), Throttle(limit))
    started = time.time()
    for _ in range(nbytes // (256 << 10)):
        writer.write(b"\0" * (256 << 10))
    return started, time.time()


def test_worker_shares_hold_the_job_cap_on_a_dask_cluster(dask_client: Any) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cap = parse_bwlimit("4MiB")
    workers = sorted(dask_client.nthreads())
    slots = sum(dask_client.nthreads().values())
    share = worker_share(cap, slots)
    futures = [
        dask_client.submit(
            _drain_through_throttle,
            share,
            6 * MiB,
            workers=[address],
            allow_other_workers=False,
            pure=False,
        )
        for address in workers
    ]
    spans = dask_client.gather(futures)
    # The tasks ran at the same time on different workers ...
    overlap = min(end for _, end in spans) - max(start for start, _ in spans)
    assert overlap > 0.5 * min(end - start for start, end in spans)
    # ... each at its share, so together at the job's cap. (Start-up skew
    # between workers is time when fewer slots send, never more.)
    rates = [6 * MiB / (end - start) for start, end in spans]
    for rate in rates:
        assert 0.9 * 4 * MiB / slots <= rate <= 1.1 * 4 * MiB / slots, rate
    assert 0.9 * 4 * MiB * len(workers) / slots <= sum(rates) <= 1.1 * 4 * MiB


@pytest.mark.slow
@pytest.mark.skipif(
    "bwlimit" not in inspect.signature(datamove.sync).parameters,
    reason="sync(bwlimit=...) is not wired yet (docs/operations.md)",
)
@pytest.mark.parametrize(
    ("workers", "cluster_above"),
    [
        pytest.param(1, None, id="in-process"),
        pytest.param(2, None, id="threads"),
        pytest.param(2, 0, id="embedded-cluster"),
    ],
)
def test_sync_under_bwlimit_to_s3_reports_the_effective_rate(
    tmp_path: Path, s3: S3Bucket, workers: int, cluster_above: int | None
) -> None:
    src = tmp_path / "src"
    generate_transactions(src, 12_000_000, files=2, seed=1)
    cap = 512 << 10
    report = datamove.sync(
        str(src),
        s3.url("data"),
        dest_options=s3.options,
        shard_size="256KiB",
        workers=workers,
        cluster_above=cluster_above,
        bwlimit="512KiB",
    )
    transfer = report.extra["transfer"]
    assert transfer["bytes_sent"] == report.bytes_written
    assert transfer["slots"] == workers
    rate = transfer["effective_bytes_per_s"]
    assert 0.9 * cap <= rate <= 1.1 * cap, f"{rate / 1024:.0f} KiB/s"
    # Over the whole phase (starting workers included) never above the cap.
    assert transfer["overall_bytes_per_s"] <= 1.1 * cap
