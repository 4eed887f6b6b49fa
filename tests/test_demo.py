"""The README's first command: the demo syncs into a local S3 server it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamove.demo import run_demo


@pytest.mark.slow
def test_demo_syncs_verifies_and_reads_back(tmp_path: Path) -> None:
    lines: list[str] = []
    run_demo("4MiB", str(tmp_path / "demo"), lines.append)
    text = "\n".join(lines)
    assert "ok:" in text
    assert "second run: noop" in text
    assert "verify --deep: ok" in text
    rows = [line for line in lines if line.startswith("read back through s3fs")]
    assert rows and not rows[0].endswith(" 0 rows")
