"""The anonymization key: where it comes from and what may be said about it.

The key is a secret text of at least :data:`MIN_KEY_BYTES` bytes (UTF-8),
read from the ``DATAMOVE_ANON_KEY`` environment variable, a key file, or any
fsspec URL (a "secret URL", e.g. a file on a mounted secrets volume).
Surrounding whitespace is stripped, so a trailing newline in a key file does
not change the key. Generate one with::

    python -c "import secrets; print(secrets.token_urlsafe(32))"

An :class:`AnonKey` never shows its material: not in ``repr``, ``str``,
messages or logs. What may be recorded is its :attr:`AnonKey.fingerprint`, an
HMAC of a fixed label under the key, so a later run with another key can be
detected without revealing either key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from typing import Any

import fsspec

from datamove.errors import UsageError
from datamove.storage import redact_url

logger = logging.getLogger(__name__)

ENV_VAR = "DATAMOVE_ANON_KEY"
MIN_KEY_BYTES = 32
MIN_DISTINCT_BYTES = 10
_FINGERPRINT_LABEL = b"datamove/anonymize/key-fingerprint/v1"
_DERIVE_LABEL = b"datamove/anonymize/derive/v1\x00"
_GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class AnonKey:
    """Key material for keyed pseudonyms and keyed noise.

    Args:
        material: the key bytes (at least :data:`MIN_KEY_BYTES`).
        source: where the key came from, for messages (no secret in it).

    Raises:
        UsageError: the key is too short or too repetitive to be a real key.
    """

    __slots__ = ("_fingerprint", "_material", "source")

    def __init__(self, material: bytes, source: str = "the key") -> None:
        material = material.strip()
        if len(material) < MIN_KEY_BYTES:
            raise UsageError(
                f"anonymization key from {source} is {len(material)} bytes long; "
                f"use at least {MIN_KEY_BYTES}: generate one with {_GENERATE}"
            )
        if len(set(material)) < MIN_DISTINCT_BYTES:
            raise UsageError(
                f"anonymization key from {source} repeats too few characters to be "
                f"a random key; generate one with {_GENERATE}"
            )
        self._material = material
        self.source = source
        digest = hmac.new(material, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()
        self._fingerprint = digest[:16]

    @property
    def fingerprint(self) -> str:
        """16 hex characters identifying the key; safe to record anywhere."""
        return self._fingerprint

    def derive(self, purpose: str) -> bytes:
        """A 32-byte subkey for ``purpose``; as secret as the key itself."""
        label = _DERIVE_LABEL + purpose.encode("utf-8")
        return hmac.new(self._material, label, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"AnonKey(source={self.source!r}, fingerprint={self._fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AnonKey):
            return NotImplemented
        return hmac.compare_digest(self._material, other._material)

    def __hash__(self) -> int:
        return hash(self._fingerprint)


def load_key(
    source: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> AnonKey:
    """Load the anonymization key.

    Args:
        source: None to read ``DATAMOVE_ANON_KEY``; ``env:NAME`` to read the
            environment variable NAME; otherwise a key file path or fsspec URL.
        environ: the environment to read (defaults to ``os.environ``).
        storage_options: fsspec options for a key URL.

    Returns:
        The key. Its material appears in no message, log line or repr.

    Raises:
        UsageError: the key is missing, unreadable, too short or repetitive.
    """
    env = os.environ if environ is None else environ
    if source is None or source.startswith("env:"):
        name = ENV_VAR if source is None else source.removeprefix("env:")
        text = env.get(name)
        if not text:
            raise UsageError(
                f"no anonymization key: ${name} is not set; export {name}=<key> "
                "or give a key file"
            )
        key = AnonKey(text.encode("utf-8"), source=f"${name}")
    else:
        key = AnonKey(
            _read_key_file(source, storage_options), source=redact_url(source)
        )
    logger.info(
        "%s: anonymization key loaded, fingerprint %s", key.source, key.fingerprint
    )
    return key


def _read_key_file(source: str, storage_options: Mapping[str, Any] | None) -> bytes:
    shown = redact_url(source)
    try:
        with fsspec.open(source, "rb", **dict(storage_options or {})) as handle:
            material: bytes = handle.read()
    except (OSError, ValueError, ImportError) as error:
        raise UsageError(
            f"{shown}: cannot read the anonymization key ({type(error).__name__}); "
            "check the path and its permissions"
        ) from None
    return material


def check_key_fingerprint(recorded: str | None, key: AnonKey, destination: str) -> None:
    """Refuse to add to ``destination`` with a key other than the one it used.

    Args:
        recorded: the fingerprint in the destination's receipts (None if new).
        key: this run's key.
        destination: the destination URL, for the message (redacted first).

    Raises:
        UsageError: the fingerprints differ, so tokens would not join.
    """
    if recorded is None or hmac.compare_digest(recorded, key.fingerprint):
        return
    raise UsageError(
        f"{redact_url(destination)}: was anonymized with key fingerprint {recorded}, "
        f"this run's key has fingerprint {key.fingerprint}; pseudonyms would not "
        "join: use the original key or a new destination"
    )
