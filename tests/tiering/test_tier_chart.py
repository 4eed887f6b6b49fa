"""The cost chart is a valid PNG; without matplotlib the error says what to do."""

from __future__ import annotations

import struct
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import datamove.tiering as tiering
from datamove.errors import UsageError
from datamove.tiering import AccessEvent, ObjectInfo, plan_tiers, write_cost_chart

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def comparison() -> tiering.CostComparison:
    objects = [
        ObjectInfo(
            f"lake/t/date=2026-{m:02d}-01/part-0.parquet",
            512 << 20,
            datetime(2026, m, 1, tzinfo=UTC),
            "STANDARD",
        )
        for m in range(1, 12)
    ]
    events = [
        AccessEvent(NOW - timedelta(days=d), objects[-1].path, 512 << 20, "GET")
        for d in (1, 3, 200)
    ]
    plan = plan_tiers(objects, events, provider="s3", now=NOW)
    assert plan.costs is not None
    return plan.costs


def test_the_chart_is_a_png(tmp_path: Path) -> None:
    target = tmp_path / "costs.png"

    written = write_cost_chart(comparison(), target)

    data = target.read_bytes()
    assert written == str(target)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 450)
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"


def test_an_unwritable_target_and_a_missing_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    costs = comparison()
    with pytest.raises(UsageError, match="cannot write the chart"):
        write_cost_chart(costs, tmp_path / "no" / "such" / "dir" / "c.png")

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match="needs matplotlib; install it"):
        write_cost_chart(costs, tmp_path / "c.png")


def test_the_public_names_are_all_importable() -> None:
    for name in tiering.__all__:
        assert getattr(tiering, name) is not None, name
    assert sorted(tiering.__all__) == sorted(set(tiering.__all__))
