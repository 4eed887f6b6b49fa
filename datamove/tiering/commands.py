"""The tier commands on a destination datamove wrote: plan tiers, then apply them.

:func:`tier_plan` reads the destination's manifest (its shards, their
partitions and the source files they came from), lists the shards once in
bulk for their current class, attributes the access logs to shards, and
plans a tier for each (:func:`~datamove.tiering.plan_tiers`). A logged path
may name a shard, a partition directory, the destination or a part of it, a
source file (absolute, or relative to the source root), or a source
directory; each counts as a read of the shards it covers.

:func:`tier_apply` changes each shard's class in place through the store
adapter (S3 copy onto itself, GCS rewrite, Azure set tier), reads the new
class back, rewrites each unit's receipt as soon as its shards are done (so
a killed apply resumes where it stopped), and finally rewrites the manifest
with the new classes and a tier record per shard (``extra["tiers"]``,
:mod:`datamove.tiering.records`), marking shards that need a restore before
a read. Objects already in their planned class are skipped, so a second
apply changes nothing. Stores without classes get the tier recorded only.

:func:`classes_for_sync` (in :mod:`datamove.tiering.sync`) is re-exported
here: the CLI needs only this module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datamove.errors import StorageError, UsageError
from datamove.inventory import STATE_DIR
from datamove.retry import call_with_retry
from datamove.state import (
    Manifest,
    ShardReceipt,
    UnitReceipt,
    object_version,
    read_manifest,
    read_receipts,
    write_manifest,
    write_receipt,
)
from datamove.storage import Location
from datamove.tiering._inputs import (
    ancestors,
    as_list,
    load_policy_and_prices,
    parse_time,
    partition_values,
    read_events,
    source_directory_names,
    source_names,
)
from datamove.tiering.access import ObjectInfo, normalize_path
from datamove.tiering.chart import write_cost_chart
from datamove.tiering.planner import TierAssignment, TierPlan, plan_tiers
from datamove.tiering.prices import provider_for_protocol
from datamove.tiering.records import (
    TIERS_KEY,
    TierRecord,
    needs_restore,
    tier_records,
)
from datamove.tiering.sync import SyncTiering, classes_for_sync

log = logging.getLogger(__name__)

PLAN_FORMAT = "datamove-tier-plan/1"
# Stores that cannot change the class of an object waiting in an archive
# class: S3 refuses to copy it before a restore. Azure rehydrates on set tier.
_MOVE_NEEDS_RESTORE = frozenset({"s3"})

__all__ = [
    "PLAN_FORMAT",
    "SyncTiering",
    "TierApplyReport",
    "TierChange",
    "classes_for_sync",
    "read_plan_file",
    "tier_apply",
    "tier_plan",
]


# --- plan ----------------------------------------------------------------------


def tier_plan(
    dest: str,
    *,
    access_logs: Sequence[str] | str | None = None,
    policy_file: str | os.PathLike[str] | None = None,
    prices_file: str | os.PathLike[str] | None = None,
    dest_options: Mapping[str, Any] | None = None,
    region: str | None = None,
    now: datetime | None = None,
    out_json: str | os.PathLike[str] | None = None,
    out_png: str | os.PathLike[str] | None = None,
    log_format: str | None = None,
    log_options: Mapping[str, Any] | None = None,
) -> TierPlan:
    """Plan a tier for every shard at ``dest`` and cost the plan.

    Args:
        dest: a destination written by ``datamove sync`` (path or URL).
        access_logs: log files or directories (local paths or URLs); none
            means every shard counts as never read since its data was made.
        policy_file: a YAML tier policy; the default policy when None.
        prices_file: a price file laid over the packaged table (and over the
            policy's ``price_file``).
        dest_options: fsspec storage options of the destination.
        region: the price region; the policy's, then the table's default.
        now: the time to plan for (default: now).
        out_json: write the plan here as JSON (``tier apply --plan`` reads it).
        out_png: draw the cost comparison here (needs matplotlib).
        log_format: force one access log format (``s3``, ``gcs``, ``azure``,
            ``azure-analytics``, ``csv``, ``jsonl``); detected per file if None.
        log_options: fsspec storage options for logs read from a store.

    Returns:
        The plan; ``plan.to_dict()`` is what ``out_json`` holds, less the
        ``format``, ``dest`` and ``manifest_run_id`` keys.

    Raises:
        UsageError: no manifest at ``dest``; an invalid policy, price file or
            log format; a chart asked of a store without storage classes.
        InputError: an access log cannot be read.
        StorageError: the destination cannot be read or listed.
    """
    location = Location.parse(dest, dest_options)
    provider = provider_for_protocol(location.protocol)
    if out_png is not None and provider is None:
        raise UsageError(
            f"{location.url}: the store has no storage classes, so there are no "
            "costs to chart; leave out --chart"
        )
    manifest = _manifest(location)
    listing = list_destination(location)
    plan = _plan(
        location,
        manifest,
        listing,
        access_logs=access_logs,
        policy_file=policy_file,
        prices_file=prices_file,
        region=region,
        now=now,
        log_format=log_format,
        log_options=log_options,
    )
    if out_json is not None:
        write_plan_file(out_json, plan, location, manifest)
    if out_png is not None and plan.costs is not None:
        write_cost_chart(plan.costs, out_png)
    return plan


def write_plan_file(
    path: str | os.PathLike[str], plan: TierPlan, dest: Location, manifest: Manifest
) -> None:
    """Write ``plan`` as JSON, with the destination and manifest it was made for.

    Raises:
        UsageError: the file cannot be written.
    """
    data = {
        **plan.to_dict(),
        "format": PLAN_FORMAT,
        "dest": dest.url,
        "manifest_run_id": manifest.run_id,
    }
    try:
        Path(path).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError as error:
        raise UsageError(
            f"{os.fspath(path)}: cannot write the plan ({error.strerror}); "
            "check the directory exists and is writable"
        ) from None


def read_plan_file(path: str | os.PathLike[str]) -> tuple[TierPlan, dict[str, Any]]:
    """A plan written by :func:`write_plan_file`, and its header
    (``dest``, ``manifest_run_id``).

    Raises:
        UsageError: the file cannot be read or holds no datamove tier plan.
    """
    name = os.fspath(path)
    try:
        data = json.loads(Path(name).read_text())
    except OSError as error:
        raise UsageError(
            f"{name}: cannot read the tier plan ({error.strerror}); check the path"
        ) from None
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{name}: not JSON ({error.msg}, line {error.lineno}); pass a file "
            "written by 'datamove tier plan --json'"
        ) from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise UsageError(
            f"{name}: not a datamove tier plan ({PLAN_FORMAT}); write one with "
            "'datamove tier plan --json'"
        )
    try:
        plan = TierPlan.from_dict(data)
    except UsageError as error:
        raise UsageError(f"{name}: {error}") from None
    header = {"dest": data.get("dest"), "manifest_run_id": data.get("manifest_run_id")}
    return plan, header


def list_destination(dest: Location) -> dict[str, dict[str, Any]]:
    """Every data object at ``dest`` in one bulk listing, by relative path.

    Raises:
        StorageError: the destination cannot be listed.
    """
    entries = call_with_retry(
        lambda: dest.adapter.find(dest.fs, dest.root),
        operation="list the destination",
        subject=dest.url,
    )
    found: dict[str, dict[str, Any]] = {}
    for path, info in entries.items():
        relative = dest.relative(path)
        if not relative.startswith(f"{STATE_DIR}/"):
            found[relative] = dict(info)
    return found


def _manifest(dest: Location) -> Manifest:
    manifest = call_with_retry(
        lambda: read_manifest(dest), operation="read the manifest", subject=dest.url
    )
    if manifest is None:
        raise UsageError(
            f"{dest.url}: no datamove manifest here; tiers are planned for a "
            "destination written by 'datamove sync': run it first or check the URL"
        )
    return manifest


def _plan(
    dest: Location,
    manifest: Manifest,
    listing: Mapping[str, Mapping[str, Any]],
    *,
    access_logs: Sequence[str] | str | None,
    policy_file: str | os.PathLike[str] | None,
    prices_file: str | os.PathLike[str] | None,
    region: str | None,
    now: datetime | None,
    log_format: str | None,
    log_options: Mapping[str, Any] | None,
) -> TierPlan:
    provider = provider_for_protocol(dest.protocol)
    policy, prices = load_policy_and_prices(policy_file, prices_file, provider)
    events, _ = read_events(as_list(access_logs), log_format, log_options)
    state_prefix = normalize_path(dest.path(STATE_DIR)) + "/"
    # datamove's own reads of its state are not reads of the data.
    events = [e for e in events if not normalize_path(e.path).startswith(state_prefix)]
    objects, missing = shard_objects(dest, manifest, listing)
    plan = plan_tiers(
        objects,
        events,
        provider=provider,
        policy=policy,
        prices=prices,
        region=region,
        now=now,
        mapping=shard_mapping(dest, manifest),
    )
    if missing:
        message = (
            f"{len(missing)} shards in the manifest are not at the store (e.g. "
            f"{missing[0]}) and were not planned; run 'datamove verify' and "
            "'datamove sync' to repair the destination"
        )
        log.warning("%s: %s", dest.url, message)
        plan = dataclasses.replace(plan, warnings=(*plan.warnings, message))
    log.info(
        "%s: tier plan for %d shards: %s",
        dest.url,
        len(plan.assignments),
        ", ".join(f"{t} {v['objects']}" for t, v in plan.summary().items()),
    )
    return plan


def shard_objects(
    dest: Location, manifest: Manifest, listing: Mapping[str, Mapping[str, Any]]
) -> tuple[list[ObjectInfo], list[str]]:
    """An :class:`ObjectInfo` per listed shard of the manifest, and the shards
    the listing lacks.

    ``created`` is when the shard's data was last modified at the source
    (the fingerprint's mtime; the receipt's write time when unknown), so
    that a freshly migrated old file does not look freshly read.
    ``class_since`` is when the shard entered its current class: its tier
    record's time when the record names the class it is in, else when it
    was written.
    """
    adapter = dest.adapter
    records = tier_records(manifest)
    objects: list[ObjectInfo] = []
    missing: list[str] = []
    for unit in manifest.units:
        written = parse_time(unit.written_at)
        created = parse_time(unit.fingerprint.get("mtime")) or written
        for shard in unit.shards:
            info = listing.get(shard.path)
            if info is None:
                missing.append(shard.path)
                continue
            current = (
                adapter.storage_class_of(dict(info))
                if adapter.storage_classes
                else None
            )
            record = records.get(shard.path)
            since = written
            if record is not None and _same(record.storage_class, current):
                since = parse_time(record.since) or written
            made = (
                _newest(shard.sources)
                or created
                or since
                or _listed_time(info)
                or datetime.now(UTC)
            )
            objects.append(
                ObjectInfo(
                    path=dest.path(shard.path),
                    size=int(info.get("size") or shard.size),
                    created=made,
                    current_class=current,
                    partition=partition_values(shard.partition),
                    class_since=since,
                )
            )
    return objects, missing


def shard_mapping(dest: Location, manifest: Manifest) -> dict[str, list[str]]:
    """Logged names that are not object paths, to the shards they cover.

    Source files (relative to the source root or below it), source
    directories, shard paths relative to the destination root and
    partition directories relative to it (``day=2026-01-01``).
    """
    table: dict[str, set[str]] = defaultdict(set)
    for unit in manifest.units:
        covers: dict[str, set[str]] = defaultdict(set)
        for shard in unit.shards:
            # A shard of several files holds the rows of those it names.
            for source in [path for path, _ in shard.sources] or [unit.source]:
                covers[source].add(dest.path(shard.path))
        for source, shards in covers.items():
            for name in source_names(manifest.source, source):
                table[name] |= shards
            for name in source_directory_names(manifest.source, source):
                table[name] |= shards
        for shard in unit.shards:
            full = dest.path(shard.path)
            table[normalize_path(shard.path)].add(full)
            for directory in ancestors(shard.path):
                table[directory].add(full)
    return {name: sorted(paths) for name, paths in table.items()}


def _newest(sources: Sequence[tuple[str, str]]) -> datetime | None:
    """The latest modification of the files whose rows a shard holds."""
    times = [found for _, mtime in sources if (found := parse_time(mtime))]
    return max(times) if times else None


def _listed_time(info: Mapping[str, Any]) -> datetime | None:
    for key in ("LastModified", "last_modified", "updated", "mtime"):
        found = parse_time(info.get(key))
        if found is not None:
            return found
    return None


def _same(left: str | None, right: str | None) -> bool:
    if left is None or right is None:
        return left is right
    return left.casefold() == right.casefold()


# --- apply ---------------------------------------------------------------------


@dataclass(frozen=True)
class TierChange:
    """One shard's class changed by ``tier apply``.

    ``confirmed`` is the class the store reports afterwards; it differs from
    ``to_class`` when the store accepted the request without changing the
    class (some emulators) or changes it later (Azure rehydration).
    """

    path: str
    tier: str
    from_class: str | None
    to_class: str
    confirmed: str | None

    def to_dict(self) -> dict[str, Any]:
        """The change as plain values."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TierApplyReport:
    """What ``tier apply`` did at one destination.

    Counts are of shards: ``changed`` moved to their planned class (read
    back), ``already`` were in it and left alone, ``recorded_only`` are at a
    store without classes (tier recorded). ``unconfirmed`` were asked to
    change but the store still reports another class; ``failed`` could not
    be changed (each with the error and the way out); ``missing`` are in
    the manifest but not at the store; ``not_planned`` are in the manifest
    but not in the plan (a saved plan older than the last sync).
    ``restore_required`` counts shards now in a class that must be restored
    before a read; the manifest marks them so ``verify`` skips reading them.
    """

    dest: str
    provider: str | None
    plan_generated_at: str
    shards: int
    changed: int
    already: int
    recorded_only: int
    restore_required: int
    unconfirmed: tuple[TierChange, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    missing: tuple[str, ...] = ()
    not_planned: tuple[str, ...] = ()
    receipts_written: int = 0
    manifest_written: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Every planned shard is in its planned class (or recorded)."""
        return not (self.failed or self.unconfirmed)

    @property
    def status(self) -> str:
        """``ok``, ``noop`` (nothing to change) or ``incomplete``."""
        if not self.ok:
            return "incomplete"
        if not self.changed and not self.manifest_written:
            return "noop"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-serialisable values."""
        return {
            "status": self.status,
            "dest": self.dest,
            "provider": self.provider,
            "plan_generated_at": self.plan_generated_at,
            "shards": self.shards,
            "changed": self.changed,
            "already": self.already,
            "recorded_only": self.recorded_only,
            "restore_required": self.restore_required,
            "unconfirmed": [change.to_dict() for change in self.unconfirmed],
            "failed": [{"path": p, "error": e} for p, e in self.failed],
            "missing": list(self.missing),
            "not_planned": list(self.not_planned),
            "receipts_written": self.receipts_written,
            "manifest_written": self.manifest_written,
            "duration_s": self.duration_s,
        }


ChangeCallback = Callable[[TierChange], None]


def tier_apply(
    dest: str,
    *,
    plan_file: str | os.PathLike[str] | None = None,
    access_logs: Sequence[str] | str | None = None,
    policy_file: str | os.PathLike[str] | None = None,
    prices_file: str | os.PathLike[str] | None = None,
    dest_options: Mapping[str, Any] | None = None,
    region: str | None = None,
    now: datetime | None = None,
    log_format: str | None = None,
    log_options: Mapping[str, Any] | None = None,
    on_change: ChangeCallback | None = None,
) -> TierApplyReport:
    """Move every shard at ``dest`` to its planned class, and record it.

    The plan is read from ``plan_file`` (written by ``tier plan --json``)
    or made as :func:`tier_plan` makes it from the other arguments. Each
    shard's current class is read from one bulk listing; a shard already in
    its planned class is skipped. A changed shard's class is read back, and
    each unit's receipt is rewritten once its shards are done; the manifest
    is rewritten last, only if anything changed. Killed midway, the next
    apply skips what is done and finishes the rest.

    Args:
        dest, access_logs, policy_file, prices_file, dest_options, region,
        now, log_format, log_options: as for :func:`tier_plan`.
        plan_file: apply this saved plan instead of planning again.
        on_change: called after each shard whose class changed.

    Returns:
        The report; ``failed`` and ``unconfirmed`` list shards not in their
        planned class afterwards (``report.ok`` is False): re-run to retry.

    Raises:
        UsageError: no manifest, an invalid input, or a saved plan made for
            another destination.
        InputError: an access log cannot be read.
        StorageError: the destination cannot be listed or its state written.
    """
    started = time.monotonic()
    location = Location.parse(dest, dest_options)
    manifest = _manifest(location)
    listing = list_destination(location)
    if plan_file is not None:
        plan, header = read_plan_file(plan_file)
        _check_plan_header(plan_file, header, location, manifest)
    else:
        plan = _plan(
            location,
            manifest,
            listing,
            access_logs=access_logs,
            policy_file=policy_file,
            prices_file=prices_file,
            region=region,
            now=now,
            log_format=log_format,
            log_options=log_options,
        )
    applier = _Applier(location, manifest, listing, plan, on_change)
    units = applier.run()

    extra = dict(manifest.extra)
    extra[TIERS_KEY] = {
        path: record.to_dict() for path, record in sorted(applier.records.items())
    }
    updated = dataclasses.replace(manifest, units=tuple(units), extra=extra)
    manifest_written = updated.to_dict() != manifest.to_dict()
    if manifest_written:
        write_manifest(location, updated)
    report = applier.report(
        plan, manifest_written, round(time.monotonic() - started, 3)
    )
    log.info(
        "%s: tier apply: %d changed, %d already in class, %d recorded only, "
        "%d failed, %d unconfirmed",
        location.url,
        report.changed,
        report.already,
        report.recorded_only,
        len(report.failed),
        len(report.unconfirmed),
    )
    return report


def _check_plan_header(
    plan_file: str | os.PathLike[str],
    header: Mapping[str, Any],
    dest: Location,
    manifest: Manifest,
) -> None:
    planned_for = header.get("dest")
    if planned_for and planned_for.rstrip("/") != dest.url.rstrip("/"):
        raise UsageError(
            f"{os.fspath(plan_file)}: the plan was made for {planned_for}, not "
            f"{dest.url}; plan this destination with 'datamove tier plan'"
        )
    if header.get("manifest_run_id") not in (None, manifest.run_id):
        log.warning(
            "%s: the destination was synced again since the plan was made; "
            "shards the plan does not list are left as they are",
            dest.url,
        )


class _Applier:
    """Walks the manifest unit by unit, changing classes and writing receipts."""

    def __init__(
        self,
        dest: Location,
        manifest: Manifest,
        listing: Mapping[str, Mapping[str, Any]],
        plan: TierPlan,
        on_change: ChangeCallback | None,
    ) -> None:
        self.dest = dest
        self.manifest = manifest
        self.listing = listing
        self.plan = plan
        self.on_change = on_change
        self.classes = dest.adapter.storage_classes
        self.previous = tier_records(manifest)
        self.records: dict[str, TierRecord] = {}
        self.now = datetime.now(UTC).isoformat(timespec="seconds")
        self.changed = self.already = self.recorded_only = self.receipts = 0
        self.unconfirmed: list[TierChange] = []
        self.failed: list[tuple[str, str]] = []
        self.missing: list[str] = []
        self.not_planned: list[str] = []
        self._newer = self._newer_receipts()

    def _newer_receipts(self) -> dict[str, UnitReceipt]:
        """Receipts rewritten by an apply killed before its manifest write.

        Only units with a shard whose listed version differs from the
        manifest's are read: a class change can change the version.
        """
        stale = [
            unit.unit_id
            for unit in self.manifest.units
            if any(
                not self._current(shard, self.listing.get(shard.path))
                for shard in unit.shards
            )
        ]
        return read_receipts(self.dest, stale) if stale else {}

    @staticmethod
    def _current(shard: ShardReceipt, info: Mapping[str, Any] | None) -> bool:
        if info is None:
            return True  # missing: reported, nothing to reconcile
        return shard.version is None or object_version(info) == shard.version

    def run(self) -> list[UnitReceipt]:
        units: list[UnitReceipt] = []
        for unit in self.manifest.units:
            newer = self._newer.get(unit.unit_id)
            recorded = {s.path: s for s in (newer.shards if newer else ())}
            shards = tuple(
                self._shard(unit, recorded.get(shard.path, shard))
                for shard in unit.shards
            )
            updated = dataclasses.replace(unit, shards=shards)
            on_store = newer if newer is not None else unit
            if updated.to_dict() != on_store.to_dict():
                write_receipt(self.dest, updated)
                self.receipts += 1
            units.append(updated)
        return units

    def _shard(self, unit: UnitReceipt, shard: ShardReceipt) -> ShardReceipt:
        info = self.listing.get(shard.path)
        previous = self.previous.get(shard.path)
        if info is None:
            self.missing.append(shard.path)
            self._keep_record(shard.path, previous)
            return shard
        if not self._current(shard, info):
            message = (
                "changed at the store since datamove wrote it; run 'datamove sync' "
                "to rewrite it, then apply again"
            )
            self.failed.append((shard.path, message))
            self._keep_record(shard.path, previous)
            return shard
        assignment = self.plan.assignment(self.dest.path(shard.path))
        if assignment is None:
            self.not_planned.append(shard.path)
            self._keep_record(shard.path, previous)
            return shard
        if not self.classes:
            self.recorded_only += 1
            self._record(shard, unit, assignment, None, changed=False)
            return shard

        adapter = self.dest.adapter
        current = adapter.storage_class_of(dict(info))
        target = assignment.storage_class
        if target is None or _same(current, target):
            self.already += 1
            self._record(shard, unit, assignment, current, changed=False)
            return dataclasses.replace(shard, storage_class=current)

        confirmed, new_info = self._change(shard.path, assignment, current, target)
        if new_info is None:
            self._record(shard, unit, assignment, current, changed=False)
            return dataclasses.replace(shard, storage_class=current)
        version = object_version(new_info) or shard.version
        self._record(shard, unit, assignment, confirmed, changed=True)
        return dataclasses.replace(shard, storage_class=confirmed, version=version)

    def _change(
        self,
        relative: str,
        assignment: TierAssignment,
        current: str | None,
        target: str,
    ) -> tuple[str | None, dict[str, Any] | None]:
        """Change one object's class; its class and metadata read back after,
        or (None, None) when the change failed."""
        adapter, fs = self.dest.adapter, self.dest.fs
        path, shown = self.dest.path(relative), self.dest.display(relative)
        provider = provider_for_protocol(self.dest.protocol)
        if provider in _MOVE_NEEDS_RESTORE and needs_restore(
            self.dest.protocol, current
        ):
            self.failed.append(
                (
                    relative,
                    f"in {current}, which must be restored before its class can "
                    f"change to {target}; restore it, then apply again",
                )
            )
            return None, None
        try:
            call_with_retry(
                lambda: adapter.set_storage_class(fs, path, target),
                operation=f"change the storage class to {target}",
                subject=shown,
            )
            head = call_with_retry(
                lambda: adapter.head(fs, path),
                operation="read the storage class back",
                subject=shown,
            )
        except StorageError as error:
            log.warning("%s: class not changed: %s", shown, error)
            self.failed.append((relative, str(error)))
            return None, None
        confirmed = adapter.storage_class_of(head)
        change = TierChange(relative, assignment.tier, current, target, confirmed)
        if _same(confirmed, target):
            self.changed += 1
            log.info("%s: %s -> %s (%s)", shown, current, target, assignment.tier)
        else:
            self.unconfirmed.append(change)
            log.warning(
                "%s: asked for %s, the store still reports %s", shown, target, confirmed
            )
        if self.on_change is not None:
            self.on_change(change)
        return confirmed, head

    def _record(
        self,
        shard: ShardReceipt,
        unit: UnitReceipt,
        assignment: TierAssignment,
        storage_class: str | None,
        *,
        changed: bool,
    ) -> None:
        previous = self.previous.get(shard.path)
        if changed:
            since: str | None = self.now
        elif previous is not None and _same(previous.storage_class, storage_class):
            since = previous.since
        elif shard.storage_class is None or _same(shard.storage_class, storage_class):
            since = unit.written_at or None
        else:
            since = self.now
        restore = needs_restore(self.dest.protocol, storage_class) or (
            assignment.restore_required
            and _same(storage_class, assignment.storage_class)
        )
        tier = assignment.tier
        if storage_class is not None and not _same(
            storage_class, assignment.storage_class
        ):
            # Not (yet) in the planned class: record the tier it is in.
            tier = _tier_of(self.plan, storage_class) or tier
        self.records[shard.path] = TierRecord(tier, storage_class, restore, since)

    def _keep_record(self, path: str, previous: TierRecord | None) -> None:
        if previous is not None:
            self.records[path] = previous

    def report(
        self, plan: TierPlan, manifest_written: bool, duration: float
    ) -> TierApplyReport:
        return TierApplyReport(
            dest=self.dest.url,
            provider=plan.provider,
            plan_generated_at=plan.generated_at.isoformat(),
            shards=len(self.manifest.shards),
            changed=self.changed,
            already=self.already,
            recorded_only=self.recorded_only,
            restore_required=sum(
                1 for r in self.records.values() if r.restore_required
            ),
            unconfirmed=tuple(self.unconfirmed),
            failed=tuple(self.failed),
            missing=tuple(self.missing),
            not_planned=tuple(self.not_planned),
            receipts_written=self.receipts,
            manifest_written=manifest_written,
            duration_s=duration,
        )


def _tier_of(plan: TierPlan, storage_class: str) -> str | None:
    """The tier whose class is ``storage_class`` under the plan's policy."""
    classes = plan.policy.get("classes", {}).get(plan.provider or "", {})
    for tier, name in classes.items():
        if _same(name, storage_class):
            return str(tier)
    return None
