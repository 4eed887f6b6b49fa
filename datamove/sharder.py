"""Sharding: execute one unit, streaming its piece into Parquet shards.

A unit reads its piece batch by batch, optionally transforms the batches
(anonymization), and writes Parquet shards of about the target size through
the destination's atomic writer, computing each shard's CRC32C from the
bytes as they pass. Only after every shard of the unit is committed (and the
size and checksum the store reports match) is the unit's receipt written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamove.bandwidth import BandwidthLimit, Throttle, ThrottledWriter, throttle_for
from datamove.checksum import HashingWriter
from datamove.errors import (
    ChecksumMismatchError,
    DatamoveError,
    InputError,
    StorageError,
)
from datamove.files import (
    DEFAULT_BATCH_BYTES,
    FILE_SCHEMA,
    blob_name,
    file_batches,
    store_large_file,
)
from datamove.formats import (
    TEXT_BLOCK,
    BadRows,
    RowTooLongError,
    read_piece,
    repetitive_columns,
)
from datamove.inventory import file_mtime as _mtime
from datamove.options import SyncOptions
from datamove.planner import Member, Unit
from datamove.retry import RetryLog, RetryPolicy, call_with_retry
from datamove.schema import schema_from_json
from datamove.state import ShardReceipt, UnitReceipt, object_version, write_receipt
from datamove.storage import Location
from datamove.stores.base import AtomicWriter, WriteOptions

log = logging.getLogger(__name__)

BatchTransform = Callable[[pa.RecordBatch], pa.RecordBatch]
# Called as a unit advances with (rows so far, input bytes so far).
UnitProgress = Callable[[int, int], None]
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
MAX_BLOCK = 1 << 30
# Row groups of packed files: reading one file reads at most this much more.
FILES_ROW_GROUP = DEFAULT_BATCH_BYTES
# Packed bytes that zstd shrinks by less than 5% in a sample of the first row
# group are written uncompressed: compressing JPEG or MP3 again costs CPU and
# saves nothing.
COMPRESSIBLE_SAMPLE = 1 << 20
INCOMPRESSIBLE = 0.95


@dataclass(frozen=True)
class ShardJob:
    """Everything a worker needs besides the unit; shipped with every task."""

    source: Location
    dest: Location
    schema: dict[str, Any]
    options: SyncOptions
    run_id: str
    transform: Any = None
    storage_class: str | None = None
    tiering: Any = None
    bwlimit: BandwidthLimit | None = None
    # An on-prem folder (path or URL) for the pseudonym -> raw value map.
    pseudonym_map: str | None = None

    def class_for(self, unit: Unit, partition: str, relative: str) -> str | None:
        """The storage class a shard is written in: its tier's, or the default."""
        if self.tiering is None:
            return self.storage_class
        chosen = self.tiering.class_for_sources(unit.sources, partition, relative)
        return chosen or self.storage_class

    @property
    def arrow_schema(self) -> pa.Schema:
        return schema_from_json(self.schema)


@dataclass(frozen=True)
class UnitOutcome:
    """What running one unit came to: a receipt, or the error that stopped it."""

    unit_id: str
    piece: str
    receipt: UnitReceipt | None = None
    error: str | None = None
    error_type: str | None = None
    exit_code: int = 1
    kanon: bytes | None = None
    sending: tuple[float, float] | None = None
    worker: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")

    @property
    def ok(self) -> bool:
        return self.receipt is not None


class _OpenShard:
    def __init__(
        self,
        job: ShardJob,
        relative: str,
        schema: pa.Schema,
        writer: AtomicWriter,
        first: pa.Table,
        throttle: Throttle | None = None,
        packed: bool = False,
    ) -> None:
        self.relative = relative
        self.writer = writer
        self.storage_class: str | None = None
        adapter = job.dest.adapter
        # Throttled below the checksum: the CRC32C sees exactly the bytes sent.
        sink = writer if throttle is None else ThrottledWriter(writer, throttle)
        self.hashing = HashingWriter(sink, md5=adapter.needs_md5)
        options = job.options
        self.parquet = pq.ParquetWriter(
            self.hashing,
            schema,
            compression=_codecs(schema, options.compression, first)
            if packed
            else options.compression,
            compression_level=options.compression_level,
            # Packed files: no min/max of file bytes in the footer, and no
            # dictionary of values that never repeat.
            write_statistics=_stats_columns(schema) if packed else True,
            use_dictionary=_dictionary_columns(schema)
            if packed
            else repetitive_columns(first),
            # Readers that check page CRCs (verify --deep, unpack) catch damage
            # inside a shard at the page it is in.
            write_page_checksum=True,
            store_schema=True,
        )
        self.rows = 0
        self.sources: dict[str, str] = {}

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.parquet.close()
        self.writer.abort()


class _PartitionWriter:
    """Writes one partition's rows of one unit as a sequence of shards."""

    def __init__(
        self, job: ShardJob, unit: Unit, partition: str, schema: pa.Schema
    ) -> None:
        self.job = job
        self.unit = unit
        self.partition = partition
        self.schema = schema
        self.target = job.options.shard_size
        self.throttle: Throttle | None = None
        self.buffer: list[pa.RecordBatch] = []
        self.buffered_bytes = 0
        self.ratio = 0.3
        self.total_in = 0
        self.total_out = 0
        self.index = 0
        self.current: _OpenShard | None = None
        self.full = False
        self.shards: list[ShardReceipt] = []
        # The file being read, for a unit of several: (relpath, mtime), and
        # the files of the rows buffered for the next row group.
        self.source: tuple[str, str] | None = None
        self.buffered_sources: dict[str, str] = {}

    @property
    def row_group_bytes(self) -> int:
        """Uncompressed bytes per row group: about a tenth of a shard, compressed;
        for packed files, small enough that one file is a short read away."""
        if self.unit.packs_files:
            return FILES_ROW_GROUP
        wanted = self.job.options.row_group_target or self.target // 10
        return int(min(max(wanted / self.ratio, 256 << 10), 512 << 20))

    def add(self, batch: pa.RecordBatch, fraction: float) -> None:
        if batch.num_rows == 0:
            return
        self.buffer.append(batch)
        self.buffered_bytes += batch.nbytes
        if self.source is not None:
            self.buffered_sources[self.source[0]] = self.source[1]
        if self.buffered_bytes >= self.row_group_bytes:
            self._flush(fraction)

    def _flush(self, fraction: float, final: bool = False) -> None:
        table = pa.Table.from_batches(self.buffer, schema=self.schema)
        self.buffer, uncompressed = [], self.buffered_bytes
        self.buffered_bytes = 0
        if self.full and not (final and uncompressed * self.ratio < self.target / 4):
            # A full shard is closed only once more rows arrive, so that a small
            # tail at the end of the unit joins it instead of a tiny shard.
            self._close_current()
        if self.current is None:
            self.current = self._open(table)
        before = self.current.hashing.bytes_written
        self.current.parquet.write_table(table, row_group_size=max(table.num_rows, 1))
        self.current.rows += table.num_rows
        self.current.sources.update(self.buffered_sources)
        self.buffered_sources = {}
        written = self.current.hashing.bytes_written - before
        self.total_in += uncompressed
        self.total_out += written
        if self.total_in:
            self.ratio = max(self.total_out / self.total_in, 1e-3)
        self.full = self._should_cut(fraction, written)

    def _should_cut(self, fraction: float, last_group: int) -> bool:
        assert self.current is not None
        size = self.current.hashing.bytes_written
        goal = self.target
        if not self.partition and 0 < fraction < 1:
            # Spread the unit's expected output evenly over whole shards.
            expected = self.total_out / fraction + self._closed_bytes()
            count = max(1, round(expected / self.target))
            goal = int(expected / count)
        return size >= goal - last_group // 2

    def _closed_bytes(self) -> int:
        return sum(shard.size for shard in self.shards)

    def _open(self, first: pa.Table) -> _OpenShard:
        relative = self.unit.shard_name(self.index, self.partition)
        self.index += 1
        dest = self.job.dest
        storage_class = self.job.class_for(self.unit, self.partition, relative)
        options = WriteOptions(
            part_size=self.job.options.part_size,
            storage_class=storage_class,
            encryption=self.job.options.encryption,
        )
        writer = dest.adapter.open_write(dest.fs, dest.path(relative), options)
        shard = _OpenShard(
            self.job,
            relative,
            self.schema,
            writer,
            first,
            self.throttle,
            packed=self.unit.packs_files,
        )
        shard.storage_class = storage_class
        return shard

    def _close_current(self) -> None:
        shard, self.current = self.current, None
        self.full = False
        if shard is None:
            return
        try:
            shard.parquet.close()
            shard.writer.commit()
        except BaseException:
            shard.abort()
            raise
        if self.throttle is not None:
            self.throttle.window.mark()  # the last part went up on commit
        reported = getattr(shard.writer, "reported_crc32c", None)
        receipt = ShardReceipt(
            path=shard.relative,
            size=shard.hashing.bytes_written,
            crc32c=shard.hashing.crc32c,
            rows=shard.rows,
            md5=shard.hashing.md5,
            partition=self.partition,
            storage_class=shard.storage_class,
            sources=tuple(sorted(shard.sources.items())),
        )
        info = _check_committed(self.job.dest, receipt, reported)
        self.shards.append(dataclasses.replace(receipt, version=object_version(info)))

    def finish(self) -> list[ShardReceipt]:
        if self.buffer:
            self._flush(1.0, final=True)
        self._close_current()
        return self.shards

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None


def _check_committed(
    dest: Location, receipt: ShardReceipt, on_commit: str | None
) -> dict[str, Any]:
    """Compare what the store reports for a new shard with what was written.

    ``on_commit`` is the CRC32C the store returned when the upload completed,
    if it returned one; otherwise the object's metadata is asked.
    """
    path = dest.path(receipt.path)
    info = dest.adapter.head(dest.fs, path)
    size = int(info.get("size") or 0)
    if size != receipt.size:
        raise ChecksumMismatchError(
            f"{dest.display(receipt.path)}: the store holds {size} bytes, "
            f"datamove wrote {receipt.size}; re-run to rewrite it"
        )
    adapter = dest.adapter
    reported = on_commit
    if reported is None and adapter.reports_crc32c:
        reported = adapter.reported_crc32c(dict(info))
    if reported is not None and reported != receipt.crc32c:
        raise ChecksumMismatchError(
            f"{dest.display(receipt.path)}: the store reports CRC32C {reported}, "
            f"datamove wrote {receipt.crc32c}; re-run to rewrite it"
        )
    return dict(info)


def _codecs(schema: pa.Schema, codec: str, first: pa.Table) -> str | dict[str, str]:
    """The compression of each column of packed files: the chosen codec,
    except for file bytes it does not shrink (images, audio and archives are
    compressed already), which are stored as they are."""
    if codec == "none" or "data" not in schema.names:
        return codec
    column = first.column("data")
    sample = b"".join(value.as_py() or b"" for value in column.slice(0, 64))
    sample = sample[:COMPRESSIBLE_SAMPLE]
    if not sample:
        return codec
    shrunk = len(pa.compress(sample, codec="zstd", asbytes=True))
    keep = "none" if shrunk > len(sample) * INCOMPRESSIBLE else codec
    return {name: keep if name == "data" else codec for name in schema.names}


def _stats_columns(schema: pa.Schema) -> list[str]:
    return [name for name in ("path", "size", "mtime") if name in schema.names]


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    return [name for name in ("media_type",) if name in schema.names]


def _partition_key(values: dict[str, Any]) -> str:
    parts = []
    for name, value in values.items():
        text = HIVE_NULL if value is None else str(value)
        parts.append(f"{name}={urllib.parse.quote(text, safe='')}")
    return "/".join(parts)


def _split_partitions(
    batch: pa.RecordBatch, columns: tuple[str, ...]
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Split a batch by the values of the partition columns (dropped from data)."""
    table = pa.Table.from_batches([batch])
    keys = table.select(list(columns)).group_by(list(columns)).aggregate([])
    data = table.drop_columns(list(columns))
    for key in keys.to_pylist():
        mask = None
        for name, value in key.items():
            column = table.column(name)
            match = pc.is_null(column) if value is None else pc.equal(column, value)
            mask = match if mask is None else pc.and_(mask, match)
        part = data.filter(mask).combine_chunks()
        for piece in part.to_batches():
            yield _partition_key(key), piece


class UnitWriter:
    """All partition writers of one unit; caps how many stay open at once."""

    MAX_OPEN = 64

    def __init__(self, job: ShardJob, unit: Unit, schema: pa.Schema) -> None:
        self.job = job
        self.unit = unit
        partition_by = job.options.partition_by
        self.partition_by = partition_by
        self.data_schema = (
            pa.schema([f for f in schema if f.name not in partition_by])
            if partition_by
            else schema
        )
        self.writers: dict[str, _PartitionWriter] = {}
        self.done: list[ShardReceipt] = []
        # A partition closed to make room continues its shard numbers on reopen.
        self.next_index: dict[str, int] = {}
        self.throttle = _throttle(job)
        self.source: tuple[str, str] | None = None

    def reading(self, part: Member) -> None:
        """Note the file of a several-file unit whose rows come next."""
        self.source = (part.piece.relpath, str(part.fingerprint.get("mtime")))
        for writer in self.writers.values():
            writer.source = self.source

    def add(self, batch: pa.RecordBatch, fraction: float) -> None:
        if not self.partition_by:
            self._writer("").add(batch, fraction)
            return
        for key, part in _split_partitions(batch, self.partition_by):
            self._writer(key).add(part, fraction)

    def _writer(self, key: str) -> _PartitionWriter:
        writer = self.writers.get(key)
        if writer is None:
            if len(self.writers) >= self.MAX_OPEN:
                oldest = next(iter(self.writers))
                closed = self.writers.pop(oldest)
                self.done.extend(closed.finish())
                self.next_index[oldest] = closed.index
            writer = _PartitionWriter(self.job, self.unit, key, self.data_schema)
            writer.throttle = self.throttle
            writer.source = self.source
            writer.index = self.next_index.get(key, 0)
            self.writers[key] = writer
        else:
            self.writers[key] = self.writers.pop(key)
        return writer

    def finish(self) -> list[ShardReceipt]:
        for key in list(self.writers):
            # Popped only once finished: a failed last flush leaves the writer
            # here for abort() to discard its open shard.
            self.done.extend(self.writers[key].finish())
            del self.writers[key]
        return sorted(self.done, key=lambda shard: shard.path)

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def write_unit(
    unit: Unit,
    job: ShardJob,
    retries: RetryLog | None = None,
    on_progress: UnitProgress | None = None,
) -> tuple[UnitReceipt, bytes | None]:
    """Read one unit's piece and commit its shards and receipt.

    Returns the receipt and, when a policy names quasi-identifiers, the
    unit's k-anonymity group counts (serialised) for the run's report.

    A row longer than the read block restarts the unit with a larger block;
    its shard names are deterministic, so the restart overwrites them.

    Raises:
        InputError: the piece cannot be read, or the source file changed
            since it was planned.
        BadRowsError: a malformed row under ``--on-bad-rows fail``.
        StorageError: a shard could not be written or did not verify.
    """
    block_size: int | None = None
    while True:
        try:
            return _write_unit_once(unit, job, retries, block_size, on_progress)
        except RowTooLongError:
            block_size = (block_size or TEXT_BLOCK) * 16
            if block_size > MAX_BLOCK:
                raise InputError(
                    f"{unit.describe()}: a row is longer than "
                    f"{MAX_BLOCK >> 20} MiB; such rows are not supported"
                ) from None
            log.info(
                "%s: long row, reading again in %d MiB blocks",
                unit.describe(),
                block_size >> 20,
            )


def _check_unchanged(job: ShardJob, unit: Unit, when: str) -> None:
    """Refuse to mix two versions of a source file in one dataset.

    Raises:
        InputError: the file's size or modification time is not the planned one.
    """
    _check_part(job, unit.parts[0], when)


def _check_part(job: ShardJob, part: Member, when: str) -> None:
    try:
        info = job.source.fs.info(part.piece.path)
    except FileNotFoundError:
        raise InputError(
            f"{part.piece.relpath}: disappeared {when}; re-run to sync the current tree"
        ) from None
    _check_fingerprint(part.piece.relpath, part.fingerprint, info, when)


def _check_fingerprint(
    relpath: str, fingerprint: Mapping[str, Any], info: Mapping[str, Any], when: str
) -> None:
    now = {"size": int(info.get("size") or 0), "mtime": _mtime(dict(info))}
    planned = {"size": fingerprint.get("size"), "mtime": fingerprint.get("mtime")}
    if now != planned:
        raise InputError(
            f"{relpath}: changed {when} (size {planned['size']} -> "
            f"{now['size']}); its shards are not recorded: re-run to sync the new "
            "version"
        )


def _write_unit_once(
    unit: Unit,
    job: ShardJob,
    retries: RetryLog | None,
    block_size: int | None,
    on_progress: UnitProgress | None,
) -> tuple[UnitReceipt, bytes | None]:
    started = time.monotonic()
    if unit.stores_whole:
        return _store_whole(unit, job, retries, on_progress), None
    source_schema = job.arrow_schema
    transform = job.transform
    out_schema = transform.output_schema(source_schema) if transform else source_schema
    bad_rows: list[BadRows] = []
    writer = UnitWriter(job, unit, out_schema)
    kanon = transform.kanon_counter(out_schema) if transform is not None else None
    rows = 0
    pairs: list[pa.Table] = []
    try:
        batches = (
            _packed_batches(job, unit)
            if unit.packs_files
            else _table_batches(job, unit, bad_rows, block_size, writer)
        )
        for index, (batch, fraction) in enumerate(batches):
            if transform is not None and job.pseudonym_map:
                batch, found = transform.apply_with_pseudonyms(
                    batch, stream=f"{unit.unit_id}/{index}"
                )
                pairs.append(found)
            elif transform is not None:
                batch = transform.apply(batch, stream=f"{unit.unit_id}/{index}")
            if kanon is not None:
                kanon.update(batch)
            rows += batch.num_rows
            writer.add(batch, fraction)
            if on_progress is not None:
                on_progress(rows, int(fraction * unit.input_bytes))
        shards = writer.finish()
    except BaseException:
        writer.abort()
        raise
    for index, rejected in enumerate(bad_rows):
        if rejected.rows:
            _quarantine(job, unit, rejected, index)
    if pairs and job.pseudonym_map:
        _write_pseudonyms(job.pseudonym_map, unit, pairs)

    receipt = UnitReceipt(
        unit_id=unit.unit_id,
        # A packed group is named by its shards: a policy may hash the paths.
        source=unit.shard_base if unit.packs_files else unit.piece.relpath,
        piece=unit.describe(),
        fingerprint=dict(unit.fingerprint),
        shards=tuple(shards),
        rows=rows,
        bytes_read=unit.input_bytes,
        bad_rows=sum(rejected.count for rejected in bad_rows),
        retries=len(retries) if retries is not None else 0,
        retry_causes=retries.causes() if retries is not None else {},
        written_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_receipt(job.dest, receipt)
    log.info(
        "%s: %d rows in %d shards (%.1fs)",
        unit.describe(),
        rows,
        len(shards),
        time.monotonic() - started,
    )
    return receipt, kanon.to_ipc() if kanon is not None else None


def _table_batches(
    job: ShardJob,
    unit: Unit,
    bad_rows: list[BadRows],
    block_size: int | None,
    writer: UnitWriter,
) -> Iterator[tuple[pa.RecordBatch, float]]:
    """The rows of a unit's piece, or of each file of a group in turn, with
    the fraction of the unit's input read. Each file is checked against its
    planned fingerprint before and after it is read; ``bad_rows`` receives
    one :class:`BadRows` per file, and ``writer`` is told which file of a
    group is read (its shards record the files whose rows they hold)."""
    schema = job.arrow_schema
    total = max(sum(part.size for part in unit.parts), 1) if unit.members else 0
    done = 0
    for part in unit.parts:
        _check_part(job, part, "since it was planned")
        rejected = BadRows(
            job.options.on_bad_rows, part.piece.relpath, quote=job.transform is None
        )
        bad_rows.append(rejected)
        if unit.members:
            writer.reading(part)
        batches = read_piece(
            job.source.fs, part.piece, schema, part.size, rejected, block_size
        )
        for batch, fraction in batches:
            yield batch, (done + fraction * part.size) / total if total else fraction
        _check_part(job, part, "while it was read")
        done += part.size


def _packed_batches(
    job: ShardJob, unit: Unit
) -> Iterator[tuple[pa.RecordBatch, float]]:
    """The files of a packed group as rows, each checked against its planned
    fingerprint as it is read."""
    planned = {part.piece.relpath: part.fingerprint for part in unit.parts}

    def check(relpath: str, info: Mapping[str, Any]) -> None:
        _check_fingerprint(relpath, planned[relpath], info, "since it was planned")

    return file_batches(
        job.source.fs,
        [(part.piece.path, part.piece.relpath) for part in unit.parts],
        DEFAULT_BATCH_BYTES,
        sizes={part.piece.relpath: part.size for part in unit.parts},
        on_info=check,
    )


def _stored_path(job: ShardJob, unit: Unit, relpath: str, mtime_ns: int) -> str:
    """The path a large file is recorded under: its own, or the pseudonym the
    policy gives it."""
    if job.transform is None:
        return relpath
    row = pa.RecordBatch.from_pylist(
        [
            {
                "path": relpath,
                "data": b"",
                "size": 0,
                "mtime": mtime_ns,
                "crc32c": "",
                "media_type": "",
            }
        ],
        schema=FILE_SCHEMA,
    )
    if job.pseudonym_map:
        out, found = job.transform.apply_with_pseudonyms(row, stream=unit.unit_id)
        _write_pseudonyms(job.pseudonym_map, unit, [found])
    else:
        out = job.transform.apply(row, stream=unit.unit_id)
    return str(out.column(out.schema.get_field_index("path"))[0].as_py())


def _store_whole(
    unit: Unit,
    job: ShardJob,
    retries: RetryLog | None,
    on_progress: UnitProgress | None,
) -> UnitReceipt:
    """Copy one large file to an object of its own and record it.

    Raises:
        InputError: the file changed since it was planned or while read.
        ChecksumMismatchError, StorageError: the copy failed or did not verify.
    """
    started = time.monotonic()
    _check_unchanged(job, unit, "since it was planned")
    relative = blob_name(unit.shard_base)
    stored = store_large_file(
        job.source.fs,
        unit.piece.path,
        job.dest,
        relative,
        part_size=job.options.part_size,
        storage_class=job.class_for(unit, "", relative),
        encryption=job.options.encryption,
        throttle=_throttle(job),
    )
    _check_unchanged(job, unit, "while it was read")
    shard = ShardReceipt(
        path=stored["path"],
        size=stored["size"],
        crc32c=stored["crc32c"],
        rows=1,
        md5=stored["md5"],
        storage_class=stored["storage_class"],
        version=stored["version"],
        source=_stored_path(job, unit, unit.piece.relpath, stored["mtime_ns"]),
        mtime_ns=stored["mtime_ns"],
    )
    if on_progress is not None:
        on_progress(1, unit.input_bytes)
    receipt = UnitReceipt(
        unit_id=unit.unit_id,
        source=unit.shard_base,
        piece=unit.describe(),
        fingerprint=dict(unit.fingerprint),
        shards=(shard,),
        rows=1,
        bytes_read=unit.input_bytes,
        retries=len(retries) if retries is not None else 0,
        retry_causes=retries.causes() if retries is not None else {},
        written_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_receipt(job.dest, receipt)
    log.info(
        "%s: %d bytes stored whole (%.1fs)",
        unit.describe(),
        shard.size,
        time.monotonic() - started,
    )
    return receipt


def _write_pseudonyms(folder: str, unit: Unit, pairs: list[pa.Table]) -> None:
    """Write the unit's pseudonym -> raw pairs on-prem, whole or not at all."""
    from datamove.anonymize import merge_pseudonym_pairs

    location = Location.parse(folder)
    table = merge_pseudonym_pairs(pairs)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    writer = location.adapter.open_write(
        location.fs, location.path(f"{unit.unit_id}.parquet"), WriteOptions()
    )
    try:
        writer.write(sink.getvalue().to_pybytes())
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def _quarantine(job: ShardJob, unit: Unit, bad_rows: BadRows, index: int = 0) -> None:
    """Keep rejected rows in a local folder: they never go to the destination.

    ``index`` numbers the files of a unit that reads several.
    """
    folder = os.path.abspath(job.options.quarantine_dir)
    os.makedirs(folder, exist_ok=True)
    name = f"{unit.shard_base}-{index}" if unit.members else unit.shard_base
    path = os.path.join(folder, f"{name}.rejected.tsv")
    source = unit.parts[index].piece.describe()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"# source\t{source}\n")
        for text, reason in bad_rows.rows:
            flat = text.replace("\t", " ").replace("\n", "\\n")
            handle.write(f"{reason}\t{flat}\n")
    log.warning("%s: %d rows quarantined in %s", source, len(bad_rows.rows), path)


def _throttle(job: ShardJob) -> Throttle | None:
    """This worker thread's throttle for the job's share of ``--bwlimit``."""
    if job.bwlimit is None or job.bwlimit.unlimited:
        return None
    return throttle_for(job.bwlimit, job.run_id)


def execute_unit(
    unit: Unit, job: ShardJob, on_progress: UnitProgress | None = None
) -> UnitOutcome:
    """Run one unit and return its outcome; never raises for expected errors.

    This is the function the executor ships to workers; ``on_progress`` is
    called after every batch with the rows and input bytes done so far.
    """
    retries = RetryLog()
    try:
        # A transient store failure retries the whole unit: its shard names
        # are deterministic, so a second attempt overwrites the first's.
        receipt, kanon = call_with_retry(
            lambda: write_unit(unit, job, retries, on_progress),
            operation="write unit",
            subject=job.dest.display(unit.shard_base),
            policy=RetryPolicy(attempts=job.options.retries),
            retry_log=retries,
        )
    except DatamoveError as error:
        log.error("%s: %s", unit.describe(), error)
        return UnitOutcome(
            unit.unit_id,
            unit.describe(),
            error=str(error),
            error_type=type(error).__name__,
            exit_code=error.exit_code,
        )
    except OSError as error:
        wrapped = StorageError(f"{unit.describe()}: {type(error).__name__}: {error}")
        log.error("%s", wrapped)
        return UnitOutcome(
            unit.unit_id,
            unit.describe(),
            error=str(wrapped),
            error_type="StorageError",
        )
    throttle = _throttle(job)
    return UnitOutcome(
        unit.unit_id,
        unit.describe(),
        receipt=receipt,
        kanon=kanon,
        sending=throttle.window.span() if throttle is not None else None,
    )
