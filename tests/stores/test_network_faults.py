"""Network and store faults during a whole sync, through real HTTP."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.dataset as ds
import pytest

import datamove
from tests.core.helpers import write_csv
from tests.servers import FixedResponse, fault_server, tcp_proxy
from tests.stores.conftest import Bucket

pytestmark = pytest.mark.cloud


def _source(tmp_path: Path) -> Path:
    for index in range(4):
        write_csv(tmp_path / "src" / f"f{index}.csv", 1_000, seed=index,
                  start=index * 10_000)  # fmt: skip
    return tmp_path / "src"


def test_connection_resets_end_in_success(s3_bucket: Bucket, tmp_path: Path) -> None:
    source = _source(tmp_path)
    port = urlsplit(s3_bucket.server.endpoint).port
    assert port is not None
    with tcp_proxy(port, reset_first=6) as (proxy_port, stats):
        options = {
            **s3_bucket.server.storage_options,
            "endpoint_url": f"http://127.0.0.1:{proxy_port}",
        }
        url = f"s3://{s3_bucket.name}/lake"
        report = datamove.sync(str(source), url, dest_options=options, workers=1)
        assert stats.resets == 6
        assert report.status == "ok"
        # s3fs retries a reset connection itself before datamove sees it.
        checked = datamove.verify(url, deep=True, dest_options=options)
    assert checked.ok
    s3_bucket.fs.invalidate_cache()
    shards = [
        p for p in s3_bucket.fs.find(f"{s3_bucket.name}/lake") if p.endswith(".parquet")
    ]
    rows = ds.dataset(shards, filesystem=s3_bucket.fs, format="parquet").count_rows()
    assert rows == 4_000


@pytest.mark.parametrize(
    "status",
    [503, 500, 403, 404],
)
def test_store_errors_fail_clearly_before_data_moves(
    tmp_path: Path, status: int
) -> None:
    source = _source(tmp_path)
    with fault_server(FixedResponse(status)) as endpoint:
        options = {
            "key": "k",
            "secret": "s",
            "endpoint_url": endpoint,
            "config_kwargs": {"retries": {"max_attempts": 1}},
        }
        with pytest.raises(datamove.StorageError) as caught:
            datamove.sync(str(source), "s3://bucket/lake", dest_options=options,
                          workers=1, retries=2)  # fmt: skip
    message = str(caught.value).lower()
    assert "s3://bucket/lake" in message
    assert str(status) in message
    assert isinstance(
        caught.value,
        datamove.TransientStorageError
        if status >= 500
        else datamove.PermanentStorageError,
    )


def test_bucket_deleted_mid_run_fails_clearly(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    import threading
    import time

    for index in range(30):
        write_csv(tmp_path / "src" / f"f{index:02d}.csv", 500, seed=index)
    options = dict(s3_bucket.server.storage_options)
    receipts = f"{s3_bucket.name}/lake/_datamove/receipts"
    admin = s3_bucket.server.filesystem()

    def delete_bucket_after_two_units() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            admin.invalidate_cache()
            try:
                if len(admin.ls(receipts)) >= 2:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        # Writes keep arriving while it is emptied: try until it is gone.
        while time.monotonic() < deadline:
            try:
                admin.rm(s3_bucket.name, recursive=True)
                return
            except OSError:
                admin.invalidate_cache()

    deleter = threading.Thread(target=delete_bucket_after_two_units)
    deleter.start()
    with pytest.raises(datamove.SyncFailedError) as caught:
        # The cap keeps the run going while the bucket is emptied and deleted.
        datamove.sync(str(tmp_path / "src"), f"s3://{s3_bucket.name}/lake",
                      dest_options=options, workers=1, retries=2,
                      bwlimit="64KiB")  # fmt: skip
    deleter.join()
    message = str(caught.value)
    assert s3_bucket.name in message
    assert "Traceback" not in message
