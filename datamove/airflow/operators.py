"""Airflow operators that run a datamove sync or verify as one task.

A sync keeps its state at the destination, so an Airflow retry (on any
worker) resumes where the killed or failed attempt stopped: finished units
are skipped, unfinished ones rewritten under the same names.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar

import fsspec
from airflow.sdk import BaseOperator, Connection
from airflow.sdk.exceptions import AirflowException, AirflowFailException

import datamove
from datamove.airflow.connections import storage_options_from_connection
from datamove.errors import DatamoveError, SyncFailedError, UsageError
from datamove.options import SyncOptions
from datamove.orchestrator import Progress
from datamove.storage import redact_options, redact_url

# Arguments of datamove.sync that the operator sets itself.
_RESERVED = {
    "source": "the operator's source argument",
    "dest": "the operator's dest argument",
    "source_options": "source_conn_id",
    "dest_options": "dest_conn_id",
    "scheduler": "the operator's scheduler argument",
    "client": "the operator's scheduler argument",
    "progress": "progress_interval",
    "options": "the option names themselves",
}
_FAILED_SHOWN = 10


def sync_option_names() -> frozenset[str]:
    """The keys ``DataMoveSyncOperator(options=...)`` accepts."""
    parameters = inspect.signature(datamove.sync).parameters
    names = {
        name
        for name, parameter in parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    names |= {field.name for field in dataclasses.fields(SyncOptions)}
    return frozenset(names - set(_RESERVED))


def check_sync_options(options: Any, task_id: str) -> dict[str, Any]:
    """``options`` as a dict of known ``datamove.sync`` keyword arguments.

    Raises:
        UsageError: ``options`` is not a mapping or names an unknown or
            reserved argument.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise UsageError(
            f"task {task_id}: options must be a dict of datamove.sync arguments, "
            f"got {type(options).__name__}"
        )
    known = sync_option_names()
    for name in options:
        if name in _RESERVED:
            raise UsageError(
                f"task {task_id}: options[{name!r}] is set by the operator; "
                f"use {_RESERVED[name]} instead"
            )
        if name not in known:
            raise UsageError(
                f"task {task_id}: options[{name!r}] is not an argument of "
                f"datamove.sync; use one of {', '.join(sorted(known))}"
            )
    return dict(options)


def storage_options_for(url: str, conn_id: str | None) -> dict[str, Any] | None:
    """Storage options for ``url`` from the Airflow connection ``conn_id``.

    ``None`` without a connection id: the store's own default credentials
    (environment, instance profile, workload identity) apply.

    Raises:
        UsageError: the connection cannot reach ``url``'s protocol.
        AirflowNotFoundException: no connection has this id.
    """
    if not conn_id:
        return None
    protocol = fsspec.core.split_protocol(url)[0] or "file"
    return storage_options_from_connection(Connection.get(conn_id), protocol)


class ProgressLog:
    """Writes a sync's latest progress to a logger every ``interval`` seconds.

    Use as a context manager around the sync and pass the instance as its
    ``progress`` callback. A line is written at each interval (also before
    the first unit finishes, so a long unit still shows the task is alive)
    and a last one when the last unit is done; the sync's own summary
    follows.
    """

    def __init__(self, logger: Any, subject: str, interval: float) -> None:
        self._logger = logger
        self._subject = subject
        self._interval = interval
        self._started = time.monotonic()
        self._latest: Progress | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="datamove-progress", daemon=True
        )

    def __call__(self, progress: Progress) -> None:
        with self._lock:
            self._latest = progress
        if progress.units_done == progress.units_total:
            self._stop.set()
            self._write(last=True)

    def __enter__(self) -> ProgressLog:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._write(last=False)

    def _write(self, last: bool) -> None:
        # Holding the lock while logging keeps the last line last.
        with self._lock:
            if self._stop.is_set() and not last:
                return
            latest = self._latest
            elapsed = _duration(time.monotonic() - self._started)
            if latest is None:
                self._logger.info(
                    "%s: planning or writing the first unit, %s elapsed",
                    self._subject,
                    elapsed,
                )
                return
            total = latest.bytes_total
            share = latest.bytes_read / total if total else 1.0
            self._logger.info(
                "%s: %d/%d units, %d rows, %s of %s read (%.0f%%), %d shards "
                "written, %d failed, %s elapsed",
                self._subject,
                latest.units_done,
                latest.units_total,
                latest.rows,
                _size(latest.bytes_read),
                _size(total),
                100 * share,
                latest.shards_written,
                latest.failed,
                elapsed,
            )


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _failure_message(error: SyncFailedError) -> str:
    report = getattr(error, "report", None)
    failed = list(report.failed) if report is not None else []
    names = [f"{item['piece']} ({item['error']})" for item in failed[:_FAILED_SHOWN]]
    if not names:
        names = list(error.failed[:_FAILED_SHOWN])
    more = len(error.failed) - len(names)
    listed = "; ".join(names) + (f"; and {more} more" if more > 0 else "")
    return f"{error}. Failed: {listed}"


class DataMoveSyncOperator(BaseOperator):  # type: ignore[misc]
    """Shard ``source`` into verified Parquet at ``dest`` with :func:`datamove.sync`.

    Args:
        source: a path or fsspec URL (templated).
        dest: a path or fsspec URL (templated).
        source_conn_id, dest_conn_id: Airflow connections (``aws``,
            ``google_cloud_platform`` or ``wasb``) whose credentials reach
            ``source`` and ``dest``; without one, the store's default
            credentials apply.
        options: keyword arguments of :func:`datamove.sync`, such as
            ``shard_size``, ``partition_by``, ``workers``, ``compression``
            (templated).
        scheduler: address of an existing Dask scheduler that runs the work
            instead of the Airflow worker (templated).
        progress_interval: seconds between progress lines in the task log.

    Returns (to XCom):
        The run's report, ``SyncReport.to_dict()``. A failed run also pushes
        its report under the XCom key ``report`` before the task fails.

    Raises:
        AirflowFailException: the arguments, the connection or the source
            data are wrong (a retry cannot help); the task fails at once.
        AirflowException: some units failed; the message names their shards.
            Finished units are kept, so the next try resumes.
        DatamoveError: other failures (storage errors, a held lease) as
            datamove raised them; Airflow retries them.
    """

    template_fields: Sequence[str] = ("source", "dest", "options", "scheduler")
    template_fields_renderers: ClassVar[dict[str, str]] = {"options": "json"}
    ui_color = "#d7ecf5"

    def __init__(
        self,
        *,
        source: str,
        dest: str,
        source_conn_id: str | None = None,
        dest_conn_id: str | None = None,
        options: dict[str, Any] | None = None,
        scheduler: str | None = None,
        progress_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(options, Mapping):
            check_sync_options(options, self.task_id)
        if progress_interval <= 0:
            raise UsageError(
                f"task {self.task_id}: progress_interval must be positive, "
                f"got {progress_interval}"
            )
        self.source = source
        self.dest = dest
        self.source_conn_id = source_conn_id
        self.dest_conn_id = dest_conn_id
        self.options = options
        self.scheduler = scheduler
        self.progress_interval = progress_interval

    def execute(self, context: Any) -> dict[str, Any]:
        subject = redact_url(self.dest)
        try:
            arguments = check_sync_options(self.options, self.task_id)
            source_options = storage_options_for(self.source, self.source_conn_id)
            dest_options = storage_options_for(self.dest, self.dest_conn_id)
            self.log.info(
                "%s: syncing from %s (connections: source %s, dest %s; options %s)",
                subject,
                redact_url(self.source),
                self.source_conn_id or "none",
                self.dest_conn_id or "none",
                json.dumps(redact_options(arguments), default=str, sort_keys=True),
            )
            with ProgressLog(self.log, subject, self.progress_interval) as progress:
                report = datamove.sync(
                    self.source,
                    self.dest,
                    source_options=source_options,
                    dest_options=dest_options,
                    scheduler=self.scheduler or None,
                    progress=progress,
                    **arguments,
                )
        except SyncFailedError as error:
            failed_report = getattr(error, "report", None)
            if failed_report is not None:
                context["ti"].xcom_push(key="report", value=_plain(failed_report))
            exception = (
                AirflowFailException if error.exit_code == 2 else AirflowException
            )
            raise exception(_failure_message(error)) from error
        except DatamoveError as error:
            if error.exit_code == 2:
                raise AirflowFailException(f"{error} (not retried)") from error
            raise
        return _plain(report)


class DataMoveVerifyOperator(BaseOperator):  # type: ignore[misc]
    """Check a destination against its manifest with :func:`datamove.verify`.

    Args:
        dest: the destination of an earlier sync (templated).
        dest_conn_id: the Airflow connection whose credentials reach it.
        deep: re-read every shard, parse its footer and recount its rows.

    Returns (to XCom):
        ``VerifyReport.to_dict()``.

    Raises:
        AirflowFailException: the destination has no manifest or does not
            match it; the report, with every problem, is pushed under the
            XCom key ``report`` first.
    """

    template_fields: Sequence[str] = ("dest",)
    ui_color = "#d7ecf5"

    def __init__(
        self,
        *,
        dest: str,
        dest_conn_id: str | None = None,
        deep: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dest = dest
        self.dest_conn_id = dest_conn_id
        self.deep = deep

    def execute(self, context: Any) -> dict[str, Any]:
        subject = redact_url(self.dest)
        try:
            dest_options = storage_options_for(self.dest, self.dest_conn_id)
            report = datamove.verify(
                self.dest, deep=self.deep, dest_options=dest_options
            )
        except DatamoveError as error:
            if error.exit_code == 2:
                raise AirflowFailException(f"{error} (not retried)") from error
            raise
        result = _plain(report)
        if not report.ok:
            context["ti"].xcom_push(key="report", value=result)
            shown = "; ".join(report.problems[:_FAILED_SHOWN])
            more = len(report.problems) - _FAILED_SHOWN
            raise AirflowFailException(
                f"{subject}: {len(report.problems)} problems: {shown}"
                + (f"; and {more} more" if more > 0 else "")
                + ". Re-run the sync to rewrite the affected shards"
            )
        self.log.info(
            "%s: verified %d shards, %d rows (%s)",
            subject,
            report.shards_checked,
            report.rows_checked,
            "deep" if self.deep else "sizes and checksums",
        )
        return result


def _plain(report: Any) -> dict[str, Any]:
    """The report as plain JSON types (lists, not tuples) for XCom."""
    plain: dict[str, Any] = json.loads(json.dumps(report.to_dict(), default=str))
    return plain


class DataMoveTierApplyOperator(BaseOperator):  # type: ignore[misc]
    """Move a destination's shards into their planned storage classes.

    Calls :func:`datamove.tiering.commands.tier_apply`: from a saved plan, or
    planning afresh from access logs and a policy. Resumable and idempotent,
    so Airflow retries are safe.

    Args:
        dest: the destination of an earlier sync (templated).
        dest_conn_id: the Airflow connection whose credentials reach it.
        plan_file: a plan saved by ``datamove tier plan --out`` (templated).
        access_logs: access log files or folders (templated).
        policy_file: the tier policy (YAML).
        prices_file: a price table of your own (YAML).

    Returns (to XCom):
        ``TierApplyReport.to_dict()``.

    Raises:
        AirflowFailException: a bad input (not retried), or shards that could
            not be moved; the report is pushed under the key ``report`` first.
    """

    template_fields: Sequence[str] = ("dest", "plan_file", "access_logs")
    ui_color = "#d7ecf5"

    def __init__(
        self,
        *,
        dest: str,
        dest_conn_id: str | None = None,
        plan_file: str | None = None,
        access_logs: Sequence[str] | None = None,
        policy_file: str | None = None,
        prices_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dest = dest
        self.dest_conn_id = dest_conn_id
        self.plan_file = plan_file
        self.access_logs = list(access_logs or [])
        self.policy_file = policy_file
        self.prices_file = prices_file

    def execute(self, context: Any) -> dict[str, Any]:
        from datamove.tiering.commands import tier_apply

        subject = redact_url(self.dest)
        try:
            report = tier_apply(
                self.dest,
                plan_file=self.plan_file,
                access_logs=self.access_logs or None,
                policy_file=self.policy_file,
                prices_file=self.prices_file,
                dest_options=storage_options_for(self.dest, self.dest_conn_id),
            )
        except DatamoveError as error:
            if error.exit_code == 2:
                raise AirflowFailException(f"{error} (not retried)") from error
            raise
        result = _plain(report)
        if not report.ok:
            context["ti"].xcom_push(key="report", value=result)
            raise AirflowFailException(
                f"{subject}: {len(report.failed)} shards could not be moved and "
                f"{len(report.unconfirmed)} are not confirmed; see the report"
            )
        self.log.info(
            "%s: %d shards moved, %d already in place",
            subject,
            report.changed,
            report.already,
        )
        return result
