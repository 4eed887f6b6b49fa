"""Amazon S3 and S3-compatible stores, through s3fs's botocore client.

Writes are S3 multipart uploads with a full-object CRC32C
(``ChecksumType=FULL_OBJECT``): every part carries its own
``x-amz-checksum-crc32c`` that S3 verifies, and the completion carries the
CRC32C of the whole object, which S3 checks against the parts and then
reports for the object. That is the same base64 CRC32C that
:mod:`datamove.checksum` computes, so a receipt compares directly with
``HeadObject``. Objects smaller than one part go up in a single
``PutObject`` with the same header. Nothing is visible under the final key
before the completion; an aborted write aborts its multipart upload.

Each ``PutObject`` and ``UploadPart`` also carries ``Content-MD5``, and the
ETag the store returns for it is compared with the MD5 of the bytes sent: S3
makes that ETag the MD5 of the bytes it received (except under SSE-KMS and
SSE-C, where the comparison is skipped), so a store or emulator that ignores
the checksum headers still cannot keep damaged bytes under a shard's name. A
mismatch raises :class:`~datamove.errors.ChecksumMismatchError`, which the
retry policy retries; a damaged single ``PutObject`` is deleted first.

S3 listings (``ListObjectsV2``) carry the storage class but not checksum
values, so :meth:`S3Adapter.head` (one ``HeadObject`` with checksum mode on)
is needed per object to read the CRC32C back.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
from typing import Any

import google_crc32c
from fsspec import AbstractFileSystem

from datamove.checksum import crc32c_b64
from datamove.errors import ChecksumMismatchError, UsageError
from datamove.stores.base import AtomicWriter, StoreAdapter, WriteOptions

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 << 20
MAX_PARTS = 10_000
_ENCRYPTION_KEYS = {
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "SSEKMSEncryptionContext",
    "BucketKeyEnabled",
}


def _client_call(fs: AbstractFileSystem, method: str, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = fs.call_s3(method, **kwargs)
    return result


def _md5(body: bytes) -> bytes:
    return hashlib.md5(body, usedforsecurity=False).digest()


def _content_md5(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


_PLAIN_ETAG = re.compile(r"[0-9a-f]{32}")
ETAG_CHECK_VARIABLE = "DATAMOVE_S3_ETAG_CHECK"
"""Set to ``off`` where a store's plain ETags are not MD5 digests.

Read by the process that writes (each Dask worker). Content-MD5 is still
sent, and the CRC32C the store reports after the upload is still compared.
"""
_OFF = frozenset({"off", "0", "false", "no"})


def _check_etag(response: dict[str, Any], digest: bytes, subject: str) -> None:
    """Compare the ETag of one ``PutObject``/``UploadPart`` with the body's MD5.

    Skipped when the ETag is not a plain MD5 (SSE-KMS, SSE-C, stores with
    other ETags) and when ``DATAMOVE_S3_ETAG_CHECK=off``.

    Raises:
        ChecksumMismatchError: the store holds other bytes than were sent.
    """
    if os.environ.get(ETAG_CHECK_VARIABLE, "on").strip().lower() in _OFF:
        return
    etag = str(response.get("ETag") or "").strip('"').lower()
    encryption = str(response.get("ServerSideEncryption") or "")
    if (
        not _PLAIN_ETAG.fullmatch(etag)
        or encryption.startswith("aws:kms")
        or response.get("SSECustomerAlgorithm")
    ):
        return
    if etag != digest.hex():
        raise ChecksumMismatchError(
            f"{subject}: the store received bytes with MD5 {etag}, datamove sent "
            f"{digest.hex()}: they were damaged on the way; re-run the sync to "
            "write them again, and if it persists check the network path (a "
            "proxy or gateway rewriting uploads); if this store's ETags are not "
            f"MD5 digests (MinIO with SSE-S3, some gateways), set "
            f"{ETAG_CHECK_VARIABLE}=off"
        )


def _encryption_arguments(options: WriteOptions) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for name, value in options.encryption:
        if name not in _ENCRYPTION_KEYS:
            raise UsageError(
                f"S3 encryption option {name!r} is not supported; use one of "
                f"{', '.join(sorted(_ENCRYPTION_KEYS))}"
            )
        arguments[name] = value == "true" if name == "BucketKeyEnabled" else value
    return arguments


class _MultipartWriter(AtomicWriter):
    """Buffers one part at a time and uploads it; completes on commit."""

    def __init__(
        self, fs: AbstractFileSystem, path: str, options: WriteOptions
    ) -> None:
        encryption = _encryption_arguments(options)  # fail before any request
        super().__init__(None)
        self._fs = fs
        self._path = path
        self._bucket, self._key, _ = fs.split_path(path)
        self._part_size = max(options.part_size, MIN_PART_SIZE)
        self._object_arguments: dict[str, Any] = {
            "ContentType": options.content_type,
            **encryption,
        }
        if options.storage_class:
            self._object_arguments["StorageClass"] = options.storage_class
        self._buffer = bytearray()
        self._crc = 0
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self.reported_crc32c: str | None = None

    def write(self, data: bytes | memoryview) -> int:
        if self.done:
            raise ValueError(f"{self._path}: write after commit or abort")
        self._buffer += data
        self._crc = google_crc32c.extend(self._crc, data)
        while len(self._buffer) >= self._part_size:
            self._upload_part(memoryview(self._buffer)[: self._part_size])
            del self._buffer[: self._part_size]
        return len(data)

    def _start(self) -> None:
        response = _client_call(
            self._fs,
            "create_multipart_upload",
            Bucket=self._bucket,
            Key=self._key,
            ChecksumAlgorithm="CRC32C",
            ChecksumType="FULL_OBJECT",
            **self._object_arguments,
        )
        self._upload_id = response["UploadId"]
        log.debug("s3://%s: multipart upload started", self._path)

    def _upload_part(self, part: memoryview) -> None:
        if self._upload_id is None:
            self._start()
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise UsageError(
                f"s3://{self._path}: more than {MAX_PARTS} parts; raise the part size"
            )
        body = bytes(part)
        checksum = crc32c_b64(google_crc32c.value(body))
        digest = _md5(body)
        response = _client_call(
            self._fs,
            "upload_part",
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            ContentMD5=_content_md5(digest),
            ChecksumAlgorithm="CRC32C",
            ChecksumCRC32C=checksum,
        )
        _check_etag(response, digest, f"s3://{self._path} (part {number})")
        self._parts.append(
            {"PartNumber": number, "ETag": response["ETag"], "ChecksumCRC32C": checksum}
        )

    def commit(self) -> None:
        if self.done:
            raise ValueError(f"{self._path}: commit after commit or abort")
        self.done = True
        whole = crc32c_b64(self._crc)
        try:
            if self._upload_id is None:
                response = self._put_whole(bytes(self._buffer), whole)
            else:
                if self._buffer:
                    self._upload_part(memoryview(self._buffer))
                response = _client_call(
                    self._fs,
                    "complete_multipart_upload",
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                    ChecksumCRC32C=whole,
                    ChecksumType="FULL_OBJECT",
                )
        except BaseException:
            self._abort_upload()
            raise
        finally:
            self._buffer = bytearray()
        self.reported_crc32c = response.get("ChecksumCRC32C")
        self._fs.invalidate_cache(self._path)

    def _put_whole(self, body: bytes, checksum: str) -> dict[str, Any]:
        """One ``PutObject``; a damaged object it created is deleted again."""
        digest = _md5(body)
        response = _client_call(
            self._fs,
            "put_object",
            Bucket=self._bucket,
            Key=self._key,
            Body=body,
            ContentMD5=_content_md5(digest),
            ChecksumAlgorithm="CRC32C",
            ChecksumCRC32C=checksum,
            **self._object_arguments,
        )
        try:
            _check_etag(response, digest, f"s3://{self._path}")
        except ChecksumMismatchError:
            try:
                _client_call(
                    self._fs, "delete_object", Bucket=self._bucket, Key=self._key
                )
            except Exception as error:  # unrecorded: the next run deletes it
                log.warning(
                    "s3://%s: could not delete the damaged object (%s); the next "
                    "run deletes it",
                    self._path,
                    type(error).__name__,
                )
            raise
        return response

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        self._buffer = bytearray()
        self._abort_upload()

    def _abort_upload(self) -> None:
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        try:
            _client_call(
                self._fs,
                "abort_multipart_upload",
                Bucket=self._bucket,
                Key=self._key,
                UploadId=upload_id,
            )
        except Exception as error:  # the next run's clean-up will find it
            log.warning(
                "s3://%s: could not abort multipart upload (%s); the next run "
                "aborts it",
                self._path,
                type(error).__name__,
            )


class S3Adapter(StoreAdapter):
    """S3 via s3fs: multipart writes with full-object CRC32C, storage classes."""

    name = "s3"
    storage_classes = True
    reports_crc32c = True

    def open_write(
        self, fs: AbstractFileSystem, path: str, options: WriteOptions
    ) -> AtomicWriter:
        return _MultipartWriter(fs, path, options)

    def head(self, fs: AbstractFileSystem, path: str) -> dict[str, Any]:
        """``fs.info(path)`` plus the object's checksum (one ``HeadObject``)."""
        bucket, key, _ = fs.split_path(path)
        response = _client_call(
            fs, "head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED"
        )
        response.pop("ResponseMetadata", None)
        return {
            **response,
            "name": f"{bucket}/{key}",
            "size": response.get("ContentLength"),
            "type": "file",
            "StorageClass": response.get("StorageClass", "STANDARD"),
        }

    def find(self, fs: AbstractFileSystem, prefix: str) -> dict[str, dict[str, Any]]:
        """Every object under ``prefix`` with its listing details (one listing)."""
        found: dict[str, dict[str, Any]] = fs.find(prefix, detail=True)
        return found

    def reported_crc32c(self, info: dict[str, Any]) -> str | None:
        """The full-object CRC32C in a :meth:`head` result.

        ``None`` when the entry comes from a listing or plain ``fs.info``
        (S3 returns checksums only to ``HeadObject``/``GetObject`` with
        checksum mode on) and for composite checksums ("checksum of
        checksums", written by other tools), which no byte stream reproduces.
        """
        value = info.get("ChecksumCRC32C")
        if not value or info.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
            return None
        if "-" in str(value):  # composite values end in -<parts>
            return None
        return str(value)

    def storage_class_of(self, info: dict[str, Any]) -> str | None:
        # Listings and HEAD omit the class for STANDARD objects on real S3.
        value = info.get("StorageClass")
        return str(value) if value else "STANDARD"

    def set_storage_class(
        self, fs: AbstractFileSystem, path: str, storage_class: str
    ) -> None:
        """Copy the object onto itself with a new class, keeping its checksum.

        Objects over 5 GiB need a multipart copy, which this does not do yet;
        S3 rejects them with InvalidRequest, translated to a permanent error.
        """
        bucket, key, _ = fs.split_path(path)
        _client_call(
            fs,
            "copy_object",
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": key},
            StorageClass=storage_class,
            MetadataDirective="COPY",
            ChecksumAlgorithm="CRC32C",
        )
        fs.invalidate_cache(path)

    def incomplete_uploads(
        self, fs: AbstractFileSystem, prefix: str
    ) -> list[tuple[str, str]]:
        """Multipart uploads under ``prefix`` that were never completed."""
        bucket, key_prefix, _ = fs.split_path(prefix)
        found: list[tuple[str, str]] = []
        arguments: dict[str, Any] = {"Bucket": bucket, "Prefix": key_prefix}
        while True:
            page = _client_call(fs, "list_multipart_uploads", **arguments)
            for upload in page.get("Uploads", []):
                found.append((f"{bucket}/{upload['Key']}", upload["UploadId"]))
            if not page.get("IsTruncated"):
                return found
            arguments["KeyMarker"] = page.get("NextKeyMarker")
            arguments["UploadIdMarker"] = page.get("NextUploadIdMarker")

    def abort_upload(self, fs: AbstractFileSystem, path: str, upload_id: str) -> None:
        bucket, key, _ = fs.split_path(path)
        _client_call(
            fs, "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id
        )
