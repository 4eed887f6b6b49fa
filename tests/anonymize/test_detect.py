"""PII detection: precision and recall on a labelled faker dataset, and more."""

from __future__ import annotations

import collections
import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datamove.anonymize import (
    PII_TYPES,
    AnonKey,
    Anonymizer,
    match_values,
    parse_policy,
    scan_table,
    suggest_policy,
)
from datamove.anonymize.detect import name_hints
from tests.anonymize.pii_data import TODAY, labelled_table

SEEDS = range(8)
JUNK = pa.array(["", "n/a", "unknown"])
# Floors for the labelled dataset; the measured figures are printed.
COLUMN_FLOOR = 0.95
VALUE_PRECISION_FLOOR = {"credit_card": 0.75}  # 12-19 digit ids pass Luhn 1 in 10
VALUE_FLOOR = 0.95
PHONE_VALUE_RECALL_FLOOR = 0.8  # bare national numbers need a name hint


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 1.0


def test_column_level_precision_and_recall_per_type() -> None:
    outcomes: collections.Counter[tuple[str | None, str | None]] = collections.Counter()
    for seed in SEEDS:
        table, labels = labelled_table(seed)
        found = {f.column: f.pii_type for f in scan_table(table, today=TODAY)}
        for name, label in labels.items():
            outcomes[(label, found.get(name))] += 1

    lines = []
    for pii_type in PII_TYPES:
        hits = outcomes[(pii_type, pii_type)]
        flagged = sum(n for (_, found), n in outcomes.items() if found == pii_type)
        actual = sum(n for (label, _), n in outcomes.items() if label == pii_type)
        precision, recall = _ratio(hits, flagged), _ratio(hits, actual)
        lines.append(f"{pii_type:14} precision {precision:.3f} recall {recall:.3f}")
        assert precision >= COLUMN_FLOOR, lines[-1]
        assert recall >= COLUMN_FLOOR, lines[-1]
    false_alarms = sum(
        n for (label, found), n in outcomes.items() if not label and found
    )
    print(
        "\ncolumn level over", sum(outcomes.values()), "columns:\n" + "\n".join(lines)
    )
    print("non-PII columns flagged:", false_alarms)
    assert false_alarms == 0


def test_value_level_precision_and_recall_per_type() -> None:
    hits: collections.Counter[str] = collections.Counter()
    misses: collections.Counter[str] = collections.Counter()
    false: collections.Counter[str] = collections.Counter()
    for seed in SEEDS:
        table, labels = labelled_table(seed)
        for name, label in labels.items():
            values = table.column(name).combine_chunks()
            real = pc.invert(pc.is_in(pc.utf8_trim_whitespace(values), value_set=JUNK))
            real = pc.and_(pc.fill_null(real, False), pc.is_valid(values))
            for pii_type in PII_TYPES:
                if pii_type == "date_of_birth":
                    continue  # a single date says nothing of birth; see column level
                matched = pc.fill_null(match_values(values, pii_type), False)
                count = pc.sum(pc.and_(matched, real)).as_py() or 0
                if label == pii_type:
                    hits[pii_type] += count
                    misses[pii_type] += (pc.sum(real).as_py() or 0) - count
                else:
                    false[pii_type] += count

    lines = []
    for pii_type in PII_TYPES[:-1]:
        precision = _ratio(hits[pii_type], hits[pii_type] + false[pii_type])
        recall = _ratio(hits[pii_type], hits[pii_type] + misses[pii_type])
        lines.append(f"{pii_type:14} precision {precision:.3f} recall {recall:.3f}")
        assert precision >= VALUE_PRECISION_FLOOR.get(pii_type, VALUE_FLOOR), lines[-1]
        floor = PHONE_VALUE_RECALL_FLOOR if pii_type == "phone" else VALUE_FLOOR
        assert recall >= floor, lines[-1]
    print("\nvalue level:\n" + "\n".join(lines))


@pytest.mark.parametrize(
    ("value", "pii_type", "expected"),
    [
        ("4111 1111 1111 1111", "credit_card", True),
        ("4111 1111 1111 1112", "credit_card", False),  # Luhn fails
        ("0000000000000000", "credit_card", False),
        ("DE89 3704 0044 0532 0130 00", "iban", True),
        ("DE89 3704 0044 0532 0130 01", "iban", False),  # mod 97 fails
        ("gb82west12345698765432", "iban", True),
        ("123-45-6789", "ssn", True),
        ("000-45-6789", "ssn", False),
        ("666-45-6789", "ssn", False),
        ("123-00-6789", "ssn", False),
        ("123456789", "ssn", False),
        ("10.0.0.255", "ipv4", True),
        ("10.0.0.256", "ipv4", False),
        ("::1", "ipv6", True),
        ("2001:db8::8a2e:370:7334", "ipv6", True),
        ("12:30:45", "ipv6", False),
        ("aa:bb:cc:dd:ee:ff", "ipv6", False),
        ("+1 (555) 010-4477 x12", "phone", True),
        ("+44 20 7946 0958", "phone", True),
        ("5550104477", "phone", False),  # bare digits need a name hint
        ("2024-05-06", "phone", False),
        ("978-3-16-148410-0", "phone", False),  # an ISBN
        ("12345-6789", "phone", False),  # ZIP+4
        ("first.last+tag@mail.example.org", "email", True),
        ("not an email@", "email", False),
    ],
)
def test_validators(value: str, pii_type: str, expected: bool) -> None:
    assert match_values(pa.array([value]), pii_type).to_pylist() == [expected]


def test_name_hints_relax_formats_for_bare_digits() -> None:
    values = pa.array(["5550104477", "123456789"])

    assert match_values(values[:1], "phone", named=True).to_pylist() == [True]
    assert match_values(values[1:], "ssn", named=True).to_pylist() == [True]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("customerEmail", {"email"}),
        ("home_phone", {"phone"}),
        ("ip_address", {"ipv4", "ipv6"}),
        ("zip", set()),
        ("shipping_cost", set()),
        ("date_of_birth", {"date_of_birth"}),
        ("DOB", {"date_of_birth"}),
        ("cc_number", {"credit_card"}),
        ("SSN", {"ssn"}),
    ],
)
def test_name_hints(name: str, expected: set[str]) -> None:
    assert name_hints(name) == expected


def test_typed_and_named_columns() -> None:
    births = [datetime.date(1950 + i % 50, 1 + i % 12, 1 + i % 28) for i in range(100)]
    recent = [
        datetime.date(2025, 1, 1) + datetime.timedelta(days=i) for i in range(100)
    ]
    table = pa.table(
        {
            "dob": pa.array(births, pa.date32()),
            "born_on": pa.array([d.strftime("%m/%d/%Y") for d in births]),
            "created": pa.array(recent, pa.date32()),
            "customer_phone": [f"55501{i:05d}" for i in range(100)],
            "card": pa.array([4111111111111111] * 100, pa.int64()),
            "ip_count": pa.array(range(100)),
        }
    )

    found = {f.column: f for f in scan_table(table, today=TODAY)}

    assert set(found) == {"dob", "born_on", "customer_phone", "card"}
    assert found["dob"].pii_type == "date_of_birth"
    assert found["dob"].name_hint
    assert found["born_on"].suggestion == {
        "action": "generalize",
        "to": "year",
        "format": "%m/%d/%Y",
    }
    assert found["customer_phone"].pii_type == "phone"
    assert found["card"].pii_type == "credit_card"
    assert found["card"].share == 1.0


def test_birth_dates_are_found_by_content_but_recent_dates_are_not() -> None:
    births = [datetime.date(1940 + i % 60, 1 + i % 12, 1 + i % 28) for i in range(200)]
    recent = [
        datetime.date(2024, 1, 1) + datetime.timedelta(days=3 * i) for i in range(200)
    ]
    table = pa.table(
        {
            "d1": [d.isoformat() for d in births],
            "d2": [d.isoformat() for d in recent],
        }
    )

    found = {f.column: f for f in scan_table(table, today=TODAY)}

    assert set(found) == {"d1"}
    assert not found["d1"].name_hint


def test_sampling_reads_every_batch_and_is_repeatable() -> None:
    emails = pa.array([f"user{i}@example.com" for i in range(1000)])
    noise = pa.array([f"item {i}" for i in range(9000)])
    batches = [
        pa.record_batch({"c": noise.slice(0, 4500)}),
        pa.record_batch({"c": emails}),
        pa.record_batch({"c": noise.slice(4500)}),
    ]

    first = scan_table(batches, sample_rows=2000, seed=3, min_share=0.05)
    again = scan_table(iter(batches), sample_rows=2000, seed=3, min_share=0.05)

    assert first == again
    assert first[0].sampled == 2000
    assert 0.05 < first[0].share < 0.16  # about a tenth of all rows are emails


def test_empty_and_all_null_inputs() -> None:
    assert scan_table([]) == []
    assert scan_table(pa.table({"email": pa.array([None, None], pa.string())})) == []


def test_suggested_policy_parses_and_passes_the_fail_closed_check() -> None:
    table, labels = labelled_table(99)
    findings = scan_table(table, today=TODAY)

    text = suggest_policy(findings)
    policy = parse_policy(text, source="suggested.yaml")
    anonymizer = Anonymizer(policy, AnonKey(b"suggested-policy-test-key-0123456789"))
    anonymizer.check(table.schema, {f.column: f.describe() for f in findings})
    out = anonymizer.apply_table(table)

    assert set(policy.rules) == {name for name, label in labels.items() if label}
    assert policy.quasi_identifiers == tuple(
        name for name, label in labels.items() if label == "date_of_birth"
    )
    assert out.num_rows == table.num_rows
    assert "# email, " in text


def test_suggested_policy_quotes_awkward_column_names() -> None:
    table = pa.table(
        {"yes": ["a@b.example", "c@d.example"], "e mail:x": ["a@b.co"] * 2}
    )

    policy = parse_policy(suggest_policy(scan_table(table)))

    assert set(policy.rules) == {"yes", "e mail:x"}


def test_suggested_policy_without_findings_still_parses() -> None:
    policy = parse_policy(suggest_policy([]))

    assert policy.rules == {}
