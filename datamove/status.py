"""Status: what a destination holds and what is under way there.

Everything is read from ``DST/_datamove/`` and one listing of ``DST``:

* the last completed run: the manifest (run id, when, rows, shards, bytes)
  and its run record;
* runs in progress or interrupted: each journal whose run has no
  completed manifest. Its units are done when their receipt exists
  (receipts are written after a unit's shards, and the manifest lists them
  only once the run completes); the newest receipt says when the run last
  made progress. Shards committed for units without a receipt are counted
  too: in flight while the run lives, leftovers for the next run to delete
  after a kill or a failure;
* the lease (``_datamove/lease.json``): who writes here now, and whether
  that lease is still alive;
* whether the manifest's shards are all there, intact (a cheap verify);
* with the source, what a re-run would do (the plan's counts).

:attr:`Status.exit_code` is 0 when the destination is complete and
verified (and, given a source, up to date with it), 1 when a run is
unfinished, clean-up is pending, a shard is missing or damaged, or the
source has changed, and 2 when there is no datamove state at all.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from datamove.inventory import STATE_DIR
from datamove.lease import lease_info
from datamove.options import SyncOptions
from datamove.planner import SHARD_NAME, plan_sync
from datamove.state import (
    JOURNAL,
    RECEIPTS,
    RUNS,
    Manifest,
    UnitReceipt,
    list_ids,
    read_json,
    read_manifest,
    receipt_path,
)
from datamove.storage import Location
from datamove.verify import verify_destination

log = logging.getLogger(__name__)

EXIT_COMPLETE = 0
EXIT_INCOMPLETE = 1
EXIT_EMPTY = 2


@dataclass(frozen=True)
class RunProgress:
    """A run that journaled its units but has not completed a manifest.

    ``state`` is ``running`` (it holds a live lease), ``failed`` (its run
    record says so; finished units are kept), ``interrupted`` (no live
    lease and no record: killed, or lost its machine) or ``cleanup`` (the
    manifest is this run's, only the clean-up after it did not finish).
    """

    run_id: str
    state: str
    started: str | None
    units_done: int
    units_total: int
    shards_done: int
    shards_without_receipt: int
    rows_done: int
    bytes_done: int
    last_progress: str | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Status:
    """The state of one destination, as ``datamove status`` shows it."""

    dest: str
    state: str
    last_run: Mapping[str, Any] | None = None
    runs: tuple[RunProgress, ...] = ()
    pending_receipts: int = 0
    unlisted_shards: int = 0
    lease: Mapping[str, Any] | None = None
    verified: bool | None = None
    problems: tuple[str, ...] = ()
    rerun: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        """0 complete and verified, 1 anything short of that, 2 no state."""
        if self.state == "empty":
            return EXIT_EMPTY
        return EXIT_COMPLETE if self.state == "complete" else EXIT_INCOMPLETE

    def to_dict(self) -> dict[str, Any]:
        return {
            "dest": self.dest,
            "state": self.state,
            "exit_code": self.exit_code,
            "last_run": None if self.last_run is None else dict(self.last_run),
            "runs": [run.to_dict() for run in self.runs],
            "pending_receipts": self.pending_receipts,
            "unlisted_shards": self.unlisted_shards,
            "lease": None if self.lease is None else dict(self.lease),
            "verified": self.verified,
            "problems": list(self.problems),
            "rerun": None if self.rerun is None else dict(self.rerun),
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        """The status as short lines of text, for the CLI."""
        lines = [f"{self.dest}: {self.state}"]
        if self.last_run is not None:
            run = self.last_run
            lines.append(
                f"last completed run {run['run_id']} at {run['created']}: "
                f"{run['rows']:,} rows in {run['shards']} shards, "
                f"{run['bytes']:,} bytes"
            )
        for progress in self.runs:
            lines.append(
                f"run {progress.run_id} {progress.state}: "
                f"{progress.units_done}/{progress.units_total} units, "
                f"{progress.shards_done} shards, {progress.bytes_done:,} bytes"
                + (
                    f" (+{progress.shards_without_receipt} shards of unfinished units)"
                    if progress.shards_without_receipt
                    else ""
                )
                + f"; last progress {progress.last_progress or 'none'}"
            )
        if self.lease is not None:
            lease = self.lease
            alive = "stale" if lease.get("stale") else "held"
            lines.append(
                f"lease {alive}: run {lease.get('run_id')} on {lease.get('host')} "
                f"(pid {lease.get('pid')}), expires {lease.get('expires')}"
            )
        if self.verified is not None:
            lines.append("verified" if self.verified else "NOT verified:")
        lines.extend(f"  {problem}" for problem in self.problems[:20])
        if len(self.problems) > 20:
            lines.append(f"  ... and {len(self.problems) - 20} more")
        if self.rerun is not None:
            rerun = self.rerun
            lines.append(
                "a re-run would do nothing"
                if rerun["noop"]
                else f"a re-run would write {rerun['units_to_write']} units "
                f"({rerun['bytes_to_read']:,} bytes to read), keep "
                f"{rerun['units_to_skip']}, delete {rerun['shards_to_delete']} shards"
            )
        lines.extend(f"note: {note}" for note in self.notes)
        return lines


def _run_started(run_id: str) -> str | None:
    """The start time encoded in a run id (``20250101T120000Z-abc123``)."""
    try:
        stamp = datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC).isoformat(timespec="seconds")


def _read_many(dest: Location, relatives: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Several state objects at once (concurrently on object stores)."""
    wanted = {dest.path(relative): relative for relative in relatives}
    if not wanted:
        return {}
    try:
        found = dest.fs.cat(list(wanted), on_error="omit")
    except FileNotFoundError:
        return {}
    if not isinstance(found, dict):  # a single path comes back as bytes
        found = {next(iter(wanted)): found}
    result: dict[str, dict[str, Any]] = {}
    for path, payload in found.items():
        relative = wanted.get(path) or wanted.get(dest.fs._strip_protocol(path))
        if relative is None:
            continue
        try:
            result[relative] = json.loads(payload)
        except ValueError:
            log.warning("%s: not valid JSON, left out", dest.display(relative))
    return result


def _listing(dest: Location) -> list[str]:
    """Relative paths of the shard-named Parquet objects at the destination."""
    names = []
    for path in dest.adapter.find(dest.fs, dest.root):
        relative = dest.relative(path)
        if not relative.startswith(f"{STATE_DIR}/") and SHARD_NAME.search(relative):
            names.append(relative)
    return names


def _last_run(dest: Location, manifest: Manifest) -> dict[str, Any]:
    record = read_json(dest, f"{RUNS}/{manifest.run_id}.json") or {}
    data = manifest.to_dict()
    return {
        "run_id": manifest.run_id,
        "created": manifest.created,
        "source": manifest.source,
        "rows": data["rows"],
        "shards": data["shard_count"],
        "bytes": data["bytes"],
        "units": len(manifest.units),
        "status": record.get("status"),
        "duration_s": record.get("duration_s"),
    }


def _progress(
    run_id: str,
    units: list[str],
    receipts: Mapping[str, UnitReceipt],
    shard_units: Mapping[str, int],
    record: Mapping[str, Any] | None,
    lease: Mapping[str, Any] | None,
    manifest: Manifest | None,
) -> RunProgress:
    done = [receipts[unit] for unit in units if unit in receipts]
    in_flight = sum(shard_units.get(unit, 0) for unit in units if unit not in receipts)
    stamps = [receipt.written_at for receipt in done if receipt.written_at]
    error = None
    if manifest is not None and manifest.run_id == run_id:
        state = "cleanup"
    elif lease is not None and lease.get("run_id") == run_id and not lease.get("stale"):
        state = "running"
    elif record is not None and record.get("status") == "failed":
        state = "failed"
        failed = record.get("failed") or [{}]
        error = str(failed[0].get("error", "")) or None
    else:
        state = "interrupted"
    return RunProgress(
        run_id=run_id,
        state=state,
        started=_run_started(run_id),
        units_done=len(done),
        units_total=len(units),
        shards_done=sum(len(receipt.shards) for receipt in done),
        shards_without_receipt=in_flight,
        rows_done=sum(receipt.rows for receipt in done),
        bytes_done=sum(shard.size for receipt in done for shard in receipt.shards),
        last_progress=max(stamps) if stamps else None,
        error=error,
    )


def recorded_options(config: Mapping[str, Any]) -> SyncOptions:
    """The output options a manifest was written with, as :class:`SyncOptions`.

    Options that do not shape the shards (``--include``, ``--exclude``,
    retries) are not recorded and keep their defaults.
    """
    return SyncOptions(
        shard_size=int(config.get("shard_size") or SyncOptions.shard_size),
        compression=str(config.get("compression") or SyncOptions.compression),
        compression_level=config.get("compression_level"),
        partition_by=tuple(config.get("partition_by") or ()),
        format=config.get("format"),
        column_types=tuple(
            (str(name), str(kind)) for name, kind in config.get("column_types") or ()
        ),
        on_bad_rows="fail" if config.get("on_bad_rows", "fail") == "fail" else "skip",
        extra=tuple((str(a), str(b)) for a, b in config.get("extra") or ()),
    )


def _rerun(
    source: str,
    source_options: Mapping[str, Any] | None,
    dest: Location,
    manifest: Manifest | None,
    options: SyncOptions | None,
    include: Sequence[str],
    exclude: Sequence[str],
) -> dict[str, Any]:
    config = manifest.config if manifest is not None else {}
    resolved = options or recorded_options(config)
    basis = "given" if options else ("recorded" if manifest else "default")
    if include or exclude:
        resolved = dataclasses.replace(
            resolved, include=tuple(include), exclude=tuple(exclude)
        )
    extra = {"anonymize": config["anonymize"]} if "anonymize" in config else None
    planned = plan_sync(
        Location.parse(source, source_options), dest, resolved, extra_config=extra
    )
    summary = planned.summary()
    return {
        "noop": planned.is_noop,
        "units_to_write": summary["units_to_write"],
        "units_to_skip": summary["units_to_skip"],
        "shards_to_skip": summary["shards_to_skip"],
        "shards_to_delete": summary["shards_to_delete"],
        "bytes_to_read": summary["bytes_to_read"],
        "files": summary["files"],
        "options": basis,
    }


def destination_status(
    dest: str,
    dest_options: Mapping[str, Any] | None = None,
    *,
    source: str | None = None,
    source_options: Mapping[str, Any] | None = None,
    options: SyncOptions | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    verify: bool = True,
) -> Status:
    """Report what ``dest`` holds, what runs are unfinished there, who writes.

    Args:
        dest: the destination URL or path.
        dest_options: fsspec storage options for ``dest``; never logged.
        source: the source URL; when given, the status includes what a
            re-run would do, and exit code 0 also requires it to do nothing.
        source_options: fsspec storage options for ``source``.
        options: the sync's options for that plan; None uses the output
            options recorded in the manifest.
        include, exclude: the sync's ``--include``/``--exclude`` globs,
            which the manifest does not record; laid over ``options``.
        verify: check the manifest's shards (sizes and checksums, a HEAD or
            a re-read per shard); without it ``verified`` is None and a
            complete destination still exits 0.

    Returns:
        A :class:`Status`; ``exit_code`` is 0, 1 or 2 (see the module).

    Raises:
        UsageError: the URL is invalid.
        StorageError: the destination cannot be listed or read.
    """
    location = Location.parse(dest, dest_options)
    # A filesystem cached by fsspec may hold listings from before other
    # processes wrote; status must see the destination as it is now.
    location.fs.invalidate_cache()
    manifest = read_manifest(location)
    journals = sorted(list_ids(location, JOURNAL))
    receipt_ids = list_ids(location, RECEIPTS)
    lease = lease_info(location)
    in_manifest = {unit.unit_id for unit in manifest.units} if manifest else set()
    pending = receipt_ids - in_manifest

    if manifest is None and not journals and not receipt_ids and lease is None:
        return Status(
            dest=location.url,
            state="empty",
            notes=("no datamove state here: run `datamove sync SRC DST` first",),
        )

    journal_units = {
        run_id: [str(u) for u in (data or {}).get("units", [])]
        for run_id, data in _journal_data(location, journals).items()
    }
    receipts = {
        relative.rsplit("/", 1)[-1].removesuffix(".json"): UnitReceipt.from_dict(data)
        for relative, data in _read_many(
            location, [receipt_path(unit_id) for unit_id in sorted(pending)]
        ).items()
    }
    shard_units: dict[str, int] = {}
    listed = _listing(location)
    referenced = {shard.path for shard in manifest.shards} if manifest else set()
    for path in listed:
        match = SHARD_NAME.search(path)
        if match and path not in referenced:
            shard_units[match.group(1)] = shard_units.get(match.group(1), 0) + 1
    records = _read_many(location, [f"{RUNS}/{run_id}.json" for run_id in journals])
    known = {unit.unit_id: unit for unit in manifest.units} if manifest else {}
    known.update(receipts)
    runs = tuple(
        _progress(
            run_id,
            units,
            known,
            shard_units,
            records.get(f"{RUNS}/{run_id}.json"),
            lease,
            manifest,
        )
        for run_id, units in journal_units.items()
    )
    claimed = {unit for units in journal_units.values() for unit in units}
    unclaimed = len(set(receipts) - claimed)
    unlisted = sum(1 for path in listed if path not in referenced)

    verified: bool | None = None
    problems: tuple[str, ...] = ()
    if manifest is not None and verify:
        report = verify_destination(location)
        verified, problems = report.ok, report.problems

    rerun = None
    if source is not None:
        rerun = _rerun(
            source, source_options, location, manifest, options, include, exclude
        )

    state, notes = _overall(
        manifest, runs, unclaimed + unlisted, verified, rerun, lease
    )
    return Status(
        dest=location.url,
        state=state,
        last_run=_last_run(location, manifest) if manifest else None,
        runs=runs,
        pending_receipts=len(pending),
        unlisted_shards=unlisted,
        lease=lease,
        verified=verified,
        problems=problems,
        rerun=rerun,
        notes=notes,
    )


def _journal_data(
    location: Location, journals: list[str]
) -> dict[str, dict[str, Any] | None]:
    found = _read_many(location, [f"{JOURNAL}/{run_id}.json" for run_id in journals])
    return {run_id: found.get(f"{JOURNAL}/{run_id}.json") for run_id in journals}


def _overall(
    manifest: Manifest | None,
    runs: tuple[RunProgress, ...],
    leftovers: int,
    verified: bool | None,
    rerun: Mapping[str, Any] | None,
    lease: Mapping[str, Any] | None,
) -> tuple[str, tuple[str, ...]]:
    """The one-word state and the notes that explain it."""
    notes: list[str] = []
    states = {run.state for run in runs}
    if "running" in states or (lease is not None and not lease.get("stale")):
        state = "running"
        notes.append("a sync is writing here now; check again when it is done")
    elif states & {"interrupted", "failed"}:
        state = "incomplete"
        notes.append("a run did not finish: re-run the same sync to resume it")
    elif manifest is None:
        state = "incomplete"
        notes.append("no run has completed here yet: re-run the sync")
    elif leftovers:
        state = "cleanup-pending"
        notes.append(
            "shards or receipts the manifest does not list are still there "
            "(a clean-up did not finish); readers of the whole prefix may see "
            "them: re-run the sync to delete them"
        )
    elif verified is False:
        state = "damaged"
        notes.append(
            "shards are missing or differ from the manifest: re-run the sync "
            "to rewrite them"
        )
    elif rerun is not None and not rerun["noop"] and rerun["options"] != "default":
        state = "outdated"
        notes.append("the source changed since the last run: re-run the sync")
    else:
        state = "complete"
        if verified is None:
            notes.append("not verified (verification was skipped)")
    if "cleanup" in states and not leftovers:
        notes.append(
            "the journal of the completed run remains (harmless); the next "
            "sync that writes removes it"
        )
    if rerun is not None and rerun["options"] == "default":
        notes.append(
            "no manifest records the sync's options: the re-run shown uses the "
            "defaults; pass the options the sync used (--shard-size, ...)"
        )
    if lease is not None and lease.get("stale"):
        notes.append(
            f"the lease of run {lease.get('run_id')} is stale: its owner is gone; "
            "the next sync takes it over"
        )
    return state, tuple(notes)
