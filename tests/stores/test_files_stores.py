"""`sync --format files` into S3, GCS and Azure servers, and `unpack` back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import datamove
import datamove.files
from tests.files.helpers import LARGE, make_tree
from tests.stores.conftest import Bucket

pytestmark = pytest.mark.cloud

BUCKETS = {"s3": "s3_bucket", "gcs": "gcs_bucket", "azure": "azure_container"}


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        path.relative_to(root).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in root.rglob("*")
        if path.is_file()
    }


@pytest.mark.parametrize("store", sorted(BUCKETS))
def test_pack_into_a_store_and_unpack_from_it(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    bucket: Bucket = request.getfixturevalue(BUCKETS[store])
    server = bucket.server
    source = tmp_path / "src"
    make_tree(source, count=300)
    # One file big enough to go up in several parts.
    (source / "big" / "video.mp4").write_bytes(os.urandom(11 << 20))
    url = f"{server.protocol}://{bucket.name}/packed"
    options = dict(server.storage_options)
    report = datamove.sync(
        str(source),
        url,
        dest_options=options,
        format="files",
        shard_size="256KiB",
        large_file_size=LARGE,
        part_size="5MiB",
        workers=1,
    )
    assert report.status == "ok"
    bucket.fs.invalidate_cache()
    names = [p.rsplit("/", 1)[-1] for p in bucket.fs.find(f"{bucket.name}/packed")]
    assert sum(name.endswith(".blob") for name in names) == 2
    assert datamove.verify(url, deep=True, dest_options=options).ok
    assert (
        datamove.files.open(url, "big/video.mp4", dest_options=options)
        == (source / "big" / "video.mp4").read_bytes()
    )

    restored = datamove.unpack(url, str(tmp_path / "out"), dest_options=options)
    assert restored.restored == len(_tree(source))
    assert _tree(tmp_path / "out") == _tree(source)
    again = datamove.sync(
        str(source),
        url,
        dest_options=options,
        format="files",
        shard_size="256KiB",
        large_file_size=LARGE,
        part_size="5MiB",
        workers=1,
    )
    assert again.status == "noop"
