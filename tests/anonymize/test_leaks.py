"""No raw value of an anonymized column reaches the written bytes or messages."""

from __future__ import annotations

import io
import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datamove.anonymize import (
    AnonKey,
    Anonymizer,
    Policy,
    flagged_columns,
    parse_policy,
    scan_table,
    suggest_policy,
)
from datamove.errors import DatamoveError
from tests.anonymize.helpers import KEY_TEXT, customers

# Columns whose every raw value must vanish. Masked, generalized and noised
# columns keep part of a value by design; the full value must still vanish.
WHOLLY_HIDDEN = ("email", "notes", "ssn")
PARTLY_KEPT = ("card_number", "phone", "zip", "ip")


def _raw_values(table: pa.Table, columns: tuple[str, ...]) -> set[str]:
    """Raw values long enough not to turn up in hex tokens by chance."""
    values: set[str] = set()
    for name in columns:
        values |= {str(v) for v in table.column(name).to_pylist() if v is not None}
    return {value for value in values if len(value) >= 8}


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="none",
        write_statistics=True,
        use_dictionary=True,
        write_page_index=True,
        store_schema=True,
    )
    return sink.getvalue()


def test_parquet_pages_statistics_and_footer_hold_no_raw_value(
    policy: Policy, key: AnonKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    raw = customers(11, rows=300)
    anonymizer = Anonymizer(policy, key, run_seed=5)

    written = _parquet_bytes(anonymizer.apply_table(raw))

    # The test can fail: the raw table's bytes do contain the values.
    raw_bytes = _parquet_bytes(raw)
    hidden = _raw_values(raw, WHOLLY_HIDDEN + PARTLY_KEPT)
    assert all(value.encode() in raw_bytes for value in hidden)
    leaked = [value for value in hidden if value.encode() in written]
    assert not leaked, f"{len(leaked)} raw values in the Parquet bytes"
    assert not [value for value in hidden if value in caplog.text]
    zips = anonymizer.apply_table(raw).column("zip").to_pylist()
    assert {len(z) for z in zips} == {3}
    metadata = pq.read_metadata(io.BytesIO(written))
    for group in range(metadata.num_row_groups):
        for index in range(metadata.num_columns):
            statistics = metadata.row_group(group).column(index).statistics
            assert statistics is not None and statistics.has_min_max


def test_scan_findings_and_suggested_policy_hold_no_raw_value() -> None:
    raw = customers(12)
    findings = scan_table(raw)

    report = json.dumps([finding.to_dict() for finding in findings])
    report += (
        suggest_policy(findings) + repr(findings) + repr(flagged_columns(findings))
    )

    assert findings
    for value in _raw_values(raw, WHOLLY_HIDDEN + PARTLY_KEPT):
        assert value not in report


def test_errors_during_apply_name_the_column_but_no_value(
    key: AnonKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(array: pa.Array, rule: object) -> pa.Array:
        raise pa.ArrowInvalid("Failed to parse string: 'secret-value-771'")

    monkeypatch.setattr("datamove.anonymize.actions.mask_array", failing)
    anonymizer = Anonymizer(parse_policy("columns:\n  c: mask\n", source="p.yaml"), key)

    with pytest.raises(DatamoveError) as caught:
        anonymizer.apply(pa.record_batch({"c": pa.array(["secret-value-771"])}))

    message = str(caught.value)
    assert message.startswith("column 'c': mask failed (ArrowInvalid)")
    assert "p.yaml:2" in message
    assert "secret-value-771" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_the_key_appears_in_no_output(policy: Policy, key: AnonKey) -> None:
    anonymizer = Anonymizer(policy, key)
    out = anonymizer.apply_table(customers(13))

    written = _parquet_bytes(out)

    assert KEY_TEXT.encode() not in written
    assert KEY_TEXT not in repr(anonymizer) + json.dumps(anonymizer.receipt_fields())
