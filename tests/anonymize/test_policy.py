"""Policy files: every action parses, every mistake names its line and a fix."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from datamove.anonymize import (
    DropRule,
    GeneralizeRule,
    HashRule,
    KeepRule,
    MaskRule,
    NoiseRule,
    RedactRule,
    load_policy,
    parse_policy,
)
from datamove.errors import UsageError
from tests.anonymize.helpers import POLICY_TEXT


def test_full_policy_parses_into_typed_rules() -> None:
    policy = parse_policy(POLICY_TEXT, source="policy.yaml")

    assert policy.default == "fail"
    assert policy.k == 3
    assert policy.quasi_identifiers == ("zip", "birth_date")
    assert policy.rules["email"] == HashRule(
        column="email", line=5, length=24, prefix="em_", normalize=("trim", "lower")
    )
    assert policy.rules["card_number"] == MaskRule(
        column="card_number", line=6, keep_last=4
    )
    assert policy.rules["phone"] == MaskRule(
        column="phone", line=7, keep_first=3, char="#"
    )
    assert policy.rules["notes"] == RedactRule(
        column="notes", line=8, value="[removed]"
    )
    assert policy.rules["birth_date"] == GeneralizeRule(
        column="birth_date", line=9, to="year"
    )
    assert policy.rules["amount"] == GeneralizeRule(column="amount", line=10, bin=100)
    assert policy.rules["zip"] == GeneralizeRule(column="zip", line=11, prefix=3)
    assert policy.rules["ip"] == GeneralizeRule(column="ip", line=12, ipv4=24)
    assert policy.rules["balance"] == NoiseRule(
        column="balance", line=13, scale=10.0, seed="keyed"
    )
    assert policy.rules["ssn"] == DropRule(column="ssn", line=14)
    assert policy.rules["customer_id"] == KeepRule(column="customer_id", line=15)
    assert policy.needs_key
    assert len(policy.digest) == 64


def test_defaults_and_shorthand() -> None:
    policy = parse_policy("columns:\n  a: hash\n  b: {action: noise, scale: 2}\n")

    assert policy.default == "fail"
    assert policy.k == 5
    assert policy.rules["a"] == HashRule(column="a", line=2)
    assert policy.rules["a"].options() == {
        "length": 32,
        "prefix": "",
        "domain": "",
        "normalize": (),
    }
    assert policy.rules["b"] == NoiseRule(column="b", line=3, scale=2.0, seed="run")


def test_column_names_that_yaml_would_turn_into_booleans_stay_names() -> None:
    policy = parse_policy("columns:\n  yes: drop\n  123: keep\n")

    assert set(policy.rules) == {"yes", "123"}


def test_policy_without_a_key_action_needs_no_key() -> None:
    assert not parse_policy("columns:\n  a: drop\n  b: {action: mask}\n").needs_key


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "columns:\n  a: {action: hashh}\n",
            2,
            "unknown action 'hashh' (did you mean 'hash'?)",
        ),
        ("columns:\n  a: encrypt\n", 2, "use one of drop, keep, hash"),
        (
            "columns:\n  a:\n    action: hash\n    lenght: 8\n",
            4,
            "unknown option 'lenght' for action hash (did you mean 'length'?)",
        ),
        ("columns:\n  a: {action: drop, value: 1}\n", 2, "allowed options: none"),
        (
            "columns:\n  a: {action: hash, length: '16'}\n",
            2,
            "'length' must be an integer",
        ),
        ("columns:\n  a: {action: hash, length: 4}\n", 2, "8 to 64"),
        ("columns:\n  a: {action: mask, keep_last: -1}\n", 2, "integer >= 0"),
        ("columns:\n  a: {action: mask, char: '**'}\n", 2, "single character"),
        ("columns:\n  a: {action: redact, value: [1, 2]}\n", 2, "single value"),
        ("columns:\n  a: {action: generalize, to: week}\n", 2, "day, month, year"),
        ("columns:\n  a: {action: generalize, ipv4: 20}\n", 2, "8, 16 or 24"),
        ("columns:\n  a: {action: generalize, bin: 0}\n", 2, "positive number"),
        ("columns:\n  a: {action: generalize}\n", 2, "exactly one of"),
        (
            "columns:\n  a: {action: generalize, to: year, prefix: 2}\n",
            2,
            "exactly one",
        ),
        (
            "columns:\n  a: {action: generalize, prefix: 2, format: '%Y'}\n",
            2,
            "only applies",
        ),
        ("columns:\n  a: {action: noise}\n", 2, "noise needs a 'scale'"),
        (
            "columns:\n  a: {action: noise, scale: 1, seed: daily}\n",
            2,
            "'run' or 'keyed'",
        ),
        ("columns:\n  a: {action: noise, scale: true}\n", 2, "positive number"),
        (
            "columns:\n  a: {action: hash, normalize: [upper]}\n",
            2,
            "normalize step 'upper'",
        ),
        ("columns:\n  a: {length: 3}\n", 2, "no 'action'"),
        (
            "columns:\n  a: drop\n  b: keep\n  a: hash\n",
            4,
            "appears twice (first at line 2)",
        ),
        ("default: open\ncolumns:\n  a: drop\n", 1, "'default' must be 'fail'"),
        ("k: 1\ncolumns:\n  a: drop\n", 1, "'k' must be an integer of at least 2"),
        ("colums:\n  a: drop\n", 1, "unknown key 'colums' (did you mean 'columns'?)"),
        ("quasi_identifiers: zip\ncolumns:\n  a: drop\n", 1, "must be a list"),
        ("columns:\n  a: drop\n  b: [drop]\n", 3, "give an action such as 'drop'"),
        ("columns:\n  a: {action: [hash]}\n", 2, "expected a single value"),
        ("columns:\n  - a\n", 2, "must be a mapping"),
        ("columns:\n  a: {action: hash\n  b: drop\n", 3, "not valid YAML"),
        ("version: 2\ncolumns: {}\n", 1, "'version' must be 1"),
    ],
)
def test_every_mistake_names_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_policy(text, source="p.yaml")

    message = str(caught.value)
    assert message.startswith(f"p.yaml:{line}: "), message
    assert fragment in message


def test_missing_columns_mapping_and_empty_file_are_errors() -> None:
    with pytest.raises(UsageError, match="no 'columns:' mapping"):
        parse_policy("default: keep\n", source="p.yaml")
    with pytest.raises(UsageError, match="the policy is empty"):
        parse_policy("", source="p.yaml")


def test_columns_absent_from_the_data_are_named_with_their_lines() -> None:
    policy = parse_policy(
        "quasi_identifiers: [zip, region]\ncolumns:\n  email: hash\n  emial: drop\n",
        source="p.yaml",
    )
    schema = pa.schema([("email", pa.string()), ("zip", pa.string())])

    with pytest.raises(UsageError) as caught:
        policy.check_columns(schema)

    message = str(caught.value)
    assert (
        "p.yaml:4: column 'emial' is not in the data (did you mean 'email'?)" in message
    )
    assert "p.yaml:1: quasi-identifier 'region' is not in the data" in message
    assert "email: hash" not in message


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_TEXT)

    policy = load_policy(path)

    assert policy.source == str(path)
    assert policy.rules["ssn"] == DropRule(column="ssn", line=14)


def test_load_policy_names_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the policy file"):
        load_policy(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_policy(binary)
