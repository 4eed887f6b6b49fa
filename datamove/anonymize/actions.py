"""The column actions, vectorised on Arrow arrays.

Each action takes one column (a ``pa.Array``) and returns the anonymized
column; nulls stay null. :func:`output_type` says what type an action turns
an input type into, or why it cannot apply. Only two steps loop in Python,
and only over the distinct values of a batch: the HMAC of ``hash`` and of
keyed ``noise`` (the standard library computes one HMAC per call). Everything
else runs in Arrow compute kernels or numpy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datamove.anonymize.policy import (
    ColumnRule,
    DropRule,
    GeneralizeRule,
    HashRule,
    KeepRule,
    MaskRule,
    NoiseRule,
    RedactRule,
)

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_PATTERN = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
_IPV4_REWRITE = {
    24: r"\1.\2.\3.0",
    16: r"\1.\2.0.0",
    8: r"\1.0.0.0",
}


class ActionTypeError(Exception):
    """An action cannot apply to a column's type; the text says why."""


class KeyedHasher:
    """HMAC-SHA256 of many short messages under one subkey.

    The inner and outer key pads are hashed once; each message then costs two
    copies of a prepared hash state (about 1 µs per message on one core).
    Instances hold key material: they are never logged, shown or pickled.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, subkey: bytes) -> None:
        block = subkey.ljust(64, b"\x00")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def digests(self, messages: Sequence[bytes]) -> np.ndarray:
        """The 32-byte HMACs of ``messages`` as an (n, 32) uint8 array."""
        inner_copy = self._inner.copy
        outer_copy = self._outer.copy
        out: list[bytes] = []
        append = out.append
        # One HMAC per distinct value of a batch: the one unavoidable Python loop.
        for message in messages:
            inner = inner_copy()
            inner.update(message)
            outer = outer_copy()
            outer.update(inner.digest())
            append(outer.digest())
        return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(len(out), 32)

    def __repr__(self) -> str:
        return "KeyedHasher(<secret>)"

    def __reduce__(self) -> Any:
        raise TypeError("a KeyedHasher holds key material and cannot be pickled")


def plain_type(data_type: pa.DataType) -> pa.DataType:
    """The value type of a dictionary type, or the type itself."""
    if pa.types.is_dictionary(data_type):
        value_type: pa.DataType = data_type.value_type
        return value_type
    return data_type


def plain(array: pa.Array) -> pa.Array:
    """``array`` with dictionary encoding removed."""
    if pa.types.is_dictionary(array.type):
        return array.cast(array.type.value_type)
    return array


def _is_text(data_type: pa.DataType) -> bool:
    return bool(pa.types.is_string(data_type) or pa.types.is_large_string(data_type))


def _is_temporal(data_type: pa.DataType) -> bool:
    return bool(pa.types.is_date(data_type) or pa.types.is_timestamp(data_type))


def _hashable(data_type: pa.DataType) -> bool:
    return (
        _is_text(data_type)
        or pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
        or pa.types.is_boolean(data_type)
        or _is_temporal(data_type)
        or pa.types.is_time(data_type)
    )


def output_type(rule: ColumnRule, data_type: pa.DataType) -> pa.DataType | None:
    """The type ``rule`` produces from ``data_type``; None for a dropped column.

    Raises:
        ActionTypeError: the action does not apply to this type; the message
            says which types it takes.
    """
    if isinstance(rule, DropRule):
        return None
    if isinstance(rule, KeepRule):
        return data_type
    base = plain_type(data_type)
    if isinstance(rule, HashRule):
        if not _hashable(base):
            raise ActionTypeError(
                "hash takes strings, numbers, booleans, dates and timestamps"
            )
        return pa.string()
    if isinstance(rule, MaskRule):
        if not (
            _is_text(base) or pa.types.is_integer(base) or pa.types.is_decimal(base)
        ):
            raise ActionTypeError("mask takes strings, integers and decimals")
        return pa.string()
    if isinstance(rule, RedactRule):
        return _redact_type(rule, base)
    if isinstance(rule, GeneralizeRule):
        return _generalize_type(rule, base)
    if isinstance(rule, NoiseRule):
        if not (pa.types.is_integer(base) or pa.types.is_floating(base)):
            raise ActionTypeError("noise takes integer and floating-point columns")
        return base
    raise ActionTypeError(f"no implementation for action {rule.action!r}")


def _redact_type(rule: RedactRule, base: pa.DataType) -> pa.DataType:
    if rule.value is None:
        return base
    try:
        pa.scalar(rule.value).cast(base)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise ActionTypeError(
            f"the redact value {rule.value!r} does not fit type {base}; "
            "use null or a value of that type"
        ) from None
    return base


def _generalize_type(rule: GeneralizeRule, base: pa.DataType) -> pa.DataType:
    if rule.to is not None:
        if _is_temporal(base):
            return base
        if _is_text(base):
            return pa.date32()
        raise ActionTypeError(
            "generalize 'to' takes dates, timestamps and date strings"
        )
    if rule.bin is not None:
        if pa.types.is_floating(base):
            return base
        if pa.types.is_integer(base):
            if not isinstance(rule.bin, int):
                raise ActionTypeError(
                    "generalize 'bin' on an integer column needs an integer bin"
                )
            return base
        raise ActionTypeError(
            "generalize 'bin' takes integer and floating-point columns"
        )
    if rule.prefix is not None:
        if _is_text(base) or pa.types.is_integer(base):
            return pa.string()
        raise ActionTypeError("generalize 'prefix' takes strings and integers")
    if not _is_text(base):
        raise ActionTypeError("generalize 'ipv4' takes strings holding IPv4 addresses")
    return pa.string()


def as_text(array: pa.Array) -> pa.Array:
    """``array`` as strings: text unchanged, anything else by Arrow's cast."""
    if _is_text(array.type):
        return array
    return pc.cast(array, pa.string())


def distinct(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(distinct values, indices into them) of ``array``; nulls stay in indices."""
    if pa.types.is_dictionary(array.type):
        return array.dictionary, array.indices
    encoded = pc.dictionary_encode(array)
    return encoded.dictionary, encoded.indices


def _normalize(text: pa.Array, steps: Sequence[str]) -> pa.Array:
    for step in steps:
        text = pc.utf8_trim_whitespace(text) if step == "trim" else pc.utf8_lower(text)
    return text


def _messages(text: pa.Array) -> list[bytes]:
    binary = pa.large_binary() if pa.types.is_large_string(text.type) else pa.binary()
    values: list[bytes] = text.fill_null("").cast(binary).to_pylist()
    return values


def _hex_tokens(digests: np.ndarray, length: int, prefix: str) -> pa.Array:
    """Prefixed hex strings of the first ``length`` hex digits of each digest."""
    count = digests.shape[0]
    hex_chars = np.empty((count, 64), dtype=np.uint8)
    hex_chars[:, 0::2] = _HEX_DIGITS[digests >> 4]
    hex_chars[:, 1::2] = _HEX_DIGITS[digests & 0x0F]
    head = np.frombuffer(prefix.encode("utf-8"), dtype=np.uint8)
    rows = np.hstack([np.broadcast_to(head, (count, head.size)), hex_chars[:, :length]])
    width = rows.shape[1]
    large = count * width >= 2**31
    offsets = np.arange(count + 1, dtype=np.int64 if large else np.int32) * width
    data = pa.py_buffer(np.ascontiguousarray(rows).tobytes())
    tokens = pa.Array.from_buffers(
        pa.large_string() if large else pa.string(),
        count,
        [None, pa.py_buffer(offsets.tobytes()), data],
    )
    return tokens.cast(pa.string()) if large else tokens


def hash_array(
    array: pa.Array, rule: HashRule, hasher: KeyedHasher
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Keyed pseudonyms for ``array``.

    Returns:
        (tokens for every row, the distinct raw values as text, their tokens);
        the last two feed the optional pseudonym map.
    """
    values, indices = distinct(array)
    raw = as_text(values)
    text = _normalize(raw, rule.normalize)
    tokens = _hex_tokens(hasher.digests(_messages(text)), rule.length, rule.prefix)
    if text.null_count:
        tokens = pc.if_else(pc.is_valid(text), tokens, pa.scalar(None, pa.string()))
    return pc.take(tokens, indices), raw, tokens


def mask_array(array: pa.Array, rule: MaskRule) -> pa.Array:
    """Mask all but the first ``keep_first`` and last ``keep_last`` characters."""
    text = as_text(plain(array))
    lengths = pc.utf8_length(text)
    kept = rule.keep_first + rule.keep_last
    hidden = pc.max_element_wise(pc.subtract(lengths, kept), 0, skip_nulls=False)
    parts = []
    if rule.keep_first:
        parts.append(pc.utf8_slice_codeunits(text, 0, rule.keep_first))
    parts.append(pc.binary_repeat(pa.scalar(rule.char), hidden))
    if rule.keep_last:
        parts.append(pc.utf8_slice_codeunits(text, -rule.keep_last))
    masked = pc.binary_join_element_wise(*parts, "") if len(parts) > 1 else parts[0]
    if not kept:
        return masked.cast(pa.string())
    # A value no longer than what is kept would pass whole: mask it all.
    everything = pc.binary_repeat(pa.scalar(rule.char), lengths)
    return pc.if_else(pc.greater(lengths, kept), masked, everything).cast(pa.string())


def redact_array(array: pa.Array, rule: RedactRule) -> pa.Array:
    """Replace every non-null value with the rule's constant (or null)."""
    value_type = plain_type(array.type)
    if rule.value is None:
        return pa.nulls(len(array), value_type)
    constant = pa.scalar(rule.value).cast(value_type)
    return pc.if_else(pc.is_valid(array), constant, pa.scalar(None, value_type))


def generalize_array(array: pa.Array, rule: GeneralizeRule) -> pa.Array:
    """Coarsen values: dates to a unit, numbers to bins, strings to a prefix."""
    values = plain(array)
    if rule.to is not None:
        if _is_text(values.type):
            parsed = pc.strptime(
                values, format=rule.format, unit="s", error_is_null=True
            )
            values = parsed.cast(pa.date32())
        return pc.floor_temporal(values, unit=rule.to)
    if rule.bin is not None:
        return _bin(values, rule.bin)
    if rule.prefix is not None:
        return pc.utf8_slice_codeunits(as_text(values), 0, rule.prefix).cast(
            pa.string()
        )
    assert rule.ipv4 is not None
    text = pc.utf8_trim_whitespace(values)
    rewritten = pc.replace_substring_regex(
        text, r"^(\d+)\.(\d+)\.(\d+)\.(\d+)$", _IPV4_REWRITE[rule.ipv4]
    )
    valid = pc.match_substring_regex(text, IPV4_PATTERN)
    return pc.if_else(valid, rewritten, pa.scalar(None, text.type)).cast(pa.string())


def _bin(values: pa.Array, width: float) -> pa.Array:
    if pa.types.is_floating(values.type):
        floored = pc.multiply(
            pc.floor(pc.divide(values.cast(pa.float64()), width)), width
        )
        return floored.cast(values.type, safe=False)
    data = values.fill_null(0).to_numpy()
    step = data.dtype.type(width)
    binned = (data // step) * step
    # Near a signed type's minimum the lower bound can wrap: pin it there.
    wrapped = binned > data
    if wrapped.any():
        binned[wrapped] = np.iinfo(data.dtype).min
    mask = (
        values.is_null().to_numpy(zero_copy_only=False) if values.null_count else None
    )
    return pa.array(binned, type=values.type, mask=mask)


def noise_offsets(
    array: pa.Array,
    rule: NoiseRule,
    *,
    hasher: KeyedHasher | None,
    rng: np.random.Generator | None,
) -> pa.Array:
    """Uniform offsets in [-scale, +scale], one per row (null for null rows).

    With ``seed: keyed`` an offset is a function of the key, the column and
    the value (``hasher``); otherwise it is drawn from ``rng``.
    """
    if rule.seed == "keyed":
        assert hasher is not None
        values, indices = distinct(array)
        digests = hasher.digests(_messages(as_text(values)))
        words = digests[:, :8].copy().view(">u8").reshape(-1).astype(np.uint64)
        unit = (words >> np.uint64(11)).astype(np.float64) * 2.0**-53
        unit_per_row = pc.take(pa.array(unit), indices)
    else:
        assert rng is not None
        unit_per_row = pa.array(rng.random(len(array)))
    return pc.multiply(pc.subtract(pc.multiply(unit_per_row, 2.0), 1.0), rule.scale)


def add_noise(array: pa.Array, offsets: pa.Array) -> pa.Array:
    """``array`` plus ``offsets``, rounded and clipped back into integer types."""
    values = plain(array)
    noisy = pc.add(values.cast(pa.float64()), offsets)
    if pa.types.is_floating(values.type):
        return noisy.cast(values.type, safe=False)
    kind = "u" if pa.types.is_unsigned_integer(values.type) else "i"
    info = np.iinfo(np.dtype(f"{kind}{values.type.bit_width // 8}"))
    highest = float(info.max)
    if int(highest) > info.max:
        highest = float(np.nextafter(highest, 0.0))
    lowest = pc.max_element_wise(pc.round(noisy), float(info.min), skip_nulls=False)
    bounded = pc.min_element_wise(lowest, highest, skip_nulls=False)
    return bounded.cast(values.type)
