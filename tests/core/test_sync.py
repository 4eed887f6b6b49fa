"""The sync contract on a local destination: plan, shard, resume, verify."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

import datamove
from tests.core.helpers import parquet_files, read_rows, write_csv


@pytest.fixture
def source(tmp_path: Path) -> Path:
    write_csv(tmp_path / "src" / "big.csv", 60_000, seed=1)
    write_csv(tmp_path / "src" / "nested" / "small.csv", 50, seed=2, start=100_000)
    return tmp_path / "src"


def test_split_csv_loses_and_duplicates_nothing(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dst"
    plan = datamove.plan(str(source), str(dest), shard_size="256KiB")
    big_units = [u for u in plan.to_write if u.piece.relpath == "big.csv"]
    assert len(big_units) >= 3
    report = datamove.sync(str(source), str(dest), shard_size="256KiB", workers=1)
    ids = read_rows(dest).column("id").to_pylist()
    assert ids == list(range(60_000)) + list(range(100_000, 100_050))
    assert report.rows_written == len(ids)


def test_shards_are_within_ten_percent_of_target(tmp_path: Path) -> None:
    write_csv(tmp_path / "src" / "a.csv", 200_000, seed=3)
    dest = tmp_path / "dst"
    target = 512 * 1024
    datamove.sync(str(tmp_path / "src"), str(dest), shard_size=target, workers=1)
    manifest = datamove.state.read_manifest(datamove.storage.Location.parse(str(dest)))
    assert manifest is not None
    for unit in manifest.units:
        # The last shard of a unit may be short; every other one is on target.
        for shard in unit.shards[:-1]:
            assert abs(shard.size - target) <= target * 0.10, shard
    sizes = [shard.size for shard in manifest.shards]
    assert len(sizes) >= 4
    assert all(abs(size - target) <= target * 0.10 for size in sizes[:-1]), sizes


def test_quoted_newlines_are_never_split_inside_a_field(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "q.csv", "w") as handle:
        handle.write("id,text\n")
        for i in range(100_000):
            handle.write(f'{i},"line one\nline two, {i}\n""quoted"" end"\n')
    report = datamove.sync(
        str(src), str(tmp_path / "dst"), shard_size="128KiB", workers=1
    )
    assert report.units_written > 1
    table = read_rows(tmp_path / "dst")
    assert table.column("id").to_pylist() == list(range(100_000))
    assert table.column("text")[7].as_py() == 'line one\nline two, 7\n"quoted" end'


def test_dry_run_writes_nothing(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dst"
    report = datamove.sync(str(source), str(dest), dry_run=True)
    assert report.status == "dry-run"
    # Two files under half a shard each: grouped into one unit.
    assert report.plan is not None and report.plan["units_to_write"] == 1
    assert "(2 files)" in report.plan["write"][0]["piece"]
    assert not dest.exists()


def test_rerun_with_nothing_changed_writes_nothing(
    source: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dst"
    datamove.sync(str(source), str(dest), shard_size="256KiB", workers=1)
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}
    report = datamove.sync(str(source), str(dest), shard_size="256KiB", workers=1)
    assert report.status == "noop"
    assert report.shards_written == 0 and report.shards_skipped == len(
        parquet_files(dest)
    )
    after = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}
    assert before == after


def test_changed_file_rewrites_only_its_shards(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dst"
    datamove.sync(str(source), str(dest), shard_size="256KiB", workers=1)
    big_before = {
        p.name: p.stat().st_mtime_ns for p in parquet_files(dest) if "big" in p.name
    }
    small = source / "nested" / "small.csv"
    write_csv(small, 80, seed=9, start=100_000)
    os.utime(small, (time.time() + 5, time.time() + 5))
    report = datamove.sync(str(source), str(dest), shard_size="256KiB", workers=1)
    assert report.status == "ok"
    assert report.units_written == 1
    assert report.shards_deleted == 1
    big_after = {
        p.name: p.stat().st_mtime_ns for p in parquet_files(dest) if "big" in p.name
    }
    assert big_before == big_after
    ids = read_rows(dest).column("id").to_pylist()
    assert ids == list(range(60_000)) + list(range(100_000, 100_080))
    assert datamove.verify(str(dest)).ok


def test_deleted_source_file_removes_its_shards(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dst"
    datamove.sync(str(source), str(dest), workers=1)
    (dest / "not-ours.parquet").write_bytes(b"someone else's file")
    (source / "nested" / "small.csv").unlink()
    report = datamove.sync(str(source), str(dest), workers=1)
    assert report.shards_deleted == 1
    names = [p.name for p in parquet_files(dest)]
    assert not any(name.startswith("small-") for name in names)
    # datamove never deletes what it did not write.
    assert "not-ours.parquet" in names
    assert datamove.verify(str(dest)).ok


def test_verify_names_a_flipped_byte_and_a_missing_shard(
    source: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dst"
    datamove.sync(str(source), str(dest), shard_size="256KiB", workers=1)
    assert datamove.verify(str(dest)).ok
    files = parquet_files(dest)
    flipped, missing = files[0], files[1]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    missing.unlink()
    for deep in (False, True):
        report = datamove.verify(str(dest), deep=deep)
        assert not report.ok
        text = "\n".join(report.problems)
        assert flipped.name in text and "CRC32C" in text
        assert missing.name in text and "missing" in text
    # A re-run repairs both.
    datamove.sync(str(source), str(dest), shard_size="256KiB", workers=1)
    assert datamove.verify(str(dest), deep=True).ok


def test_output_reads_in_pyarrow_duckdb_and_pandas(
    source: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dst"
    datamove.sync(str(source), str(dest), shard_size="256KiB", workers=1)
    expected = 60_050
    assert read_rows(dest).num_rows == expected
    glob = str(dest / "*.parquet")
    query = f"select count(*), min(zip) from read_parquet('{glob}')"
    count = duckdb.sql(query).fetchall()[0]
    assert count[0] == expected
    assert isinstance(count[1], str) and len(count[1]) == 5
    frame = pd.read_parquet(dest)
    assert len(frame) == expected
    assert frame["zip"].str.len().eq(5).all()


def test_partition_by_writes_hive_layout(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("id,region,v\n1,eu,1\n2,us,2\n3,eu,3\n4,a/b=c,4\n5,,5\n")
    dest = tmp_path / "dst"
    datamove.sync(str(src), str(dest), partition_by=["region"], workers=1)
    folders = sorted(p.parent.name for p in parquet_files(dest))
    assert folders == ["region=", "region=a%2Fb%3Dc", "region=eu", "region=us"]
    frame = duckdb.sql(
        f"select region, sum(v) from read_parquet('{dest}/**/*.parquet', "
        "hive_partitioning=true) group by region order by region"
    ).fetchall()
    assert ("eu", 4) in frame and ("us", 2) in frame
    assert datamove.verify(str(dest), deep=True).ok


def test_runs_on_a_real_dask_cluster(
    source: Path, tmp_path: Path, dask_client: object
) -> None:
    dest = tmp_path / "dst"
    updates: list[datamove.Progress] = []
    report = datamove.sync(
        str(source),
        str(dest),
        shard_size="256KiB",
        client=dask_client,
        progress=updates.append,
    )
    assert report.status == "ok"
    assert report.executor.startswith("dask cluster")
    # Besides one update per finished unit, the workers sent partial progress.
    assert len(updates) > updates[-1].units_total, updates
    assert updates[-1].rows == report.rows_written
    assert updates[-1].units_done == updates[-1].units_total
    assert read_rows(dest).num_rows == 60_050
    assert datamove.verify(str(dest), deep=True).ok


def test_bad_rows_fail_by_default_and_can_be_skipped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("id,v\n1,2\n2,3,4\n3,4\n")
    with pytest.raises(datamove.SyncFailedError) as caught:
        datamove.sync(str(src), str(tmp_path / "dst"), workers=1)
    assert "a.csv" in str(caught.value) and "2,3,4" in str(caught.value)
    assert caught.value.exit_code == 2
    report = datamove.sync(
        str(src), str(tmp_path / "dst"), workers=1, on_bad_rows="skip"
    )
    assert report.bad_rows == 1 and report.rows_written == 2


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "empty.csv").write_text("")
    (src / "header.csv").write_text("id,v\n")
    (src / "data.csv").write_text("id,v\n1,2\n")
    report = datamove.sync(str(src), str(tmp_path / "dst"), workers=1)
    assert report.rows_written == 1
    assert pq.read_table(parquet_files(tmp_path / "dst")[0]).num_rows == 1


def test_destination_inside_source_is_refused(source: Path) -> None:
    with pytest.raises(datamove.UsageError, match="overlap"):
        datamove.sync(str(source), str(source / "out"))


def test_transient_write_failures_are_retried_and_reported(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datamove.stores.local import LocalAdapter

    original = LocalAdapter.open_write
    failures = iter([ConnectionResetError("reset by peer"), TimeoutError("slow")])

    def flaky(self: LocalAdapter, fs: object, path: str, options: object) -> object:
        error = next(failures, None) if path.endswith(".parquet") else None
        if error is not None:
            raise error
        return original(self, fs, path, options)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalAdapter, "open_write", flaky)
    monkeypatch.setattr("datamove.retry.time.sleep", lambda seconds: None)
    report = datamove.sync(str(source), str(tmp_path / "dst"), workers=1)
    assert report.status == "ok"
    assert report.retries == 2
    assert sum(report.retry_causes.values()) == 2, report.retry_causes
    assert read_rows(tmp_path / "dst").num_rows == 60_050


def test_verify_lists_a_shard_the_store_refuses_to_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datamove.stores.base import StoreAdapter

    write_csv(tmp_path / "src" / "a.csv", 1_000)
    dest = tmp_path / "dst"
    datamove.sync(str(tmp_path / "src"), str(dest), workers=1)

    class FlexibleChecksumError(Exception):
        """What botocore raises when a GET's bytes fail the stored checksum."""

    def refuse(self: StoreAdapter, fs: object, path: str) -> object:
        raise FlexibleChecksumError("Expected checksum did not match")

    monkeypatch.setattr(StoreAdapter, "open_read", refuse)
    checked = datamove.verify(str(dest), deep=True)
    assert not checked.ok
    assert "FlexibleChecksumError" in checked.problems[0]
