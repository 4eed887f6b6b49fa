"""Unstructured datasets: small files packed as rows of Parquet shards.

With ``--format files`` each source file becomes one row (relative path,
bytes, size, modification time, CRC32C, media type). Rows are cut into
record batches of a few MiB, each written as one row group, so that one file
is fetched by reading one row group. Files above a threshold are not packed:
each is copied to an object of its own (:func:`store_large_file`).

Three things live here:

* grouping files into units (:func:`group_files`), with boundaries chosen by
  the files' names so that a changed or added file changes only its group;
* reading a group as record batches (:func:`file_batches`);
* the index of paths to shards and row groups, written to
  ``_datamove/files-index.parquet`` at commit time, and :func:`open`, which
  uses it to read one file without scanning the dataset.

Restoring a whole tree is :mod:`datamove.unpack`.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import mimetypes
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from datamove.bandwidth import Throttle, ThrottledWriter
from datamove.checksum import HashingWriter, crc32c_of
from datamove.errors import (
    ChecksumMismatchError,
    DatamoveError,
    InputError,
    StorageError,
    UsageError,
)
from datamove.inventory import STATE_DIR
from datamove.state import object_version
from datamove.storage import Location
from datamove.stores.base import WriteOptions

log = logging.getLogger(__name__)

MiB = 1 << 20
INDEX = f"{STATE_DIR}/files-index.parquet"
BLOB_SUFFIX = ".blob"
DEFAULT_BATCH_BYTES = 4 * MiB
DEFAULT_LARGE_THRESHOLD = 16 * MiB
# Rows of the index per row group: a lookup reads one of them.
INDEX_ROW_GROUP = 32768
READ_CHUNK = 8 * MiB
MAX_MODULUS = 1 << 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FILE_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("data", pa.large_binary(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("crc32c", pa.string(), nullable=False),
        pa.field("media_type", pa.string(), nullable=False),
    ]
)
# The columns the index is built from: everything but the bytes.
META_COLUMNS = ["path", "size", "mtime", "crc32c", "media_type"]

INDEX_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("object", pa.string(), nullable=False),
        # -1 for a large file stored as an object of its own.
        pa.field("row_group", pa.int32(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("crc32c", pa.string(), nullable=False),
        pa.field("media_type", pa.string(), nullable=False),
        pa.field("object_size", pa.int64(), nullable=False),
        pa.field("object_crc32c", pa.string(), nullable=False),
    ]
)

# Built-in table only: the guess must not depend on the host's mime.types.
_MEDIA_TYPES = mimetypes.MimeTypes()


def media_type(relpath: str) -> str:
    """The media type guessed from a file's name, ``application/octet-stream``
    when the name says nothing."""
    guessed, _ = _MEDIA_TYPES.guess_type(posixpath.basename(relpath), strict=False)
    return guessed or "application/octet-stream"


def safe_relpath(path: str, where: str) -> str:
    """Check that ``path`` is a relative path that stays below its root.

    Raises:
        InputError: the path is empty, absolute, or has ``.``, ``..`` or
            empty segments (``where`` names the object it came from).
    """
    parts = path.split("/")
    bad = (
        not path
        or path.startswith("/")
        or "\x00" in path
        or any(part in ("", ".", "..") for part in parts)
    )
    if bad:
        raise InputError(
            f"{where}: unsafe file path {path!r} (absolute, empty or with '..'); "
            "the dataset was not written by datamove or was tampered with"
        )
    return path


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    """A table as Python rows, with timestamps as integer nanoseconds
    (``to_pylist`` would round them to microseconds or need pandas)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            column = table.column(index).cast(pa.int64())
            table = table.set_column(index, pa.field(field.name, pa.int64()), column)
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


# --- modification times -----------------------------------------------------


def mtime_ns(fs: AbstractFileSystem, path: str, info: Mapping[str, Any]) -> int:
    """A file's modification time in nanoseconds since the epoch.

    Local files are asked with ``os.stat`` (exact to the nanosecond); other
    stores are read from the listing entry ``info``, at the precision the
    store keeps. 0 when the store gives none.
    """
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return os.stat(path).st_mtime_ns
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified"):
        value = info.get(key)
        if value is not None:
            return listing_time_ns(value)
    return 0


def listing_time_ns(value: Any) -> int:
    """A time as listings give it (datetime, epoch seconds, ISO text) in ns."""
    if isinstance(value, datetime):
        return _datetime_ns(value)
    try:
        # Decimal of the shortest repr: 1700000000.25 s is exactly that in ns.
        return int(Decimal(str(value)) * 1_000_000_000)
    except InvalidOperation:
        text = str(value).replace("Z", "+00:00")
        return _datetime_ns(datetime.fromisoformat(text))


def _datetime_ns(value: datetime) -> int:
    # Naive times in listings are UTC; integer arithmetic keeps microseconds.
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


# --- grouping files into units ----------------------------------------------


@dataclass(frozen=True)
class FileGroup:
    """Files read by one unit: small files packed together, or one large file.

    ``files`` holds the caller's ``(relpath, size, mtime)`` tuples in path
    order.
    """

    files: tuple[tuple[str, int, Any], ...]
    large: bool = False

    @property
    def bytes(self) -> int:
        return sum(size for _, size, _ in self.files)

    @property
    def first(self) -> str:
        return self.files[0][0]

    def digest(self) -> str:
        """A digest of the members and their fingerprints, for unit ids."""
        text = "\n".join(f"{path}\0{size}\0{mtime}" for path, size, mtime in self.files)
        return hashlib.sha256(text.encode()).hexdigest()


def _name_hash(relpath: str) -> int:
    digest = hashlib.blake2b(relpath.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def boundary_modulus(
    files: Sequence[tuple[str, int, Any]], target_bytes: int, large_threshold: int
) -> int:
    """The K of :func:`group_files`: about target / mean small-file size,
    rounded down to a power of two so that it rarely changes between runs."""
    small = [size for _, size, _ in files if size <= large_threshold]
    if not small:
        return 1
    mean = max(sum(small) / len(small), 1.0)
    wanted = max(target_bytes / mean, 1.0)
    return min(1 << math.floor(math.log2(wanted)), MAX_MODULUS)


def group_files(
    files: Sequence[tuple[str, int, Any]],
    target_bytes: int,
    large_threshold: int = DEFAULT_LARGE_THRESHOLD,
    modulus: int | None = None,
) -> list[FileGroup]:
    """Cut a file list into units of about ``target_bytes`` each, stably.

    ``files`` are ``(relpath, size, mtime)`` tuples. Files over
    ``large_threshold`` bytes become groups of their own (``large=True``).
    The others, in path order, form groups ending after each file whose
    name hashes to 0 modulo K (:func:`boundary_modulus`, or ``modulus`` when
    the caller kept the one of an earlier run). The boundaries depend only
    on names, so adding, removing or changing a file changes only the group
    it falls in (two when it is itself a boundary). A group over twice the
    target is split after its member with the smallest name hash, again and
    again: that choice too depends only on the names in the group.

    Returns the groups ordered by their first path.

    Raises:
        UsageError: ``target_bytes`` is not positive.
    """
    if target_bytes <= 0:
        raise UsageError(f"shard size {target_bytes} must be positive")
    ordered = sorted(files, key=lambda file: file[0])
    k = modulus or boundary_modulus(ordered, target_bytes, large_threshold)
    groups: list[FileGroup] = []
    run: list[tuple[str, int, Any]] = []
    for file in ordered:
        if file[1] > large_threshold:
            groups.append(FileGroup((file,), large=True))
            continue
        run.append(file)
        if _name_hash(file[0]) % k == 0:
            groups.extend(_capped(run, 2 * target_bytes))
            run = []
    if run:
        groups.extend(_capped(run, 2 * target_bytes))
    return sorted(groups, key=lambda group: group.first)


def _capped(run: list[tuple[str, int, Any]], cap: int) -> list[FileGroup]:
    """``run`` as one group, or split where its names say while over ``cap``."""
    if len(run) < 2 or sum(size for _, size, _ in run) <= cap:
        return [FileGroup(tuple(run))]
    # The last member cannot be the split point: the right side would be empty.
    cut = min(range(len(run) - 1), key=lambda i: _name_hash(run[i][0])) + 1
    return _capped(run[:cut], cap) + _capped(run[cut:], cap)


# --- reading a group as record batches -------------------------------------


def file_batches(
    fs: AbstractFileSystem,
    paths_with_relpaths: Sequence[tuple[str, str]],
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    sizes: Mapping[str, int] | None = None,
    on_info: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> Iterator[tuple[pa.RecordBatch, float]]:
    """Read small files as rows of :data:`FILE_SCHEMA`, in batches.

    Each batch holds about ``batch_bytes`` of file bytes (at least one
    file) and should be written as one row group. ``sizes`` (relpath ->
    bytes, from the inventory) lets the fraction done be counted in bytes;
    without it files are counted. ``on_info`` is called with each file's
    relpath and listing entry before it is read (to refuse a file changed
    since it was planned). Yields each batch with that fraction.

    Raises:
        InputError: a file cannot be read, or its size changed while read.
    """
    total = len(paths_with_relpaths)
    total_bytes = sum(sizes.values()) if sizes else 0
    done_files = 0
    done_bytes = 0
    rows: dict[str, list[Any]] = {name: [] for name in FILE_SCHEMA.names}
    pending = 0

    def fraction() -> float:
        if total_bytes:
            return min(done_bytes / total_bytes, 1.0)
        return done_files / total if total else 1.0

    for path, relpath in paths_with_relpaths:
        data, modified = _read_small(fs, path, relpath, on_info)
        rows["path"].append(relpath)
        rows["data"].append(data)
        rows["size"].append(len(data))
        rows["mtime"].append(modified)
        rows["crc32c"].append(crc32c_of([data]))
        rows["media_type"].append(media_type(relpath))
        pending += len(data)
        done_files += 1
        done_bytes += sizes.get(relpath, len(data)) if sizes else len(data)
        if pending >= batch_bytes:
            yield _batch(rows), fraction()
            rows = {name: [] for name in FILE_SCHEMA.names}
            pending = 0
    if rows["path"]:
        yield _batch(rows), fraction()


def _batch(rows: Mapping[str, list[Any]]) -> pa.RecordBatch:
    arrays = [pa.array(rows[field.name], field.type) for field in FILE_SCHEMA]
    return pa.RecordBatch.from_arrays(arrays, schema=FILE_SCHEMA)


def _read_small(
    fs: AbstractFileSystem,
    path: str,
    relpath: str,
    on_info: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> tuple[bytes, int]:
    try:
        info = fs.info(path)
        if on_info is not None:
            on_info(relpath, info)
        data = fs.cat_file(path)
    except FileNotFoundError as error:
        raise InputError(
            f"{relpath}: disappeared since it was listed; re-run to sync the "
            "current tree"
        ) from error
    except PermissionError as error:
        raise InputError(f"{relpath}: cannot read: permission denied") from error
    listed = int(info.get("size") or 0)
    if len(data) != listed:
        raise InputError(
            f"{relpath}: changed while read ({listed} bytes listed, {len(data)} "
            "read); re-run to sync the new version"
        )
    return bytes(data), mtime_ns(fs, path, info)


# --- large files: one object each --------------------------------------------


def blob_name(shard_base: str) -> str:
    """The object a large file's unit writes: ``{stem}-{unit id}-000.blob``."""
    return f"{shard_base}-000{BLOB_SUFFIX}"


def store_large_file(
    fs_src: AbstractFileSystem,
    src_path: str,
    dest_location: Location,
    relative_name: str,
    part_size: int = 16 * MiB,
    storage_class: str | None = None,
    encryption: tuple[tuple[str, str], ...] = (),
    throttle: Throttle | None = None,
) -> dict[str, Any]:
    """Stream one file to an object of its own under ``dest_location``.

    The bytes pass through :class:`HashingWriter` into the store's atomic
    writer; after the commit the size (and CRC32C, where the store reports
    one) are checked against what passed.

    Returns the receipt fields of a shard (``path``, ``size``, ``crc32c``,
    ``rows`` = 0, ``md5``, ``storage_class``, ``version``) plus ``mtime_ns``
    and ``media_type`` of the source file, for the index.

    Raises:
        InputError: the source file cannot be read or changed while read.
        ChecksumMismatchError: the store holds other bytes than were sent.
        StorageError: the write failed.
    """
    dest = dest_location
    try:
        info = fs_src.info(src_path)
    except FileNotFoundError as error:
        raise InputError(f"{src_path}: disappeared since it was listed") from error
    modified = mtime_ns(fs_src, src_path, info)
    kind = media_type(src_path)
    options = WriteOptions(
        part_size=part_size,
        storage_class=storage_class,
        encryption=encryption,
        content_type=kind,
    )
    writer = dest.adapter.open_write(dest.fs, dest.path(relative_name), options)
    # Throttled below the checksum: the CRC32C sees exactly the bytes sent.
    sink = writer if throttle is None else ThrottledWriter(writer, throttle)
    hashing = HashingWriter(sink, md5=dest.adapter.needs_md5)
    try:
        with fs_src.open(src_path, "rb", block_size=part_size) as handle:
            while chunk := handle.read(part_size):
                hashing.write(chunk)
        listed = int(info.get("size") or 0)
        if hashing.bytes_written != listed:
            raise InputError(
                f"{src_path}: changed while read ({listed} bytes listed, "
                f"{hashing.bytes_written} read); re-run to sync the new version"
            )
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    reported = getattr(writer, "reported_crc32c", None)
    head = dest.adapter.head(dest.fs, dest.path(relative_name))
    if reported is None and dest.adapter.reports_crc32c:
        reported = dest.adapter.reported_crc32c(dict(head))
    size = int(head.get("size") or 0)
    if size != hashing.bytes_written or reported not in (None, hashing.crc32c):
        raise ChecksumMismatchError(
            f"{dest.display(relative_name)}: the store holds {size} bytes "
            f"(CRC32C {reported}), datamove wrote {hashing.bytes_written} "
            f"(CRC32C {hashing.crc32c}); re-run to rewrite it"
        )
    return {
        "path": relative_name,
        "size": hashing.bytes_written,
        "crc32c": hashing.crc32c,
        "rows": 0,
        "md5": hashing.md5,
        "storage_class": storage_class,
        "version": object_version(head),
        "mtime_ns": modified,
        "media_type": kind,
    }


# --- the index -----------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    """One object of a packed dataset as its receipt records it.

    For a large file stored whole, ``source`` is its relative path and
    ``mtime_ns`` its modification time; both are None for a packed shard.
    """

    path: str
    size: int
    crc32c: str
    source: str | None = None
    mtime_ns: int | None = None

    @property
    def is_blob(self) -> bool:
        return self.source is not None


def shard_entries(dest: Location, shard: StoredObject) -> list[dict[str, Any]]:
    """Index rows for every file packed in one shard.

    Reads the footer and the small columns only, never the bytes.

    Raises:
        StorageError: the shard cannot be read or is not a files shard.
    """
    entries: list[dict[str, Any]] = []
    try:
        with dest.fs.open(dest.path(shard.path), "rb") as handle:
            parquet = pq.ParquetFile(handle, page_checksum_verification=True)
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group, columns=META_COLUMNS)
                for row, values in enumerate(table_rows(table)):
                    entries.append(
                        {
                            **values,
                            "object": shard.path,
                            "row_group": group,
                            "row": row,
                            "object_size": shard.size,
                            "object_crc32c": shard.crc32c,
                        }
                    )
    except (OSError, pa.ArrowException, KeyError) as error:
        raise StorageError(
            f"{dest.display(shard.path)}: cannot read the file list of this shard "
            f"({type(error).__name__}: {error}); run `datamove verify --deep` and "
            "re-sync"
        ) from error
    return entries


def blob_entry(blob: StoredObject) -> dict[str, Any]:
    """The index row of a large file stored as an object of its own."""
    if blob.source is None:
        raise ValueError(f"{blob.path}: not a large-file object")
    return {
        "path": blob.source,
        "object": blob.path,
        "row_group": -1,
        "row": -1,
        "size": blob.size,
        "mtime": blob.mtime_ns or 0,
        "crc32c": blob.crc32c,
        "media_type": media_type(blob.source),
        "object_size": blob.size,
        "object_crc32c": blob.crc32c,
    }


def build_index(shard_entries: Iterable[Mapping[str, Any]]) -> pa.Table:
    """The index table (:data:`INDEX_SCHEMA`) from entry rows, sorted by path.

    Raises:
        InputError: a path is unsafe or appears twice.
    """
    rows = sorted(shard_entries, key=lambda entry: entry["path"])
    for previous, entry in itertools.pairwise(rows):
        if previous["path"] == entry["path"]:
            raise InputError(
                f"{entry['path']}: packed twice (in {previous['object']} and "
                f"{entry['object']}); re-run the sync to rewrite the dataset"
            )
    for entry in rows:
        safe_relpath(entry["path"], entry["object"])
    columns = {
        field.name: pa.array([entry[field.name] for entry in rows], field.type)
        for field in INDEX_SCHEMA
    }
    return pa.table(columns, schema=INDEX_SCHEMA)


def collect_index(
    dest: Location, objects: Iterable[StoredObject], previous: pa.Table | None = None
) -> pa.Table:
    """The index of a dataset's objects, reusing ``previous`` where it can.

    Shards named in ``previous`` with the same CRC32C are not read again:
    shard names are derived from their content, so an incremental sync reads
    only the shards it wrote.

    Raises:
        StorageError: a new shard cannot be read.
        InputError: a path is unsafe or packed twice.
    """
    known: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if previous is not None:
        for entry in table_rows(previous):
            key = (entry["object"], entry["object_crc32c"])
            known.setdefault(key, []).append(entry)
    entries: list[dict[str, Any]] = []
    for item in objects:
        if item.is_blob:
            entries.append(blob_entry(item))
        elif (item.path, item.crc32c) in known:
            entries.extend(known[(item.path, item.crc32c)])
        else:
            entries.extend(shard_entries(dest, item))
    return build_index(entries)


def write_index(dest: Location, index: pa.Table) -> None:
    """Write the index to ``_datamove/files-index.parquet`` in one step."""
    writer = dest.adapter.open_write(dest.fs, dest.path(INDEX), WriteOptions())
    try:
        # pyarrow closes its sink: the wrapper keeps it from closing the writer.
        pq.write_table(
            index,
            HashingWriter(writer),
            row_group_size=INDEX_ROW_GROUP,
            compression="zstd",
            write_statistics=["path"],
            write_page_checksum=True,
        )
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def _missing_index(dest: Location) -> UsageError:
    return UsageError(
        f"{dest.display(INDEX)}: no files index; {dest.url} was not synced with "
        "--format files, or its sync has not finished: run the sync again"
    )


def read_index(dest: Location) -> pa.Table:
    """The whole index of a packed dataset.

    Raises:
        UsageError: the destination has no index.
        StorageError: the index cannot be read.
    """
    try:
        with dest.fs.open(dest.path(INDEX), "rb") as handle:
            table = pq.ParquetFile(handle, page_checksum_verification=True).read()
    except FileNotFoundError:
        raise _missing_index(dest) from None
    except (OSError, pa.ArrowException) as error:
        raise StorageError(
            f"{dest.display(INDEX)}: cannot read the files index ({error}); "
            "re-run the sync to write it again"
        ) from error
    return table.cast(INDEX_SCHEMA)


def lookup(dest: Location, path: str) -> dict[str, Any]:
    """The index row of one file, reading only the index row group that can
    hold it (by the path column's statistics).

    Raises:
        UsageError: no index, or ``path`` is not in it.
        StorageError: the index cannot be read.
    """
    wanted = path.strip("/")
    try:
        with dest.fs.open(dest.path(INDEX), "rb") as handle:
            parquet = pq.ParquetFile(handle, page_checksum_verification=True)
            column = parquet.schema_arrow.get_field_index("path")
            for group in range(parquet.num_row_groups):
                stats = parquet.metadata.row_group(group).column(column).statistics
                pruned = stats is not None and stats.has_min_max
                if pruned and not stats.min <= wanted <= stats.max:
                    continue
                table = parquet.read_row_group(group)
                for entry in table_rows(table):
                    if entry["path"] == wanted:
                        return dict(entry)
    except FileNotFoundError:
        raise _missing_index(dest) from None
    except (OSError, pa.ArrowException) as error:
        raise StorageError(
            f"{dest.display(INDEX)}: cannot read the files index ({error}); "
            "re-run the sync to write it again"
        ) from error
    raise UsageError(f"{dest.url}: no file {wanted!r} in the dataset; check the path")


# --- reading files back -------------------------------------------------------


def damaged(dest: Location, entry: Mapping[str, Any], why: str) -> DatamoveError:
    """The error for a file whose stored bytes do not check out."""
    where = dest.display(entry["object"])
    if entry["row_group"] >= 0:
        where += f" (row group {entry['row_group']})"
    return ChecksumMismatchError(
        f"{where}: {entry['path']}: {why}; the object is damaged: run "
        "`datamove verify --deep` and re-sync to rewrite it"
    )


def check_row(
    dest: Location, entry: Mapping[str, Any], row: Mapping[str, Any]
) -> bytes:
    """Check a packed row against its index entry and its CRC32C.

    Returns the file's bytes.

    Raises:
        ChecksumMismatchError: path, size or checksum do not match.
    """
    data = row["data"]
    if row["path"] != entry["path"]:
        raise damaged(dest, entry, f"the row holds {row['path']!r}")
    if len(data) != entry["size"] or row["size"] != entry["size"]:
        raise damaged(dest, entry, f"{len(data)} bytes, {entry['size']} recorded")
    actual = crc32c_of([data])
    if actual != entry["crc32c"] or row["crc32c"] != entry["crc32c"]:
        raise damaged(dest, entry, f"CRC32C {actual}, {entry['crc32c']} recorded")
    return bytes(data)


def read_packed(dest: Location, entry: Mapping[str, Any]) -> bytes:
    """The bytes of one file, reading only the row group that holds it.

    Raises:
        ChecksumMismatchError: the row group cannot be decoded or the file
            does not match its recorded size and CRC32C.
    """
    if entry["row_group"] < 0:
        with dest.fs.open(dest.path(entry["object"]), "rb") as handle:
            data = handle.read()
        actual = crc32c_of([data])
        if len(data) != entry["size"] or actual != entry["crc32c"]:
            raise damaged(dest, entry, f"CRC32C {actual}, {entry['crc32c']} recorded")
        return bytes(data)
    try:
        with dest.fs.open(dest.path(entry["object"]), "rb") as handle:
            parquet = pq.ParquetFile(handle, page_checksum_verification=True)
            table = parquet.read_row_group(entry["row_group"])
            row = table_rows(table.slice(entry["row"], 1))
    except FileNotFoundError as error:
        raise StorageError(
            f"{dest.display(entry['object'])}: missing; re-sync to rewrite it"
        ) from error
    except (OSError, pa.ArrowException) as error:
        raise damaged(dest, entry, f"cannot decode ({error})") from error
    if not row:
        raise damaged(dest, entry, f"no row {entry['row']}")
    return check_row(dest, entry, row[0])


def open(  # the public name mirrors the builtin on purpose
    dest: str | Location, path: str, dest_options: Mapping[str, Any] | None = None
) -> bytes:
    """The bytes of one file of a packed dataset, checked against its CRC32C.

    Reads the index (one row group of it) and then only the row group of the
    shard that holds the file.

    Example::

        data = datamove.files.open("s3://lake/xray/", "2024/0001.png")

    Raises:
        UsageError: the dataset has no index or no such file.
        ChecksumMismatchError: the stored bytes are damaged (the shard named).
        StorageError: the destination cannot be read.
    """
    location = (
        dest if isinstance(dest, Location) else Location.parse(dest, dest_options)
    )
    return read_packed(location, lookup(location, path))
