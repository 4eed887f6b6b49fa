"""Fixtures for the operations tests: an S3 server and fresh buckets in it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.servers import StoreServer, moto_s3


@dataclass(frozen=True)
class S3Bucket:
    """A fresh, empty bucket at the moto server."""

    server: StoreServer
    fs: Any
    name: str

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}".rstrip("/")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.server.storage_options)


@pytest.fixture(scope="session")
def ops_moto() -> Iterator[StoreServer]:
    with moto_s3() as server:
        yield server


@pytest.fixture
def s3(ops_moto: StoreServer) -> S3Bucket:
    fs = ops_moto.filesystem()
    name = f"dm-ops-{secrets.token_hex(4)}"
    fs.mkdir(name)
    return S3Bucket(ops_moto, fs, name)
