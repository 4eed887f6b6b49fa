"""Pack a generated tree, read one file back, unpack it all, detect damage."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datamove.files
from datamove.errors import (
    ChecksumMismatchError,
    InputError,
    UsageError,
    VerificationError,
)
from datamove.files import (
    FILE_SCHEMA,
    INDEX,
    INDEX_SCHEMA,
    build_index,
    collect_index,
    read_index,
    table_rows,
    write_index,
)
from datamove.storage import Location
from datamove.unpack import unpack

from .helpers import LARGE, Packing, make_tree, pack


@pytest.fixture(scope="module")
def packed(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, dict[str, bytes], Packing]:
    source = tmp_path_factory.mktemp("source")
    dest = tmp_path_factory.mktemp("dest")
    files = make_tree(source)
    packing = pack(source, dest)
    return source, dest, files, packing


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            found[path.relative_to(root).as_posix()] = (
                path.read_bytes(),
                path.stat().st_mtime_ns,
            )
    return found


def _copy(dest: Path, into: Path) -> Path:
    into.mkdir()
    for path in dest.rglob("*"):
        if path.is_file():
            copy = into / path.relative_to(dest)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(path.read_bytes())
    return into


def test_shards_have_the_schema_and_small_row_groups(packed: tuple) -> None:
    _, dest, files, packing = packed
    shards = [o for o in packing.objects if not o.is_blob]
    assert len(shards) > 3
    assert packing.groups > 3
    for shard in shards:
        parquet = pq.ParquetFile(dest / shard.path)
        assert parquet.schema_arrow.equals(FILE_SCHEMA)
        for group in range(parquet.num_row_groups):
            # One batch of ~64 KiB per row group, plus at most one 8 KiB file.
            assert parquet.metadata.row_group(group).total_byte_size < 200 << 10
    blobs = [o for o in packing.objects if o.is_blob]
    assert [b.source for b in blobs] == ["big/large file.bin"]
    assert (dest / blobs[0].path).read_bytes() == files["big/large file.bin"]


def test_index_lists_every_file_once(packed: tuple) -> None:
    source, dest, files, _ = packed
    index = read_index(Location.parse(str(dest)))
    rows = table_rows(index)
    assert sorted(row["path"] for row in rows) == sorted(files)
    by_path = {row["path"]: row for row in rows}
    big = by_path["big/large file.bin"]
    assert big["row_group"] == -1 and big["size"] == LARGE + 12345
    odd = by_path["odd/emoji 🎉.png"]
    assert odd["media_type"] == "image/png"
    assert odd["mtime"] == (source / "odd" / "emoji 🎉.png").stat().st_mtime_ns


def test_open_reads_one_file_by_path(packed: tuple) -> None:
    _, dest, files, _ = packed
    for relpath in [
        "odd/ünïcødé/naïve café.txt",
        "odd/-leading-dash",
        "big/large file.bin",
        next(iter(files)),
    ]:
        assert datamove.files.open(str(dest), relpath) == files[relpath]
    empty = next(p for p, data in files.items() if not data)
    assert datamove.files.open(str(dest), empty) == b""


def test_open_an_unknown_path_names_it(packed: tuple) -> None:
    _, dest, _, _ = packed
    with pytest.raises(UsageError, match=re.escape("no file 'nope/missing.bin'")):
        datamove.files.open(str(dest), "nope/missing.bin")


def test_unpack_restores_every_byte_and_mtime(packed: tuple, tmp_path: Path) -> None:
    source, dest, files, _ = packed
    target = tmp_path / "restore"
    report = unpack(str(dest), str(target))
    assert report.files == len(files)
    assert report.restored == len(files) and report.skipped == 0
    assert _tree(target) == _tree(source)
    assert not list(target.rglob("*.dm-partial"))


def test_unpack_resumes_and_repairs(packed: tuple, tmp_path: Path) -> None:
    source, dest, files, _ = packed
    target = tmp_path / "restore"
    unpack(str(dest), str(target))
    # A killed run: one file gone, one truncated, one with a wrong time,
    # and a temporary file left behind.
    gone, cut, late = sorted(p for p, data in files.items() if len(data) > 10)[:3]
    (target / gone).unlink()
    (target / cut).write_bytes(files[cut][:5])
    os.utime(target / late, ns=(1, 1))
    leftover = target / Path(gone).parent / ".dm-0123456789abcdef.dm-partial"
    leftover.write_bytes(b"partial")

    report = unpack(str(dest), str(target))
    assert report.restored == 2
    assert report.skipped == len(files) - 2
    assert report.objects_read <= 2
    assert _tree(target) == _tree(source)
    assert not leftover.exists()

    again = unpack(str(dest), str(target))
    assert again.restored == 0 and again.objects_read == 0


def _flip_in_data(shard: Path, row_group: int) -> None:
    """Flip a byte inside the ``data`` column chunk of one row group."""
    metadata = pq.ParquetFile(shard).metadata
    chunk = metadata.row_group(row_group).column(FILE_SCHEMA.get_field_index("data"))
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    offset = start + chunk.total_compressed_size // 2
    data = bytearray(shard.read_bytes())
    data[offset] ^= 0x5A
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("compression", "page_checksum"),
    [("zstd", True), ("zstd", False), ("none", True), ("none", False)],
)
def test_a_flipped_byte_is_caught_and_the_shard_named(
    tmp_path: Path, compression: str, page_checksum: bool
) -> None:
    source = tmp_path / "source"
    make_tree(source, count=300, seed=3)
    dest = tmp_path / "dest"
    dest.mkdir()
    packing = pack(source, dest, compression=compression, page_checksum=page_checksum)
    index = table_rows(read_index(Location.parse(str(dest))))
    victim = next(row for row in index if row["row_group"] >= 0 and row["size"] > 100)
    _flip_in_data(dest / victim["object"], victim["row_group"])

    # open() reads only the row group: the page checksum, the decoder or the
    # file's CRC32C catches the damage. Files of that row group are returned
    # intact or refused with the shard named, never returned wrong.
    original = {
        p.relative_to(source).as_posix(): p.read_bytes()
        for p in source.rglob("*")
        if p.is_file()
    }
    refused = 0
    same_group = [
        row
        for row in index
        if (row["object"], row["row_group"]) == (victim["object"], victim["row_group"])
    ]
    for row in same_group:
        try:
            data = datamove.files.open(str(dest), row["path"])
        except ChecksumMismatchError as error:
            assert victim["object"] in str(error)
            refused += 1
        else:
            assert data == original[row["path"]]
    assert refused >= 1

    target = tmp_path / "restore"
    with pytest.raises(VerificationError, match=victim["object"]) as caught:
        unpack(str(dest), str(target))
    assert len(caught.value.problems) == 1
    # Files of the damaged shard are not written; every other file is.
    restored = _tree(target)
    in_victim = {r["path"] for r in index if r["object"] == victim["object"]}
    assert not in_victim & set(restored)
    assert len(restored) == len(index) - len(in_victim)
    assert len(packing.objects) > 1


def test_a_row_that_does_not_match_its_crc32c_is_caught(tmp_path: Path) -> None:
    """Defence in depth: a shard whose own checksum is consistent (rewritten
    by a third party) but whose row bytes differ from the recorded CRC32C."""
    source = tmp_path / "source"
    make_tree(source, count=50, seed=5)
    dest = tmp_path / "dest"
    dest.mkdir()
    pack(source, dest, compression="none")
    location = Location.parse(str(dest))
    rows = table_rows(read_index(location))
    victim = next(row for row in rows if row["row_group"] >= 0 and row["size"] > 0)
    tampered = [
        {**row, "crc32c": "AAAAAA=="} if row["path"] == victim["path"] else row
        for row in rows
    ]
    write_index(location, build_index(tampered))
    with pytest.raises(ChecksumMismatchError, match="CRC32C"):
        datamove.files.open(str(dest), victim["path"])
    with pytest.raises(VerificationError, match=victim["object"]):
        unpack(str(dest), str(tmp_path / "restore"))


@pytest.mark.parametrize(
    "bad", ["../escape", "/etc/passwd", "a/../../b", "a//b", "./a", "", "a/\x00"]
)
def test_unsafe_paths_in_the_index_are_refused(tmp_path: Path, bad: str) -> None:
    source = tmp_path / "source"
    make_tree(source, count=5, seed=9)
    dest = tmp_path / "dest"
    dest.mkdir()
    pack(source, dest)
    location = Location.parse(str(dest))
    rows = table_rows(read_index(location))
    rows[0] = {**rows[0], "path": bad}
    # Written past build_index, as a tampered or foreign index would be.
    table = pa.table(
        {f.name: pa.array([r[f.name] for r in rows], f.type) for f in INDEX_SCHEMA}
    )
    pq.write_table(table, dest / INDEX)
    target = tmp_path / "restore"
    with pytest.raises(InputError, match="unsafe file path"):
        unpack(str(dest), str(target))
    assert not (tmp_path / "escape").exists()
    assert not list(target.rglob("*")) if target.exists() else True
    with pytest.raises(InputError, match="unsafe file path"):
        build_index(rows)


def test_a_symlinked_folder_pointing_outside_is_refused(
    packed: tuple, tmp_path: Path
) -> None:
    _, dest, _, _ = packed
    target = tmp_path / "restore"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (target / "odd").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="resolves outside"):
        unpack(str(dest), str(target))
    assert not list(outside.iterdir())


def test_unpack_without_an_index_says_how_to_get_one(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    with pytest.raises(UsageError, match="--format files"):
        unpack(str(tmp_path / "dest"), str(tmp_path / "restore"))


def test_unpack_into_the_dataset_is_refused(packed: tuple) -> None:
    _, dest, _, _ = packed
    with pytest.raises(UsageError, match="overlap"):
        unpack(str(dest), str(dest / "restore"))


def test_index_reuses_rows_of_known_shards(packed: tuple, tmp_path: Path) -> None:
    _, dest, _, packing = packed
    copy = _copy(dest, tmp_path / "copy")
    location = Location.parse(str(copy))
    previous = read_index(location)
    shard = next(o for o in packing.objects if not o.is_blob)
    (copy / shard.path).unlink()
    # The deleted shard is not read again: its rows come from the old index.
    again = collect_index(location, packing.objects, previous)
    assert again.equals(previous)
