"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

# gcsfs must not try gRPC against the emulator; this has to precede its import.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.secrets_guard"]


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """A real Dask cluster: a scheduler and two worker processes on loopback."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        host="127.0.0.1",
    )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()
