"""The peers datamove is measured against, one per process.

``python benchmarks/peers.py NAME SOURCE_DIR DEST_DIR`` converts every ``*.csv``
file of SOURCE_DIR into zstd Parquet under DEST_DIR the way a data engineer
would with that tool, with its default type inference and parallelism. The
runner (``run.py``) starts each peer as a separate process so that its wall
time includes imports and start-up, as the ``datamove`` command's does, and so
that the memory of the whole process tree can be sampled.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def duckdb_copy(source: Path, dest: Path) -> None:
    import duckdb

    dest.mkdir(parents=True, exist_ok=True)
    csv_glob = (source / "*.csv").as_posix().replace("'", "''")
    target = (dest / "duckdb.parquet").as_posix().replace("'", "''")
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT * FROM read_csv('{csv_glob}')) "
            f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
        )


def pyarrow_write_dataset(source: Path, dest: Path) -> None:
    import pyarrow.dataset as ds

    dataset = ds.dataset(sorted(source.glob("*.csv")), format="csv")
    options = ds.ParquetFileFormat().make_write_options(compression="zstd")
    ds.write_dataset(
        dataset,
        dest,
        format="parquet",
        file_options=options,
        existing_data_behavior="overwrite_or_ignore",
    )


def _dask_to_parquet(source: Path, dest: Path) -> None:
    import dask.dataframe as dd

    frame = dd.read_csv(str(source / "*.csv"))
    frame.to_parquet(str(dest), compression="zstd", write_index=False)


def dask_threads(source: Path, dest: Path) -> None:
    import dask

    with dask.config.set(scheduler="threads"):
        _dask_to_parquet(source, dest)


def dask_processes(source: Path, dest: Path) -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2, threads_per_worker=1, processes=True
        ) as cluster,
        Client(cluster),  # type: ignore[no-untyped-call]
    ):
        _dask_to_parquet(source, dest)


def polars_sink(source: Path, dest: Path) -> None:
    import polars as pl

    dest.mkdir(parents=True, exist_ok=True)
    frame = pl.scan_csv(str(source / "*.csv"))
    frame.sink_parquet(dest / "polars.parquet", compression="zstd")


PEERS: dict[str, Callable[[Path, Path], None]] = {
    "duckdb": duckdb_copy,
    "pyarrow": pyarrow_write_dataset,
    "dask-threads": dask_threads,
    "dask-processes": dask_processes,
    "polars": polars_sink,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    arguments = parser.parse_args(argv)
    PEERS[arguments.peer](arguments.source, arguments.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
