"""The C accelerator of the keyed hash gives exactly the pure-Python digests."""

from __future__ import annotations

import hashlib
import hmac
import os
import random

import numpy as np
import pyarrow as pa
import pytest

from datamove.anonymize import AnonKey, Anonymizer, HashRule, actions, parse_policy

SUBKEY = hashlib.sha256(b"native test subkey").digest()


@pytest.fixture
def native() -> object:
    if actions._NATIVE is None:
        if os.environ.get("DATAMOVE_REQUIRE_NATIVE") == "1":
            pytest.fail(
                "DATAMOVE_REQUIRE_NATIVE=1 but datamove.anonymize._native was not "
                "built (needs gcc and OpenSSL headers: apt-get install libssl-dev)"
            )
        pytest.skip("the C accelerator is not built here")
    return actions._NATIVE


def _values(rng: random.Random, count: int) -> list[str | None]:
    """Text of lengths around SHA-256's block edges, some non-ASCII, some null."""
    lengths = [0, 1, 31, 32, 55, 56, 63, 64, 65, 119, 120, 300]
    alphabet = "abcXYZ019@.-_ çé€😀"
    return [
        None
        if rng.random() < 0.1
        else "".join(rng.choice(alphabet) for _ in range(rng.choice(lengths)))
        for _ in range(count)
    ]


def _reference(key: bytes, values: list[str | None]) -> np.ndarray:
    digests = b"".join(
        hmac.digest(key, (value or "").encode(), "sha256") for value in values
    )
    return np.frombuffer(digests, dtype=np.uint8).reshape(len(values), 32)


@pytest.mark.parametrize(
    "data_type", [pa.string(), pa.large_string(), pa.binary(), pa.large_binary()]
)
def test_digests_equal_hmac_for_every_array_layout(
    native: object, data_type: pa.DataType
) -> None:
    values = _values(random.Random(7), 1500)
    encoded = (
        values
        if pa.types.is_string(data_type) or pa.types.is_large_string(data_type)
        else [None if value is None else value.encode() for value in values]
    )
    array = pa.array(encoded, type=data_type)
    hasher = actions.KeyedHasher(SUBKEY)

    for piece in (array, array.slice(0, 0), array.slice(333), array.slice(5, 700)):
        start, stop = piece.offset, piece.offset + len(piece)
        expected = _reference(SUBKEY, values[start:stop])
        assert np.array_equal(hasher.digest_text(piece), expected)
        # The pure-Python path gives the same digests.
        assert np.array_equal(hasher.digests(actions.messages(piece)), expected)


def test_an_array_of_only_empty_values_has_no_data_buffer(native: object) -> None:
    array = pa.array(["", None, ""])
    expected = _reference(SUBKEY, ["", "", ""])
    assert np.array_equal(actions.KeyedHasher(SUBKEY).digest_text(array), expected)


@pytest.mark.parametrize("key_size", [1, 16, 32, 64])
def test_any_key_up_to_one_block(native: object, key_size: int) -> None:
    key = bytes(range(key_size))
    values = _values(random.Random(key_size), 200)
    got = actions.KeyedHasher(key).digest_text(pa.array(values))
    assert np.array_equal(got, _reference(key, values))


def test_offsets_outside_the_data_are_refused_without_naming_the_key(
    native: object,
) -> None:
    offsets = np.array([0, 4, 400], dtype=np.int32).tobytes()
    with pytest.raises(ValueError, match="value 1") as raised:
        native.hmac_sha256(SUBKEY, offsets, b"abcdefgh", 0, 2, False)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="too short"):
        native.hmac_sha256(SUBKEY, offsets, b"abcdefgh", 1, 5, False)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="longer than one block"):
        native.hmac_sha256(b"k" * 65, offsets, b"abcdefgh", 0, 1, False)  # type: ignore[attr-defined]
    assert SUBKEY.hex() not in str(raised.value)
    assert repr(SUBKEY) not in str(raised.value)


def test_hash_tokens_match_the_python_path(
    native: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    distinct = _values(rng, 3000)
    repeated = [rng.choice(distinct[:20]) for _ in range(3000)]
    rule = HashRule(column="c", line=1, length=24, prefix="p_", normalize=("trim",))
    hasher = actions.KeyedHasher(SUBKEY)
    for column in (distinct, repeated):
        array = pa.array(column)
        fast = actions.hash_tokens(array, rule, hasher)
        monkeypatch.setattr(actions, "_NATIVE_ENABLED", False)
        slow = actions.hash_tokens(array, rule, hasher)
        monkeypatch.setattr(actions, "_NATIVE_ENABLED", True)
        assert fast.equals(slow)
        assert fast.null_count == array.null_count


def test_a_sync_policy_gives_the_same_columns_either_way(
    native: object, key: AnonKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = parse_policy(
        "default: keep\n"
        "columns:\n"
        "  email: {action: hash, length: 16, normalize: [trim, lower]}\n"
        "  account: hash\n"
        "  amount: {action: noise, scale: 5, seed: keyed}\n"
    )
    rng = random.Random(11)
    batch = pa.record_batch(
        {
            "email": [f" User{rng.randrange(500)}@Example.org " for _ in range(2000)],
            "account": pa.array(
                [f"{rng.randrange(10**8):08d}" for _ in range(2000)], pa.large_string()
            ),
            "amount": [rng.randrange(-1000, 1000) for _ in range(2000)],
        }
    )
    fast = Anonymizer(policy, key).apply(batch, stream="s/0")
    monkeypatch.setattr(actions, "_NATIVE_ENABLED", False)
    slow = Anonymizer(policy, key, memo=False).apply(batch, stream="s/0")
    assert fast.equals(slow)
