"""Inventory: walk a source location and list the files datamove can read."""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datamove.errors import StorageError, UsageError
from datamove.formats import FILES, FileFormat, detect_format
from datamove.storage import Location

log = logging.getLogger(__name__)

STATE_DIR = "_datamove"


@dataclass(frozen=True)
class SourceFile:
    """One source file and its fingerprint.

    The fingerprint (size, modification time, and with ``--checksum`` a
    content hash) decides whether a file changed since its shards were
    written.
    """

    relpath: str
    path: str
    size: int
    mtime: str
    format: FileFormat
    content_hash: str | None = None

    @property
    def fingerprint(self) -> dict[str, Any]:
        print_ = {"size": self.size, "mtime": self.mtime}
        if self.content_hash:
            print_["content_hash"] = self.content_hash
        return print_


@dataclass(frozen=True)
class Inventory:
    """The files found under a source, and those passed over with the reason."""

    source: str
    files: tuple[SourceFile, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        return sum(file.size for file in self.files)


def file_mtime(info: dict[str, Any]) -> str:
    """A listing entry's modification time (or version) as a stable string."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    return f"etag:{etag}" if etag else "unknown"


def _matches(relpath: str, patterns: Sequence[str]) -> bool:
    name = relpath.rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatchcase(relpath, p) or fnmatch.fnmatchcase(name, p)
        for p in patterns
    )


def _hidden(relpath: str) -> bool:
    return any(part.startswith((".", "_")) for part in relpath.split("/"))


def content_hash(location: Location, path: str) -> str:
    """A BLAKE2b digest of a file's bytes, for ``--checksum`` fingerprints."""
    digest = hashlib.blake2b(digest_size=16)
    with location.fs.open(path, "rb", block_size=8 << 20) as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def take_inventory(
    source: Location,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    forced_format: str | None = None,
    checksum: bool = False,
) -> Inventory:
    """List the readable files under ``source``.

    Hidden files and folders (names starting with ``.`` or ``_``) and files
    of no known format are passed over and reported in ``skipped``. With
    ``forced_format="files"`` every file is listed, hidden ones included
    (a restored tree must hold them too), except a ``_datamove`` state folder.

    Raises:
        UsageError: the source does not exist.
        StorageError: the source cannot be listed.
    """
    fs = source.fs
    try:
        if not fs.exists(source.root):
            raise UsageError(f"{source.url}: source does not exist; check the path")
        if fs.isfile(source.root):
            entries = {source.root: fs.info(source.root)}
            base = source.root.rsplit("/", 1)[0]
        else:
            entries = fs.find(source.root, detail=True, withdirs=False)
            base = source.root
    except (PermissionError, OSError) as error:
        if isinstance(error, UsageError):
            raise
        raise StorageError(f"{source.url}: cannot list the source: {error}") from error

    packing = forced_format == FILES
    files: list[SourceFile] = []
    skipped: list[tuple[str, str]] = []
    for path, info in sorted(entries.items()):
        if info.get("type") not in (None, "file"):
            continue
        relpath = path[len(base.rstrip("/")) + 1 :] if base != "/" else path.lstrip("/")
        if packing:
            if relpath.split("/", 1)[0] == STATE_DIR:
                continue
        elif _hidden(relpath):
            continue
        if include and not _matches(relpath, include):
            continue
        if exclude and _matches(relpath, exclude):
            skipped.append((relpath, "excluded"))
            continue
        fmt = detect_format(relpath, forced_format)
        if fmt is None:
            skipped.append((relpath, "no known format; pass --format or --exclude"))
            continue
        file = SourceFile(
            relpath=relpath,
            path=path,
            size=int(info.get("size") or 0),
            mtime=file_mtime(info),
            format=fmt,
        )
        if checksum:
            file = SourceFile(
                **{**file.__dict__, "content_hash": content_hash(source, path)}
            )
        files.append(file)
    log.info("%s: %d files, %d skipped", source.url, len(files), len(skipped))
    return Inventory(source=source.url, files=tuple(files), skipped=tuple(skipped))
