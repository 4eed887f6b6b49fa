"""Access history in: cloud access logs, a generic format, and file access times.

Every reader yields :class:`AccessEvent` objects, one per object read. Only
reads count: writes, listings, deletes and failed requests are dropped, and
so are records that name no object.

Event paths follow fsspec's spelling of the store the log came from, so that
they compare directly with listing paths:

* S3 server access logs: ``bucket/key`` (the logged key is URL-decoded);
* GCS usage logs: ``bucket/object``;
* Azure resource logs and Storage Analytics logs: ``container/blob`` (the
  account name that starts the logged object key is dropped, as adlfs does);
* generic CSV / JSON lines: the ``path`` column as written;
* file access times: the absolute local path.

A file whose format is not recognised is an error naming it. Inside a file
in a known format, a malformed record is skipped with a warning naming the
file and line, and counted in :class:`LogReadStats`.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from itertools import chain
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import fsspec
from fsspec import AbstractFileSystem

from datamove.errors import InputError, UsageError

log = logging.getLogger(__name__)

# Per file, this many malformed records are logged one by one; the rest in a sum.
_WARN_LIMIT = 5
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class AccessEvent:
    """One read of one object (or file) at one time.

    ``bytes`` is what the read returned; 0 when the log does not say (file
    access times) or the request returns no body (HEAD). ``operation`` is
    ``GET``, ``HEAD`` or ``READ`` (a read of unknown extent).
    """

    timestamp: datetime
    path: str
    bytes: int
    operation: str


class LogKind(StrEnum):
    """The access-history formats datamove reads."""

    S3 = "s3"
    GCS = "gcs"
    AZURE = "azure"
    AZURE_ANALYTICS = "azure-analytics"
    CSV = "csv"
    JSONL = "jsonl"
    ATIME = "atime"


_KIND_NAMES = {
    LogKind.S3: "S3 server access log",
    LogKind.GCS: "GCS usage log (CSV)",
    LogKind.AZURE: "Azure resource log (JSON lines)",
    LogKind.AZURE_ANALYTICS: "Azure Storage Analytics log",
    LogKind.CSV: "generic CSV (timestamp,path,bytes)",
    LogKind.JSONL: "generic JSON lines (timestamp, path, bytes)",
    LogKind.ATIME: "file access times",
}


@dataclass
class LogReadStats:
    """Counts gathered while logs are read; pass one in to see them afterwards.

    ``records`` counts every record seen, ``events`` the reads yielded,
    ``ignored`` well-formed records that are not object reads, ``malformed``
    records that could not be parsed and were skipped.
    """

    files: int = 0
    records: int = 0
    events: int = 0
    ignored: int = 0
    malformed: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The counts as plain JSON-serialisable values."""
        return {
            "files": self.files,
            "records": self.records,
            "events": self.events,
            "ignored": self.ignored,
            "malformed": self.malformed,
            "kinds": dict(sorted(self.kinds.items())),
        }


class _Malformed(Exception):
    """A record that cannot be parsed; the message says why."""


class _Header:
    """What a parser returns for a header row: neither a read nor a record."""


_HEADER = _Header()


# --- public entry points ---------------------------------------------------


def read_access_logs(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    kind: LogKind | str | None = None,
    *,
    stats: LogReadStats | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[AccessEvent]:
    """Yield the reads recorded in a log file, a directory of logs, or several.

    Args:
        source: a local path or fsspec URL, or a list of them. A directory is
            read as a whole, at any depth; files may be gzip-compressed;
            hidden files (a leading dot) are skipped. With ``kind="atime"``
            the source is a local directory whose files' access times are
            read instead (see :func:`scan_access_times`).
        kind: force one format; by default each file's format is detected
            from its first record.
        stats: an accumulator that receives the counts.
        storage_options: fsspec options for reading logs from a store.

    Yields:
        One :class:`AccessEvent` per read, in file order.

    Raises:
        UsageError: ``kind`` is not a known format name.
        InputError: a source does not exist, a file is in no known format,
            or a file forced to a format holds no valid record of it.
    """
    forced = _kind(kind)
    counts = stats if stats is not None else LogReadStats()
    sources = [source] if isinstance(source, str | os.PathLike) else list(source)
    for one in sources:
        if forced is LogKind.ATIME:
            yield from scan_access_times(one, stats=counts)
            continue
        fs, root = fsspec.core.url_to_fs(str(one), **dict(storage_options or {}))
        for path in _log_files(fs, root, str(one)):
            yield from _read_file(fs, path, forced, counts)


def detect_log_kind(
    path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
) -> LogKind | None:
    """The format of one log file from its first record; None for an empty file.

    Raises:
        InputError: the file is in no known format.
    """
    fs, root = fsspec.core.url_to_fs(str(path), **dict(storage_options or {}))
    with _open_text(fs, root) as handle:
        first = _first_record(handle)
        if first is None:
            return None
        return _detect(root, first[1], handle, start=first[0])[0]


def scan_access_times(
    root: str | os.PathLike[str], *, stats: LogReadStats | None = None
) -> Iterator[AccessEvent]:
    """Yield one ``READ`` event per file under a local directory, at its atime.

    Only the last access of each file is known, and only as precisely as the
    mount records it (``relatime`` updates it at most daily, ``noatime``
    never). Scan before anything reads the files, datamove's own sync
    included: reading a file moves its access time to now.

    Raises:
        InputError: ``root`` does not exist.
    """
    counts = stats if stats is not None else LogReadStats()
    base = os.path.abspath(os.fspath(root))
    if not os.path.exists(base):
        raise InputError(f"{base}: no such file or directory; pass the source root")
    paths = [base] if os.path.isfile(base) else _walk_files(base)
    counts.kinds[LogKind.ATIME.value] = counts.kinds.get(LogKind.ATIME.value, 0) + 1
    for path in paths:
        try:
            info = os.stat(path)
        except OSError as error:
            log.warning("%s: skipped, cannot read its access time (%s)", path, error)
            counts.malformed += 1
            continue
        counts.records += 1
        counts.events += 1
        when = datetime.fromtimestamp(info.st_atime, UTC)
        yield AccessEvent(when, path, 0, "READ")


# --- files -----------------------------------------------------------------


def _kind(kind: LogKind | str | None) -> LogKind | None:
    if kind is None or isinstance(kind, LogKind):
        return kind
    try:
        return LogKind(kind.lower())
    except ValueError:
        known = ", ".join(k.value for k in LogKind)
        raise UsageError(
            f"access log format {kind!r} is unknown; use one of {known}"
        ) from None


def _walk_files(base: str) -> list[str]:
    found: list[str] = []
    for directory, subdirs, files in os.walk(base):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found.extend(os.path.join(directory, f) for f in sorted(files))
    return found


def _log_files(fs: AbstractFileSystem, root: str, shown: str) -> list[str]:
    if fs.isdir(root):
        files = sorted(str(p) for p in fs.find(root))
        return [p for p in files if not p.rsplit("/", 1)[-1].startswith(".")]
    if fs.exists(root):
        return [root]
    raise InputError(f"{shown}: no such access log file or directory; check the path")


def _open_text(fs: AbstractFileSystem, path: str) -> IO[str]:
    raw = fs.open(path, "rb")
    head = raw.read(2)
    raw.seek(0)
    binary: Any = gzip.GzipFile(fileobj=raw) if head == _GZIP_MAGIC else raw
    return io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="")


def _first_record(handle: IO[str]) -> tuple[int, str] | None:
    for number, line in enumerate(handle, 1):
        if line.strip():
            return number, line
    return None


def _read_file(
    fs: AbstractFileSystem, path: str, forced: LogKind | None, counts: LogReadStats
) -> Iterator[AccessEvent]:
    with _open_text(fs, path) as handle:
        first = _first_record(handle)
        if first is None:
            log.debug("%s: empty, skipped", path)
            return
        number, line = first
        if forced is None:
            kind, records = _detect(path, line, handle, start=number)
        else:
            kind = forced
            records = chain([(number, line)], enumerate(handle, number + 1))
        counts.files += 1
        counts.kinds[kind.value] = counts.kinds.get(kind.value, 0) + 1
        yield from _parse_records(path, kind, records, counts, forced is not None)


def _detect(
    path: str, line: str, handle: IO[str], start: int = 1
) -> tuple[LogKind, Iterator[tuple[int, Any]]]:
    """The kind of a file from its first non-blank line, and its records."""
    rest = enumerate(handle, start + 1)
    stripped = line.strip()
    if _S3_START.match(stripped):
        return LogKind.S3, chain([(start, line)], rest)
    if _AZURE_ANALYTICS_START.match(stripped):
        return LogKind.AZURE_ANALYTICS, chain([(start, line)], rest)
    header = [h.strip().lower() for h in _csv_fields(stripped, ",")]
    if "time_micros" in header and "cs_method" in header:
        return LogKind.GCS, chain([(start, line)], rest)
    if "timestamp" in header and "path" in header:
        return LogKind.CSV, chain([(start, line)], rest)
    if stripped.startswith(("{", "[")):
        try:
            record = json.loads(stripped)
        except json.JSONDecodeError:
            # JSON across lines: {"records": [...]}, [...] or objects one
            # after another, pretty-printed.
            text = stripped + "".join(more for _, more in rest)
            return _json_document(path, text)
        if isinstance(record, dict):
            kind = _json_kind(record)
            if kind is not None:
                return kind, chain([(start, line)], rest)
    raise _unknown_format(path)


def _json_values(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    values, position = [], 0
    while position < len(text):
        value, position = decoder.raw_decode(text, position)
        values.append(value)
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
    return values


def _json_document(path: str, text: str) -> tuple[LogKind, Iterator[tuple[int, Any]]]:
    try:
        values = _json_values(text)
    except json.JSONDecodeError:
        raise _unknown_format(path) from None
    records: Any = values
    if len(values) == 1 and isinstance(values[0], dict) and "records" in values[0]:
        records = values[0]["records"]
    elif len(values) == 1 and isinstance(values[0], list):
        records = values[0]
    if isinstance(records, list) and records and isinstance(records[0], dict):
        kind = _json_kind(records[0])
        if kind is not None:
            # Records of a document are numbered by position, not by line.
            return kind, enumerate(records, 1)
    raise _unknown_format(path)


def _json_kind(record: Mapping[str, Any]) -> LogKind | None:
    if "operationName" in record and "time" in record:
        return LogKind.AZURE
    if "timestamp" in record and "path" in record:
        return LogKind.JSONL
    return None


def _unknown_format(path: str) -> InputError:
    known = "; ".join(f"{k.value}: {name}" for k, name in _KIND_NAMES.items())
    return InputError(
        f"{path}: not an access log in a format datamove reads ({known}); "
        "remove it from the log directory or force the format"
    )


def _parse_records(
    path: str,
    kind: LogKind,
    records: Iterator[tuple[int, Any]],
    counts: LogReadStats,
    forced: bool,
) -> Iterator[AccessEvent]:
    parser = _PARSERS[kind]()
    malformed = good = 0
    for number, record in records:
        if isinstance(record, str) and not record.strip():
            continue
        try:
            event = parser.parse(record)
        except _Malformed as why:
            malformed += 1
            counts.records += 1
            counts.malformed += 1
            if malformed <= _WARN_LIMIT:
                log.warning(
                    "%s:%d: skipped malformed %s record: %s",
                    path,
                    number,
                    _KIND_NAMES[kind],
                    why,
                )
            continue
        if isinstance(event, _Header):
            continue
        counts.records += 1
        good += 1
        if event is None:
            counts.ignored += 1
            continue
        counts.events += 1
        yield event
    if malformed > _WARN_LIMIT:
        log.warning(
            "%s: %d more malformed records skipped", path, malformed - _WARN_LIMIT
        )
    if forced and malformed and not good:
        raise InputError(
            f"{path}: none of its {malformed} records is a valid "
            f"{_KIND_NAMES[kind]} record; check the forced access log format"
        )


# --- helpers shared by parsers --------------------------------------------


def _csv_fields(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter, quotechar='"'))
    except (csv.Error, StopIteration):
        return []


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(value: Any) -> datetime:
    """An ISO 8601 string or epoch seconds as an aware UTC datetime.

    Naive times are taken as UTC. Raises ``ValueError`` when unreadable.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return datetime.fromtimestamp(float(text), UTC)
    text = _FRACTION.sub(r"\1", text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _size(value: Any, what: str) -> int:
    if value in (None, "", "-"):
        return 0
    if isinstance(value, bool):
        raise _Malformed(f"{what} is not a byte count: {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _Malformed(f"{what} is not a byte count: {value!r}") from None
    if number < 0:
        raise _Malformed(f"{what} is negative: {number}")
    return number


def _status_ok(value: Any, what: str) -> bool:
    try:
        status = int(value)
    except (TypeError, ValueError):
        raise _Malformed(f"{what} is not an HTTP status: {value!r}") from None
    return status < 400


# --- S3 server access logs -------------------------------------------------

_S3_START = re.compile(
    r"^\S+ \S+ \[\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "
)
_S3_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[[^\]]*\]|\S+')
_MONTHS = {
    name: number
    for number, name in enumerate(
        [
            "jan",
            "feb",
            "mar",
            "apr",
            "may",
            "jun",
            "jul",
            "aug",
            "sep",
            "oct",
            "nov",
            "dec",
        ],
        1,
    )
}
_S3_TIME = re.compile(
    r"(\d{2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})"
)
_S3_READS = {
    "REST.GET.OBJECT": "GET",
    "REST.HEAD.OBJECT": "HEAD",
    "WEBSITE.GET.OBJECT": "GET",
    "WEBSITE.HEAD.OBJECT": "HEAD",
}


class _S3Parser:
    """Fields: owner bucket [time] ip requester id operation key "uri" status
    error bytes-sent object-size ... (space-separated, ``-`` for none)."""

    def parse(self, line: str) -> AccessEvent | _Header | None:
        tokens = _S3_TOKEN.findall(line)
        if len(tokens) < 12 or not tokens[2].startswith("["):
            raise _Malformed(
                f"expected at least 12 fields with a [time] third, got {len(tokens)}"
            )
        when = self._time(tokens[2][1:-1])
        operation = _S3_READS.get(tokens[6])
        status_ok = _status_ok(tokens[9], "HTTP status")
        sent = _size(tokens[11], "bytes sent")
        key = tokens[7]
        if operation is None or not status_ok or key == "-":
            return None
        return AccessEvent(when, f"{tokens[1]}/{unquote(key)}", sent, operation)

    @staticmethod
    def _time(text: str) -> datetime:
        match = _S3_TIME.fullmatch(text)
        month = _MONTHS.get(match.group(2).lower(), 0) if match else 0
        if match is None or not month:
            raise _Malformed(f"time [{text}] is not dd/Mon/yyyy:HH:MM:SS +zzzz")
        day, _, year, hour, minute, second, sign, off_h, off_m = match.groups()
        offset = (int(off_h) * 60 + int(off_m)) * (1 if sign == "+" else -1)
        zone = timezone(timedelta(minutes=offset))
        try:
            local = datetime(
                int(year),
                month,
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=zone,
            )
        except ValueError as error:
            raise _Malformed(f"time [{text}]: {error}") from None
        return local.astimezone(UTC)


# --- GCS usage logs --------------------------------------------------------


class _GCSParser:
    """CSV with a header row; columns are found by name, so new ones are fine."""

    def __init__(self) -> None:
        self.columns: dict[str, int] | None = None

    def parse(self, line: str) -> AccessEvent | _Header | None:
        fields = _csv_fields(line.strip(), ",")
        if self.columns is None or (fields and fields[0] == "time_micros"):
            self._header(fields)
            return _HEADER
        columns = self.columns
        if len(fields) != len(columns):
            raise _Malformed(
                f"expected {len(columns)} comma-separated fields, got {len(fields)}"
            )
        try:
            micros = int(fields[columns["time_micros"]])
        except ValueError:
            raise _Malformed("time_micros is not a whole number") from None
        when = datetime.fromtimestamp(micros / 1_000_000, UTC)
        method = fields[columns["cs_method"]].upper()
        status_ok = _status_ok(fields[columns["sc_status"]], "sc_status")
        sent = _size(fields[columns["sc_bytes"]], "sc_bytes")
        bucket = fields[columns["cs_bucket"]]
        name = fields[columns["cs_object"]]
        if method not in ("GET", "HEAD") or not status_ok or not name or not bucket:
            return None
        return AccessEvent(when, f"{bucket}/{unquote(name)}", sent, method)

    def _header(self, fields: list[str]) -> None:
        names = [f.strip().lower() for f in fields]
        needed = (
            "time_micros",
            "cs_method",
            "sc_status",
            "sc_bytes",
            "cs_bucket",
            "cs_object",
        )
        missing = [n for n in needed if n not in names]
        if missing:
            raise _Malformed(f"header lacks the columns {', '.join(missing)}")
        self.columns = {name: index for index, name in enumerate(names)}


# --- Azure resource logs (JSON) --------------------------------------------

_AZURE_READS = {"GetBlob": "GET", "GetBlobProperties": "HEAD"}


def _azure_path(object_key: str | None, uri: str | None) -> str | None:
    if object_key:
        # "/account/container/blob": adlfs paths start at the container.
        parts = object_key.strip('"').lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 and parts[1] else None
    if uri:
        path = unquote(urlsplit(uri).path).lstrip("/")
        return path if "/" in path else None
    return None


class _AzureParser:
    """Records with ``time``, ``operationName``, ``statusCode``, ``uri`` and
    ``properties`` (``objectKey``, ``responseBodySize``)."""

    def parse(self, record: str | Mapping[str, Any]) -> AccessEvent | _Header | None:
        if isinstance(record, str):
            try:
                record = json.loads(record.strip())
            except json.JSONDecodeError as error:
                raise _Malformed(f"not JSON ({error.msg})") from None
        if not isinstance(record, Mapping):
            raise _Malformed("not a JSON object")
        try:
            when = parse_timestamp(record.get("time"))
        except ValueError:
            raise _Malformed(f"'time' is not a time: {record.get('time')!r}") from None
        name = record.get("operationName")
        if not isinstance(name, str):
            raise _Malformed("'operationName' is missing")
        properties = record.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise _Malformed("'properties' is not an object")
        operation = _AZURE_READS.get(name)
        status = record.get("statusCode", 200)
        status_ok = _status_ok(status, "statusCode")
        sent = _size(properties.get("responseBodySize"), "responseBodySize")
        path = _azure_path(properties.get("objectKey"), record.get("uri"))
        if operation is None or not status_ok or path is None:
            return None
        return AccessEvent(when, path, sent, operation)


# --- Azure Storage Analytics logs (classic, semicolon-delimited) -------------

_AZURE_ANALYTICS_START = re.compile(r"^\d\.\d;\d{4}-\d{2}-\d{2}T")


class _AzureAnalyticsParser:
    """``version;start-time;operation;status;http-status;...;request-url;
    object-key;...;response-packet-size;...`` (version 1.0 and 2.0)."""

    def parse(self, line: str) -> AccessEvent | _Header | None:
        fields = _csv_fields(line.rstrip("\r\n"), ";")
        if len(fields) < 21:
            raise _Malformed(
                f"expected at least 21 ';'-separated fields, got {len(fields)}"
            )
        try:
            when = parse_timestamp(fields[1])
        except ValueError:
            raise _Malformed(
                f"request-start-time is not a time: {fields[1]!r}"
            ) from None
        operation = _AZURE_READS.get(fields[2])
        status_ok = _status_ok(fields[4], "http-status-code")
        sent = _size(fields[20], "response-packet-size")
        path = _azure_path(html.unescape(fields[12]), None)
        if operation is None or not status_ok or path is None:
            return None
        return AccessEvent(when, path, sent, operation)


# --- generic formats -------------------------------------------------------


def _generic_event(timestamp: Any, path: Any, size: Any, operation: Any) -> AccessEvent:
    try:
        when = parse_timestamp(timestamp)
    except ValueError:
        raise _Malformed(
            f"timestamp is not ISO 8601 or epoch seconds: {timestamp!r}"
        ) from None
    if not isinstance(path, str) or not path.strip():
        raise _Malformed("path is empty")
    op = str(operation).upper() if operation not in (None, "") else "READ"
    return AccessEvent(when, path.strip(), _size(size, "bytes"), op)


class _CSVParser:
    """A header with ``timestamp`` and ``path`` (``bytes``, ``operation``
    optional), then one read per row."""

    def __init__(self) -> None:
        self.columns: dict[str, int] | None = None

    def parse(self, line: str) -> AccessEvent | _Header | None:
        fields = _csv_fields(line.strip(), ",")
        if self.columns is None:
            names = [f.strip().lower() for f in fields]
            if "timestamp" not in names or "path" not in names:
                raise _Malformed("header lacks the columns timestamp and path")
            self.columns = {name: index for index, name in enumerate(names)}
            return _HEADER
        if len(fields) != len(self.columns):
            expected = len(self.columns)
            raise _Malformed(
                f"expected {expected} comma-separated fields, got {len(fields)}"
            )

        def get(name: str) -> str | None:
            index = self.columns.get(name) if self.columns else None
            return fields[index] if index is not None else None

        return _generic_event(
            get("timestamp"), get("path"), get("bytes"), get("operation")
        )


class _JSONLParser:
    """One JSON object per line with ``timestamp``, ``path`` and ``bytes``."""

    def parse(self, record: str | Mapping[str, Any]) -> AccessEvent | _Header | None:
        if isinstance(record, str):
            try:
                record = json.loads(record.strip())
            except json.JSONDecodeError as error:
                raise _Malformed(f"not JSON ({error.msg})") from None
        if not isinstance(record, Mapping):
            raise _Malformed("not a JSON object")
        return _generic_event(
            record.get("timestamp"),
            record.get("path"),
            record.get("bytes"),
            record.get("operation"),
        )


_PARSERS: dict[LogKind, type[Any]] = {
    LogKind.S3: _S3Parser,
    LogKind.GCS: _GCSParser,
    LogKind.AZURE: _AzureParser,
    LogKind.AZURE_ANALYTICS: _AzureAnalyticsParser,
    LogKind.CSV: _CSVParser,
    LogKind.JSONL: _JSONLParser,
}
