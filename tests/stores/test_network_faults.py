"""Network and store faults during a whole sync, through real HTTP.

Faults are injected by :func:`tests.servers.tcp_proxy` between s3fs and
moto. Every test asserts the outcome the reliability guarantees promise:
success after retries, or a clear failure that records nothing damaged and
that a later run resumes from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.dataset as ds
import pytest
from s3fs import S3FileSystem

import datamove
from datamove.checksum import crc32c_of
from tests.core.helpers import write_csv
from tests.servers import (
    MOTO_KEY_ID,
    MOTO_SECRET,
    FixedResponse,
    HttpFault,
    ProxyStats,
    fault_server,
    s3_error,
    tcp_proxy,
)
from tests.stores.conftest import Bucket

pytestmark = pytest.mark.cloud

# Request lines of shard uploads (PutObject of a .parquet key).
SHARD_PUT = r"^PUT \S+\.parquet "
SHARD_GET = r"^GET \S+\.parquet "
# Small shards, so that four source files make several units of a few shards.
ROWS_PER_FILE = 3_000
SHARD_SIZE = "64KiB"


def _source(tmp_path: Path, files: int = 4) -> Path:
    for index in range(files):
        write_csv(tmp_path / "src" / f"f{index}.csv", ROWS_PER_FILE, seed=index,
                  start=index * 10_000)  # fmt: skip
    return tmp_path / "src"


def _sync(source: Path, url: str, options: dict[str, Any], **values: Any) -> Any:
    """``datamove.sync`` in this process, with the suite's shard size."""
    return datamove.sync(str(source), url, dest_options=options, workers=1,
                         shard_size=SHARD_SIZE, **values)  # fmt: skip


def _proxied(
    bucket: Bucket,
    proxy_port: int,
    *,
    timeout: float | None = None,
    client_attempts: int | None = None,
) -> dict[str, Any]:
    """Storage options that reach moto through the proxy.

    ``timeout`` shortens botocore's connect and read timeouts (seconds);
    ``client_attempts`` caps botocore's own attempts per request, so that
    failures reach s3fs's retries and then datamove's policy.
    """
    options: dict[str, Any] = {
        **bucket.server.storage_options,
        "endpoint_url": f"http://127.0.0.1:{proxy_port}",
    }
    config: dict[str, Any] = {}
    if timeout is not None:
        config.update(read_timeout=timeout, connect_timeout=timeout)
    if client_attempts is not None:
        config["retries"] = {"total_max_attempts": client_attempts}
    if config:
        options["config_kwargs"] = config
    return options


@pytest.fixture
def proxy_to(s3_bucket: Bucket) -> Any:
    """``proxy_to(*faults)``: a fault proxy in front of the test's moto server."""
    port = urlsplit(s3_bucket.server.endpoint).port
    assert port is not None

    def start(*faults: HttpFault) -> Any:
        return tcp_proxy(port, faults=faults)

    return start


def _state_documents(bucket: Bucket, prefix: str) -> Iterator[dict[str, Any]]:
    """Every unit record at the destination: receipts, then the manifest's."""
    fs = bucket.server.filesystem()
    state = f"{bucket.name}/{prefix}/_datamove"
    for path in fs.find(f"{state}/receipts"):
        yield json.loads(fs.cat(path))
    if fs.exists(f"{state}/manifest.json"):
        yield from json.loads(fs.cat(f"{state}/manifest.json"))["units"]


def _recorded_damage(bucket: Bucket, prefix: str) -> list[str]:
    """Shards a receipt or the manifest names whose bytes differ from the record.

    Each named shard is read back from moto directly and checked against the
    size and CRC32C recorded for it.
    """
    fs = bucket.server.filesystem()
    problems = []
    for unit in _state_documents(bucket, prefix):
        for shard in unit["shards"]:
            path = f"{bucket.name}/{prefix}/{shard['path']}"
            if not fs.exists(path):
                problems.append(f"{path}: recorded but missing")
                continue
            data = fs.cat(path)
            if len(data) != shard["size"] or crc32c_of([data]) != shard["crc32c"]:
                problems.append(f"{path}: recorded bytes differ")
    return problems


def _unrecorded_shards(bucket: Bucket, prefix: str) -> set[str]:
    """Shard objects at the destination that no receipt or manifest names."""
    fs = bucket.server.filesystem()
    root = f"{bucket.name}/{prefix}/"
    stored = {
        path.removeprefix(root)
        for path in fs.find(root)
        if path.endswith(".parquet") and "/_datamove/" not in path
    }
    named = {
        s["path"] for unit in _state_documents(bucket, prefix) for s in unit["shards"]
    }
    return stored - named


def _rows(bucket: Bucket, prefix: str) -> int:
    fs = bucket.server.filesystem()
    shards = [p for p in fs.find(f"{bucket.name}/{prefix}") if p.endswith(".parquet")]
    return ds.dataset(shards, filesystem=fs, format="parquet").count_rows()


def _resumes_and_verifies(bucket: Bucket, source: Path, files: int) -> None:
    """A run without faults completes, verifies deep and leaves nothing else."""
    url = f"s3://{bucket.name}/lake"
    options = dict(bucket.server.storage_options)
    report = _sync(source, url, options)
    assert report.status == "ok"
    assert datamove.verify(url, deep=True, dest_options=options).ok
    assert _unrecorded_shards(bucket, "lake") == set()
    assert _rows(bucket, "lake") == files * ROWS_PER_FILE


def _picked(stats: ProxyStats, pattern: str) -> bool:
    import re

    return bool(stats.faulted) and all(re.search(pattern, f) for f in stats.faulted)


# Connection resets.


def test_connection_resets_end_in_success(s3_bucket: Bucket, tmp_path: Path) -> None:
    source = _source(tmp_path)
    port = urlsplit(s3_bucket.server.endpoint).port
    assert port is not None
    with tcp_proxy(port, reset_first=6) as (proxy_port, stats):
        options = {
            **s3_bucket.server.storage_options,
            "endpoint_url": f"http://127.0.0.1:{proxy_port}",
        }
        url = f"s3://{s3_bucket.name}/lake"
        report = _sync(source, url, options)
        assert stats.resets == 6
        assert report.status == "ok"
        # s3fs retries a reset connection itself before datamove sees it.
        checked = datamove.verify(url, deep=True, dest_options=options)
    assert checked.ok
    s3_bucket.fs.invalidate_cache()
    assert _rows(s3_bucket, "lake") == 4 * ROWS_PER_FILE


# Stalls longer than the client's timeouts.


def test_stalled_uploads_time_out_and_are_retried(
    s3_bucket: Bucket, proxy_to: Any, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    url = f"s3://{s3_bucket.name}/lake"
    # The store's answer is held for a minute; the client waits two seconds.
    with proxy_to(HttpFault("stall", match=SHARD_PUT, count=2)) as (port, stats):
        options = _proxied(s3_bucket, port, timeout=2.0, client_attempts=1)
        report = _sync(source, url, options)
    assert stats.faults == 2 and _picked(stats, SHARD_PUT)
    assert report.status == "ok"
    direct = dict(s3_bucket.server.storage_options)
    assert datamove.verify(url, deep=True, dest_options=direct).ok
    assert _recorded_damage(s3_bucket, "lake") == []
    assert _unrecorded_shards(s3_bucket, "lake") == set()
    assert _rows(s3_bucket, "lake") == 4 * ROWS_PER_FILE


@pytest.mark.slow
@pytest.mark.timeout(120)  # the bound: never waits for the stall to end
def test_endless_stall_fails_clearly_and_a_rerun_completes(
    s3_bucket: Bucket, proxy_to: Any, tmp_path: Path
) -> None:
    source = _source(tmp_path, files=1)
    url = f"s3://{s3_bucket.name}/lake"
    with proxy_to(HttpFault("stall", match=SHARD_PUT, count=None)) as (port, stats):
        options = _proxied(s3_bucket, port, timeout=1.0, client_attempts=1)
        with pytest.raises(datamove.SyncFailedError) as caught:
            _sync(source, url, options, retries=1)
    message = str(caught.value)
    assert url in message and "Timeout" in message
    assert stats.faults >= 1 and _picked(stats, SHARD_PUT)
    # The stalled PUT may have landed: unrecorded, it is the next run's to delete.
    assert list(_state_documents(s3_bucket, "lake")) == []
    _resumes_and_verifies(s3_bucket, source, files=1)


# Truncated responses.


def test_truncated_responses_are_retried(
    s3_bucket: Bucket, proxy_to: Any, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    url = f"s3://{s3_bucket.name}/lake"
    with proxy_to(HttpFault("truncate", match=SHARD_PUT, count=2)) as (port, stats):
        options = _proxied(s3_bucket, port, client_attempts=1)
        report = _sync(source, url, options)
    assert stats.faults == 2 and _picked(stats, SHARD_PUT)
    assert report.status == "ok"

    # Reads cut short while verifying: a listing and two shard downloads.
    faults = (
        HttpFault("truncate", match=r"^GET \S+list-type=2", count=1),
        HttpFault("truncate", match=SHARD_GET, count=2),
    )
    with proxy_to(*faults) as (port, stats):
        options = _proxied(s3_bucket, port, client_attempts=1)
        checked = datamove.verify(url, deep=True, dest_options=options)
    assert stats.faults == 3
    assert checked.ok and checked.rows_checked == 4 * ROWS_PER_FILE
    assert _recorded_damage(s3_bucket, "lake") == []


def test_endless_truncation_fails_clearly_and_a_rerun_completes(
    s3_bucket: Bucket, proxy_to: Any, tmp_path: Path
) -> None:
    source = _source(tmp_path, files=1)
    url = f"s3://{s3_bucket.name}/lake"
    fault = HttpFault("truncate", match=SHARD_PUT, count=None)
    with proxy_to(fault) as (port, stats):
        options = _proxied(s3_bucket, port, client_attempts=1)
        with pytest.raises(datamove.SyncFailedError) as caught:
            _sync(source, url, options, retries=2)
    assert url in str(caught.value) and "Traceback" not in str(caught.value)
    assert "gave up after 2 attempts" in str(caught.value)
    assert caught.value.report.units_failed == 1  # type: ignore[attr-defined]
    assert stats.faults >= 2 and _picked(stats, SHARD_PUT)
    assert list(_state_documents(s3_bucket, "lake")) == []
    _resumes_and_verifies(s3_bucket, source, files=1)


# A bit flipped in an upload body, after the client computed its checksums.


def test_flipped_bit_in_an_upload_is_caught_and_rewritten(
    s3_bucket: Bucket, proxy_to: Any, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    url = f"s3://{s3_bucket.name}/lake"
    with proxy_to(HttpFault("flip", match=SHARD_PUT, count=1)) as (port, stats):
        options = _proxied(s3_bucket, port)
        report = _sync(source, url, options)
    assert stats.faults == 1 and _picked(stats, SHARD_PUT)
    # moto keeps damaged bytes without complaint; the ETag check catches them
    # and the unit is written again.
    assert report.status == "ok"
    assert report.retries == 1
    assert report.retry_causes == {"ChecksumMismatchError": 1}
    checked = datamove.verify(
        url, deep=True, dest_options=s3_bucket.server.storage_options
    )
    assert checked.ok and checked.rows_checked == 4 * ROWS_PER_FILE
    assert _recorded_damage(s3_bucket, "lake") == []
    assert _unrecorded_shards(s3_bucket, "lake") == set()


def test_flipped_bits_in_every_upload_fail_clearly_and_record_nothing(
    s3_bucket: Bucket, proxy_to: Any, tmp_path: Path
) -> None:
    source = _source(tmp_path, files=1)
    url = f"s3://{s3_bucket.name}/lake"
    with proxy_to(HttpFault("flip", match=SHARD_PUT, count=None)) as (port, stats):
        options = _proxied(s3_bucket, port)
        with pytest.raises(datamove.SyncFailedError) as caught:
            _sync(source, url, options, retries=2)
    message = str(caught.value)
    assert url in message and "damaged" in message
    assert stats.faults == 2  # one per attempt
    report = caught.value.report  # type: ignore[attr-defined]
    assert report.units_failed == 1 and report.units_written == 0
    # The damaged object was deleted again: nothing under a shard name at all.
    assert list(_state_documents(s3_bucket, "lake")) == []
    assert _unrecorded_shards(s3_bucket, "lake") == set()
    _resumes_and_verifies(s3_bucket, source, files=1)


# Store errors.


@pytest.mark.parametrize(
    "status",
    [503, 500, 403, 404],
)
def test_store_errors_fail_clearly_before_data_moves(
    tmp_path: Path, status: int
) -> None:
    source = _source(tmp_path)
    with fault_server(FixedResponse(status)) as endpoint:
        options = {
            "key": "k",
            "secret": "s",
            "endpoint_url": endpoint,
            "config_kwargs": {"retries": {"max_attempts": 1}},
        }
        with pytest.raises(datamove.StorageError) as caught:
            datamove.sync(str(source), "s3://bucket/lake", dest_options=options,
                          workers=1, retries=2)  # fmt: skip
    message = str(caught.value).lower()
    assert "s3://bucket/lake" in message
    assert str(status) in message
    assert isinstance(
        caught.value,
        datamove.TransientStorageError
        if status >= 500
        else datamove.PermanentStorageError,
    )


@pytest.mark.parametrize(
    ("answer", "faults", "retries"),
    [
        # s3fs retries SlowDown itself; two answers more than it tries reach
        # datamove's policy once.
        (
            s3_error(503, "SlowDown", "Please reduce your request rate."),
            S3FileSystem.retries + 2,
            1,
        ),
        # An InternalError goes straight to datamove's policy, each time.
        (s3_error(500, "InternalError", "We encountered an internal error."), 2, 2),
    ],
    ids=["503-slowdown", "500-internal"],
)
def test_store_errors_mid_sync_are_retried_and_counted(
    s3_bucket: Bucket,
    proxy_to: Any,
    tmp_path: Path,
    answer: FixedResponse,
    faults: int,
    retries: int,
) -> None:
    source = _source(tmp_path)
    url = f"s3://{s3_bucket.name}/lake"
    # The first shard goes up untouched: the errors come in the middle.
    fault = HttpFault("answer", match=SHARD_PUT, after=1, count=faults, response=answer)
    with proxy_to(fault) as (port, stats):
        options = _proxied(s3_bucket, port, client_attempts=1)
        report = _sync(source, url, options)
    assert stats.faults == faults
    assert report.status == "ok"
    assert report.retries == retries
    code = "SlowDown" if answer.status == 503 else "InternalError"
    cause = f"TransientStorageError: ClientError HTTP {answer.status} {code}"
    assert report.retry_causes == {cause: retries}
    checked = datamove.verify(
        url, deep=True, dest_options=s3_bucket.server.storage_options
    )
    assert checked.ok and checked.rows_checked == 4 * ROWS_PER_FILE
    assert _unrecorded_shards(s3_bucket, "lake") == set()


def test_permission_revoked_mid_run_fails_clearly_and_resumes(
    s3_bucket: Bucket, proxy_to: Any, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    url = f"s3://{s3_bucket.name}/lake"
    # Every PUT is denied once the first unit's receipt is written.
    revoked = HttpFault(
        "answer",
        match=r"^PUT ",
        after_match=r"^PUT \S+/_datamove/receipts/",
        after=1,
        count=None,
        response=s3_error(403, "AccessDenied", "Access Denied"),
    )
    with proxy_to(revoked) as (port, stats):
        options = _proxied(s3_bucket, port, client_attempts=1)
        with pytest.raises(datamove.SyncFailedError) as caught:
            _sync(source, url, options)
    message = str(caught.value)
    assert url in message and "access denied" in message
    assert MOTO_KEY_ID not in message and MOTO_SECRET not in message
    report = caught.value.report  # type: ignore[attr-defined]
    assert report.units_written == 1 and report.units_failed >= 1
    # Permanent: each remaining unit tried once, not retried.
    assert report.retries == 0 and stats.faults >= report.units_failed
    receipts = list(_state_documents(s3_bucket, "lake"))
    assert len(receipts) == 1
    assert _recorded_damage(s3_bucket, "lake") == []

    # Permission restored: the next run keeps the finished unit and completes.
    options = dict(s3_bucket.server.storage_options)
    resumed = _sync(source, url, options)
    assert resumed.status == "ok"
    assert resumed.units_written == report.units_failed
    assert resumed.shards_skipped == len(receipts[0]["shards"])
    assert datamove.verify(url, deep=True, dest_options=options).ok
    assert _unrecorded_shards(s3_bucket, "lake") == set()
    assert _rows(s3_bucket, "lake") == 4 * ROWS_PER_FILE


def test_bucket_deleted_mid_run_fails_clearly(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    import threading
    import time

    for index in range(8):
        write_csv(tmp_path / "src" / f"f{index:02d}.csv", ROWS_PER_FILE, seed=index)
    options = dict(s3_bucket.server.storage_options)
    receipts = f"{s3_bucket.name}/lake/_datamove/receipts"
    admin = s3_bucket.server.filesystem()

    def delete_bucket_after_two_units() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            admin.invalidate_cache()
            try:
                if len(admin.ls(receipts)) >= 2:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        # Writes keep arriving while it is emptied: try until it is gone.
        while time.monotonic() < deadline:
            try:
                admin.rm(s3_bucket.name, recursive=True)
                return
            except OSError:
                admin.invalidate_cache()

    deleter = threading.Thread(target=delete_bucket_after_two_units)
    deleter.start()
    with pytest.raises(datamove.SyncFailedError) as caught:
        # The cap keeps the run going while the bucket is emptied and deleted.
        _sync(tmp_path / "src", f"s3://{s3_bucket.name}/lake", options,
              retries=2, bwlimit="64KiB")  # fmt: skip
    deleter.join()
    message = str(caught.value)
    assert s3_bucket.name in message
    assert "Traceback" not in message
