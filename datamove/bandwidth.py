"""Bandwidth limits: parse ``--bwlimit``, hold a rate, measure what was achieved.

A limit is a rate in bytes per second, ``off``, or a weekly timetable in
rclone's spirit: ``"08:00,20MiB 20:00,off"`` caps uploads at 20 MiB/s from
08:00 to 20:00 every day and lifts the cap overnight; ``"Mon-08:00,10M
Sat-00:00,off"`` adds weekdays. An entry holds until the next one, and the
last entry of the day (or week) carries on past midnight into the first.

The limit applies to the bytes sent to the destination: a
:class:`ThrottledWriter` sits between the Parquet bytes (after the
checksumming writer) and the store's atomic writer, and blocks in a
:class:`Throttle`, a token bucket, until the bytes may go.

One job, many workers: the limit is split statically. Each concurrent task
slot (a Dask worker thread, or the calling process) gets ``rate / slots``
through :func:`worker_share`, so the whole job never exceeds the cap without
any traffic between workers. See ``docs/operations.md`` for why this was
chosen over a budget shared through the Dask scheduler.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from datamove.errors import UsageError
from datamove.options import parse_size

log = logging.getLogger(__name__)

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
OFF_WORDS = ("off", "0", "none", "unlimited")
_WHEN = re.compile(r"^(?:(?P<day>[A-Za-z]+)-)?(?P<hour>\d{1,2}):(?P<minute>\d{2})$")
_EXAMPLE = 'write e.g. 50MiB, off, or "08:00,20MiB 20:00,off"'

Rate = float | None


@dataclass(frozen=True)
class BandwidthLimit:
    """A cap on upload bandwidth, constant or changing through the week.

    ``schedule`` holds (minute of the week from Monday 00:00, bytes per
    second or None for no cap), sorted; each entry holds until the next and
    the last wraps around to the first. An empty schedule means no cap.
    ``share`` scales every rate (a worker's part of the job's limit).
    ``timezone`` names the IANA zone whose wall clock the timetable follows;
    None follows the wall clock of whatever time it is given.
    """

    schedule: tuple[tuple[int, Rate], ...] = ()
    share: float = 1.0
    timezone: str | None = None
    text: str = "off"

    @property
    def unlimited(self) -> bool:
        """True when no entry of the schedule caps anything."""
        return all(rate is None for _, rate in self.schedule)

    @property
    def is_timetable(self) -> bool:
        return len({rate for _, rate in self.schedule}) > 1

    def zone(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None

    def now(self) -> datetime:
        """The current time on the clock the timetable follows."""
        return datetime.now(self.zone())

    def rate_at(self, when: datetime) -> Rate:
        """Bytes per second allowed at ``when``; None when nothing caps it.

        An aware ``when`` is first converted to the limit's time zone, if it
        has one; a naive one is read as wall-clock time.
        """
        if not self.schedule:
            return None
        index = self._index(self._minute_of_week(when))
        rate = self.schedule[index][1]
        return None if rate is None else rate * self.share

    def next_change(self, when: datetime) -> datetime | None:
        """The first moment after ``when`` at which the rate may change.

        None for a constant limit.
        """
        if len(self.schedule) < 2:
            return None
        local = self._local(when)
        minute = self._minute_of_week(local)
        index = self._index(minute)
        following = self.schedule[(index + 1) % len(self.schedule)][0]
        ahead = (following - minute) % MINUTES_PER_WEEK or MINUTES_PER_WEEK
        start = local.replace(second=0, microsecond=0)
        return start + timedelta(minutes=ahead)

    def scaled(self, share: float) -> BandwidthLimit:
        """The same timetable with every rate multiplied by ``share``."""
        return BandwidthLimit(
            self.schedule, self.share * share, self.timezone, self.text
        )

    def describe(self) -> str:
        """The limit as the user wrote it, with the share when split."""
        if self.share == 1.0:
            return self.text
        return f"{self.text} x {self.share:.4g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "share": self.share,
            "timezone": self.timezone,
            "schedule": [
                {"at": _format_minute(minute), "bytes_per_s": rate}
                for minute, rate in self.schedule
            ],
        }

    def _local(self, when: datetime) -> datetime:
        zone = self.zone()
        if zone is not None and when.tzinfo is not None:
            return when.astimezone(zone)
        return when

    def _minute_of_week(self, when: datetime) -> int:
        local = self._local(when)
        return local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute

    def _index(self, minute: int) -> int:
        starts = [start for start, _ in self.schedule]
        # Before the week's first entry, the week's last one still holds.
        return (bisect.bisect_right(starts, minute) - 1) % len(self.schedule)


NO_LIMIT = BandwidthLimit()


def _format_minute(minute: int) -> str:
    day, rest = divmod(minute, MINUTES_PER_DAY)
    return f"{WEEKDAYS[day].capitalize()}-{rest // 60:02d}:{rest % 60:02d}"


def _parse_rate(text: str, flag: str) -> Rate:
    if text.strip().lower() in OFF_WORDS:
        return None
    if ":" in text:
        raise UsageError(
            f"{flag}: {text!r} looks like an upload:download pair; datamove only "
            "limits uploads, so give one rate such as 20MiB"
        )
    try:
        return float(parse_size(text, flag))
    except UsageError:
        raise UsageError(f"{flag}: cannot read the rate {text!r}; {_EXAMPLE}") from None


def _parse_when(text: str, flag: str) -> tuple[int | None, int]:
    """(weekday or None for every day, minute of the day) of ``Mon-08:00``."""
    match = _WHEN.match(text.strip())
    if not match:
        raise UsageError(
            f"{flag}: cannot read the time {text!r}; write HH:MM or Day-HH:MM "
            "(Mon-08:00)"
        )
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        raise UsageError(f"{flag}: {text!r} is not a time of day (00:00 to 23:59)")
    if not match["day"]:
        return None, hour * 60 + minute
    name = match["day"].lower()
    for day, full in enumerate(DAY_NAMES):
        if len(name) >= 3 and full.startswith(name):
            return day, hour * 60 + minute
    raise UsageError(
        f"{flag}: unknown weekday {match['day']!r} in {text!r}; use Mon, Tue, "
        "Wed, Thu, Fri, Sat or Sun"
    )


def parse_bwlimit(
    text: str, flag: str = "--bwlimit", timezone: str | None = None
) -> BandwidthLimit:
    """Parse a bandwidth limit: a rate, ``off`` or a timetable.

    Rates use :func:`~datamove.options.parse_size` units per second (a bare
    ``M`` is MiB, as in rclone). A timetable is space-separated
    ``HH:MM,RATE`` or ``Day-HH:MM,RATE`` entries; entries for every day
    apply to each weekday unless a weekday entry at the same time says
    otherwise.

    Args:
        text: what the user wrote.
        flag: the option name used in error messages.
        timezone: IANA zone whose wall clock a timetable follows; None
            follows the clock of the machine evaluating it.

    Returns:
        The parsed :class:`BandwidthLimit`.

    Raises:
        UsageError: the text, a time, a rate or the time zone is invalid.
    """
    entries = text.split()
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(
                f"{flag}: unknown time zone {timezone!r}; use an IANA name such "
                "as Europe/Paris"
            ) from None
    if not entries:
        raise UsageError(f"{flag}: empty value; {_EXAMPLE}")
    if len(entries) == 1 and "," not in entries[0]:
        rate = _parse_rate(entries[0], flag)
        constant: tuple[tuple[int, Rate], ...] = () if rate is None else ((0, rate),)
        return BandwidthLimit(constant, 1.0, timezone, entries[0])

    daily: dict[int, Rate] = {}
    weekly: dict[int, Rate] = {}
    for entry in entries:
        when, comma, rate_text = entry.partition(",")
        if not comma:
            raise UsageError(
                f"{flag}: timetable entry {entry!r} lacks a rate; {_EXAMPLE}"
            )
        day, minute = _parse_when(when, flag)
        rate = _parse_rate(rate_text, flag)
        target, key = (
            (daily, minute) if day is None else (weekly, day * MINUTES_PER_DAY + minute)
        )
        if key in target:
            raise UsageError(f"{flag}: {when!r} appears twice in the timetable")
        target[key] = rate
    expanded = {
        day * MINUTES_PER_DAY + minute: rate
        for day in range(7)
        for minute, rate in daily.items()
    }
    expanded.update(weekly)
    schedule = tuple(sorted(expanded.items()))
    return BandwidthLimit(schedule, 1.0, timezone, " ".join(entries))


def local_timezone() -> str | None:
    """The IANA name of this machine's time zone, when it can be found.

    Used to pin a timetable to the clock of the machine that started the
    run, so that workers elsewhere switch rates at the same moments.
    """
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:  # pragma: no cover - no such file on this platform
        target = ""
    if "zoneinfo/" in target:
        candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        if not name:
            continue
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return None


def worker_share(limit: BandwidthLimit, slots: int) -> BandwidthLimit:
    """The part of ``limit`` each of ``slots`` concurrent tasks may use.

    ``slots`` is how many units can run at once: the Dask cluster's total
    worker threads, capped by the number of units to write (1 in process).
    Every slot gets ``rate / slots``, so all together stay under the cap.
    """
    return limit.scaled(1.0 / max(1, slots))


@dataclass(frozen=True)
class ThrottleStats:
    """What passed through a throttle: bytes, seconds between the first and
    the end of the last request, and seconds spent waiting."""

    bytes: int = 0
    elapsed_s: float = 0.0
    waited_s: float = 0.0

    @property
    def rate(self) -> float | None:
        """Effective bytes per second, None before anything passed."""
        return effective_rate(self.bytes, self.elapsed_s)


def effective_rate(nbytes: int, seconds: float) -> float | None:
    """Bytes per second actually achieved; None when no time has passed."""
    if seconds <= 0:
        return None
    return nbytes / seconds


class SendWindow:
    """When a task slot was sending: its first shard byte to its last commit.

    :class:`ThrottledWriter` marks it as bytes go; the shard writer marks it
    once more after each commit. Wall-clock seconds (``time.time``), so the
    windows of several workers can be laid side by side;
    :func:`sending_seconds` joins them.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.start: float | None = None
        self.end: float | None = None

    def mark(self) -> None:
        """Note that bytes were sent (or a shard committed) just now."""
        now = self._clock()
        if self.start is None:
            self.start = now
        self.end = now

    def span(self) -> tuple[float, float] | None:
        """(start, end), or None when nothing was sent."""
        if self.start is None or self.end is None:
            return None
        return self.start, self.end


class Throttle:
    """A thread-safe token bucket that follows a :class:`BandwidthLimit`.

    Tokens are bytes; they accrue at the rate in force and are capped at
    ``burst_s`` seconds' worth, so a pause of up to that long (an upload
    request, encoding a row group) is made up afterwards while the average
    holds the cap. The bucket starts empty. :meth:`consume` takes its
    tokens at once, going into debt when there are too few, and sleeps
    outside the lock until the debt would be paid: concurrent callers
    queue fairly in the order they asked.

    ``window`` records when this throttle's slot was sending, for the
    run's effective rate. ``clock`` (monotonic seconds), ``now`` (the
    wall-clock time the timetable is read at) and ``sleep`` are injectable
    for tests.
    """

    def __init__(
        self,
        limit: BandwidthLimit,
        *,
        burst_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self._burst_s = burst_s
        self.clock = clock
        self._now = now or limit.now
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._updated: float | None = None
        self._rate: Rate = None
        self._bytes = 0
        self._waited = 0.0
        self._first: float | None = None
        self._last = 0.0
        self.window = SendWindow()

    def current_rate(self) -> Rate:
        """The rate in force now (None: no cap)."""
        return self.limit.rate_at(self._now())

    def consume(self, nbytes: int) -> float:
        """Take ``nbytes`` of tokens, blocking until they are paid for.

        Returns the seconds this call slept.
        """
        if nbytes <= 0:
            return 0.0
        with self._lock:
            started = self.clock()
            if self._first is None:
                self._first = started
            wait = self._reserve(started, self.current_rate(), nbytes)
            self._bytes += nbytes
        if wait > 0:
            self._sleep(wait)
        with self._lock:
            self._waited += wait
            self._last = max(self._last, self.clock())
        return wait

    def _reserve(self, now: float, rate: Rate, nbytes: int) -> float:
        if rate is None:
            # No cap: forget any debt; a cap starting later starts empty.
            self._tokens, self._updated, self._rate = 0.0, None, None
            return 0.0
        if self._updated is not None and self._rate is not None:
            earned = (now - self._updated) * self._rate
            self._tokens = min(self._tokens + earned, rate * self._burst_s)
        self._updated, self._rate = now, rate
        self._tokens -= nbytes
        return -self._tokens / rate if self._tokens < 0 else 0.0

    def stats(self) -> ThrottleStats:
        """Bytes passed, seconds from the first request to the end of the
        last, and seconds slept."""
        with self._lock:
            elapsed = 0.0 if self._first is None else self._last - self._first
            return ThrottleStats(self._bytes, max(elapsed, 0.0), self._waited)


_PER_THREAD = threading.local()


def throttle_for(limit: BandwidthLimit, run_id: str = "") -> Throttle:
    """The calling thread's throttle for ``limit`` in run ``run_id``.

    A task slot is a thread (a Dask worker thread, or the calling thread in
    process), and its share of the limit is for all the units it runs. One
    bucket per thread carries its tokens from one unit to the next, so the
    pause between units (the receipt, reading the next piece) is made up
    like any other pause instead of each unit starting empty; its
    :class:`SendWindow` spans the slot's sending in the run. A new run (or
    limit) starts a new throttle.
    """
    key = (limit, run_id)
    current: tuple[tuple[BandwidthLimit, str], Throttle] | None = getattr(
        _PER_THREAD, "current", None
    )
    if current is None or current[0] != key:
        current = (key, Throttle(limit))
        _PER_THREAD.current = current
    return current[1]


class ThrottledWriter:
    """A write-only file object that paces bytes through a :class:`Throttle`.

    Wrap the store's atomic writer with it, under the checksumming writer:
    ``HashingWriter(ThrottledWriter(atomic_writer, throttle))``. Large
    writes are cut into pieces of about a quarter second at the rate in
    force (16 KiB to 1 MiB) so the stream stays smooth and a timetable
    change takes effect within one piece. Committing and aborting stay with
    the wrapped writer's owner.
    """

    MIN_PIECE = 16 << 10
    MAX_PIECE = 1 << 20

    def __init__(self, target: Any, throttle: Throttle) -> None:
        self._target = target
        self.throttle = throttle
        self.bytes_written = 0
        self.closed = False
        self._started: float | None = None
        self._finished = 0.0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        # Stores checksum what they get; some checksummers take bytes only.
        payload = data if isinstance(data, bytes) else bytes(data)
        total = len(payload)
        clock = self.throttle.clock
        if self._started is None:
            self._started = clock()
        window = self.throttle.window
        window.mark()  # waiting for tokens is part of sending
        offset = 0
        while offset < total:
            rate = self.throttle.current_rate()
            if rate is None:
                piece = total - offset
            else:
                piece = int(min(max(rate / 4, self.MIN_PIECE), self.MAX_PIECE))
            chunk = payload if piece >= total else payload[offset : offset + piece]
            self.throttle.consume(len(chunk))
            self._target.write(chunk)
            offset += len(chunk)
            window.mark()
        self.bytes_written += total
        self._finished = clock()
        return total

    @property
    def effective_rate(self) -> float | None:
        """Bytes per second from the first write to the end of the last."""
        if self._started is None:
            return None
        return effective_rate(self.bytes_written, self._finished - self._started)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.bytes_written

    def close(self) -> None:
        # The wrapped writer is committed or aborted by its owner.
        self.closed = True


def sending_seconds(windows: Iterable[tuple[float, float]]) -> float:
    """The length of the union of send windows: time when anything was sent."""
    total = 0.0
    current: tuple[float, float] | None = None
    for start, end in sorted(windows):
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    if current is not None:
        total += current[1] - current[0]
    return total


@dataclass(frozen=True)
class TransferSummary:
    """The bandwidth part of a run's report.

    ``sending_s`` is the time during which some slot was sending (each
    slot's first shard byte to its last commit, joined across slots);
    ``wall_s`` is the whole execution phase, which adds starting workers and
    reading before the first byte. The effective rate is over ``sending_s``.
    """

    bwlimit: str
    slots: int
    bytes_sent: int
    sending_s: float
    wall_s: float
    cap_at_start: Rate = None

    @property
    def effective_rate(self) -> float | None:
        return effective_rate(self.bytes_sent, self.sending_s)

    def to_dict(self) -> dict[str, Any]:
        rate = self.effective_rate
        overall = effective_rate(self.bytes_sent, self.wall_s)
        return {
            "bwlimit": self.bwlimit,
            "slots": self.slots,
            "bytes_sent": self.bytes_sent,
            "sending_s": round(self.sending_s, 3),
            "wall_s": round(self.wall_s, 3),
            "effective_bytes_per_s": None if rate is None else round(rate, 1),
            "overall_bytes_per_s": None if overall is None else round(overall, 1),
            "cap_bytes_per_s_at_start": self.cap_at_start,
        }


def transfer_summary(
    limit: BandwidthLimit,
    bytes_sent: int,
    wall_s: float,
    slots: int,
    windows: Iterable[tuple[float, float]] = (),
    started: datetime | None = None,
) -> TransferSummary:
    """The report entry of a run: the limit, bytes sent and the rate achieved.

    Args:
        limit: the run's limit (as given, not a worker's share).
        bytes_sent: bytes of the shards written.
        wall_s: seconds of the execution phase.
        slots: task slots the limit was split over.
        windows: the :meth:`SendWindow.span` each unit reported (its slot's
            window so far); without them the sending time is the whole phase.
        started: when the phase began, to name the cap then in force.
    """
    spans = list(windows)
    return TransferSummary(
        bwlimit=limit.describe(),
        slots=slots,
        bytes_sent=bytes_sent,
        sending_s=sending_seconds(spans) if spans else wall_s,
        wall_s=wall_s,
        cap_at_start=limit.rate_at(started or limit.now()),
    )
