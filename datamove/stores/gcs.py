"""Google Cloud Storage, through gcsfs's authenticated HTTP session.

Writes use the JSON API directly because gcsfs's file object sends neither a
checksum nor a storage class. An object smaller than one part goes up in one
multipart request whose metadata carries its ``crc32c`` and ``md5Hash``,
which GCS verifies before creating the object. A larger object goes up as a
resumable upload in parts of ``part_size`` (a multiple of 256 KiB); the last
request carries ``X-Goog-Hash: crc32c=...,md5=...`` of the whole object, which
GCS verifies before finalizing. In both cases the object appears only when
the upload is finalized, and the object resource GCS returns (and every
listing entry) reports the same base64 CRC32C that :mod:`datamove.checksum`
computes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from typing import Any
from urllib.parse import quote

import google_crc32c
from fsspec import AbstractFileSystem
from fsspec.asyn import sync

from datamove.checksum import crc32c_b64
from datamove.errors import UsageError
from datamove.stores.base import AtomicWriter, StoreAdapter, WriteOptions

log = logging.getLogger(__name__)

CHUNK_UNIT = 256 << 10
_ENCRYPTION_KEYS = {"kms_key_name": "kmsKeyName"}


def _encryption_parameters(options: WriteOptions) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for name, value in options.encryption:
        if name not in _ENCRYPTION_KEYS:
            raise UsageError(
                f"GCS encryption option {name!r} is not supported; use kms_key_name"
            )
        parameters[_ENCRYPTION_KEYS[name]] = value
    return parameters


class _ResumableWriter(AtomicWriter):
    """Buffers one chunk at a time; finalizes the upload on commit."""

    def __init__(
        self, fs: AbstractFileSystem, path: str, options: WriteOptions
    ) -> None:
        self._parameters = _encryption_parameters(options)  # fail before requests
        super().__init__(None)
        self._fs = fs
        self._path = path
        self._bucket, self._key, _ = fs.split_path(path)
        self._chunk_size = max(CHUNK_UNIT, options.part_size // CHUNK_UNIT * CHUNK_UNIT)
        self._resource: dict[str, Any] = {
            "name": self._key,
            "contentType": options.content_type,
        }
        if options.storage_class:
            self._resource["storageClass"] = options.storage_class
        self._buffer = bytearray()
        self._offset = 0
        self._crc = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._session: str | None = None
        self.reported_crc32c: str | None = None

    @property
    def _upload_url(self) -> str:
        location: str = self._fs._location
        return f"{location}/upload/storage/v1/b/{quote(self._bucket, safe='')}/o"

    def write(self, data: bytes | memoryview) -> int:
        if self.done:
            raise ValueError(f"{self._path}: write after commit or abort")
        self._buffer += data
        self._crc = google_crc32c.extend(self._crc, data)
        self._md5.update(data)
        while len(self._buffer) >= self._chunk_size + CHUNK_UNIT:
            # Keep at least one unit back so the final request is never empty.
            self._send(self._chunk_size, final=False)
        return len(data)

    def _start(self) -> None:
        headers, _ = self._fs.call(
            "POST",
            self._upload_url,
            uploadType="resumable",
            json=self._resource,
            headers={"X-Upload-Content-Type": self._resource["contentType"]},
            **self._parameters,
        )
        location = headers["Location"]
        self._session = location[0] if isinstance(location, list) else location
        log.debug("gs://%s: resumable upload started", self._path)

    def _send(self, length: int, final: bool) -> dict[str, Any] | None:
        if self._session is None:
            self._start()
        chunk = bytes(self._buffer[:length])
        end = self._offset + length - 1
        headers = {"Content-Length": str(length)}
        if final:
            total = self._offset + length
            headers["Content-Range"] = (
                f"bytes {self._offset}-{end}/{total}" if length else f"bytes */{total}"
            )
            headers["X-Goog-Hash"] = self._hash_header()
        else:
            headers["Content-Range"] = f"bytes {self._offset}-{end}/*"
        response_headers, content = self._fs.call(
            "PUT", self._session, headers=headers, data=chunk
        )
        if not final:
            # The store may persist less than it was sent; resend the rest.
            stored = _persisted_end(response_headers) + 1
            accepted = max(0, stored - self._offset)
            del self._buffer[:accepted]
            self._offset += accepted
            return None
        del self._buffer[:length]
        self._offset += length
        resource: dict[str, Any] = json.loads(content)
        return resource

    def _hash_header(self) -> str:
        md5 = base64.b64encode(self._md5.digest()).decode("ascii")
        return f"crc32c={crc32c_b64(self._crc)},md5={md5}"

    def _simple_upload(self) -> dict[str, Any]:
        resource = {
            **self._resource,
            "crc32c": crc32c_b64(self._crc),
            "md5Hash": base64.b64encode(self._md5.digest()).decode("ascii"),
        }
        boundary = f"datamove-{secrets.token_hex(8)}"
        head = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps(resource)}\r\n--{boundary}\r\n"
            f"Content-Type: {self._resource['contentType']}\r\n\r\n"
        ).encode()
        body = head + bytes(self._buffer) + f"\r\n--{boundary}--".encode()
        result: dict[str, Any] = self._fs.call(
            "POST",
            self._upload_url,
            uploadType="multipart",
            headers={"Content-Type": f'multipart/related; boundary="{boundary}"'},
            data=body,
            json_out=True,
            **self._parameters,
        )
        return result

    def commit(self) -> None:
        if self.done:
            raise ValueError(f"{self._path}: commit after commit or abort")
        self.done = True
        try:
            if self._session is None:
                resource = self._simple_upload()
            else:
                final = self._send(len(self._buffer), final=True)
                resource = final or {}
        except BaseException:
            self._cancel()
            raise
        finally:
            self._buffer = bytearray()
        self.reported_crc32c = resource.get("crc32c")
        self._fs.invalidate_cache(self._path)

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        self._buffer = bytearray()
        self._cancel()

    def _cancel(self) -> None:
        if self._session is None:
            return
        session, self._session = self._session, None
        try:
            status = _run(self._fs, _cancel_session, self._fs, session)
            if status not in (200, 204, 404, 410, 499):
                raise OSError(f"HTTP {status}")
        except Exception as error:  # GCS drops unfinished sessions after a week
            log.info(
                "gs://%s: could not cancel the resumable upload (%s); GCS discards "
                "it after a week and it never becomes an object",
                self._path,
                type(error).__name__,
            )


async def _cancel_session(fs: AbstractFileSystem, session: str) -> int:
    # One attempt only: gcsfs's own retries would wait for half a minute on
    # a server that cannot cancel, and the session expires anyway.
    await fs._set_session()
    headers = fs._get_headers(None)
    async with fs.session.request("DELETE", session, headers=headers) as response:
        status: int = response.status
        return status


def _run(fs: AbstractFileSystem, function: Any, *args: Any) -> Any:
    return sync(fs.loop, function, *args)


def _persisted_end(headers: Any) -> int:
    """The last byte offset a ``308 Resume Incomplete`` says is stored."""
    value = headers.get("Range") if headers is not None else None
    if not value:
        return -1
    return int(str(value).rpartition("-")[2])


class GCSAdapter(StoreAdapter):
    """GCS via gcsfs: verified CRC32C uploads, storage classes by rewrite."""

    name = "gcs"
    storage_classes = True
    reports_crc32c = True

    def open_write(
        self, fs: AbstractFileSystem, path: str, options: WriteOptions
    ) -> AtomicWriter:
        return _ResumableWriter(fs, path, options)

    def head(self, fs: AbstractFileSystem, path: str) -> dict[str, Any]:
        """The object's current resource (one ``objects.get``)."""
        fs.invalidate_cache(path)
        info: dict[str, Any] = fs.info(path)
        return info

    def find(self, fs: AbstractFileSystem, prefix: str) -> dict[str, dict[str, Any]]:
        """Every object under ``prefix`` with its listing details (one listing)."""
        found: dict[str, dict[str, Any]] = fs.find(prefix, detail=True)
        return found

    def reported_crc32c(self, info: dict[str, Any]) -> str | None:
        """The CRC32C in a listing entry or object resource (composites too)."""
        value = info.get("crc32c")
        return str(value) if value else None

    def reported_md5(self, info: dict[str, Any]) -> str | None:
        """The MD5 GCS keeps for non-composite objects."""
        value = info.get("md5Hash")
        return str(value) if value else None

    def storage_class_of(self, info: dict[str, Any]) -> str | None:
        value = info.get("storageClass")
        return str(value) if value else None

    def set_storage_class(
        self, fs: AbstractFileSystem, path: str, storage_class: str
    ) -> None:
        """Rewrite the object onto itself with a new class (``objects.rewrite``).

        Large objects take several calls; each continues with the token the
        previous one returned.
        """
        bucket, key, _ = fs.split_path(path)
        url = (
            f"{fs._location}/storage/v1/b/{quote(bucket, safe='')}/o/"
            f"{quote(key, safe='')}/rewriteTo/b/{quote(bucket, safe='')}/o/"
            f"{quote(key, safe='')}"
        )
        token: str | None = None
        while True:
            response = fs.call(
                "POST",
                url,
                json={"storageClass": storage_class},
                rewriteToken=token,
                json_out=True,
            )
            if response.get("done"):
                break
            token = response.get("rewriteToken")
        fs.invalidate_cache(path)

    def incomplete_uploads(
        self, fs: AbstractFileSystem, prefix: str
    ) -> list[tuple[str, str]]:
        """Always empty: GCS has no API that lists unfinished resumable uploads.

        An interrupted session never becomes an object, costs nothing that a
        listing shows, and GCS discards it after a week.
        """
        return []
