"""Where a large text file can be cut into pieces that convert in parallel.

A piece must start at the start of a row. In CSV a newline inside a quoted
field does not end a row, and whether an offset is inside quotes depends on
every quote character before it, so :func:`csv_cuts` reads the file from the
start up to its last cut, keeping the parity of quotes. On a file of
gigabytes this scan is the planner's largest cost, and it runs before any
conversion, so it counts with the optional C accelerator
``datamove._textscan`` (one vectorised pass for both characters, the GIL
released so that files are scanned in parallel) into one reused buffer.
Without the accelerator ``bytes.count`` gives the same cuts, more slowly.

Formats without quoting (TSV, JSON lines) need no scan: :func:`line_cuts`
seeks to each target and takes the next line start.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from fsspec import AbstractFileSystem

SCAN_CHUNK = 8 << 20
NEWLINE = 0x0A

Counter = Callable[[Any, int, int, int, int], tuple[int, int]]


def _count2_python(
    buffer: Any, first: int, second: int, start: int, end: int
) -> tuple[int, int]:
    return (
        buffer.count(bytes((first,)), start, end),
        buffer.count(bytes((second,)), start, end),
    )


def _load_counter() -> Counter | None:
    try:
        module = importlib.import_module("datamove._textscan")
    except ImportError:
        return None
    count2: Counter = module.count2
    return count2


_NATIVE = _load_counter()


def native_scanning() -> bool:
    """Whether the C accelerator counts for :func:`csv_cuts`."""
    return _NATIVE is not None


def csv_cuts(
    fs: AbstractFileSystem,
    path: str,
    size: int,
    targets: Sequence[int],
    quote: bytes,
    counter: Counter | None = None,
) -> tuple[tuple[int, int], ...]:
    """Row starts at or after each target offset, outside quoted fields.

    Returns (offset, line number) pairs, the line number being that of the
    row starting at the offset (1 is the file's first line). A file whose
    quotes never balance again after some point is not cut after it.
    ``counter`` replaces the byte counter (tests compare both).
    """
    count = counter or _NATIVE or _count2_python
    quote_byte = quote[0]
    cuts: list[tuple[int, int]] = []
    pending = list(targets)
    parity = 0
    lines = 1
    position = 0  # file offset of chunk[0]
    seeking = False  # looking for the first row start at or after pending[0]
    chunk = bytearray(SCAN_CHUNK)
    with fs.open(path, "rb", block_size=SCAN_CHUNK) as handle:
        while pending:
            length = handle.readinto(chunk)
            if not length:
                break
            index = 0
            while pending:
                if not seeking:
                    target = pending[0] - 1 - position
                    if target >= length:
                        break
                    target = max(target, index)
                    quotes, newlines = count(chunk, quote_byte, NEWLINE, index, target)
                    parity ^= quotes & 1
                    lines += newlines
                    index, seeking = target, True
                newline = chunk.find(b"\n", index, length)
                if newline < 0:
                    break
                quotes, _ = count(chunk, quote_byte, NEWLINE, index, newline)
                parity ^= quotes & 1
                index = newline + 1
                lines += 1
                if parity == 0:
                    cut = position + index
                    if cut < size:
                        cuts.append((cut, lines))
                    while pending and pending[0] - 1 < cut:
                        pending.pop(0)
                    seeking = False
            quotes, newlines = count(chunk, quote_byte, NEWLINE, index, length)
            parity ^= quotes & 1
            lines += newlines
            position += length
    return tuple(cuts)


def line_cuts(
    fs: AbstractFileSystem, path: str, size: int, targets: Sequence[int]
) -> tuple[tuple[int, int], ...]:
    """Line starts at or after each target, for formats without quoting.

    Line numbers are not counted (0): that would take the scan this avoids.
    """
    cuts: list[tuple[int, int]] = []
    with fs.open(path, "rb", block_size=1 << 20) as handle:
        for target in targets:
            if cuts and target <= cuts[-1][0]:
                continue
            handle.seek(target - 1)
            position = target - 1
            while chunk := handle.read(1 << 20):
                newline = chunk.find(b"\n")
                if newline >= 0:
                    cut = position + newline + 1
                    if cut < size:
                        cuts.append((cut, 0))
                    break
                position += len(chunk)
    return tuple(cuts)
