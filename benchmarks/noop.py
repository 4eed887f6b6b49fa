"""How long a re-run with nothing changed takes, by the number of shards.

Generates N tiny CSV files, syncs them once with ``--partition-by`` (so that
every file keeps a unit and a shard of its own: N shards), then times
re-runs that find nothing to do, next to ``rclone copy`` of the same tree
run twice (its second run is its no-op). Optionally does the same into the
local S3 server (``--s3``)::

    python benchmarks/noop.py --files 10000
    python benchmarks/noop.py --files 2000 --s3

Prints a table and writes ``benchmarks/results/noop-<N>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a script: its folder is on the path, and run.py is its sibling.
from run import (
    S3_BUCKET,
    S3_KEY,
    S3_SECRET,
    S3Server,
    machine_description,
)

RESULTS = Path(__file__).resolve().parent / "results"


def make_tree(root: Path, count: int) -> None:
    """``count`` CSV files of 20 rows in folders of 500."""
    for index in range(count):
        folder = root / f"batch-{index // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = "".join(f"{index * 100 + r},k,{r * 1.5}\n" for r in range(20))
        (folder / f"part-{index:06d}.csv").write_text("id,k,value\n" + rows)


def datamove(arguments: list[str]) -> float:
    """Seconds one ``datamove`` command takes; fails loudly if it fails."""
    command = [sys.executable, "-m", "datamove", *arguments, "-q"]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds


def sync_arguments(source: Path, dest: str, s3: S3Server | None) -> list[str]:
    arguments = ["sync", str(source), dest, "--partition-by", "k", "--no-progress"]
    if s3 is not None:
        options = {"key": S3_KEY, "secret": S3_SECRET, "endpoint_url": s3.endpoint}
        arguments += ["--dest-options", json.dumps(options)]
    return arguments


def rclone(source: Path, dest: Path) -> float | None:
    binary = shutil.which("rclone")
    if binary is None:
        return None
    started = time.monotonic()
    subprocess.run([binary, "copy", str(source), str(dest)], check=True)
    return time.monotonic() - started


def measure(
    source: Path, dest: str, s3: S3Server | None, repeat: int
) -> dict[str, Any]:
    first = datamove(sync_arguments(source, dest, s3))
    noops = [datamove(sync_arguments(source, dest, s3)) for _ in range(repeat)]
    return {"dest": dest, "first_sync_s": round(first, 2), "noop_s": noops}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="also into local S3")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="datamove-noop-"))
    try:
        source = work / "src"
        make_tree(source, args.files)
        runs = [measure(source, str(work / "local"), None, args.repeat)]
        if args.s3:
            server = S3Server()
            server.start()
            try:
                dest = f"s3://{S3_BUCKET}/noop"
                runs.append(measure(source, dest, server, args.repeat))
            finally:
                server.stop()
        peer: dict[str, Any] = {"tool": "rclone copy (local)"}
        first = rclone(source, work / "rclone")
        if first is None:
            peer["skipped"] = "rclone is not installed (apt-get install rclone)"
        else:
            noop = [rclone(source, work / "rclone") for _ in range(args.repeat)]
            peer.update(first_copy_s=round(first, 2), noop_s=noop)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"no-op re-runs over {args.files:,} source files / shards")
    print(f"{'run':28} {'first':>9} {'no-op (best)':>13} {'per file':>10}")
    for run in runs:
        best = min(run["noop_s"])
        print(
            f"datamove -> {run['dest'][:16]:16} {run['first_sync_s']:8.1f}s "
            f"{best:12.2f}s {best / args.files * 1e6:8.0f}µs"
        )
    if "noop_s" in peer:
        best = min(x for x in peer["noop_s"] if x is not None)
        print(
            f"{'rclone copy (local)':28} {peer['first_copy_s']:8.1f}s "
            f"{best:12.2f}s {best / args.files * 1e6:8.0f}µs"
        )
        for run in runs:
            run["ratio_to_rclone"] = round(min(run["noop_s"]) / best, 2)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"noop-{args.files}.json"
    out.write_text(
        json.dumps(
            {
                "files": args.files,
                "machine": machine_description(),
                "datamove": runs,
                "rclone": peer,
                "load_average": os.getloadavg(),
            },
            indent=2,
        )
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
