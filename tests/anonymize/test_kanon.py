"""k-anonymity figures on a table small enough to check by hand."""

from __future__ import annotations

import datetime
import pickle

import pyarrow as pa
import pytest

from datamove.anonymize import AnonKey, Anonymizer, KAnonymityCounter, parse_policy

# Groups over (zip3, year): (100, 1980) x3, (100, 1990) x2, (101, 1980) x1,
# (null, 1980) x1 -> smallest group 1; below k=3: 2 + 1 + 1 = 4 rows in 3 groups.
HAND = pa.table(
    {
        "zip3": ["100", "100", "100", "100", "100", "101", None],
        "year": [1980, 1980, 1980, 1990, 1990, 1980, 1980],
        "other": list(range(7)),
    }
)


def test_report_on_a_hand_checkable_table() -> None:
    counter = KAnonymityCounter(["zip3", "year"])
    counter.update(HAND)

    report = counter.report(3)

    assert report.rows == 7
    assert report.groups == 4
    assert report.smallest_group == 1
    assert report.rows_below_k == 4
    assert report.groups_below_k == 3
    assert not report.satisfied
    assert counter.report(1).satisfied
    assert report.to_dict()["columns"] == ["zip3", "year"]


def test_counts_per_group() -> None:
    counter = KAnonymityCounter(["zip3", "year"])
    counter.update(HAND)

    counts = counter.counts().to_pylist()

    assert sorted(counts, key=lambda row: (str(row["zip3"]), row["year"])) == [
        {"zip3": "100", "year": 1980, "group_size": 3},
        {"zip3": "100", "year": 1990, "group_size": 2},
        {"zip3": "101", "year": 1980, "group_size": 1},
        {"zip3": None, "year": 1980, "group_size": 1},
    ]


def test_shards_merge_to_the_whole_table_figures() -> None:
    whole = KAnonymityCounter(["zip3", "year"])
    whole.update(HAND)
    shards = []
    for start, length in ((0, 2), (2, 3), (5, 2)):
        shard = KAnonymityCounter(["zip3", "year"])
        for batch in HAND.slice(start, length).to_batches(max_chunksize=1):
            shard.update(batch)
        shards.append(pickle.loads(pickle.dumps(shard)))  # as if from a worker

    merged = KAnonymityCounter.merged(shards)
    via_ipc = KAnonymityCounter.from_ipc(shards[0].to_ipc())
    via_ipc.merge(KAnonymityCounter.from_ipc(shards[1].to_ipc())).merge(shards[2])

    assert merged.report(3) == whole.report(3)
    assert via_ipc.report(3) == whole.report(3)


def test_many_small_batches_compact_without_changing_figures() -> None:
    counter = KAnonymityCounter(["g"])
    for number in range(200):
        counter.update(pa.record_batch({"g": pa.array([number % 7, number % 3])}))

    report = counter.report(50)

    assert report.rows == 400
    assert report.groups == 7
    # number % 7 gives 29 rows to g = 0..3 and 28 to g = 4..6; number % 3 adds
    # 67, 67 and 66 rows to g = 0, 1, 2.
    assert report.smallest_group == 28
    assert report.rows_below_k == 29 + 28 * 3
    assert report.groups_below_k == 4


def test_empty_counter_and_errors() -> None:
    counter = KAnonymityCounter(["a"])
    counter.update(pa.table({"a": pa.array([], pa.int64())}))

    report = counter.report(5)

    assert (report.rows, report.groups, report.smallest_group) == (0, 0, None)
    assert report.satisfied
    assert KAnonymityCounter.from_ipc(counter.to_ipc()).report(5) == report
    with pytest.raises(ValueError, match="at least one column"):
        KAnonymityCounter([])
    with pytest.raises(KeyError, match="missing"):
        counter.update(pa.table({"b": [1]}))
    with pytest.raises(ValueError, match="cannot merge"):
        counter.merge(KAnonymityCounter(["b"]))


def test_anonymizer_counts_quasi_identifiers_after_generalization(key: AnonKey) -> None:
    policy = parse_policy(
        "quasi_identifiers: [zip, birth_date, ssn]\nk: 2\ncolumns:\n"
        "  zip: {action: generalize, prefix: 3}\n"
        "  birth_date: {action: generalize, to: year}\n"
        "  ssn: drop\n"
    )
    table = pa.table(
        {
            "zip": ["10001", "10002", "10099", "20001"],
            "birth_date": pa.array(
                [
                    datetime.date(1980, 1, 5),
                    datetime.date(1980, 7, 9),
                    datetime.date(1981, 2, 2),
                    datetime.date(1980, 3, 3),
                ],
                pa.date32(),
            ),
            "ssn": ["123-45-6789"] * 4,
        }
    )
    anonymizer = Anonymizer(policy, key)
    out = anonymizer.apply_table(table)

    counter = anonymizer.kanon_counter(out.schema)
    assert counter is not None
    assert counter.columns == ("zip", "birth_date")  # the dropped ssn identifies nobody
    counter.update(out)
    report = counter.report(policy.k)

    assert report.groups == 3  # (100, 1980) x2, (100, 1981), (200, 1980)
    assert report.smallest_group == 1
    assert report.rows_below_k == 2
    no_qi = Anonymizer(parse_policy("columns:\n  zip: drop\n"), key)
    assert no_qi.kanon_counter(out.schema) is None
