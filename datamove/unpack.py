"""Unpack: restore the file tree a ``--format files`` sync packed.

Every file listed in ``_datamove/files-index.parquet`` is written below the
target with its relative path, bytes and (on local disk) modification time,
after its CRC32C is checked. Each shard is read once, whole, and its own
CRC32C checked against the index before any of its rows is used, so a
damaged shard is named and none of its files is written.

Resumable: a file already present with the recorded size and CRC32C is left
alone. Files are written under a temporary name in their folder and renamed
into place, so a killed unpack never leaves a partial file under a final
name; the temporary files it leaves are removed by the next unpack.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from datamove.checksum import crc32c_of_file
from datamove.errors import (
    DatamoveError,
    InputError,
    StorageError,
    UsageError,
    VerificationError,
)
from datamove.files import (
    READ_CHUNK,
    check_row,
    damaged,
    media_type,
    read_index,
    safe_relpath,
    table_rows,
)
from datamove.storage import Location
from datamove.stores.base import WriteOptions

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".dm-partial"
_TEMP_NAME = re.compile(r"^\.dm-[0-9a-f]{16}\.dm-partial$")
# A shard up to this size is checked and parsed in memory; larger ones spill
# to a temporary file.
SPOOL_BYTES = 256 << 20


@dataclass(frozen=True)
class UnpackReport:
    """What an unpack did."""

    dest: str
    target: str
    files: int
    restored: int
    skipped: int
    bytes_written: int
    objects_read: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _LocalTarget:
    """A local folder: temporary name, utime, rename; nothing outside it."""

    restores_mtime = True

    def __init__(self, root: str) -> None:
        os.makedirs(root, exist_ok=True)
        self.root = os.path.realpath(root)

    def full(self, relpath: str) -> str:
        path = os.path.join(self.root, *relpath.split("/"))
        parent = os.path.realpath(os.path.dirname(path))
        if parent != self.root and not parent.startswith(self.root + os.sep):
            raise InputError(
                f"{relpath}: its folder resolves outside {self.root} (a symbolic "
                "link?); remove the link or unpack to an empty folder"
            )
        return path

    def present(self, relpath: str, size: int, crc32c: str, mtime: int) -> bool:
        path = self.full(relpath)
        try:
            stat = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if stat.st_size != size:
            return False
        with open(path, "rb") as handle:
            if crc32c_of_file(handle)[0] != crc32c:
                return False
        if stat.st_mtime_ns != mtime:
            os.utime(path, ns=(mtime, mtime))
        return True

    def write(self, relpath: str, chunks: Iterator[bytes], mtime: int) -> int:
        """Write ``chunks`` to ``relpath``; the iterator raises to abort."""
        path = self.full(relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        path = self.full(relpath)
        temp = os.path.join(
            os.path.dirname(path), f".dm-{secrets.token_hex(8)}{TEMP_SUFFIX}"
        )
        written = 0
        try:
            with open(temp, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    written += len(chunk)
            os.utime(temp, ns=(mtime, mtime))
            os.replace(temp, path)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
        return written

    def clean(self) -> int:
        """Remove temporary files a killed unpack left; return how many."""
        removed = 0
        for folder, _, names in os.walk(self.root):
            for name in names:
                if _TEMP_NAME.match(name):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
        return removed


class _StoreTarget:
    """Any other fsspec location, through the store's atomic writer.

    Object stores set their own modification times: those are not restored.
    """

    restores_mtime = False

    def __init__(self, location: Location) -> None:
        self.location = location

    def present(self, relpath: str, size: int, crc32c: str, mtime: int) -> bool:
        location = self.location
        try:
            info = location.adapter.head(location.fs, location.path(relpath))
        except FileNotFoundError:
            return False
        if int(info.get("size") or 0) != size:
            return False
        reported = location.adapter.reported_crc32c(dict(info))
        if reported is not None:
            return bool(reported == crc32c)
        with location.fs.open(location.path(relpath), "rb") as handle:
            return crc32c_of_file(handle)[0] == crc32c

    def write(self, relpath: str, chunks: Iterator[bytes], mtime: int) -> int:
        location = self.location
        writer = location.adapter.open_write(
            location.fs,
            location.path(relpath),
            WriteOptions(content_type=media_type(relpath)),
        )
        written = 0
        try:
            for chunk in chunks:
                writer.write(chunk)
                written += len(chunk)
        except BaseException:
            writer.abort()
            raise
        writer.commit()
        return written

    def clean(self) -> int:
        return 0


_Target = _LocalTarget | _StoreTarget


def _check_apart(dest: Location, target: Location) -> None:
    if dest.protocol != target.protocol:
        return
    a, b = dest.root.rstrip("/") + "/", target.root.rstrip("/") + "/"
    if a.startswith(b) or b.startswith(a):
        raise UsageError(
            f"{target.url} and {dest.url} overlap; unpack to a folder outside the "
            "packed dataset"
        )


def _fetch(dest: Location, entry: Mapping[str, Any]) -> IO[bytes]:
    """The whole object of ``entry``, its size and CRC32C checked.

    Raises:
        ChecksumMismatchError: the object differs from what the index recorded.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    try:
        with dest.adapter.open_read(dest.fs, dest.path(entry["object"])) as handle:
            while chunk := handle.read(READ_CHUNK):
                spool.write(chunk)
    except FileNotFoundError:
        spool.close()
        raise StorageError(
            f"{dest.display(entry['object'])}: missing; re-sync to rewrite it"
        ) from None
    spool.seek(0)
    crc, size = crc32c_of_file(spool)  # type: ignore[arg-type]
    spool.seek(0)
    if size != entry["object_size"] or crc != entry["object_crc32c"]:
        spool.close()
        raise damaged(
            dest,
            {**entry, "row_group": -1},
            f"the object holds {size} bytes with CRC32C {crc}, the index records "
            f"{entry['object_size']} bytes with {entry['object_crc32c']}",
        )
    return spool  # type: ignore[return-value]


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    while chunk := spool.read(READ_CHUNK):
        yield chunk


def _restore_blob(
    dest: Location, target: _Target, entry: Mapping[str, Any]
) -> tuple[int, int]:
    with _fetch(dest, entry) as spool:
        # The object's checksum is the file's: checked above.
        written = target.write(entry["path"], _chunks(spool), entry["mtime"])
    return 1, written


def _restore_shard(
    dest: Location, target: _Target, entries: list[dict[str, Any]]
) -> tuple[int, int]:
    restored = written = 0
    by_group: dict[int, list[dict[str, Any]]] = {}
    for entry in entries:
        by_group.setdefault(entry["row_group"], []).append(entry)
    with _fetch(dest, entries[0]) as spool:
        try:
            parquet = pq.ParquetFile(spool, page_checksum_verification=True)
        except (OSError, pa.ArrowException) as error:
            raise damaged(dest, entries[0], f"cannot decode ({error})") from error
        for group in sorted(by_group):
            try:
                rows = table_rows(parquet.read_row_group(group))
            except (OSError, pa.ArrowException) as error:
                entry = by_group[group][0]
                raise damaged(dest, entry, f"cannot decode ({error})") from error
            for entry in by_group[group]:
                if entry["row"] >= len(rows):
                    raise damaged(dest, entry, f"no row {entry['row']}")
                data = check_row(dest, entry, rows[entry["row"]])
                written += target.write(entry["path"], iter([data]), entry["mtime"])
                restored += 1
    return restored, written


def unpack(
    dest: str | Location,
    target: str | Location,
    dest_options: Mapping[str, Any] | None = None,
    target_options: Mapping[str, Any] | None = None,
) -> UnpackReport:
    """Restore every file of a packed dataset below ``target``.

    Paths, bytes and (for a local target) modification times are restored;
    every file is checked against its CRC32C first. A file already present
    with the recorded size and CRC32C is skipped (its time set), so a killed
    unpack resumes where it stopped. A damaged object does not stop the
    others; it is reported at the end.

    Raises:
        UsageError: no files index at ``dest``, or ``target`` overlaps it.
        InputError: the index holds an unsafe path (absolute, ``..``).
        VerificationError: objects were damaged; ``problems`` names each
            shard, and none of their files was written.
        StorageError: ``dest`` or ``target`` cannot be read or written.
    """
    started = time.monotonic()
    dst = dest if isinstance(dest, Location) else Location.parse(dest, dest_options)
    tgt = (
        target
        if isinstance(target, Location)
        else Location.parse(target, target_options)
    )
    _check_apart(dst, tgt)
    entries = table_rows(read_index(dst))
    for entry in entries:
        safe_relpath(entry["path"], dst.display(entry["object"]))
    writer: _Target = _LocalTarget(tgt.root) if tgt.is_local else _StoreTarget(tgt)
    if not writer.restores_mtime:
        log.warning("%s: object stores keep their own times; mtimes not set", tgt.url)
    cleaned = writer.clean()
    if cleaned:
        log.info(
            "%s: removed %d temporary files of an earlier unpack", tgt.url, cleaned
        )

    by_object: dict[str, list[dict[str, Any]]] = {}
    skipped = 0
    for entry in entries:
        args = (entry["path"], entry["size"], entry["crc32c"], entry["mtime"])
        if writer.present(*args):
            skipped += 1
        else:
            by_object.setdefault(entry["object"], []).append(entry)

    restored = written = 0
    problems: list[str] = []
    for name, wanted in sorted(by_object.items()):
        try:
            if wanted[0]["row_group"] < 0:
                count, size = _restore_blob(dst, writer, wanted[0])
            else:
                count, size = _restore_shard(dst, writer, wanted)
        except DatamoveError as error:
            if isinstance(error, InputError):
                raise
            log.error("%s: %s", dst.display(name), error)
            problems.append(str(error))
            continue
        restored += count
        written += size
        log.debug("%s: %d files restored", dst.display(name), count)

    if problems:
        raise VerificationError(
            f"{dst.url}: {len(problems)} damaged objects, their files were not "
            f"restored: {'; '.join(problems[:3])}",
            problems,
        )
    report = UnpackReport(
        dest=dst.url,
        target=tgt.url,
        files=len(entries),
        restored=restored,
        skipped=skipped,
        bytes_written=written,
        objects_read=len(by_object),
        seconds=round(time.monotonic() - started, 3),
    )
    log.info("%s: %d files restored, %d already present", tgt.url, restored, skipped)
    return report
