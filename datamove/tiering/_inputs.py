"""Inputs shared by the tier commands: policy, prices, access events, times."""

from __future__ import annotations

import logging
import math
import os
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from datamove.tiering.access import hive_partition, normalize_path
from datamove.tiering.logs import AccessEvent, LogReadStats, read_access_logs
from datamove.tiering.policy import TierPolicy, default_policy, load_policy
from datamove.tiering.prices import PriceTable, load_prices

log = logging.getLogger(__name__)

# A read as the planner keeps it: (time, bytes, operation); 0 bytes stands
# for "the whole object".
Read = tuple[datetime, int, str]


def load_policy_and_prices(
    policy_file: str | os.PathLike[str] | None,
    prices_file: str | os.PathLike[str] | None,
    provider: str | None,
) -> tuple[TierPolicy, PriceTable | None]:
    """The policy (default when None) and, for stores with classes, the prices:
    the packaged table, the policy's ``price_file`` over it, ``prices_file``
    over both.

    Raises:
        UsageError: a file is missing or invalid (the message names it).
    """
    policy = load_policy(policy_file) if policy_file is not None else default_policy()
    if provider is None:
        return policy, None
    return policy, load_prices(policy.price_file, prices_file)


def read_events(
    access_logs: Sequence[str | os.PathLike[str]] | str | None,
    kind: str | None,
    storage_options: Mapping[str, Any] | None,
) -> tuple[list[AccessEvent], LogReadStats]:
    """Every read in the given logs (none when there are no logs).

    Raises:
        UsageError, InputError: as :func:`~datamove.tiering.read_access_logs`.
    """
    stats = LogReadStats()
    if not access_logs:
        return [], stats
    sources = (
        [access_logs] if isinstance(access_logs, str | os.PathLike) else access_logs
    )
    events = list(
        read_access_logs(
            list(sources), kind, stats=stats, storage_options=storage_options
        )
    )
    log.info(
        "access logs: %d reads in %d files (%d records skipped as malformed)",
        stats.events,
        stats.files,
        stats.malformed,
    )
    return events, stats


def parse_time(value: Any) -> datetime | None:
    """An aware UTC time from an ISO string, epoch seconds or a datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return datetime.fromtimestamp(seconds, UTC)
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def ancestors(path: str) -> list[str]:
    """The directories above a relative path, outermost first."""
    parts = path.strip("/").split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]


def source_names(source_root: str, relpath: str) -> list[str]:
    """The normalised names a log may give a source file: relative to the
    source root, and below it (absolute path or URL without scheme)."""
    root, relative = normalize_path(source_root), normalize_path(relpath)
    names = [relative]
    if root:
        names.append(f"{root}/{relative}")
        if root.endswith("/" + relative):
            names.append(root)  # the source was this one file
    return names


def source_directory_names(source_root: str, relpath: str) -> list[str]:
    """The names a log may give the source directories holding a file, the
    source root included."""
    root = normalize_path(source_root)
    found: list[str] = [root] if root else []
    for directory in ancestors(relpath):
        found.append(directory)
        if root:
            found.append(f"{root}/{directory}")
    return found


def as_list(values: Iterable[str] | str | None) -> list[str]:
    """A list from one value, several, or none."""
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    return list(values)


def partition_values(partition: str) -> dict[str, str]:
    """The values of a shard's hive partition (``day=2026-01-01/...``)."""
    values = hive_partition(f"{partition}/shard") if partition else {}
    return {k: urllib.parse.unquote(v) for k, v in values.items()}
