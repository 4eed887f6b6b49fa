"""Tiers for a sync: the class each new shard is written in.

:func:`classes_for_sync` runs **before** the sync reads the source: it lists
the source files (a listing does not touch access times), takes each local
file's access time, reads the access logs and the destination's manifest,
and returns a :class:`SyncTiering`. The sharder asks it, as it opens each
shard, which class to write the shard in; the shard goes up straight into
that class (``WriteOptions(storage_class=...)``), so nothing is copied later.

A shard does not exist before the sync, so its reads are those of what it
is made of: the source file (logs of the old system, file access times),
the destination partition it lands in (``DST/day=2026-01-01/`` read as a
directory), the destination as a whole, and the shards that held the same
source file's rows in that partition before (when the file changed and is
synced again). Its age is that of its source data (the file's modification
time), not of the upload, or every new shard would look freshly read.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from datamove.formats import FILES
from datamove.inventory import STATE_DIR, take_inventory
from datamove.options import SyncOptions
from datamove.retry import call_with_retry
from datamove.state import UnitReceipt, read_manifest
from datamove.storage import Location
from datamove.tiering._inputs import (
    Read,
    ancestors,
    as_list,
    load_policy_and_prices,
    parse_time,
    partition_values,
    read_events,
    source_directory_names,
    source_names,
)
from datamove.tiering.access import ObjectInfo, as_utc, normalize_path
from datamove.tiering.logs import AccessEvent
from datamove.tiering.planner import (
    TierAssignment,
    TierPlan,
    _coverage_warnings,
    plan_tiers,
)
from datamove.tiering.policy import TIERS, TierPolicy
from datamove.tiering.prices import PriceTable, provider_for_protocol
from datamove.tiering.records import TierRecord, needs_restore

log = logging.getLogger(__name__)

_HIVE_SEGMENT = re.compile(r"^[^=/]+=[^/]*$")
# An access time this close to the modification time is the write itself.
_ATIME_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class SourceFacts:
    """One source file as the tier decision sees it."""

    size: int
    modified: datetime
    reads: tuple[Read, ...] = ()


@dataclass(frozen=True, eq=False)
class SyncTiering:
    """Decides the tier and class of each shard a sync writes.

    Built by :func:`classes_for_sync`; plain data, so it pickles and ships
    to Dask workers with the shard job. Decisions are deterministic (the
    plan time ``now`` is fixed when it is built), so a worker and the
    orchestrator agree on every shard.
    """

    dest_root: str
    protocol: str
    provider: str | None
    policy: TierPolicy
    prices: PriceTable | None
    region: str | None
    now: datetime
    observed_from: datetime | None
    shard_size: int
    sources: Mapping[str, SourceFacts]
    directories: Mapping[str, tuple[Read, ...]]
    shards: Mapping[tuple[str, str], tuple[Read, ...]]
    warnings: tuple[str, ...] = ()
    events_matched: int = 0
    events_unmatched: int = 0
    _cache: dict[tuple[str, str, str], TierAssignment] = field(
        default_factory=dict, repr=False
    )

    def assignment(
        self, source: str, partition: str = "", path: str | None = None
    ) -> TierAssignment:
        """The tier of the shard at ``path`` (relative to the destination
        root) holding rows of ``source`` (its path relative to the source
        root) in ``partition`` (``day=2026-01-01``; empty when unpartitioned).

        ``path`` is what policy overrides with ``match:`` see; it defaults
        to ``PARTITION/SOURCE``.
        """
        relative = path or "/".join(p for p in (partition, source) if p)
        key = (source, partition, relative)
        found = self._cache.get(key)
        if found is not None:
            return found
        facts = self.sources.get(source) or SourceFacts(self.shard_size, self.now)
        full = f"{self.dest_root.rstrip('/')}/{relative}"
        reads = self._reads(source, partition, facts)
        events = [AccessEvent(when, full, size, op) for when, size, op in reads]
        info = ObjectInfo(
            path=full,
            size=_estimate(facts.size, self.shard_size),
            created=facts.modified,
            current_class=None,
            partition=partition_values(partition),
        )
        plan = self._plan([info], events)
        found = plan.assignments[0]
        self._cache[key] = found
        return found

    def class_for(
        self, source: str, partition: str = "", path: str | None = None
    ) -> str | None:
        """The class to write the shard in; None for stores without classes."""
        return self.assignment(source, partition, path).storage_class

    def assignment_for_sources(
        self, sources: Sequence[str], partition: str = "", path: str | None = None
    ) -> TierAssignment:
        """The tier of a shard holding rows of several source files (packed
        files): the hottest any of them gets, so that no file is archived
        because it shares a shard with colder ones."""
        found = [self.assignment(source, partition, path) for source in sources]
        return min(found, key=lambda a: TIERS.index(a.tier) if a.tier in TIERS else 0)

    def class_for_sources(
        self, sources: Sequence[str], partition: str = "", path: str | None = None
    ) -> str | None:
        """:meth:`class_for` of a shard holding rows of all of ``sources``."""
        return self.assignment_for_sources(sources, partition, path).storage_class

    def tier_records(
        self,
        units: Iterable[UnitReceipt],
        sources: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Tier records (``Manifest.extra["tiers"]``) for the shards of
        ``units``, as written: shard path -> record. ``sources`` maps a unit
        id to the source files of a unit that read several."""
        records: dict[str, dict[str, Any]] = {}
        for unit in units:
            members = (sources or {}).get(unit.unit_id) or (unit.source,)
            for shard in unit.shards:
                found = self.assignment_for_sources(
                    members, shard.partition, shard.path
                )
                written = shard.storage_class
                restore = needs_restore(self.protocol, written) or (
                    found.restore_required
                    and written is not None
                    and written.casefold() == (found.storage_class or "").casefold()
                )
                record = TierRecord(
                    found.tier, written, restore, unit.written_at or None
                )
                records[shard.path] = record.to_dict()
        return records

    def preview(self) -> TierPlan:
        """A plan over the source files as if each became one unpartitioned
        shard: the tiers and costs a ``sync --dry-run`` can show."""
        objects: list[ObjectInfo] = []
        events: list[AccessEvent] = []
        for source, facts in sorted(self.sources.items()):
            full = f"{self.dest_root.rstrip('/')}/{source}"
            objects.append(
                ObjectInfo(full, _estimate(facts.size, self.shard_size), facts.modified)
            )
            events.extend(
                AccessEvent(when, full, size, op)
                for when, size, op in self._reads(source, "", facts)
            )
        plan = self._plan(objects, events)
        warnings = tuple(dict.fromkeys((*self.warnings, *plan.warnings)))
        return dataclasses.replace(plan, warnings=warnings)

    def _reads(self, source: str, partition: str, facts: SourceFacts) -> list[Read]:
        reads = list(facts.reads)
        reads.extend(self.shards.get((source, partition), ()))
        # The destination root, then each partition directory down to this one.
        for directory in ["", *(ancestors(f"{partition}/x") if partition else ())]:
            reads.extend(self.directories.get(directory, ()))
        return reads

    def _plan(self, objects: list[ObjectInfo], events: list[AccessEvent]) -> TierPlan:
        return plan_tiers(
            objects,
            events,
            provider=self.provider,
            policy=self.policy,
            prices=self.prices,
            region=self.region,
            now=self.now,
            observed_from=self.observed_from,
            log_warnings=False,
        )


def classes_for_sync(
    source: str | Location,
    dest: str | Location,
    *,
    access_logs: Sequence[str] | str | None = None,
    policy_file: str | os.PathLike[str] | None = None,
    prices_file: str | os.PathLike[str] | None = None,
    source_options: Mapping[str, Any] | None = None,
    dest_options: Mapping[str, Any] | None = None,
    options: SyncOptions | None = None,
    region: str | None = None,
    now: datetime | None = None,
    log_format: str | None = None,
    log_options: Mapping[str, Any] | None = None,
    scan_access_times: bool | None = None,
) -> SyncTiering:
    """Decide, before a sync reads anything, how to tier the shards it writes.

    Call it before the sync plans (planning samples the source files, which
    moves their access times to now).

    Args:
        source, dest: the sync's source and destination (URLs or locations).
        access_logs: logs of the destination or of the old system; paths in
            them may name source files (absolute or relative to the source
            root), source directories, destination partitions or shards.
        policy_file, prices_file, region, log_format, log_options: as for
            :func:`~datamove.tiering.commands.tier_plan`.
        source_options, dest_options: fsspec storage options.
        options: the sync's options: ``include``, ``exclude``, ``format``
            choose the files as the sync will, ``shard_size`` bounds the
            expected shard size.
        now: the time to plan for (default: now).
        scan_access_times: take local source files' access times as reads
            (default: when the source is local). An access time within a
            second of the modification time is taken as the write itself.

    Returns:
        The decisions, ready to go into the shard job.

    Raises:
        UsageError: an invalid policy, price file, region or log format.
        InputError: an access log cannot be read.
        StorageError: the source cannot be listed or the destination's
            manifest read.
    """
    src = (
        source
        if isinstance(source, Location)
        else Location.parse(source, source_options)
    )
    dst = dest if isinstance(dest, Location) else Location.parse(dest, dest_options)
    opts = options or SyncOptions()
    provider = provider_for_protocol(dst.protocol)
    policy, prices = load_policy_and_prices(policy_file, prices_file, provider)
    moment = as_utc(now) if now is not None else datetime.now(UTC)
    # Fail on a bad region or class mapping now, not on the first worker.
    plan_tiers([], provider=provider, policy=policy, prices=prices, region=region)

    inventory = take_inventory(src, opts.include, opts.exclude, opts.format)
    if opts.format is None and not inventory.files and inventory.skipped:
        # The sync will pack the files (``--format files``): tier them as such.
        inventory = take_inventory(src, opts.include, opts.exclude, FILES)
    atime_reads: dict[str, list[Read]] = defaultdict(list)
    scan = src.is_local if scan_access_times is None else scan_access_times
    modified: dict[str, datetime] = {}
    for file in inventory.files:
        modified[file.relpath] = parse_time(file.mtime) or moment
        if scan and src.is_local:
            read = _access_time(file.path, modified[file.relpath])
            if read is not None:
                atime_reads[file.relpath].append(read)

    events, _ = read_events(as_list(access_logs), log_format, log_options)
    manifest = call_with_retry(
        lambda: read_manifest(dst), operation="read the manifest", subject=dst.url
    )
    # A read of a shard counts for every source file whose rows it holds.
    existing = {
        shard.path: tuple(
            (source, shard.partition)
            for source in [path for path, _ in shard.sources] or [unit.source]
        )
        for unit in (manifest.units if manifest is not None else ())
        for shard in unit.shards
    }
    attribution = _SyncAttribution(
        src, dst, [f.relpath for f in inventory.files], existing
    )
    for event in events:
        attribution.add(event)
    for relpath, reads in atime_reads.items():
        attribution.sources[relpath].extend(reads)

    times = [r[0] for reads in atime_reads.values() for r in reads]
    if attribution.first is not None:
        times.append(attribution.first)
    first = min(times) if times else None
    warnings = _coverage_warnings(policy, first, moment, len(inventory.files))
    if attribution.unmatched:
        warnings.append(
            f"{attribution.unmatched} logged reads matched no source file, partition "
            f"or shard (e.g. {', '.join(attribution.examples)})"
        )
    for message in warnings:
        log.warning("%s: sync tiers: %s", dst.url, message)

    sources = {
        file.relpath: SourceFacts(
            file.size,
            modified[file.relpath],
            tuple(sorted(attribution.sources.get(file.relpath, ()))),
        )
        for file in inventory.files
    }
    return SyncTiering(
        dest_root=dst.root,
        protocol=dst.protocol,
        provider=provider,
        policy=policy,
        prices=prices,
        region=region,
        now=moment,
        observed_from=first,
        shard_size=opts.shard_size,
        sources=sources,
        directories={k: tuple(sorted(v)) for k, v in attribution.directories.items()},
        shards={k: tuple(sorted(v)) for k, v in attribution.shards.items()},
        warnings=tuple(warnings),
        events_matched=attribution.matched,
        events_unmatched=attribution.unmatched,
    )


class _SyncAttribution:
    """Sorts logged reads into reads of source files, destination
    directories and existing shards."""

    def __init__(
        self,
        source: Location,
        dest: Location,
        relpaths: Sequence[str],
        existing: Mapping[str, tuple[tuple[str, str], ...]],
    ) -> None:
        self.names: dict[str, str] = {}
        self.folders: dict[str, list[str]] = defaultdict(list)
        for relpath in relpaths:
            for name in source_names(source.root, relpath):
                self.names.setdefault(name, relpath)
            for name in source_directory_names(source.root, relpath):
                self.folders[name].append(relpath)
        self.dest_root = normalize_path(dest.root)
        self.existing = {normalize_path(k): v for k, v in existing.items()}
        self.sources: dict[str, list[Read]] = defaultdict(list)
        self.directories: dict[str, list[Read]] = defaultdict(list)
        self.shards: dict[tuple[str, str], list[Read]] = defaultdict(list)
        self.matched = self.unmatched = 0
        self.examples: list[str] = []
        self.first: datetime | None = None

    def add(self, event: AccessEvent) -> None:
        when = as_utc(event.timestamp)
        self.first = when if self.first is None or when < self.first else self.first
        path = normalize_path(event.path)
        whole: Read = (when, 0, event.operation)
        if path in self.names:
            self.sources[self.names[path]].append(whole)
        elif path == self.dest_root or path.startswith(self.dest_root + "/"):
            if not self._destination(path[len(self.dest_root) + 1 :], event, when):
                return self._miss(path)
        elif path in self.folders:
            for relpath in self.folders[path]:
                self.sources[relpath].append(whole)
        elif not self._destination(path, event, when, relative_only=True):
            return self._miss(path)
        self.matched += 1

    def _destination(
        self,
        relative: str,
        event: AccessEvent,
        when: datetime,
        relative_only: bool = False,
    ) -> bool:
        if relative.startswith(f"{STATE_DIR}/") or relative == STATE_DIR:
            return False
        if relative in self.existing:
            for key in self.existing[relative]:
                self.shards[key].append((when, event.bytes, event.operation))
            return True
        directory = _partition_prefix(relative)
        if directory is None or (relative_only and not directory):
            return False
        self.directories[directory].append((when, 0, event.operation))
        return True

    def _miss(self, path: str) -> None:
        self.unmatched += 1
        if len(self.examples) < 5 and path not in self.examples:
            self.examples.append(path)


def _partition_prefix(relative: str) -> str | None:
    """The partition directories a destination-relative path lies in: ``""``
    for the root itself, None for a path outside any partition."""
    if not relative:
        return ""
    segments = relative.split("/")
    prefix: list[str] = []
    for segment in segments:
        if not _HIVE_SEGMENT.match(segment):
            break
        prefix.append(segment)
    return "/".join(prefix) if prefix else None


def _access_time(path: str, modified: datetime) -> Read | None:
    try:
        info = os.stat(path)
    except OSError as error:
        log.warning("%s: no access time (%s); taken as never read", path, error)
        return None
    when = datetime.fromtimestamp(info.st_atime, UTC)
    if when <= modified + _ATIME_SLACK:
        return None
    return (when, 0, "READ")


def _estimate(source_size: int, shard_size: int) -> int:
    """The size a shard of this file is planned with: the file's size, at
    most one shard (a Parquet shard is usually smaller than its text)."""
    return max(0, min(source_size, shard_size))
