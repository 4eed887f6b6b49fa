"""Planning: compare the source with the destination's record, decide the work.

The plan is plain data: the units to write, the receipts kept as they are,
the receipts whose shards are now obsolete, and orphaned shards of earlier
interrupted runs. A dry run prints it; executing it runs each unit once.

Units and shard names are derived only from the source file, the piece of it
a unit reads, the file's fingerprint and the output configuration, so every
run targets the same objects for the same input, and a changed input gets
new names, written beside the old ones until the new manifest is committed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import pyarrow as pa

from datamove import __version__
from datamove.cuts import csv_cuts, line_cuts
from datamove.errors import UsageError
from datamove.files import (
    BLOB_SUFFIX,
    FILE_SCHEMA,
    INDEX,
    FileGroup,
    boundary_modulus,
    group_files,
)
from datamove.formats import FILES, FileFormat, Piece, Sample, sample_file
from datamove.inventory import STATE_DIR, Inventory, SourceFile, take_inventory
from datamove.options import SyncOptions, config_digest
from datamove.retry import call_with_retry
from datamove.schema import FileSchema, schema_from_json, schema_to_json, unify
from datamove.state import (
    JOURNAL,
    RECEIPTS,
    Manifest,
    ShardReceipt,
    UnitReceipt,
    list_ids,
    object_version,
    read_json,
    read_manifest,
    read_receipts,
)
from datamove.storage import Location
from datamove.stores.local import PARTIAL_SUFFIX

log = logging.getLogger(__name__)

PARTIAL_NAME = re.compile(
    r"-([0-9a-f]{16})-\d{3,}\.(?:parquet|blob)\.[0-9a-f]+\.dm-partial$"
)
# Shards, and the objects of large files stored whole (``--format files``).
SHARD_NAME = re.compile(r"-([0-9a-f]{16})-(\d{3,})\.(?:parquet|blob)$")
DATA_SUFFIXES = (".parquet", BLOB_SUFFIX)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A whole file whose output fills less than 1/SMALL_FILE_SHARE of a shard,
# and that is less than 1/SMALL_FILE_SHARE of GROUP_INPUT, is grouped with
# others into units of about one shard and at most GROUP_INPUT of input.
SMALL_FILE_SHARE = 2
GROUP_INPUT = 64 << 20
# Which small files may share a unit (same key) or none (None); see plan_sync.
GroupKey = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Member:
    """One whole source file of a unit that reads several."""

    piece: Piece
    fingerprint: Mapping[str, Any]
    size: int


@dataclass(frozen=True)
class Unit:
    """One task: read one piece of one source file, or a group of whole
    files (``members``), and write its shards.

    ``piece``, ``fingerprint`` and ``source_size`` describe the first file
    of a group.
    """

    unit_id: str
    piece: Piece
    fingerprint: Mapping[str, Any]
    source_size: int
    input_bytes: int
    shard_base: str
    members: tuple[Member, ...] = ()

    def shard_name(self, index: int, partition: str = "") -> str:
        name = f"{self.shard_base}-{index:03d}.parquet"
        return f"{partition}/{name}" if partition else name

    @property
    def packs_files(self) -> bool:
        """Whether the unit turns whole files into rows (``--format files``)."""
        return self.piece.format.name == FILES

    @property
    def stores_whole(self) -> bool:
        """Whether the unit copies one large file to an object of its own."""
        return self.packs_files and not self.members

    @property
    def parts(self) -> tuple[Member, ...]:
        """The files the unit reads, each with its planned fingerprint."""
        return self.members or (Member(self.piece, self.fingerprint, self.source_size),)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(part.piece.relpath for part in self.parts)

    def describe(self) -> str:
        """How logs and errors name the unit; a group by its size, not its
        file names (a policy may anonymize the paths of packed files)."""
        if self.members:
            return f"{self.shard_base} ({len(self.members)} files)"
        if self.stores_whole:
            return f"{self.shard_base} (1 large file)"
        return self.piece.describe()


@dataclass(frozen=True)
class FileState:
    """What sampling taught about one source file, cached in the manifest."""

    fingerprint: Mapping[str, Any]
    schema: pa.Schema
    textual: bool
    column_names: tuple[str, ...]
    ratio: float
    quoted_newlines: bool
    cuts: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": dict(self.fingerprint),
            "schema": schema_to_json(self.schema),
            "textual": self.textual,
            "column_names": list(self.column_names),
            "ratio": self.ratio,
            "quoted_newlines": self.quoted_newlines,
            "cuts": [list(cut) for cut in self.cuts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileState:
        return cls(
            fingerprint=data["fingerprint"],
            schema=schema_from_json(data["schema"]),
            textual=data["textual"],
            column_names=tuple(data["column_names"]),
            ratio=data["ratio"],
            quoted_newlines=data["quoted_newlines"],
            cuts=tuple((int(a), int(b)) for a, b in data["cuts"]),
        )


@dataclass(frozen=True)
class Plan:
    """What a sync will do, decided before it does anything."""

    run_id: str
    source: str
    dest: str
    schema: pa.Schema
    config: Mapping[str, Any]
    config_digest: str
    inventory: Inventory
    to_write: tuple[Unit, ...]
    to_keep: tuple[UnitReceipt, ...]
    to_delete: tuple[UnitReceipt, ...]
    orphans: tuple[str, ...]
    files: Mapping[str, FileState] = field(default_factory=dict)
    uploads_to_abort: tuple[tuple[str, str], ...] = ()
    manifest_current: bool = False
    state_digest: str = ""
    # Recorded in the manifest's ``extra`` (the grouping of packed files).
    manifest_extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def packs_files(self) -> bool:
        return self.config.get("format") == FILES

    @property
    def is_noop(self) -> bool:
        return (
            not self.to_write
            and not self.to_delete
            and not self.orphans
            and not self.uploads_to_abort
            and self.manifest_current
        )

    @property
    def bytes_to_read(self) -> int:
        return sum(unit.input_bytes for unit in self.to_write)

    def summary(self) -> dict[str, Any]:
        """The plan as JSON data, for ``datamove plan`` and dry runs."""
        return {
            "source": self.source,
            "dest": self.dest,
            "files": len(self.inventory.files),
            "skipped_files": [list(pair) for pair in self.inventory.skipped],
            "units_to_write": len(self.to_write),
            "units_to_skip": len(self.to_keep),
            "shards_to_skip": sum(len(r.shards) for r in self.to_keep),
            "shards_to_delete": sum(len(r.shards) for r in self.to_delete)
            + len(self.orphans),
            "bytes_to_read": self.bytes_to_read,
            "schema": [{"name": f.name, "type": str(f.type)} for f in self.schema],
            "write": [
                {"unit": u.unit_id, "piece": u.describe(), "bytes": u.input_bytes}
                for u in self.to_write
            ],
            "delete": [s.path for r in self.to_delete for s in r.shards]
            + list(self.orphans),
        }


def _stem(relpath: str) -> str:
    name = relpath.rsplit("/", 1)[-1]
    while True:
        base, dot, extension = name.rpartition(".")
        if not dot or not base or len(extension) > 8:
            break
        name = base
    stem = _SAFE.sub("_", name).strip("._-")[:40]
    return stem or "part"


def _unit_id(file: SourceFile, piece: Piece, digest: str) -> str:
    key = json.dumps(
        [file.relpath, piece.start, piece.end, file.fingerprint, digest], sort_keys=True
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


# --- cutting files into pieces ----------------------------------------------


def _text_cuts(
    location: Location, file: SourceFile, sample: Sample, shard_size: int
) -> tuple[tuple[int, int], ...]:
    if not file.format.splittable:
        return ()
    # Each piece yields one shard of the target size; the file's last piece
    # takes the remainder (joined to the one before when it is under a tenth).
    unit_input = max(int(shard_size / max(sample.ratio, 1e-3)), 1 << 20)
    whole, remainder = divmod(file.size, unit_input)
    count = whole - 1 if remainder < unit_input / 10 else whole
    if count < 1:
        return ()
    targets = [unit_input * k for k in range(1, count + 1)]
    if file.format.name == "csv":
        return csv_cuts(location.fs, file.path, file.size, targets, b'"')
    return line_cuts(location.fs, file.path, file.size, targets)


def _part_cuts(sample: Sample, shard_size: int) -> tuple[tuple[int, int], ...]:
    """Group row groups, batches or stripes into pieces of about one shard."""
    parts = sample.parts
    if len(parts) <= 1:
        return ()
    total = sum(parts)
    output = total if sample.input_bytes else 0
    count = round(output / shard_size) if output else 1
    count = max(1, min(count, len(parts)))
    if count == 1:
        return ()
    cuts: list[tuple[int, int]] = []
    running = 0
    for index, size in enumerate(parts[:-1], start=1):
        running += size
        if running >= total * (len(cuts) + 1) / count:
            cuts.append((index, 0))
    return tuple(cuts)


def _pieces(file: SourceFile, state: FileState) -> list[tuple[Piece, int]]:
    """The pieces of one file, each with the input bytes it covers."""
    bounds = [(0, 1), *state.cuts]
    pieces: list[tuple[Piece, int]] = []
    part_based = not file.format.is_text
    total_parts = 0
    if part_based and state.cuts:
        total_parts = max(cut for cut, _ in state.cuts) + 1
    for index, (start, line) in enumerate(bounds):
        end = bounds[index + 1][0] if index + 1 < len(bounds) else -1
        piece = Piece(
            relpath=file.relpath,
            path=file.path,
            format=file.format,
            start=start,
            end=end,
            first_line=line,
            column_names=state.column_names,
            newlines_in_values=state.quoted_newlines,
        )
        if part_based:
            share = file.size // max(len(bounds), 1) if total_parts else file.size
            pieces.append((piece, share))
        else:
            stop = file.size if end < 0 else end
            pieces.append((piece, stop - start))
    return pieces


def _file_state(
    source: Location,
    file: SourceFile,
    options: SyncOptions,
    overrides: Mapping[str, pa.DataType],
) -> FileState:
    sample = sample_file(
        source.fs,
        file.path,
        file.relpath,
        file.format,
        file.size,
        options.sample_bytes,
        overrides,
        "none" if options.compression == "none" else options.compression,
        options.shard_size,
    )
    if file.format.is_text:
        cuts = _text_cuts(source, file, sample, options.shard_size)
    else:
        cuts = _part_cuts(sample, options.shard_size)
    return FileState(
        fingerprint=file.fingerprint,
        schema=sample.schema,
        textual=sample.textual,
        column_names=sample.column_names,
        ratio=sample.ratio,
        quoted_newlines=sample.quoted_newlines
        or (file.format.name == "csv" and bool(cuts)),
        cuts=cuts,
    )


def _cached_states(manifest: Manifest | None) -> dict[str, FileState]:
    if manifest is None:
        return {}
    cached = manifest.extra.get("files", {})
    states: dict[str, FileState] = {}
    for relpath, data in cached.items():
        try:
            states[relpath] = FileState.from_dict(data)
        except (KeyError, ValueError, TypeError):
            continue
    return states


def _state_digest(options: SyncOptions) -> str:
    """The options under which cached file states remain valid."""
    return config_digest(
        {
            "shard_size": options.shard_size,
            "compression": options.compression,
            "format": options.format,
            "column_types": options.column_types,
            "sample_bytes": options.sample_bytes,
        }
    )


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Survey:
    """A source's inventory, what sampling each file taught, and the schema."""

    inventory: Inventory
    files: Mapping[str, FileState]
    schema: pa.Schema
    state_digest: str
    # The options, with ``format="files"`` when the source had no tables.
    options: SyncOptions


ChangesCallback = Callable[[Sequence[SourceFile]], None]
"""Told, before sampling starts, which files are new or changed since the
manifest (each of them will be written): the orchestrator starts its cluster
then, while sampling goes on."""

SAMPLING_THREADS_LOCAL = 4
SAMPLING_THREADS_REMOTE = 16
"""Files sampled at once: parsing releases the GIL, and remote reads wait."""


def survey_source(
    source: Location,
    options: SyncOptions,
    manifest: Manifest | None = None,
    on_changes: ChangesCallback | None = None,
) -> Survey:
    """Inventory and sample a source, reusing what ``manifest`` cached.

    Files are sampled in parallel threads; a failure is reported for the
    first failing file in inventory order, as a serial pass would.

    Raises:
        InputError: a file cannot be sampled.
        SchemaConflictError: two files cannot share one schema.
    """
    inventory = take_inventory(
        source,
        options.include,
        options.exclude,
        options.format,
        options.content_checksum,
    )
    if options.format is None and _only_untabular(inventory):
        log.info(
            "%s: no tabular files; packing all %d files (--format files)",
            source.url,
            len(inventory.skipped),
        )
        options = dataclasses.replace(options, format=FILES)
        inventory = take_inventory(
            source, options.include, options.exclude, FILES, options.content_checksum
        )
    if options.format == FILES:
        # Files are copied as bytes: nothing to sample, one fixed schema.
        if on_changes is not None and manifest is None and inventory.files:
            on_changes(inventory.files)
        return Survey(inventory, {}, FILE_SCHEMA, _state_digest(options), options)
    overrides = options.column_type_map
    state_digest = _state_digest(options)
    recorded = _cached_states(manifest)
    cached = recorded
    if manifest is not None and manifest.extra.get("state_digest") != state_digest:
        cached = {}

    def unchanged(file: SourceFile, states: Mapping[str, FileState]) -> bool:
        previous = states.get(file.relpath)
        return previous is not None and dict(previous.fingerprint) == file.fingerprint

    if on_changes is not None:
        changed = [file for file in inventory.files if not unchanged(file, recorded)]
        if changed:
            on_changes(changed)
    states: dict[str, FileState] = {
        file.relpath: cached[file.relpath]
        for file in inventory.files
        if unchanged(file, cached)
    }
    to_sample = [file for file in inventory.files if file.relpath not in states]
    threads = SAMPLING_THREADS_LOCAL if source.is_local else SAMPLING_THREADS_REMOTE
    sampled = _in_threads(
        lambda file: _file_state(source, file, options, overrides), to_sample, threads
    )
    states.update(
        (file.relpath, state) for file, state in zip(to_sample, sampled, strict=True)
    )
    schema = unify(
        [
            FileSchema(
                file.relpath, states[file.relpath].schema, states[file.relpath].textual
            )
            for file in inventory.files
        ],
        overrides,
    )
    return Survey(inventory, states, schema, state_digest, options)


Item = TypeVar("Item")
Result = TypeVar("Result")


def _in_threads(
    work: Callable[[Item], Result], items: Sequence[Item], threads: int
) -> list[Result]:
    """``[work(item) for item in items]`` on up to ``threads`` threads.

    Raises the exception of the first failing item in order, after
    cancelling what has not started.
    """
    if len(items) <= 1 or threads <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(min(threads, len(items)), "datamove-sample") as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _only_untabular(inventory: Inventory) -> bool:
    """Whether a source holds files, but none of a table format."""
    return not inventory.files and any(
        reason.startswith("no known format") for _, reason in inventory.skipped
    )


def plan_sync(
    source: Location,
    dest: Location,
    options: SyncOptions,
    extra_config: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    group_key: GroupKey | None = None,
    on_changes: ChangesCallback | None = None,
) -> Plan:
    """Decide what a sync from ``source`` to ``dest`` must do.

    ``extra_config`` joins the output configuration: a change in it makes
    every shard obsolete (the anonymization policy goes there).
    ``group_key`` maps a small table file to the key of the files it may
    share a unit with, or None to keep it alone (tiering keeps files of
    different tiers apart this way). ``on_changes`` is told which source
    files are new or changed before they are sampled.

    Raises:
        UsageError: the source and destination overlap, or an option is wrong.
        InputError: a source file cannot be sampled.
        SchemaConflictError: two files cannot share one schema.
    """
    _check_overlap(source, dest)
    manifest = _reading(dest, lambda: read_manifest(dest))
    survey = survey_source(source, options, manifest, on_changes)
    inventory, states, source_schema = survey.inventory, survey.files, survey.schema
    options = survey.options
    missing = [name for name in options.partition_by if name not in source_schema.names]
    if missing:
        raise UsageError(
            f"--partition-by: no column {missing[0]!r} in the source; columns are "
            f"{', '.join(source_schema.names)}"
        )
    config = {
        **options.output_config(),
        **(dict(extra_config) if extra_config else {}),
        "schema": schema_to_json(source_schema)["columns"],
        "datamove": __version__.split(".")[0],
    }
    digest = config_digest(config)

    units: list[Unit] = []
    manifest_extra: dict[str, Any] = {}
    if options.format == FILES:
        listed = [(f.relpath, f.size, None) for f in inventory.files]
        modulus = _modulus(
            "files_modulus", listed, options.large_file_size, options, manifest,
            survey.state_digest,
        )  # fmt: skip
        manifest_extra["files_modulus"] = modulus
        units = _file_units(inventory, options, digest, modulus)
    else:
        small, units = _table_units(inventory, states, options, digest)
        if small:
            listed = [(file.relpath, output, None) for file, _, output in small]
            modulus = _modulus(
                "small_files_modulus", listed, options.shard_size, options,
                manifest, survey.state_digest,
            )  # fmt: skip
            manifest_extra["small_files_modulus"] = modulus
            units.extend(_small_file_units(small, options, digest, modulus, group_key))
        units.sort(key=lambda unit: (unit.piece.relpath, unit.piece.start))
    plan = _reading(
        dest,
        lambda: _compare(
            source,
            dest,
            inventory,
            units,
            source_schema,
            config,
            digest,
            manifest,
            states,
            survey.state_digest,
            run_id or new_run_id(),
        ),
    )
    plan = dataclasses.replace(plan, manifest_extra=manifest_extra)
    # A packed dataset is complete only with its index.
    if (
        options.format == FILES
        and plan.manifest_current
        and not _reading(dest, lambda: dest.fs.exists(dest.path(INDEX)))
    ):
        plan = dataclasses.replace(plan, manifest_current=False)
    return plan


def _table_units(
    inventory: Inventory,
    states: Mapping[str, FileState],
    options: SyncOptions,
    digest: str,
) -> tuple[list[tuple[SourceFile, Piece, int]], list[Unit]]:
    """Units of table files: one per piece of a file large enough to fill
    half a shard or more; smaller whole files are returned apart, to be
    grouped (with their estimated output bytes), unless the output is
    partitioned."""
    small: list[tuple[SourceFile, Piece, int]] = []
    units: list[Unit] = []
    for file in inventory.files:
        state = states[file.relpath]
        pieces = _pieces(file, state)
        weight = _group_weight(file, state, options.shard_size)
        # Partitioned, every file writes a shard per partition anyway, and a
        # group would tie the partitions of its files together on rewrite.
        small_file = weight * SMALL_FILE_SHARE < options.shard_size
        if len(pieces) == 1 and small_file and not options.partition_by:
            small.append((file, pieces[0][0], weight))
            continue
        for piece, input_bytes in pieces:
            units.append(_single_unit(file, piece, input_bytes, digest))
    return small, units


def _group_weight(file: SourceFile, state: FileState, shard_size: int) -> int:
    """How much of a group's capacity (``shard_size``) a small file takes:
    its expected output, or its share of :data:`GROUP_INPUT` of input when
    that is more, so that a group both fills about one shard and reads no
    more than one worker should read alone (input that compresses well
    still spreads over the workers)."""
    output = file.size * state.ratio
    share_of_input = file.size * shard_size / GROUP_INPUT
    return max(int(output), math.ceil(share_of_input), 1)


def _single_unit(file: SourceFile, piece: Piece, input_bytes: int, digest: str) -> Unit:
    unit_id = _unit_id(file, piece, digest)
    return Unit(
        unit_id=unit_id,
        piece=piece,
        fingerprint=file.fingerprint,
        source_size=file.size,
        input_bytes=input_bytes,
        shard_base=f"{_stem(file.relpath)}-{unit_id}",
    )


def _modulus(
    name: str,
    listed: Sequence[tuple[str, int, Any]],
    large_threshold: int,
    options: SyncOptions,
    manifest: Manifest | None,
    state_digest: str,
) -> int:
    """The grouping modulus (:func:`group_files`) the manifest recorded under
    ``name``, so that group boundaries stay where they were between runs, or
    a new one for ``listed`` when there is none or the options changed."""
    if manifest is not None and manifest.extra.get("state_digest") == state_digest:
        recorded = manifest.extra.get(name)
        if isinstance(recorded, int) and recorded > 0:
            return recorded
    return boundary_modulus(listed, options.shard_size, large_threshold)


def _small_file_units(
    small: Sequence[tuple[SourceFile, Piece, int]],
    options: SyncOptions,
    digest: str,
    modulus: int,
    group_key: GroupKey | None = None,
) -> list[Unit]:
    """Small table files grouped into units of about one shard of output
    (and at most about :data:`GROUP_INPUT` of input: ``small`` carries each
    file's :func:`_group_weight`), with the stable, name-derived boundaries
    of :func:`group_files`. A group of one file is the plain unit of that
    file.

    ``group_key`` keeps files apart: only files with the same key share a
    unit, and a file whose key is None gets a unit of its own.
    """
    by_path = {file.relpath: (file, piece) for file, piece, _ in small}
    buckets: dict[str | None, list[tuple[str, int, Any]]] = {}
    for file, _, output in small:
        key = group_key(file.relpath) if group_key is not None else ""
        buckets.setdefault(key, []).append((file.relpath, output, file.fingerprint))
    groups: list[FileGroup] = []
    for key, listed in buckets.items():
        if key is None:
            groups.extend(FileGroup((entry,)) for entry in listed)
        else:
            size = options.shard_size
            groups.extend(group_files(listed, size, size, modulus))
    units: list[Unit] = []
    for group in groups:
        if len(group.files) == 1:
            file, piece = by_path[group.first]
            units.append(_single_unit(file, piece, file.size, digest))
            continue
        members = tuple(
            Member(by_path[relpath][1], by_path[relpath][0].fingerprint,
                   by_path[relpath][0].size)
            for relpath, _, _ in group.files
        )  # fmt: skip
        key = json.dumps([group.digest(), "tables", digest])
        unit_id = hashlib.sha256(key.encode()).hexdigest()[:16]
        first = members[0]
        units.append(
            Unit(
                unit_id=unit_id,
                piece=first.piece,
                fingerprint=first.fingerprint,
                source_size=first.size,
                input_bytes=sum(member.size for member in members),
                shard_base=f"{_stem(first.piece.relpath)}-{unit_id}",
                members=members,
            )
        )
    return units


def _file_units(
    inventory: Inventory, options: SyncOptions, digest: str, modulus: int
) -> list[Unit]:
    """Units of ``--format files``: groups of small files, one unit each, and
    one unit for each large file."""
    by_path = {file.relpath: file for file in inventory.files}
    listed = [(f.relpath, f.size, f.fingerprint) for f in inventory.files]
    groups = group_files(listed, options.shard_size, options.large_file_size, modulus)
    kind = FileFormat(FILES)
    units: list[Unit] = []
    for group in groups:
        members = tuple(
            Member(
                Piece(relpath, by_path[relpath].path, kind),
                by_path[relpath].fingerprint,
                size,
            )
            for relpath, size, _ in group.files
        )
        key = json.dumps([group.digest(), group.large, digest])
        unit_id = hashlib.sha256(key.encode()).hexdigest()[:16]
        first = members[0]
        units.append(
            Unit(
                unit_id=unit_id,
                piece=first.piece,
                fingerprint=first.fingerprint,
                source_size=first.size,
                input_bytes=group.bytes,
                shard_base=f"{'file' if group.large else 'files'}-{unit_id}",
                members=() if group.large else members,
            )
        )
    return units


T = TypeVar("T")


def _reading(dest: Location, read: Callable[[], T]) -> T:
    """Run a read of the destination's state, retrying transient failures.

    Raises:
        PermanentStorageError: the destination cannot be read (no bucket,
            no permission), with the way out in the message.
    """
    return call_with_retry(read, operation="read the destination", subject=dest.url)


def _check_overlap(source: Location, dest: Location) -> None:
    if source.protocol != dest.protocol:
        return
    src, dst = source.root.rstrip("/") + "/", dest.root.rstrip("/") + "/"
    if dst.startswith(src) or src.startswith(dst):
        raise UsageError(
            f"{dest.url} and {source.url} overlap; "
            "choose a destination outside the source"
        )


def _compare(
    source: Location,
    dest: Location,
    inventory: Inventory,
    units: list[Unit],
    schema: pa.Schema,
    config: Mapping[str, Any],
    digest: str,
    manifest: Manifest | None,
    states: Mapping[str, FileState],
    state_digest: str,
    run_id: str,
) -> Plan:
    recorded: dict[str, UnitReceipt] = {}
    if manifest is not None:
        recorded = {unit.unit_id: unit for unit in manifest.units}
    stray_ids = list_ids(dest, RECEIPTS) - set(recorded)
    recorded.update(read_receipts(dest, stray_ids))

    existing, partials = _list_data(dest)
    planned = {unit.unit_id for unit in units}
    to_write: list[Unit] = []
    to_keep: list[UnitReceipt] = []
    for unit in units:
        receipt = recorded.get(unit.unit_id)
        if receipt is not None and all(
            _unchanged(shard, existing.get(shard.path)) for shard in receipt.shards
        ):
            to_keep.append(receipt)
        else:
            to_write.append(unit)
    to_delete = tuple(r for uid, r in sorted(recorded.items()) if uid not in planned)

    owned = _journal_ids(dest) | set(recorded)
    referenced = {
        shard.path for receipt in recorded.values() for shard in receipt.shards
    }
    orphans = []
    for path in existing:
        match = SHARD_NAME.search(path)
        unit_id = match.group(1) if match else None
        if unit_id in owned and unit_id not in planned and path not in referenced:
            orphans.append(path)
    # Temporary files of writes killed midway are never of use to anyone.
    for path in partials:
        match = PARTIAL_NAME.search(path)
        in_state_dir = path.startswith(f"{STATE_DIR}/")
        if in_state_dir or (match and match.group(1) in owned | planned):
            orphans.append(path)

    # Interrupted uploads of shards of this destination: garbage once found.
    uploads: list[tuple[str, str]] = []
    for path, upload_id in dest.adapter.incomplete_uploads(dest.fs, dest.root):
        match = SHARD_NAME.search(path)
        if match and match.group(1) in owned | planned:
            uploads.append((path, upload_id))

    manifest_current = (
        manifest is not None
        and manifest.config_digest == digest
        and sorted(u.unit_id for u in manifest.units)
        == sorted(u.unit_id for u in units)
    )
    plan = Plan(
        run_id=run_id,
        source=source.url,
        dest=dest.url,
        schema=schema,
        config=config,
        config_digest=digest,
        inventory=inventory,
        to_write=tuple(to_write),
        to_keep=tuple(to_keep),
        to_delete=to_delete,
        orphans=tuple(sorted(orphans)),
        files={**states},
        manifest_current=manifest_current,
        state_digest=state_digest,
        uploads_to_abort=tuple(uploads),
    )
    return plan


def _unchanged(shard: ShardReceipt, info: Mapping[str, Any] | None) -> bool:
    """Whether a listed shard is still the object its receipt describes."""
    if info is None or int(info.get("size") or 0) != shard.size:
        return False
    return shard.version is None or object_version(info) == shard.version


def _list_data(dest: Location) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Listing entries of the Parquet objects at the destination, by relative
    path, and the temporary files of interrupted local writes."""
    entries = dest.adapter.find(dest.fs, dest.root)
    found: dict[str, dict[str, Any]] = {}
    partials: list[str] = []
    for path, info in entries.items():
        relative = dest.relative(path)
        if relative.endswith(PARTIAL_SUFFIX):
            partials.append(relative)
        elif relative.startswith(f"{STATE_DIR}/"):
            continue
        elif relative.endswith(DATA_SUFFIXES):
            found[relative] = info
    return found, partials


def _journal_ids(dest: Location) -> set[str]:
    owned: set[str] = set()
    for run_id in list_ids(dest, JOURNAL):
        data = read_json(dest, f"{JOURNAL}/{run_id}.json")
        if data:
            owned.update(data.get("units", []))
    return owned
