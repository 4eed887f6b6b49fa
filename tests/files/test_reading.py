"""Reading small files as rows; times and media types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from datamove.checksum import crc32c_of
from datamove.errors import InputError
from datamove.files import (
    FILE_SCHEMA,
    file_batches,
    listing_time_ns,
    media_type,
    store_large_file,
    table_rows,
)
from datamove.storage import Location


def _tree(root: Path, sizes: list[int]) -> list[tuple[str, str]]:
    pairs = []
    for i, size in enumerate(sizes):
        path = root / f"f{i:03d}.json"
        path.write_bytes(bytes([i % 251]) * size)
        pairs.append((str(path), path.name))
    return pairs


def test_batches_hold_about_batch_bytes_and_report_progress(tmp_path: Path) -> None:
    pairs = _tree(tmp_path, [1000] * 50)
    fs = Location.parse(str(tmp_path)).fs
    batches = list(file_batches(fs, pairs, batch_bytes=10_000))
    assert [batch.num_rows for batch, _ in batches] == [10] * 5
    assert [fraction for _, fraction in batches] == [0.2, 0.4, 0.6, 0.8, 1.0]
    first = table_rows(_table(batches))
    assert first[3]["path"] == "f003.json"
    assert first[3]["data"] == bytes([3]) * 1000
    assert first[3]["crc32c"] == crc32c_of([bytes([3]) * 1000])
    assert first[3]["media_type"] == "application/json"
    assert first[3]["mtime"] == (tmp_path / "f003.json").stat().st_mtime_ns
    assert batches[0][0].schema.equals(FILE_SCHEMA)


def _table(batches: list) -> object:
    import pyarrow as pa

    return pa.Table.from_batches([batch for batch, _ in batches])


def test_progress_counts_bytes_when_sizes_are_given(tmp_path: Path) -> None:
    pairs = _tree(tmp_path, [9000, 1000])
    fs = Location.parse(str(tmp_path)).fs
    sizes = {"f000.json": 9000, "f001.json": 1000}
    fractions = [f for _, f in file_batches(fs, pairs, 1, sizes=sizes)]
    assert fractions == [0.9, 1.0]


def test_a_vanished_file_names_itself(tmp_path: Path) -> None:
    pairs = _tree(tmp_path, [10, 10])
    (tmp_path / "f001.json").unlink()
    fs = Location.parse(str(tmp_path)).fs
    with pytest.raises(InputError, match=r"f001\.json: disappeared"):
        list(file_batches(fs, pairs, 1 << 20))


def test_large_file_receipt(tmp_path: Path) -> None:
    source = tmp_path / "big.wav"
    source.write_bytes(b"\x01\x02" * 300_000)
    dest = Location.parse(str(tmp_path / "dest"))
    stored = store_large_file(
        Location.parse(str(tmp_path)).fs, str(source), dest, "x-000.blob", 5 << 20
    )
    assert stored["size"] == 600_000
    assert stored["crc32c"] == crc32c_of([source.read_bytes()])
    assert stored["mtime_ns"] == source.stat().st_mtime_ns
    assert stored["media_type"] in ("audio/x-wav", "audio/wav")
    assert (tmp_path / "dest" / "x-000.blob").read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, 1_500_000_000),
        ("1700000000.25", 1_700_000_000_250_000_000),
        (datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), 1704164645678901000),
        (datetime(2024, 1, 2, 3, 4, 5, 678901), 1704164645678901000),
        (
            datetime(2024, 1, 2, 4, 4, 5, 678901, tzinfo=timezone(timedelta(hours=1))),
            1704164645678901000,
        ),
        ("2024-01-02T03:04:05.678901Z", 1704164645678901000),
    ],
)
def test_listing_times_become_nanoseconds(value: object, expected: int) -> None:
    assert listing_time_ns(value) == expected


def test_media_types_from_names() -> None:
    assert media_type("a/b/scan.PNG") == "image/png"
    assert media_type("notes.txt") == "text/plain"
    assert media_type("-no-extension") == "application/octet-stream"
