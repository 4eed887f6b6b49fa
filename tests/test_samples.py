"""Tests of the synthetic transactions generator."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from datamove.errors import UsageError
from datamove.samples import (
    TRANSACTIONS_SCHEMA,
    generate_transactions,
    transactions_table,
)

SIZE = 1_000_000


def read_text(path: Path) -> pa.Table:
    """Read a generated text file with the declared schema, losslessly."""
    if ".jsonl" in path.name:
        options = pajson.ParseOptions(explicit_schema=TRANSACTIONS_SCHEMA)
        return pajson.read_json(path, parse_options=options)
    delimiter = "\t" if ".tsv" in path.name else ","
    return pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=TRANSACTIONS_SCHEMA,
            null_values=["", "NA"],
            strings_can_be_null=False,
        ),
    )


def read_any(paths: list[Path]) -> pa.Table:
    tables = [
        pq.read_table(path) if path.suffix == ".parquet" else read_text(path)
        for path in paths
    ]
    return pa.concat_tables(tables).combine_chunks()


def luhn_valid(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def test_luhn_helper_rejects_a_wrong_check_digit() -> None:
    assert luhn_valid("4539578763621486")
    assert not luhn_valid("4539578763621487")


def test_same_seed_and_size_give_identical_bytes(tmp_path: Path) -> None:
    first = generate_transactions(tmp_path / "a", SIZE, files=2, seed=7)
    second = generate_transactions(tmp_path / "b", SIZE, files=2, seed=7)
    other_seed = generate_transactions(tmp_path / "c", SIZE, files=2, seed=8)

    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert first[0].read_bytes() != other_seed[0].read_bytes()


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_compressed_output_is_reproducible(tmp_path: Path, compression: str) -> None:
    first = generate_transactions(tmp_path / "a", SIZE, compression=compression)  # type: ignore[arg-type]
    second = generate_transactions(tmp_path / "b", SIZE, compression=compression)  # type: ignore[arg-type]

    assert first[0].name == f"transactions-00000.csv.{compression}"
    assert first[0].read_bytes() == second[0].read_bytes()
    plain = generate_transactions(tmp_path / "plain", SIZE)[0]
    assert pa.input_stream(first[0], compression="detect").read() == plain.read_bytes()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_text_sizes_meet_the_target(tmp_path: Path, fmt: str) -> None:
    paths = generate_transactions(tmp_path, 3 * SIZE + 1, files=3, fmt=fmt)  # type: ignore[arg-type]

    sizes = [path.stat().st_size for path in paths]
    assert len(paths) == 3
    for size in sizes:
        # Within one row (a few hundred bytes) of each file's share.
        assert abs(size - SIZE) < 600, sizes
    assert not list(tmp_path.glob("*.partial"))


def test_parquet_holds_the_rows_of_a_csv_of_the_same_size(tmp_path: Path) -> None:
    csv_rows = read_any(generate_transactions(tmp_path / "csv", 2 * SIZE)).num_rows
    parquet = generate_transactions(tmp_path / "pq", 2 * SIZE, fmt="parquet")

    assert abs(pq.read_metadata(parquet[0]).num_rows - csv_rows) < 0.02 * csv_rows


def test_rows_do_not_depend_on_how_they_are_chunked() -> None:
    whole = transactions_table(70_000, seed=3)
    head = transactions_table(1234, seed=3)
    tail = transactions_table(70_000 - 1234, seed=3, start=1234)

    assert whole.schema == TRANSACTIONS_SCHEMA
    assert pa.concat_tables([head, tail]).equals(whole)
    assert not transactions_table(1234, seed=4).equals(head)


@pytest.mark.parametrize(
    ("fmt", "compression"),
    [
        ("csv", None),
        ("csv", "gz"),
        ("tsv", "zst"),
        ("jsonl", None),
        ("jsonl", "gz"),
        ("parquet", None),
        ("parquet", "zst"),
    ],
)
def test_every_format_reads_back_as_the_table(
    tmp_path: Path, fmt: str, compression: str | None
) -> None:
    paths = generate_transactions(
        tmp_path,
        SIZE,
        files=2,
        seed=11,
        fmt=fmt,  # type: ignore[arg-type]
        compression=compression,  # type: ignore[arg-type]
    )

    table = read_any(paths)
    assert table.num_rows > 1000
    expected = transactions_table(table.num_rows, seed=11)
    assert table.schema == TRANSACTIONS_SCHEMA
    assert table.equals(expected)


def test_csv_fields_keep_leading_zeros_and_null_markers(tmp_path: Path) -> None:
    path = generate_transactions(tmp_path, SIZE, seed=1)[0]
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))

    def share(column: str, predicate: Callable[[str], bool]) -> float:
        return sum(bool(predicate(row[column])) for row in rows) / len(rows)

    for column, width in [("account_id", 10), ("postcode", 5), ("card_number", 16)]:
        assert all(len(row[column]) == width for row in rows), column
        assert all(row[column].isdigit() for row in rows), column
    assert share("account_id", lambda v: v.startswith("0")) > 0.02
    assert share("postcode", lambda v: v.startswith("0")) > 0.02
    assert share("mcc", lambda v: v.startswith("0")) > 0.02
    assert share("risk_score", lambda v: v == "NA") > 0.005
    assert share("risk_score", lambda v: v == "") > 0.005
    assert share("country", lambda v: v == "NA") > 0.001
    assert share("description", lambda v: "," in v and '"' in v) > 0.1
    assert 0.002 < share("is_fraud", lambda v: v == "true") < 0.05
    assert all(row["event_time"].endswith("Z") for row in rows)


def test_card_numbers_are_luhn_valid_and_start_with_3_to_6() -> None:
    cards = transactions_table(20_000, seed=5).column("card_number").to_pylist()

    assert all(luhn_valid(card) for card in cards)
    assert {card[0] for card in cards} == {"3", "4", "5", "6"}


def test_inferred_types_lose_leading_zeros_unless_columns_are_declared(
    tmp_path: Path,
) -> None:
    # The trap the generator exists for: a naive reader turns ids into numbers.
    path = generate_transactions(tmp_path, SIZE)[0]
    inferred = pacsv.read_csv(path)

    assert pa.types.is_integer(inferred.schema.field("postcode").type)
    assert read_text(path).column("postcode").type == pa.string()


def test_jsonl_lines_are_json_objects(tmp_path: Path) -> None:
    path = generate_transactions(tmp_path, SIZE, fmt="jsonl")[0]
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]

    assert list(records[0]) == TRANSACTIONS_SCHEMA.names
    assert any(record["risk_score"] is None for record in records)
    assert all(isinstance(record["account_id"], str) for record in records)


def test_quoted_newlines_only_when_asked(tmp_path: Path) -> None:
    plain = transactions_table(20_000, seed=2).column("description")
    assert not pc.any(pc.match_substring(plain, "\n")).as_py()

    path = generate_transactions(tmp_path, SIZE, seed=2, quoted_newlines=True)[0]
    table = read_text(path)
    with_breaks = pc.sum(pc.match_substring(table.column("description"), "\n"))
    expected = transactions_table(table.num_rows, seed=2, quoted_newlines=True)

    assert with_breaks.as_py() > 10
    assert table.equals(expected)
    assert path.read_bytes().count(b"\n") > table.num_rows + 1


@pytest.mark.parametrize(
    "arguments",
    [
        {"total_bytes": 0},
        {"total_bytes": 100, "files": 0},
        {"total_bytes": 100, "fmt": "xml"},
        {"total_bytes": 100, "compression": "bz2"},
    ],
)
def test_bad_arguments_are_usage_errors(
    tmp_path: Path, arguments: dict[str, object]
) -> None:
    with pytest.raises(UsageError, match="generate_transactions"):
        generate_transactions(tmp_path, **arguments)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="rows=-1"):
        transactions_table(-1)
