"""Per-cloud additions to fsspec, chosen by protocol.

fsspec is datamove's storage abstraction. A store adapter adds exactly what
fsspec does not expose uniformly: atomic writes, the checksum a store
reports, storage classes, and clean-up of interrupted uploads. The engine asks
an adapter's capability flags and never tests a concrete class.
"""

from __future__ import annotations

from datamove.stores.base import AtomicWriter, StoreAdapter, adapter_for

__all__ = ["AtomicWriter", "StoreAdapter", "adapter_for"]
