"""The command line: exit codes, reports and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.core.helpers import write_csv


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datamove.cli", *args], capture_output=True, text=True
    )


def test_sync_json_report_then_noop_then_verify(tmp_path: Path) -> None:
    write_csv(tmp_path / "src" / "a.csv", 2000)
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    first = _run(
        "sync",
        src,
        dst,
        "--json",
        "--workers",
        "1",
        "--report",
        str(tmp_path / "r.json"),
    )
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    for key in (
        "status",
        "rows_written",
        "shards_written",
        "shards_skipped",
        "shards_deleted",
        "bytes_read",
        "bytes_written",
        "duration_s",
    ):
        assert key in report
    assert report["rows_written"] == 2000
    assert json.loads((tmp_path / "r.json").read_text()) == report
    second = _run("sync", src, dst, "--json")
    assert json.loads(second.stdout)["status"] == "noop"
    verified = _run("verify", dst, "--deep")
    assert verified.returncode == 0 and "ok" in verified.stdout


def test_usage_and_input_errors_exit_2_with_one_clear_line(tmp_path: Path) -> None:
    missing = _run("sync", str(tmp_path / "nope"), str(tmp_path / "dst"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    bad_size = _run("sync", str(tmp_path), str(tmp_path / "d"), "--shard-size", "lots")
    assert bad_size.returncode == 2 and "--shard-size" in bad_size.stderr
    for flag, value in (("--shard-size", "0"), ("--cluster-above", "-1GiB")):
        refused = _run("sync", str(tmp_path), str(tmp_path / "d"), flag, value)
        assert refused.returncode == 2 and flag in refused.stderr, refused.stderr
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.csv").write_text("id,v\n1,2\n2,3,4\n")
    bad_rows = _run(
        "sync", str(tmp_path / "src"), str(tmp_path / "dst"), "--workers", "1"
    )
    assert bad_rows.returncode == 2
    assert "a.csv" in bad_rows.stderr and "--on-bad-rows" in bad_rows.stderr
    assert "Traceback" not in bad_rows.stderr


def test_verify_exits_1_on_mismatch(tmp_path: Path) -> None:
    write_csv(tmp_path / "src" / "a.csv", 500)
    dst = tmp_path / "dst"
    assert (
        _run("sync", str(tmp_path / "src"), str(dst), "--workers", "1").returncode == 0
    )
    shard = next(dst.glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10])
    result = _run("verify", str(dst))
    assert result.returncode == 1
    assert shard.name in result.stdout


def test_dry_run_and_plan_print_the_plan(tmp_path: Path) -> None:
    write_csv(tmp_path / "src" / "a.csv", 500)
    dst = tmp_path / "dst"
    planned = _run("plan", str(tmp_path / "src"), str(dst), "--json")
    assert planned.returncode == 0
    assert json.loads(planned.stdout)["units_to_write"] == 1
    dry = _run("sync", str(tmp_path / "src"), str(dst), "--dry-run")
    assert dry.returncode == 0 and "write  a.csv" in dry.stdout
    assert not dst.exists()


def test_inventory_lists_files_and_schema(tmp_path: Path) -> None:
    write_csv(tmp_path / "src" / "a.csv", 50)
    (tmp_path / "src" / "notes.txt").write_text("hi")
    result = _run("inventory", str(tmp_path / "src"))
    assert result.returncode == 0
    assert "a.csv" in result.stdout and "zip: string" in result.stdout
    assert "notes.txt: no known format" in result.stdout
