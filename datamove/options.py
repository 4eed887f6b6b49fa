"""Options of a sync run, and the parsers for their textual forms."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa

from datamove.errors import UsageError

MiB = 1 << 20
GiB = 1 << 30
BadRowsPolicy = Literal["fail", "skip", "quarantine"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
COMPRESSIONS = ("zstd", "snappy", "gzip", "brotli", "lz4", "none")
# Names accepted by --column-type besides pyarrow's own aliases.
_TYPE_ALIASES = {
    "str": pa.string(),
    "text": pa.string(),
    "int": pa.int64(),
    "integer": pa.int64(),
    "long": pa.int64(),
    "float": pa.float64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


def parse_size(text: str | int, flag: str = "size", zero: bool = False) -> int:
    """Parse ``64MiB``, ``1GB``, ``512k`` or a plain byte count.

    Binary (``KiB``) and decimal (``KB``) units are both honoured; a bare
    letter (``M``) is binary, as in rclone. ``0`` is accepted with ``zero``.
    """
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match:
        raise UsageError(
            f"{flag}: cannot read {text!r} as a size; write e.g. 64MiB or 1GB"
        )
    number, prefix, binary, byte = match.groups()
    base = 1024 if binary or not byte else 1000
    value = int(float(number) * base ** _POWERS[prefix.lower()])
    if value < 0 or (value == 0 and not zero):
        raise UsageError(f"{flag}: {text!r} must be larger than zero")
    return value


def parse_type(text: str, flag: str = "--column-type") -> pa.DataType:
    """Parse a column type name such as ``string``, ``int64`` or ``decimal(18,2)``."""
    name = text.strip().lower()
    if name in _TYPE_ALIASES:
        return _TYPE_ALIASES[name]
    decimal = _DECIMAL.match(name)
    if decimal:
        return pa.decimal128(int(decimal.group(1)), int(decimal.group(2)))
    try:
        return pa.type_for_alias(name)
    except ValueError:
        raise UsageError(
            f"{flag}: unknown type {text!r}; use string, int64, float64, bool, date, "
            "timestamp, timestamptz or decimal(P,S)"
        ) from None


def parse_column_types(pairs: list[str] | tuple[str, ...]) -> dict[str, pa.DataType]:
    """Parse repeated ``COL=TYPE`` options."""
    result: dict[str, pa.DataType] = {}
    for pair in pairs:
        column, sep, type_name = pair.partition("=")
        if not sep or not column:
            raise UsageError(f"--column-type: expected COL=TYPE, got {pair!r}")
        result[column] = parse_type(type_name)
    return result


@dataclass(frozen=True)
class SyncOptions:
    """Everything that shapes a sync besides its source and destination.

    Fields in :meth:`output_config` change the bytes of the shards; changing
    one makes the next run rewrite every shard. The others only change how the
    run executes.
    """

    shard_size: int = 128 * MiB
    compression: str = "zstd"
    compression_level: int | None = None
    partition_by: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    format: str | None = None
    column_types: tuple[tuple[str, str], ...] = ()
    on_bad_rows: BadRowsPolicy = "fail"
    quarantine_dir: str = "datamove-quarantine"
    content_checksum: bool = False
    part_size: int = 16 * MiB
    row_group_target: int | None = None
    retries: int = 5
    encryption: tuple[tuple[str, str], ...] = ()
    sample_bytes: int = 4 * MiB
    # --format files: files above this size are stored as objects of their own.
    large_file_size: int = 16 * MiB
    # Plans with at most this much input run on threads in the command's
    # process; larger ones on an embedded cluster of worker processes.
    cluster_above: int = 2 * GiB
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise UsageError(
                f"--compression: {self.compression!r} is not one of "
                f"{', '.join(COMPRESSIONS)}"
            )
        if self.on_bad_rows not in ("fail", "skip", "quarantine"):
            raise UsageError("--on-bad-rows: use fail, skip or quarantine")
        if self.shard_size < 64 * 1024:
            raise UsageError("--shard-size: use at least 64KiB")
        if self.retries < 1:
            raise UsageError("--retries: use at least 1 (the first attempt counts)")
        if self.part_size < 5 * MiB:
            raise UsageError("--part-size: object stores need parts of at least 5MiB")
        if self.format == "files" and (self.partition_by or self.column_types):
            raise UsageError(
                "--format files packs whole files: --partition-by and --column-type "
                "do not apply; drop them"
            )
        if self.large_file_size < 1:
            raise UsageError("--large-file-size: use a positive size")
        if self.cluster_above < 0:
            raise UsageError("--cluster-above: use a size of 0 or more")

    @property
    def column_type_map(self) -> dict[str, pa.DataType]:
        return {name: parse_type(type_name) for name, type_name in self.column_types}

    def output_config(self) -> dict[str, Any]:
        """The options that determine the shards' bytes, as plain JSON data."""
        config = {
            "shard_size": self.shard_size,
            "compression": self.compression,
            "compression_level": self.compression_level,
            "partition_by": list(self.partition_by),
            "format": self.format,
            "column_types": [list(pair) for pair in self.column_types],
            "on_bad_rows": "fail" if self.on_bad_rows == "fail" else "drop",
            "extra": [list(pair) for pair in self.extra],
            "encryption": [list(pair) for pair in self.encryption],
        }
        if self.format == "files":
            config["large_file_size"] = self.large_file_size
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_digest(config: dict[str, Any]) -> str:
    """A short stable digest of JSON-able configuration."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
