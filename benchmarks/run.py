"""Time ``datamove sync`` against the tools it replaces, on the same data.

    python benchmarks/run.py --sizes 256MiB,1GiB --out benchmarks/results

For each size, a synthetic transactions CSV dataset is generated once (and
cached under ``--data-dir``), read into the page cache, and then converted to
zstd Parquet by every peer in turn: ``datamove sync`` (local folder, and with
``--s3`` a local moto S3 server), DuckDB ``COPY``, pyarrow ``write_dataset``,
``dask.dataframe`` on threads and on a 2-process ``LocalCluster``, polars
``sink_parquet``, and ``rclone copy`` as a plain byte copy. A second
``datamove sync`` and a second ``rclone copy`` with nothing changed time the
no-op. Each peer runs in its own process; a failing or missing peer is
reported and the others go on.

Throughput is input CSV bytes over wall seconds (MB = 10^6 bytes); memory is
the peak of the summed RSS of the peer's process and all its children, sampled
every 50 ms. Results go to ``OUT/results.json`` and ``OUT/benchmark.png``, and
a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
MB = 1_000_000
MIB = 1 << 20
SAMPLE_SECONDS = 0.05
S3_BUCKET = "datamove-bench"
S3_KEY = S3_SECRET = "testing"  # moto accepts any credentials

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40})


def parse_size(text: str) -> int:
    """``256MiB``, ``1GiB``, ``500MB`` or a byte count, as bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise argparse.ArgumentTypeError(
            f"size {text!r}: write a number with a unit, such as 256MiB or 1GiB"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def size_label(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


# -- measuring one command ------------------------------------------------------


@dataclass
class Measurement:
    returncode: int
    seconds: float
    peak_rss: int
    stdout: str
    stderr: str
    cpu_seconds: float  # used by the command's process tree
    other_cpu_seconds: float  # used meanwhile by everything else on the machine


class TreeMemorySampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants until stopped.

    Listing descendants walks all of /proc, so the list is refreshed every
    few samples; reading each known process's RSS is cheap and done each time.
    """

    REFRESH_EVERY = 5

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.processes: list[psutil.Process] = [self.root]
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        samples = 0
        while not self.stopped.is_set():
            if samples % self.REFRESH_EVERY == 0:
                self.refresh()
            self.peak = max(self.peak, self.sample())
            samples += 1
            self.stopped.wait(SAMPLE_SECONDS)

    def refresh(self) -> None:
        try:
            self.processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            self.processes = []

    def sample(self) -> int:
        total = 0
        for process in self.processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue  # it ended since the last listing
        return total

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return self.peak


def measure(
    command: Sequence[str], *, timeout: float, env: dict[str, str] | None = None
) -> Measurement:
    """Run ``command`` to completion, timing it and sampling its memory.

    The tree's CPU time is what the finished, reaped processes report to their
    parent (``RUSAGE_CHILDREN``); the rest of the machine's busy time during the
    run is recorded too, to flag figures taken on a machine that was not idle.
    """
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_before = _busy_cpu_seconds()
    start = time.perf_counter()
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    sampler = TreeMemorySampler(process.pid)
    sampler.start()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        stdout, stderr = process.communicate()
        stderr += f"\nbenchmark: stopped after the {timeout:.0f} s timeout"
    except BaseException:
        # Ctrl-C reaches the runner only: the peer has a session of its own.
        _kill_tree(process)
        sampler.stop()
        raise
    seconds = time.perf_counter() - start
    peak = sampler.stop()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (children.ru_utime - children_before.ru_utime) + (
        children.ru_stime - children_before.ru_stime
    )
    other = max(0.0, _busy_cpu_seconds() - machine_before - cpu)
    return Measurement(process.returncode, seconds, peak, stdout, stderr, cpu, other)


def _busy_cpu_seconds() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _kill_tree(process: subprocess.Popen[str]) -> None:
    """End a peer we started, with the children it started (its own session)."""
    try:
        root = psutil.Process(process.pid)
        tree = [*root.children(recursive=True), root]
    except psutil.Error:
        return  # it has already ended
    for member in tree:
        try:
            member.kill()
        except psutil.Error:
            continue


# -- data -----------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    label: str
    directory: Path
    files: tuple[Path, ...]
    rows: int

    @property
    def input_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)


def prepare_dataset(
    data_dir: Path, size: int, files: int, seed: int, label: str | None = None
) -> Dataset:
    """Generate the CSV dataset for ``size`` unless a complete copy is cached."""
    label = label or size_label(size)
    from datamove.samples import generate_transactions

    directory = data_dir / f"transactions-{size_label(size)}-{files}files-seed{seed}"
    # The marker sits beside the folder, which holds nothing but the CSV files.
    marker = directory.with_name(directory.name + ".complete.json")
    if marker.exists():
        cached = json.loads(marker.read_text())
        paths = tuple(directory / name for name in cached["files"])
        if all(path.exists() for path in paths):
            print(f"{directory}: cached, {cached['rows']} rows", flush=True)
            return Dataset(label, directory, paths, cached["rows"])
    shutil.rmtree(directory, ignore_errors=True)
    marker.unlink(missing_ok=True)

    print(f"{directory}: generating {size_label(size)} of CSV...", flush=True)
    start = time.perf_counter()
    paths = tuple(generate_transactions(directory, size, files=files, seed=seed))
    seconds = time.perf_counter() - start
    rows = warm_page_cache(paths)
    print(
        f"{directory}: {rows} rows in {seconds:.1f} s ({size / seconds / MB:.0f} MB/s)",
        flush=True,
    )
    marker.write_text(json.dumps({"files": [p.name for p in paths], "rows": rows}))
    return Dataset(label, directory, paths, rows)


def warm_page_cache(paths: Sequence[Path]) -> int:
    """Read every file once so that peers read from memory; return data rows.

    Rows are counted as line feeds less one header line per file, which holds
    because the benchmark data has no line breaks inside quoted fields.
    """
    lines = 0
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(16 * MIB):
                lines += chunk.count(b"\n")
    return lines - len(paths)


# -- the peers --------------------------------------------------------------------


@dataclass(frozen=True)
class RunContext:
    dataset: Dataset
    work: Path
    workers: int | None
    s3_endpoint: str | None
    timeout: float
    cluster_above: str | None = None


@dataclass(frozen=True)
class Peer:
    """One way of moving the dataset; ``command`` builds its command line."""

    name: str
    kind: str  # "convert" (CSV to Parquet), "copy" (bytes) or "no-op"
    command: Callable[[RunContext], list[str]]
    available: Callable[[], str | None] = lambda: None  # why it cannot run
    dest: Callable[[RunContext], str] = lambda ctx: str(ctx.work / "out")
    env: Callable[[RunContext], dict[str, str]] = lambda ctx: {}
    unset_env: tuple[str, ...] = ()
    clean_before: bool = True
    needs_s3: bool = False


def _datamove_executable() -> str | None:
    beside_python = Path(sys.executable).with_name("datamove")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("datamove")


def _datamove_available() -> str | None:
    if _datamove_executable() is None:
        return "the datamove command is not installed (pip install -e .)"
    return None


def _datamove_command(ctx: RunContext, dest: str, extra: list[str]) -> list[str]:
    executable = _datamove_executable()
    assert executable is not None
    command = [executable, "sync", str(ctx.dataset.directory), dest]
    command += ["--json", "--no-progress", *extra]
    if ctx.workers:
        command += ["--workers", str(ctx.workers)]
    if ctx.cluster_above:
        command += ["--cluster-above", ctx.cluster_above]
    return command


# Issue 5's benchmark policy: two columns hashed, one masked, the rest kept.
ANON_POLICY = """\
default: keep
columns:
  customer_email: {action: hash, length: 24}
  account_id: {action: hash, length: 16}
  card_number: {action: mask, keep_last: 4}
"""
ANON_KEY = "benchmark-key-0123456789-abcdefghijklmnopqrstuv"


def _anonymize_options(ctx: RunContext) -> list[str]:
    """Write the benchmark policy and key beside the run; return the flags."""
    policy = ctx.work / "policy.yaml"
    key = ctx.work / "anon.key"
    ctx.work.mkdir(parents=True, exist_ok=True)
    policy.write_text(ANON_POLICY)
    key.write_text(ANON_KEY)
    return ["--anonymize", str(policy), "--anon-key", str(key)]


def _s3_options(ctx: RunContext) -> list[str]:
    options = {"key": S3_KEY, "secret": S3_SECRET, "endpoint_url": ctx.s3_endpoint}
    return ["--dest-options", json.dumps(options)]


def _s3_dest(ctx: RunContext, tool: str) -> str:
    return f"s3://{S3_BUCKET}/{tool}-{ctx.dataset.label}"


def _python_peer(name: str) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        peers = str(HERE / "peers.py")
        return [
            sys.executable,
            peers,
            name,
            str(ctx.dataset.directory),
            str(ctx.work / "out"),
        ]

    return command


def _module_available(module: str) -> Callable[[], str | None]:
    def check() -> str | None:
        import importlib.util

        if importlib.util.find_spec(module) is None:
            return (
                f"python package {module} is not installed (pip install -e '.[bench]')"
            )
        return None

    return check


def _rclone_available() -> str | None:
    if shutil.which("rclone") is None:
        return "rclone is not installed (apt-get install rclone)"
    return None


def _rclone_s3_env(ctx: RunContext) -> dict[str, str]:
    prefix = "RCLONE_CONFIG_BENCHS3_"
    return {
        prefix + "TYPE": "s3",
        prefix + "PROVIDER": "Other",
        prefix + "ACCESS_KEY_ID": S3_KEY,
        prefix + "SECRET_ACCESS_KEY": S3_SECRET,
        prefix + "ENDPOINT": ctx.s3_endpoint or "",
        prefix + "REGION": "us-east-1",
    }


def _rclone_command(ctx: RunContext, dest: str) -> list[str]:
    rclone = shutil.which("rclone") or "rclone"
    return [rclone, "copy", str(ctx.dataset.directory), dest]


PEERS: tuple[Peer, ...] = (
    Peer(
        "datamove",
        "convert",
        lambda ctx: _datamove_command(ctx, str(ctx.work / "out"), []),
        _datamove_available,
    ),
    Peer(
        "datamove-noop",
        "no-op",
        lambda ctx: _datamove_command(ctx, str(ctx.work / "out"), []),
        _datamove_available,
        clean_before=False,
    ),
    Peer(
        "datamove-anon",
        "convert",
        lambda ctx: _datamove_command(
            ctx, str(ctx.work / "out"), _anonymize_options(ctx)
        ),
        _datamove_available,
    ),
    Peer(
        "datamove-s3",
        "convert",
        lambda ctx: _datamove_command(ctx, _s3_dest(ctx, "datamove"), _s3_options(ctx)),
        _datamove_available,
        dest=lambda ctx: _s3_dest(ctx, "datamove"),
        needs_s3=True,
    ),
    Peer("duckdb", "convert", _python_peer("duckdb"), _module_available("duckdb")),
    Peer("pyarrow", "convert", _python_peer("pyarrow"), _module_available("pyarrow")),
    Peer(
        "dask-threads",
        "convert",
        _python_peer("dask-threads"),
        _module_available("dask.dataframe"),
    ),
    Peer(
        "dask-processes",
        "convert",
        _python_peer("dask-processes"),
        _module_available("distributed"),
    ),
    Peer("polars", "convert", _python_peer("polars"), _module_available("polars")),
    Peer(
        "rclone",
        "copy",
        lambda ctx: _rclone_command(ctx, str(ctx.work / "out")),
        _rclone_available,
    ),
    Peer(
        "rclone-noop",
        "no-op",
        lambda ctx: _rclone_command(ctx, str(ctx.work / "out")),
        _rclone_available,
        clean_before=False,
    ),
    Peer(
        "rclone-s3",
        "copy",
        lambda ctx: _rclone_command(
            ctx, f"benchs3:{S3_BUCKET}/rclone-{ctx.dataset.label}"
        ),
        _rclone_available,
        dest=lambda ctx: _s3_dest(ctx, "rclone"),
        env=_rclone_s3_env,
        # rclone 1.60 cannot apply a CA bundle to its HTTP transport, and the
        # local server is plain HTTP anyway.
        unset_env=("AWS_CA_BUNDLE",),
        needs_s3=True,
    ),
)
PEER_NAMES = [peer.name for peer in PEERS]
NOOP_SCENARIO_PEERS = ("datamove", "datamove-noop", "rclone", "rclone-noop")
NOOP_FILE_BYTES = 4096


# -- one result -------------------------------------------------------------------


@dataclass
class Result:
    peer: str
    kind: str
    size: str
    input_bytes: int
    rows: int
    status: str  # ok, failed or skipped
    seconds: float | None = None
    mb_per_s: float | None = None
    peak_rss_mib: float | None = None
    cpu_cores_used: float | None = None  # tree CPU seconds / wall seconds
    mb_per_cpu_s: float | None = None  # input MB / tree CPU seconds
    other_cpu_cores: float | None = None  # the rest of the machine, same unit
    ratio: float | None = None  # datamove MB/s over this peer's MB/s
    output_rows: int | None = None
    output_bytes: int | None = None
    leading_zeros_kept: bool | None = None
    note: str = ""
    scenario: str = "throughput"  # or "many-files" (--noop-files)
    all_seconds: list[float] = field(default_factory=list)  # with --repeat
    report: dict[str, Any] = field(default_factory=dict)


def run_peer(peer: Peer, ctx: RunContext, s3: S3Server | None) -> Result:
    dataset = ctx.dataset
    result = Result(
        peer.name,
        peer.kind,
        dataset.label,
        dataset.input_bytes,
        dataset.rows,
        "skipped",
    )
    if peer.needs_s3 and s3 is None:
        result.note = "needs --s3"
        return result
    reason = peer.available()
    if reason:
        result.note = reason
        return result

    if peer.clean_before:
        _remove_dest(peer.dest(ctx), s3)
    warm_page_cache(dataset.files)
    env = {**os.environ, **peer.env(ctx)}
    for name in peer.unset_env:
        env.pop(name, None)
    print(f"{dataset.label} {peer.name}: running", flush=True)
    try:
        measured = measure(peer.command(ctx), timeout=ctx.timeout, env=env)
    except OSError as error:
        result.status, result.note = "failed", f"could not start: {error}"
        return result

    result.seconds = round(measured.seconds, 3)
    result.peak_rss_mib = round(measured.peak_rss / MIB, 1)
    result.cpu_cores_used = round(measured.cpu_seconds / measured.seconds, 2)
    result.other_cpu_cores = round(measured.other_cpu_seconds / measured.seconds, 2)
    if measured.returncode != 0:
        result.status = "failed"
        result.note = _last_lines(measured.stderr or measured.stdout)
        return result
    result.status = "ok"
    result.mb_per_s = round(dataset.input_bytes / measured.seconds / MB, 1)
    if measured.cpu_seconds > 0:
        result.mb_per_cpu_s = round(dataset.input_bytes / measured.cpu_seconds / MB, 1)
    if peer.name.startswith("datamove"):
        result.report = _json_report(measured.stdout)
        status = result.report.get("status")
        written = result.report.get("shards_written")
        if status not in (None, "ok", "noop"):
            result.note = f"report status {status!r}"
        elif peer.kind == "no-op" and written:
            result.note = f"not a no-op: {written} shards written again"
    _inspect_output(peer, ctx, s3, result)
    return result


def _last_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])[-800:]


def _json_report(stdout: str) -> dict[str, Any]:
    start = stdout.find("{")
    if start < 0:
        return {}
    try:
        report = json.loads(stdout[start:])
    except json.JSONDecodeError:
        return {}
    return report if isinstance(report, dict) else {}


def _inspect_output(
    peer: Peer, ctx: RunContext, s3: S3Server | None, result: Result
) -> None:
    """Record what the peer wrote: bytes, and rows and column types of Parquet."""
    import pyarrow.parquet as pq

    dest = peer.dest(ctx)
    filesystem: Any = s3.filesystem() if dest.startswith("s3://") and s3 else None
    if filesystem is None:
        import fsspec

        filesystem = fsspec.filesystem("file")
    try:
        paths = [
            path
            for path in filesystem.find(dest)
            if "/_datamove/" not in path and not path.endswith(".partial")
        ]
        result.output_bytes = sum(int(filesystem.size(path)) for path in paths)
        parquet = [path for path in paths if path.endswith(".parquet")]
        if peer.kind != "copy" and parquet:
            rows = 0
            for path in parquet:
                with filesystem.open(path, "rb") as handle:
                    rows += pq.ParquetFile(handle).metadata.num_rows
            result.output_rows = rows
            with filesystem.open(parquet[0], "rb") as handle:
                schema = pq.ParquetFile(handle).schema_arrow
            postcode = (
                schema.field("postcode").type if "postcode" in schema.names else None
            )
            result.leading_zeros_kept = postcode is not None and str(postcode) in (
                "string",
                "large_string",
                "string_view",
            )
        elif peer.kind == "copy":
            result.output_rows = None
    except Exception as error:  # a broken output is a finding, not a crash
        result.note = (result.note + f" output not readable: {error}").strip()


def _remove_dest(dest: str, s3: S3Server | None) -> None:
    if dest.startswith("s3://"):
        if s3 is not None:
            filesystem = s3.filesystem()
            if filesystem.exists(dest):
                filesystem.rm(dest, recursive=True)
        return
    shutil.rmtree(dest, ignore_errors=True)


# -- local S3 -----------------------------------------------------------------------


class S3Server:
    """A moto S3 server on a free loopback port, for the --s3 peers."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"moto server on {self.endpoint} did not start in 30 s")
        self.filesystem().mkdir(S3_BUCKET)

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            key=S3_KEY,
            secret=S3_SECRET,
            endpoint_url=self.endpoint,
            skip_instance_cache=True,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


@contextmanager
def s3_server(enabled: bool) -> Iterator[S3Server | None]:
    if not enabled:
        yield None
        return
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- reporting ----------------------------------------------------------------------


def add_ratios(results: list[Result]) -> None:
    """Set each result's ratio: datamove's throughput over the peer's.

    The input is the same, so that is the peer's time over datamove's. No-op
    runs are compared with datamove's no-op, S3 runs with datamove's S3 run.
    """
    for result in results:
        if result.status != "ok" or not result.seconds:
            continue
        if result.kind == "no-op":
            reference_name = "datamove-noop"
        elif result.peer.endswith("-s3"):
            reference_name = "datamove-s3"
        else:
            reference_name = "datamove"
        reference = next(
            (
                r
                for r in results
                if r.peer == reference_name
                and r.size == result.size
                and r.status == "ok"
            ),
            None,
        )
        if reference is not None and reference.seconds:
            result.ratio = float(f"{result.seconds / reference.seconds:.3g}")


def format_table(results: list[Result]) -> str:
    """The results as an aligned text table, one line per peer and size."""
    header = (
        "size", "peer", "status", "seconds", "MB/s", "peak RSS MiB", "cores",
        "MB/CPU-s", "others", "datamove/peer", "rows ok", "zeros kept", "note",
    )  # fmt: skip
    rows = [header]
    for r in results:
        rows_ok = ""
        if r.output_rows is not None:
            rows_ok = "yes" if r.output_rows == r.rows else f"no ({r.output_rows})"
        zeros = ""
        if r.leading_zeros_kept is not None:
            zeros = "yes" if r.leading_zeros_kept else "no"
        rows.append(
            (
                r.size,
                r.peer,
                r.status,
                _number(r.seconds, 2),
                _number(r.mb_per_s, 1) if r.kind != "no-op" else "-",
                _number(r.peak_rss_mib, 0),
                _number(r.cpu_cores_used, 2),
                _number(r.mb_per_cpu_s, 1) if r.kind != "no-op" else "-",
                _number(r.other_cpu_cores, 2),
                "" if r.ratio is None else f"{r.ratio:.3g}",
                rows_ok,
                zeros,
                r.note[:70],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    legend = (
        "cores: CPU seconds of the peer's processes / wall seconds; MB/CPU-s:"
        " input MB / those CPU seconds; others: CPU seconds of the rest of the"
        " machine meanwhile / wall seconds (near 0 on a quiet machine);"
        " datamove/peer: the peer's time / datamove's (above 1: datamove faster)"
    )
    return "\n".join(line.rstrip() for line in lines) + "\n\n" + legend


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def machine_description() -> dict[str, Any]:
    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for package in (
        "datamove",
        "pyarrow",
        "duckdb",
        "polars",
        "dask",
        "distributed",
        "numpy",
        "pandas",
    ):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            continue
    rclone = shutil.which("rclone")
    if rclone:
        completed = subprocess.run(
            [rclone, "version"], capture_output=True, text=True, check=False
        )
        versions["rclone"] = (
            completed.stdout.split("\n", 1)[0].removeprefix("rclone ").strip()
        )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / (1 << 30), 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def draw_chart(results: list[Result], path: Path) -> None:
    """Throughput and peak memory against input size, one line per peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (speed, efficiency, memory) = plt.subplots(1, 3, figsize=(17, 5))
    colours = plt.get_cmap("tab10")
    sizes: dict[float, str] = {}
    for index, name in enumerate(PEER_NAMES):
        points = sorted(
            (r.input_bytes / MIB, r)
            for r in results
            if r.peer == name and r.status == "ok" and r.scenario == "throughput"
        )
        if not points:
            continue
        sizes.update((mib, r.size) for mib, r in points)
        x = [mib for mib, _ in points]
        style = {
            "color": colours(index % 10),
            "marker": "o",
            "linestyle": "-" if name.startswith("datamove") else "--",
            "linewidth": 2.2 if name.startswith("datamove") else 1.2,
            "label": f"{name} (byte copy)" if points[0][1].kind == "copy" else name,
        }
        if points[0][1].kind != "no-op":
            speed.plot(x, [r.mb_per_s for _, r in points], **style)
            efficiency.plot(x, [r.mb_per_cpu_s for _, r in points], **style)
        memory.plot(x, [r.peak_rss_mib for _, r in points], **style)
    for axes, title, unit in (
        (speed, "Throughput, CSV to zstd Parquet (higher is better)", "MB/s"),
        (efficiency, "Input per CPU second (higher is better)", "MB/CPU-s"),
        (memory, "Peak RSS of the process tree (lower is better)", "MiB"),
    ):
        axes.set_xscale("log", base=2)
        axes.set_xticks(list(sizes), list(sizes.values()))
        axes.minorticks_off()
        axes.set_xlabel("input CSV size")
        axes.set_ylabel(unit)
        axes.set_ylim(bottom=0)
        axes.set_title(title, fontsize=10)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7, loc="best")
    figure.suptitle(f"datamove and its peers on {os.cpu_count()} cores", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- main -------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time datamove sync against DuckDB, pyarrow, dask, polars, rclone."
    )
    parser.add_argument(
        "--sizes",
        default="256MiB,1GiB,4GiB",
        help="comma-separated CSV sizes, e.g. 256MiB,1GiB (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="results folder"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="cache of generated data (default: OUT/data)"
    )
    parser.add_argument("--files", type=int, default=4, help="CSV files per dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peers",
        default=",".join(PEER_NAMES),
        help="comma-separated subset of: %(default)s",
    )
    parser.add_argument("--skip", default="", help="comma-separated peers to leave out")
    parser.add_argument("--workers", type=int, help="passed to datamove sync --workers")
    parser.add_argument(
        "--cluster-above",
        metavar="SIZE",
        help="passed to datamove sync --cluster-above (0: always the embedded cluster)",
    )
    parser.add_argument(
        "--s3", action="store_true", help="also sync to a local moto S3"
    )
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds per peer run"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per peer; the fastest is kept (default: %(default)s)",
    )
    parser.add_argument(
        "--noop-files",
        type=int,
        default=0,
        metavar="N",
        help="also time a no-op sync of N small files (the issue's figure: 10000)",
    )
    parser.add_argument(
        "--replot",
        action="store_true",
        help="only redraw the table and chart from OUT/results.json",
    )
    parser.add_argument(
        "--keep-output", action="store_true", help="keep what the peers wrote"
    )
    arguments = parser.parse_args(argv)
    arguments.size_list = [
        parse_size(text) for text in arguments.sizes.split(",") if text
    ]
    chosen = [name.strip() for name in arguments.peers.split(",") if name.strip()]
    skipped = {name.strip() for name in arguments.skip.split(",") if name.strip()}
    unknown = sorted((set(chosen) | skipped) - set(PEER_NAMES))
    if unknown:
        parser.error(
            f"unknown peers {', '.join(unknown)}; choose from {', '.join(PEER_NAMES)}"
        )
    arguments.peer_list = [
        peer for peer in PEERS if peer.name in chosen and peer.name not in skipped
    ]
    return arguments


def run_dataset(
    dataset: Dataset,
    peers: Sequence[Peer],
    arguments: argparse.Namespace,
    s3: S3Server | None,
    scenario: str = "throughput",
) -> list[Result]:
    """Run each peer on one dataset, then remove what they wrote."""
    work = arguments.out / "work" / dataset.label
    results: list[Result] = []
    for peer in peers:
        ctx = RunContext(
            dataset,
            work / peer.name.removesuffix("-noop"),
            arguments.workers,
            s3.endpoint if s3 else None,
            arguments.timeout,
            arguments.cluster_above,
        )
        tries = [run_peer(peer, ctx, s3) for _ in range(arguments.repeat)]
        succeeded = [r for r in tries if r.status == "ok" and r.seconds]
        # The fastest run is the one least disturbed by the rest of the machine.
        result = (
            min(succeeded, key=lambda r: r.seconds or 0.0) if succeeded else tries[-1]
        )
        result.all_seconds = [r.seconds for r in tries if r.seconds is not None]
        result.scenario = scenario
        results.append(result)
        print(
            f"{dataset.label} {peer.name}: {result.status}"
            f" {_number(result.seconds, 2)} s {_number(result.mb_per_s, 1)} MB/s"
            f" {_number(result.peak_rss_mib, 0)} MiB {result.note[:200]}",
            flush=True,
        )
        if not arguments.keep_output and peer.needs_s3 and s3 is not None:
            _remove_dest(peer.dest(ctx), s3)
    if not arguments.keep_output:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    out: Path = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    data_dir: Path = arguments.data_dir or out / "data"
    results: list[Result] = []
    machine = machine_description()
    print(
        f"machine: {machine['cpus']} cores, {machine['cpu_model']},"
        f" {machine['memory_gib']} GiB",
        flush=True,
    )

    if arguments.replot:
        # Redraw the table and chart of an earlier run, running nothing.
        document = json.loads((out / "results.json").read_text())
        results = [Result(**entry) for entry in document["results"]]
        add_ratios(results)
        print(format_table(results))
        draw_chart(results, out / "benchmark.png")
        print(f"\nwrote {out / 'benchmark.png'}")
        return 0

    with s3_server(arguments.s3) as s3:
        for size in arguments.size_list:
            dataset = prepare_dataset(data_dir, size, arguments.files, arguments.seed)
            results += run_dataset(dataset, arguments.peer_list, arguments, s3)
        if arguments.noop_files:
            count = arguments.noop_files
            label = f"{count}files"
            dataset = prepare_dataset(
                data_dir, count * NOOP_FILE_BYTES, count, arguments.seed, label
            )
            peers = [p for p in arguments.peer_list if p.name in NOOP_SCENARIO_PEERS]
            results += run_dataset(dataset, peers, arguments, s3, "many-files")

    add_ratios(results)
    table = format_table(results)
    print()
    print(table)
    document = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": machine,
        "method": {
            "throughput": "input CSV bytes / wall seconds of the command; MB = 1e6 B",
            "memory": "peak of the summed RSS of the process tree, sampled every"
            f" {SAMPLE_SECONDS} s",
            "ratio": "datamove MB/s / peer MB/s (above 1: datamove is faster)",
            "cores": "CPU seconds of the process tree (RUSAGE_CHILDREN) / wall s",
            "mb_per_cpu_s": "input MB / CPU seconds of the process tree",
            "others": "busy CPU seconds of the rest of the machine / wall s",
            "cache": "input files read once before each run (page cache warm)",
        },
        "results": [asdict(result) for result in results],
    }
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    (out / "results.txt").write_text(table + "\n")
    if any(r.status == "ok" for r in results):
        draw_chart(results, out / "benchmark.png")
    written = ", ".join(str(out / name) for name in ("results.json", "benchmark.png"))
    print(f"\nwrote {written}")
    return 0


if __name__ == "__main__":
    # Make datamove importable when run from a checkout without installing it.
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
