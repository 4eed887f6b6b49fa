"""CRC32C, the one checksum datamove records for every byte it writes.

CRC32C is what S3 (``x-amz-checksum-crc32c``) and GCS (``crc32c``) carry
natively, runs at several GB/s per core, and is stored base64-encoded
big-endian, the way both clouds print it, so receipts compare directly with
what a store reports.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any, BinaryIO

import google_crc32c


def crc32c_b64(value: int) -> str:
    """Encode a CRC32C value the way S3 and GCS report it."""
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def crc32c_of(chunks: Iterable[bytes]) -> str:
    """The base64 CRC32C of a stream of byte chunks."""
    value = 0
    for chunk in chunks:
        value = google_crc32c.extend(value, chunk)
    return crc32c_b64(value)


def crc32c_of_file(handle: BinaryIO, chunk_size: int = 8 << 20) -> tuple[str, int]:
    """Read ``handle`` to its end; return its base64 CRC32C and its length."""
    value = 0
    size = 0
    while chunk := handle.read(chunk_size):
        value = google_crc32c.extend(value, chunk)
        size += len(chunk)
    return crc32c_b64(value), size


class HashingWriter:
    """A write-only file object that checksums and counts what passes through.

    It forwards every write to ``target`` and keeps the running CRC32C (and,
    when ``md5`` is set, an MD5 for stores that only verify MD5) of exactly
    the bytes forwarded. pyarrow writes Parquet through it.
    """

    def __init__(self, target: Any, md5: bool = False) -> None:
        self._target = target
        self._crc = 0
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.bytes_written = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        # google_crc32c takes read-only buffers only; pyarrow hands over bytes.
        chunk = data if isinstance(data, bytes) else bytes(data)
        self._target.write(chunk)
        self._crc = google_crc32c.extend(self._crc, chunk)
        if self._md5 is not None:
            self._md5.update(chunk)
        self.bytes_written += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.bytes_written

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        # The target is committed or aborted by its owner, never implicitly.
        self.closed = True

    @property
    def crc32c(self) -> str:
        return crc32c_b64(self._crc)

    @property
    def md5(self) -> str | None:
        if self._md5 is None:
            return None
        return base64.b64encode(self._md5.digest()).decode("ascii")
