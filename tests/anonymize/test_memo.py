"""The per-process digest memo of ``hash``: same tokens, right keys, bounded."""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pytest

from datamove.anonymize import AnonKey, Anonymizer, Policy, actions, parse_policy
from tests.anonymize.helpers import customers

TWO_RULES = """\
default: keep
columns:
  a: {action: hash, length: 12, prefix: "x_", normalize: [trim, lower]}
  b: {action: hash, length: 40}
  c: {action: hash, domain: other}
"""


@pytest.fixture(autouse=True)
def empty_memo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The memo serves the pure-Python HMAC; the C accelerator needs none.
    monkeypatch.setattr(actions, "_NATIVE_ENABLED", False)
    actions.clear_digest_memo()
    yield
    actions.clear_digest_memo()


def _batches(seed: int, count: int = 4) -> list[pa.RecordBatch]:
    """Batches of the same few values in varying case and spacing."""
    names = [f"User{n}@Example.com" for n in range(40)]
    batches = []
    for number in range(count):
        picked = [names[(seed + number * 7 + row * 3) % 40] for row in range(30)]
        spaced = [
            f" {name} " if row % 4 == 0 else name for row, name in enumerate(picked)
        ]
        batches.append(
            pa.record_batch(
                {"a": spaced, "b": picked, "c": picked[::-1]},
            )
        )
    return batches


def _apply(anonymizer: Anonymizer, batches: Sequence[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches(
        [anonymizer.apply(batch, stream=f"s/{n}") for n, batch in enumerate(batches)]
    )


def _count_hmacs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    computed: list[int] = []
    real = actions.KeyedHasher._hmacs

    def counting(self: actions.KeyedHasher, messages: Sequence[bytes]) -> list[bytes]:
        computed.append(len(messages))
        return real(self, messages)

    monkeypatch.setattr(actions.KeyedHasher, "_hmacs", counting)
    return computed


def test_tokens_are_the_same_with_and_without_the_memo(key: AnonKey) -> None:
    policy = parse_policy(TWO_RULES, source="p.yaml")
    batches = _batches(1) + _batches(1) + _batches(2)

    without = _apply(Anonymizer(policy, key, memo=False), batches)
    first = _apply(Anonymizer(policy, key), batches)
    again = _apply(Anonymizer(policy, key), batches)  # a warm memo this time

    assert first.equals(without)
    assert again.equals(without)
    assert actions.memo_bytes() > 0


def test_the_memo_serves_values_seen_by_earlier_batches_and_instances(
    key: AnonKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = parse_policy("columns:\n  b: hash\n", source="p.yaml")
    computed = _count_hmacs(monkeypatch)
    batch = _batches(3, count=1)[0].select(["b"])
    distinct = len(set(batch.column("b").to_pylist()))

    first = Anonymizer(policy, key).apply(batch)
    # A new instance, as each Dask task unpickles its own, shares the memo.
    second = pickle.loads(pickle.dumps(Anonymizer(policy, key))).apply(batch)

    assert computed == [distinct]
    assert second.equals(first)


def test_keys_domains_and_normalization_never_share_entries(
    key: AnonKey, other_key: AnonKey
) -> None:
    policy = parse_policy(TWO_RULES, source="p.yaml")
    batches = _batches(4)
    expected = {
        which: _apply(Anonymizer(policy, chosen, memo=False), batches)
        for which, chosen in (("key", key), ("other", other_key))
    }

    # Interleave both keys so that each finds the other's values in memos.
    mine, theirs = Anonymizer(policy, key), Anonymizer(policy, other_key)
    for _ in range(2):
        assert _apply(mine, batches).equals(expected["key"])
        assert _apply(theirs, batches).equals(expected["other"])

    for name in ("a", "b", "c"):
        assert set(expected["key"].column(name).to_pylist()).isdisjoint(
            expected["other"].column(name).to_pylist()
        )
    # One memo per key and domain: (key, ""), (key, other) and the same again.
    assert len(actions._MEMOS) == 4


def test_the_memo_stays_within_its_byte_budget(
    key: AnonKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "MEMO_BYTES", 20_000)
    monkeypatch.setattr(actions, "MEMO_MIN_HIT_RATE", 0.0)
    policy = parse_policy(TWO_RULES, source="p.yaml")
    anonymizer, reference = Anonymizer(policy, key), Anonymizer(policy, key, memo=False)
    sizes = []

    for number in range(6):
        values = [f"person{number}-{row}@example.org" for row in range(60)]
        batch = pa.record_batch({"a": values, "b": values, "c": values})
        assert anonymizer.apply(batch).equals(reference.apply(batch))
        sizes.append(actions.memo_bytes())

    assert max(sizes) <= 20_000
    assert min(sizes) > 0


def test_at_most_memo_subkeys_memos_are_kept(
    key: AnonKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "MEMO_SUBKEYS", 2)
    batch = pa.record_batch({"c": ["a", "b"]})

    for domain in ("one", "two", "three"):
        policy = parse_policy(f"columns:\n  c: {{action: hash, domain: {domain}}}\n")
        Anonymizer(policy, key).apply(batch)

    assert len(actions._MEMOS) == 2


def test_a_memo_of_unique_values_stands_aside(
    key: AnonKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "MEMO_WINDOW", 100)
    computed = _count_hmacs(monkeypatch)
    policy = parse_policy("columns:\n  b: hash\n", source="p.yaml")
    anonymizer, reference = Anonymizer(policy, key), Anonymizer(policy, key, memo=False)
    unique = [
        pa.record_batch({"b": [f"id-{number}-{row}" for row in range(50)]})
        for number in range(3)
    ]

    for batch in unique:
        assert anonymizer.apply(batch).equals(reference.apply(batch))

    # Paused after 100 values without a hit: a value seen before is hashed
    # again, not looked up, and nothing new is kept.
    held = actions.memo_bytes()
    computed.clear()
    anonymizer.apply(unique[0])
    assert computed == [50]
    assert actions.memo_bytes() == held


def test_the_memo_is_not_pickled_with_the_anonymizer(
    policy: Policy, key: AnonKey
) -> None:
    anonymizer = Anonymizer(policy, key)
    table = customers(11)
    anonymizer.apply_table(table)
    assert actions.memo_bytes() > 0

    shipped = pickle.dumps(anonymizer)

    for email in table.column("email").to_pylist()[:20]:
        assert email.lower().encode() not in shipped
    assert b"DigestMemo" not in shipped


def test_clearing_the_memo_forgets_every_value(key: AnonKey) -> None:
    policy = parse_policy(TWO_RULES, source="p.yaml")
    _apply(Anonymizer(policy, key), _batches(5))
    assert actions.memo_bytes() > 0

    actions.clear_digest_memo()

    assert actions.memo_bytes() == 0
    assert not actions._MEMOS
