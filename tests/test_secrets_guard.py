"""The secrets guard itself: it must catch a planted secret, and only that."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests import secrets_guard
from tests.secrets_guard import EXTRA_ENV, SecretScanner

pytest_plugins = ["pytester"]

REPO_ROOT = Path(__file__).resolve().parent.parent
PLANTED = "planted-Secret-4b1d9e0c7a"


def test_scanner_finds_a_secret_in_its_written_forms() -> None:
    scanner = SecretScanner({"PLANTED": PLANTED})
    assert scanner.scan(f"s3://bucket/x?sig={PLANTED}", "raw") != []
    assert scanner.scan(urllib.parse.quote(PLANTED + "/", safe=""), "quoted") != []
    assert scanner.scan(json.dumps({"secret": PLANTED}), "json") != []
    assert scanner.scan(PLANTED.encode().hex(), "hex") != []
    assert scanner.scan("s3://bucket/x: access denied", "clean") == []
    assert [str(f) for f in scanner.findings] == [
        "PLANTED in raw",
        "PLANTED in quoted",
        "PLANTED in json",
        "PLANTED in hex",
    ]
    # A finding never repeats the value it found.
    assert all(PLANTED not in repr(f) for f in scanner.findings)


def test_scanner_ignores_values_too_short_to_be_told_apart() -> None:
    scanner = SecretScanner({"SHORT": "s", "EMPTY": ""})
    assert scanner.names == set()
    assert scanner.scan("s is everywhere", "text") == []


def test_the_session_guard_knows_the_suite_secrets(
    request: pytest.FixtureRequest,
) -> None:
    guard = request.config.pluginmanager.get_plugin("datamove-secrets-guard")
    assert isinstance(guard, secrets_guard.SecretsGuard)
    assert {
        "tests.servers.MOTO_KEY_ID",
        "tests.servers.MOTO_SECRET",
        "tests.servers._AZURITE_KEY",
        "tests.anonymize.helpers.KEY_TEXT",
        "tests.anonymize.helpers.OTHER_KEY_TEXT",
    } <= guard.scanner.names


def test_datamove_files_are_recognised(tmp_path: Path) -> None:
    state = tmp_path / "dst" / "_datamove" / "receipts"
    state.mkdir(parents=True)
    (state / "u.json").write_text("{}")
    (tmp_path / "report.json").write_text(json.dumps({"run_id": "r", "status": "ok"}))
    (tmp_path / "key.json").write_text(json.dumps({"key": "material"}))
    (tmp_path / "data.csv").write_text("a,b\n")
    found = {p.name for p in tmp_path.rglob("*") if secrets_guard.is_datamove_output(p)}
    assert found == {"u.json", "report.json"}


# A whole session with the guard: it fails when a secret leaks, passes when not.

LEAKY_TESTS = f'''
import logging
import pytest
import datamove
from datamove.report import SyncReport

SECRET = "{PLANTED}"
API_TOKEN = "inner-module-token-9f8e7d"


def test_logs_it_at_a_level_that_is_off() -> None:
    logging.getLogger("datamove.planted").debug("options: %s", {{"secret": SECRET}})


def test_logs_a_module_constant_named_like_a_secret() -> None:
    logging.getLogger("datamove.planted").warning("token=%s", API_TOKEN)


def test_raises_it_and_catches_it() -> None:
    with pytest.raises(datamove.StorageError):
        raise datamove.StorageError(f"s3://bucket: denied for {{SECRET}}")


def test_puts_it_in_a_report() -> None:
    SyncReport(status="ok", source="src", dest="dst", run_id="r",
               extra={{"options": SECRET}})


def test_a_child_process_logs_it_at_a_level_that_is_off() -> None:
    import subprocess, sys
    code = ("import logging; "
            f"logging.getLogger('datamove.child').debug('k=%s', {{SECRET!r}})")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_subprocess_prints_it() -> None:
    import subprocess, sys
    code = f"import sys; sys.stderr.write({{SECRET!r}})"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
'''

CLEAN_TESTS = """
import logging
import datamove


def test_logs_and_raises_nothing_secret() -> None:
    logging.getLogger("datamove.clean").warning("s3://bucket/x: skipped")
    try:
        raise datamove.StorageError("s3://bucket: access denied")
    except datamove.StorageError:
        pass
"""


def _run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=source)
    return pytester.runpytest_subprocess(
        "-p", "tests.secrets_guard", "-p", "no:cacheprovider", "-q"
    )


@pytest.mark.slow
def test_a_session_that_leaks_a_secret_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.setenv(EXTRA_ENV, PLANTED)
    result = _run(pytester, LEAKY_TESTS)
    output = result.stdout.str()
    # Every test passed, yet the session fails because of the leaks.
    assert "6 passed" in output
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "secrets guard: " in output
    assert "log record of datamove.planted" in output
    assert "StorageError message" in output
    assert "SyncReport" in output
    assert "log call in child process" in output
    assert "started during test_inner.py::test_a_child_process_logs_it" in output
    assert "output of subprocess python" in output
    # A test module's constant named like a secret is guarded without being
    # listed anywhere.
    assert "test_inner.API_TOKEN in log record" in output
    assert PLANTED not in output and PLANTED not in result.stderr.str()


@pytest.mark.slow
def test_a_clean_session_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.setenv(EXTRA_ENV, PLANTED)
    result = _run(pytester, CLEAN_TESTS)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    summary = result.stdout.str()
    assert "secrets guard: no leak" in summary
    assert "1 errors" in summary and "1 log calls" in summary


def test_guard_keeps_log_output_and_caller_unchanged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("datamove.guard_selftest")
    with caplog.at_level(logging.INFO, logger="datamove.guard_selftest"):
        logger.debug("not shown")
        logger.info("shown %d", 1)
    assert [r.getMessage() for r in caplog.records] == ["shown 1"]
    # The record points at this file, not at the guard's wrapper.
    assert caplog.records[0].pathname == __file__


def test_child_processes_record_datamove_log_calls(
    request: pytest.FixtureRequest,
) -> None:
    guard = request.config.pluginmanager.get_plugin("datamove-secrets-guard")
    assert isinstance(guard, secrets_guard.SecretsGuard)
    code = (
        "import logging\n"
        f"logging.getLogger('datamove.selftest').debug('marker %s', {PLANTED!r})\n"
        "logging.getLogger('other').warning('not datamove %s', 'x')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stderr == "not datamove x\n"  # output unchanged
    logs = [path.read_text() for path in guard.child_logs.glob("*.log")]
    recorded = [text for text in logs if PLANTED in text]
    assert len(recorded) == 1
    assert f"datamove.selftest: marker {PLANTED}" in recorded[0]
    assert "not datamove" not in recorded[0]
    assert recorded[0].startswith(f"# started during {request.node.nodeid}")
