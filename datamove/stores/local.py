"""Local and NFS paths: write to a temporary name, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Any

from fsspec import AbstractFileSystem

from datamove.stores.base import AtomicWriter, StoreAdapter, WriteOptions

PARTIAL_SUFFIX = ".dm-partial"


class _RenamingWriter(AtomicWriter):
    def __init__(self, final_path: str) -> None:
        directory = os.path.dirname(final_path)
        os.makedirs(directory, exist_ok=True)
        token = secrets.token_hex(4)
        # A dot prefix hides the partial file from pyarrow, DuckDB and globbing.
        name = f".{os.path.basename(final_path)}.{token}{PARTIAL_SUFFIX}"
        self._temp = os.path.join(directory, name)
        self._final = final_path
        super().__init__(open(self._temp, "wb"))  # noqa: SIM115

    def commit(self) -> None:
        self.done = True
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self._temp, self._final)
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        self._discard()

    def _discard(self) -> None:
        # On a full disk closing fails too (it flushes); the file goes anyway.
        with contextlib.suppress(OSError):
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)


class LocalAdapter(StoreAdapter):
    name = "local"

    def open_write(
        self, fs: AbstractFileSystem, path: str, options: WriteOptions
    ) -> AtomicWriter:
        return _RenamingWriter(path)

    def storage_class_of(self, info: dict[str, Any]) -> str | None:
        return None
