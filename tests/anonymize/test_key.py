"""The anonymization key: sources, length checks, and that it never shows."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import fsspec
import pytest

from datamove.anonymize import (
    ENV_VAR,
    MIN_KEY_BYTES,
    AnonKey,
    check_key_fingerprint,
    load_key,
)
from datamove.errors import UsageError
from tests.anonymize.helpers import KEY_TEXT, OTHER_KEY_TEXT


def test_key_from_the_default_environment_variable() -> None:
    key = load_key(environ={ENV_VAR: KEY_TEXT})

    assert key == AnonKey(KEY_TEXT.encode())
    assert key.source == f"${ENV_VAR}"


def test_key_from_a_named_environment_variable() -> None:
    key = load_key("env:MY_KEY", environ={"MY_KEY": KEY_TEXT})

    assert key == AnonKey(KEY_TEXT.encode())


def test_key_file_with_trailing_newline_is_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "anon.key"
    path.write_text(KEY_TEXT + "\n")

    key = load_key(str(path))

    assert key == load_key(environ={ENV_VAR: KEY_TEXT})
    assert key.fingerprint == AnonKey(KEY_TEXT.encode()).fingerprint


def test_key_from_a_secret_url() -> None:
    with fsspec.open("memory://secrets/anon.key", "wb") as handle:
        handle.write(KEY_TEXT.encode())

    key = load_key("memory://secrets/anon.key")

    assert key == AnonKey(KEY_TEXT.encode())
    assert key.source == "memory://secrets/anon.key"


def test_missing_sources_say_how_to_provide_a_key(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=rf"\${ENV_VAR} is not set; export"):
        load_key(environ={})
    with pytest.raises(UsageError, match="cannot read the anonymization key"):
        load_key(str(tmp_path / "nope.key"))


def test_short_and_repetitive_keys_are_refused_without_echoing_them() -> None:
    short = "tooShort-123"
    with pytest.raises(UsageError) as caught:
        load_key(environ={ENV_VAR: short})
    assert f"is {len(short)} bytes long; use at least {MIN_KEY_BYTES}" in str(
        caught.value
    )
    assert short not in str(caught.value)
    assert "secrets.token_urlsafe" in str(caught.value)

    repetitive = "ab" * 40
    with pytest.raises(UsageError, match="repeats too few characters") as caught:
        load_key(environ={ENV_VAR: repetitive})
    assert repetitive not in str(caught.value)


def test_key_material_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = load_key(environ={ENV_VAR: KEY_TEXT})

    shown = [repr(key), str(key), f"{key}", f"{key!r}", caplog.text]
    for text in shown:
        assert KEY_TEXT not in text
        assert KEY_TEXT[:12] not in text
    assert key.fingerprint in repr(key)
    with pytest.raises(TypeError):
        vars(key)


def test_fingerprint_identifies_the_key_without_revealing_it() -> None:
    first = AnonKey(KEY_TEXT.encode())
    same = AnonKey(KEY_TEXT.encode())
    other = AnonKey(OTHER_KEY_TEXT.encode())

    assert first.fingerprint == same.fingerprint
    assert first.fingerprint != other.fingerprint
    assert len(first.fingerprint) == 16
    int(first.fingerprint, 16)
    assert first != other
    assert hash(first) == hash(same)


def test_derived_subkeys_differ_by_purpose_and_key() -> None:
    key = AnonKey(KEY_TEXT.encode())
    other = AnonKey(OTHER_KEY_TEXT.encode())

    assert key.derive("hash") == AnonKey(KEY_TEXT.encode()).derive("hash")
    assert key.derive("hash") != key.derive("noise")
    assert key.derive("hash") != other.derive("hash")
    assert KEY_TEXT.encode() not in key.derive("hash")


def test_key_pickles_for_shipping_to_on_prem_workers() -> None:
    key = AnonKey(KEY_TEXT.encode())

    assert pickle.loads(pickle.dumps(key)) == key


def test_a_run_with_another_key_is_refused() -> None:
    key = AnonKey(KEY_TEXT.encode())
    other = AnonKey(OTHER_KEY_TEXT.encode())

    check_key_fingerprint(None, key, "s3://lake/claims")
    check_key_fingerprint(key.fingerprint, key, "s3://lake/claims")
    with pytest.raises(UsageError) as caught:
        check_key_fingerprint(other.fingerprint, key, "s3://lake/claims?sig=abc")

    message = str(caught.value)
    assert other.fingerprint in message
    assert key.fingerprint in message
    assert "sig=abc" not in message
    assert "use the original key or a new destination" in message
