"""Fast paths of hash and mask agree with the plain rules; when to scan."""

from __future__ import annotations

import hashlib
import hmac
import random

import numpy as np
import pyarrow as pa
import pytest

from datamove.anonymize import (
    AnonKey,
    Anonymizer,
    HashRule,
    MaskRule,
    actions,
    parse_policy,
)


def _reference_mask(value: object, rule: MaskRule) -> str | None:
    """The documented rule, character by character."""
    if value is None:
        return None
    text = str(value)
    kept = rule.keep_first + rule.keep_last
    if len(text) <= kept:
        return rule.char * len(text)
    tail = text[len(text) - rule.keep_last :] if rule.keep_last else ""
    return text[: rule.keep_first] + rule.char * (len(text) - kept) + tail


def _random_column(rng: random.Random) -> pa.Array:
    alphabet = rng.choice(["0123456789- ", "0123456789-çé€"])
    values = [
        None
        if rng.random() < 0.2
        else "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 3, 16])))
        for _ in range(rng.randint(0, 30))
    ]
    column = pa.array(values, rng.choice([pa.string(), pa.large_string()]))
    if len(column) > 2 and rng.random() < 0.5:
        start = rng.randint(1, len(column) - 1)
        column = column.slice(start, rng.randint(0, len(column) - start))
    return column


def test_mask_matches_the_rule_on_random_columns() -> None:
    rng = random.Random(5)
    for _ in range(400):
        column = _random_column(rng)
        rule = MaskRule(
            column="c",
            line=1,
            keep_first=rng.choice([0, 2]),
            keep_last=rng.choice([0, 4]),
            char=rng.choice(["*", "#", "€"]),
        )

        masked = actions.mask_array(column, rule)

        masked.validate(full=True)
        assert masked.type == pa.string()
        assert masked.to_pylist() == [
            _reference_mask(value, rule) for value in column.to_pylist()
        ]


def test_mask_leaves_no_raw_byte_under_a_null_row() -> None:
    # A null row may still span bytes of the data buffer; they must not survive.
    data = b"4111111111111111SECRETVALUE5500000000000004"
    offsets = np.array([0, 16, 27, 43], dtype=np.int32)
    validity = np.packbits([True, False, True], bitorder="little")
    column = pa.Array.from_buffers(
        pa.string(),
        3,
        [pa.py_buffer(validity), pa.py_buffer(offsets), pa.py_buffer(data)],
        null_count=1,
    )

    masked = actions.mask_array(column, MaskRule(column="c", line=1, keep_last=4))

    assert masked.to_pylist() == ["************1111", None, "************0004"]
    written = b"".join(
        buffer.to_pybytes() for buffer in masked.buffers() if buffer is not None
    )
    # Not even the last four characters that a valid row would keep.
    assert b"SECRET" not in written
    assert b"ALUE" not in written


@pytest.mark.parametrize(("length", "prefix"), [(8, ""), (9, "u_"), (64, "é-")])
def test_hex_tokens_are_the_leading_hex_digits_of_the_hmac(
    length: int, prefix: str
) -> None:
    subkey = hashlib.sha256(b"test subkey").digest()
    messages = [f"value {n}".encode() for n in range(50)] + [b""]

    tokens = actions.hex_tokens(
        actions.KeyedHasher(subkey).digests(messages), length, prefix
    )

    tokens.validate(full=True)
    assert tokens.to_pylist() == [
        prefix + hmac.new(subkey, message, hashlib.sha256).hexdigest()[:length]
        for message in messages
    ]


@pytest.mark.parametrize("normalize", [(), ("trim", "lower")])
def test_hash_tokens_of_a_mostly_distinct_batch_hash_each_row_alike(
    normalize: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    subkey = hashlib.sha256(b"test subkey").digest()
    rule = HashRule(column="c", line=1, length=20, prefix="t_", normalize=normalize)
    values = [None if n % 97 == 0 else f" User{n}@Example.org" for n in range(4000)]
    repeats = [f"user{n % 10}@example.org" for n in range(4000)]
    hashed: list[int] = []
    real = actions.KeyedHasher._hmacs

    def counting(self: actions.KeyedHasher, messages: list[bytes]) -> list[bytes]:
        hashed.append(len(messages))
        return real(self, messages)

    monkeypatch.setattr(actions.KeyedHasher, "_hmacs", counting)
    monkeypatch.setattr(actions, "_NATIVE_ENABLED", False)  # the Python path
    hasher = actions.KeyedHasher(subkey)

    for column, expected_hashed in ((values, 4000), (repeats, 10)):
        array = pa.array(column)
        hashed.clear()
        tokens = actions.hash_tokens(array, rule, hasher)
        assert hashed == [expected_hashed]  # row by row, or each distinct once
        assert tokens.equals(actions.hash_array(array, rule, hasher)[0])
        assert tokens.null_count == array.null_count


def test_only_a_fail_closed_policy_needs_the_scan(key: AnonKey) -> None:
    strict = Anonymizer(parse_policy("columns:\n  email: hash\n"), key)
    lenient = Anonymizer(parse_policy("default: keep\ncolumns:\n  email: hash\n"), key)

    assert strict.fails_closed
    assert not lenient.fails_closed
