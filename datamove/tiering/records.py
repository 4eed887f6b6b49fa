"""What a destination's manifest records about tiers, and which shards need a restore.

Each shard's receipt carries its storage class (``ShardReceipt.storage_class``).
The manifest adds, under ``extra["tiers"]``, one :class:`TierRecord` per shard
path: its tier, its class, whether reading it needs a restore first, and
since when it has been in that class. ``tier apply`` and ``sync
--tier-policy`` write them; ``verify`` reads :func:`restore_required_paths`
so that it never tries to read an archived shard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datamove.state import Manifest

TIERS_KEY = "tiers"

# Classes whose objects cannot be read until restored: an S3 restore request
# (Glacier Flexible Retrieval, Deep Archive) or Azure rehydration (Archive).
# GCS ARCHIVE and S3 GLACIER_IR are read directly, for a retrieval fee. S3
# INTELLIGENT_TIERING objects in its opt-in archive tiers need a restore too,
# but a listing does not tell them apart, so they are not counted here.
RESTORE_REQUIRED_CLASSES: Mapping[str, frozenset[str]] = {
    "s3": frozenset({"glacier", "deep_archive"}),
    "azure": frozenset({"archive"}),
}
_PROVIDERS = {
    "s3": "s3",
    "s3a": "s3",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}


@dataclass(frozen=True)
class TierRecord:
    """The tier of one shard as last planned and applied.

    ``storage_class`` is the class the store reported (None for stores
    without classes: the tier is recorded only); ``since`` the ISO time the
    shard entered that class, as far as datamove knows.
    """

    tier: str
    storage_class: str | None
    restore_required: bool = False
    since: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values."""
        return {
            "tier": self.tier,
            "storage_class": self.storage_class,
            "restore_required": self.restore_required,
            "since": self.since,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TierRecord:
        """A record written by :meth:`to_dict`."""
        return cls(
            tier=str(data.get("tier", "")),
            storage_class=data.get("storage_class"),
            restore_required=bool(data.get("restore_required", False)),
            since=data.get("since"),
        )


def needs_restore(protocol: str, storage_class: str | None) -> bool:
    """Whether objects of ``storage_class`` at a ``protocol`` store must be
    restored before a read."""
    if storage_class is None:
        return False
    provider = _PROVIDERS.get(protocol.lower(), protocol.lower())
    return storage_class.casefold() in RESTORE_REQUIRED_CLASSES.get(provider, ())


def tier_records(manifest: Manifest) -> dict[str, TierRecord]:
    """The tier records of a manifest, by shard path (relative to the root)."""
    raw = manifest.extra.get(TIERS_KEY) or {}
    return {path: TierRecord.from_dict(data) for path, data in raw.items()}


def restore_required_paths(manifest: Manifest, protocol: str) -> frozenset[str]:
    """Shards that cannot be read without a restore, by path relative to the root.

    A shard counts when its tier record says so or when the class its
    receipt records needs a restore at this store (``needs_restore``), so
    shards written straight into an archive class by a sync count too.
    """
    records = tier_records(manifest)
    marked = {path for path, record in records.items() if record.restore_required}
    return frozenset(
        shard.path
        for shard in manifest.shards
        if shard.path in marked or needs_restore(protocol, shard.storage_class)
    )
