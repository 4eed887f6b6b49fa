"""The ``datamove`` command: the only module that prints.

Each command parses its flags into library calls and renders the typed
report the library returns. Exit codes: 0 success, 1 a failed or unverified
run, 2 a usage or input error.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import fsspec

import datamove
from datamove.bandwidth import local_timezone, parse_bwlimit
from datamove.errors import DatamoveError, SyncFailedError
from datamove.estimate import estimate_plan, measure_corrections, measure_upload_rate
from datamove.executor import use_worker_memory_pool
from datamove.options import MiB, parse_size
from datamove.orchestrator import Progress
from datamove.report import SyncReport, VerifyReport
from datamove.status import destination_status
from datamove.storage import parse_options
from datamove.stores import encryption_for

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("datamove")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        return json.dumps(entry)


def _setup_logging(verbose: int, quiet: bool, log_format: str) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("datamove")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _common(function: F) -> F:
    decorators = [
        click.option(
            "-v", "--verbose", count=True, help="More log output (-vv: debug)."
        ),
        click.option("-q", "--quiet", is_flag=True, help="Errors only."),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="Log line format on stderr.",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _sync_options(function: F) -> F:
    decorators = [
        click.option("--include", multiple=True, help="Only files matching this glob."),
        click.option("--exclude", multiple=True, help="Skip files matching this glob."),
        click.option(
            "--format",
            "format_",
            help="Force the source format: csv, tsv, jsonl, parquet, arrow, orc "
            "(optionally with .gz/.bz2/.zst), or files: pack every file's bytes "
            "as a row (chosen by itself for a source with no table files).",
        ),
        click.option(
            "--large-file-size",
            default="16MiB",
            show_default=True,
            help="--format files: larger files are stored as objects of their own.",
        ),
        click.option("--shard-size", default="128MiB", show_default=True),
        click.option(
            "--part-size",
            default="16MiB",
            show_default=True,
            help="Multipart/block upload part size (memory per upload).",
        ),
        click.option(
            "--retries",
            type=int,
            default=5,
            show_default=True,
            help="Attempts per unit on transient store failures.",
        ),
        click.option(
            "--compression",
            default="zstd",
            show_default=True,
            type=click.Choice(["zstd", "snappy", "gzip", "brotli", "lz4", "none"]),
        ),
        click.option("--partition-by", multiple=True, help="Hive-partition by COL."),
        click.option("--column-type", multiple=True, help="COL=TYPE override."),
        click.option(
            "--schema", "schema_file", help="YAML/JSON file mapping column to type."
        ),
        click.option(
            "--on-bad-rows",
            type=click.Choice(["fail", "skip", "quarantine"]),
            default="fail",
            show_default=True,
        ),
        click.option(
            "--quarantine-dir",
            default="datamove-quarantine",
            show_default=True,
            help="Local folder for quarantined rows (never the destination).",
        ),
        click.option(
            "--checksum",
            "content_checksum",
            is_flag=True,
            help="Fingerprint sources by content hash, not only size and mtime.",
        ),
        click.option(
            "--sse",
            type=click.Choice(["AES256", "aws:kms"]),
            help="S3 server-side encryption of every object written.",
        ),
        click.option("--sse-kms-key-id", help="KMS key for --sse aws:kms."),
        click.option("--gcs-kms-key", help="GCS customer-managed key name."),
        click.option("--azure-encryption-scope", help="Azure encryption scope."),
        click.option(
            "--source-options", help="fsspec storage options of the source (JSON)."
        ),
        click.option(
            "--dest-options", help="fsspec storage options of the destination (JSON)."
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _column_types(column_type: tuple[str, ...], schema_file: str | None) -> list[str]:
    pairs = list(column_type)
    if schema_file:
        import yaml

        try:
            with open(schema_file, encoding="utf-8") as handle:
                mapping = yaml.safe_load(handle)
        except OSError as error:
            raise datamove.UsageError(
                f"--schema {schema_file}: {error.strerror}"
            ) from None
        except yaml.YAMLError as error:
            raise datamove.UsageError(
                f"--schema {schema_file}: not YAML/JSON ({error})"
            ) from None
        if not isinstance(mapping, dict):
            raise datamove.UsageError(
                f"--schema {schema_file}: expected a mapping COL: TYPE"
            )
        pairs = [f"{name}={type_}" for name, type_ in mapping.items()] + pairs
    return pairs


def _option_values(kwargs: dict[str, Any], dest: str) -> dict[str, Any]:
    protocol = fsspec.core.split_protocol(dest)[0] or "file"
    encryption = encryption_for(
        protocol,
        sse=kwargs["sse"],
        kms_key_id=kwargs["sse_kms_key_id"],
        gcs_kms_key=kwargs["gcs_kms_key"],
        azure_scope=kwargs["azure_encryption_scope"],
    )
    return {
        "encryption": encryption,
        "include": kwargs["include"],
        "exclude": kwargs["exclude"],
        "format": kwargs["format_"],
        "shard_size": kwargs["shard_size"],
        "part_size": kwargs["part_size"],
        "retries": kwargs["retries"],
        "compression": kwargs["compression"],
        "partition_by": kwargs["partition_by"],
        "column_types": _column_types(kwargs["column_type"], kwargs["schema_file"]),
        "on_bad_rows": kwargs["on_bad_rows"],
        "quarantine_dir": kwargs["quarantine_dir"],
        "content_checksum": kwargs["content_checksum"],
        "large_file_size": kwargs["large_file_size"],
    }


@contextmanager
def _errors() -> Iterator[None]:
    """Turn datamove errors into one line on stderr and the right exit code."""
    try:
        yield
    except DatamoveError as error:
        click.echo(f"datamove: error: {error}", err=True)
        sys.exit(error.exit_code)
    except Exception as error:
        # Foreign messages can quote request details: show the type only,
        # unless debugging was asked for.
        if logging.getLogger("datamove").isEnabledFor(logging.DEBUG):
            raise
        click.echo(
            f"datamove: internal error ({type(error).__name__}); run with -vv for "
            "the traceback and report it",
            err=True,
        )
        sys.exit(1)


class _ProgressDisplay:
    """A rich progress bar on a terminal; a log line every few seconds elsewhere."""

    def __init__(self, enabled: bool) -> None:
        self.interactive = enabled and sys.stderr.isatty()
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None
        self._last_log = 0.0
        self._started = time.monotonic()

    def __enter__(self) -> _ProgressDisplay:
        if self.interactive:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]sync"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                transient=True,
            )
            self._bar.start()
        return self

    def update(self, progress: Progress) -> None:
        if not self.enabled:
            return
        detail = f"units, {progress.rows:,} rows, {progress.shards_written} shards"
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task(
                    "sync", total=progress.bytes_total, detail=""
                )
            self._bar.update(self._task, completed=progress.bytes_read, detail=detail)
            return
        now = time.monotonic()
        if now - self._last_log >= 5 or progress.units_done == progress.units_total:
            self._last_log = now
            rate = progress.bytes_read / max(now - self._started, 1e-6) / MiB
            log.info(
                "progress: %d/%d units, %s rows, %.1f MiB/s",
                progress.units_done,
                progress.units_total,
                f"{progress.rows:,}",
                rate,
            )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _emit_sync(report: SyncReport, as_json: bool, report_file: str | None) -> None:
    data = report.to_dict()
    if report_file:
        with open(report_file, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if report.status == "dry-run" and report.plan is not None:
        _print_plan(report.plan)
        return
    if report.status == "noop":
        click.echo(
            f"{report.dest}: up to date ({report.shards_skipped} shards unchanged)"
        )
        return
    click.echo(
        f"{report.dest}: {report.status}: {report.rows_written:,} rows in "
        f"{report.shards_written} shards ({report.bytes_written / MiB:.1f} MiB), "
        f"{report.shards_skipped} unchanged, {report.shards_deleted} deleted, "
        f"{report.duration_s:.1f}s"
    )
    for failure in report.failed:
        click.echo(f"  failed: {failure['error']}", err=True)


def _print_plan(summary: dict[str, Any]) -> None:
    click.echo(f"plan {summary['source']} -> {summary['dest']}")
    click.echo(
        f"  files: {summary['files']}   units to write: {summary['units_to_write']}   "
        f"shards to skip: {summary['shards_to_skip']}   "
        f"shards to delete: {summary['shards_to_delete']}   "
        f"bytes to read: {summary['bytes_to_read'] / MiB:.1f} MiB"
    )
    for item in summary["write"]:
        click.echo(f"  write  {item['piece']}  ({item['bytes'] / MiB:.1f} MiB)")
    for path in summary["delete"]:
        click.echo(f"  delete {path}")
    for relpath, reason in summary["skipped_files"]:
        click.echo(f"  skip   {relpath}: {reason}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(datamove.__version__, prog_name="datamove")
def main() -> None:
    """Move datasets into object stores as verified, resumable Parquet shards."""


@main.command()
@click.argument("source")
@click.argument("dest")
@_sync_options
@click.option(
    "--anonymize",
    "anonymize",
    metavar="POLICY",
    help="Anonymization policy (YAML) applied before data leaves.",
)
@click.option(
    "--pseudonym-map",
    metavar="FOLDER",
    help="On-prem folder for the token -> raw value map of hashed columns.",
)
@click.option(
    "--force-pseudonym-map",
    is_flag=True,
    help="Allow a --pseudonym-map location that is not on-prem.",
)
@click.option(
    "--anon-key",
    metavar="SOURCE",
    help="Key: env:NAME, a file or a URL (default: $DATAMOVE_ANON_KEY).",
)
@click.option("--tier-policy", metavar="YAML", help="Write shards into tiered classes.")
@click.option(
    "--access-log",
    "access_logs",
    multiple=True,
    metavar="PATH",
    help="Access logs (files or folders) the tiers are decided from.",
)
@click.option("--tier-prices", metavar="YAML", help="Your own price table.")
@click.option("--tier-region", help="Price region (default: the table's first).")
@click.option("--access-log-format", help="Force the access log kind.")
@click.option(
    "--workers",
    type=int,
    help="Units at once: threads, or worker processes of the embedded cluster "
    "(default: one per core).",
)
@click.option(
    "--cluster-above",
    default="2GiB",
    show_default=True,
    metavar="SIZE",
    help="Plans with more input run on an embedded Dask cluster of worker "
    "processes, smaller ones on threads in this process (0: always the cluster).",
)
@click.option(
    "--bwlimit",
    metavar="RATE|TIMETABLE",
    help='Upload cap for the whole job: 50MiB, off, or "08:00,20MiB 20:00,off".',
)
@click.option(
    "--wait-lease",
    type=float,
    default=0,
    metavar="SECONDS",
    help="Wait this long for another sync writing to DEST (default: refuse).",
)
@click.option(
    "--scheduler", envvar="DATAMOVE_SCHEDULER", help="Existing Dask scheduler."
)
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option("--report", "report_file", help="Write the JSON report to this file.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the JSON report to stdout."
)
@click.option("--no-progress", is_flag=True, help="No progress display.")
@_common
def sync(source: str, dest: str, **kwargs: Any) -> None:
    """Shard SOURCE into Parquet at DEST, resuming and skipping unchanged work."""
    _setup_logging(kwargs["verbose"], kwargs["quiet"], kwargs["log_format"])
    # Small plans convert in this process: give it the workers' allocator.
    use_worker_memory_pool()
    with _errors():
        values = _option_values(kwargs, dest)
        display = _ProgressDisplay(not kwargs["no_progress"] and not kwargs["quiet"])
        try:
            with display:
                report = datamove.sync(
                    source,
                    dest,
                    source_options=parse_options(
                        kwargs["source_options"], "--source-options"
                    ),
                    dest_options=parse_options(
                        kwargs["dest_options"], "--dest-options"
                    ),
                    workers=kwargs["workers"],
                    scheduler=kwargs["scheduler"],
                    cluster_above=kwargs["cluster_above"],
                    dry_run=kwargs["dry_run"],
                    progress=display.update,
                    anonymize=kwargs["anonymize"],
                    anon_key=kwargs["anon_key"],
                    pseudonym_map=kwargs["pseudonym_map"],
                    force_pseudonym_map=kwargs["force_pseudonym_map"],
                    lease_wait=kwargs["wait_lease"],
                    tier_policy=kwargs["tier_policy"],
                    access_logs=list(kwargs["access_logs"]),
                    tier_prices=kwargs["tier_prices"],
                    tier_region=kwargs["tier_region"],
                    access_log_format=kwargs["access_log_format"],
                    bwlimit=kwargs["bwlimit"],
                    **values,
                )
        except SyncFailedError as error:
            failed: SyncReport | None = getattr(error, "report", None)
            if failed is not None:
                _emit_sync(failed, kwargs["as_json"], kwargs["report_file"])
            raise
        _emit_sync(report, kwargs["as_json"], kwargs["report_file"])


@main.command()
@click.argument("source")
@click.argument("dest")
@_sync_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--bandwidth", metavar="RATE", help="Uplink per second, for the duration."
)
@click.option(
    "--measure-bandwidth",
    is_flag=True,
    help="Time an 8 MiB upload to DEST (written and deleted) for the duration.",
)
@click.option("--bwlimit", metavar="RATE|TIMETABLE", help="The sync's --bwlimit.")
@click.option("--storage-class", help="Class the bill prices shards in.")
@click.option("--region", help="Price table region (default: the table's).")
@click.option("--prices", metavar="YAML", help="Your own price table.")
@_common
def plan(source: str, dest: str, **kwargs: Any) -> None:
    """Print what a sync from SOURCE to DEST would do, and cost; write nothing."""
    _setup_logging(kwargs["verbose"], kwargs["quiet"], kwargs["log_format"])
    with _errors():
        source_options = parse_options(kwargs["source_options"], "--source-options")
        dest_options = parse_options(kwargs["dest_options"], "--dest-options")
        values = _option_values(kwargs, dest)
        result = datamove.plan(
            source,
            dest,
            source_options=source_options,
            dest_options=dest_options,
            **values,
        )
        bandwidth, how = None, None
        if kwargs["bandwidth"]:
            bandwidth, how = (
                float(parse_size(kwargs["bandwidth"], "--bandwidth")),
                "given",
            )
        elif kwargs["measure_bandwidth"]:
            bandwidth, how = measure_upload_rate(dest, dest_options), "measured"
        estimate = estimate_plan(
            result,
            part_size=parse_size(values["part_size"], "--part-size"),
            bandwidth=bandwidth,
            bandwidth_source=how,
            bwlimit=parse_bwlimit(kwargs["bwlimit"], timezone=local_timezone())
            if kwargs["bwlimit"]
            else None,
            storage_class=kwargs["storage_class"],
            region=kwargs["region"],
            price_file=kwargs["prices"],
            corrections=measure_corrections(result, source_options),
        )
        if kwargs["as_json"]:
            data = {**result.summary(), "estimate": estimate.to_dict()}
            click.echo(json.dumps(data, indent=2))
        else:
            _print_plan(result.summary())
            for line in estimate.lines():
                click.echo(f"  {line}")


@main.command()
@click.argument("source")
@click.option("--include", multiple=True)
@click.option("--exclude", multiple=True)
@click.option("--format", "format_")
@click.option("--source-options", help="fsspec storage options (JSON).")
@click.option("--json", "as_json", is_flag=True)
@_common
def inventory(source: str, **kwargs: Any) -> None:
    """List the files under SOURCE with formats, sizes and the unified schema."""
    _setup_logging(kwargs["verbose"], kwargs["quiet"], kwargs["log_format"])
    with _errors():
        result = datamove.inventory(
            source,
            source_options=parse_options(kwargs["source_options"], "--source-options"),
            include=kwargs["include"],
            exclude=kwargs["exclude"],
            format=kwargs["format_"],
        )
        files = [
            {"path": f.relpath, "format": str(f.format), "size": f.size}
            for f in result.inventory.files
        ]
        schema = [{"name": f.name, "type": str(f.type)} for f in result.schema]
        if kwargs["as_json"]:
            data = {
                "files": files,
                "schema": schema,
                "skipped": result.inventory.skipped,
            }
            click.echo(json.dumps(data, indent=2))
            return
        for file in files:
            click.echo(f"{file['size']:>14,}  {file['format']:<12} {file['path']}")
        for relpath, reason in result.inventory.skipped:
            click.echo(f"{'':>14}  {'skipped':<12} {relpath}: {reason}")
        click.echo(f"{len(files)} files, {result.inventory.total_bytes:,} bytes")
        click.echo("schema:")
        for column in schema:
            click.echo(f"  {column['name']}: {column['type']}")


@main.command()
@click.argument("source")
@click.option("--suggest", is_flag=True, help="Print a policy file for the findings.")
@click.option("--sample-rows", type=int, default=10_000, show_default=True)
@click.option("--include", multiple=True)
@click.option("--exclude", multiple=True)
@click.option("--format", "format_")
@click.option("--source-options", help="fsspec storage options (JSON).")
@click.option("--json", "as_json", is_flag=True)
@_common
def scan(source: str, **kwargs: Any) -> None:
    """Find columns of SOURCE that hold personal data; suggest a policy."""
    _setup_logging(kwargs["verbose"], kwargs["quiet"], kwargs["log_format"])
    from datamove.anonymize import scan_table, suggest_policy

    with _errors():
        sample = datamove.sample(
            source,
            rows=kwargs["sample_rows"],
            source_options=parse_options(kwargs["source_options"], "--source-options"),
            include=kwargs["include"],
            exclude=kwargs["exclude"],
            format=kwargs["format_"],
        )
        findings = scan_table(sample, sample_rows=kwargs["sample_rows"])
        if kwargs["suggest"]:
            click.echo(suggest_policy(findings), nl=False)
        elif kwargs["as_json"]:
            click.echo(json.dumps([f.to_dict() for f in findings], indent=2))
        else:
            for finding in findings:
                click.echo(finding.describe())
            if not findings:
                click.echo("no personal data found in the sample")


@main.command()
@click.argument("dest")
@click.option("--deep", is_flag=True, help="Re-read bytes and footers, recount rows.")
@click.option("--dest-options", help="fsspec storage options (JSON).")
@click.option("--json", "as_json", is_flag=True)
@_common
def verify(dest: str, **kwargs: Any) -> None:
    """Check that DEST holds exactly what its manifest records."""
    _setup_logging(kwargs["verbose"], kwargs["quiet"], kwargs["log_format"])
    with _errors():
        report: VerifyReport = datamove.verify(
            dest,
            deep=kwargs["deep"],
            dest_options=parse_options(kwargs["dest_options"], "--dest-options"),
        )
        if kwargs["as_json"]:
            click.echo(json.dumps(report.to_dict(), indent=2))
        else:
            for problem in report.problems:
                click.echo(f"MISMATCH {problem}")
            click.echo(
                f"{report.dest}: {report.status}: {report.shards_checked} shards, "
                f"{report.rows_checked:,} rows verified"
                + (" (deep)" if report.deep else "")
            )
        if not report.ok:
            sys.exit(1)


@main.command()
@click.argument("dest")
@click.argument("target")
@click.option("--dest-options", help="fsspec storage options of DEST (JSON).")
@click.option("--target-options", help="fsspec storage options of TARGET (JSON).")
@click.option("--json", "as_json", is_flag=True)
@_common
def unpack(dest: str, target: str, **kwargs: Any) -> None:
    """Restore the files packed at DEST (a `sync --format files`) below TARGET.

    Paths, bytes and modification times come back exactly; every file is
    checked against its CRC32C first. Files already restored are skipped, so
    a killed unpack resumes. Exits 1 when an object is damaged (its files are
    not written), 2 on a usage error.
    """
    _setup_logging(kwargs["verbose"], kwargs["quiet"], kwargs["log_format"])
    with _errors():
        report = datamove.unpack(
            dest,
            target,
            dest_options=parse_options(kwargs["dest_options"], "--dest-options"),
            target_options=parse_options(kwargs["target_options"], "--target-options"),
        )
        if kwargs["as_json"]:
            click.echo(json.dumps(report.to_dict(), indent=2))
        else:
            click.echo(
                f"{report.target}: {report.restored:,} files restored, "
                f"{report.skipped:,} already present, {report.bytes_written:,} "
                f"bytes written from {report.objects_read:,} objects "
                f"({report.seconds:.1f}s)"
            )


@main.command()
@click.argument("dest")
@click.option("--source", help="The sync's source: also show what a re-run would do.")
@click.option("--source-options", help="fsspec storage options of the source (JSON).")
@click.option("--dest-options", help="fsspec storage options (JSON).")
@click.option("--include", multiple=True, help="The sync's --include, for the re-run.")
@click.option("--exclude", multiple=True, help="The sync's --exclude, for the re-run.")
@click.option("--no-verify", is_flag=True, help="Skip checking the shards.")
@click.option("--json", "as_json", is_flag=True)
@_common
def status(dest: str, **kwargs: Any) -> None:
    """Show what DEST holds and what runs are unfinished there.

    Exits 0 when DEST is complete and verified (and, with --source, up to
    date), 1 when it is not, 2 when it holds no datamove state.
    """
    _setup_logging(kwargs["verbose"], kwargs["quiet"], kwargs["log_format"])
    with _errors():
        result = destination_status(
            dest,
            parse_options(kwargs["dest_options"], "--dest-options"),
            source=kwargs["source"],
            source_options=parse_options(kwargs["source_options"], "--source-options"),
            include=kwargs["include"],
            exclude=kwargs["exclude"],
            verify=not kwargs["no_verify"],
        )
        if kwargs["as_json"]:
            click.echo(json.dumps(result.to_dict(), indent=2))
        else:
            for line in result.lines():
                click.echo(line)
        sys.exit(result.exit_code)


def _tier_options(function: F) -> F:
    decorators = [
        click.option("--access-log", "access_logs", multiple=True, metavar="PATH"),
        click.option("--policy", "policy_file", metavar="YAML", help="Tier policy."),
        click.option("--prices", "prices_file", metavar="YAML", help="Price table."),
        click.option("--region", help="Price region."),
        click.option("--log-kind", "log_kind", help="Force the access log kind."),
        click.option("--dest-options", help="fsspec storage options (JSON)."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


@main.group()
def tier() -> None:
    """Assign hot, cold and archive tiers from access patterns, with costs."""


@tier.command("plan")
@click.argument("dest")
@_tier_options
@click.option("--out", "out_json", metavar="FILE", help="Write the plan as JSON.")
@click.option("--chart", "out_png", metavar="PNG", help="Draw the cost comparison.")
@_common
def tier_plan_command(dest: str, **kwargs: Any) -> None:
    """Plan tiers for the shards at DEST and show the monthly bill."""
    _setup_logging(kwargs["verbose"], kwargs["quiet"], kwargs["log_format"])
    from datamove.tiering.commands import tier_plan

    with _errors():
        plan = tier_plan(
            dest,
            access_logs=list(kwargs["access_logs"]) or None,
            policy_file=kwargs["policy_file"],
            prices_file=kwargs["prices_file"],
            dest_options=parse_options(kwargs["dest_options"], "--dest-options"),
            region=kwargs["region"],
            out_json=kwargs["out_json"],
            out_png=kwargs["out_png"],
            log_format=kwargs["log_kind"],
        )
        if kwargs["as_json"]:
            click.echo(json.dumps(plan.to_dict(), indent=2, default=str))
            return
        click.echo(f"{dest}: tier plan over {plan.horizon_months} months")
        for tier_name, counts in plan.summary().items():
            click.echo(f"  {tier_name}: {counts}")
        if plan.costs is not None:
            click.echo(json.dumps(plan.costs.to_dict(), indent=2, default=str))
        for warning in plan.warnings:
            click.echo(f"  warning: {warning}", err=True)


@tier.command("apply")
@click.argument("dest")
@_tier_options
@click.option("--plan", "plan_file", metavar="FILE", help="A plan saved by tier plan.")
@_common
def tier_apply_command(dest: str, **kwargs: Any) -> None:
    """Move the shards at DEST into their planned classes, in place."""
    _setup_logging(kwargs["verbose"], kwargs["quiet"], kwargs["log_format"])
    from datamove.tiering.commands import tier_apply

    with _errors():
        report = tier_apply(
            dest,
            plan_file=kwargs["plan_file"],
            access_logs=list(kwargs["access_logs"]) or None,
            policy_file=kwargs["policy_file"],
            prices_file=kwargs["prices_file"],
            dest_options=parse_options(kwargs["dest_options"], "--dest-options"),
            region=kwargs["region"],
            log_format=kwargs["log_kind"],
        )
        if kwargs["as_json"]:
            click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            click.echo(
                f"{dest}: {report.status}: {report.changed} changed, "
                f"{report.already} already in place, {report.recorded_only} recorded, "
                f"{len(report.failed)} failed, {len(report.unconfirmed)} unconfirmed"
            )
            for path, error in report.failed:
                click.echo(f"  failed: {path}: {error}", err=True)
        if not report.ok:
            sys.exit(1)


@main.command()
@click.option(
    "--size", default="64MiB", show_default=True, help="Size of the generated data."
)
@click.option("--workdir", default="demo-data", show_default=True)
@_common
def demo(size: str, workdir: str, **kwargs: Any) -> None:
    """Generate a sample dataset and sync it, to show what datamove does."""
    _setup_logging(kwargs["verbose"], kwargs["quiet"], kwargs["log_format"])
    from datamove.demo import run_demo

    with _errors():
        run_demo(size, workdir, click.echo)


if __name__ == "__main__":  # pragma: no cover
    main()
