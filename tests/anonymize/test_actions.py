"""Each action on small, hand-checkable columns; nulls stay null."""

from __future__ import annotations

import datetime
import hashlib
import hmac

import pyarrow as pa
import pytest

from datamove.anonymize import AnonKey, Anonymizer, parse_policy
from datamove.errors import UsageError


def run(policy_text: str, table: pa.Table, key: AnonKey | None = None) -> pa.Table:
    anonymizer = Anonymizer(parse_policy(policy_text, source="p.yaml"), key, run_seed=1)
    return anonymizer.apply_table(table)


def column(
    policy_text: str, values: pa.Array, key: AnonKey | None = None
) -> list[object]:
    values_out: list[object] = (
        run(policy_text, pa.table({"c": values}), key).column("c").to_pylist()
    )
    return values_out


def test_drop_removes_the_column_and_keep_passes_it_through() -> None:
    table = pa.table({"a": [1, 2], "b": ["x", "y"], "c": [True, False]})

    out = run("columns:\n  a: drop\n  b: keep\n", table)

    assert out.column_names == ["b", "c"]
    assert out.column("b").to_pylist() == ["x", "y"]
    assert out.column("c").to_pylist() == [True, False]


def test_hash_is_hmac_sha256_under_a_derived_key(key: AnonKey) -> None:
    values = column("columns:\n  c: hash\n", pa.array(["alice@example.com", None]), key)

    subkey = key.derive("hash\x00")
    expected = hmac.new(subkey, b"alice@example.com", hashlib.sha256).hexdigest()[:32]
    assert values == [expected, None]


def test_hash_length_prefix_and_equal_values(key: AnonKey) -> None:
    values = column(
        "columns:\n  c: {action: hash, length: 9, prefix: 'u_'}\n",
        pa.array(["bob", "carol", "bob", None, ""]),
        key,
    )

    assert values[0] == values[2]
    assert values[0] != values[1]
    assert values[3] is None
    for token in (values[0], values[1], values[4]):
        assert isinstance(token, str)
        assert token.startswith("u_")
        assert len(token) == 11
        int(token[2:], 16)


def test_hash_normalize_makes_case_and_spaces_join(key: AnonKey) -> None:
    values = pa.array(["Alice@Example.com ", "alice@example.com"])

    plain = column("columns:\n  c: hash\n", values, key)
    normalized = column(
        "columns:\n  c: {action: hash, normalize: [trim, lower]}\n", values, key
    )

    assert plain[0] != plain[1]
    assert normalized[0] == normalized[1] == plain[1]


def test_hash_domain_separates_namespaces(key: AnonKey) -> None:
    values = pa.array(["42"])

    default = column("columns:\n  c: hash\n", values, key)
    orders = column("columns:\n  c: {action: hash, domain: orders}\n", values, key)

    assert default != orders


def test_hash_of_integers_joins_with_their_text(key: AnonKey) -> None:
    as_int = column("columns:\n  c: hash\n", pa.array([42, None], pa.int32()), key)
    as_text = column("columns:\n  c: hash\n", pa.array(["42", None]), key)

    assert as_int == as_text


def test_hash_of_dictionary_and_large_string_columns(key: AnonKey) -> None:
    plain = column("columns:\n  c: hash\n", pa.array(["x", "y", None, "x"]), key)
    encoded = pa.array(["x", "y", None, "x"]).dictionary_encode()
    large = pa.array(["x", "y", None, "x"], pa.large_string())

    assert column("columns:\n  c: hash\n", encoded, key) == plain
    assert column("columns:\n  c: hash\n", large, key) == plain


def test_mask_keeps_the_last_characters() -> None:
    values = column(
        "columns:\n  c: {action: mask, keep_last: 4}\n",
        pa.array(["4111111111111111", "5500-0000-0000-0004", "1234", "", None]),
    )

    assert values == ["************1111", "***************0004", "****", "", None]


def test_mask_keeps_the_first_characters_with_another_char() -> None:
    values = column(
        "columns:\n  c: {action: mask, keep_first: 3, char: '#'}\n",
        pa.array(["555-123-4567", "12", None, "çàé€xyz"]),
    )

    assert values == ["555#########", "##", None, "çàé####"]


def test_mask_both_ends_and_everything() -> None:
    both = column(
        "columns:\n  c: {action: mask, keep_first: 2, keep_last: 2}\n",
        pa.array(["abcdefg", "abcd"]),
    )
    everything = column("columns:\n  c: mask\n", pa.array(["secret", None]))

    assert both == ["ab***fg", "****"]
    assert everything == ["******", None]


def test_mask_of_integers() -> None:
    values = column(
        "columns:\n  c: {action: mask, keep_last: 2}\n", pa.array([123456, None])
    )

    assert values == ["****56", None]


def test_redact_to_null_keeps_the_type() -> None:
    out = run(
        "columns:\n  c: redact\n", pa.table({"c": pa.array([1, None], pa.int16())})
    )

    assert out.schema.field("c").type == pa.int16()
    assert out.column("c").to_pylist() == [None, None]


def test_redact_to_a_constant_keeps_nulls() -> None:
    text = column(
        "columns:\n  c: {action: redact, value: '[x]'}\n", pa.array(["a", None])
    )
    number = column(
        "columns:\n  c: {action: redact, value: 0}\n", pa.array([7.5, None])
    )

    assert text == ["[x]", None]
    assert number == [0.0, None]


def test_redact_constant_that_does_not_fit_names_the_line() -> None:
    table = pa.table({"c": pa.array([1, 2])})

    with pytest.raises(
        UsageError, match=r"p.yaml:2: column 'c' has type int64: the redact"
    ):
        run("columns:\n  c: {action: redact, value: hidden}\n", table)


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("day", [datetime.date(1987, 6, 15), None]),
        ("month", [datetime.date(1987, 6, 1), None]),
        ("year", [datetime.date(1987, 1, 1), None]),
    ],
)
def test_generalize_dates(unit: str, expected: list[object]) -> None:
    values = pa.array([datetime.date(1987, 6, 15), None], pa.date32())

    assert (
        column(f"columns:\n  c: {{action: generalize, to: {unit}}}\n", values)
        == expected
    )


def test_generalize_timestamps_keeps_their_type() -> None:
    values = pa.array([datetime.datetime(2021, 3, 4, 5, 6, 7)], pa.timestamp("us"))
    out = run(
        "columns:\n  c: {action: generalize, to: month}\n", pa.table({"c": values})
    )

    assert out.schema.field("c").type == pa.timestamp("us")
    assert out.column("c").to_pylist() == [datetime.datetime(2021, 3, 1)]


def test_generalize_date_strings_parses_them() -> None:
    values = pa.array(["1990-07-21", "not a date", None])
    us_values = pa.array(["07/21/1990"])

    iso = column("columns:\n  c: {action: generalize, to: year}\n", values)
    us = column(
        "columns:\n  c: {action: generalize, to: month, format: '%m/%d/%Y'}\n",
        us_values,
    )

    assert iso == [datetime.date(1990, 1, 1), None, None]
    assert us == [datetime.date(1990, 7, 1)]


def test_generalize_numbers_into_bins() -> None:
    ints = column(
        "columns:\n  c: {action: generalize, bin: 100}\n",
        pa.array([0, 99, 100, 250, -1, -100, None], pa.int32()),
    )
    floats = column(
        "columns:\n  c: {action: generalize, bin: 0.5}\n", pa.array([1.26, -0.1, None])
    )
    edge = column(
        "columns:\n  c: {action: generalize, bin: 100}\n",
        pa.array([-128, 5], pa.int8()),
    )

    assert ints == [0, 0, 100, 200, -100, -100, None]
    assert floats == [1.0, -0.5, None]
    assert edge == [-128, 0]


def test_generalize_bin_on_integers_needs_an_integer_bin() -> None:
    with pytest.raises(UsageError, match=r"p\.yaml:2: .*needs an integer bin"):
        run("columns:\n  c: {action: generalize, bin: 2.5}\n", pa.table({"c": [1]}))


def test_generalize_string_prefix() -> None:
    values = column(
        "columns:\n  c: {action: generalize, prefix: 3}\n",
        pa.array(["12345", "SW1A 1AA", "9", None]),
    )
    numbers = column(
        "columns:\n  c: {action: generalize, prefix: 2}\n", pa.array([12345])
    )

    assert values == ["123", "SW1", "9", None]
    assert numbers == ["12"]


@pytest.mark.parametrize(
    ("bits", "expected"), [(24, "192.168.17.0"), (16, "192.168.0.0"), (8, "192.0.0.0")]
)
def test_generalize_ipv4(bits: int, expected: str) -> None:
    values = column(
        f"columns:\n  c: {{action: generalize, ipv4: {bits}}}\n",
        pa.array([" 192.168.17.201", "2001:db8::1", "999.1.1.1", None]),
    )

    assert values == [expected, None, None, None]


def test_noise_is_bounded_and_keeps_the_type(key: AnonKey) -> None:
    floats = pa.array([*(float(i) for i in range(1000)), None])
    ints = pa.array([*range(1000), None], pa.int32())
    table = pa.table({"f": floats, "i": ints})

    out = run(
        "columns:\n  f: {action: noise, scale: 5}\n  i: {action: noise, scale: 3}\n",
        table,
        key,
    )

    assert out.schema.field("f").type == pa.float64()
    assert out.schema.field("i").type == pa.int32()
    noisy_f = out.column("f").to_pylist()
    noisy_i = out.column("i").to_pylist()
    assert noisy_f[-1] is None
    assert noisy_i[-1] is None
    assert all(abs(n - i) <= 5 for i, n in enumerate(noisy_f[:-1]))
    assert all(abs(n - i) <= 3 for i, n in enumerate(noisy_i[:-1]))
    assert sum(n != i for i, n in enumerate(noisy_f[:-1])) > 990
    assert sum(n != i for i, n in enumerate(noisy_i[:-1])) > 500


def test_noise_clips_at_the_integer_type_bounds(key: AnonKey) -> None:
    values = column(
        "columns:\n  c: {action: noise, scale: 50}\n",
        pa.array([127, -128] * 50, pa.int8()),
        key,
    )

    assert all(-128 <= v <= 127 for v in values)  # type: ignore[operator]


def test_keyed_noise_is_a_function_of_the_value(
    key: AnonKey, other_key: AnonKey
) -> None:
    policy = "columns:\n  c: {action: noise, scale: 10, seed: keyed}\n"
    values = pa.array([100.0, 200.0, 100.0])

    first = column(policy, values, key)
    again = column(policy, values, key)
    other = column(policy, values, other_key)

    assert first == again
    assert first[0] == first[2]
    assert first != other


def test_actions_refuse_unsuitable_types_naming_each_line() -> None:
    table = pa.table(
        {
            "when": pa.array([datetime.date(2020, 1, 1)], pa.date32()),
            "name": ["x"],
            "blob": pa.array([b"x"], pa.binary()),
        }
    )
    text = (
        "columns:\n"
        "  when: {action: noise, scale: 1}\n"
        "  name: {action: generalize, bin: 10}\n"
        "  blob: hash\n"
    )
    anonymizer = Anonymizer(
        parse_policy(text, source="p.yaml"), AnonKey(b"k" * 40 + bytes(range(20)))
    )

    with pytest.raises(UsageError) as caught:
        anonymizer.output_schema(table.schema)

    message = str(caught.value)
    assert "p.yaml:2: column 'when' has type date32[day]: noise takes" in message
    assert "p.yaml:3: column 'name' has type string: generalize 'bin' takes" in message
    assert "p.yaml:4: column 'blob' has type binary: hash takes" in message


def test_output_schema_matches_apply_and_strips_metadata(key: AnonKey) -> None:
    schema = pa.schema(
        [
            pa.field(
                "email", pa.string(), nullable=False, metadata={"sample": "a@b.c"}
            ),
            pa.field("id", pa.int64(), metadata={"doc": "kept"}),
            pa.field("ssn", pa.string()),
        ],
        metadata={"origin": "crm"},
    )
    table = pa.Table.from_pylist(
        [{"email": "a@b.c", "id": 1, "ssn": "123-45-6789"}], schema=schema
    )
    anonymizer = Anonymizer(
        parse_policy("columns:\n  email: hash\n  ssn: drop\n"), key, run_seed=None
    )

    expected = anonymizer.output_schema(schema)
    out = anonymizer.apply_table(table)

    assert out.schema == expected
    assert expected.names == ["email", "id"]
    assert expected.field("email").metadata is None
    assert expected.field("email").nullable
    assert expected.field("id").metadata == {b"doc": b"kept"}
    assert not expected.metadata
