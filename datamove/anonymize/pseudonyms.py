"""The pseudonym map: token to raw value, for re-identification on-prem.

The map holds raw values, so it must stay where the raw data is.
:func:`check_pseudonym_map_url` refuses any location that is not plainly
on-prem (a local path, HDFS, SFTP/SSH or SMB) unless the caller forces it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import pyarrow as pa

from datamove.errors import UsageError
from datamove.storage import redact_url

PSEUDONYM_SCHEMA = pa.schema(
    [
        pa.field("column", pa.string(), nullable=False),
        pa.field("token", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)
ON_PREM_PROTOCOLS = frozenset(
    {"", "file", "local", "hdfs", "viewfs", "sftp", "ssh", "smb", "memory"}
)


def is_on_prem_url(url: str) -> bool:
    """Whether ``url`` is a local path or uses an on-prem protocol.

    Anything else (s3, gs, gcs, az, abfs, abfss, adl, http, https, ...) is
    treated as off the premises; an unknown protocol is too (fail closed).
    """
    for part in url.split("::"):  # fsspec chains, e.g. simplecache::s3://...
        scheme = urlsplit(part).scheme.lower()
        if len(scheme) != 1 and scheme not in ON_PREM_PROTOCOLS:  # 1: drive letter
            return False
    return True


def check_pseudonym_map_url(url: str, *, force: bool = False) -> None:
    """Refuse to write the pseudonym map off the premises unless forced.

    Raises:
        UsageError: ``url`` is not on-prem and ``force`` is false.
    """
    if force or is_on_prem_url(url):
        return
    raise UsageError(
        f"{redact_url(url)}: the pseudonym map holds raw values and must stay "
        "on-prem; give a local, HDFS, SFTP or SMB location, or force writing it "
        "to this store"
    )


def concat_pairs(tables: Iterable[pa.Table]) -> pa.Table:
    """Concatenate pseudonym tables (an empty table when there are none)."""
    parts = list(tables)
    if not parts:
        return PSEUDONYM_SCHEMA.empty_table()
    return pa.concat_tables(parts)


def merge_pseudonym_pairs(tables: Iterable[pa.Table]) -> pa.Table:
    """One table of distinct pairs from many (one per batch, shard or worker)."""
    distinct = concat_pairs(tables).group_by(["column", "token", "raw"]).aggregate([])
    return distinct.select(PSEUDONYM_SCHEMA.names).cast(PSEUDONYM_SCHEMA)
