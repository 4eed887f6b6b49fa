"""Synthetic fraud-detection transactions, for demos, tests and benchmarks.

The data looks like a card-payments export that a fraud team would want to
move: ids, ISO 8601 timestamps, decimal amounts, emails, Luhn-valid card
numbers, free text with commas and quotes, and the traps a lossless loader must
survive: digit strings with leading zeros (account ids, postcodes, merchant
category codes), a numeric column whose missing values are written as ``NA``
or as an empty field, and a country column in which ``NA`` is Namibia, a real
value that must stay text.

Every value of a row is a pure function of ``(seed, row index)``: a
counter-based hash stands in for a stateful random generator. The same seed and
size therefore give the same bytes, whatever the chunking, and
``transactions_table(n, seed)`` equals the rows of a generated dataset of ``n``
rows read back in file order.

Speed comes from never formatting a row in Python. Each value is an index into
a small table of pre-rendered texts (a "vocabulary"), a fixed-width field built
as a numpy byte matrix, or an Arrow cast of an integer. A text line is one Arrow
string join of those pieces, and each vocabulary entry already carries the
delimiters (or JSON keys) that follow its value, so one join per block of rows
builds the whole file content.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamove.errors import UsageError

__all__ = [
    "TRANSACTIONS_SCHEMA",
    "SampleCompression",
    "SampleFormat",
    "generate_transactions",
    "transactions_table",
]

logger = logging.getLogger(__name__)

SampleFormat = Literal["csv", "tsv", "jsonl", "parquet"]
SampleCompression = Literal[None, "gz", "zst"]

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Bools = npt.NDArray[np.bool_]

TRANSACTIONS_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.int64()),
        ("event_time", pa.timestamp("ms", tz="UTC")),
        ("account_id", pa.string()),
        ("card_number", pa.string()),
        ("postcode", pa.string()),
        ("customer_email", pa.string()),
        ("amount", pa.decimal128(12, 2)),
        ("currency", pa.string()),
        ("country", pa.string()),
        ("merchant", pa.string()),
        ("merchant_category", pa.string()),
        ("mcc", pa.string()),
        ("ip_address", pa.string()),
        ("description", pa.string()),
        ("risk_score", pa.float64()),
        ("is_fraud", pa.bool_()),
    ]
)
"""Column names and types of the generated data, as a lossless reader sees it."""

_CHUNK_ROWS = 65_536
_PARQUET_ROW_GROUP_ROWS = 524_288
_EPOCH_START = 1_704_067_200  # 2024-01-01T00:00:00Z
_ACCOUNT_POOL = 2_000_000
_FRAUD_RATE = 0.015
_RISK_NA_RATE = 0.02
_RISK_EMPTY_RATE = 0.02
_MULTILINE_RATE = 0.01
_MAX_DOLLARS = 100_000
_MIN_ROW_BYTES = 100  # no rendered row is shorter
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

_FILE_SUFFIX = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "parquet": ".parquet"}
_PARQUET_CODEC: dict[str | None, str] = {None: "snappy", "gz": "gzip", "zst": "zstd"}


def _words(text: str, separator: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(separator))


# (ISO country, currency, weight). "NA" is Namibia: a value, not a null marker.
_COUNTRIES: tuple[tuple[str, str, int], ...] = tuple(
    (country, currency, int(weight))
    for country, currency, weight in (
        entry.split(":")
        for entry in _words(
            "US:USD:40 GB:GBP:10 DE:EUR:8 FR:EUR:6 NL:EUR:3 IE:EUR:2 ES:EUR:3 "
            "IT:EUR:3 CA:CAD:5 AU:AUD:3 JP:JPY:3 IN:INR:3 BR:BRL:2 MX:MXN:2 "
            "CH:CHF:1 SE:SEK:1 PL:PLN:1 SG:SGD:1 ZA:ZAR:1 NA:NAD:1"
        )
    )
)

# Merchant category codes; several real ones start with a zero.
_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("0742", "Veterinary services"),
    ("0763", "Agricultural co-operatives"),
    ("0780", "Landscaping and horticultural services"),
    ("4111", "Commuter transport, ferries"),
    ("4829", "Wire transfer, money orders"),
    ("5411", "Grocery stores, supermarkets"),
    ("5541", "Service stations"),
    ("5691", "Men's and women's clothing stores"),
    ("5732", "Electronics stores"),
    ("5812", "Eating places, restaurants"),
    ("5967", 'Direct marketing - "inbound" teleservices'),
    ("5999", "Miscellaneous and specialty retail"),
    ("6011", "Automated cash disbursements"),
    ("7011", "Hotels, motels, resorts"),
    ("7995", "Betting, including lottery tickets"),
)

_MERCHANT_HEADS = _words(
    "Acme|Blue Harbor|Café Zürich|Northwind|Joe's|Bäckerei Müller|Green Valley|"
    "Metro|Silverline|Orchard|Sunrise|Red Fox|Harbour & Pike|Quick|Golden Gate|"
    "Lakeside|Urban|Copper Kettle|Polar|Evergreen",
    "|",
)
_MERCHANT_TAILS = _words(
    'Market|Diner|Fuel|Electronics|Books|Pharmacy|Travel, Ltd.|Outlet "Express"|'
    "Hotel|Gaming|Transfers, Inc.|Garden Centre|Vet Clinic|Fashion|Grocers|Cinema",
    "|",
)
_MERCHANTS = tuple(
    f"{head} {tail}" for head in _MERCHANT_HEADS for tail in _MERCHANT_TAILS
)

_FIRST_NAMES = _words(
    "anna ben chloe david elena farid grace hiro ines jamal kate liam maria noah "
    "olga priya quinn rosa sam tariq uma victor wei yusuf zoe"
)
_LAST_NAMES = _words(
    "smith garcia muller kowalski nguyen okafor rossi tanaka silva dubois jensen "
    "obrien haddad novak patel murphy schmidt lopez kim ivanova"
)
_EMAIL_DOMAINS = _words(
    "example.com example.org mail.example.net inbox.example.co.uk post.example.de"
)
_EMAIL_NAMES = tuple(
    f"{first}.{last}" for first in _FIRST_NAMES for last in _LAST_NAMES
)
_EMAIL_NUMBERS = 1000

# A description is prefix + reference number + suffix + note. Every prefix or
# suffix holds a comma or a quote, so a CSV writer must quote each description.
_DESCRIPTION_FORMS: tuple[tuple[str, str], ...] = (
    ("POS purchase, terminal ", ""),
    ("Online order #", ', shipping "express"'),
    ("Refund for order ", ', reason: "damaged item"'),
    ('Subscription "Premium", invoice ', ""),
    ("ATM withdrawal, machine ", ", fee applied"),
    ("Card-not-present charge, ref ", ""),
    ("Transfer to account ending ", ', memo "rent"'),
    ("Contactless payment, ", " points earned"),
)
_NOTES = (
    "",
    "",
    "",
    "",
    " (disputed)",
    ", flagged by rule R17",
    ', customer said "not me"',
    " - 3DS challenge passed",
)
_MULTILINE_NOTES = (
    "\nNote: customer called back",
    ', see ticket:\n"chargeback pending"',
)
_ALL_NOTES = _NOTES + _MULTILINE_NOTES


# -- counter-based randomness -------------------------------------------------


def _mix(values: U64) -> U64:
    """SplitMix64 finaliser: a bijective scramble of 64-bit integers."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def _mix_scalar(value: int) -> np.uint64:
    mixed: np.uint64 = _mix(np.array([value & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    return mixed


class _Draws:
    """Independent pseudo-random streams over a range of row indices."""

    def __init__(self, seed: int, start: int, rows: int) -> None:
        self.seed_key = _mix_scalar(seed)
        self.counters = np.arange(start, start + rows, dtype=np.uint64) * _GOLDEN

    def bits(self, stream: int) -> U64:
        return _mix(self.counters + (_mix_scalar(stream + 1) ^ self.seed_key))

    def uniform(self, stream: int) -> F64:
        return (self.bits(stream) >> np.uint64(11)).astype(np.float64) * 2.0**-53

    def below(self, stream: int, bound: int) -> I64:
        high = self.bits(stream) >> np.uint64(32)
        return ((high * np.uint64(bound)) >> np.uint64(32)).astype(np.int64)


def _keyed(keys: I64, salt: int) -> U64:
    """Hash values derived from a key (an account, a merchant), not from a row."""
    return _mix(keys.astype(np.uint64) * _GOLDEN + _mix_scalar(salt))


# -- one block of rows --------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """Rows ``start .. start + rows`` as integer codes that every format renders.

    Indices name entries of the vocabularies below: ``country`` of
    ``_COUNTRIES``, ``merchant`` of ``_MERCHANTS``, and so on.
    """

    transaction_id: I64
    event_seconds: I64
    account_number: I64
    card_digits: U8
    postcode: I64
    email_name: I64
    email_tail: I64
    amount_cents: I64
    country: I64
    merchant: I64
    ip_high: I64
    ip_low: I64
    form: I64
    reference: I64
    note: I64
    risk_code: I64
    is_fraud: Bools

    @property
    def rows(self) -> int:
        return len(self.transaction_id)

    @property
    def category(self) -> I64:
        return _MERCHANT_CATEGORY[self.merchant]

    @property
    def risk_null(self) -> Bools:
        return self.risk_code >= _RISK_NA

    @property
    def description_rest(self) -> I64:
        return self.form * len(_ALL_NOTES) + self.note


_RISK_NA = 1000  # risk codes 0..999 are thousandths; 1000 is "NA", 1001 empty
_RISK_EMPTY = 1001
_MERCHANT_CATEGORY = (
    _keyed(np.arange(len(_MERCHANTS), dtype=np.int64), 0xCA7)
    % np.uint64(len(_CATEGORIES))
).astype(np.int64)
_COUNTRY_CUMULATIVE = np.cumsum([weight for *_, weight in _COUNTRIES]) / sum(
    weight for *_, weight in _COUNTRIES
)


def _make_block(seed: int, start: int, rows: int, quoted_newlines: bool) -> _Block:
    draws = _Draws(seed, start, rows)
    row_index = np.arange(start, start + rows, dtype=np.int64)

    # Accounts are skewed (a few are very active); an account's id, card,
    # postcode and email derive from it, so they repeat consistently.
    accounts = (_ACCOUNT_POOL * draws.uniform(1) ** 3).astype(np.int64)
    account_hash = _keyed(accounts, 0xACC)
    email_number = (account_hash >> np.uint64(20)) % np.uint64(_EMAIL_NUMBERS)
    email_domain = (account_hash >> np.uint64(40)) % np.uint64(len(_EMAIL_DOMAINS))

    is_fraud = draws.uniform(2) < _FRAUD_RATE
    # Amounts are log-normal (median about 40.00), larger for fraud.
    radius = np.sqrt(-2.0 * np.log1p(-draws.uniform(3)))
    normal = radius * np.cos(2.0 * np.pi * draws.uniform(4))
    amount = np.exp(3.7 + 1.1 * normal) * np.where(is_fraud, 4.0, 1.0)
    amount_cents = np.clip(np.rint(amount * 100), 1, _MAX_DOLLARS * 100 - 1)

    risk = np.minimum(draws.uniform(5) * 0.6 + np.where(is_fraud, 0.4, 0.0), 0.999)
    marker = draws.uniform(6)
    risk_code = np.where(
        marker < _RISK_NA_RATE,
        _RISK_NA,
        np.where(
            marker < _RISK_NA_RATE + _RISK_EMPTY_RATE, _RISK_EMPTY, np.rint(risk * 1000)
        ),
    )

    note = draws.below(7, len(_NOTES))
    if quoted_newlines:
        multiline = draws.uniform(8) < _MULTILINE_RATE
        note = np.where(multiline, len(_NOTES) + draws.below(9, 2), note)

    return _Block(
        transaction_id=row_index + 1,
        event_seconds=_EPOCH_START + row_index * 2 + draws.below(10, 120),
        account_number=(account_hash % np.uint64(10**10)).astype(np.int64),
        card_digits=_card_numbers(accounts),
        postcode=(_keyed(accounts, 0x21B) % np.uint64(100_000)).astype(np.int64),
        email_name=(account_hash >> np.uint64(48)).astype(np.int64) % len(_EMAIL_NAMES),
        email_tail=(
            email_number * np.uint64(len(_EMAIL_DOMAINS)) + email_domain
        ).astype(np.int64),
        amount_cents=amount_cents.astype(np.int64),
        country=np.searchsorted(_COUNTRY_CUMULATIVE, draws.uniform(11), side="right"),
        merchant=draws.below(12, len(_MERCHANTS)),
        ip_high=(1 + draws.below(13, 223)) * 256 + draws.below(14, 256),
        ip_low=draws.below(15, 65_536),
        form=draws.below(16, len(_DESCRIPTION_FORMS)),
        reference=draws.below(17, 10**8),
        note=note,
        risk_code=risk_code.astype(np.int64),
        is_fraud=is_fraud,
    )


# -- fixed-width fields -------------------------------------------------------


def _digits(values: I64, width: int) -> U8:
    """Zero-padded decimal digits of non-negative integers, as ASCII bytes."""
    out = np.empty((len(values), width), dtype=np.uint8)
    remaining = values.copy()
    for position in range(width - 1, -1, -1):
        remaining, digit = np.divmod(remaining, 10)
        out[:, position] = digit
    out += ord("0")
    return out


def _iso_timestamps(seconds: I64) -> U8:
    """``YYYY-MM-DDTHH:MM:SSZ`` of epoch seconds, as a byte matrix."""
    days, second_of_day = np.divmod(seconds, 86_400)
    # Civil date from a day count, counting 400-year eras from March 1st.
    shifted = days + 719_468
    era = shifted // 146_097
    day_of_era = shifted - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (
        365 * year_of_era + year_of_era // 4 - year_of_era // 100
    )
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = np.where(month_index < 10, month_index + 3, month_index - 9)
    year = year_of_era + era * 400 + (month <= 2)
    hour, rest = np.divmod(second_of_day, 3600)
    minute, second = np.divmod(rest, 60)

    text = np.empty((len(seconds), 20), dtype=np.uint8)
    for column, (field, width) in zip(
        (0, 5, 8, 11, 14, 17),
        ((year, 4), (month, 2), (day, 2), (hour, 2), (minute, 2), (second, 2)),
        strict=True,
    ):
        text[:, column : column + width] = _digits(field, width)
    text[:, [4, 7]] = ord("-")
    text[:, 10] = ord("T")
    text[:, [13, 16]] = ord(":")
    text[:, 19] = ord("Z")
    return text


def _card_numbers(accounts: I64) -> U8:
    """16-digit Luhn-valid card numbers starting with 3, 4, 5 or 6, as bytes."""
    hashed = _keyed(accounts, 0xC0FFEE)
    first = np.array([4, 4, 4, 5, 5, 3, 6, 4], dtype=np.uint8)
    digits = np.empty((len(accounts), 16), dtype=np.uint8)
    digits[:, 0] = first[(hashed & np.uint64(7)).astype(np.int64)]
    digits[:, 1:15] = _digits((hashed >> np.uint64(3)).astype(np.int64), 14) - ord("0")
    # Luhn: from the check digit leftwards every second digit is doubled; in a
    # 16-digit number those sit at the even positions 0, 2, ..., 14.
    doubled = digits[:, 0:15:2].astype(np.int64) * 2
    total = (doubled - 9 * (doubled > 9)).sum(axis=1) + digits[:, 1:15:2].sum(axis=1)
    digits[:, 15] = (10 - total % 10) % 10
    return digits + np.uint8(ord("0"))


def _strings(matrix: U8) -> pa.StringArray:
    """One string per row of a byte matrix, sharing the matrix's memory."""
    rows, width = matrix.shape
    offsets = np.arange(0, rows * width + 1, width, dtype=np.int32)
    data = np.ascontiguousarray(matrix)
    array = pa.Array.from_buffers(
        pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    assert isinstance(array, pa.StringArray)
    return array


def _literal(rows: int, text: str) -> U8:
    return np.broadcast_to(
        np.frombuffer(text.encode(), dtype=np.uint8), (rows, len(text))
    )


# -- the typed table ------------------------------------------------------------


def _vocabulary(texts: Sequence[str]) -> pa.StringArray:
    array = pa.array(list(texts), pa.string())
    assert isinstance(array, pa.StringArray)
    return array


@functools.cache
def _plain(name: str) -> pa.StringArray:
    """Vocabularies of plain values, for the typed table."""
    texts: dict[str, Callable[[], Sequence[str]]] = {
        "email_name": lambda: _EMAIL_NAMES,
        "email_tail": lambda: [
            f"{number:03d}@{domain}"
            for number in range(_EMAIL_NUMBERS)
            for domain in _EMAIL_DOMAINS
        ],
        "currency": lambda: [currency for _, currency, _ in _COUNTRIES],
        "country": lambda: [country for country, _, _ in _COUNTRIES],
        "merchant": lambda: _MERCHANTS,
        "category": lambda: [name for _, name in _CATEGORIES],
        "mcc": lambda: [code for code, _ in _CATEGORIES],
        "ip_high": lambda: [f"{n >> 8}.{n & 255}" for n in range(65_536)],
        "ip_low": lambda: [f".{n >> 8}.{n & 255}" for n in range(65_536)],
        "prefix": lambda: [prefix for prefix, _ in _DESCRIPTION_FORMS],
        "rest": lambda: [
            suffix + note for _, suffix in _DESCRIPTION_FORMS for note in _ALL_NOTES
        ],
    }
    return _vocabulary(texts[name]())


def _block_table(block: _Block) -> pa.Table:
    def join(*parts: pa.Array) -> pa.Array:
        return pc.binary_join_element_wise(*parts, "")

    def amount() -> pa.Array:
        # A decimal128 is a little-endian 128-bit integer; amounts are positive.
        words = np.zeros((block.rows, 2), dtype="<i8")
        words[:, 0] = block.amount_cents
        return pa.Array.from_buffers(
            pa.decimal128(12, 2), block.rows, [None, pa.py_buffer(words)]
        )

    columns: list[pa.Array] = [
        pa.array(block.transaction_id, pa.int64()),
        # Milliseconds, the coarsest unit Parquet stores; the text has seconds.
        pa.array(block.event_seconds * 1000).view(pa.timestamp("ms", tz="UTC")),
        _strings(_digits(block.account_number, 10)),
        _strings(block.card_digits),
        _strings(_digits(block.postcode, 5)),
        join(
            _plain("email_name").take(block.email_name),
            _plain("email_tail").take(block.email_tail),
        ),
        amount(),
        _plain("currency").take(block.country),
        _plain("country").take(block.country),
        _plain("merchant").take(block.merchant),
        _plain("category").take(block.category),
        _plain("mcc").take(block.category),
        join(
            _plain("ip_high").take(block.ip_high), _plain("ip_low").take(block.ip_low)
        ),
        join(
            _plain("prefix").take(block.form),
            pc.cast(pa.array(block.reference), pa.string()),
            _plain("rest").take(block.description_rest),
        ),
        pa.array(block.risk_code / 1000.0, mask=block.risk_null),
        pa.array(block.is_fraud, pa.bool_()),
    ]
    return pa.Table.from_arrays(columns, schema=TRANSACTIONS_SCHEMA)


# -- text formats ---------------------------------------------------------------


@dataclass(frozen=True)
class _Dialect:
    """How values and the glue between them are written in one text format."""

    fmt: str

    @property
    def delimiter(self) -> str:
        return "\t" if self.fmt == "tsv" else ","

    def value(self, text: str, *, quote: bool = True) -> str:
        """A string value, escaped; CSV quoting only where the value needs it."""
        if self.fmt == "jsonl":
            text = text.replace("\\", "\\\\").replace('"', '\\"')
            return text.replace("\n", "\\n").replace("\t", "\\t")
        escaped = text.replace('"', '""')
        needs_quotes = any(char in text for char in f'"\n{self.delimiter}')
        return f'"{escaped}"' if quote and needs_quotes else escaped

    def after(self, column: str) -> str:
        """What follows ``column``'s value, up to the next value."""
        names = TRANSACTIONS_SCHEMA.names
        position = names.index(column)
        if self.fmt != "jsonl":
            return "\n" if position == len(names) - 1 else self.delimiter
        closing = '"' if _is_json_string(column) else ""
        if position == len(names) - 1:
            return closing + "}\n"
        following = names[position + 1]
        opening = '"' if _is_json_string(following) else ""
        return f'{closing},"{following}":{opening}'

    @property
    def line_start(self) -> str:
        return '{"transaction_id":' if self.fmt == "jsonl" else ""

    @property
    def header(self) -> bytes:
        if self.fmt == "jsonl":
            return b""
        return (self.delimiter.join(TRANSACTIONS_SCHEMA.names) + "\n").encode()


def _is_json_string(column: str) -> bool:
    field_type = TRANSACTIONS_SCHEMA.field(column).type
    return bool(pa.types.is_string(field_type) or pa.types.is_timestamp(field_type))


@functools.cache
def _rendered(fmt: str, name: str) -> pa.StringArray:
    """Vocabularies of escaped values followed by their glue, for one format."""
    d = _Dialect(fmt)
    glue = {column: d.after(column) for column in TRANSACTIONS_SCHEMA.names}

    def risk_and_fraud() -> list[str]:
        na, empty = ("null", "null") if fmt == "jsonl" else ("NA", "")
        risks = [f"0.{k:03d}" for k in range(1000)] + [na, empty]
        return [
            risk + glue["risk_score"] + flag + glue["is_fraud"]
            for risk in risks
            for flag in ("false", "true")
        ]

    def description_rest() -> list[str]:
        # The whole description is one quoted CSV field; its parts are escaped
        # without quotes of their own, and the closing quote ends the rest.
        closing = "" if fmt == "jsonl" else '"'
        return [
            d.value(suffix + note, quote=False) + closing + glue["description"]
            for _, suffix in _DESCRIPTION_FORMS
            for note in _ALL_NOTES
        ]

    texts: dict[str, Callable[[], Sequence[str]]] = {
        "email_tail": lambda: [
            f"{number:03d}@{domain}{glue['customer_email']}"
            for number in range(_EMAIL_NUMBERS)
            for domain in _EMAIL_DOMAINS
        ],
        "cents_currency_country": lambda: [
            f".{cents:02d}{glue['amount']}{currency}{glue['currency']}"
            f"{country}{glue['country']}"
            for cents in range(100)
            for country, currency, _ in _COUNTRIES
        ],
        "merchant": lambda: [
            d.value(_MERCHANTS[merchant])
            + glue["merchant"]
            + d.value(_CATEGORIES[category][1])
            + glue["merchant_category"]
            + _CATEGORIES[category][0]
            + glue["mcc"]
            for merchant, category in enumerate(_MERCHANT_CATEGORY)
        ],
        "ip_low": lambda: [
            f".{n >> 8}.{n & 255}{glue['ip_address']}" for n in range(65_536)
        ],
        "prefix": lambda: [
            ("" if fmt == "jsonl" else '"') + d.value(prefix, quote=False)
            for prefix, _ in _DESCRIPTION_FORMS
        ],
        "rest": description_rest,
        "risk_and_fraud": risk_and_fraud,
    }
    return _vocabulary(texts[name]())


@functools.cache
def _dollars() -> pa.StringArray:
    return _vocabulary([str(dollars) for dollars in range(_MAX_DOLLARS)])


def _block_lines(block: _Block, fmt: str) -> pa.Array:
    """Render a block as one string per row, each ending with a newline."""
    d = _Dialect(fmt)
    rows = block.rows

    # event_time, account_id, card_number and postcode are fixed-width and
    # adjacent: one byte matrix holds them with the glue in between.
    fixed = np.concatenate(
        [
            _literal(rows, d.after("transaction_id")),
            _iso_timestamps(block.event_seconds),
            _literal(rows, d.after("event_time")),
            _digits(block.account_number, 10),
            _literal(rows, d.after("account_id")),
            block.card_digits,
            _literal(rows, d.after("card_number")),
            _digits(block.postcode, 5),
            _literal(rows, d.after("postcode")),
        ],
        axis=1,
    )
    cents = block.amount_cents % 100
    pieces: list[pa.Array | str] = [
        d.line_start,
        pc.cast(pa.array(block.transaction_id), pa.string()),
        _strings(fixed),
        _plain("email_name").take(block.email_name),
        _rendered(fmt, "email_tail").take(block.email_tail),
        _dollars().take(block.amount_cents // 100),
        _rendered(fmt, "cents_currency_country").take(
            cents * len(_COUNTRIES) + block.country
        ),
        _rendered(fmt, "merchant").take(block.merchant),
        _plain("ip_high").take(block.ip_high),
        _rendered(fmt, "ip_low").take(block.ip_low),
        _rendered(fmt, "prefix").take(block.form),
        pc.cast(pa.array(block.reference), pa.string()),
        _rendered(fmt, "rest").take(block.description_rest),
        _rendered(fmt, "risk_and_fraud").take(block.risk_code * 2 + block.is_fraud),
    ]
    return pc.binary_join_element_wise(*pieces, "")


def _text_bytes(lines: pa.Array) -> memoryview:
    """The concatenated bytes of a string array, without copying them."""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    first = int(offsets[lines.offset])
    last = int(offsets[lines.offset + len(lines)])
    data = lines.buffers()[2]
    assert data is not None
    return memoryview(data)[first:last]


# -- public API ---------------------------------------------------------------


def transactions_table(
    rows: int, seed: int = 0, *, start: int = 0, quoted_newlines: bool = False
) -> pa.Table:
    """Build ``rows`` synthetic transactions in memory.

    Args:
        rows: number of rows.
        seed: any integer; the same seed gives the same rows.
        start: index of the first row; rows ``start .. start + rows`` are the
            same rows that ``transactions_table(start + rows, seed)`` ends with.
        quoted_newlines: let about 1% of descriptions contain a line break.

    Returns:
        A table with :data:`TRANSACTIONS_SCHEMA`. It equals, row for row, what a
        lossless reader gets from files made by :func:`generate_transactions`
        with the same seed (``transaction_id`` is the row index plus one).

    Raises:
        UsageError: ``rows`` or ``start`` is negative.
    """
    if rows < 0 or start < 0:
        raise UsageError(
            f"transactions_table: rows={rows}, start={start}; pass values >= 0"
        )
    tables = [
        _block_table(_make_block(seed, first, count, quoted_newlines))
        for first, count in _block_ranges(start, rows)
    ]
    if not tables:
        return TRANSACTIONS_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def generate_transactions(
    directory: str | os.PathLike[str],
    total_bytes: int,
    *,
    files: int = 1,
    seed: int = 0,
    fmt: SampleFormat = "csv",
    compression: SampleCompression = None,
    quoted_newlines: bool = False,
) -> list[Path]:
    """Write a synthetic transactions dataset of about ``total_bytes``.

    Files are named ``transactions-00000.csv`` (``.tsv``, ``.jsonl``,
    ``.parquet``; ``.gz`` or ``.zst`` appended when compressed). Each is written
    under a ``.partial`` name and renamed when complete. Rows continue across
    files: file ``k`` holds the rows right after those of file ``k - 1``.

    Args:
        directory: folder to write into; created if missing.
        total_bytes: target size. For ``csv``, ``tsv`` and ``jsonl`` it is the
            sum of the uncompressed file sizes, met to within one row per file.
            For ``parquet`` the row count is that of a CSV of this size, so the
            formats hold the same rows for the same size.
        files: number of files; the size is split evenly between them.
        seed: the same seed, size and options give byte-identical files.
        fmt: ``csv`` (comma, header, quotes only where needed), ``tsv`` (tab,
            header, the same quoting), ``jsonl`` (one object per line) or
            ``parquet``.
        compression: ``gz`` (level 1) or ``zst`` compresses a text file as a
            whole; for ``parquet`` it picks the column codec (default snappy).
        quoted_newlines: let about 1% of descriptions contain a line break,
            which CSV and TSV carry inside a quoted field.

    Returns:
        The paths written, in row order.

    Raises:
        UsageError: an argument is out of range or unknown.
        OSError: the directory or a file cannot be written.
    """
    if fmt not in _FILE_SUFFIX:
        raise UsageError(
            f"generate_transactions: unknown fmt {fmt!r}; "
            f"use one of {', '.join(_FILE_SUFFIX)}"
        )
    if compression not in _PARQUET_CODEC:
        raise UsageError(
            f"generate_transactions: unknown compression {compression!r}; "
            "use None, 'gz' or 'zst'"
        )
    if total_bytes <= 0 or files <= 0:
        raise UsageError(
            f"generate_transactions: total_bytes={total_bytes}, files={files}; "
            "pass positive values"
        )

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = _FILE_SUFFIX[fmt]
    if compression is not None and fmt != "parquet":
        suffix += "." + compression
    share, extra = divmod(total_bytes, files)

    paths: list[Path] = []
    next_row = 0
    for number in range(files):
        target = share + (number < extra)
        path = folder / f"transactions-{number:05d}{suffix}"
        partial = path.with_name(path.name + ".partial")
        if fmt == "parquet":
            rows = _parquet_rows(target, seed, quoted_newlines)
            codec = _PARQUET_CODEC[compression]
            _write_parquet(partial, seed, next_row, rows, quoted_newlines, codec)
        else:
            rows = _write_text(
                partial, fmt, compression, target, seed, next_row, quoted_newlines
            )
        partial.replace(path)
        logger.debug("%s: written, %d rows from row %d", path, rows, next_row)
        next_row += rows
        paths.append(path)
    return paths


# -- writers --------------------------------------------------------------------


def _block_ranges(start: int, rows: int) -> Iterator[tuple[int, int]]:
    end = start + rows
    while start < end:
        count = min(_CHUNK_ROWS, end - start)
        yield start, count
        start += count


class _ByteSink(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...


@contextmanager
def _open_text(path: Path, compression: SampleCompression) -> Iterator[_ByteSink]:
    with open(path, "wb") as raw:
        if compression == "gz":
            # No name and a zero mtime in the header keep the bytes reproducible.
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0
            ) as packed:
                yield packed
        elif compression == "zst":
            with pa.CompressedOutputStream(raw, "zstd") as packed:
                yield packed
        else:
            yield raw


def _write_text(
    path: Path,
    fmt: str,
    compression: SampleCompression,
    target: int,
    seed: int,
    start: int,
    quoted_newlines: bool,
) -> int:
    """Write rows from ``start`` until about ``target`` bytes; return the rows."""
    header = _Dialect(fmt).header
    written = len(header)
    row = start
    with _open_text(path, compression) as sink:
        sink.write(header)
        while written < target:
            remaining = target - written
            # Small files need few rows: do not build a whole block for them.
            count = min(_CHUNK_ROWS, remaining // _MIN_ROW_BYTES + 1)
            lines = _block_lines(_make_block(seed, row, count, quoted_newlines), fmt)
            overshoot = len(_text_bytes(lines)) > remaining
            if overshoot:
                lines = lines.slice(0, _rows_nearest(lines, remaining))
            chunk = _text_bytes(lines)
            sink.write(chunk)
            written += len(chunk)
            row += len(lines)
            if overshoot:
                break
    return row - start


def _rows_nearest(lines: pa.Array, size: int) -> int:
    """How many leading lines add up to the total nearest ``size`` bytes."""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    ends = offsets[lines.offset + 1 : lines.offset + len(lines) + 1]
    ends = ends - offsets[lines.offset]
    keep = int(np.searchsorted(ends, size))
    if keep < len(lines) and (keep == 0 or ends[keep] - size < size - ends[keep - 1]):
        keep += 1
    return keep


def _parquet_rows(target: int, seed: int, quoted_newlines: bool) -> int:
    """Rows a CSV file of ``target`` bytes would hold, estimated on a sample."""
    sample = _block_lines(_make_block(seed, 0, 8192, quoted_newlines), "csv")
    bytes_per_row = len(_text_bytes(sample)) / len(sample)
    header = len(_Dialect("csv").header)
    return max(1, round((target - header) / bytes_per_row))


def _write_parquet(
    path: Path, seed: int, start: int, rows: int, quoted_newlines: bool, codec: str
) -> None:
    # gzip at its default level is about 20 times slower than the others.
    level = 1 if codec == "gzip" else None
    with pq.ParquetWriter(
        path, TRANSACTIONS_SCHEMA, compression=codec, compression_level=level
    ) as writer:
        pending: list[pa.Table] = []
        pending_rows = 0
        for first, count in _block_ranges(start, rows):
            block = _make_block(seed, first, count, quoted_newlines)
            pending.append(_block_table(block))
            pending_rows += count
            if pending_rows >= _PARQUET_ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending))
                pending, pending_rows = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending))
