"""Objects to tier, and which of them each logged read touched.

A logged path names an object directly (a shard read at the store), a
directory (a partition read as a whole), or something the caller can map:
a source file whose rows went into several shards, a table name, a hive
partition. :func:`attribute_events` resolves each in that order and returns
per-object :class:`AccessStats`.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from datamove.errors import UsageError
from datamove.tiering.logs import AccessEvent

log = logging.getLogger(__name__)

# Caller-supplied mapping from a logged path to object paths or directories.
PathMapping = Mapping[str, Sequence[str]] | Callable[[str], Sequence[str] | None]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_AZURE_SCHEMES = ("az://", "abfs://", "abfss://", "adl://")
_HIVE = re.compile(r"^([^=/]+)=([^/]*)$")


def normalize_path(path: str) -> str:
    """A path as compared between listings and logs: no scheme, no leading
    or trailing slash, and for Azure URLs no ``@account...`` after the
    container."""
    text = path.strip()
    lowered = text.lower()
    azure = lowered.startswith(_AZURE_SCHEMES)
    text = _SCHEME.sub("", text).strip("/")
    if azure:
        container, _, rest = text.partition("/")
        text = f"{container.partition('@')[0]}/{rest}".rstrip("/")
    return text


def hive_partition(path: str) -> dict[str, str]:
    """The ``key=value`` directory segments of a path, outermost first."""
    segments = normalize_path(path).split("/")[:-1]
    found: dict[str, str] = {}
    for segment in segments:
        match = _HIVE.match(segment)
        if match:
            found[match.group(1)] = match.group(2)
    return found


@dataclass(frozen=True)
class ObjectInfo:
    """One object (a shard) to tier.

    ``created`` is when it was written (aware; naive times are read as UTC);
    ``current_class`` its storage class now, None when it does not exist yet
    or the store has no classes; ``partition`` its hive partition values
    (parsed from the path when left empty); ``class_since`` when it entered
    its current class, if that differs from ``created``.
    """

    path: str
    size: int
    created: datetime
    current_class: str | None = None
    partition: Mapping[str, str] = field(default_factory=dict)
    class_since: datetime | None = None

    def __post_init__(self) -> None:
        if self.size < 0:
            raise UsageError(f"{self.path}: object size {self.size} is negative")
        object.__setattr__(self, "created", as_utc(self.created))
        if self.class_since is not None:
            object.__setattr__(self, "class_since", as_utc(self.class_since))
        if not self.partition:
            object.__setattr__(self, "partition", hive_partition(self.path))


def as_utc(when: datetime) -> datetime:
    """``when`` as an aware UTC datetime; a naive one is taken as UTC."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


@dataclass(frozen=True)
class AccessStats:
    """The reads attributed to one object: (time, bytes, operation), by time.

    ``bytes`` is what the read returned, or the object's size when the log
    did not say (a whole partition or a source file was read).
    """

    path: str
    reads: tuple[tuple[datetime, int, str], ...] = ()

    @property
    def last_access(self) -> datetime | None:
        """The time of the latest read, if any."""
        return self.reads[-1][0] if self.reads else None

    def accesses(self, gap: timedelta) -> list[datetime]:
        """Start times of access sessions: reads closer than ``gap`` to the
        previous read belong to one session (a job reading one Parquet file
        issues many range requests)."""
        starts: list[datetime] = []
        previous: datetime | None = None
        for when, _, _ in self.reads:
            if previous is None or when - previous >= gap:
                starts.append(when)
            previous = when
        return starts


@dataclass(frozen=True)
class Attribution:
    """Reads per object, and the counts of events that matched nothing.

    ``first_event`` and ``last_event`` span every event seen, matched or not:
    they bound the period the logs observe.
    """

    stats: Mapping[str, AccessStats]
    matched: int
    unmatched: int
    unmatched_examples: tuple[str, ...]
    first_event: datetime | None
    last_event: datetime | None


class _Index:
    """Object paths and every directory above them, for prefix lookups."""

    def __init__(self, objects: Sequence[ObjectInfo]) -> None:
        self.by_path: dict[str, ObjectInfo] = {}
        self.by_directory: dict[str, list[str]] = defaultdict(list)
        for info in objects:
            path = normalize_path(info.path)
            if path in self.by_path:
                raise UsageError(f"{info.path}: the object is listed twice")
            self.by_path[path] = info
            parts = path.split("/")
            for depth in range(1, len(parts)):
                self.by_directory["/".join(parts[:depth])].append(path)

    def resolve(self, path: str) -> tuple[list[str], bool]:
        """Object paths for ``path``, and whether it named one object exactly."""
        if path in self.by_path:
            return [path], True
        return list(self.by_directory.get(path, ())), False


def attribute_events(
    events: Iterable[AccessEvent],
    objects: Sequence[ObjectInfo],
    *,
    mapping: PathMapping | None = None,
) -> Attribution:
    """Assign each read to the objects it touched.

    A logged path is resolved, in order: as an object's path; through
    ``mapping`` (a dict or a function from a logged path to object paths or
    directories, e.g. a source file to the shards holding its rows); as a
    directory holding objects (a partition read as a whole). Paths are
    compared after :func:`normalize_path`.

    Returns:
        The reads per object path (normalised) and what matched nothing.

    Raises:
        UsageError: an object is listed twice.
    """
    index = _Index(objects)
    lookup = _mapping_lookup(mapping)
    cache: dict[str, tuple[list[str], bool]] = {}
    reads: dict[str, list[tuple[datetime, int, str]]] = defaultdict(list)
    matched = unmatched = 0
    examples: list[str] = []
    first: datetime | None = None
    last: datetime | None = None

    for event in events:
        when = as_utc(event.timestamp)
        first = when if first is None or when < first else first
        last = when if last is None or when > last else last
        path = normalize_path(event.path)
        if path not in cache:
            cache[path] = _resolve(index, lookup, path)
        targets, exact = cache[path]
        if not targets:
            unmatched += 1
            if len(examples) < 5 and path not in examples:
                examples.append(path)
            continue
        matched += 1
        for target in targets:
            size = _read_size(event, exact, index.by_path[target].size)
            reads[target].append((when, size, event.operation))

    if unmatched:
        log.info(
            "access logs: %d reads matched no object (e.g. %s)",
            unmatched,
            ", ".join(examples),
        )
    stats = {p: AccessStats(p, tuple(sorted(r))) for p, r in reads.items()}
    return Attribution(stats, matched, unmatched, tuple(examples), first, last)


def _read_size(event: AccessEvent, exact: bool, size: int) -> int:
    if event.operation == "HEAD":
        return 0
    if exact and event.bytes > 0:
        return event.bytes
    # A read of unknown extent, or of a directory or source file: whole object.
    return size


def _mapping_lookup(
    mapping: PathMapping | None,
) -> Callable[[str], Sequence[str]]:
    if mapping is None:
        return lambda _path: ()
    if callable(mapping):
        function = mapping

        def call(path: str) -> Sequence[str]:
            return function(path) or ()

        return call
    table = {normalize_path(k): list(v) for k, v in mapping.items()}
    return lambda path: table.get(path, ())


def _resolve(
    index: _Index, lookup: Callable[[str], Sequence[str]], path: str
) -> tuple[list[str], bool]:
    if path in index.by_path:
        return [path], True
    mapped = lookup(path)
    if mapped:
        found: dict[str, None] = {}
        for target in mapped:
            objects, _ = index.resolve(normalize_path(target))
            found.update(dict.fromkeys(objects))
        if found:
            return list(found), False
    return index.resolve(path)
