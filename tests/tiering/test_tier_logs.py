"""Access log readers on hand-written samples in each provider's real format."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datamove.errors import InputError, UsageError
from datamove.tiering import (
    AccessEvent,
    LogKind,
    LogReadStats,
    detect_log_kind,
    read_access_logs,
    scan_access_times,
)
from datamove.tiering.logs import parse_timestamp

DATA = Path(__file__).parent / "data"
S3_LOG = DATA / "s3" / "2026-10-02-09-00-00-5E1F0A7C3B9D2E84"
GCS_LOG = DATA / "gcs" / "lake-prod_usage_2026_10_02_09_00_00_0a1b2c3d4e5f_v0"
AZURE_LOG = DATA / "azure" / "PT1H.json"
AZURE_ANALYTICS_LOG = DATA / "azure" / "000000.log"
CSV_LOG = DATA / "generic" / "reads.csv"
JSONL_LOG = DATA / "generic" / "reads.jsonl"

PART0 = "transactions/date=2026-10-01/part-00000.parquet"
PART1 = "transactions/date=2026-10-01/part-00001.parquet"
HEADED = "transactions/date=2026-09-30/part-00000.parquet"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def read(path: Path, kind: str | None = None) -> tuple[list[AccessEvent], LogReadStats]:
    stats = LogReadStats()
    return list(read_access_logs(path, kind, stats=stats)), stats


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (S3_LOG, LogKind.S3),
        (GCS_LOG, LogKind.GCS),
        (AZURE_LOG, LogKind.AZURE),
        (AZURE_ANALYTICS_LOG, LogKind.AZURE_ANALYTICS),
        (CSV_LOG, LogKind.CSV),
        (JSONL_LOG, LogKind.JSONL),
    ],
)
def test_the_format_is_detected_from_the_content(path: Path, kind: LogKind) -> None:
    assert detect_log_kind(path) is kind


def test_s3_server_access_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="datamove.tiering.logs"):
        events, stats = read(S3_LOG)

    assert events == [
        AccessEvent(at("2026-10-02T09:14:51"), f"lake-prod/{PART0}", 67108864, "GET"),
        AccessEvent(at("2026-10-02T09:14:53"), f"lake-prod/{PART1}", 8388608, "GET"),
        # Logged at +0200: normalised to UTC. A HEAD sends no body.
        AccessEvent(at("2026-10-02T09:30:02"), f"lake-prod/{HEADED}", 0, "HEAD"),
        # The key is URL-decoded (%20 is a space).
        AccessEvent(
            at("2026-10-02T09:31:17"),
            "lake-prod/reports/monthly summary 2026-09.parquet",
            1048576,
            "GET",
        ),
    ]
    # PUT, bucket listing and the 404 GET are not reads; line 7 is cut short.
    assert (stats.records, stats.ignored, stats.malformed) == (8, 3, 1)
    assert f"{S3_LOG}:7: skipped malformed S3 server access log record" in caplog.text


def test_gcs_usage_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="datamove.tiering.logs"):
        events, stats = read(GCS_LOG)

    assert events == [
        AccessEvent(at("2026-10-02T09:14:51"), f"lake-prod/{PART0}", 67108864, "GET"),
        AccessEvent(at("2026-10-02T09:14:55.500000"), f"lake-prod/{HEADED}", 0, "HEAD"),
        # IPv6 client, a referer with a comma inside its quotes, 206 partial.
        AccessEvent(at("2026-10-02T10:15:00"), f"lake-prod/{PART1}", 8388608, "GET"),
    ]
    assert (stats.records, stats.ignored, stats.malformed) == (7, 3, 1)
    assert f"{GCS_LOG}:7: skipped malformed GCS usage log" in caplog.text
    assert "expected 17 comma-separated fields, got 7" in caplog.text


def test_azure_resource_log_json_lines(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="datamove.tiering.logs"):
        events, stats = read(AZURE_LOG)

    # Paths start at the container, as adlfs lists them; the account is dropped.
    assert events == [
        AccessEvent(at("2026-10-02T09:14:51.372561"), PART0, 67108864, "GET"),
        AccessEvent(at("2026-10-02T09:30:02.500000"), HEADED, 0, "HEAD"),
        AccessEvent(at("2026-10-02T10:02:44.991234"), PART1, 8388608, "GET"),
    ]
    assert (stats.records, stats.ignored, stats.malformed) == (7, 3, 1)
    assert f"{AZURE_LOG}:6: skipped malformed Azure resource log" in caplog.text


def test_azure_storage_analytics_log() -> None:
    events, stats = read(AZURE_ANALYTICS_LOG)

    assert events == [
        AccessEvent(at("2026-10-02T09:15:04.123456"), PART0, 67108864, "GET"),
        AccessEvent(at("2026-10-02T09:30:02.500000"), HEADED, 0, "HEAD"),
    ]
    assert (stats.records, stats.ignored, stats.malformed) == (4, 1, 1)


def test_azure_resource_log_as_one_json_document(tmp_path: Path) -> None:
    lines = AZURE_LOG.read_text().splitlines()
    document = tmp_path / "records.json"
    document.write_text('{"records": [\n' + ",\n".join([lines[0], lines[2]]) + "\n]}")

    events, _ = read(document)

    assert [(e.path, e.operation) for e in events] == [(PART0, "GET"), (HEADED, "HEAD")]


def test_generic_csv_and_json_lines(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="datamove.tiering.logs"):
        csv_events, csv_stats = read(CSV_LOG)
        jsonl_events, jsonl_stats = read(JSONL_LOG)

    assert csv_events == [
        AccessEvent(at("2026-10-02T09:14:51"), f"lake-prod/{PART0}", 67108864, "GET"),
        AccessEvent(at("2026-10-02T09:30:02"), f"lake-prod/{HEADED}", 0, "HEAD"),
        # Epoch seconds, no bytes, no operation: a read of unknown extent.
        AccessEvent(
            at("2026-10-02T10:00:00"),
            "lake-prod/transactions/date=2026-09-29/",
            0,
            "READ",
        ),
        # A naive time is UTC.
        AccessEvent(
            at("2026-10-02T12:00:00"),
            "lake-prod/transactions/date=2026-09-28/part-00000.parquet",
            2048,
            "GET",
        ),
    ]
    assert csv_stats.malformed == 1
    assert f"{CSV_LOG}:5: skipped malformed generic CSV" in caplog.text
    assert "'yesterday'" in caplog.text

    assert [e.path for e in jsonl_events] == [
        f"lake-prod/{PART0}",
        "lake-prod/transactions/date=2026-09-29/",
    ]
    assert jsonl_events[1].operation == "READ"
    assert jsonl_stats.malformed == 2
    assert f"{JSONL_LOG}:3:" in caplog.text and "path is empty" in caplog.text
    assert f"{JSONL_LOG}:4:" in caplog.text and "bytes is negative" in caplog.text


def test_a_directory_is_read_at_any_depth_with_gzip(tmp_path: Path) -> None:
    nested = tmp_path / "logs" / "2026" / "10" / "02"
    nested.mkdir(parents=True)
    with gzip.open(nested / "s3.log.gz", "wb") as handle:
        handle.write(S3_LOG.read_bytes())
    shutil.copy(GCS_LOG, tmp_path / "logs" / "usage.csv")
    (tmp_path / "logs" / "empty.log").write_text("")
    (tmp_path / "logs" / ".DS_Store").write_bytes(b"\x00\x01 not a log")

    events, stats = read(tmp_path / "logs")

    assert len(events) == 4 + 3
    assert stats.files == 2
    assert stats.kinds == {"s3": 1, "gcs": 1}


def test_a_file_in_no_known_format_is_an_error_naming_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(S3_LOG, logs / "a.log")
    stray = logs / "notes.txt"
    stray.write_text("remember to rotate the keys\n")

    with pytest.raises(InputError, match=r"notes\.txt: not an access log"):
        list(read_access_logs(logs))


def test_a_forced_format_that_does_not_fit_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="none of its 8 records is a valid S3"):
        list(read_access_logs(GCS_LOG, "s3"))


def test_a_forced_format_reads_the_file() -> None:
    events, _ = read(S3_LOG, "s3")
    assert len(events) == 4


def test_unknown_format_name_and_missing_path() -> None:
    with pytest.raises(UsageError, match="'cloudtrail' is unknown; use one of s3"):
        list(read_access_logs(S3_LOG, "cloudtrail"))
    with pytest.raises(InputError, match="no such access log file or directory"):
        list(read_access_logs(DATA / "nowhere"))


def test_file_access_times(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "year=2025").mkdir(parents=True)
    old = source / "year=2025" / "a.csv"
    new = source / "b.csv"
    old.write_text("x\n")
    new.write_text("y\n")
    old_time = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    new_time = datetime(2026, 10, 1, 12, tzinfo=UTC).timestamp()
    os.utime(old, (old_time, old_time))
    os.utime(new, (new_time, new_time))

    events = sorted(read_access_logs(source, "atime"), key=lambda e: e.path)

    assert events == [
        AccessEvent(datetime(2026, 10, 1, 12, tzinfo=UTC), str(new), 0, "READ"),
        AccessEvent(datetime(2026, 1, 5, tzinfo=UTC), str(old), 0, "READ"),
    ]
    assert list(scan_access_times(old)) == [events[1]]


def test_timestamps() -> None:
    assert parse_timestamp("2026-10-02T09:14:51.3725611Z") == at(
        "2026-10-02T09:14:51.372561"
    )
    assert parse_timestamp("2026-10-02T11:14:51+02:00") == at("2026-10-02T09:14:51")
    assert parse_timestamp(1790932491) == at("2026-10-02T09:14:51")
    with pytest.raises(ValueError):
        parse_timestamp("last tuesday")


def test_azure_resource_log_pretty_printed_one_record_after_another(
    tmp_path: Path,
) -> None:
    lines = AZURE_LOG.read_text().splitlines()
    records = [json.loads(lines[0]), json.loads(lines[6])]
    pretty = tmp_path / "export.json"
    pretty.write_text("\n".join(json.dumps(r, indent=4) for r in records) + "\n")

    events, stats = read(pretty)

    assert [(e.path, e.bytes) for e in events] == [(PART0, 67108864), (PART1, 8388608)]
    assert stats.kinds == {"azure": 1}
