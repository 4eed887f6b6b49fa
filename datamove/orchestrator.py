"""The orchestrator: wires inventory, planning, execution, commit and clean-up.

It holds no format, checksum or storage logic of its own. The order of its
steps is what makes a sync safe to kill at any point:

1. plan (reads only);
2. journal the units this run may write (ownership for later clean-up);
3. execute units: each commits its shards, then its receipt;
4. commit the manifest, listing kept and new receipts;
5. delete what the manifest no longer lists: obsolete shards and receipts,
   orphans of interrupted runs, then the journals.

A run killed before 4 leaves the previous manifest in force and its finished
units' receipts for the next run to skip; killed after 4, the next run finds
the leftovers of 5 and deletes them.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from datamove import files
from datamove.bandwidth import (
    NO_LIMIT,
    BandwidthLimit,
    local_timezone,
    parse_bwlimit,
    transfer_summary,
    worker_share,
)
from datamove.errors import DatamoveError, SyncFailedError, UsageError
from datamove.estimate import Estimate, compare, estimate_plan
from datamove.executor import ClusterWarmup, make_executor
from datamove.formats import FILES, Piece, head_rows
from datamove.inventory import STATE_DIR
from datamove.lease import Lease
from datamove.options import SyncOptions, parse_size
from datamove.planner import GroupKey, Plan, Survey, plan_sync, survey_source
from datamove.report import SyncReport, VerifyReport
from datamove.retry import RetryPolicy, call_with_retry
from datamove.schema import schema_to_json
from datamove.sharder import ShardJob, UnitOutcome
from datamove.state import (
    JOURNAL,
    RUNS,
    Manifest,
    UnitReceipt,
    delete_quietly,
    list_ids,
    read_manifest,
    receipt_path,
    write_json,
    write_manifest,
)
from datamove.storage import Location
from datamove.verify import verify_destination

if TYPE_CHECKING:
    # Imported where used: a sync without --anonymize or a tier policy loads
    # neither package (see docs/architecture.md on start-up).
    from datamove.anonymize import Anonymizer
    from datamove.tiering.sync import SyncTiering

log = logging.getLogger(__name__)

SCAN_ROWS = 10_000
# Columns of packed files that unpacking needs exactly as read.
PACKED_CONTENT = frozenset({"data", "size", "crc32c"})


@dataclass(frozen=True)
class Progress:
    """A progress update, sent after each unit completes."""

    units_done: int
    units_total: int
    rows: int
    bytes_read: int
    bytes_total: int
    bytes_written: int
    shards_written: int
    failed: int


ProgressCallback = Callable[[Progress], None]


def build_options(options: SyncOptions | None = None, **overrides: Any) -> SyncOptions:
    """Options from keyword arguments with the CLI's spellings.

    Sizes accept strings (``"64MiB"``) and sequences accept lists.
    """
    if options is not None and not overrides:
        return options
    values = options.to_dict() if options is not None else {}
    for name, value in overrides.items():
        if value is None:
            continue
        if name in ("shard_size", "part_size", "sample_bytes", "large_file_size"):
            value = parse_size(value, f"--{name.replace('_', '-')}")
        elif name == "cluster_above":
            value = parse_size(value, "--cluster-above", zero=True)
        elif name in ("partition_by", "include", "exclude", "extra", "encryption"):
            value = tuple(value) if not isinstance(value, str) else (value,)
        elif name == "column_types":
            pairs = value.items() if isinstance(value, Mapping) else value
            value = tuple(
                tuple(pair.split("=", 1)) if isinstance(pair, str) else tuple(pair)
                for pair in pairs
            )
        values[name] = value
    for name in (
        "partition_by",
        "include",
        "exclude",
        "column_types",
        "extra",
        "encryption",
    ):
        if name in values:
            values[name] = tuple(
                tuple(v) if isinstance(v, list) else v for v in values[name]
            )
    return SyncOptions(**values)


def inventory(
    source: str,
    *,
    source_options: Mapping[str, Any] | None = None,
    options: SyncOptions | None = None,
    **option_values: Any,
) -> Survey:
    """List the readable files under ``source``, sample them, unify their schema.

    Returns:
        A :class:`~datamove.planner.Survey`: ``inventory.files`` with formats
        and sizes, ``inventory.skipped`` with reasons, and ``schema``.

    Raises:
        UsageError, InputError, SchemaConflictError, StorageError.
    """
    resolved = build_options(options, **option_values)
    return survey_source(Location.parse(source, source_options), resolved)


def sample(
    source: str,
    *,
    rows: int = 10_000,
    source_options: Mapping[str, Any] | None = None,
    options: SyncOptions | None = None,
    **option_values: Any,
) -> pa.Table:
    """Up to ``rows`` rows from the head of every file of ``source``, unified.

    Raises:
        UsageError, InputError, SchemaConflictError, StorageError.
    """
    resolved = build_options(options, **option_values)
    location = Location.parse(source, source_options)
    survey = survey_source(location, resolved)
    if survey.options.format == FILES:
        # Packed files: their names and metadata, never their bytes.
        listed = [(file.relpath, file.size) for file in survey.inventory.files]
        return _path_rows(listed[:rows])
    per_file = max(rows // max(len(survey.inventory.files), 1), 1)
    tables = [
        head_rows(
            location.fs,
            Piece(
                relpath=file.relpath,
                path=file.path,
                format=file.format,
                end=-1,
                column_names=survey.files[file.relpath].column_names,
                newlines_in_values=survey.files[file.relpath].quoted_newlines,
            ),
            survey.schema,
            file.size,
            per_file,
        )
        for file in survey.inventory.files
    ]
    return pa.concat_tables(tables) if tables else survey.schema.empty_table()


def plan(
    source: str,
    dest: str,
    *,
    source_options: Mapping[str, Any] | None = None,
    dest_options: Mapping[str, Any] | None = None,
    options: SyncOptions | None = None,
    **option_values: Any,
) -> Plan:
    """Decide what a sync would do, writing nothing.

    Raises:
        UsageError, InputError, SchemaConflictError, StorageError.
    """
    resolved = build_options(options, **option_values)
    return plan_sync(
        Location.parse(source, source_options),
        Location.parse(dest, dest_options),
        resolved,
    )


def sync(
    source: str,
    dest: str,
    *,
    source_options: Mapping[str, Any] | None = None,
    dest_options: Mapping[str, Any] | None = None,
    options: SyncOptions | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    anonymize: str | None = None,
    anon_key: str | None = None,
    lease_wait: float = 0,
    tier_policy: str | None = None,
    access_logs: Sequence[str] | None = None,
    tier_prices: str | None = None,
    tier_region: str | None = None,
    access_log_format: str | None = None,
    bwlimit: str | BandwidthLimit | None = None,
    pseudonym_map: str | None = None,
    force_pseudonym_map: bool = False,
    **option_values: Any,
) -> SyncReport:
    """Shard ``source`` into verified Parquet at ``dest``, resuming any earlier run.

    Args:
        source: a path or fsspec URL of a file or folder of supported files.
        dest: a path or fsspec URL; datamove keeps its state in ``dest/_datamove``.
        source_options, dest_options: fsspec storage options (credentials,
            endpoint); never logged or written.
        options: a :class:`SyncOptions`; or pass its fields as keyword
            arguments (``shard_size="64MiB"``, ``partition_by=["day"]``).
        workers: worker processes of the embedded Dask cluster.
        scheduler: address of an existing Dask scheduler to run on instead.
        client: an existing ``distributed.Client`` to run on instead.
        dry_run: plan only; the report carries the plan and nothing is written.
        progress: called after every completed unit.
        anonymize: path or URL of an anonymization policy (YAML); columns are
            transformed on the workers before any byte leaves for ``dest``.
        anon_key: where the anonymization key is: None for the environment
            variable ``DATAMOVE_ANON_KEY``, ``env:NAME``, a file or a URL.
        lease_wait: seconds to wait for another run writing to ``dest``
            before giving up (``LeaseHeldError``); 0 refuses at once.
        pseudonym_map: an on-prem folder where each unit writes the
            token -> raw value pairs of its hashed columns (re-identification
            stays on-prem; a cloud URL is refused unless
            ``force_pseudonym_map``).
        tier_policy, access_logs, tier_prices, tier_region, access_log_format:
            write each shard straight into the storage class its tier gets
            from the access history (see ``docs/tiering.md``).

    Returns:
        A :class:`SyncReport`; ``status`` is ``ok``, ``noop`` or ``dry-run``.

    Raises:
        UsageError: an option, URL or the source/destination pair is wrong.
        InputError: a source file cannot be read (when found while planning).
        SchemaConflictError: source files disagree on a column's type.
        SyncFailedError: some units failed; ``.failed`` names them and
            ``.report`` is the run's report. Finished units are kept for the
            next run to resume from.
    """
    started = time.monotonic()
    limit = (
        parse_bwlimit(bwlimit, timezone=local_timezone())
        if isinstance(bwlimit, str)
        else bwlimit or NO_LIMIT
    )
    resolved = build_options(options, **option_values)
    src = Location.parse(source, source_options)
    dst = Location.parse(dest, dest_options)
    tiering = None
    if tier_policy is not None or access_logs:
        from datamove.tiering.sync import classes_for_sync

        # Before planning: sampling the source would move its access times.
        tiering = classes_for_sync(
            src,
            dst,
            access_logs=list(access_logs or []),
            policy_file=tier_policy,
            prices_file=tier_prices,
            options=resolved,
            region=tier_region,
            log_format=access_log_format,
        )
    anonymizer = _anonymizer(anonymize, anon_key, dst) if anonymize else None
    if pseudonym_map:
        if anonymizer is None:
            raise UsageError("--pseudonym-map needs --anonymize with hashed columns")
        from datamove.anonymize import check_pseudonym_map_url

        check_pseudonym_map_url(pseudonym_map, force=force_pseudonym_map)
    extra = {"anonymize": anonymizer.receipt_fields()} if anonymizer else None
    # Worker processes start while the source is sampled, once it is known
    # that something will be written.
    warmup = ClusterWarmup(
        workers,
        client,
        scheduler,
        cluster_above=resolved.cluster_above,
        enabled=not dry_run,
    )
    try:
        planned = plan_sync(
            src,
            dst,
            resolved,
            extra_config=extra,
            group_key=_group_key(tiering),
            on_changes=warmup.start,
        )
        if anonymizer is not None:
            _check_policy(anonymizer, src, planned)
        log.info(
            "%s: plan: %d units to write, %d kept, %d obsolete, %d orphans",
            dst.url,
            len(planned.to_write),
            len(planned.to_keep),
            len(planned.to_delete),
            len(planned.orphans),
        )

        base: dict[str, Any] = {
            "source": src.url,
            "dest": dst.url,
            "run_id": planned.run_id,
            "shards_skipped": sum(len(r.shards) for r in planned.to_keep),
        }
        if dry_run:
            return SyncReport(status="dry-run", plan=planned.summary(), **base)
        if planned.is_noop:
            log.info("%s: up to date, nothing to do", dst.url)
            return SyncReport(status="noop", duration_s=_since(started), **base)

        _check_writable(dst, planned.run_id)
        with Lease(dst, planned.run_id, wait=lease_wait) as lease:
            if lease.contended:
                # Another run wrote here while this one waited: decide afresh.
                planned = plan_sync(
                    src,
                    dst,
                    resolved,
                    extra_config=extra,
                    run_id=planned.run_id,
                    group_key=_group_key(tiering),
                )
                if planned.is_noop:
                    return SyncReport(status="noop", duration_s=_since(started), **base)
            write_json(
                dst,
                f"{JOURNAL}/{planned.run_id}.json",
                {
                    "run_id": planned.run_id,
                    "units": [u.unit_id for u in planned.to_write],
                },
            )
            estimate = _estimate(planned, resolved, limit)
            outcomes, description, transfer = _execute(
                planned,
                src,
                dst,
                resolved,
                workers,
                scheduler,
                client,
                progress,
                anonymizer,
                tiering,
                limit,
                pseudonym_map,
                warmup,
            )
            receipts = [o.receipt for o in outcomes if o.receipt is not None]
            base["workers"] = tuple(sorted({o.worker for o in outcomes}))
            failures = [o for o in outcomes if o.receipt is None]
            if anonymizer is not None:
                base["extra"] = _anonymization_report(anonymizer, outcomes)
            if transfer is not None:
                base.setdefault("extra", {})["transfer"] = transfer
            written = _totals(receipts)
            if failures:
                report = SyncReport(
                    status="failed",
                    units_written=len(receipts),
                    units_failed=len(failures),
                    failed=tuple(
                        {"unit": f.unit_id, "piece": f.piece, "error": f.error or ""}
                        for f in failures
                    ),
                    duration_s=_since(started),
                    executor=description,
                    **written,
                    **base,
                )
                error = SyncFailedError(
                    f"{len(failures)} of {len(planned.to_write)} units failed; first: "
                    f"{failures[0].error}. Finished units are kept: fix the cause and "
                    "re-run to resume",
                    failed=[f.piece for f in failures],
                )
                report = _with_estimate(report, estimate)
                _record_run(dst, planned.run_id, report)
                error.report = report  # type: ignore[attr-defined]
                if all(f.exit_code == 2 for f in failures):
                    error.exit_code = 2
                raise error

            written_schema = (
                anonymizer.output_schema(planned.schema) if anonymizer else None
            )
            deleted = _commit(planned, dst, receipts, written_schema, tiering)
            report = SyncReport(
                status="ok",
                units_written=len(receipts),
                shards_deleted=deleted,
                duration_s=_since(started),
                executor=description,
                **written,
                **base,
            )
            report = _with_estimate(report, estimate)
            write_json(dst, f"{RUNS}/{planned.run_id}.json", report.to_dict())
            log.info(
                "%s: wrote %d rows in %d shards, kept %d, deleted %d (%.1fs)",
                dst.url,
                report.rows_written,
                report.shards_written,
                report.shards_skipped,
                deleted,
                report.duration_s,
            )
            return report
    finally:
        warmup.close()


def _group_key(tiering: SyncTiering | None) -> GroupKey | None:
    """With tiers, small files share a unit only with files of their tier."""
    if tiering is None:
        return None
    return lambda relpath: tiering.assignment(relpath).tier


def _record_run(dst: Location, run_id: str, report: SyncReport) -> None:
    """Keep a failed run's report at the destination, if the store lets us.

    The failure may be the store itself (a bucket deleted mid-run): the
    report still reaches the caller, so a failed write is only logged.
    """
    try:
        write_json(dst, f"{RUNS}/{run_id}.json", report.to_dict())
    except Exception as error:
        log.warning(
            "%s: could not record the failed run (%s)", dst.url, type(error).__name__
        )


def _estimate(
    planned: Plan, options: SyncOptions, limit: BandwidthLimit
) -> Estimate | None:
    """The plan's estimate for the report; never fails the sync."""
    try:
        return estimate_plan(planned, part_size=options.part_size, bwlimit=limit)
    except DatamoveError as error:
        log.warning("%s: no estimate (%s)", planned.dest, error)
        return None


def _with_estimate(report: SyncReport, estimate: Estimate | None) -> SyncReport:
    """``report`` with the estimate set beside what happened."""
    if estimate is None:
        return report
    extra = {**report.extra, "estimate": compare(estimate, report.to_dict())}
    return dataclasses.replace(report, extra=extra)


def _check_writable(dst: Location, run_id: str) -> None:
    """Write and delete a probe object before any data moves.

    Missing or wrong credentials, a missing bucket or container and a denied
    write all surface here as one clear error, not midway through the run.

    Raises:
        PermanentStorageError: the destination cannot be written.
    """
    probe = f"{STATE_DIR}/probe-{run_id}"

    def write_and_delete() -> None:
        write_json(dst, probe, {"run_id": run_id})
        dst.fs.rm_file(dst.path(probe))

    call_with_retry(
        write_and_delete,
        operation="write a probe object",
        subject=dst.url,
        policy=RetryPolicy(attempts=3, initial=0.2, maximum=2.0),
    )


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _totals(receipts: Sequence[UnitReceipt]) -> dict[str, Any]:
    causes: dict[str, int] = {}
    for receipt in receipts:
        for cause, count in receipt.retry_causes.items():
            causes[cause] = causes.get(cause, 0) + count
    return {
        "retry_causes": causes,
        "rows_written": sum(r.rows for r in receipts),
        "shards_written": sum(len(r.shards) for r in receipts),
        "bytes_read": sum(r.bytes_read for r in receipts),
        "bytes_written": sum(s.size for r in receipts for s in r.shards),
        "bad_rows": sum(r.bad_rows for r in receipts),
        "retries": sum(r.retries for r in receipts),
    }


def _execute(
    planned: Plan,
    src: Location,
    dst: Location,
    options: SyncOptions,
    workers: int | None,
    scheduler: str | None,
    client: Any,
    progress: ProgressCallback | None,
    anonymizer: Anonymizer | None,
    tiering: SyncTiering | None = None,
    limit: BandwidthLimit = NO_LIMIT,
    pseudonym_map: str | None = None,
    warmup: ClusterWarmup | None = None,
) -> tuple[list[UnitOutcome], str, dict[str, Any] | None]:
    job = ShardJob(
        source=src,
        dest=dst,
        schema=schema_to_json(planned.schema),
        options=options,
        run_id=planned.run_id,
        transform=anonymizer,
        pseudonym_map=pseudonym_map,
        tiering=tiering,
    )
    outcomes: list[UnitOutcome] = []
    if not planned.to_write:
        return outcomes, "none", None
    executor = make_executor(
        len(planned.to_write),
        client,
        scheduler,
        workers,
        warmup=warmup,
        input_bytes=sum(unit.input_bytes for unit in planned.to_write),
        cluster_above=options.cluster_above,
    )
    # Each slot that can run a unit at once gets its share of --bwlimit.
    slots = min(executor.slots, len(planned.to_write))
    if not limit.unlimited:
        job = dataclasses.replace(job, bwlimit=worker_share(limit, slots))
    began, began_at = time.monotonic(), limit.now()
    tracker = _ProgressTracker(planned, progress)
    try:
        for outcome in executor.run(
            planned.to_write, job, tracker.partial if progress else None
        ):
            outcomes.append(outcome)
            tracker.finished(outcome)
    finally:
        executor.close()
    if limit.unlimited:
        return outcomes, executor.description, None
    sent = sum(s.size for o in outcomes if o.receipt for s in o.receipt.shards)
    summary = transfer_summary(
        limit,
        sent,
        time.monotonic() - began,
        slots,
        windows=[o.sending for o in outcomes if o.sending],
        started=began_at,
    )
    return outcomes, executor.description, summary.to_dict()


class _ProgressTracker:
    """Totals for the progress display: finished units plus running ones.

    Workers report running units' rows and bytes every half second; a unit's
    partial figures are replaced by its receipt's when it finishes.
    """

    def __init__(self, planned: Plan, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._total_units = len(planned.to_write)
        self._total_bytes = planned.bytes_to_read
        self._lock = threading.Lock()
        self._running: dict[str, tuple[int, int]] = {}
        self._done = {"units": 0, "rows": 0, "read": 0, "written": 0, "shards": 0}
        self._failed = 0

    def partial(self, unit_id: str, rows: int, done: int) -> None:
        with self._lock:
            self._running[unit_id] = (rows, done)
        self._emit()

    def finished(self, outcome: UnitOutcome) -> None:
        with self._lock:
            self._running.pop(outcome.unit_id, None)
            self._done["units"] += 1
            if outcome.receipt is None:
                self._failed += 1
            else:
                receipt = outcome.receipt
                self._done["rows"] += receipt.rows
                self._done["read"] += receipt.bytes_read
                self._done["written"] += sum(s.size for s in receipt.shards)
                self._done["shards"] += len(receipt.shards)
        self._emit()

    def _emit(self) -> None:
        if self._callback is None:
            return
        with self._lock:
            running_rows = sum(rows for rows, _ in self._running.values())
            running_bytes = sum(done for _, done in self._running.values())
            update = Progress(
                units_done=self._done["units"],
                units_total=self._total_units,
                rows=self._done["rows"] + running_rows,
                bytes_read=self._done["read"] + running_bytes,
                bytes_total=self._total_bytes,
                bytes_written=self._done["written"],
                shards_written=self._done["shards"],
                failed=self._failed,
            )
        self._callback(update)


def _anonymizer(policy_url: str, key_source: str | None, dst: Location) -> Anonymizer:
    """Load the policy and key; refuse a key other than the destination's.

    Raises:
        UsageError: the policy or key is invalid, or the destination was
            written with another key (its tokens would not join).
    """
    from datamove.anonymize import (
        Anonymizer,
        check_key_fingerprint,
        load_key,
        load_policy,
    )

    policy = load_policy(policy_url)
    key = load_key(key_source) if policy.needs_key else None
    manifest = read_manifest(dst)
    if manifest is not None and key is not None:
        recorded = manifest.config.get("anonymize", {}).get("key_fingerprint")
        check_key_fingerprint(recorded, key, dst.url)
    return Anonymizer(policy, key, run_seed=secrets.randbits(63))


def _check_policy(anonymizer: Anonymizer, src: Location, planned: Plan) -> None:
    """Fail closed: scan the head of every source file for personal data.

    Raises:
        UsageError: a flagged column is not covered by the policy.
    """
    from datamove.anonymize import flagged_columns, scan_table

    if planned.packs_files:
        touched = sorted(set(anonymizer.policy.rules) & PACKED_CONTENT)
        if touched:
            raise UsageError(
                f"{anonymizer.policy.source}: --format files restores files byte "
                f"for byte; the policy may not change {', '.join(touched)}: "
                "anonymize path, mtime or media_type only"
            )
        anonymizer.check(
            planned.schema, flagged_columns(scan_table(_path_sample(planned)))
        )
        return
    if not anonymizer.fails_closed:
        # `default: keep`: findings would not change the outcome; the policy
        # itself (unknown columns) is still checked.
        anonymizer.check(planned.schema, {})
        return
    samples: list[pa.Table] = []
    seen: set[str] = set()
    for part in (part for unit in planned.to_write for part in unit.parts):
        if part.piece.relpath in seen:
            continue
        seen.add(part.piece.relpath)
        samples.append(
            head_rows(src.fs, part.piece, planned.schema, part.size, SCAN_ROWS)
        )
    table = pa.concat_tables(samples) if samples else planned.schema.empty_table()
    anonymizer.check(planned.schema, flagged_columns(scan_table(table)))


def _path_sample(planned: Plan) -> pa.Table:
    """The listed metadata of the files a packed sync reads, as rows of the
    files schema without their bytes: what the fail-closed scan looks at."""
    listed = [
        (part.piece.relpath, part.size)
        for unit in planned.to_write
        for part in unit.parts
    ]
    return _path_rows(listed[:SCAN_ROWS])


def _path_rows(listed: Sequence[tuple[str, int]]) -> pa.Table:
    """Rows of the files schema for (relpath, size) pairs, without bytes."""
    return pa.Table.from_pylist(
        [
            {
                "path": relpath,
                "data": b"",
                "size": size,
                "mtime": None,
                "crc32c": "",
                "media_type": files.media_type(relpath),
            }
            for relpath, size in listed
        ],
        schema=files.FILE_SCHEMA,
    )


def _anonymization_report(
    anonymizer: Anonymizer, outcomes: Sequence[UnitOutcome]
) -> dict[str, Any]:
    from datamove.anonymize import KAnonymityCounter

    report: dict[str, Any] = {"anonymize": anonymizer.receipt_fields()}
    counters = [KAnonymityCounter.from_ipc(o.kanon) for o in outcomes if o.kanon]
    if counters:
        merged = KAnonymityCounter.merged(counters)
        report["k_anonymity"] = merged.report(anonymizer.policy.k).to_dict()
    return report


def _commit(
    planned: Plan,
    dst: Location,
    receipts: Sequence[UnitReceipt],
    written_schema: pa.Schema | None = None,
    tiering: SyncTiering | None = None,
) -> int:
    """Write the manifest, then delete what it no longer lists.

    Tier records of shards still listed (written by ``tier apply``) are kept;
    shards this run wrote get theirs from ``tiering``.
    """
    by_id = {r.unit_id: r for r in (*planned.to_keep, *receipts)}
    order = [u.unit_id for u in planned.to_write] + [r.unit_id for r in planned.to_keep]
    ordered = sorted(
        (by_id[uid] for uid in set(order)), key=lambda r: (r.source, r.piece)
    )
    live = {shard.path for receipt in ordered for shard in receipt.shards}
    previous = read_manifest(dst)
    tiers = {
        path: record
        for path, record in (
            previous.extra.get("tiers", {}) if previous else {}
        ).items()
        if path in live
    }
    if tiering is not None:
        members = {unit.unit_id: unit.sources for unit in planned.to_write}
        tiers.update(tiering.tier_records(receipts, members))
    if planned.packs_files:
        # Before the manifest: a dataset whose manifest is written has an index.
        _write_files_index(dst, ordered)
    manifest = Manifest(
        run_id=planned.run_id,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        source=planned.source,
        config=planned.config,
        config_digest=planned.config_digest,
        schema=schema_to_json(written_schema or planned.schema),
        units=tuple(ordered),
        extra={
            "files": {path: state.to_dict() for path, state in planned.files.items()},
            "state_digest": planned.state_digest,
            **planned.manifest_extra,
            **({"tiers": tiers} if tiers else {}),
        },
    )
    write_manifest(dst, manifest)

    obsolete = [
        shard.path
        for receipt in planned.to_delete
        for shard in receipt.shards
        if shard.path not in live
    ]
    deleted = delete_quietly(dst, [*obsolete, *planned.orphans])
    for path, upload_id in planned.uploads_to_abort:
        dst.adapter.abort_upload(dst.fs, path, upload_id)
        log.info("%s: aborted an interrupted upload", dst.display(dst.relative(path)))
    delete_quietly(dst, [receipt_path(r.unit_id) for r in planned.to_delete])
    delete_quietly(dst, [f"{JOURNAL}/{run}.json" for run in list_ids(dst, JOURNAL)])
    return deleted


def _write_files_index(dst: Location, receipts: Sequence[UnitReceipt]) -> None:
    """Write the path -> shard index of a packed dataset, reading only the
    shards the previous index does not already describe."""
    try:
        previous: pa.Table | None = files.read_index(dst)
    except DatamoveError:
        previous = None
    objects = [
        files.StoredObject(
            shard.path, shard.size, shard.crc32c, shard.source, shard.mtime_ns
        )
        for receipt in receipts
        for shard in receipt.shards
    ]
    index = files.collect_index(dst, objects, previous)
    files.write_index(dst, index)
    log.info("%s: index of %d files written", dst.url, index.num_rows)


def verify(
    dest: str, *, deep: bool = False, dest_options: Mapping[str, Any] | None = None
) -> VerifyReport:
    """Check the destination against its manifest (see :func:`verify_destination`).

    Returns a report whose ``problems`` name each missing or mismatched shard;
    it raises only when the destination has no manifest (``UsageError``).
    """
    return verify_destination(Location.parse(dest, dest_options), deep=deep)
