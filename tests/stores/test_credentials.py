"""A store without credentials is a clear error, not an internal one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.core.helpers import write_csv


def test_sync_to_s3_without_credentials_says_so(tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_csv(source / "a.csv", 100)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("AWS_")
    }
    # No credentials anywhere in botocore's chain, and no instance metadata.
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    # Nothing listens on port 9: the client fails on credentials before
    # it connects.
    options = json.dumps({"endpoint_url": "http://127.0.0.1:9"})

    done = subprocess.run(
        [sys.executable, "-m", "datamove.cli", "sync", str(source), "s3://bucket/x",
         "--dest-options", options, "--workers", "1", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip

    assert done.returncode != 0
    assert "internal error" not in done.stderr
    assert "NoCredentialsError" in done.stderr
    assert "no usable credentials" in done.stderr
    assert "s3://bucket/x" in done.stderr
