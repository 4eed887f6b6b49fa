"""``datamove demo``: generate sample data, sync it into a local S3 server, verify.

The demo starts moto's S3 server on a free loopback port, syncs a generated
transactions table into a bucket there, runs the same sync again (nothing to
do), verifies every shard, reads the data back through s3fs, and stops the
server. It needs nothing but the project's own packages.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from datamove.errors import UsageError
from datamove.options import MiB, parse_size
from datamove.orchestrator import sync, verify

BUCKET = "datamove-demo"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def local_s3_server() -> Iterator[dict[str, Any]]:
    """A moto S3 server on loopback for as long as the block runs.

    Yields the s3fs storage options that reach it.

    Raises:
        UsageError: moto is not installed or the server did not start.
    """
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with tempfile.TemporaryFile() as output:
        server = subprocess.Popen(command, stdout=output, stderr=output, env=env)
        try:
            _wait_ready(f"{endpoint}/moto-api/", server)
            yield {
                "key": "demo",
                "secret": "demo",
                "endpoint_url": endpoint,
                "client_kwargs": {"verify": False},
            }
        finally:
            server.terminate()
            server.wait(timeout=10)


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise UsageError(
                "the local S3 server (moto) did not start; install it with "
                "pip install 'moto[server]'"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise UsageError("the local S3 server (moto) did not answer within 30 s")


def run_demo(size: str, workdir: str, echo: Callable[[str], None]) -> None:
    """Generate data in ``workdir``, sync it into a local S3 bucket, verify it.

    Raises:
        DatamoveError: the sync or the verification failed.
    """
    import s3fs

    from datamove.samples import generate_transactions

    source = Path(workdir).resolve() / "source"
    total = parse_size(size, "--size")
    if not source.exists() or not any(source.iterdir()):
        echo(f"generating {total / MiB:.0f} MiB of sample transactions in {source}")
        generate_transactions(source, total, files=4, seed=7)

    with local_s3_server() as options:
        s3 = s3fs.S3FileSystem(**options)
        s3.mkdir(BUCKET)
        dest = f"s3://{BUCKET}/transactions"
        echo(f"local S3 server at {options['endpoint_url']}")
        echo(f"syncing {source} -> {dest}")
        report = sync(str(source), dest, dest_options=options, shard_size="16MiB")
        echo(
            f"  {report.status}: {report.rows_written:,} rows in "
            f"{report.shards_written} shards ({report.bytes_written / MiB:.1f} MiB), "
            f"{report.duration_s:.1f}s on {report.executor}"
        )
        again = sync(str(source), dest, dest_options=options, shard_size="16MiB")
        echo(f"  second run: {again.status} ({again.shards_skipped} shards unchanged)")
        checked = verify(dest, deep=True, dest_options=options)
        echo(f"  verify --deep: {checked.status}, {checked.rows_checked:,} rows")
        shards = sorted(
            p for p in s3.find(f"{BUCKET}/transactions") if p.endswith(".parquet")
        )
        echo(f"the data landed in {dest}/ as {len(shards)} Parquet shards:")
        for path in shards:
            echo(f"  s3://{path}")
        echo("its record is in s3://datamove-demo/transactions/_datamove/manifest.json")
        import pyarrow.dataset as dataset

        rows = dataset.dataset(shards, filesystem=s3, format="parquet").count_rows()
        echo(f"read back through s3fs with pyarrow: {rows:,} rows")
    echo("the local S3 server is stopped (it kept the data in memory only).")
    echo("against a real bucket, read it with:")
    echo(
        "  duckdb -c \"select count(*) from read_parquet('s3://BUCKET/transactions/*.parquet')\""
    )
    echo(
        '  python -c "import pyarrow.dataset as d; '
        "print(d.dataset('s3://BUCKET/transactions').count_rows())\""
    )
