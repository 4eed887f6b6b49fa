"""datamove: move datasets from on-prem storage to object stores as verified Parquet.

The public API is what this module exports; the CLI is a thin layer over it.
Every function here returns a typed report and raises a
:class:`~datamove.errors.DatamoveError` on failure; none prints or exits.
"""

from __future__ import annotations

__version__ = "0.1.0"

from datamove.bandwidth import BandwidthLimit, parse_bwlimit
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
from datamove.estimate import Estimate, estimate_plan
from datamove.options import SyncOptions
from datamove.orchestrator import Progress, inventory, plan, sample, sync, verify
from datamove.report import SyncReport, VerifyReport
from datamove.status import Status, destination_status
from datamove.unpack import UnpackReport, unpack

__all__ = [
    "BadRowsError",
    "BandwidthLimit",
    "ChecksumMismatchError",
    "DatamoveError",
    "Estimate",
    "InputError",
    "LeaseHeldError",
    "PermanentStorageError",
    "Progress",
    "SchemaConflictError",
    "Status",
    "StorageError",
    "SyncFailedError",
    "SyncOptions",
    "SyncReport",
    "TransientStorageError",
    "UnpackReport",
    "UsageError",
    "VerificationError",
    "VerifyReport",
    "__version__",
    "destination_status",
    "estimate_plan",
    "inventory",
    "parse_bwlimit",
    "plan",
    "sample",
    "sync",
    "unpack",
    "verify",
]
