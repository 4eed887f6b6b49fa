"""CI's short crash campaign (the script runs longer ones on demand)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash_campaign import run_campaign


@pytest.mark.slow
@pytest.mark.cloud
def test_survives_ten_kills(tmp_path: Path) -> None:
    result = run_campaign(kills=10, seed=1, workdir=tmp_path)
    print(result)
    assert result.kills == 10
    assert result.rows == result.expected_rows
    assert result.leftover_uploads == 0
    assert result.unlisted_shards == 0
    assert result.verified
