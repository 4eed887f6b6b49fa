"""Estimates before moving: bytes, objects, requests, duration and the bill.

Everything is derived from a :class:`~datamove.planner.Plan`, which already
knows each unit's input bytes and, per source file, the Parquet bytes per
input byte measured on a sample (``FileState.ratio``):

* bytes to write = sum over units of input bytes x ratio. Two kinds of file
  are corrected when the source can be read, because their sampled ratio is
  not per byte of the file: compressed text (the ratio is per decompressed
  byte; the expansion is measured on the head of up to
  :data:`CORRECTION_FILES` files of each kind) and Parquet (the ratio is 1;
  the first row group is re-encoded with the output codec);
* shards: a text unit's expected output is spread over
  ``max(1, round(output / shard size))`` shards, as the shard writer does;
  a Parquet, Arrow or ORC unit writes one (its piece is about one shard of
  whole row groups, and the writer never splits a row group);
* requests: per shard the upload requests of the destination's adapter
  (single PUT, or multipart/resumable/block parts) plus the HEAD that checks
  the commit; state objects (journal, receipts, manifest, run record, the
  write probe) one PUT each; listings of the planning and clean-up steps;
* duration: bytes to write at the bandwidth given, measured
  (:func:`measure_upload_rate`) or assumed (:data:`ASSUMED_BANDWIDTH`),
  under the ``--bwlimit`` timetable if any, walked from the start time;
* first month's bill: storage of everything at the destination after the
  run, plus the requests, from the editable price table
  (:func:`~datamove.tiering.prices.load_prices`). Uploads into a cloud are
  free of transfer charges at all three providers, so none are added.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from datamove.bandwidth import NO_LIMIT, BandwidthLimit
from datamove.errors import DatamoveError, UsageError
from datamove.formats import repetitive_columns
from datamove.inventory import STATE_DIR, SourceFile
from datamove.planner import Plan, Unit
from datamove.storage import Location
from datamove.stores.base import WriteOptions
from datamove.tiering.prices import GB, PriceTable, load_prices, provider_for_protocol

log = logging.getLogger(__name__)

MiB = 1 << 20
# 1 Gbit/s, a common on-premises uplink, when nothing better is known.
ASSUMED_BANDWIDTH = 125_000_000.0
CORRECTION_FILES = 8
SAMPLE_BYTES = 4 * MiB
DEFAULT_CLASSES = {"s3": "STANDARD", "gcs": "STANDARD", "azure": "Hot"}
LIST_PAGE = {"s3": 1000, "gcs": 1000, "azure": 5000}
# Sizes of state objects, measured on receipts and manifests datamove wrote.
RECEIPT_BYTES = 700
RECEIPT_BYTES_PER_SHARD = 250
MANIFEST_BYTES_PER_FILE = 1200
STATE_FIXED_BYTES = 4096


@dataclass(frozen=True)
class Requests:
    """Requests a run sends to the destination, by how they are billed."""

    put: int = 0
    get: int = 0
    list: int = 0
    delete: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "put": self.put,
            "get": self.get,
            "list": self.list,
            "delete": self.delete,
        }


@dataclass(frozen=True)
class Bill:
    """The first month at the destination, in the price table's currency."""

    currency: str
    provider: str
    region: str
    storage_class: str
    storage: float
    requests: float
    monitoring: float = 0.0
    prices_as_of: str = ""
    price_source: str = ""

    @property
    def total(self) -> float:
        return self.storage + self.requests + self.monitoring

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "provider": self.provider,
            "region": self.region,
            "storage_class": self.storage_class,
            "storage": round(self.storage, 6),
            "requests": round(self.requests, 6),
            "monitoring": round(self.monitoring, 6),
            "total": round(self.total, 6),
            "prices_as_of": self.prices_as_of,
            "price_source": self.price_source,
        }


@dataclass(frozen=True)
class Estimate:
    """What a plan will cost in bytes, objects, requests, time and money."""

    source: str
    dest: str
    units: int
    bytes_to_read: int
    bytes_to_write: int
    shards_to_write: int
    shards_exact: bool
    shards_kept: int
    bytes_kept: int
    state_objects: int
    state_bytes: int
    objects_after: int
    bytes_after: int
    requests: Requests
    bandwidth: float
    bandwidth_source: str
    bwlimit: str
    duration_s: float
    bill: Bill | None
    assumptions: tuple[str, ...] = field(default=())

    @property
    def objects_to_write(self) -> int:
        return self.shards_to_write + self.state_objects

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dest": self.dest,
            "units": self.units,
            "bytes_to_read": self.bytes_to_read,
            "bytes_to_write": self.bytes_to_write,
            "shards_to_write": self.shards_to_write,
            "shards_exact": self.shards_exact,
            "shards_kept": self.shards_kept,
            "bytes_kept": self.bytes_kept,
            "state_objects": self.state_objects,
            "state_bytes": self.state_bytes,
            "objects_to_write": self.objects_to_write,
            "objects_after": self.objects_after,
            "bytes_after": self.bytes_after,
            "requests": self.requests.to_dict(),
            "bandwidth_bytes_per_s": self.bandwidth,
            "bandwidth_source": self.bandwidth_source,
            "bwlimit": self.bwlimit,
            "duration_s": round(self.duration_s, 1),
            "bill": None if self.bill is None else self.bill.to_dict(),
            "assumptions": list(self.assumptions),
        }

    def lines(self) -> list[str]:
        """The estimate as short lines of text, for ``datamove plan``."""
        shards = f"{self.shards_to_write}" + ("" if self.shards_exact else " (about)")
        lines = [
            f"read {_size(self.bytes_to_read)}, write about "
            f"{_size(self.bytes_to_write)} in {shards} shards "
            f"(+{self.state_objects} state objects)",
            f"requests: {self.requests.put} PUT, {self.requests.get} GET/HEAD, "
            f"{self.requests.list} LIST, {self.requests.delete} DELETE",
            f"duration: about {_duration(self.duration_s)} at "
            f"{_size(self.bandwidth)}/s ({self.bandwidth_source})"
            + (f", --bwlimit {self.bwlimit}" if self.bwlimit != "off" else ""),
        ]
        if self.bill is not None:
            bill = self.bill
            lines.append(
                f"first month: {_money(bill.total)} {bill.currency} "
                f"(storage {_money(bill.storage)}, requests {_money(bill.requests)}"
                + (f", monitoring {_money(bill.monitoring)}" if bill.monitoring else "")
                + f"; {bill.provider} {bill.region} {bill.storage_class}, "
                f"prices as of {bill.prices_as_of})"
            )
        lines.extend(f"assumption: {text}" for text in self.assumptions)
        return lines


def _size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover - loop always returns


def _money(amount: float) -> str:
    """Two decimals, or enough significant digits to show a small amount."""
    return f"{amount:.2f}" if amount >= 1 or amount == 0 else f"{amount:.2g}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --- requests per object --------------------------------------------------------


def upload_requests(provider: str | None, size: int, part_size: int) -> int:
    """Write requests the destination's adapter sends to upload one object.

    S3: one ``PutObject`` below one part, else create + parts + complete.
    GCS: one multipart POST below one chunk (plus the 256 KiB kept back),
    else start + chunks + final PUT. Azure: one ``Put Blob`` below one
    block, else ``Put Block`` per block + ``Put Block List``. Other stores: 1.
    """
    if provider == "s3":
        part = max(part_size, 5 * MiB)
        return 1 if size < part else math.ceil(size / part) + 2
    if provider == "gcs":
        unit = 256 << 10
        chunk = max(unit, part_size // unit * unit)
        return 1 if size < chunk + unit else (size - unit) // chunk + 2
    if provider == "azure":
        block = min(max(part_size, MiB), 4000 * MiB)
        return 1 if size < block else math.ceil(size / block) + 1
    return 1


# --- correcting the sampled ratios -----------------------------------------------


def _expansion(fs: Any, file: SourceFile) -> float:
    """Decompressed bytes per compressed byte at the head of ``file``."""
    with fs.open(file.path, "rb") as raw:
        stream = pa.CompressedInputStream(
            pa.PythonFile(raw, mode="r"), file.format.compression
        )
        data = stream.read(SAMPLE_BYTES)
        consumed = file.size if len(data) < SAMPLE_BYTES else raw.tell()
    return len(data) / max(consumed, 1)


def _reencoding(fs: Any, file: SourceFile, compression: str) -> float:
    """Output bytes per file byte for the head of a Parquet file."""
    with fs.open(file.path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        if parquet.metadata.num_row_groups == 0:
            return 1.0
        group = parquet.metadata.row_group(0)
        stored = sum(
            int(group.column(i).total_compressed_size) for i in range(group.num_columns)
        )
        group_rows = int(group.num_rows)
        batches: list[pa.RecordBatch] = []
        rows = held = 0
        for batch in parquet.iter_batches(row_groups=[0], batch_size=16_384):
            batches.append(batch)
            rows += batch.num_rows
            held += batch.nbytes
            if held >= SAMPLE_BYTES:
                break
    if rows == 0:
        return 1.0
    sink = pa.BufferOutputStream()
    table = pa.Table.from_batches(batches)
    pq.write_table(
        table,
        sink,
        compression=compression,
        use_dictionary=repetitive_columns(table),
    )
    encoded = int(sink.getvalue().size)
    return encoded / max(stored * rows / max(group_rows, 1), 1)


def measure_corrections(
    plan: Plan, source_options: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """Factors that turn a file's sampled ratio into output per file byte.

    Compressed text and Parquet files are sampled, up to
    :data:`CORRECTION_FILES` of the largest of each kind; the mean factor of
    a kind applies to all its files. Other files get no entry (factor 1),
    and so do the files of a kind none of whose samples could be read (a
    warning names each file that could not). Reads up to
    :data:`SAMPLE_BYTES` of each sampled file.

    Raises:
        UsageError: the source URL cannot be opened.
    """
    source = Location.parse(plan.source, source_options)
    compression = str(plan.config.get("compression") or "zstd")
    kinds: dict[str, list[SourceFile]] = {}
    for file in plan.inventory.files:
        if file.format.is_text and file.format.compression:
            kinds.setdefault(f"text+{file.format.compression}", []).append(file)
        elif file.format.name == "parquet":
            kinds.setdefault("parquet", []).append(file)
    factors: dict[str, float] = {}
    for kind, files in kinds.items():
        largest = sorted(files, key=lambda f: f.size, reverse=True)[:CORRECTION_FILES]
        measured = []
        for file in largest:
            try:
                if kind == "parquet":
                    measured.append(_reencoding(source.fs, file, compression))
                else:
                    measured.append(_expansion(source.fs, file))
            except (OSError, ValueError, pa.ArrowException) as error:
                log.warning(
                    "%s: not sampled for the estimate (%s)",
                    file.relpath,
                    type(error).__name__,
                )
        if not measured:
            continue
        mean = sum(measured) / len(measured)
        log.debug("%s: %s files: output factor %.3f", plan.source, kind, mean)
        factors.update({f.relpath: mean for f in files})
    return factors


# --- the estimate -------------------------------------------------------------------


def _unit_output(plan: Plan, unit: Unit, factors: Mapping[str, float]) -> float:
    state = plan.files.get(unit.piece.relpath)
    ratio = state.ratio if state is not None else 1.0
    return unit.input_bytes * ratio * factors.get(unit.piece.relpath, 1.0)


def _shard_count(unit: Unit, output: float, shard_size: int) -> int:
    """Shards the writer makes of one unit when nothing is partitioned.

    Text is spread evenly over whole shards of about the target size.
    Parquet, Arrow and ORC pieces are cut at row groups, batches or stripes
    to about one shard each, and the writer never splits a row group.
    """
    if not unit.piece.format.is_text:
        return 1
    return max(1, round(output / shard_size))


def transfer_seconds(
    nbytes: float, link: float, limit: BandwidthLimit, start: datetime
) -> float:
    """Seconds to send ``nbytes`` at ``link`` bytes/s under ``limit``, from ``start``.

    A timetable is walked segment by segment (whole weeks at once when the
    transfer spans many), each at the lower of the link and the cap.
    """
    if nbytes <= 0:
        return 0.0
    if not limit.is_timetable:
        cap = limit.rate_at(start)
        return nbytes / min(link, cap if cap is not None else link)
    remaining, now, elapsed = nbytes, start, 0.0
    week = timedelta(days=7)
    per_week = _bytes_between(link, limit, start, start + week)
    if per_week > 0 and remaining > 2 * per_week:
        whole = int(remaining // per_week) - 1
        remaining -= whole * per_week
        elapsed += whole * week.total_seconds()
        now += whole * week
    while remaining > 0:
        change = limit.next_change(now) or now + week
        span = (change - now).total_seconds()
        cap = limit.rate_at(now)
        rate = min(link, cap if cap is not None else link)
        if rate * span >= remaining:
            return elapsed + remaining / rate
        remaining -= rate * span
        elapsed += span
        now = change
    return elapsed


def _bytes_between(
    link: float, limit: BandwidthLimit, start: datetime, end: datetime
) -> float:
    total, now = 0.0, start
    while now < end:
        change = min(limit.next_change(now) or end, end)
        cap = limit.rate_at(now)
        total += (
            min(link, cap if cap is not None else link) * (change - now).total_seconds()
        )
        now = change
    return total


def estimate_plan(
    plan: Plan,
    *,
    part_size: int = 16 * MiB,
    bandwidth: float | None = None,
    bandwidth_source: str | None = None,
    bwlimit: BandwidthLimit | None = None,
    start: datetime | None = None,
    storage_class: str | None = None,
    region: str | None = None,
    prices: PriceTable | None = None,
    price_file: str | None = None,
    corrections: Mapping[str, float] | None = None,
) -> Estimate:
    """Estimate what executing ``plan`` will move, send and cost.

    Args:
        plan: from :func:`datamove.plan`.
        part_size: the sync's ``--part-size``; decides multipart requests.
        bandwidth: uplink bytes per second; None assumes
            :data:`ASSUMED_BANDWIDTH`.
        bandwidth_source: how ``bandwidth`` was obtained (``given``,
            ``measured``); recorded with the estimate.
        bwlimit: the run's ``--bwlimit``; its timetable is walked from
            ``start`` (default: now, on the limit's clock).
        storage_class: the class shards are written in; None for the
            provider's default class.
        region: the price table region; None for the provider's default.
        prices, price_file: a loaded table, or a user file laid over the
            packaged one; with neither, the packaged table.
        corrections: from :func:`measure_corrections`; without them,
            compressed text and Parquet files use their sampled ratio as is.

    Returns:
        The :class:`Estimate`; ``bill`` is None for destinations without a
        price (local paths, unknown protocols).

    Raises:
        UsageError: the region or storage class has no price in the table,
            or the price file is invalid.
    """
    factors = dict(corrections or {})
    limit = bwlimit or NO_LIMIT
    provider = provider_for_protocol(fsspec.core.split_protocol(plan.dest)[0] or "file")
    shard_size = int(plan.config.get("shard_size") or 128 * MiB)
    partitioned = bool(plan.config.get("partition_by"))

    outputs = [_unit_output(plan, unit, factors) for unit in plan.to_write]
    counts = [
        _shard_count(unit, output, shard_size)
        for unit, output in zip(plan.to_write, outputs, strict=True)
    ]
    # Per unit: the mean size of its shards, and how many.
    shards = [(o / n, n) for o, n in zip(outputs, counts, strict=True)]
    state = _state_objects(plan, counts)
    requests = _requests(plan, provider, shards, state, part_size)
    bytes_to_write = round(sum(outputs))

    assumptions: list[str] = []
    link = bandwidth if bandwidth is not None else ASSUMED_BANDWIDTH
    if bandwidth is None:
        assumptions.append(
            f"uplink of {ASSUMED_BANDWIDTH * 8 / 1e9:.0f} Gbit/s assumed; pass the "
            "measured or known bandwidth for a better duration"
        )
    assumptions.append(
        "duration counts the upload only; reading and encoding on few cores "
        "can make a run slower"
    )
    duration = transfer_seconds(
        bytes_to_write + state.bytes, link, limit, start or limit.now()
    )
    assumptions.extend(_ratio_notes(plan, factors))
    if partitioned:
        assumptions.append(
            "--partition-by: each unit writes at least one shard per partition "
            "value it holds; the shard count is a lower bound"
        )

    bill = None
    if provider is not None:
        table = prices or load_prices(price_file)
        bill = _bill(
            table,
            provider,
            region,
            storage_class,
            shards,
            plan,
            state,
            requests,
            part_size,
        )
        if provider == "gcs":
            assumptions.append(
                "GCS requests are counted per HTTP request of a resumable upload; "
                "the bill may count fewer"
            )
    else:
        assumptions.append(f"{plan.dest}: no price for this kind of destination")

    shards_written = sum(counts)
    shards_kept = sum(len(r.shards) for r in plan.to_keep)
    bytes_kept = sum(s.size for r in plan.to_keep for s in r.shards)
    return Estimate(
        source=plan.source,
        dest=plan.dest,
        units=len(plan.to_write),
        bytes_to_read=plan.bytes_to_read,
        bytes_to_write=bytes_to_write,
        shards_to_write=shards_written,
        shards_exact=not partitioned
        and all(output < 1.5 * shard_size for output in outputs),
        shards_kept=shards_kept,
        bytes_kept=bytes_kept,
        state_objects=state.written,
        state_bytes=state.bytes,
        objects_after=shards_kept + shards_written + state.after,
        bytes_after=bytes_kept + bytes_to_write + state.bytes,
        requests=requests,
        bandwidth=link,
        bandwidth_source=bandwidth_source
        or ("given" if bandwidth is not None else "assumed"),
        bwlimit=limit.describe(),
        duration_s=duration,
        bill=bill,
        assumptions=tuple(assumptions),
    )


@dataclass(frozen=True)
class _State:
    """The state objects a run writes, and those left after it."""

    written: int
    bytes: int
    after: int


def _state_objects(plan: Plan, counts: Sequence[int]) -> _State:
    if not plan.to_write:
        return _State(0, 0, len(plan.to_keep) + (1 if plan.to_keep else 0))
    receipts = sum(RECEIPT_BYTES + RECEIPT_BYTES_PER_SHARD * n for n in counts)
    kept = sum(
        RECEIPT_BYTES + RECEIPT_BYTES_PER_SHARD * len(r.shards) for r in plan.to_keep
    )
    manifest = (
        STATE_FIXED_BYTES
        + receipts
        + kept
        + MANIFEST_BYTES_PER_FILE * len(plan.inventory.files)
    )
    # Written: journal, a receipt per unit, manifest, run record. Left after:
    # every unit's receipt, the manifest and this run's record.
    units = len(plan.to_write) + len(plan.to_keep)
    return _State(
        written=len(plan.to_write) + 3,
        bytes=receipts + manifest + 2 * STATE_FIXED_BYTES,
        after=units + 2,
    )


def _requests(
    plan: Plan,
    provider: str | None,
    shards: Sequence[tuple[float, int]],
    state: _State,
    part_size: int,
) -> Requests:
    puts = sum(
        count * upload_requests(provider, int(size), part_size)
        for size, count in shards
    )
    gets = sum(count for _, count in shards)  # the HEAD checking each commit
    deletes = sum(len(r.shards) + 1 for r in plan.to_delete) + len(plan.orphans)
    if plan.to_write:
        puts += state.written + 1  # and the write probe
        gets += 1  # the manifest
        deletes += 2  # the probe and the journal
    kept = sum(len(r.shards) for r in plan.to_keep)
    listed = kept + sum(n for _, n in shards) + state.after + len(plan.orphans)
    # Receipts, journals (planning and clean-up) and the data, page by page.
    lists = 3 + math.ceil(listed / LIST_PAGE.get(provider or "", 1000))
    if provider == "s3":
        lists += 1  # interrupted multipart uploads
    return Requests(put=puts, get=gets, list=lists, delete=deletes)


def _ratio_notes(plan: Plan, factors: Mapping[str, float]) -> list[str]:
    notes: list[str] = []
    formats = {unit.piece.format for unit in plan.to_write}
    uncorrected = sorted(
        {
            str(fmt)
            for fmt in formats
            if (fmt.compression and fmt.is_text) or fmt.name == "parquet"
        }
        - {str(file.format) for file in plan.inventory.files if file.relpath in factors}
    )
    if uncorrected:
        notes.append(
            f"{', '.join(uncorrected)} files: output estimated from the sampled "
            "ratio without reading them again; pass the source options for a "
            "measured correction"
        )
    unmeasured = sorted({fmt.name for fmt in formats if fmt.name in ("arrow", "orc")})
    if unmeasured:
        notes.append(
            f"{', '.join(unmeasured)} files: compression ratio not sampled "
            "(0.3 assumed)"
        )
    return notes


def _bill(
    table: PriceTable,
    provider: str,
    region: str | None,
    storage_class: str | None,
    shards: Sequence[tuple[float, int]],
    plan: Plan,
    state: _State,
    requests: Requests,
    part_size: int,
) -> Bill:
    chosen_region = table.region_for(provider, region)
    default = table.price(provider, chosen_region, DEFAULT_CLASSES[provider])
    price = table.price(
        provider, chosen_region, storage_class or DEFAULT_CLASSES[provider]
    )
    billable = sum(price.billable_bytes(int(size)) * n for size, n in shards)
    billable += sum(
        price.billable_bytes(shard.size) for r in plan.to_keep for shard in r.shards
    )
    storage = billable / GB * price.storage_gb_month
    storage += state.bytes / GB * default.storage_gb_month

    shard_puts = sum(
        n * upload_requests(provider, int(size), part_size) for size, n in shards
    )
    cost = (
        shard_puts * price.put_per_1000
        + (requests.put - shard_puts) * default.put_per_1000
        # LIST is billed as a write (S3 LIST, GCS Class A, Azure list).
        + requests.list * default.put_per_1000
        + requests.get * default.get_per_1000
    ) / 1000

    monitoring = 0.0
    automatic = table.automatic_for(provider, chosen_region)
    if (
        automatic is not None
        and automatic.storage_class is not None
        and automatic.storage_class.casefold() == price.storage_class.casefold()
    ):
        monitored = sum(
            n for size, n in shards if size >= automatic.min_monitored_bytes
        )
        monitoring = monitored * automatic.monitoring_per_1000_objects / 1000
    return Bill(
        currency=table.currency,
        provider=provider,
        region=chosen_region,
        storage_class=price.storage_class,
        storage=storage,
        requests=cost,
        monitoring=monitoring,
        prices_as_of=price.as_of.isoformat(),
        price_source=price.source,
    )


# --- bandwidth probe and comparison -------------------------------------------------


def measure_upload_rate(
    dest: str,
    dest_options: Mapping[str, Any] | None = None,
    size: int = 8 * MiB,
) -> float:
    """Upload ``size`` random bytes to ``dest/_datamove/`` and time it.

    The probe object is deleted afterwards. This writes to the destination,
    so it runs only when asked for (``datamove plan --measure-bandwidth``).

    Returns:
        Bytes per second of the upload, commit included.

    Raises:
        StorageError: the destination cannot be written.
    """
    location = Location.parse(dest, dest_options)
    relative = f"{STATE_DIR}/probe-bandwidth-{secrets.token_hex(4)}"
    payload = secrets.token_bytes(size)
    writer = location.adapter.open_write(
        location.fs,
        location.path(relative),
        WriteOptions(content_type="application/octet-stream"),
    )
    started = time.monotonic()
    try:
        for offset in range(0, size, MiB):
            writer.write(payload[offset : offset + MiB])
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    elapsed = time.monotonic() - started
    try:
        location.fs.rm_file(location.path(relative))
    except (OSError, DatamoveError) as error:
        log.warning(
            "%s: could not delete the bandwidth probe (%s); delete it by hand",
            location.display(relative),
            type(error).__name__,
        )
    rate = size / max(elapsed, 1e-6)
    log.info("%s: upload probe: %.1f MiB/s", location.url, rate / MiB)
    return rate


_COMPARED = (
    ("bytes_to_read", "bytes_read"),
    ("bytes_to_write", "bytes_written"),
    ("shards_to_write", "shards_written"),
    ("units", "units_written"),
    ("duration_s", "duration_s"),
)


def compare(estimate: Estimate, report: Mapping[str, Any]) -> dict[str, Any]:
    """Set an estimate beside what a run did, for the run's report.

    ``report`` is :meth:`SyncReport.to_dict` of the run. Each entry holds
    the estimate, the actual value and the relative error
    ``(actual - estimated) / estimated`` (None when nothing was estimated).

    Raises:
        UsageError: ``report`` lacks a field that is compared.
    """
    planned = estimate.to_dict()
    result: dict[str, Any] = {}
    for estimated_key, actual_key in _COMPARED:
        if actual_key not in report:
            raise UsageError(
                f"compare: the run report has no {actual_key!r}; pass "
                "SyncReport.to_dict() of the run"
            )
        estimated = float(planned[estimated_key])
        actual = float(report[actual_key])
        error = None if estimated == 0 else round((actual - estimated) / estimated, 4)
        result[actual_key] = {
            "estimated": planned[estimated_key],
            "actual": report[actual_key],
            "error": error,
        }
    if estimate.bill is not None:
        result["bill"] = estimate.bill.to_dict()
    return result
