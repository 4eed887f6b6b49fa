"""The store adapter interface, the generic adapter and the protocol registry."""

from __future__ import annotations

import contextlib
import importlib
import logging
from dataclasses import dataclass
from typing import Any, BinaryIO

from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteOptions:
    """What a shard upload asks of the store beyond its bytes."""

    part_size: int = 16 << 20
    storage_class: str | None = None
    encryption: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/vnd.apache.parquet"


class AtomicWriter:
    """A file object whose bytes become visible only on :meth:`commit`.

    ``abort`` throws the bytes away; after either call the writer is spent.
    The base implementation wraps an fsspec buffered file whose ``close``
    publishes the object in one step (a single PUT or a multipart
    completion) and whose ``discard`` drops it; adapters for stores without
    that property override it.
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.done = False

    def write(self, data: bytes | memoryview) -> int:
        written = self._handle.write(data)
        return len(data) if written is None else int(written)

    def commit(self) -> None:
        self.done = True
        self._handle.close()

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        discard = getattr(self._handle, "discard", None)
        if discard is not None:
            discard()
        # Closing after discard publishes nothing: the buffer is gone.
        with contextlib.suppress(AttributeError):
            self._handle.closed = True


class StoreAdapter:
    """Capabilities and store-specific operations for one family of protocols.

    Capability flags:

    ``storage_classes``
        The store has native storage classes that :meth:`set_storage_class`
        can change.
    ``reports_crc32c``
        Listings carry a CRC32C that :meth:`reported_crc32c` extracts, so a
        cheap verify needs no re-read.
    ``needs_md5``
        The store verifies MD5 rather than CRC32C; writers also compute MD5.
    """

    name = "generic"
    storage_classes = False
    reports_crc32c = False
    needs_md5 = False

    def open_write(
        self, fs: AbstractFileSystem, path: str, options: WriteOptions
    ) -> AtomicWriter:
        """Open ``path`` for a write that is invisible until committed."""
        handle = fs.open(path, "wb", block_size=options.part_size)
        return AtomicWriter(handle)

    def head(self, fs: AbstractFileSystem, path: str) -> dict[str, Any]:
        """One object's metadata, with checksum and class where the store has them."""
        info: dict[str, Any] = fs.info(path)
        return info

    def find(self, fs: AbstractFileSystem, prefix: str) -> dict[str, dict[str, Any]]:
        """Every object under ``prefix`` in one bulk listing: path -> entry."""
        try:
            entries: dict[str, dict[str, Any]] = fs.find(
                prefix, detail=True, withdirs=False
            )
        except FileNotFoundError:
            return {}
        return entries

    def reported_crc32c(self, info: dict[str, Any]) -> str | None:
        """The base64 CRC32C the store reports in a listing entry, if any."""
        return None

    def reported_md5(self, info: dict[str, Any]) -> str | None:
        """The base64 MD5 the store reports in a listing entry, if any."""
        return None

    def storage_class_of(self, info: dict[str, Any]) -> str | None:
        """The native storage class in a listing entry, if the store has any."""
        return None

    def set_storage_class(
        self, fs: AbstractFileSystem, path: str, storage_class: str
    ) -> None:
        """Change the class of an existing object in place."""
        raise NotImplementedError(f"{self.name} stores have no storage classes")

    def incomplete_uploads(
        self, fs: AbstractFileSystem, prefix: str
    ) -> list[tuple[str, str]]:
        """Interrupted uploads under ``prefix`` as (path, upload id) pairs."""
        return []

    def abort_upload(self, fs: AbstractFileSystem, path: str, upload_id: str) -> None:
        """Abort one interrupted upload found by :meth:`incomplete_uploads`."""

    def open_read(self, fs: AbstractFileSystem, path: str) -> BinaryIO:
        """Open ``path`` for a sequential read of its bytes."""
        handle: BinaryIO = fs.open(path, "rb", block_size=8 << 20, cache_type="none")
        return handle


# protocol -> "module:attribute"; modules are imported on first use only.
_REGISTRY: dict[str, str] = {
    "file": "datamove.stores.local:LocalAdapter",
    "local": "datamove.stores.local:LocalAdapter",
    "s3": "datamove.stores.s3:S3Adapter",
    "s3a": "datamove.stores.s3:S3Adapter",
    "gs": "datamove.stores.gcs:GCSAdapter",
    "gcs": "datamove.stores.gcs:GCSAdapter",
    "az": "datamove.stores.azure:AzureAdapter",
    "abfs": "datamove.stores.azure:AzureAdapter",
    "abfss": "datamove.stores.azure:AzureAdapter",
}

_CACHE: dict[str, StoreAdapter] = {}


def adapter_for(protocol: str) -> StoreAdapter:
    """The adapter for an fsspec protocol; the generic one for any other."""
    if protocol in _CACHE:
        return _CACHE[protocol]
    target = _REGISTRY.get(protocol)
    adapter: StoreAdapter
    if target is None:
        adapter = StoreAdapter()
    else:
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            log.debug("%s: no adapter module, using the generic one", protocol)
            adapter = StoreAdapter()
        else:
            adapter = getattr(module, attribute)()
    _CACHE[protocol] = adapter
    return adapter
