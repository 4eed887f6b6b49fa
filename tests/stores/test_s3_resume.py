"""S3 specifics: a kill during a multipart upload, and secrets that never leak."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds

import datamove
from datamove.samples import generate_transactions
from tests.stores.conftest import Bucket

SECRET_KEY_ID = "AKIADMTESTLEAKCHECK1"
SECRET = "dm-secret-do-not-leak-8f3a1c"


def _uploads(bucket: Bucket) -> list[dict[str, object]]:
    answer = bucket.fs.call_s3("list_multipart_uploads", Bucket=bucket.name)
    uploads: list[dict[str, object]] = answer.get("Uploads", [])
    return uploads


def _rows(bucket: Bucket, root: str) -> int:
    bucket.fs.invalidate_cache()
    files = [p for p in bucket.fs.find(root) if p.endswith(".parquet")]
    files = [p for p in files if "/_datamove/" not in p]
    return int(ds.dataset(files, filesystem=bucket.fs, format="parquet").count_rows())


def test_kill_during_multipart_upload_then_resume(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    generate_transactions(source, 40 << 20, files=2, seed=3)
    options = json.dumps(dict(s3_bucket.server.storage_options))
    root = f"{s3_bucket.name}/lake"
    command = [
        sys.executable, "-m", "datamove.cli", "sync", str(source), f"s3://{root}",
        "--dest-options", options, "--workers", "1", "--compression", "none",
        "--shard-size", "16MiB", "--part-size", "5MiB", "--no-progress", "-q",
    ]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not _uploads(s3_bucket):
            assert process.poll() is None, "finished before any multipart upload"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert _uploads(s3_bucket), "the kill left no interrupted upload to clean up"

    finished = subprocess.run([*command, "--json"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert not _uploads(s3_bucket), "interrupted multipart uploads were left behind"
    reference = datamove.sync(str(source), str(tmp_path / "reference"), workers=1)
    assert _rows(s3_bucket, root) == reference.rows_written
    checked = datamove.verify(
        f"s3://{root}", deep=True, dest_options=json.loads(options)
    )
    assert checked.ok, checked.problems


def test_credentials_never_leak(s3_bucket: Bucket, tmp_path: Path) -> None:
    source = tmp_path / "src"
    generate_transactions(source, 1 << 20, files=2, seed=4)
    options = {
        **s3_bucket.server.storage_options,
        "key": SECRET_KEY_ID,
        "secret": SECRET,
    }
    root = f"{s3_bucket.name}/lake"
    report_file = tmp_path / "report.json"
    base = [sys.executable, "-m", "datamove.cli"]
    secret_options = json.dumps(options)
    runs = [
        [*base, "sync", str(source), f"s3://{root}", "--dest-options", secret_options,
         "-vv", "--log-format", "json", "--json", "--report", str(report_file)],
        [*base, "verify", f"s3://{root}", "--deep", "--dest-options", secret_options],
        [*base, "sync", str(source), "s3://no-such-bucket-dm/x", "--dest-options",
         secret_options, "-vv"],
        [*base, "sync", str(source), f"s3://{SECRET_KEY_ID}:{SECRET}@{root}", "-vv"],
    ]  # fmt: skip
    texts = []
    for command in runs:
        result = subprocess.run(command, capture_output=True, text=True)
        texts.extend([result.stdout, result.stderr])
    assert "no-such-bucket-dm" in texts[5], "the failing run did not name the bucket"
    texts.append(report_file.read_text())
    s3_bucket.fs.invalidate_cache()
    for path in s3_bucket.fs.find(s3_bucket.name):
        texts.append(s3_bucket.fs.cat_file(path).decode("latin-1"))
    for text in texts:
        assert SECRET not in text
        assert SECRET_KEY_ID not in text
