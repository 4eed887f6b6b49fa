"""Execution: run units on Dask, or in this process for small plans.

This is the only module that imports Dask. The executor sees units and a
job description, never the CLI: it ships ``execute_unit`` to workers, which
read sources and write destinations themselves, and yields outcomes as they
complete. Plans with little input run on threads in this process instead
(:class:`ThreadExecutor`): starting worker processes costs more than they
save there (see :func:`make_executor`). A worker that dies has its units
retried on another by the Dask scheduler; shard names are deterministic, so a
retried unit rewrites the same objects instead of adding new ones.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from types import TracebackType
from typing import Any, Protocol

from datamove.errors import UsageError
from datamove.inventory import SourceFile
from datamove.planner import Unit
from datamove.sharder import ShardJob, UnitOutcome, execute_unit

log = logging.getLogger(__name__)

SCHEDULER_ENV = "DATAMOVE_SCHEDULER"


# Called with (unit id, rows so far, input bytes so far) while units run.
PartialProgress = Callable[[str, int, int], None]
PROGRESS_INTERVAL = 0.5


class Executor(Protocol):
    """Runs units and yields their outcomes in completion order."""

    def run(
        self,
        units: Sequence[Unit],
        job: ShardJob,
        on_partial: PartialProgress | None = None,
    ) -> Iterator[UnitOutcome]: ...

    def close(self) -> None: ...

    @property
    def description(self) -> str: ...

    @property
    def slots(self) -> int:
        """How many units can run at once (each gets a share of --bwlimit)."""
        ...


class SerialExecutor:
    """Runs units one after another in this process."""

    description = "in-process"
    slots = 1

    def run(
        self,
        units: Sequence[Unit],
        job: ShardJob,
        on_partial: PartialProgress | None = None,
    ) -> Iterator[UnitOutcome]:
        for unit in units:
            yield execute_unit(unit, job, _reporter(unit.unit_id, on_partial))

    def close(self) -> None:
        pass


class ThreadExecutor:
    """Runs units on threads of this process, ``threads`` at a time.

    Reading CSV, typing, encoding Parquet and hashing run in Arrow's C++ code
    (or datamove's C loops) with the GIL released, so threads use the cores
    about as processes do, without starting, importing and warming up
    worker processes. Measured on 2 cores, 1 GiB of CSV: 4.8 s against 6.4 s
    on an embedded cluster of 2 processes, a third less CPU.
    """

    def __init__(self, threads: int) -> None:
        self.slots = max(1, threads)
        self.description = f"{self.slots} threads in this process"

    def run(
        self,
        units: Sequence[Unit],
        job: ShardJob,
        on_partial: PartialProgress | None = None,
    ) -> Iterator[UnitOutcome]:
        with ThreadPoolExecutor(self.slots, thread_name_prefix="datamove-unit") as pool:
            futures: list[Future[UnitOutcome]] = [
                pool.submit(
                    execute_unit, unit, job, _reporter(unit.unit_id, on_partial)
                )
                for unit in units
            ]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:
                # Stopped early (an interrupt, a failed consumer): start no more.
                for future in futures:
                    future.cancel()

    def close(self) -> None:
        pass


def _throttled(report: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """``report``, called at most every PROGRESS_INTERVAL seconds."""
    last = 0.0

    def call(rows: int, done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL:
            last = now
            report(rows, done)

    return call


def _reporter(
    unit_id: str, on_partial: PartialProgress | None
) -> Callable[[int, int], None] | None:
    if on_partial is None:
        return None

    def report(rows: int, done: int) -> None:
        on_partial(unit_id, rows, done)

    return _throttled(report)


def _execute_reporting(unit: Unit, job: ShardJob, topic: str | None) -> UnitOutcome:
    """``execute_unit`` on a worker, sending its progress to the client.

    Progress goes as structured events through the scheduler, so it reaches
    the client from any worker of a remote cluster.
    """
    if topic is None:
        return execute_unit(unit, job)
    from distributed import get_worker

    worker = get_worker()

    def send(rows: int, done: int) -> None:
        worker.log_event(topic, [unit.unit_id, rows, done])

    return execute_unit(unit, job, _throttled(send))


class _ProgressListener:
    """Receives the workers' progress events on the client."""

    def __init__(self, client: Any, topic: str, on_partial: PartialProgress) -> None:
        self._client = client
        self._topic = topic
        self._on_partial = on_partial
        client.subscribe_topic(topic, self._receive)

    def _receive(self, event: Any) -> None:
        _, (unit_id, rows, done) = event
        self._on_partial(unit_id, rows, done)

    def stop(self) -> None:
        self._client.unsubscribe_topic(self._topic)


ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


def worker_environment() -> dict[str, str]:
    """Environment of the embedded cluster's worker processes.

    Arrow allocates through jemalloc there, unless the user chose a pool in
    ``ARROW_DEFAULT_MEMORY_POOL``: a unit allocates and frees hundreds of MB
    of short-lived buffers, and pyarrow's default allocator (mimalloc) gives
    those pages back to the kernel and faults them in again. Measured on
    1 GiB of CSV, 2 workers: 4.5% less wall time, 0.7 s less system time.
    The calling process and the workers of an existing cluster keep their
    own allocator.
    """
    if os.environ.get(ARROW_POOL_ENV):
        return {}
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return {}
    return {ARROW_POOL_ENV: "jemalloc"}


#: Set by Dask in every worker process it spawns (its ``pre-spawn-environ``),
#: to give freed memory back to the kernel at once. Setting any of glibc's
#: malloc tunables also freezes its mmap threshold at 128 KiB, so every read
#: buffer and zstd workspace of a unit was mapped fresh, faulted in and
#: unmapped: 1.1 million extra page faults and 3 s more system time on 4 GiB.
DASK_TRIM_ENV = "MALLOC_TRIM_THRESHOLD_"

# Dask settings that drop that tuning from the embedded workers, which then
# allocate as every other process does (glibc's defaults, Arrow through
# jemalloc). A value the user exported is still inherited.
_SPAWN_OVERRIDES = {f"distributed.nanny.pre-spawn-environ.{DASK_TRIM_ENV}": None}


def use_worker_memory_pool() -> None:
    """Make this process allocate Arrow buffers as the embedded workers do.

    For the command's own process, which runs small plans on threads (see
    :func:`worker_environment` for why jemalloc; with two threads in one
    process the default allocator's page faults and TLB flushes cost more
    still: 4 GiB on 2 threads spent 11 s in the kernel with it, 4.6 s with
    jemalloc). Library callers keep their process's allocator.
    """
    if not worker_environment():
        return
    import pyarrow as pa

    pa.set_memory_pool(pa.jemalloc_memory_pool())


def default_workers() -> int:
    """Worker processes for an embedded cluster: one per available core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class DaskExecutor:
    """Runs units on a Dask cluster: an existing one, or an embedded one.

    Args:
        client: a ``distributed.Client`` to use as it is (not closed here).
        scheduler: the address of an existing scheduler (``tcp://host:8786``).
        workers: worker processes of the embedded cluster started when neither
            ``client`` nor ``scheduler`` is given.
    """

    def __init__(
        self,
        client: Any = None,
        scheduler: str | None = None,
        workers: int | None = None,
    ) -> None:
        from distributed import Client, LocalCluster

        self._own_client = client is None
        self._cluster: Any = None
        if client is not None:
            self.client = client
            self.description = f"dask cluster at {client.scheduler.address}"
        elif scheduler:
            try:
                self.client = Client(scheduler, timeout="10s")
            except OSError as error:
                raise UsageError(
                    f"--scheduler {scheduler}: cannot reach the Dask scheduler "
                    f"({error}); check the address or omit --scheduler to run locally"
                ) from None
            self.description = f"dask cluster at {scheduler}"
        else:
            import dask

            count = workers or default_workers()
            with dask.config.set(_SPAWN_OVERRIDES):
                self._cluster = LocalCluster(
                    n_workers=count,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.WARNING,
                    env=worker_environment(),
                )
            self.client = Client(self._cluster)
            self.description = f"embedded dask cluster of {count} worker processes"
        log.info("executor: %s", self.description)

    def run(
        self,
        units: Sequence[Unit],
        job: ShardJob,
        on_partial: PartialProgress | None = None,
    ) -> Iterator[UnitOutcome]:
        from distributed import as_completed

        topic = f"datamove-progress-{job.run_id}" if on_partial is not None else None
        listener = None
        if topic is not None and on_partial is not None:
            listener = _ProgressListener(self.client, topic, on_partial)
        futures = self.client.map(
            _execute_reporting,
            list(units),
            job=job,
            topic=topic,
            key=[f"datamove-{job.run_id}-{unit.unit_id}" for unit in units],
            pure=False,
        )
        try:
            yield from self._collect(futures, units, as_completed)
        finally:
            if listener is not None:
                listener.stop()

    def _collect(
        self, futures: list[Any], units: Sequence[Unit], as_completed: Any
    ) -> Iterator[UnitOutcome]:
        by_key = {future.key: unit for future, unit in zip(futures, units, strict=True)}
        for future in as_completed(futures):
            unit = by_key[future.key]
            try:
                outcome: UnitOutcome = future.result()
            except Exception as error:
                outcome = UnitOutcome(
                    unit.unit_id,
                    unit.piece.describe(),
                    error=f"{unit.piece.describe()}: task failed: "
                    f"{type(error).__name__}: {error}",
                    error_type=type(error).__name__,
                )
            future.release()
            yield outcome

    @property
    def slots(self) -> int:
        """Units that can run at once: the cluster's worker threads."""
        threads: dict[str, int] = self.client.nthreads()
        return max(1, sum(threads.values()))

    def worker_addresses(self) -> list[str]:
        info = self.client.scheduler_info()
        return sorted(info.get("workers", {}))

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ClusterWarmup:
    """An embedded cluster started while the run is still planning.

    Starting worker processes takes one to two seconds, spent waiting on the
    children's imports. Planning calls :meth:`start` once it knows that new
    or changed input will be written (never for a plan with nothing to do),
    the cluster starts in a background thread while sampling goes on, and
    :func:`make_executor` takes it if the plan needs an embedded cluster. A
    cluster that is not taken is closed by :meth:`close`. Nothing is started
    where :func:`make_executor` would not start an embedded cluster (a
    client, a scheduler, ``workers=1``).
    """

    def __init__(
        self,
        workers: int | None = None,
        client: Any = None,
        scheduler: str | None = None,
        *,
        cluster_above: int,
        enabled: bool = True,
    ) -> None:
        self._enabled = enabled and _embedded(client, scheduler, workers)
        self._workers = workers
        self._cluster_above = cluster_above
        self._thread: threading.Thread | None = None
        self._executor: DaskExecutor | None = None

    def start(self, changed: Sequence[SourceFile]) -> None:
        """Start the cluster if ``changed`` files are more input than a plan
        that runs in this process (see :func:`make_executor`)."""
        if not self._enabled or self._thread is not None:
            return
        if sum(file.size for file in changed) <= self._cluster_above:
            return

        def run() -> None:
            try:
                self._executor = DaskExecutor(workers=self._workers)
            except Exception as error:  # make_executor tries again and reports
                log.debug("executor: warm start failed (%s)", type(error).__name__)

        self._thread = threading.Thread(target=run, name="datamove-warmup", daemon=True)
        self._thread.start()
        log.debug("executor: starting the embedded cluster while planning")

    def take(self) -> DaskExecutor | None:
        """The warm cluster, once started (None if none was or it failed)."""
        if self._thread is not None:
            self._thread.join()
        executor, self._executor, self._thread = self._executor, None, None
        return executor

    def close(self) -> None:
        """Close a cluster that was started but not taken."""
        executor = self.take()
        if executor is not None:
            executor.close()


def _scheduler_address(scheduler: str | None) -> str | None:
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


def _embedded(client: Any, scheduler: str | None, workers: int | None) -> bool:
    """Whether :func:`make_executor` runs a plan of several units on an
    embedded cluster."""
    return client is None and not _scheduler_address(scheduler) and workers != 1


def make_executor(
    units: int,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    warmup: ClusterWarmup | None = None,
    *,
    input_bytes: int = 0,
    cluster_above: int = 0,
) -> Executor:
    """The executor for a plan of ``units`` units reading ``input_bytes``.

    An existing client or scheduler (also from ``DATAMOVE_SCHEDULER``) is
    always used. Otherwise a plan of one unit, or ``workers=1``, runs in this
    process; a plan of at most ``cluster_above`` bytes of input runs on
    ``workers`` threads (one per core by default) in this process; anything
    larger on an embedded cluster of worker processes: the one ``warmup``
    started, if it did.

    Why the threshold: an embedded cluster costs about 2 s of wall time and
    3 CPU-seconds whatever the plan (two interpreters importing, each worker
    warming up its memory, the scheduler), which is a third of a 1 GiB run
    on 2 cores and a tenth of a 4 GiB one. Worker processes isolate units
    (a crash or a runaway allocation stays in its process, and the nanny
    restarts it) and are the same machinery as a remote cluster, so large
    plans keep them.
    """
    scheduler = _scheduler_address(scheduler)
    if client is not None or scheduler:
        return DaskExecutor(client=client, scheduler=scheduler)
    warm = warmup.take() if warmup is not None else None
    slots = min(workers or default_workers(), units)
    if units <= 1 or workers == 1 or input_bytes <= cluster_above:
        if warm is not None:
            warm.close()
        return SerialExecutor() if slots <= 1 else ThreadExecutor(slots)
    return warm or DaskExecutor(workers=slots)
