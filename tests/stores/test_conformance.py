"""One conformance suite: the same sync contract on local disk, S3, GCS and Azure.

Each store is a real server on loopback (moto, gcp-storage-emulator, Azurite)
started by the session fixtures; nothing is mocked at the HTTP level.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import datamove
from tests.core.helpers import kill_when, write_csv
from tests.stores.conftest import Bucket

pytestmark = pytest.mark.cloud


@dataclass(frozen=True)
class Destination:
    """Where a conformance case writes, and how to look at it directly."""

    url: str
    options: dict[str, Any]
    fs: Any
    root: str

    def shards(self) -> list[str]:
        # This filesystem is the test's own; its listings must not be cached.
        self.fs.invalidate_cache()
        found = self.fs.find(self.root)
        return sorted(
            p for p in found if p.endswith(".parquet") and "/_datamove/" not in p
        )

    def read(self) -> pa.Table:
        table = ds.dataset(
            self.shards(), filesystem=self.fs, format="parquet"
        ).to_table()
        return table.sort_by("id")


@pytest.fixture(params=["local", "s3", "gcs", "azure"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    if request.param == "local":
        import fsspec

        root = str(tmp_path / "lake")
        return Destination(root, {}, fsspec.filesystem("file"), root)
    fixture = {"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}
    bucket: Bucket = request.getfixturevalue(fixture[request.param])
    server = bucket.server
    root = f"{bucket.name}/lake"
    return Destination(
        f"{server.protocol}://{root}", dict(server.storage_options), bucket.fs, root
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    write_csv(tmp_path / "src" / "a.csv", 20_000, seed=11)
    write_csv(tmp_path / "src" / "b.csv", 3_000, seed=12, start=50_000)
    return tmp_path / "src"


def _sync(source: Path, dest: Destination, **options: Any) -> datamove.SyncReport:
    return datamove.sync(
        str(source),
        dest.url,
        dest_options=dest.options,
        workers=1,
        shard_size="256KiB",
        **options,
    )


def _expected_ids() -> list[int]:
    return list(range(20_000)) + list(range(50_000, 53_000))


def test_sync_noop_and_verify(source: Path, destination: Destination) -> None:
    report = _sync(source, destination)
    assert report.status == "ok" and report.rows_written == 23_000
    assert destination.read().column("id").to_pylist() == _expected_ids()
    again = _sync(source, destination)
    assert again.status == "noop" and again.shards_written == 0
    for deep in (False, True):
        checked = datamove.verify(
            destination.url, deep=deep, dest_options=destination.options
        )
        assert checked.ok, checked.problems
        assert checked.rows_checked == 23_000


def test_corruption_is_named_by_verify_and_repaired_by_sync(
    source: Path, destination: Destination
) -> None:
    _sync(source, destination)
    victim = destination.shards()[0]
    data = bytearray(destination.fs.cat_file(victim))
    data[len(data) // 3] ^= 0x10
    destination.fs.pipe_file(victim, bytes(data))
    name = victim.rsplit("/", 1)[-1]
    for deep in (False, True):
        checked = datamove.verify(
            destination.url, deep=deep, dest_options=destination.options
        )
        assert not checked.ok
        assert any(name in problem for problem in checked.problems), checked.problems
    repaired = _sync(source, destination)
    assert repaired.shards_written >= 1
    checked = datamove.verify(
        destination.url, deep=True, dest_options=destination.options
    )
    assert checked.ok


def test_incremental_change_and_delete(source: Path, destination: Destination) -> None:
    _sync(source, destination)
    before = set(destination.shards())
    write_csv(source / "b.csv", 4_000, seed=13, start=50_000)
    os.utime(source / "b.csv", (time.time() + 10, time.time() + 10))
    changed = _sync(source, destination)
    assert changed.units_written == 1
    after = set(destination.shards())
    kept = {p for p in before if "/a-" in p}
    assert kept <= after, "shards of the unchanged file were rewritten"
    ids = destination.read().column("id").to_pylist()
    assert ids == list(range(20_000)) + list(range(50_000, 54_000))
    (source / "a.csv").unlink()
    removed = _sync(source, destination)
    assert removed.shards_deleted == len(kept)
    assert destination.read().column("id").to_pylist() == list(range(50_000, 54_000))
    assert datamove.verify(
        destination.url, deep=True, dest_options=destination.options
    ).ok


def _receipt_count(dest: Destination) -> int:
    dest.fs.invalidate_cache()
    try:
        names = dest.fs.ls(
            f"{dest.root}/_datamove/receipts", detail=False, refresh=True
        )
    except FileNotFoundError:
        return 0
    # Only committed receipts: a local write in progress is a hidden temp file.
    return sum(1 for name in names if name.endswith(".json"))


def test_killed_run_resumes_from_a_fresh_process(
    tmp_path: Path, destination: Destination
) -> None:
    source = tmp_path / "many"
    for index in range(40):
        write_csv(
            source / f"part-{index:02d}.csv", 800, seed=index, start=index * 10_000
        )
    expected = [i * 10_000 + j for i in range(40) for j in range(800)]
    command = [
        sys.executable,
        "-m",
        "datamove.cli",
        "sync",
        str(source),
        destination.url,
        "--dest-options",
        json.dumps(destination.options),
        "--workers",
        "1",
        "--shard-size",
        "64KiB",
        "--no-progress",
        "-q",
    ]
    # Small files share units: at this shard size there are still many.
    units = len(
        datamove.plan(
            str(source), destination.url, dest_options=destination.options,
            shard_size="64KiB",
        ).to_write
    )  # fmt: skip
    assert units >= 10
    # Killed with a few units receipted and the rest not: a second process
    # that shares nothing but the destination finishes the job.
    assert kill_when(command, lambda: _receipt_count(destination) >= 3)
    destination.fs.invalidate_cache()
    assert not destination.fs.exists(f"{destination.root}/_datamove/manifest.json")
    finished = subprocess.run([*command, "--json"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert report["status"] == "ok"
    assert report["units_written"] <= units - 3
    assert destination.read().column("id").to_pylist() == expected
    manifest_path = f"{destination.root}/_datamove/manifest.json"
    destination.fs.invalidate_cache()
    manifest = json.loads(destination.fs.cat_file(manifest_path))
    listed = {s["path"] for u in manifest["units"] for s in u["shards"]}
    present = {p[len(destination.root) + 1 :] for p in destination.shards()}
    assert present == listed, "duplicate or orphaned shards"


@pytest.mark.parametrize("store", ["s3", "gcs", "azure"])
def test_object_store_as_the_source(
    request: pytest.FixtureRequest, store: str, source: Path, tmp_path: Path
) -> None:
    fixture = {"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}
    bucket: Bucket = request.getfixturevalue(fixture[store])
    for path in sorted(source.iterdir()):
        bucket.fs.put_file(str(path), f"{bucket.name}/raw/{path.name}")
    url = f"{bucket.server.protocol}://{bucket.name}/raw"
    options = dict(bucket.server.storage_options)
    report = datamove.sync(
        url, str(tmp_path / "back"), source_options=options, workers=1
    )
    assert report.rows_written == 23_000
    again = datamove.sync(
        url, str(tmp_path / "back"), source_options=options, workers=1
    )
    assert again.status == "noop"
    table = (
        ds.dataset(str(tmp_path / "back"), format="parquet").to_table().sort_by("id")
    )
    assert table.column("id").to_pylist() == _expected_ids()
