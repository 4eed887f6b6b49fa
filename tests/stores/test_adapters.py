"""Store adapters against real emulators: atomicity, checksums, classes, clean-up.

Where an emulator falls short of the real store (moto verifies no checksum,
the GCS emulators ignore a rewrite's storage class, ...), the tests assert
what the emulator really does, so a change in its behaviour shows up here.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import pytest
from botocore.exceptions import FlexibleChecksumError

from datamove.checksum import crc32c_of
from datamove.errors import ChecksumMismatchError, PermanentStorageError, UsageError
from datamove.retry import classify, translate
from datamove.stores.base import AtomicWriter, StoreAdapter, WriteOptions, adapter_for
from tests.servers import StoreServer, tcp_proxy
from tests.stores.conftest import Bucket

pytestmark = pytest.mark.cloud

PART = 5 << 20
CLASSES = {"s3": "STANDARD_IA", "gs": "NEARLINE", "az": "Cool"}
NEW_CLASSES = {"s3": "GLACIER_IR", "gs": "COLDLINE", "az": "Cold"}


def _adapter(bucket: Bucket) -> Any:
    # Any: head() and find() are adapter additions the base class lacks yet.
    adapter: StoreAdapter = adapter_for(bucket.server.protocol)
    return adapter


def _payload(size: int) -> bytes:
    # Random bytes with no accidental marker; deterministic length.
    return os.urandom(size)


def _write(writer: AtomicWriter, data: bytes, step: int = 1 << 20) -> None:
    for start in range(0, len(data), step):
        writer.write(data[start : start + step])


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _head(bucket: Bucket, key: str) -> dict[str, Any]:
    head: dict[str, Any] = _adapter(bucket).head(bucket.fs, bucket.path(key))
    return head


@pytest.mark.parametrize(
    "size", [0, 1000, 2 * PART + 12345], ids=["empty", "small", "multipart"]
)
def test_object_appears_only_on_commit_with_its_checksum(
    any_bucket: Bucket, size: int
) -> None:
    adapter = _adapter(any_bucket)
    data = _payload(size)
    path = any_bucket.path("shard.parquet")

    writer = adapter.open_write(any_bucket.fs, path, WriteOptions(part_size=PART))
    _write(writer, data)
    assert not any_bucket.fs.exists(path)
    writer.commit()

    assert any_bucket.fs.cat(path) == data
    head = _head(any_bucket, "shard.parquet")
    if adapter.reports_crc32c:
        assert adapter.reported_crc32c(head) == crc32c_of([data])
    if adapter.needs_md5:
        assert adapter.reported_md5(head) == _md5(data)


def test_abort_leaves_no_object_and_no_upload(any_bucket: Bucket) -> None:
    adapter = _adapter(any_bucket)
    path = any_bucket.path("aborted.parquet")
    writer = adapter.open_write(any_bucket.fs, path, WriteOptions(part_size=PART))
    _write(writer, _payload(2 * PART + 1))

    writer.abort()

    assert not any_bucket.fs.exists(path)
    assert adapter.find(any_bucket.fs, any_bucket.name) == {}
    assert adapter.incomplete_uploads(any_bucket.fs, any_bucket.name) == []


def test_s3_listing_has_class_but_no_checksum_head_has_both(s3_bucket: Bucket) -> None:
    adapter = _adapter(s3_bucket)
    data = _payload(PART + 1)
    options = WriteOptions(part_size=PART, storage_class="STANDARD_IA")
    writer = adapter.open_write(s3_bucket.fs, s3_bucket.path("a"), options)
    _write(writer, data)
    writer.commit()

    listed = adapter.find(s3_bucket.fs, s3_bucket.name)
    entry = listed[s3_bucket.path("a")]
    assert adapter.storage_class_of(entry) == "STANDARD_IA"
    assert adapter.reported_crc32c(entry) is None
    head = _head(s3_bucket, "a")
    assert head["ChecksumType"] == "FULL_OBJECT"
    assert adapter.reported_crc32c(head) == crc32c_of([data])


def test_s3_composite_checksum_is_not_reported(s3_bucket: Bucket) -> None:
    adapter = _adapter(s3_bucket)
    assert adapter.reported_crc32c({"ChecksumCRC32C": "AAAAAA==-3"}) is None
    info = {"ChecksumCRC32C": "AAAAAA==", "ChecksumType": "COMPOSITE"}
    assert adapter.reported_crc32c(info) is None


def test_gcs_listing_reports_checksums_and_class(gcs_bucket: Bucket) -> None:
    adapter = _adapter(gcs_bucket)
    data = _payload(1000)
    writer = adapter.open_write(
        gcs_bucket.fs, gcs_bucket.path("a"), WriteOptions(storage_class="NEARLINE")
    )
    writer.write(data)
    writer.commit()

    entry = adapter.find(gcs_bucket.fs, gcs_bucket.name)[gcs_bucket.path("a")]
    assert adapter.reported_crc32c(entry) == crc32c_of([data])
    assert adapter.reported_md5(entry) == _md5(data)
    assert adapter.storage_class_of(entry) == "NEARLINE"


def test_azure_adapter_listing_keeps_tier_adlfs_listing_drops_it(
    azure_container: Bucket,
) -> None:
    adapter = _adapter(azure_container)
    data = _payload(1000)
    path = azure_container.path("dir/a")
    writer = adapter.open_write(
        azure_container.fs, path, WriteOptions(storage_class="cool")
    )
    writer.write(data)
    writer.commit()

    entry = adapter.find(azure_container.fs, azure_container.name)[path]
    assert adapter.storage_class_of(entry) == "Cool"
    assert adapter.reported_md5(entry) == _md5(data)
    plain = azure_container.fs.find(azure_container.name, detail=True)[path]
    assert adapter.storage_class_of(plain) is None
    assert adapter.reported_md5(plain) == _md5(data)


# Storage classes: set at upload, changed in place, read back from the store.


def _store_class(bucket: Bucket, key: str) -> str | None:
    """The class as the store's own API reports it for one object."""
    protocol = bucket.server.protocol
    if protocol == "s3":
        response = bucket.fs.call_s3("head_object", Bucket=bucket.name, Key=key)
        return str(response.get("StorageClass", "STANDARD"))
    if protocol == "gs":
        url = f"{bucket.server.endpoint}/storage/v1/b/{bucket.name}/o/{key}"
        return str(bucket.fs.call("GET", url, json_out=True).get("storageClass"))
    from fsspec.asyn import sync

    async def tier() -> str:
        client = bucket.fs.service_client.get_blob_client(bucket.name, key)
        async with client:
            properties = await client.get_blob_properties()
        return str(properties.blob_tier)

    return str(sync(bucket.fs.loop, tier))


@pytest.mark.parametrize("size", [1000, 2 * PART + 1], ids=["single", "multipart"])
def test_storage_class_at_upload_and_in_place(any_bucket: Bucket, size: int) -> None:
    protocol = any_bucket.server.protocol
    adapter = _adapter(any_bucket)
    options = WriteOptions(part_size=PART, storage_class=CLASSES[protocol])
    writer = adapter.open_write(any_bucket.fs, any_bucket.path("c"), options)
    _write(writer, _payload(size))
    writer.commit()

    kept_at_upload = _store_class(any_bucket, "c")
    adapter.set_storage_class(
        any_bucket.fs, any_bucket.path("c"), NEW_CLASSES[protocol]
    )
    after_change = _store_class(any_bucket, "c")

    server = any_bucket.server.name
    if server == "fake-gcs-server" and size > 1000:
        # fake-gcs-server drops the class of a resumable upload.
        assert kept_at_upload == "STANDARD"
    else:
        assert kept_at_upload == CLASSES[protocol]
    if server == "gcp-storage-emulator":
        # It answers the rewrite as done and keeps the old class.
        assert after_change == kept_at_upload
    elif server == "fake-gcs-server":
        # It answers the rewrite as done and resets the class to its default.
        assert after_change == "STANDARD"
    else:
        assert after_change == NEW_CLASSES[protocol]
    assert _head(any_bucket, "c")["size"] == size


# Integrity: bytes damaged in transit, after the client computed its checksums.

MARKER = b"DATAMOVE-MARKER-0123456789"
DAMAGED = b"DATAMOVE-MARKER-0123456788"


def _through_proxy(server: StoreServer, port: int) -> Any:
    endpoint = f"http://127.0.0.1:{port}"
    if server.protocol == "s3":
        return server.filesystem(endpoint_url=endpoint)
    if server.protocol == "gs":
        return server.filesystem(endpoint_url=endpoint)
    from tests.servers import azurite_connection_string

    return server.filesystem(connection_string=azurite_connection_string(endpoint))


def _damaged_upload(bucket: Bucket, size: int) -> tuple[bytes, Exception | None, Any]:
    """Upload through a proxy that flips a byte; return the error and the fs."""
    data = bytearray(_payload(size))
    data[size // 2 : size // 2 + len(MARKER)] = MARKER
    port = int(bucket.server.endpoint.rpartition(":")[2])
    adapter = _adapter(bucket)
    with tcp_proxy(port, corrupt=(MARKER, DAMAGED)) as (proxy_port, stats):
        fs = _through_proxy(bucket.server, proxy_port)
        writer = adapter.open_write(fs, bucket.path("x"), WriteOptions(part_size=PART))
        error: Exception | None = None
        try:
            _write(writer, bytes(data))
            writer.commit()
        except Exception as caught:
            error = caught
            writer.abort()
        assert stats.corruptions >= 1
    return bytes(data), error, fs


@pytest.mark.parametrize("size", [1000, 2 * PART + 1000], ids=["single", "multipart"])
def test_damaged_bytes_are_rejected_or_detected(any_bucket: Bucket, size: int) -> None:
    data, error, _ = _damaged_upload(any_bucket, size)
    adapter = _adapter(any_bucket)
    server = any_bucket.server.name
    verifies = {
        # moto ignores the checksums sent; the S3 adapter compares the ETag
        # of each PutObject/UploadPart with the MD5 of the bytes it sent.
        "moto": True,
        "azurite": True,  # checks Content-MD5 of every block and Put Blob
        "gcp-storage-emulator": size <= 1000,  # simple uploads only
        "fake-gcs-server": False,
    }[server]

    if verifies:
        assert error is not None
        assert classify(error) is ChecksumMismatchError
        assert not any_bucket.fs.exists(any_bucket.path("x"))
        return
    assert error is None
    head = _head(any_bucket, "x")
    stored = any_bucket.fs.cat(any_bucket.path("x"))
    assert stored != data and len(stored) == len(data)
    # The comparison after upload is what catches it on these servers.
    assert adapter.reported_crc32c(head) == crc32c_of([stored]) != crc32c_of([data])


def test_the_etag_check_can_be_turned_off(
    s3_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # For stores whose plain ETags are not MD5 digests (MinIO with SSE-S3).
    # It costs the guard against a store that ignores Content-MD5 and the
    # CRC32C header, as moto does: only verify --deep, which reads the bytes
    # back, would find the damage then.
    monkeypatch.setenv("DATAMOVE_S3_ETAG_CHECK", "off")
    _, error, _ = _damaged_upload(s3_bucket, 1000)
    assert error is None
    with pytest.raises(FlexibleChecksumError):  # read back, the damage shows
        s3_bucket.fs.cat(s3_bucket.path("x"))


def test_an_etag_mismatch_names_the_switch(s3_bucket: Bucket) -> None:
    _, error, _ = _damaged_upload(s3_bucket, 1000)
    assert error is not None and classify(error) is ChecksumMismatchError
    assert "DATAMOVE_S3_ETAG_CHECK=off" in str(error)


# Interrupted uploads.


def test_s3_crashed_multipart_upload_is_listed_and_aborted(s3_bucket: Bucket) -> None:
    adapter = _adapter(s3_bucket)
    path = s3_bucket.path("run/part-0.parquet")
    writer = adapter.open_write(s3_bucket.fs, path, WriteOptions(part_size=PART))
    _write(writer, _payload(PART + 1))
    del writer  # the process "dies": neither commit nor abort

    found = adapter.incomplete_uploads(s3_bucket.fs, s3_bucket.path("run/"))
    assert [name for name, _ in found] == [path]
    assert adapter.incomplete_uploads(s3_bucket.fs, s3_bucket.path("other/")) == []
    for name, upload_id in found:
        adapter.abort_upload(s3_bucket.fs, name, upload_id)
    assert adapter.incomplete_uploads(s3_bucket.fs, s3_bucket.name) == []
    assert not s3_bucket.fs.exists(path)


def test_azure_crashed_upload_leaves_only_invisible_blocks(
    azure_container: Bucket,
) -> None:
    adapter = _adapter(azure_container)
    path = azure_container.path("run/part-0.parquet")
    writer = adapter.open_write(
        azure_container.fs, path, WriteOptions(part_size=1 << 20)
    )
    _write(writer, _payload(3 << 20))
    del writer

    assert not azure_container.fs.exists(path)
    assert adapter.find(azure_container.fs, azure_container.name) == {}
    assert adapter.incomplete_uploads(azure_container.fs, azure_container.name) == []


# Errors from the stores, classified.


def test_missing_bucket_is_permanent(any_bucket: Bucket) -> None:
    adapter = _adapter(any_bucket)
    path = f"dm-missing-{any_bucket.name}/k"
    with pytest.raises(Exception) as caught:
        writer = adapter.open_write(any_bucket.fs, path, WriteOptions(part_size=PART))
        writer.write(b"abc")
        writer.commit()
    assert classify(caught.value) is PermanentStorageError
    error = translate(caught.value, f"store://{path}", "write")
    assert "not found" in str(error) and path in str(error)


@pytest.mark.parametrize("size", [10, PART + 1], ids=["single", "multipart"])
def test_s3_encryption_is_requested_and_reported(s3_bucket: Bucket, size: int) -> None:
    adapter = _adapter(s3_bucket)
    encryption = (("ServerSideEncryption", "aws:kms"), ("SSEKMSKeyId", "alias/dm"))
    options = WriteOptions(part_size=PART, encryption=encryption)
    writer = adapter.open_write(s3_bucket.fs, s3_bucket.path("e"), options)
    _write(writer, _payload(size))
    writer.commit()

    head = _head(s3_bucket, "e")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == (
        "aws:kms",
        "alias/dm",
    )


@pytest.mark.parametrize("protocol", ["s3", "gs", "az"])
def test_unknown_encryption_option_is_a_usage_error(protocol: str) -> None:
    options = WriteOptions(encryption=(("customer_key", "x"),))
    with pytest.raises(UsageError, match="customer_key"):
        adapter_for(protocol).open_write(object(), "b/k", options)
