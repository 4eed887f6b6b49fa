"""The column actions, vectorised on Arrow arrays.

Each action takes one column (a ``pa.Array``) and returns the anonymized
column; nulls stay null. :func:`output_type` says what type an action turns
an input type into, or why it cannot apply. The HMAC of ``hash`` and of
keyed ``noise`` runs in C over the array's buffers when the optional
accelerator is built (:func:`native_hashing`); without it, it is the one
Python loop (the standard library computes one HMAC per call), over the
distinct values of a batch, and can skip values hashed before in the same
process (:class:`DigestMemo`). Everything else runs in Arrow compute kernels
or numpy; ``mask`` works on the bytes of ASCII text directly.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from itertools import compress
from operator import not_
from typing import Any, cast

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

# The two hex digits of each byte value, as one little-endian uint16 each.
_HEX_PAIRS = np.array(
    [int.from_bytes(f"{byte:02x}".encode(), "little") for byte in range(256)],
    dtype="<u2",
)
# hash deduplicates a batch unless a sample of this many rows holds at least
# this share of distinct values; then the HMACs deduplication saves cost less
# than deduplicating (about 10% repeats is the break-even).
_DEDUP_SAMPLE = 1024
_DEDUP_SKIP_SHARE = 0.99
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_PATTERN = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
_IPV4_REWRITE = {
    24: r"\1.\2.\3.0",
    16: r"\1.\2.0.0",
    8: r"\1.0.0.0",
}


_NATIVE: Any
try:
    _NATIVE = importlib.import_module("datamove.anonymize._native")
except ImportError:  # built only where a compiler and OpenSSL headers exist
    _NATIVE = None
# DATAMOVE_NATIVE=0 turns the accelerator off (to compare the two paths).
_NATIVE_ENABLED = os.environ.get("DATAMOVE_NATIVE", "1") != "0"


def native_hashing() -> bool:
    """Whether ``hash`` and keyed ``noise`` run in the C accelerator."""
    return _NATIVE is not None and _NATIVE_ENABLED


MEMO_BYTES = 32 << 20
"""Upper bound on what the memos of one process hold, estimated."""
MEMO_WINDOW = 1 << 14
"""Values between two checks of a memo's hit rate."""
MEMO_MIN_HIT_RATE = 0.5
"""Below this share of hits a memo costs more than it saves, and pauses."""
MEMO_MAX_PAUSE = 1 << 22
"""The longest a memo stands aside before it tries again, in values."""
MEMO_SUBKEYS = 8
"""At most this many subkeys keep a memo in one process."""
# Bytes a dict entry of bytes -> 32-byte digest costs beyond the message's own.
_ENTRY_OVERHEAD = 140
_MEMOS: OrderedDict[bytes, DigestMemo] = OrderedDict()
_MEMOS_LOCK = threading.Lock()


class ActionTypeError(Exception):
    """An action cannot apply to a column's type; the text says why."""


class KeyedHasher:
    """HMAC-SHA256 of many short messages under one subkey.

    :meth:`digest_text` hashes a whole Arrow array in C when the optional
    accelerator ``datamove.anonymize._native`` is built (about 0.15 µs per
    value on one core, OpenSSL's SHA-256). Without it, or for
    :meth:`digests`, the inner and outer key pads are hashed once and each
    message costs two copies of a prepared ``hashlib`` state (about 0.7 µs
    per message); with ``memo``, that path goes through this process's
    :class:`DigestMemo` for the subkey, so a value hashed by an earlier
    batch, unit or run in the same process is not hashed again. Both paths
    give the same digests. Instances hold key material: they are never
    logged, shown or pickled.
    """

    __slots__ = ("_inner", "_memo_identity", "_outer", "_subkey")

    def __init__(self, subkey: bytes, *, memo: bool = False) -> None:
        if len(subkey) > 64:
            raise ValueError("a subkey is at most 64 bytes")
        block = subkey.ljust(64, b"\x00")
        self._subkey = subkey
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))
        self._memo_identity = _memo_identity(subkey) if memo else None

    def digest_text(self, text: pa.Array) -> np.ndarray:
        """The HMACs of the UTF-8 bytes of each value of a text array, (n, 32).

        The digest in a null row means nothing: callers put the nulls back.
        """
        native = _NATIVE if _NATIVE_ENABLED else None
        data_type = text.type
        wide = pa.types.is_large_string(data_type) or pa.types.is_large_binary(
            data_type
        )
        narrow = pa.types.is_string(data_type) or pa.types.is_binary(data_type)
        if native is None or not (wide or narrow):
            return self.digests(messages(text))
        _, offsets, data = text.buffers()
        found = native.hmac_sha256(
            self._subkey,
            offsets
            if offsets is not None
            else bytes(8 * (text.offset + len(text) + 1)),
            data if data is not None else b"",
            text.offset,
            len(text),
            wide,
        )
        return np.frombuffer(found, dtype=np.uint8).reshape(len(text), 32)

    def digests(self, messages: Sequence[bytes]) -> np.ndarray:
        """The 32-byte HMACs of ``messages`` as an (n, 32) uint8 array."""
        if self._memo_identity is None:
            found = self._hmacs(messages)
        else:
            found = _memo(self._memo_identity).digests(messages, self._hmacs)
        return np.frombuffer(b"".join(found), dtype=np.uint8).reshape(len(found), 32)

    def _hmacs(self, messages: Sequence[bytes]) -> list[bytes]:
        inner_copy = self._inner.copy
        outer_copy = self._outer.copy
        out: list[bytes] = []
        append = out.append
        # One HMAC per message: the one unavoidable Python loop.
        for message in messages:
            inner = inner_copy()
            inner.update(message)
            outer = outer_copy()
            outer.update(inner.digest())
            append(outer.digest())
        return out

    def __repr__(self) -> str:
        return "KeyedHasher(<secret>)"

    def __reduce__(self) -> Any:
        raise TypeError("a KeyedHasher holds key material and cannot be pickled")


class DigestMemo:
    """Message -> HMAC digest under one subkey, for every batch of a process.

    A memo belongs to one subkey (key and domain): it holds digests, not
    tokens, so a rule's ``length`` and ``prefix`` (applied to the digest) and
    ``normalize`` (applied to the message) cannot make an entry wrong. Memos
    live in this process only: they are found by a digest of the subkey, never
    pickled with a job, and together hold at most :data:`MEMO_BYTES` (a memo
    that would pass it starts over, then the least recently used others are
    emptied).

    The memo costs a lookup and an insert per value, so it only pays where
    values come back across batches. It checks its hit rate every
    :data:`MEMO_WINDOW` values; below :data:`MEMO_MIN_HIT_RATE` it stands
    aside for a while (eight times longer after each failed check, up to
    :data:`MEMO_MAX_PAUSE` values), so that a column of mostly unique values
    costs little more than without it. Its entries hold raw values: like the
    batches themselves, they stay in the worker's memory, on-prem.
    """

    __slots__ = ("_lock", "entries", "hits", "lookups", "pause", "paused", "size")

    def __init__(self) -> None:
        self.entries: dict[bytes, bytes] = {}
        self.size = 0  # estimated bytes held, see _ENTRY_OVERHEAD
        self.hits = 0
        self.lookups = 0
        self.paused = 0  # values still to hash without the memo
        self.pause = MEMO_WINDOW
        self._lock = threading.Lock()

    def digests(
        self,
        messages: Sequence[bytes],
        compute: Callable[[Sequence[bytes]], list[bytes]],
    ) -> list[bytes]:
        """The digests of ``messages``, computing only those the memo lacks."""
        with self._lock:
            if self.paused > 0:
                self.paused -= len(messages)
                return compute(messages)
            get = self.entries.get
            found = [get(message) for message in messages]
            # The positions of None, found at C speed (a digest is never empty).
            missing = list(compress(range(len(found)), map(not_, found)))
            if missing:
                unknown = [messages[at] for at in missing]
                fresh = compute(unknown)
                for at, digest in zip(missing, fresh, strict=True):
                    found[at] = digest
                self._add(unknown, fresh)
            self._count(len(messages), len(messages) - len(missing))
            return cast(list[bytes], found)  # every None was filled in

    def clear(self) -> None:
        """Forget every entry (hit-rate statistics are kept)."""
        self.entries = {}
        self.size = 0

    def _add(self, messages: list[bytes], digests: list[bytes]) -> None:
        size = sum(map(len, messages)) + _ENTRY_OVERHEAD * len(messages)
        if size > MEMO_BYTES:
            return
        if self.size + size + _bytes_besides(self) > MEMO_BYTES:
            # Start this memo over; empty others only if that is not enough.
            self.clear()
            _make_room(size, keep=self)
        self.entries.update(zip(messages, digests, strict=True))
        self.size += size

    def _count(self, lookups: int, hits: int) -> None:
        self.lookups += lookups
        self.hits += hits
        if self.lookups < MEMO_WINDOW:
            return
        if self.hits < MEMO_MIN_HIT_RATE * self.lookups:
            # Entries stay: the next try starts warm, which a column whose
            # values come back slowly needs to show its hit rate.
            self.paused = self.pause
            self.pause = min(self.pause * 8, MEMO_MAX_PAUSE)
        else:
            self.pause = MEMO_WINDOW
        self.hits = self.lookups = 0


def _memo_identity(subkey: bytes) -> bytes:
    """Names the memo of ``subkey`` without holding the subkey."""
    return hashlib.sha256(b"datamove digest memo\x00" + subkey).digest()


def _memo(identity: bytes) -> DigestMemo:
    """This process's memo named ``identity``, made on first use."""
    with _MEMOS_LOCK:
        memo = _MEMOS.get(identity)
        if memo is None:
            memo = _MEMOS[identity] = DigestMemo()
            while len(_MEMOS) > MEMO_SUBKEYS:
                _MEMOS.popitem(last=False)[1].clear()
        _MEMOS.move_to_end(identity)
        return memo


def _bytes_besides(memo: DigestMemo) -> int:
    return sum(other.size for other in list(_MEMOS.values()) if other is not memo)


def _make_room(size: int, keep: DigestMemo) -> None:
    """Empty the least recently used other memos until ``size`` more bytes fit."""
    for memo in list(_MEMOS.values()):
        if keep.size + size + _bytes_besides(keep) <= MEMO_BYTES:
            return
        if memo is not keep:
            memo.clear()


def memo_bytes() -> int:
    """What the memos of this process hold, estimated in bytes."""
    return sum(memo.size for memo in list(_MEMOS.values()))


def clear_digest_memo() -> None:
    """Forget every memoized digest of this process (and the raw values)."""
    with _MEMOS_LOCK:
        for memo in _MEMOS.values():
            memo.clear()
        _MEMOS.clear()


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


def normalize_text(text: pa.Array, steps: Sequence[str]) -> pa.Array:
    """``text`` after the rule's ``normalize`` steps, in order."""
    for step in steps:
        text = pc.utf8_trim_whitespace(text) if step == "trim" else pc.utf8_lower(text)
    return text


def messages(text: pa.Array) -> list[bytes]:
    """The UTF-8 bytes of each value (a null gives ``b""``), as HMAC input."""
    binary = pa.large_binary() if pa.types.is_large_string(text.type) else pa.binary()
    values: list[bytes] = text.fill_null("").cast(binary).to_pylist()
    return values


def hex_tokens(digests: np.ndarray, length: int, prefix: str) -> pa.Array:
    """Prefixed hex strings of the first ``length`` hex digits of each digest."""
    count = digests.shape[0]
    pairs = (length + 1) // 2
    # One table lookup turns each byte into its two hex digits.
    hex_chars = _HEX_PAIRS[digests[:, :pairs]].view(np.uint8)
    head = prefix.encode("utf-8")
    width = len(head) + length
    if head or length != 2 * pairs:
        rows = np.empty((count, width), dtype=np.uint8)
        rows[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
        rows[:, len(head) :] = hex_chars[:, :length]
    else:
        rows = hex_chars
    large = count * width >= 2**31
    offsets = np.arange(count + 1, dtype=np.int64 if large else np.int32) * width
    tokens = pa.Array.from_buffers(
        pa.large_string() if large else pa.string(),
        count,
        [None, pa.py_buffer(offsets), pa.py_buffer(rows)],
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
    text = normalize_text(raw, rule.normalize)
    tokens = hex_tokens(hasher.digest_text(text), rule.length, rule.prefix)
    if text.null_count:
        tokens = pc.if_else(pc.is_valid(text), tokens, pa.scalar(None, pa.string()))
    return pc.take(tokens, indices), raw, tokens


def hash_tokens(array: pa.Array, rule: HashRule, hasher: KeyedHasher) -> pa.Array:
    """The tokens of :func:`hash_array` alone.

    In C every row is hashed: an HMAC there costs less than deduplicating.
    In Python each distinct value is hashed once, except in a batch of almost
    only distinct values (judged on a sample), where each row is hashed:
    deduplicating would cost more there than the few HMACs it saves.
    """
    if pa.types.is_dictionary(array.type) or not (
        native_hashing() or _mostly_distinct(array)
    ):
        return hash_array(array, rule, hasher)[0]
    text = normalize_text(as_text(array), rule.normalize)
    tokens = hex_tokens(hasher.digest_text(text), rule.length, rule.prefix)
    if text.null_count:
        tokens = pc.if_else(pc.is_valid(text), tokens, pa.scalar(None, pa.string()))
    return tokens


def _mostly_distinct(array: pa.Array) -> bool:
    count = len(array)
    if count < 2 * _DEDUP_SAMPLE:
        return False
    step = count // _DEDUP_SAMPLE
    sample = array.take(pa.array(np.arange(0, step * _DEDUP_SAMPLE, step)))
    distinct_count: int = pc.count_distinct(sample, mode="all").as_py()
    return distinct_count >= _DEDUP_SKIP_SHARE * _DEDUP_SAMPLE


def mask_array(array: pa.Array, rule: MaskRule) -> pa.Array:
    """Mask all but the first ``keep_first`` and last ``keep_last`` characters."""
    return mask_text(as_text(plain(array)), rule)


def mask_text(text: pa.Array, rule: MaskRule) -> pa.Array:
    """``mask_array`` of a string column."""
    masked = _mask_ascii(text, rule)
    if masked is not None:
        return masked
    lengths = pc.utf8_length(text)
    kept = rule.keep_first + rule.keep_last
    hidden = pc.max_element_wise(pc.subtract(lengths, kept), 0, skip_nulls=False)
    parts = []
    if rule.keep_first:
        parts.append(pc.utf8_slice_codeunits(text, 0, rule.keep_first))
    char = pa.scalar(rule.char, text.type)
    parts.append(pc.binary_repeat(char, hidden))
    if rule.keep_last:
        parts.append(pc.utf8_slice_codeunits(text, -rule.keep_last))
    if len(parts) > 1:
        masked = pc.binary_join_element_wise(*parts, pa.scalar("", text.type))
    else:
        masked = parts[0]
    if not kept:
        return masked.cast(pa.string())
    # A value no longer than what is kept would pass whole: mask it all.
    everything = pc.binary_repeat(char, lengths)
    return pc.if_else(pc.greater(lengths, kept), masked, everything).cast(pa.string())


def _mask_ascii(text: pa.Array, rule: MaskRule) -> pa.Array | None:
    """``mask_text`` for ASCII text and an ASCII ``char``, on the bytes; else None.

    In ASCII a character is a byte, so masking overwrites bytes in a copy of
    the data buffer and keeps the offsets. The bytes under null rows are
    masked too, so no raw byte survives anywhere in the output buffers.
    """
    char = rule.char.encode("utf-8")
    if len(char) != 1 or char[0] >= 0x80:
        return None
    count = len(text)
    if count == 0:
        return pa.array([], pa.string())
    offset_type = np.int64 if pa.types.is_large_string(text.type) else np.int32
    _, offsets_buffer, data_buffer = text.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[
        text.offset : text.offset + count + 1
    ].astype(np.int64)
    first, total = int(offsets[0]), int(offsets[-1] - offsets[0])
    if total >= 2**31:
        return None
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8)[first : first + total]
        if total
        else np.empty(0, dtype=np.uint8)
    )
    if total and int(data.max()) >= 0x80:
        return None
    starts, ends = offsets[:-1] - first, offsets[1:] - first
    # Each row masks [start + keep_first, end - keep_last); a row no longer
    # than what is kept, or a null row, masks all of [start, end).
    whole = (ends - starts) <= rule.keep_first + rule.keep_last
    valid = text.is_valid().to_numpy(zero_copy_only=False) if text.null_count else None
    if valid is not None:
        whole |= ~valid
    begin = np.where(whole, starts, starts + rule.keep_first)
    stop = np.where(whole, ends, ends - rule.keep_last)
    # +1 where a masked run begins and -1 where it stops; the running sum is
    # positive exactly on masked bytes.
    edges = np.bincount(begin, minlength=total + 1) - np.bincount(
        stop, minlength=total + 1
    )
    hidden = np.cumsum(edges[:total]) > 0
    masked = np.where(hidden, np.uint8(char[0]), data)
    validity = (
        pa.py_buffer(np.packbits(valid, bitorder="little"))
        if valid is not None
        else None
    )
    return pa.Array.from_buffers(
        pa.string(),
        count,
        [
            validity,
            pa.py_buffer((offsets - first).astype(np.int32)),
            pa.py_buffer(masked),
        ],
        null_count=text.null_count,
    )


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
        digests = hasher.digest_text(as_text(values))
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
