"""The destination's record of what datamove wrote, under ``DST/_datamove/``.

Layout (all JSON, each object written whole in one step)::

    _datamove/manifest.json          the consistent dataset: written last
    _datamove/receipts/<unit>.json   one per unit, written after its shards
    _datamove/journal/<run>.json     units a run may write, written before it
                                     writes any; proves ownership for clean-up
    _datamove/runs/<run>.json        the report of each finished run

Everything needed to resume lives here, so a run resumed on another machine,
by an Airflow retry for instance, needs nothing but the destination.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from datamove.errors import StorageError
from datamove.inventory import STATE_DIR
from datamove.retry import is_storage_failure, translate
from datamove.storage import Location
from datamove.stores.base import WriteOptions

log = logging.getLogger(__name__)

MANIFEST = f"{STATE_DIR}/manifest.json"
RECEIPTS = f"{STATE_DIR}/receipts"
JOURNAL = f"{STATE_DIR}/journal"
RUNS = f"{STATE_DIR}/runs"
MANIFEST_FORMAT = "datamove-manifest/1"


@dataclass(frozen=True)
class ShardReceipt:
    """One committed shard: where it is and what it must hold."""

    path: str
    size: int
    crc32c: str
    rows: int
    md5: str | None = None
    partition: str = ""
    storage_class: str | None = None
    version: str | None = None
    # A large file stored as an object of its own (``--format files``): its
    # path relative to the source root and its modification time.
    source: str | None = None
    mtime_ns: int | None = None
    # A shard of a unit that read several table files: the files whose rows
    # it holds, each with its fingerprint's modification time.
    sources: tuple[tuple[str, str], ...] = ()


def object_version(info: Mapping[str, Any]) -> str | None:
    """What changes whenever an object is rewritten: an ETag, generation or mtime.

    A shard whose listing shows another version than its receipt recorded
    was changed by someone else and is written again.
    """
    for key in ("ETag", "etag", "generation", "mtime", "LastModified", "last_modified"):
        value = info.get(key)
        if value is not None:
            # Listings and HEADs of one store differ in quoting an ETag.
            return f"{key.lower()}:{str(value).strip(chr(34))}"
    return None


@dataclass(frozen=True)
class UnitReceipt:
    """Proof that a unit's shards are committed, written after all of them."""

    unit_id: str
    source: str
    piece: str
    fingerprint: Mapping[str, Any]
    shards: tuple[ShardReceipt, ...]
    rows: int
    bytes_read: int
    bad_rows: int = 0
    retries: int = 0
    retry_causes: Mapping[str, int] = field(default_factory=dict)
    written_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fingerprint"] = dict(self.fingerprint)
        data["retry_causes"] = dict(self.retry_causes)
        for shard in data["shards"]:
            for name in ("source", "mtime_ns", "sources"):
                if not shard[name] and shard[name] != 0:
                    del shard[name]
            if "sources" in shard:
                shard["sources"] = [list(pair) for pair in shard["sources"]]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitReceipt:
        shards = tuple(
            ShardReceipt(
                **{
                    **shard,
                    "sources": tuple(
                        (str(path), str(mtime))
                        for path, mtime in shard.get("sources", ())
                    ),
                }
            )
            for shard in data.get("shards", ())
        )
        fields_ = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields_["shards"] = shards
        return cls(**fields_)


@dataclass(frozen=True)
class Manifest:
    """The dataset at the destination, consistent as of one run."""

    run_id: str
    created: str
    source: str
    config: Mapping[str, Any]
    config_digest: str
    schema: Mapping[str, Any]
    units: tuple[UnitReceipt, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def shards(self) -> list[ShardReceipt]:
        return [shard for unit in self.units for shard in unit.shards]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "run_id": self.run_id,
            "created": self.created,
            "source": self.source,
            "config": dict(self.config),
            "config_digest": self.config_digest,
            "schema": dict(self.schema),
            "rows": sum(unit.rows for unit in self.units),
            "shard_count": len(self.shards),
            "bytes": sum(shard.size for shard in self.shards),
            "units": [unit.to_dict() for unit in self.units],
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        return cls(
            run_id=data["run_id"],
            created=data["created"],
            source=data["source"],
            config=data["config"],
            config_digest=data["config_digest"],
            schema=data["schema"],
            units=tuple(UnitReceipt.from_dict(unit) for unit in data["units"]),
            extra=data.get("extra", {}),
        )


def write_json(dest: Location, relative: str, data: Mapping[str, Any]) -> None:
    """Write one state object whole: readers see the old or the new, never half."""
    payload = json.dumps(data, indent=1, sort_keys=True, default=str).encode()
    writer = dest.adapter.open_write(
        dest.fs,
        dest.path(relative),
        WriteOptions(content_type="application/json"),
    )
    try:
        writer.write(payload)
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def read_json(dest: Location, relative: str) -> dict[str, Any] | None:
    """A state object, or None when it does not exist."""
    try:
        with dest.fs.open(dest.path(relative), "rb") as handle:
            data: dict[str, Any] = json.load(handle)
            return data
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise StorageError(
            f"{dest.display(relative)}: state file is not valid JSON ({error.msg}); "
            "it was not written by datamove or was damaged: move it aside and re-run"
        ) from error
    except Exception as error:
        if is_storage_failure(error):
            raise translate(error, dest.display(relative), "read") from error
        raise


def read_manifest(dest: Location) -> Manifest | None:
    data = read_json(dest, MANIFEST)
    if data is None:
        return None
    if data.get("format") != MANIFEST_FORMAT:
        raise StorageError(
            f"{dest.display(MANIFEST)}: unknown manifest format "
            f"{data.get('format')!r}; upgrade datamove"
        )
    return Manifest.from_dict(data)


def write_manifest(dest: Location, manifest: Manifest) -> None:
    write_json(dest, MANIFEST, manifest.to_dict())


def receipt_path(unit_id: str) -> str:
    return f"{RECEIPTS}/{unit_id}.json"


def write_receipt(dest: Location, receipt: UnitReceipt) -> None:
    write_json(dest, receipt_path(receipt.unit_id), receipt.to_dict())


def list_ids(dest: Location, folder: str) -> set[str]:
    """The names (without ``.json``) of the state objects in a folder."""
    try:
        names = dest.fs.ls(dest.path(folder), detail=False)
    except FileNotFoundError:
        return set()
    return {
        name.rsplit("/", 1)[-1].removesuffix(".json")
        for name in names
        if name.endswith(".json")
    }


def read_receipts(dest: Location, unit_ids: Iterable[str]) -> dict[str, UnitReceipt]:
    """Read the given receipts; missing ones are left out."""
    found: dict[str, UnitReceipt] = {}
    for unit_id in unit_ids:
        data = read_json(dest, receipt_path(unit_id))
        if data is not None:
            found[unit_id] = UnitReceipt.from_dict(data)
    return found


def delete_quietly(dest: Location, relatives: Iterable[str]) -> int:
    """Delete objects, ignoring those already gone; return how many went."""
    paths = [dest.path(relative) for relative in relatives]
    deleted = 0
    for path in paths:
        try:
            dest.fs.rm_file(path)
            deleted += 1
        except FileNotFoundError:
            continue
    return deleted
