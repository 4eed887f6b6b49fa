"""Session-scoped object-store emulators for the store adapter tests.

Each server starts once per test session on a free loopback port; each test
gets its own bucket or container with a unique name, so tests never see
each other's objects.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.servers import StoreServer, azurite_blob, gcs_emulator, moto_s3


@dataclass(frozen=True)
class Bucket:
    """A fresh, empty bucket (or container) at one server."""

    server: StoreServer
    fs: Any
    name: str

    def path(self, key: str) -> str:
        return f"{self.name}/{key}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[StoreServer]:
    with moto_s3() as server:
        yield server


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[StoreServer]:
    with azurite_blob() as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[StoreServer]:
    with gcs_emulator("gcp-storage-emulator") as server:
        yield server


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[StoreServer]:
    with gcs_emulator("fake-gcs-server") as server:
        yield server


def _fresh_bucket(server: StoreServer) -> Bucket:
    fs = server.filesystem()
    name = f"dm-{secrets.token_hex(4)}"
    fs.mkdir(name)
    if not fs.exists(name):  # adlfs's mkdir can swallow a failure
        raise RuntimeError(f"{server.name}: could not create {name}")
    return Bucket(server, fs, name)


@pytest.fixture
def s3_bucket(moto_server: StoreServer) -> Bucket:
    return _fresh_bucket(moto_server)


@pytest.fixture
def azure_container(azurite_server: StoreServer) -> Bucket:
    return _fresh_bucket(azurite_server)


@pytest.fixture
def gcs_bucket(gcs_server: StoreServer) -> Bucket:
    return _fresh_bucket(gcs_server)


@pytest.fixture
def fake_gcs_bucket(fake_gcs: StoreServer) -> Bucket:
    return _fresh_bucket(fake_gcs)


@pytest.fixture(params=["s3", "gcs", "fake-gcs", "azure"])
def any_bucket(request: pytest.FixtureRequest) -> Bucket:
    """Each store in turn, for behaviour every adapter must share."""
    names = {
        "s3": "s3_bucket",
        "gcs": "gcs_bucket",
        "fake-gcs": "fake_gcs_bucket",
        "azure": "azure_container",
    }
    bucket: Bucket = request.getfixturevalue(names[request.param])
    return bucket
