"""``datamove demo``: generate sample data, sync it, verify it, show how to read it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from datamove.options import MiB, parse_size
from datamove.orchestrator import sync, verify


def run_demo(size: str, workdir: str, echo: Callable[[str], None]) -> None:
    """Sync a generated transactions table into ``workdir/lake`` and verify it.

    Raises:
        DatamoveError: the sync or the verification failed.
    """
    from datamove.samples import generate_transactions

    root = Path(workdir).resolve()
    source = root / "source"
    lake = root / "lake"
    total = parse_size(size, "--size")
    if not source.exists() or not any(source.iterdir()):
        echo(f"generating {total / MiB:.0f} MiB of sample transactions in {source}")
        generate_transactions(source, total, files=4, seed=7)

    echo(f"syncing {source} -> {lake}")
    report = sync(str(source), str(lake), shard_size="16MiB")
    echo(
        f"  {report.status}: {report.rows_written:,} rows in "
        f"{report.shards_written} shards ({report.bytes_written / MiB:.1f} MiB), "
        f"{report.duration_s:.1f}s"
    )
    again = sync(str(source), str(lake), shard_size="16MiB")
    echo(f"  second run: {again.status} ({again.shards_skipped} shards unchanged)")
    checked = verify(str(lake), deep=True)
    echo(f"  verify --deep: {checked.status}, {checked.rows_checked:,} rows")
    echo("read it with:")
    echo(f"  duckdb -c \"select count(*) from read_parquet('{lake}/*.parquet')\"")
    reader = f"import pyarrow.dataset as d; print(d.dataset('{lake}').count_rows())"
    echo(f'  python -c "{reader}"')
