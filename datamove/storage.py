"""Locations: an fsspec URL plus its storage options, and secret redaction.

Everything datamove reads or writes goes through a :class:`Location`. It keeps
the storage options out of its ``repr`` and out of every message; use
:func:`redact_options` and :func:`redact_url` before logging anything that
came from the user.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import fsspec
from fsspec import AbstractFileSystem

from datamove.errors import UsageError
from datamove.stores import StoreAdapter, adapter_for

_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|credential|key$|^key|sas|signature|"
    r"connection_string|account_key|client_secret|private)",
    re.IGNORECASE,
)
# Keys that match the pattern above but hold no secret.
_NOT_SECRET = {"key_prefix", "sse_kms_key_id", "kms_key_name", "key_id_prefix"}
REDACTED = "***"
# Object stores whose URLs name a bucket where a user:password@ could be typed.
_NO_USERINFO = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "file"}


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of storage options with every secret-looking value replaced."""
    redacted: dict[str, Any] = {}
    for name, value in options.items():
        if isinstance(value, Mapping):
            redacted[name] = redact_options(value)
        elif _SECRET_KEY.search(name) and name not in _NOT_SECRET:
            redacted[name] = REDACTED
        else:
            redacted[name] = value
    return redacted


def redact_url(url: str) -> str:
    """The URL without a password or query string (SAS tokens live there)."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # a Windows drive letter
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_options(text: str | None, flag: str) -> dict[str, Any]:
    """Parse a ``--source-options``/``--dest-options`` JSON object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{flag}: not valid JSON ({error.msg} at column {error.colno}); "
            f"pass an object such as '{{\"anon\": true}}'"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag}: expected a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Location:
    """A root URL at a store, with the options needed to reach it.

    ``url`` is what the user typed, redacted; ``root`` is the same place as the
    filesystem names it. Instances pickle (Dask ships them to workers) and
    rebuild their filesystem on first use.
    """

    url: str
    protocol: str
    root: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(
        cls, url: str, storage_options: Mapping[str, Any] | None = None
    ) -> Location:
        """Resolve ``url`` (a path or any fsspec URL) to a location."""
        options = dict(storage_options or {})
        if not url:
            raise UsageError(
                "empty URL: give a path or a URL such as s3://bucket/prefix"
            )
        parts = urlsplit(url)
        if parts.scheme in _NO_USERINFO and "@" in parts.netloc:
            raise UsageError(
                f"{redact_url(url)}: credentials do not belong in a {parts.scheme}:// "
                "URL; pass them in --source-options/--dest-options or the "
                "environment (they are never logged)"
            )
        try:
            fs, root = fsspec.core.url_to_fs(url, **options)
        except (ValueError, ImportError) as error:
            raise UsageError(
                f"{redact_url(url)}: cannot open this URL ({type(error).__name__}); "
                "check the protocol and install its fsspec package"
            ) from None
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return cls(
            url=redact_url(url),
            protocol=protocol,
            root=root.rstrip("/") or "/",
            storage_options=options,
        )

    @cached_property
    def fs(self) -> AbstractFileSystem:
        filesystem: AbstractFileSystem = fsspec.filesystem(
            self.protocol, **dict(self.storage_options)
        )
        return filesystem

    @property
    def adapter(self) -> StoreAdapter:
        return adapter_for(self.protocol)

    @property
    def is_local(self) -> bool:
        return self.protocol in ("file", "local")

    def path(self, relative: str) -> str:
        """The full filesystem path of ``relative`` below the root."""
        relative = relative.lstrip("/")
        if not relative:
            return self.root
        return f"{self.root.rstrip('/')}/{relative}"

    def relative(self, full_path: str) -> str:
        """``full_path`` relative to the root (the inverse of :meth:`path`)."""
        full_path = self.fs._strip_protocol(full_path)
        root = self.root.rstrip("/")
        if full_path == root:
            return ""
        if not full_path.startswith(root + "/"):
            raise ValueError(f"{full_path} is not below {root}")
        return full_path[len(root) + 1 :]

    def display(self, relative: str = "") -> str:
        """A user-facing URL for ``relative`` below the root (no secrets)."""
        base = self.url.rstrip("/")
        return f"{base}/{relative}" if relative else base

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("fs", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
