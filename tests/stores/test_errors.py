"""Store failures over real HTTP, classified into transient and permanent."""

from __future__ import annotations

from typing import Any

import pytest

from datamove.errors import PermanentStorageError, TransientStorageError
from datamove.retry import RetryLog, RetryPolicy, call_with_retry, classify, translate
from datamove.stores.base import WriteOptions, adapter_for
from tests.servers import (
    FixedResponse,
    StoreServer,
    azurite_connection_string,
    fault_server,
    tcp_proxy,
)

pytestmark = pytest.mark.cloud

S3_SLOW_DOWN = FixedResponse(
    503,
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate."
    b"</Message></Error>",
    {"Content-Type": "application/xml"},
)
S3_DENIED = FixedResponse(
    403,
    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
    {"Content-Type": "application/xml"},
)
GCS_UNAVAILABLE = FixedResponse(
    503,
    b'{"error": {"code": 503, "message": "Backend Error"}}',
    {"Content-Type": "application/json"},
)
GCS_DENIED = FixedResponse(
    403,
    b'{"error": {"code": 403, "message": "caller does not have access"}}',
    {"Content-Type": "application/json"},
)
AZURE_BUSY = FixedResponse(
    503,
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
    b"<Message>busy</Message></Error>",
    {"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"},
)


def _s3_fs(server: StoreServer, endpoint: str) -> Any:
    # One attempt per request, so the classification is of the raw failure.
    fs = server.filesystem(
        endpoint_url=endpoint, config_kwargs={"retries": {"total_max_attempts": 1}}
    )
    fs.retries = 1
    return fs


def _write_small(protocol: str, fs: Any, path: str) -> None:
    writer = adapter_for(protocol).open_write(fs, path, WriteOptions())
    writer.write(b"payload")
    writer.commit()


def _failure(protocol: str, fs: Any, path: str) -> BaseException:
    with pytest.raises(Exception) as caught:
        _write_small(protocol, fs, path)
    return caught.value


@pytest.mark.parametrize(
    ("response", "expected"),
    [(S3_SLOW_DOWN, TransientStorageError), (S3_DENIED, PermanentStorageError)],
    ids=["503-slowdown", "403"],
)
def test_s3_http_failures(
    moto_server: StoreServer, response: FixedResponse, expected: type
) -> None:
    with fault_server(response) as endpoint:
        error = _failure("s3", _s3_fs(moto_server, endpoint), "bucket/key")
    assert classify(error) is expected


def test_s3_missing_bucket_message_names_object(moto_server: StoreServer) -> None:
    error = _failure("s3", _s3_fs(moto_server, moto_server.endpoint), "no-such/k")
    translated = translate(error, "s3://no-such/k", "write")
    assert isinstance(translated, PermanentStorageError)
    assert "s3://no-such/k: write failed" in str(translated)
    assert "NoSuchBucket" in str(translated) and "bucket" in str(translated)


def test_s3_connection_reset_is_transient(moto_server: StoreServer) -> None:
    port = int(moto_server.endpoint.rpartition(":")[2])
    with tcp_proxy(port, reset_first=100) as (proxy_port, stats):
        fs = _s3_fs(moto_server, f"http://127.0.0.1:{proxy_port}")
        error = _failure("s3", fs, "bucket/key")
        assert stats.resets >= 1
    assert classify(error) is TransientStorageError


def test_retry_recovers_from_resets_and_reports_them(moto_server: StoreServer) -> None:
    bucket = "dm-retry"
    moto_server.filesystem().mkdir(bucket)
    port = int(moto_server.endpoint.rpartition(":")[2])
    retry_log = RetryLog()
    with tcp_proxy(port, reset_first=2) as (proxy_port, stats):
        fs = _s3_fs(moto_server, f"http://127.0.0.1:{proxy_port}")
        call_with_retry(
            lambda: _write_small("s3", fs, f"{bucket}/key"),
            operation="write shard",
            subject=f"s3://{bucket}/key",
            policy=RetryPolicy(attempts=4, initial=0.01, maximum=0.02),
            retry_log=retry_log,
            sleep=lambda seconds: None,
        )
        assert stats.resets == 2
    assert moto_server.filesystem().cat(f"{bucket}/key") == b"payload"
    # aiohttp opens a second connection once by itself, so two resets cost
    # one or two attempts; each failed attempt is recorded.
    attempts = [event.attempt for event in retry_log.events]
    assert attempts in ([1], [1, 2])
    assert all(event.subject == f"s3://{bucket}/key" for event in retry_log.events)
    assert all("TransientStorageError" in event.cause for event in retry_log.events)


def test_gcs_denied_is_permanent(gcs_server: StoreServer) -> None:
    with fault_server(GCS_DENIED) as endpoint:
        fs = gcs_server.filesystem(endpoint_url=endpoint)
        error = _failure("gs", fs, "bucket/key")
    assert classify(error) is PermanentStorageError


@pytest.mark.slow
def test_gcs_unavailable_is_transient(gcs_server: StoreServer) -> None:
    # gcsfs retries a 503 six times itself (about 20 s) before it gives up.
    with fault_server(GCS_UNAVAILABLE) as endpoint:
        fs = gcs_server.filesystem(endpoint_url=endpoint)
        error = _failure("gs", fs, "bucket/key")
    assert classify(error) is TransientStorageError


def test_gcs_missing_bucket_is_permanent(gcs_server: StoreServer) -> None:
    error = _failure("gs", gcs_server.filesystem(), "dm-no-such-bucket/key")
    assert classify(error) is PermanentStorageError


def _azure_fs(server: StoreServer, connection_string: str) -> Any:
    from azure.storage.blob.aio import BlobServiceClient

    fs = server.filesystem(connection_string=connection_string)
    # Replace the client by one that does not retry, to see the raw failure.
    fs.service_client = BlobServiceClient.from_connection_string(
        connection_string, retry_total=0
    )
    return fs


def test_azure_wrong_key_is_permanent(azurite_server: StoreServer) -> None:
    container = "dm-denied"
    azurite_server.filesystem().mkdir(container)
    wrong = azurite_connection_string(azurite_server.endpoint).replace(
        "AccountKey=Eby8", "AccountKey=AAAA"
    )
    error = _failure("az", _azure_fs(azurite_server, wrong), f"{container}/key")
    assert classify(error) is PermanentStorageError
    message = str(translate(error, f"az://{container}/key", "write"))
    assert "403" in message and "credentials" in message
    assert "AccountKey" not in message


def test_azure_busy_is_transient(azurite_server: StoreServer) -> None:
    with fault_server(AZURE_BUSY) as endpoint:
        fs = _azure_fs(azurite_server, azurite_connection_string(endpoint))
        error = _failure("az", fs, "container/key")
    assert classify(error) is TransientStorageError


def test_azure_missing_container_is_permanent(azurite_server: StoreServer) -> None:
    error = _failure("az", azurite_server.filesystem(), "dm-no-such/key")
    assert classify(error) is PermanentStorageError
