"""Lossless type inference for text sources, and schema unification.

Text formats (CSV, TSV) are read as strings and typed here, so that nothing a
user would miss is lost: digit strings with leading zeros (postcodes, card
numbers, account ids) stay strings, integers too wide for int64 stay strings
instead of turning into imprecise floats, and null markers become nulls only
in columns that are not strings. Typed formats (Parquet, Arrow, ORC, JSON)
keep their own types; unification across files widens where that is lossless
and otherwise raises :class:`SchemaConflictError` naming both files.
"""

from __future__ import annotations

import base64
import functools
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datamove.errors import SchemaConflictError

NULL_MARKERS = ("", "NA", "N/A", "NULL", "null", "NaN", "nan", "None", "#N/A")


def string_array(values: Sequence[str]) -> pa.Array:
    """``pa.array(values, pa.string())``, built from its buffers.

    The first conversion of a Python list makes pyarrow import pandas to see
    whether the list is a pandas object: 0.2 s of CPU in every process that
    does it (the command and each worker), which nothing here needs.
    """
    data = [value.encode() for value in values]
    offsets = [0]
    for item in data:
        offsets.append(offsets[-1] + len(item))
    return pa.Array.from_buffers(
        pa.string(),
        len(data),
        [None, pa.py_buffer(array("i", offsets)), pa.py_buffer(b"".join(data))],
    )


@functools.cache
def marker_array() -> pa.Array:
    """:data:`NULL_MARKERS` as an Arrow array (see :func:`string_array`)."""
    return string_array(NULL_MARKERS)


# Patterns applied to every non-null, non-marker value of a sampled column.
# Integers: at most 18 digits (always fits int64), no leading zero.
_INT = r"^[+-]?(0|[1-9][0-9]{0,17})$"
_FLOAT = (
    r"^[+-]?(([1-9][0-9]*|0)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
    r"|^[+-]?(inf|Infinity)$"
)
_BOOL = r"^(true|false|True|False|TRUE|FALSE)$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?$"
_TSTZ = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
)
# Candidate types in order of preference, with the pattern each value must match.
CANDIDATES: tuple[tuple[pa.DataType, str], ...] = (
    (pa.int64(), _INT),
    (pa.float64(), _FLOAT),
    (pa.bool_(), _BOOL),
    (pa.date32(), _DATE),
    (pa.timestamp("us"), _TS),
    (pa.timestamp("us", tz="UTC"), _TSTZ),
)
PATTERNS: dict[pa.DataType, str] = dict(CANDIDATES)
# Values a candidate type is first tried on, before the whole sample.
SCREEN_VALUES = 1_000


def infer_text_column(values: pa.Array | pa.ChunkedArray) -> pa.DataType:
    """The narrowest lossless type for a column of strings read from text."""
    present = pc.drop_null(
        pc.filter(values, pc.invert(pc.is_in(values, marker_array())))
    )
    if len(present) == 0:
        return pa.string()
    # Most candidates fail on the first values (a column of names is no
    # number): screening them there saves a regex pass over the whole sample.
    head = present.slice(0, SCREEN_VALUES)
    for candidate, pattern in CANDIDATES:
        if not _all_match(head, pattern):
            continue
        if len(present) > len(head) and not _all_match(present, pattern):
            continue
        if candidate == pa.float64() and _too_precise(present):
            return pa.string()
        return candidate
    return pa.string()


def _all_match(values: pa.Array | pa.ChunkedArray, pattern: str) -> bool:
    return bool(pc.all(pc.match_substring_regex(values, pattern)).as_py())


def _too_precise(values: pa.Array) -> bool:
    """Whether some value has more digits than a double holds exactly."""
    long_integers = pc.match_substring_regex(values, r"^[+-]?[0-9]{16,}$")
    return bool(pc.any(long_integers).as_py())


def infer_text_schema(
    table: pa.Table, overrides: Mapping[str, pa.DataType]
) -> pa.Schema:
    """Type every string column of a sampled text table."""
    fields = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name in overrides:
            fields.append(pa.field(name, overrides[name]))
        else:
            fields.append(pa.field(name, infer_text_column(column)))
    return pa.schema(fields)


@dataclass(frozen=True)
class FileSchema:
    """The schema one source file contributes; ``textual`` if read from text."""

    relpath: str
    schema: pa.Schema
    textual: bool


_NUMERIC_RANK = {
    pa.bool_(): 0,
    pa.int8(): 1,
    pa.int16(): 2,
    pa.int32(): 3,
    pa.int64(): 4,
    pa.float32(): 5,
    pa.float64(): 6,
}


def _widen(left: pa.DataType, right: pa.DataType, textual: bool) -> pa.DataType | None:
    """The lossless common type of two types, or None when there is none."""
    if left == right:
        return left
    if pa.types.is_null(left):
        return right
    if pa.types.is_null(right):
        return left
    if left in _NUMERIC_RANK and right in _NUMERIC_RANK:
        if pa.types.is_boolean(left) or pa.types.is_boolean(right):
            return pa.string() if textual else None
        return left if _NUMERIC_RANK[left] >= _NUMERIC_RANK[right] else right
    if pa.types.is_temporal(left) and pa.types.is_temporal(right):
        both_ts = pa.types.is_timestamp(left) and pa.types.is_timestamp(right)
        if both_ts and left.tz == right.tz:
            return pa.timestamp(
                "ns" if "ns" in (left.unit, right.unit) else "us", left.tz
            )
        if pa.types.is_date(left) and pa.types.is_timestamp(right) and not right.tz:
            return right
        if pa.types.is_date(right) and pa.types.is_timestamp(left) and not left.tz:
            return left
    if pa.types.is_string(left) and pa.types.is_large_string(right):
        return right
    if pa.types.is_large_string(left) and pa.types.is_string(right):
        return left
    if textual:
        # Every value of a text source has its original spelling: string is lossless.
        return pa.string()
    return None


def unify(
    files: Sequence[FileSchema], overrides: Mapping[str, pa.DataType] | None = None
) -> pa.Schema:
    """One schema for all files: columns in order of first appearance.

    Raises:
        SchemaConflictError: two files hold a column in types with no lossless
            common type; the message names both files and the column.
    """
    overrides = overrides or {}
    types: dict[str, pa.DataType] = {}
    origin: dict[str, FileSchema] = {}
    for file in files:
        for field in file.schema:
            if field.name in overrides:
                types[field.name] = overrides[field.name]
                continue
            if field.name not in types:
                types[field.name] = field.type
                origin[field.name] = file
                continue
            first = origin[field.name]
            textual = first.textual and file.textual
            common = _widen(types[field.name], field.type, textual)
            if common is None:
                raise SchemaConflictError(
                    f"column {field.name!r} is {types[field.name]} in {first.relpath} "
                    f"but {field.type} in {file.relpath}; pass "
                    f"--column-type {field.name}=TYPE to choose one, "
                    "or --exclude one file"
                )
            types[field.name] = common
    return pa.schema([pa.field(name, type_) for name, type_ in types.items()])


def schema_to_json(schema: pa.Schema) -> dict[str, Any]:
    """A schema as JSON: readable column list plus the exact Arrow encoding."""
    return {
        "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
        "arrow": base64.b64encode(schema.serialize().to_pybytes()).decode("ascii"),
    }


def schema_from_json(data: Mapping[str, Any]) -> pa.Schema:
    buffer = pa.py_buffer(base64.b64decode(data["arrow"]))
    return pa.ipc.read_schema(buffer)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Reorder, add (as nulls) and cast ``batch``'s columns to ``schema``."""
    if batch.schema.equals(schema):
        return batch
    columns: list[pa.Array] = []
    names = batch.schema.names
    for field in schema:
        if field.name in names:
            column = batch.column(names.index(field.name))
            if column.type != field.type:
                column = pc.cast(column, field.type)
            columns.append(column)
        else:
            columns.append(pa.nulls(batch.num_rows, field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def columns_of(schemas: Iterable[pa.Schema]) -> list[str]:
    seen: dict[str, None] = {}
    for schema in schemas:
        for name in schema.names:
            seen.setdefault(name, None)
    return list(seen)
