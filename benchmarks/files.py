"""Pack a tree of small files into S3 with datamove, against ``rclone copy``.

    python benchmarks/files.py                                  # 20,000 x 16 KiB
    python benchmarks/files.py --files 2000 --file-size 16KiB   # a quick look

Issue 9's benchmark. A tree of small files of random (incompressible) bytes in
nested folders is generated once and cached under ``--data-dir``. A local moto
S3 server is started as ``run.py --s3`` does, and each tool, in its own
process and to its own prefix of the bucket, runs three steps:

- upload: ``datamove sync SRC s3://... --format files`` packs every file as a
  row of Parquet shards; ``rclone copy SRC remote:...`` writes an object per
  file;
- no-op: the same command again, with nothing changed;
- download: ``datamove unpack`` and ``rclone copy`` back to local disk.

Each step is timed and the summed RSS of its process tree sampled (``run.py``'s
``measure``); the objects each tool left at the destination are counted by
listing the bucket, and the CPU time of the S3 server is read from its process.
The restored trees are compared with the source, byte for byte; the script
exits 1 when datamove failed a step or restored anything different.

Results go to ``OUT/files-LABEL.json``, ``OUT/files-LABEL.txt`` and
``OUT/files-LABEL.png``, where LABEL names the tree (``20000x16KiB``), and a
table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from run import (  # noqa: E402
    MB,
    MIB,
    S3_BUCKET,
    SAMPLE_SECONDS,
    Dataset,
    RunContext,
    S3Server,
    _datamove_available,
    _datamove_command,
    _datamove_executable,
    _json_report,
    _last_lines,
    _rclone_available,
    _rclone_command,
    _rclone_s3_env,
    _remove_dest,
    _s3_options,
    machine_description,
    measure,
    parse_size,
    s3_server,
    size_label,
    warm_page_cache,
)

TOOLS = ("datamove", "rclone")
ACTIONS = ("upload", "no-op", "download")
FOLDERS_PER_LEVEL = 16  # two levels: up to 256 leaf folders
MTIME_BASE_NS = 1_700_000_000_123_456_789  # deterministic, with a sub-second part
RCLONE_REMOTE = "benchs3"  # configured by run._rclone_s3_env


# -- the tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    label: str
    directory: Path
    files: tuple[Path, ...]
    file_size: int

    @property
    def total_bytes(self) -> int:
        return len(self.files) * self.file_size


def relative_name(index: int) -> str:
    """The path of file ``index``: two levels of folders, then the file."""
    top = index % FOLDERS_PER_LEVEL
    middle = (index // FOLDERS_PER_LEVEL) % FOLDERS_PER_LEVEL
    return f"part-{top:02x}/batch-{middle:02x}/sample-{index:06d}.bin"


def prepare_tree(data_dir: Path, count: int, file_size: int, seed: int) -> Tree:
    """Generate ``count`` files of random bytes unless a complete copy is cached.

    The same count, size and seed give the same paths, bytes and modification
    times (set to fixed values with a sub-second part, so that restoring them
    exactly is a visible property).
    """
    label = f"{count}x{size_label(file_size)}"
    directory = data_dir / f"files-{label}-seed{seed}"
    marker = directory.with_name(directory.name + ".complete.json")
    paths = tuple(directory / relative_name(index) for index in range(count))
    if marker.exists() and json.loads(marker.read_text()) == {
        "files": count,
        "file_size": file_size,
        "seed": seed,
    }:
        print(f"{directory}: cached, {count} files", flush=True)
        return Tree(label, directory, paths, file_size)
    shutil.rmtree(directory, ignore_errors=True)
    marker.unlink(missing_ok=True)

    print(f"{directory}: generating {count} files of {file_size} B...", flush=True)
    start = time.perf_counter()
    generator = random.Random(seed)
    for index, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(generator.randbytes(file_size))
        mtime = MTIME_BASE_NS + index * 1_000_003_007
        os.utime(path, ns=(mtime, mtime))
    seconds = time.perf_counter() - start
    print(f"{directory}: written in {seconds:.1f} s", flush=True)
    marker.write_text(
        json.dumps({"files": count, "file_size": file_size, "seed": seed})
    )
    return Tree(label, directory, paths, file_size)


@dataclass(frozen=True)
class TreeCheck:
    """How a restored tree differs from the source."""

    expected: int
    missing: int
    extra: int
    different_bytes: int
    different_mtime: int
    examples: tuple[str, ...]

    @property
    def bytes_equal(self) -> bool:
        return not (self.missing or self.extra or self.different_bytes)

    def summary(self) -> str:
        if self.bytes_equal:
            text = f"bytes equal ({self.expected} files)"
        else:
            text = (
                f"DIFFERENT: {self.missing} missing, {self.extra} extra,"
                f" {self.different_bytes} with other bytes of {self.expected}"
            )
        if self.different_mtime:
            text += f"; {self.different_mtime} mtimes differ"
        else:
            text += "; mtimes equal"
        return text


def compare_trees(source: Path, restored: Path) -> TreeCheck:
    """Compare every file below ``restored`` with ``source``: paths, bytes, mtime."""
    wanted = {path.relative_to(source).as_posix() for path in _files_below(source)}
    present = {path.relative_to(restored).as_posix() for path in _files_below(restored)}
    examples: list[str] = []
    different_bytes = different_mtime = 0
    for name in sorted(wanted & present):
        original, copy = source / name, restored / name
        if original.read_bytes() != copy.read_bytes():
            different_bytes += 1
            examples.append(f"{name}: bytes differ")
        if original.stat().st_mtime_ns != copy.stat().st_mtime_ns:
            different_mtime += 1
    missing = sorted(wanted - present)
    extra = sorted(present - wanted)
    examples += [f"{name}: missing" for name in missing[:3]]
    examples += [f"{name}: not in the source" for name in extra[:3]]
    return TreeCheck(
        len(wanted),
        len(missing),
        len(extra),
        different_bytes,
        different_mtime,
        tuple(examples[:6]),
    )


def _files_below(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return [path for path in root.rglob("*") if path.is_file()]


# -- one step -----------------------------------------------------------------------


@dataclass
class StepResult:
    tool: str
    action: str
    tree: str
    files: int
    input_bytes: int
    status: str  # ok, failed or skipped
    seconds: float | None = None
    files_per_s: float | None = None
    mb_per_s: float | None = None
    peak_rss_mib: float | None = None
    cpu_cores_used: float | None = None  # tool's CPU seconds / wall seconds
    server_cpu_seconds: float | None = None  # the moto server's, during the step
    other_cpu_cores: float | None = None  # the rest of the machine, not the server
    objects: int | None = None  # under the tool's prefix after the step
    data_objects: int | None = None  # of those, not datamove's own state
    data_object_mib: list[float] = field(default_factory=list)  # up to 100
    stored_bytes: int | None = None
    time_ratio: float | None = None  # this step's seconds / datamove's
    objects_ratio: float | None = None  # these objects / datamove's
    check: str = ""  # download: the restored tree against the source
    bytes_equal: bool | None = None
    note: str = ""
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Bench:
    tree: Tree
    s3: S3Server
    work: Path
    workers: int | None
    timeout: float

    def context(self) -> RunContext:
        """The tree as ``run.py``'s dataset, for its command builders."""
        dataset = Dataset(self.tree.label, self.tree.directory, self.tree.files, 0)
        return RunContext(
            dataset, self.work, self.workers, self.s3.endpoint, self.timeout
        )

    def prefix(self, tool: str) -> str:
        return f"{S3_BUCKET}/files-{tool}-{self.tree.label}"

    def restore_dir(self, tool: str) -> Path:
        return self.work / f"restore-{tool}"


def run_step(
    bench: Bench,
    tool: str,
    action: str,
    command: list[str],
    env: dict[str, str] | None = None,
) -> StepResult:
    """Run one command of one tool, measured; record how it ended."""
    tree = bench.tree
    result = StepResult(
        tool, action, tree.label, len(tree.files), tree.total_bytes, "skipped"
    )
    if action != "download":
        warm_page_cache(tree.files)
    print(f"{tree.label} {tool} {action}: running", flush=True)
    server_before = _server_cpu_seconds(bench.s3)
    try:
        measured = measure(command, timeout=bench.timeout, env=env)
    except OSError as error:
        result.status, result.note = "failed", f"could not start: {error}"
        return result
    server = _server_cpu_seconds(bench.s3) - server_before

    seconds = measured.seconds
    result.seconds = round(seconds, 3)
    result.peak_rss_mib = round(measured.peak_rss / MIB, 1)
    result.cpu_cores_used = round(measured.cpu_seconds / seconds, 2)
    result.server_cpu_seconds = round(server, 2)
    others = max(0.0, measured.other_cpu_seconds - server)
    result.other_cpu_cores = round(others / seconds, 2)
    if measured.returncode != 0:
        result.status = "failed"
        result.note = _last_lines(measured.stderr or measured.stdout)
        return result
    result.status = "ok"
    result.files_per_s = round(len(tree.files) / seconds, 1)
    result.mb_per_s = round(tree.total_bytes / seconds / MB, 1)
    if tool == "datamove":
        result.report = _json_report(measured.stdout)
    return result


def _server_cpu_seconds(s3: S3Server) -> float:
    if s3.process is None:
        return 0.0
    try:
        times = psutil.Process(s3.process.pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def count_objects(bench: Bench, tool: str, result: StepResult) -> None:
    """Record the objects (and bytes) under the tool's prefix."""
    filesystem = bench.s3.filesystem()
    details = filesystem.find(bench.prefix(tool), detail=True)
    result.objects = len(details)
    data = [info for path, info in details.items() if "/_datamove/" not in path]
    result.data_objects = len(data)
    if len(data) <= 100:
        result.data_object_mib = [
            round(int(info.get("size", 0)) / MIB, 1) for info in data
        ]
    result.stored_bytes = sum(int(info.get("size", 0)) for info in details.values())


def check_restore(bench: Bench, tool: str, result: StepResult) -> None:
    check = compare_trees(bench.tree.directory, bench.restore_dir(tool))
    result.check = check.summary()
    result.bytes_equal = check.bytes_equal
    if not check.bytes_equal:
        result.note = (result.note + " " + "; ".join(check.examples)).strip()
    print(f"{bench.tree.label} {tool}: restored tree {result.check}", flush=True)


# -- the two tools ------------------------------------------------------------------


def datamove_steps(bench: Bench) -> list[StepResult]:
    """Pack, re-run (no-op) and unpack with the datamove command."""
    reason = _datamove_available()
    if reason:
        return _not_run("datamove", bench, reason, ACTIONS)
    ctx = bench.context()
    dest = f"s3://{bench.prefix('datamove')}"
    sync = _datamove_command(ctx, dest, ["--format", "files", *_s3_options(ctx)])
    executable = _datamove_executable() or "datamove"
    target = bench.restore_dir("datamove")
    unpack = [executable, "unpack", dest, str(target), "--json", *_s3_options(ctx)]

    upload = run_step(bench, "datamove", "upload", sync)
    if upload.status != "ok":
        return [upload, *_not_run("datamove", bench, "the upload failed")]
    count_objects(bench, "datamove", upload)
    _check_report(upload, expected_status="ok")

    noop = run_step(bench, "datamove", "no-op", sync)
    if noop.status == "ok":
        count_objects(bench, "datamove", noop)
        _check_report(noop, expected_status="noop")
        _check_unchanged(upload, noop)

    download = run_step(bench, "datamove", "download", unpack)
    if download.status == "ok":
        check_restore(bench, "datamove", download)
        restored = download.report.get("restored")
        if restored != len(bench.tree.files):
            download.note = f"{download.note} report: {restored} restored".strip()
    return [upload, noop, download]


def rclone_steps(bench: Bench) -> list[StepResult]:
    """Copy the tree up, again (no-op) and back down with ``rclone copy``."""
    reason = _rclone_available()
    if reason:
        return _not_run("rclone", bench, reason, ACTIONS)
    ctx = bench.context()
    remote = f"{RCLONE_REMOTE}:{bench.prefix('rclone')}"
    env = {**os.environ, **_rclone_s3_env(ctx)}
    # rclone 1.60 cannot apply a CA bundle to its HTTP transport, and the local
    # server is plain HTTP anyway (as in run.py).
    env.pop("AWS_CA_BUNDLE", None)
    copy_up = _rclone_command(ctx, remote)
    copy_down = [copy_up[0], "copy", remote, str(bench.restore_dir("rclone"))]

    upload = run_step(bench, "rclone", "upload", copy_up, env)
    if upload.status != "ok":
        return [upload, *_not_run("rclone", bench, "the upload failed")]
    count_objects(bench, "rclone", upload)

    noop = run_step(bench, "rclone", "no-op", copy_up, env)
    if noop.status == "ok":
        count_objects(bench, "rclone", noop)
        _check_unchanged(upload, noop)

    download = run_step(bench, "rclone", "download", copy_down, env)
    if download.status == "ok":
        check_restore(bench, "rclone", download)
    return [upload, noop, download]


def _not_run(
    tool: str, bench: Bench, reason: str, actions: Sequence[str] = ACTIONS[1:]
) -> list[StepResult]:
    tree = bench.tree
    return [
        StepResult(
            tool,
            action,
            tree.label,
            len(tree.files),
            tree.total_bytes,
            "skipped",
            note=reason,
        )
        for action in actions
    ]


def _check_report(result: StepResult, expected_status: str) -> None:
    status = result.report.get("status")
    if status != expected_status:
        result.note = f"report status {status!r}, expected {expected_status!r}"
    elif expected_status == "noop" and result.report.get("shards_written"):
        written = result.report["shards_written"]
        result.note = f"not a no-op: {written} shards written again"


def _check_unchanged(upload: StepResult, noop: StepResult) -> None:
    if (noop.objects, noop.stored_bytes) != (upload.objects, upload.stored_bytes):
        noop.note = (
            noop.note + f" destination changed: {upload.objects} -> {noop.objects}"
            f" objects, {upload.stored_bytes} -> {noop.stored_bytes} bytes"
        ).strip()


TOOL_STEPS: dict[str, Callable[[Bench], list[StepResult]]] = {
    "datamove": datamove_steps,
    "rclone": rclone_steps,
}


def run_tool(bench: Bench, tool: str, keep_output: bool) -> list[StepResult]:
    """Run one tool's steps from an empty prefix and restore folder."""
    _remove_dest(f"s3://{bench.prefix(tool)}", bench.s3)
    shutil.rmtree(bench.restore_dir(tool), ignore_errors=True)
    results = TOOL_STEPS[tool](bench)
    for result in results:
        print(
            f"{bench.tree.label} {tool} {result.action}: {result.status}"
            f" {_number(result.seconds, 2)} s {_number(result.files_per_s, 0)} files/s"
            f" objects {_number(result.objects, 0)} {result.note[:200]}",
            flush=True,
        )
    if not keep_output:
        # Also keeps the moto server's memory down for the next tool.
        _remove_dest(f"s3://{bench.prefix(tool)}", bench.s3)
        shutil.rmtree(bench.restore_dir(tool), ignore_errors=True)
    return results


# -- reporting ----------------------------------------------------------------------


def add_ratios(results: list[StepResult]) -> None:
    """Each step's seconds and objects over datamove's for the same action."""
    for result in results:
        reference = next(
            (
                r
                for r in results
                if r.tool == "datamove"
                and r.action == result.action
                and r.status == "ok"
            ),
            None,
        )
        if result.status != "ok" or reference is None:
            continue
        if result.seconds and reference.seconds:
            result.time_ratio = float(f"{result.seconds / reference.seconds:.3g}")
        if result.objects is not None and reference.objects:
            result.objects_ratio = float(f"{result.objects / reference.objects:.3g}")


def format_table(results: list[StepResult]) -> str:
    """The results as an aligned text table, one line per tool and step."""
    header = (
        "tree", "tool", "step", "status", "seconds", "files/s", "MB/s", "objects",
        "data objects", "peak RSS MiB", "cores", "server CPU s", "others",
        "time/datamove", "objects/datamove", "check", "note",
    )  # fmt: skip
    rows = [header]
    for r in results:
        rows.append(
            (
                r.tree,
                r.tool,
                r.action,
                r.status,
                _number(r.seconds, 2),
                _number(r.files_per_s, 0),
                _number(r.mb_per_s, 1) if r.action != "no-op" else "-",
                _number(r.objects, 0),
                _number(r.data_objects, 0),
                _number(r.peak_rss_mib, 0),
                _number(r.cpu_cores_used, 2),
                _number(r.server_cpu_seconds, 1),
                _number(r.other_cpu_cores, 2),
                _ratio(r.time_ratio),
                _ratio(r.objects_ratio),
                r.check,
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
        "files/s and MB/s: the tree's files and bytes / wall seconds (MB = 1e6 B);"
        " objects: under the tool's prefix after the step, data objects without"
        " datamove's _datamove/ state; cores: CPU seconds of the tool's processes"
        " / wall seconds; server CPU s: CPU seconds of the moto server during the"
        " step; others: CPU seconds of the rest of the machine (not the server) /"
        " wall seconds, near 0 on a quiet machine; time/datamove and"
        " objects/datamove: rclone's figure over datamove's for the same step"
        " (time above 1: datamove faster)"
    )
    return "\n".join(line.rstrip() for line in lines) + "\n\n" + legend


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def draw_chart(results: list[StepResult], path: Path) -> None:
    """Seconds per step and objects written, datamove beside rclone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (timing, objects) = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.38
    for offset, tool in enumerate(TOOLS):
        seconds = [_seconds_of(results, tool, action) for action in ACTIONS]
        positions = [index + (offset - 0.5) * width for index in range(len(ACTIONS))]
        timing.bar(positions, seconds, width, label=tool)
        upload = next(
            (r for r in results if r.tool == tool and r.action == "upload"), None
        )
        count = upload.objects if upload and upload.objects else 0
        data = upload.data_objects if upload and upload.data_objects else 0
        objects.bar([offset], [count], 0.6, label=tool)
        objects.annotate(
            f"{count:,} ({data:,} data)", (offset, count), ha="center", va="bottom"
        )
    tree = results[0]
    timing.set_xticks(range(len(ACTIONS)), list(ACTIONS))
    timing.set_ylabel("wall seconds")
    timing.set_title("Seconds per step (lower is better)", fontsize=10)
    timing.legend(fontsize=8)
    objects.set_xticks(range(len(TOOLS)), list(TOOLS))
    objects.set_yscale("log")
    objects.set_ylim(bottom=1)
    objects.set_ylabel("objects")
    objects.set_title("Objects at the destination after upload", fontsize=10)
    for axes in (timing, objects):
        axes.grid(True, axis="y", alpha=0.3)
    figure.suptitle(
        f"{tree.files:,} files, {tree.input_bytes / MB:,.0f} MB, to local S3"
        f" (moto) on {os.cpu_count()} cores",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _seconds_of(results: list[StepResult], tool: str, action: str) -> float:
    for result in results:
        if result.tool == tool and result.action == action and result.seconds:
            return result.seconds if result.status == "ok" else 0.0
    return 0.0


# -- main ---------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time datamove sync --format files against rclone copy, to S3."
    )
    parser.add_argument(
        "--files", type=int, default=20_000, help="files in the tree (%(default)s)"
    )
    parser.add_argument(
        "--file-size",
        type=parse_size,
        default=parse_size("16KiB"),
        help="bytes per file, e.g. 16KiB (default: 16KiB)",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="results folder"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="cache of generated trees (default: OUT/data)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help="comma-separated subset of: %(default)s",
    )
    parser.add_argument("--workers", type=int, help="passed to datamove sync --workers")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per step")
    parser.add_argument("--note", default="", help="free text stored with the results")
    parser.add_argument(
        "--keep-output",
        action="store_true",
        help="keep the restored trees under OUT/work (the S3 server ends anyway)",
    )
    arguments = parser.parse_args(argv)
    if arguments.files < 1 or arguments.file_size < 1:
        parser.error("--files and --file-size must be at least 1")
    chosen = [name.strip() for name in arguments.tools.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tools {', '.join(unknown)}; choose from datamove,rclone")
    arguments.tool_list = [tool for tool in TOOLS if tool in chosen]
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    out: Path = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    data_dir: Path = arguments.data_dir or out / "data"
    machine = machine_description()
    machine["versions"].update(_versions("moto", "s3fs", "botocore"))
    load = os.getloadavg()
    print(
        f"machine: {machine['cpus']} cores, {machine['cpu_model']},"
        f" {machine['memory_gib']} GiB, load average {load[0]:.2f}",
        flush=True,
    )

    tree = prepare_tree(data_dir, arguments.files, arguments.file_size, arguments.seed)
    results: list[StepResult] = []
    with s3_server(True) as s3:
        assert s3 is not None
        bench = Bench(
            tree, s3, out / "work" / f"files-{tree.label}", arguments.workers,
            arguments.timeout,
        )  # fmt: skip
        for tool in arguments.tool_list:
            results += run_tool(bench, tool, arguments.keep_output)
    if not arguments.keep_output:
        shutil.rmtree(out / "work" / f"files-{tree.label}", ignore_errors=True)

    add_ratios(results)
    table = format_table(results)
    print()
    print(table)
    document = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "note": arguments.note,
        "machine": {**machine, "load_average_at_start": [round(x, 2) for x in load]},
        "tree": {
            "files": len(tree.files),
            "file_size": tree.file_size,
            "bytes": tree.total_bytes,
            "folders": len({path.parent for path in tree.files}),
            "content": "random bytes (incompressible), seeded",
            "seed": arguments.seed,
        },
        "method": {
            "throughput": "tree files or bytes / wall seconds of the command;"
            " MB = 1e6 B",
            "memory": "peak of the summed RSS of the process tree, sampled every"
            f" {SAMPLE_SECONDS} s",
            "objects": "listed under the tool's prefix after the step",
            "server_cpu_seconds": "CPU seconds of the moto S3 server process",
            "others": "busy CPU seconds of the rest of the machine, server"
            " excluded / wall s",
            "ratios": "rclone's seconds (objects) / datamove's for the same step",
            "cache": "source files read once before each upload and no-op",
            "check": "restored tree compared with the source: paths, bytes, mtime",
        },
        "results": [asdict(result) for result in results],
    }
    stem = out / f"files-{tree.label}"
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    stem.with_suffix(".txt").write_text(table + "\n")
    written = [stem.with_suffix(".json"), stem.with_suffix(".txt")]
    if any(r.status == "ok" for r in results):
        draw_chart(results, stem.with_suffix(".png"))
        written.append(stem.with_suffix(".png"))
    print(f"\nwrote {', '.join(str(path) for path in written)}")
    return 1 if datamove_failed(results) else 0


def _versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def datamove_failed(results: list[StepResult]) -> bool:
    """True when a datamove step failed or its restored tree differs."""
    for result in results:
        if result.tool != "datamove":
            continue
        if result.status == "failed" or result.bytes_equal is False:
            print(
                f"datamove {result.action}: {result.status},"
                f" {result.check or result.note}",
                file=sys.stderr,
            )
            return True
    return False


if __name__ == "__main__":
    sys.exit(main())
