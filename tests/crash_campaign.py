"""Crash campaign: SIGKILL a sync to S3 at random moments, resume, compare.

Run on demand with a count::

    .venv/bin/python -m tests.crash_campaign --kills 50 --seed 7

Each round starts ``datamove sync`` into a local moto S3 server and kills its
whole process group after a random delay; the next round resumes. A round
that finishes before its kill has completed the dataset: the destination is
then deleted, so that the next kills land in real work again, however fast
the sync has become. After the last kill a final run finishes the job, and
the dataset must equal an uninterrupted run's row for row, with no
interrupted multipart uploads, no shards the manifest does not list, and a
deep verify that passes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

import datamove
from datamove.samples import generate_transactions
from tests.servers import moto_s3


@dataclass
class CampaignResult:
    kills: int
    finished_early: int
    restarts: int
    rows: int
    expected_rows: int
    leftover_uploads: int
    unlisted_shards: int
    verified: bool

    @property
    def ok(self) -> bool:
        return (
            self.rows == self.expected_rows
            and self.leftover_uploads == 0
            and self.unlisted_shards == 0
            and self.verified
        )


# How a killed run executes: in the command's process one unit at a time, on
# its threads, or on an embedded cluster of worker processes.
EXECUTIONS = (
    ["--workers", "1"],
    ["--workers", "2"],
    ["--workers", "2", "--cluster-above", "0"],
)


def _command(
    source: Path, url: str, options: dict[str, Any], execution: list[str]
) -> list[str]:
    return [
        sys.executable, "-m", "datamove.cli", "sync", str(source), url,
        "--dest-options", json.dumps(options), *execution,
        "--compression", "none", "--shard-size", "6MiB", "--part-size", "5MiB",
        "--no-progress", "-q",
    ]  # fmt: skip


def run_campaign(kills: int, seed: int, workdir: Path) -> CampaignResult:
    """Kill ``kills`` runs at random moments, resume, and check the result."""
    rng = random.Random(seed)
    source = workdir / "src"
    generate_transactions(source, 24 << 20, files=6, seed=seed)
    reference = datamove.sync(str(source), str(workdir / "reference"), workers=1)
    with moto_s3() as server:
        fs = server.filesystem()
        fs.mkdir("campaign")
        url = "s3://campaign/lake"
        options = dict(server.storage_options)
        done = early = restarts = 0
        while done < kills:
            execution = rng.choice(EXECUTIONS)
            process = subprocess.Popen(
                _command(source, url, options, execution), start_new_session=True
            )
            time.sleep(rng.uniform(0.3, 4.0))
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                done += 1
            else:
                early += 1
                if early > kills * 3:
                    break
                if process.returncode == 0:  # complete: start a new chain
                    fs.rm("campaign/lake", recursive=True)
                    fs.invalidate_cache()
                    restarts += 1
            process.wait()
        final = subprocess.run(
            _command(source, url, options, EXECUTIONS[1]), capture_output=True
        )
        if final.returncode != 0:
            raise RuntimeError(final.stderr.decode(errors="replace"))
        fs.invalidate_cache()
        uploads = fs.call_s3("list_multipart_uploads", Bucket="campaign").get(
            "Uploads", []
        )
        manifest = json.loads(fs.cat_file("campaign/lake/_datamove/manifest.json"))
        listed = {s["path"] for u in manifest["units"] for s in u["shards"]}
        present = {
            p[len("campaign/lake/") :]
            for p in fs.find("campaign/lake")
            if p.endswith(".parquet") and "/_datamove/" not in p
        }
        shards = [f"campaign/lake/{p}" for p in sorted(present)]
        rows = ds.dataset(shards, filesystem=fs, format="parquet").count_rows()
        verified = datamove.verify(url, deep=True, dest_options=options).ok
    return CampaignResult(
        kills=done,
        finished_early=early,
        restarts=restarts,
        rows=rows,
        expected_rows=reference.rows_written,
        leftover_uploads=len(uploads),
        unlisted_shards=len(present ^ listed),
        verified=verified,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = run_campaign(arguments.kills, arguments.seed, Path(folder))
    print(json.dumps({**result.__dict__, "ok": result.ok}, indent=2))
    print(f"survived {result.kills} kills" if result.ok else "FAILED")
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
