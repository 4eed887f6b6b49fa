"""The bad input catalogue: each gets a clear error naming the file, or the
outcome the user chose; nothing partial reaches the destination."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datamove
from tests.core.helpers import parquet_files, read_rows, write_csv


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    return source


def _fails_naming(source: Path, dest: Path, name: str, *words: str) -> str:
    with pytest.raises(datamove.DatamoveError) as caught:
        datamove.sync(str(source), str(dest), workers=1)
    message = str(caught.value)
    assert name in message, message
    for word in words:
        assert word in message, message
    assert caught.value.exit_code == 2
    assert not (dest / "_datamove" / "manifest.json").exists()
    return message


def test_invalid_utf8_names_the_file(tmp_path: Path) -> None:
    source = _source(tmp_path)
    (source / "bad.csv").write_bytes(b"id,name\n1,ok\n2,caf\xe9\n")
    _fails_naming(source, tmp_path / "dst", "bad.csv")


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    source = _source(tmp_path)
    data = gzip.compress(b"id,v\n" + b"1,2\n" * 10_000)
    (source / "broken.csv.gz").write_bytes(data[: len(data) // 2] + b"garbage" * 10)
    _fails_naming(source, tmp_path / "dst", "broken.csv.gz")


def test_corrupt_zstd_names_the_file(tmp_path: Path) -> None:
    source = _source(tmp_path)
    (source / "broken.csv.zst").write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(200))
    _fails_naming(source, tmp_path / "dst", "broken.csv.zst")


def test_truncated_parquet_names_the_file(tmp_path: Path) -> None:
    source = _source(tmp_path)
    pq.write_table(pa.table({"id": list(range(1000))}), source / "t.parquet")
    data = (source / "t.parquet").read_bytes()
    (source / "t.parquet").write_bytes(data[:-100])
    _fails_naming(source, tmp_path / "dst", "t.parquet")


def test_a_100mb_single_line_is_read(tmp_path: Path) -> None:
    source = _source(tmp_path)
    with open(source / "wide.csv", "w") as handle:
        handle.write("id,blob\n1,")
        handle.write("x" * (100 << 20))
        handle.write("\n2,small\n")
    report = datamove.sync(str(source), str(tmp_path / "dst"), workers=1)
    assert report.rows_written == 2
    table = read_rows(tmp_path / "dst")
    assert len(table.column("blob")[0].as_py()) == 100 << 20


def test_symlink_loops_do_not_hang_the_walk(tmp_path: Path) -> None:
    source = _source(tmp_path)
    write_csv(source / "a.csv", 10)
    (source / "loop").symlink_to(source, target_is_directory=True)
    report = datamove.sync(str(source), str(tmp_path / "dst"), workers=1)
    assert report.rows_written == 10


def test_a_file_changed_during_the_run_is_reported_not_mixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path)
    write_csv(source / "a.csv", 1000)
    original = datamove.sharder.read_piece

    def change_then_read(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        time.sleep(0.01)
        write_csv(source / "a.csv", 1200, seed=5)
        return original(*args, **kwargs)

    monkeypatch.setattr(datamove.sharder, "read_piece", change_then_read)
    with pytest.raises(datamove.SyncFailedError) as caught:
        datamove.sync(str(source), str(tmp_path / "dst"), workers=1)
    assert "a.csv" in str(caught.value) and "changed" in str(caught.value)
    assert not parquet_files(tmp_path / "dst")


def test_hostile_names_stay_inside_the_destination(tmp_path: Path) -> None:
    source = _source(tmp_path)
    names = [
        "new\nline.csv",
        "a..b.csv",
        "x" * 200 + ".csv",
        "ünï😀cödé.csv",
        "-rf.csv",
    ]
    for index, name in enumerate(names):
        write_csv(source / name, 5, start=index * 10)
    write_csv(source / "sub" / ".." / "sub2" / "a.csv", 5, start=100)
    dest = tmp_path / "dst"
    report = datamove.sync(str(source), str(dest), workers=1, partition_by=["day"])
    assert report.rows_written == 30
    for path in dest.rglob("*"):
        assert dest in path.resolve().parents
        relative = path.relative_to(dest).as_posix()
        assert "\n" not in relative
        if path.suffix == ".parquet":
            assert not relative.startswith("_datamove")
            assert all(len(part.encode()) <= 255 for part in path.parts)
