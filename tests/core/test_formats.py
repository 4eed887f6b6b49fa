"""Every source format and compression reads back to the same rows."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

import datamove
from datamove.formats import FileFormat, detect_format
from tests.core.helpers import read_rows

ROWS = [{"id": i, "name": f"n{i}", "value": i * 1.5} for i in range(500)]


def _table() -> pa.Table:
    return pa.Table.from_pylist(ROWS)


def _write(folder: Path, kind: str) -> None:
    folder.mkdir(parents=True)
    table = _table()
    if kind == "csv":
        lines = ["id,name,value"] + [
            f"{r['id']},{r['name']},{r['value']}" for r in ROWS
        ]
        (folder / "data.csv").write_text("\n".join(lines) + "\n")
    elif kind == "tsv":
        lines = ["id\tname\tvalue"] + [
            f"{r['id']}\t{r['name']}\t{r['value']}" for r in ROWS
        ]
        (folder / "data.tsv").write_text("\n".join(lines) + "\n")
    elif kind == "jsonl":
        (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif kind == "parquet":
        pq.write_table(table, folder / "data.parquet", row_group_size=100)
    elif kind == "arrow":
        feather.write_feather(table, folder / "data.arrow", chunksize=100)
    elif kind == "orc":
        orc.write_table(table, folder / "data.orc")
    elif kind in ("csv.gz", "csv.bz2", "csv.zst"):
        lines = ["id,name,value"] + [
            f"{r['id']},{r['name']},{r['value']}" for r in ROWS
        ]
        raw = ("\n".join(lines) + "\n").encode()
        if kind == "csv.gz":
            data = gzip.compress(raw)
        elif kind == "csv.bz2":
            data = bz2.compress(raw)
        else:
            import pyarrow as pa_

            sink = pa_.BufferOutputStream()
            with pa_.CompressedOutputStream(sink, "zstd") as out:
                out.write(raw)
            data = sink.getvalue().to_pybytes()
        (folder / f"data.{kind}").write_bytes(data)
    elif kind == "jsonl.gz":
        raw = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
        (folder / "data.jsonl.gz").write_bytes(gzip.compress(raw))


@pytest.mark.parametrize(
    "kind",
    [
        "csv",
        "tsv",
        "jsonl",
        "parquet",
        "arrow",
        "orc",
        "csv.gz",
        "csv.bz2",
        "csv.zst",
        "jsonl.gz",
    ],
)
def test_each_format_round_trips(tmp_path: Path, kind: str) -> None:
    _write(tmp_path / "src", kind)
    report = datamove.sync(str(tmp_path / "src"), str(tmp_path / "dst"), workers=1)
    assert report.status == "ok"
    assert report.rows_written == len(ROWS)
    table = read_rows(tmp_path / "dst")
    assert table.column("id").to_pylist() == [r["id"] for r in ROWS]
    assert table.column("name").to_pylist() == [r["name"] for r in ROWS]
    assert table.column("value").to_pylist() == [r["value"] for r in ROWS]


def test_small_parts_of_binary_formats_are_split(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    big = pa.table(
        {"id": list(range(200_000)), "text": [f"row {i} " * 4 for i in range(200_000)]}
    )
    pq.write_table(big, src / "big.parquet", row_group_size=10_000, compression="none")
    plan = datamove.plan(str(src), str(tmp_path / "dst"), shard_size="1MiB")
    assert len(plan.to_write) > 1
    report = datamove.sync(
        str(src), str(tmp_path / "dst"), shard_size="1MiB", workers=1
    )
    assert report.rows_written == 200_000
    assert read_rows(tmp_path / "dst").column("id").to_pylist() == list(range(200_000))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.csv", FileFormat("csv")),
        ("a.CSV.GZ", FileFormat("csv", "gzip")),
        ("x/y.ndjson.zst", FileFormat("jsonl", "zstd")),
        ("t.tsv.bz2", FileFormat("tsv", "bz2")),
        ("f.feather", FileFormat("arrow")),
        ("o.orc", FileFormat("orc")),
        ("README.md", None),
    ],
)
def test_format_detection(name: str, expected: FileFormat | None) -> None:
    assert detect_format(name) == expected


def test_forced_format_keeps_compression_from_name() -> None:
    assert detect_format("dump.txt.gz", forced="csv") == FileFormat("csv", "gzip")
    with pytest.raises(datamove.UsageError, match="--format"):
        detect_format("a.csv", forced="xml")
