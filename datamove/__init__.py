"""datamove: move datasets from on-prem storage to object stores as verified Parquet.

The public API is what this module exports; the CLI is a thin layer over it.
Every function here returns a typed report and raises a
:class:`~datamove.errors.DatamoveError` on failure; none prints or exits.
"""

from __future__ import annotations

__version__ = "0.1.0"

from datamove.errors import (
    BadRowsError,
    ChecksumMismatchError,
    DatamoveError,
    InputError,
    LeaseHeldError,
    PermanentStorageError,
    SchemaConflictError,
    StorageError,
    SyncFailedError,
    TransientStorageError,
    UsageError,
    VerificationError,
)
from datamove.options import SyncOptions
from datamove.orchestrator import Progress, inventory, plan, sample, sync, verify
from datamove.report import SyncReport, VerifyReport

__all__ = [
    "BadRowsError",
    "ChecksumMismatchError",
    "DatamoveError",
    "InputError",
    "LeaseHeldError",
    "PermanentStorageError",
    "Progress",
    "SchemaConflictError",
    "StorageError",
    "SyncFailedError",
    "SyncOptions",
    "SyncReport",
    "TransientStorageError",
    "UsageError",
    "VerificationError",
    "VerifyReport",
    "__version__",
    "inventory",
    "plan",
    "sample",
    "sync",
    "verify",
]
