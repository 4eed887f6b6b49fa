"""Builders for the packed-files tests: a source tree and a packing that
does what the sharder will do (one row group per batch, CRC32C as written)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from datamove.checksum import HashingWriter
from datamove.files import (
    FILE_SCHEMA,
    StoredObject,
    blob_name,
    collect_index,
    file_batches,
    group_files,
    store_large_file,
    write_index,
)
from datamove.storage import Location

LARGE = 256 << 10
ODD_NAMES = [
    "with space.bin",
    "-leading-dash",
    "--double",
    "ünïcødé/naïve café.txt",
    "日本語/ファイル.dat",
    "emoji 🎉.png",
    "quote'and\"double.json",
    "semi;colon,comma=equals.csv",
    "percent%20encoded#hash?.bin",
    "a" * 200,
    ".hidden",
    "_underscore",
]


def make_tree(root: Path, count: int = 2000, seed: int = 7) -> dict[str, bytes]:
    """A nested tree of small binary files with odd names, empty files and
    one file over :data:`LARGE`; returns relpath -> bytes."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(count):
        depth = rng.randint(0, 3)
        folders = [f"d{rng.randint(0, 9)}" for _ in range(depth)]
        name = f"f{i:05d}.{rng.choice(['bin', 'png', 'json', 'wav', 'x'])}"
        size = 0 if i % 97 == 0 else rng.randint(0, 8 << 10)
        files["/".join([*folders, name])] = rng.randbytes(size)
    for i, name in enumerate(ODD_NAMES):
        files[f"odd/{name}"] = rng.randbytes(i * 10)
    files["big/large file.bin"] = rng.randbytes(LARGE + 12345)
    for relpath, data in files.items():
        path = root.joinpath(*relpath.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        # Times with nanoseconds, from 1989 to 2023.
        stamp = 1_600_000_000_123_456_789 + rng.randint(-(10**18), 10**17)
        os.utime(path, ns=(stamp, stamp))
    return files


@dataclass(frozen=True)
class Packing:
    objects: list[StoredObject]
    groups: int


def pack(
    source: Path,
    dest: Path,
    target: int = 1 << 20,
    batch_bytes: int = 64 << 10,
    compression: str = "zstd",
    page_checksum: bool = True,
) -> Packing:
    """Pack ``source`` into ``dest`` as the files format will, and write the
    index. Shards are cut at ``target`` bytes like the sharder's writer."""
    fs_location = Location.parse(str(source))
    dest_location = Location.parse(str(dest))
    entries = []
    for path in sorted(source.rglob("*")):
        if path.is_file():
            relpath = path.relative_to(source).as_posix()
            stat = path.stat()
            entries.append((relpath, stat.st_size, stat.st_mtime_ns))
    groups = group_files(entries, target, large_threshold=LARGE)
    objects: list[StoredObject] = []
    for number, group in enumerate(groups):
        base = f"part-{number:016x}"
        if group.large:
            relpath = group.files[0][0]
            stored = store_large_file(
                fs_location.fs,
                fs_location.path(relpath),
                dest_location,
                blob_name(base),
            )
            objects.append(
                StoredObject(
                    stored["path"],
                    stored["size"],
                    stored["crc32c"],
                    source=relpath,
                    mtime_ns=stored["mtime_ns"],
                )
            )
            continue
        pairs = [(fs_location.path(relpath), relpath) for relpath, _, _ in group.files]
        objects.extend(
            _write_shards(
                fs_location,
                dest,
                base,
                pairs,
                target,
                batch_bytes,
                compression,
                page_checksum,
            )
        )
    index = collect_index(dest_location, objects)
    write_index(dest_location, index)
    return Packing(objects, len(groups))


def _write_shards(
    source: Location,
    dest: Path,
    base: str,
    pairs: list[tuple[str, str]],
    target: int,
    batch_bytes: int,
    compression: str,
    page_checksum: bool,
) -> list[StoredObject]:
    shards: list[StoredObject] = []
    handle = writer = hashing = None
    relative = ""
    for batch, _ in file_batches(source.fs, pairs, batch_bytes):
        if writer is None:
            relative = f"{base}-{len(shards):03d}.parquet"
            handle = open(dest / relative, "wb")  # noqa: SIM115
            hashing = HashingWriter(handle)
            writer = pq.ParquetWriter(
                hashing,
                FILE_SCHEMA,
                compression=compression,
                write_page_checksum=page_checksum,
                use_dictionary=["path", "media_type"],
            )
        writer.write_batch(batch, row_group_size=batch.num_rows)
        assert hashing is not None
        if hashing.bytes_written >= target:
            writer.close()
            assert handle is not None
            handle.close()
            shards.append(StoredObject(relative, hashing.bytes_written, hashing.crc32c))
            writer = None
    if writer is not None:
        writer.close()
        assert handle is not None and hashing is not None
        handle.close()
        shards.append(StoredObject(relative, hashing.bytes_written, hashing.crc32c))
    return shards
