"""Verification: prove the destination holds exactly what its manifest records.

The cheap check lists the destination once and compares every shard's size,
and its CRC32C where the store reports one; for stores that report none it
re-reads the bytes through CRC32C. ``deep`` always re-reads the bytes, then
parses each Parquet footer and recounts the rows. A packed dataset
(``--format files``) must also have an index naming exactly its objects.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pyarrow.parquet as pq

from datamove.checksum import crc32c_of_file
from datamove.errors import DatamoveError, UsageError
from datamove.files import BLOB_SUFFIX, INDEX, read_index
from datamove.formats import FILES
from datamove.inventory import STATE_DIR
from datamove.report import VerifyReport
from datamove.state import Manifest, ShardReceipt, read_manifest
from datamove.storage import Location
from datamove.tiering.records import restore_required_paths

log = logging.getLogger(__name__)


def _listing(dest: Location) -> dict[str, dict[str, Any]]:
    entries = dest.adapter.find(dest.fs, dest.root)
    return {
        dest.relative(path): info
        for path, info in entries.items()
        if not dest.relative(path).startswith(f"{STATE_DIR}/")
    }


# Upload argument -> the field a HEAD reports it in.
_ENCRYPTION_FIELDS = {
    "ServerSideEncryption": "ServerSideEncryption",
    "SSEKMSKeyId": "SSEKMSKeyId",
    "kms_key_name": "kmsKeyName",
    "encryption_scope": "encryption_scope",
}


def _encryption_problems(
    dest: Location, shard: ShardReceipt, expected: list[list[str]]
) -> list[str]:
    """Whether the object still has the server-side encryption it was written with."""
    info = dest.adapter.head(dest.fs, dest.path(shard.path))
    problems = []
    for name, value in expected:
        found = info.get(_ENCRYPTION_FIELDS.get(name, name))
        # KMS keys come back as full ARNs or with a key version appended.
        if found is None or not (str(found) == value or value in str(found)):
            problems.append(
                f"{dest.display(shard.path)}: {name} is {found!r}, "
                f"written with {value!r}"
            )
    return problems


def _check_shard(
    dest: Location,
    shard: ShardReceipt,
    info: Mapping[str, Any] | None,
    deep: bool,
    encryption: list[list[str]] | None = None,
    archived: bool = False,
) -> list[str]:
    where = dest.display(shard.path)
    if info is None:
        return [f"{where}: missing"]
    if archived:
        return _check_archived(dest, shard, info)
    if encryption:
        problems = _encryption_problems(dest, shard, encryption)
        if problems:
            return problems
    size = int(info.get("size") or 0)
    if size != shard.size:
        return [f"{where}: size {size}, manifest says {shard.size}"]
    adapter = dest.adapter
    reported = None
    if adapter.reports_crc32c and not deep:
        reported = adapter.reported_crc32c(dict(info))
        if reported is None:
            # Some listings (S3's) carry no checksums: a HEAD is still no read.
            reported = adapter.reported_crc32c(
                adapter.head(dest.fs, dest.path(shard.path))
            )
    if reported is not None:
        if reported != shard.crc32c:
            return [f"{where}: CRC32C {reported}, manifest says {shard.crc32c}"]
        return []
    try:
        with adapter.open_read(dest.fs, dest.path(shard.path)) as handle:
            crc, length = crc32c_of_file(handle)
    except FileNotFoundError:
        return [f"{where}: missing"]
    except Exception as error:
        # A store client that checks checksums itself (botocore's
        # FlexibleChecksumError) refuses damaged bytes: that is a finding.
        return [f"{where}: cannot be read back ({type(error).__name__}: {error})"]
    if crc != shard.crc32c or length != shard.size:
        return [f"{where}: CRC32C of the bytes is {crc}, manifest says {shard.crc32c}"]
    if deep and not shard.path.endswith(BLOB_SUFFIX):
        try:
            with dest.fs.open(dest.path(shard.path), "rb") as handle:
                rows = pq.ParquetFile(handle).metadata.num_rows
        except Exception as error:
            return [f"{where}: Parquet footer unreadable ({type(error).__name__})"]
        if rows != shard.rows:
            return [f"{where}: {rows} rows, manifest says {shard.rows}"]
    return []


def _check_archived(
    dest: Location, shard: ShardReceipt, info: Mapping[str, Any]
) -> list[str]:
    """A shard that must be restored before a read: compare the size and the
    checksum the store reports (a HEAD is allowed), never the bytes."""
    where, adapter = dest.display(shard.path), dest.adapter
    if int(info.get("size") or 0) != shard.size:
        return [f"{where}: size {info.get('size')}, manifest says {shard.size}"]
    if adapter.reports_crc32c:
        reported = adapter.reported_crc32c(dict(info))
        if reported is None:
            head = adapter.head(dest.fs, dest.path(shard.path))
            reported = adapter.reported_crc32c(head)
        if reported is not None and reported != shard.crc32c:
            return [f"{where}: CRC32C {reported}, manifest says {shard.crc32c}"]
        return []
    md5 = adapter.reported_md5(dict(info))
    if md5 is not None and shard.md5 is not None and md5 != shard.md5:
        return [f"{where}: MD5 {md5}, manifest says {shard.md5}"]
    return []


def _index_problems(dest: Location, manifest: Manifest) -> list[str]:
    """Whether a packed dataset's index is readable and names exactly the
    manifest's objects."""
    try:
        index = read_index(dest)
    except DatamoveError as error:
        return [str(error)]
    named = set(index.column("object").to_pylist())
    recorded = {shard.path for shard in manifest.shards}
    if named != recorded:
        return [
            f"{dest.display(INDEX)}: names {len(named)} objects, the manifest "
            f"{len(recorded)}; re-run the sync to write it again"
        ]
    return []


def verify_destination(dest: Location, deep: bool = False) -> VerifyReport:
    """Check every shard in the manifest.

    Returns a report listing each problem; it never raises for a mismatch.

    Raises:
        UsageError: the destination has no manifest.
    """
    manifest = read_manifest(dest)
    if manifest is None:
        raise UsageError(
            f"{dest.url}: no datamove manifest here; run `datamove sync` into it first"
        )
    listing = _listing(dest)
    archived = restore_required_paths(manifest, dest.protocol)
    if archived:
        log.info(
            "%s: %d archived shards checked by metadata only", dest.url, len(archived)
        )
    encryption = manifest.config.get("encryption") or None
    problems: list[str] = []
    rows = 0
    for shard in manifest.shards:
        found = _check_shard(
            dest,
            shard,
            listing.get(shard.path),
            deep,
            encryption,
            archived=shard.path in archived,
        )
        problems.extend(found)
        if not found:
            rows += shard.rows
    if manifest.config.get("format") == FILES:
        problems.extend(_index_problems(dest, manifest))
    for problem in problems:
        log.warning("%s", problem)
    return VerifyReport(
        dest=dest.url,
        deep=deep,
        shards_checked=len(manifest.shards),
        rows_checked=rows,
        problems=tuple(problems),
        run_id=manifest.run_id,
    )
