"""Lossless inference and schema unification."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import datamove
from datamove.formats import BadRows, convert_text_batch
from datamove.schema import FileSchema, infer_text_column, string_array, unify
from tests.core.helpers import read_rows


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "2", "-3"], pa.int64()),
        (["01", "2"], pa.string()),
        (["12345678901234567890"], pa.string()),
        (["1.5", "2", "NA", ""], pa.float64()),
        (["1", "NA", "NULL", "N/A", ""], pa.int64()),
        (["true", "False"], pa.bool_()),
        (["2024-01-02", "2023-12-31"], pa.date32()),
        (["2024-01-02T10:00:00", "2024-01-02 11:00"], pa.timestamp("us")),
        (
            ["2024-01-02T10:00:00Z", "2024-01-02T10:00:00+02:00"],
            pa.timestamp("us", "UTC"),
        ),
        (["2024-01-02T10:00:00Z", "2024-01-02T10:00:00"], pa.string()),
        (["NA", ""], pa.string()),
        (["0"], pa.int64()),
        (["007.5"], pa.string()),
        # Past the values candidates are screened on: the whole sample decides.
        (["1"] * 1500 + ["x"], pa.string()),
        (["1"] * 1500 + ["2.5"], pa.float64()),
        (["NA"] * 1500 + ["true"], pa.bool_()),
    ],
)
def test_inference(values: list[str], expected: pa.DataType) -> None:
    assert infer_text_column(pa.array(values)) == expected


def test_integer_values_that_would_lose_a_leading_zero_are_bad_rows() -> None:
    values = ["7", "-0", "0", "+007", "-01", "00", "", "NA", "10", "--0", "0x"]
    batch = pa.RecordBatch.from_arrays([pa.array(values)], names=["n"])
    bad = BadRows("skip", "a.csv")

    typed = convert_text_batch(batch, pa.schema([("n", pa.int64())]), bad)

    assert typed.column("n").to_pylist() == [7, 0, 0, None, None, 10]
    assert bad.count == 5  # +007, -01, 00, --0 and 0x


def test_leading_zeros_and_markers_survive_a_sync(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text(
        "id,zip,card,score,label\n"
        "1,02134,0000123412341234,NA,NA\n"
        "2,10001,4111111111111111,7,\n"
        "3,00501,0123,N/A,NULL\n"
    )
    datamove.sync(str(src), str(tmp_path / "dst"), workers=1)
    table = read_rows(tmp_path / "dst")
    assert table.schema.field("zip").type == pa.string()
    assert table.column("zip").to_pylist() == ["02134", "10001", "00501"]
    assert table.column("card").to_pylist()[0] == "0000123412341234"
    assert table.schema.field("score").type == pa.int64()
    assert table.column("score").to_pylist() == [None, 7, None]
    # A string column keeps its text: NA is a value there, not a null.
    assert table.column("label").to_pylist() == ["NA", "", "NULL"]


def test_unify_widens_and_fills_missing_columns(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("id,value\n1,2\n")
    (src / "b.csv").write_text("id,value,extra\n2,2.5,x\n")
    datamove.sync(str(src), str(tmp_path / "dst"), workers=1)
    table = read_rows(tmp_path / "dst")
    assert table.schema.field("value").type == pa.float64()
    assert table.column("value").to_pylist() == [2.0, 2.5]
    assert table.column("extra").to_pylist() == [None, "x"]


def test_conflict_names_both_files_and_the_column() -> None:
    files = [
        FileSchema(
            "a.parquet", pa.schema([("when", pa.timestamp("us"))]), textual=False
        ),
        FileSchema("b.parquet", pa.schema([("when", pa.int64())]), textual=False),
    ]
    with pytest.raises(datamove.SchemaConflictError) as caught:
        unify(files)
    message = str(caught.value)
    assert "a.parquet" in message and "b.parquet" in message and "'when'" in message
    assert "--column-type when=" in message


def test_text_conflicts_widen_to_string() -> None:
    files = [
        FileSchema("a.csv", pa.schema([("v", pa.int64())]), textual=True),
        FileSchema("b.csv", pa.schema([("v", pa.date32())]), textual=True),
    ]
    assert unify(files).field("v").type == pa.string()


def test_column_type_override(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("id,code\n1,12\n2,34\n")
    datamove.sync(
        str(src), str(tmp_path / "dst"), workers=1, column_types=["code=string"]
    )
    assert read_rows(tmp_path / "dst").schema.field("code").type == pa.string()


def test_value_beyond_sample_that_loses_a_leading_zero_is_a_bad_row(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    lines = ["id,code"] + [f"{i},{100 + i}" for i in range(50_000)] + ["50000,0042"]
    (src / "a.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(datamove.SyncFailedError, match="code"):
        datamove.sync(str(src), str(tmp_path / "dst"), workers=1, sample_bytes="64KiB")
    report = datamove.sync(
        str(src),
        str(tmp_path / "dst2"),
        workers=1,
        sample_bytes="64KiB",
        on_bad_rows="quarantine",
        quarantine_dir=str(tmp_path / "q"),
    )
    assert report.bad_rows == 1
    assert report.rows_written == 50_000
    quarantined = list((tmp_path / "q").iterdir())
    assert len(quarantined) == 1 and "0042" in quarantined[0].read_text()


@pytest.mark.parametrize("values", [[], [""], ["a", "", "é", "日本"], ["x" * 70_000]])
def test_string_array_is_pa_array(values: list[str]) -> None:
    assert string_array(values).equals(pa.array(values, pa.string()))


def test_a_sync_does_not_import_pandas(tmp_path: Path) -> None:
    # pyarrow imports pandas (0.2 s, 40 MB) on its first conversion of a
    # Python value; the sync path must not convert any, in the command or a
    # worker (a worker runs the same code as this in-process unit).
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.csv").write_text(
        "id,zip,when,amount,flag,note\n"
        + "".join(
            f"{i},0{i % 9000:04d},2024-01-0{1 + i % 9}T10:00:00Z,{i / 4},"
            f"{'true' if i % 2 else 'false'},{'NA' if i % 7 else 'text'}\n"
            for i in range(20_000)
        )
    )
    script = (
        "import sys, datamove\n"
        f"datamove.sync({str(source)!r}, {str(tmp_path / 'dst')!r}, workers=1)\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
