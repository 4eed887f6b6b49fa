"""Where large text files are cut: row starts outside quotes, native or not."""

from __future__ import annotations

import csv
import io
import os
import random
from pathlib import Path

import fsspec
import pytest

from datamove import cuts

NATIVE = pytest.mark.skipif(
    not cuts.native_scanning() and os.environ.get("DATAMOVE_REQUIRE_NATIVE") != "1",
    reason="datamove._textscan is not built",
)


def _row_starts(data: bytes) -> list[tuple[int, int]]:
    """Every row's (offset, line number), from Python's csv module."""
    text = data.decode()
    reader = csv.reader(io.StringIO(text, newline=""))
    starts = []
    offset = 0
    line = 1
    for row in reader:
        starts.append((offset, line))
        # Re-serialise the row to find its length: the file below is written
        # by csv.writer with the same dialect, so this is exact.
        buffer = io.StringIO(newline="")
        csv.writer(buffer, lineterminator="\n").writerow(row)
        written = buffer.getvalue()
        offset += len(written.encode())
        line += written.count("\n")
    return starts


def _hostile_csv(rows: int, seed: int) -> bytes:
    rng = random.Random(seed)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    pieces = ["plain", "two\nlines", 'a "quoted" word', '""', "\n", "comma, here", "é"]
    for i in range(rows):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
        writer.writerow([i, text, rng.choice(pieces)])
    return buffer.getvalue().encode()


def _expected(data: bytes, targets: list[int]) -> tuple[tuple[int, int], ...]:
    starts = [start for start in _row_starts(data) if 0 < start[0] < len(data)]
    found: list[tuple[int, int]] = []
    for target in targets:
        after = [start for start in starts if start[0] >= target]
        if after and (not found or after[0][0] > found[-1][0]):
            found.append(after[0])
    return tuple(found)


@pytest.fixture(params=["python", "native"])
def counter(request: pytest.FixtureRequest) -> cuts.Counter:
    if request.param == "python":
        return cuts._count2_python
    if not cuts.native_scanning():
        if os.environ.get("DATAMOVE_REQUIRE_NATIVE") == "1":
            pytest.fail("DATAMOVE_REQUIRE_NATIVE=1 but datamove._textscan is not built")
        pytest.skip("datamove._textscan is not built")
    assert cuts._NATIVE is not None
    return cuts._NATIVE


@pytest.mark.parametrize("chunk", [7, 64, 4096, cuts.SCAN_CHUNK])
def test_cuts_are_row_starts_outside_quotes(
    tmp_path: Path,
    counter: cuts.Counter,
    chunk: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Small scan buffers put quotes, newlines and targets on every boundary.
    monkeypatch.setattr(cuts, "SCAN_CHUNK", chunk)
    data = _hostile_csv(400, seed=chunk)
    path = tmp_path / "hostile.csv"
    path.write_bytes(data)
    targets = list(range(1, len(data), max(len(data) // 37, 1)))
    fs = fsspec.filesystem("file")

    found = cuts.csv_cuts(fs, str(path), len(data), targets, b'"', counter)

    assert found == _expected(data, targets)
    assert found, "the file is large enough to be cut"
    for offset, line in found:
        assert data[:offset].count(b'"') % 2 == 0
        assert data[offset - 1 : offset] == b"\n"
        assert data[:offset].count(b"\n") + 1 == line


def test_an_unbalanced_quote_stops_cutting(
    tmp_path: Path, counter: cuts.Counter
) -> None:
    data = b"a,b\n1,2\n" * 50 + b'3,"never closed\n' + b"4,5\n" * 50
    path = tmp_path / "open.csv"
    path.write_bytes(data)
    fs = fsspec.filesystem("file")
    first_quote = data.index(b'"')

    found = cuts.csv_cuts(
        fs, str(path), len(data), [100, first_quote + 10], b'"', counter
    )

    assert [offset for offset, _ in found] == [100]


@NATIVE
def test_native_count_matches_bytes_count() -> None:
    assert cuts._NATIVE is not None
    rng = random.Random(3)
    data = bytes(rng.choice(b'ab"\n\x00\xff') for _ in range(100_003))
    for start, end in [(0, len(data)), (5, 4101), (4095, 4097), (17, 17), (-3, 10**9)]:
        clamped = slice(max(start, 0), min(end, len(data)))
        assert cuts._NATIVE(data, 0x22, 0x0A, start, end) == (
            data[clamped].count(b'"'),
            data[clamped].count(b"\n"),
        )
    assert cuts._NATIVE(bytearray(b"\xff\x00"), 0xFF, 0x00, 0, 2) == (1, 1)
    with pytest.raises(ValueError, match="0 to 255"):
        cuts._NATIVE(data, 256, 10, 0, 1)


def test_line_cuts_take_the_next_line_start(tmp_path: Path) -> None:
    data = b"".join(b"%d\tvalue\n" % i for i in range(1000))
    path = tmp_path / "lines.tsv"
    path.write_bytes(data)
    fs = fsspec.filesystem("file")

    found = cuts.line_cuts(fs, str(path), len(data), [1, 2, 500, len(data) - 1])

    offsets = [offset for offset, _ in found]
    assert offsets == sorted(set(offsets))
    for offset in offsets:
        assert data[offset - 1 : offset] == b"\n"
    assert offsets[0] == data.index(b"\n") + 1
    assert len(offsets) == 2  # the last target has no line start after it
