"""Object-store fixtures for the tier command tests.

The servers and fresh buckets are the store tests' own fixtures
(``tests/stores/conftest.py``), imported so these tests run against the
same real emulators. Until they move to ``tests/conftest.py``, a session
that runs both folders starts each emulator twice.
"""

from __future__ import annotations

from tests.stores.conftest import (
    Bucket,
    azure_container,
    azurite_server,
    gcs_bucket,
    gcs_server,
    moto_server,
    s3_bucket,
)

__all__ = [
    "Bucket",
    "azure_container",
    "azurite_server",
    "gcs_bucket",
    "gcs_server",
    "moto_server",
    "s3_bucket",
]
