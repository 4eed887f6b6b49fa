"""The tier commands from the command line, on a local destination."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datamove
from tests.core.helpers import write_csv


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datamove.cli", *args], capture_output=True, text=True
    )


def test_tier_plan_and_apply_from_the_cli(tmp_path: Path) -> None:
    write_csv(tmp_path / "src" / "a.csv", 1_000)
    dest = tmp_path / "lake"
    datamove.sync(str(tmp_path / "src"), str(dest), workers=1)
    log = tmp_path / "reads.csv"
    shard = next(dest.glob("*.parquet")).name
    log.write_text(f"timestamp,path,bytes\n2026-11-30T10:00:00Z,{shard},100\n")
    planned = _run("tier", "plan", str(dest), "--access-log", str(log), "--json",
                   "--out", str(tmp_path / "plan.json"))  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["assignments"] == plan["assignments"]
    assert plan["events_matched"] == 1
    applied = _run("tier", "apply", str(dest), "--plan", str(tmp_path / "plan.json"))
    assert applied.returncode == 0, applied.stderr
    assert "recorded" in applied.stdout
    missing = _run("tier", "plan", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "manifest" in missing.stderr
