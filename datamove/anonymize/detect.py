"""Find columns holding personal data, by name and by content.

:func:`scan_table` samples rows (uniformly, across every batch it is given)
and tests each column's values against validators for emails, phone numbers,
payment card numbers (Luhn check), US social security numbers, IBANs (mod-97
check), IPv4 and IPv6 addresses, and dates of birth. A column is flagged when
enough of its non-empty values match one type: :data:`MIN_SHARE` of them, or
only :data:`MIN_SHARE_NAMED` when the column's name also suggests the type.

Detection looks at whole values (surrounding spaces ignored), not at personal
data embedded in free text. Findings hold names and counts only, never a
sampled value, so they can go into reports and logs.

All validators run as Arrow compute kernels or numpy over the sample; none
loops over rows in Python.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from datamove.anonymize.actions import IPV4_PATTERN

PII_TYPES = (
    "email",
    "credit_card",
    "iban",
    "ssn",
    "ipv4",
    "ipv6",
    "phone",
    "date_of_birth",
)
MIN_SHARE = 0.6
MIN_SHARE_NAMED = 0.2
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y")

SUGGESTIONS: Mapping[str, Mapping[str, Any]] = {
    "email": {"action": "hash", "normalize": ["trim", "lower"]},
    "phone": {"action": "hash", "normalize": ["trim"]},
    "credit_card": {"action": "mask", "keep_last": 4},
    "ssn": {"action": "hash", "normalize": ["trim"]},
    "iban": {"action": "hash", "normalize": ["trim"]},
    "ipv4": {"action": "generalize", "ipv4": 24},
    "ipv6": {"action": "hash", "normalize": ["trim", "lower"]},
    "date_of_birth": {"action": "generalize", "to": "year"},
}

_NAME_HINTS: Mapping[str, tuple[frozenset[str], tuple[str, ...]]] = {
    # type: (whole name tokens, substrings of the joined lower-case name)
    "email": (frozenset({"email", "mail", "emailaddress"}), ("email",)),
    "phone": (
        frozenset({"phone", "tel", "telephone", "mobile", "cell", "fax", "msisdn"}),
        ("phone",),
    ),
    "credit_card": (
        frozenset({"card", "cc", "pan", "ccnum", "ccn"}),
        ("creditcard", "cardnumber", "cardno", "ccnumber"),
    ),
    "ssn": (frozenset({"ssn", "sin"}), ("socialsecurity",)),
    "iban": (frozenset({"iban"}), ("iban",)),
    "ipv4": (frozenset({"ip", "ipv4", "ipaddr"}), ("ipaddress", "ipv4")),
    "ipv6": (frozenset({"ip", "ipv6", "ipaddr"}), ("ipaddress", "ipv6")),
    "date_of_birth": (
        frozenset({"dob", "birth", "birthday", "birthdate", "born"}),
        ("birth",),
    ),
}

_EMAIL = r"^[A-Za-z0-9._%+'\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}$"
_SSN_DASHED = r"^[0-9]{3}-[0-9]{2}-[0-9]{4}$"
_SSN_OTHER = r"^[0-9]{3} ?[0-9]{2} ?[0-9]{4}$"
_SSN_INVALID = r"^(000|666|9)|^[0-9]{3}[- ]?00|0000$"
_CARD = r"^[0-6][0-9]([ \-]?[0-9]){10,17}$"
_IBAN = r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = (
    "^("
    + "|".join(
        [
            f"({_H}:){{7}}{_H}",
            f"({_H}:){{1,7}}:",
            f"({_H}:){{1,6}}:{_H}",
            f"({_H}:){{1,5}}(:{_H}){{1,2}}",
            f"({_H}:){{1,4}}(:{_H}){{1,3}}",
            f"({_H}:){{1,3}}(:{_H}){{1,4}}",
            f"({_H}:){{1,2}}(:{_H}){{1,5}}",
            f"{_H}:(:{_H}){{1,6}}",
            f":((:{_H}){{1,7}}|:)",
        ]
    )
    + ")$"
)
_PHONE = r"(?i)^(\+|00)?[0-9(][0-9 ().\-]{5,22}[0-9]( ?(x|ext\.?|#) ?[0-9]{1,6})?$"
_PHONE_EXTENSION = r"(?i) ?(x|ext\.?|#) ?[0-9]{1,6}$"
_PHONE_SEPARATED = r"[ ().\-+]"
_NOT_PHONE = (
    r"^[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}$"  # dates
    r"|^[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{2,4}$"
    r"|^[0-9]{5}-[0-9]{4}$"  # ZIP+4
    r"|^-?[0-9]+\.[0-9]+$"  # decimals
    r"|[^0-9][0-9]$"  # a last group of one digit (ISBNs, codes)
)


@dataclass(frozen=True)
class ColumnFinding:
    """One column that appears to hold personal data of ``pii_type``.

    ``share`` is ``matched / sampled`` over the column's non-empty sampled
    values; ``name_hint`` says whether the column name suggests the type;
    ``suggestion`` is the policy rule ``suggest_policy`` writes for it.
    """

    column: str
    pii_type: str
    share: float
    matched: int
    sampled: int
    name_hint: bool
    suggested_action: str
    suggestion: Mapping[str, Any]

    def describe(self) -> str:
        """E.g. ``email, 97% of 1,000 sampled values, name matches``."""
        text = f"{self.pii_type}, {self.share:.0%} of {self.sampled:,} sampled values"
        return text + (", name matches" if self.name_hint else "")

    def to_dict(self) -> dict[str, Any]:
        """The finding as plain JSON-ready values."""
        data = asdict(self)
        data["suggestion"] = dict(self.suggestion)
        return data


def scan_table(
    data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch],
    *,
    sample_rows: int = 10_000,
    seed: int = 0,
    min_share: float = MIN_SHARE,
    min_share_named: float = MIN_SHARE_NAMED,
    today: datetime.date | None = None,
) -> list[ColumnFinding]:
    """Detect personal data in the columns of ``data``.

    Args:
        data: a table, a batch, or batches (e.g. from a dataset scanner); all
            batches are read, and ``sample_rows`` rows drawn uniformly.
        sample_rows: how many rows to examine.
        seed: seeds the sample, so a scan is repeatable.
        min_share: share of matching values that flags a column.
        min_share_named: the share that suffices when the name suggests the
            type.
        today: the reference date for ages of dates of birth.

    Returns:
        One finding per flagged column, in column order.

    Raises:
        ValueError: ``sample_rows`` is not positive.
    """
    if sample_rows < 1:
        raise ValueError(f"sample_rows must be positive, got {sample_rows}")
    sample = _sample(data, sample_rows, seed)
    reference = today or datetime.date.today()
    thresholds = (min_share, min_share_named)
    findings: list[ColumnFinding] = []
    for name, column in zip(sample.column_names, sample.columns, strict=True):
        finding = _scan_column(name, column.combine_chunks(), reference, thresholds)
        if finding is not None:
            findings.append(finding)
    return findings


def flagged_columns(findings: Iterable[ColumnFinding]) -> dict[str, str]:
    """Column name to description, as ``Anonymizer.check`` takes them."""
    return {finding.column: finding.describe() for finding in findings}


def suggest_policy(findings: Sequence[ColumnFinding], *, default: str = "fail") -> str:
    """A policy file (YAML text) with a suggested rule per finding.

    Dates of birth are listed as quasi-identifiers. Every line carries what
    was found as a comment; the text parses with ``parse_policy``.
    """
    quasi = [f.column for f in findings if f.pii_type == "date_of_birth"]
    lines = [
        "# Policy suggested by `datamove scan`. Review every entry: detection",
        "# samples values and can miss a column or flag the wrong one.",
        "version: 1",
        f"default: {default}",
        f"quasi_identifiers: {_flow(quasi)}",
        "k: 5",
    ]
    if not findings:
        lines.append("columns: {}  # no personal data found")
        return "\n".join(lines) + "\n"
    lines.append("columns:")
    for finding in findings:
        lines.append(
            f"  {_flow(finding.column)}: {_flow(dict(finding.suggestion))}"
            f"  # {finding.describe()}"
        )
    return "\n".join(lines) + "\n"


def match_values(
    values: pa.Array, pii_type: str, *, named: bool = False
) -> pa.BooleanArray:
    """Which values look like ``pii_type`` (null where the value is null).

    ``named`` relaxes the format where the column name already suggests the
    type: bare digit strings then count as phone numbers and SSNs. Dates of
    birth match any parseable date here; the age test is per column.

    Raises:
        ValueError: ``pii_type`` is not one of :data:`PII_TYPES`.
    """
    text = pc.utf8_trim_whitespace(_as_text(values))
    if pii_type == "email":
        return pc.match_substring_regex(text, _EMAIL)
    if pii_type == "ssn":
        shaped = pc.match_substring_regex(text, _SSN_OTHER if named else _SSN_DASHED)
        return pc.and_(shaped, pc.invert(pc.match_substring_regex(text, _SSN_INVALID)))
    if pii_type == "credit_card":
        return _luhn_valid(text)
    if pii_type == "iban":
        return _iban_valid(text)
    if pii_type == "ipv4":
        return pc.match_substring_regex(text, IPV4_PATTERN)
    if pii_type == "ipv6":
        return pc.match_substring_regex(text, _IPV6)
    if pii_type == "phone":
        return _phone(text, named)
    if pii_type == "date_of_birth":
        return pc.is_valid(_parse_dates(text)[0])
    raise ValueError(
        f"unknown PII type {pii_type!r}; use one of {', '.join(PII_TYPES)}"
    )


def name_hints(column: str) -> set[str]:
    """The PII types the column name suggests (e.g. ``customerEmail``: email)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", column)
    tokens = {token for token in re.split(r"[^a-z0-9]+", spaced.lower()) if token}
    joined = "".join(sorted(tokens, key=spaced.lower().find))
    return {
        pii_type
        for pii_type, (words, parts) in _NAME_HINTS.items()
        if tokens & words or any(part in joined for part in parts)
    }


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.strip().removesuffix("...").strip()


def _batches(
    data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    if isinstance(data, pa.Table):
        yield from data.to_batches()
    elif isinstance(data, pa.RecordBatch):
        yield data
    else:
        yield from data


def _sample(
    data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch], rows: int, seed: int
) -> pa.Table:
    """A uniform sample of ``rows`` rows: the rows with the smallest random keys."""
    rng = np.random.default_rng(seed)
    kept: pa.Table | None = None
    kept_keys = np.empty(0)
    for batch in _batches(data):
        keys = rng.random(batch.num_rows)
        table = pa.Table.from_batches([batch])
        if kept is not None:
            table = pa.concat_tables([kept, table], promote_options="permissive")
            keys = np.concatenate([kept_keys, keys])
        if table.num_rows > rows:
            chosen = np.sort(np.argpartition(keys, rows)[:rows])
            table, keys = table.take(chosen), keys[chosen]
        kept, kept_keys = table, keys
    if kept is None:
        return pa.table({})
    return kept


def _as_text(values: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_string(values.type):
        return values
    return pc.cast(values, pa.string())


def _is_text(data_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return bool(pa.types.is_string(data_type) or pa.types.is_large_string(data_type))


def _scan_column(
    name: str, values: pa.Array, today: datetime.date, thresholds: tuple[float, float]
) -> ColumnFinding | None:
    hints = name_hints(name)
    data_type = values.type
    if pa.types.is_date(data_type) or pa.types.is_timestamp(data_type):
        sampled = len(values) - values.null_count
        dates = values.cast(pa.date32())
        return _scan_dates(name, dates, sampled, hints, today, thresholds, {})
    if _is_text(data_type):
        text = pc.utf8_trim_whitespace(_as_text(values))
        candidates: tuple[str, ...] = PII_TYPES
    elif pa.types.is_integer(data_type) and hints & {"credit_card", "ssn", "phone"}:
        text = pc.cast(values, pa.string())
        candidates = tuple(t for t in ("credit_card", "ssn", "phone") if t in hints)
    else:
        return None
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    sampled = len(text) - text.null_count
    if sampled == 0:
        return None
    best: ColumnFinding | None = None
    for pii_type in candidates:
        finding = _scan_type(name, text, sampled, pii_type, hints, today, thresholds)
        if finding is not None and (best is None or finding.share > best.share):
            best = finding
    return best


def _scan_type(
    name: str,
    text: pa.Array,
    sampled: int,
    pii_type: str,
    hints: set[str],
    today: datetime.date,
    thresholds: tuple[float, float],
) -> ColumnFinding | None:
    if pii_type == "date_of_birth":
        dates, date_format = _parse_dates(text)
        extra = {"format": date_format} if date_format != DATE_FORMATS[0] else {}
        return _scan_dates(name, dates, sampled, hints, today, thresholds, extra)
    named = pii_type in hints
    matched = int(pc.sum(match_values(text, pii_type, named=named)).as_py() or 0)
    if matched / sampled < (thresholds[1] if named else thresholds[0]):
        return None
    return _finding(name, pii_type, matched, sampled, named, {})


def _finding(
    name: str,
    pii_type: str,
    matched: int,
    sampled: int,
    named: bool,
    extra: Mapping[str, Any],
) -> ColumnFinding:
    suggestion = {**SUGGESTIONS[pii_type], **extra}
    return ColumnFinding(
        column=name,
        pii_type=pii_type,
        share=matched / sampled if sampled else 0.0,
        matched=matched,
        sampled=sampled,
        name_hint=named,
        suggested_action=str(suggestion["action"]),
        suggestion=suggestion,
    )


def _scan_dates(
    name: str,
    dates: pa.Array,
    sampled: int,
    hints: set[str],
    today: datetime.date,
    thresholds: tuple[float, float],
    extra: Mapping[str, Any],
) -> ColumnFinding | None:
    """Flag a column whose dates imply ages that look like people's ages.

    ``dates`` is null where a value is not a date; ``sampled`` counts the
    non-empty values examined.
    """
    days = dates.drop_null().cast(pa.int32()).to_numpy()
    if days.size == 0 or sampled == 0:
        return None
    ages = (np.datetime64(today, "D").astype(np.int64) - days.astype(np.int64)) / 365.25
    plausible = (ages >= 0) & (ages <= 120)
    matched = int(plausible.sum())
    share = matched / sampled
    named = "date_of_birth" in hints
    if named:
        flagged = share >= thresholds[1]
    else:
        low, middle, high = np.percentile(ages, [10, 50, 90])
        flagged = bool(
            share >= thresholds[0]
            and plausible.mean() >= 0.95
            and 16 <= middle <= 95
            and high - low >= 10
        )
    if not flagged:
        return None
    return _finding(name, "date_of_birth", matched, sampled, named, extra)


def _parse_dates(text: pa.Array) -> tuple[pa.Array, str]:
    """``text`` parsed with the most successful of :data:`DATE_FORMATS`."""
    best: pa.Array | None = None
    best_format = DATE_FORMATS[0]
    for date_format in DATE_FORMATS:
        parsed = pc.strptime(text, format=date_format, unit="s", error_is_null=True)
        if best is None or parsed.null_count < best.null_count:
            best, best_format = parsed, date_format
    assert best is not None
    return best.cast(pa.date32()), best_format


def _char_matrix(text: pa.Array, width: int) -> np.ndarray:
    """ASCII strings all ``width`` long as an (n, width) uint8 matrix."""
    if len(text) == 0:
        return np.empty((0, width), dtype=np.uint8)
    text = text.cast(pa.string())
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)
    offsets = offsets[text.offset : text.offset + len(text) + 1]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.reshape(len(text), width)


def _fixed_width(text: pa.Array, shaped: pa.Array, width: int) -> np.ndarray:
    """Values where ``shaped`` holds, zero-padded on the left, as a matrix."""
    filler = pa.scalar("0" * width)
    chosen = pc.if_else(pc.fill_null(shaped, False), text, filler)
    return _char_matrix(pc.utf8_lpad(chosen, width=width, padding="0"), width)


def _luhn_valid(text: pa.Array) -> pa.Array:
    shaped = pc.match_substring_regex(text, _CARD)
    digits = pc.replace_substring_regex(text, r"[^0-9]", "")
    matrix = _fixed_width(digits, shaped, 19).astype(np.int64) - ord("0")
    doubled = matrix[:, -2::-2] * 2
    total = matrix[:, -1::-2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
    valid = (total % 10 == 0) & (matrix.sum(axis=1) > 0)
    return pc.and_(shaped, pa.array(valid))


def _iban_valid(text: pa.Array) -> pa.Array:
    compact = pc.utf8_upper(pc.replace_substring(text, " ", ""))
    shaped = pc.match_substring_regex(compact, _IBAN)
    moved = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(compact, 4), pc.utf8_slice_codeunits(compact, 0, 4), ""
    )
    matrix = _fixed_width(moved, shaped, 34).astype(np.int64)
    letters = matrix >= ord("A")
    values = np.where(letters, matrix - ord("A") + 10, matrix - ord("0"))
    scale = np.where(letters, 100, 10)
    remainder = np.zeros(matrix.shape[0], dtype=np.int64)
    for position in range(matrix.shape[1]):  # 34 steps, vectorised over rows
        remainder = (remainder * scale[:, position] + values[:, position]) % 97
    return pc.and_(shaped, pa.array(remainder == 1))


def _phone(text: pa.Array, named: bool) -> pa.Array:
    """Phone-shaped values with 7 to 15 digits (9 without a name hint).

    Without a name hint a value also needs a separator or a leading ``+``:
    bare digit strings are more often identifiers than phone numbers.
    """
    shaped = pc.match_substring_regex(text, _PHONE)
    core = pc.replace_substring_regex(text, _PHONE_EXTENSION, "")
    count = pc.utf8_length(pc.replace_substring_regex(core, r"[^0-9]", ""))
    fewest = 7 if named else 9
    plausible = pc.and_(pc.greater_equal(count, fewest), pc.less_equal(count, 15))
    excluded = pc.or_(
        pc.match_substring_regex(core, _NOT_PHONE),
        pc.or_(
            pc.match_substring_regex(text, IPV4_PATTERN),
            pc.match_substring_regex(text, _SSN_DASHED),
        ),
    )
    result = pc.and_(pc.and_(shaped, plausible), pc.invert(excluded))
    if named:
        return result
    return pc.and_(result, pc.match_substring_regex(core, _PHONE_SEPARATED))
