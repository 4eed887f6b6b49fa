"""Per-cloud additions to fsspec, chosen by protocol.

fsspec is datamove's storage abstraction. A store adapter adds exactly what
fsspec does not expose uniformly: atomic writes, the checksum a store
reports, storage classes, and clean-up of interrupted uploads. The engine asks
an adapter's capability flags and never tests a concrete class.
"""

from __future__ import annotations

from datamove.errors import UsageError
from datamove.stores.base import AtomicWriter, StoreAdapter, adapter_for

__all__ = ["AtomicWriter", "StoreAdapter", "adapter_for", "encryption_for"]

_S3 = {"s3", "s3a"}
_GCS = {"gs", "gcs"}
_AZURE = {"az", "abfs", "abfss"}


def encryption_for(
    protocol: str,
    sse: str | None = None,
    kms_key_id: str | None = None,
    gcs_kms_key: str | None = None,
    azure_scope: str | None = None,
) -> tuple[tuple[str, str], ...]:
    """Server-side encryption flags as the destination's upload arguments.

    Raises:
        UsageError: a flag does not apply to the destination's store.
    """
    pairs: list[tuple[str, str]] = []
    if sse or kms_key_id:
        if protocol not in _S3:
            raise UsageError("--sse/--sse-kms-key-id apply to s3:// destinations only")
        if kms_key_id and sse != "aws:kms":
            raise UsageError("--sse-kms-key-id needs --sse aws:kms")
        if sse not in ("AES256", "aws:kms"):
            raise UsageError("--sse: use AES256 or aws:kms")
        pairs.append(("ServerSideEncryption", sse))
        if kms_key_id:
            pairs.append(("SSEKMSKeyId", kms_key_id))
    if gcs_kms_key:
        if protocol not in _GCS:
            raise UsageError("--gcs-kms-key applies to gs:// destinations only")
        pairs.append(("kms_key_name", gcs_kms_key))
    if azure_scope:
        if protocol not in _AZURE:
            raise UsageError(
                "--azure-encryption-scope applies to az:// destinations only"
            )
        pairs.append(("encryption_scope", azure_scope))
    return tuple(pairs)
