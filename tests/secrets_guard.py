"""A pytest plugin that fails the session when a test secret shows up anywhere.

datamove promises that no credential or anonymization key reaches a log
line, a report, a receipt, a manifest or an error message. This plugin
checks that promise over the whole test session. It knows the suite's
secrets (the emulators' credentials, the anonymization test keys, and every
module-level string constant of a collected test module whose name says it
is a secret, such as ``SECRET``, ``PASSWORD`` or ``KEY_TEXT``; more can be
given, one per line, in ``DATAMOVE_GUARD_SECRETS``) and looks for each of
them, raw and in its URL-, JSON-, hex- and base64-encoded forms, in:

- every message logged to a ``datamove`` logger, at any level, whether or
  not the level is enabled, with the text of any exception attached;
- every :class:`~datamove.errors.DatamoveError` raised, caught or not;
- every report, receipt, manifest, status and lease record datamove builds;
- the captured output (stdout, stderr, log) of every test, and the output
  of every ``subprocess.run`` a test captures (the CLI's messages);
- every message asked of a ``datamove`` logger in the Python processes the
  session starts (CLI subprocesses, Dask workers, emulators): the guard
  puts ``tests/guard_site`` first on ``PYTHONPATH``, whose
  ``sitecustomize`` records those calls in a folder named by
  ``DATAMOVE_GUARD_CHILD_LOGS``, read at the end;
- at the end, the state and report files (``_datamove/``, run reports,
  quarantine files) under the session's temporary directory, and, just
  before each emulator of ``tests/servers.py`` stops, the state objects in
  all of its buckets and the emulator's request log.

A finding names the secret and where it was seen, never the secret itself.
Any finding turns the session's exit status into a failure.

Registered from ``tests/conftest.py`` (``pytest_plugins``); run it on another
session with ``-p tests.secrets_guard``.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXTRA_ENV = "DATAMOVE_GUARD_SECRETS"
CHILD_LOGS_ENV = "DATAMOVE_GUARD_CHILD_LOGS"
TEST_ENV = "DATAMOVE_GUARD_TEST"
GUARD_SITE = Path(__file__).resolve().parent / "guard_site"
# Module-level constants with these words in their name hold secrets.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY_TEXT")
MIN_LENGTH = 8
# How long the scan of one emulator's objects may take at its shutdown.
HARVEST_BUDGET = 60.0
_MAX_FILE = 4 << 20


@dataclass(frozen=True)
class Finding:
    """One secret seen in one place. It holds the secret's name, not its value."""

    secret: str
    where: str

    def __str__(self) -> str:
        return f"{self.secret} in {self.where}"


def _variants(value: str) -> set[str]:
    """The forms a secret can take once written somewhere."""
    raw = value.encode()
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        json.dumps(value)[1:-1],
        raw.hex(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
    }
    return {form for form in forms if len(form) >= MIN_LENGTH}


class SecretScanner:
    """Finds known secrets in texts and remembers where each was seen."""

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        self._needles: dict[str, str] = {}  # variant -> secret name
        self.findings: list[Finding] = []
        self.scanned: collections.Counter[str] = collections.Counter()
        self._seen: set[Finding] = set()
        for name, value in (secrets or {}).items():
            self.add(name, value)

    def add(self, name: str, value: str | bytes) -> None:
        """Guard ``value`` under ``name``; values shorter than 8 are ignored."""
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if len(text) < MIN_LENGTH:
            return
        for form in _variants(text):
            self._needles.setdefault(form, name)

    @property
    def names(self) -> set[str]:
        return set(self._needles.values())

    def scan(self, text: str, where: str, kind: str = "text") -> list[Finding]:
        """Record and return the secrets found in ``text`` (a ``kind`` of text)."""
        self.scanned[kind] += 1
        found = []
        for form, name in self._needles.items():
            if form in text:
                finding = Finding(name, where)
                if finding not in self._seen:
                    self._seen.add(finding)
                    self.findings.append(finding)
                found.append(finding)
        return found


def _is_datamove_logger(name: str) -> bool:
    return name == "datamove" or name.startswith("datamove.")


def _message(name: str, level: int, msg: object, args: Any) -> str:
    record = logging.LogRecord(name, level, "", 0, msg, args, None)
    try:
        return record.getMessage()
    except Exception:  # a bad format string is a bug, but not this plugin's
        return f"{msg} {args!r}"


def _json_text(value: Any) -> str:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value, default=str, sort_keys=True)


def is_datamove_output(path: Path) -> bool:
    """Whether a local file is one that datamove writes and the guard reads."""
    if "_datamove" in path.parts and path.suffix == ".json":
        return True
    if path.name.endswith(".rejected.tsv"):
        return True
    if path.suffix != ".json":
        return False
    try:
        data = json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError):
        return False
    # A report written with --report-file or --json.
    return isinstance(data, dict) and ("run_id" in data or "problems" in data)


class SecretsGuard:
    """The plugin: installs the collectors, scans, and reports at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.scanner = SecretScanner()
        self.current = "session"
        self.notes: list[str] = []
        self._restore: list[Callable[[], None]] = []
        self._known_modules: set[str] = set()

    # Which secrets.

    def add_module_secrets(self, module: ModuleType) -> None:
        if module.__name__ in self._known_modules:
            return
        self._known_modules.add(module.__name__)
        for name, value in vars(module).items():
            if SECRET_NAME.search(name.upper()) and isinstance(value, str | bytes):
                self.scanner.add(f"{module.__name__}.{name}", value)

    def add_known_secrets(self) -> None:
        from tests import servers

        self.scanner.add("tests.servers.MOTO_KEY_ID", servers.MOTO_KEY_ID)
        self.scanner.add("tests.servers.MOTO_SECRET", servers.MOTO_SECRET)
        self.scanner.add("tests.servers._AZURITE_KEY", servers._AZURITE_KEY)
        try:
            from tests.anonymize import helpers
        except ImportError as error:  # faker missing: those tests skip too
            self.notes.append(f"anonymization keys not loaded ({error})")
        else:
            self.add_module_secrets(helpers)
        extra = os.environ.get(EXTRA_ENV, "")
        for index, value in enumerate(line for line in extra.splitlines() if line):
            self.scanner.add(f"{EXTRA_ENV}[{index}]", value)

    # Collectors.

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        had = name in vars(owner)
        old = vars(owner).get(name)

        def restore() -> None:
            if had:
                setattr(owner, name, old)
            else:
                delattr(owner, name)

        setattr(owner, name, value)
        self._restore.append(restore)

    def install(self) -> None:
        self._watch_logging()
        self._watch_errors()
        self._watch_records()
        self._watch_subprocesses()
        self._watch_children()
        from tests import servers

        servers.before_server_stops(self.harvest_server)

    def uninstall(self) -> None:
        while self._restore:
            self._restore.pop()()
        from tests import servers

        if self.harvest_server in servers._BEFORE_STOP:
            servers._BEFORE_STOP.remove(self.harvest_server)

    def _watch_logging(self) -> None:
        """See every datamove log call, at any level, without changing output."""
        guard = self

        def wrap(method: str, level: int | None) -> None:
            original = getattr(logging.Logger, method)

            @functools.wraps(original)
            def logged(self: logging.Logger, *args: Any, **kwargs: Any) -> Any:
                if _is_datamove_logger(self.name):
                    guard.scan_log_call(self.name, level, args, kwargs)
                # This wrapper is one frame more between the caller and logging.
                kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
                return original(self, *args, **kwargs)

            self._patch(logging.Logger, method, logged)

        for method, level in (
            ("debug", logging.DEBUG),
            ("info", logging.INFO),
            ("warning", logging.WARNING),
            ("error", logging.ERROR),
            ("critical", logging.CRITICAL),
            ("log", None),
        ):
            wrap(method, level)

    def scan_log_call(
        self, name: str, level: int | None, args: tuple[Any, ...], kwargs: Any
    ) -> None:
        if level is None:  # Logger.log(level, msg, *args)
            if len(args) < 2:
                return
            level, args = int(args[0]), args[1:]
        if not args:
            return
        text = _message(name, level, args[0], args[1:])
        exc_info = kwargs.get("exc_info")
        if exc_info:
            error = exc_info if isinstance(exc_info, BaseException) else None
            if isinstance(exc_info, tuple):
                error = exc_info[1]
            elif exc_info is True:
                error = sys.exc_info()[1]
            if error is not None:
                text += f"\n{type(error).__name__}: {error}"
        where = f"log record of {name} ({self.current})"
        self.scanner.scan(text, where, "log call")

    def _watch_subprocesses(self) -> None:
        """Scan what each ``subprocess.run`` captured (stdout and stderr)."""
        guard = self
        original = subprocess.run

        @functools.wraps(original)
        def run(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            command = result.args
            program = command[0] if isinstance(command, list | tuple) else command
            where = f"output of subprocess {Path(str(program)).name} ({guard.current})"
            for stream in (result.stdout, result.stderr):
                if isinstance(stream, bytes):
                    stream = stream.decode(errors="replace")
                if isinstance(stream, str) and stream:
                    guard.scanner.scan(stream, where, "subprocess output")
            return result

        self._patch(subprocess, "run", run)

    def _watch_children(self) -> None:
        """Have every Python child record its datamove log calls (guard_site)."""
        self.child_logs = Path(tempfile.mkdtemp(prefix="datamove-guard-"))
        saved = {name: os.environ.get(name) for name in (CHILD_LOGS_ENV, "PYTHONPATH")}
        os.environ[CHILD_LOGS_ENV] = str(self.child_logs)
        paths = [str(GUARD_SITE), *filter(None, [saved["PYTHONPATH"]])]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)

        def restore() -> None:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            shutil.rmtree(self.child_logs, ignore_errors=True)

        self._restore.append(restore)

    def scan_child_logs(self) -> None:
        for path in sorted(self.child_logs.glob("*.log")):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if text:
                header = text.partition("\n")[0].removeprefix("# ")
                where = f"log call in child process {path.stem}, {header}"
                self.scanner.scan(text, where, "child process log")

    def _watch_errors(self) -> None:
        from datamove.errors import DatamoveError

        guard = self
        original = DatamoveError.__init__

        def init(error: BaseException, *args: Any, **kwargs: Any) -> None:
            original(error, *args, **kwargs)
            where = f"{type(error).__name__} message ({guard.current})"
            guard.scanner.scan(str(error), where, "error")

        self._patch(DatamoveError, "__init__", init)

    def _watch_records(self) -> None:
        """Scan every report, receipt, manifest, status and lease when built."""
        from datamove.lease import LeaseRecord
        from datamove.report import SyncReport, VerifyReport
        from datamove.state import Manifest, UnitReceipt
        from datamove.status import Status

        for cls in (
            SyncReport,
            VerifyReport,
            UnitReceipt,
            Manifest,
            Status,
            LeaseRecord,
        ):
            self._watch_record(cls)

    def _watch_record(self, cls: type) -> None:
        guard = self
        original = cls.__init__

        @functools.wraps(original)
        def init(record: Any, *args: Any, **kwargs: Any) -> None:
            original(record, *args, **kwargs)
            try:
                text = _json_text(record)
            except Exception:
                text = repr(record)
            where = f"{cls.__name__} ({guard.current})"
            guard.scanner.scan(text, where, "record")

        self._patch(cls, "__init__", init)

    # Places read at the end.

    def harvest_server(self, server: Any) -> None:
        """Scan a stopping emulator's request log and its datamove state objects."""
        try:
            log_text = server.log_path.read_text(errors="replace")
        except OSError:
            log_text = ""
        self.scanner.scan(log_text, f"{server.name} server log", "server log")
        deadline = time.monotonic() + HARVEST_BUDGET
        try:
            fs = server.filesystem()
            for bucket in fs.ls(""):
                for path in fs.find(str(bucket).rstrip("/")):
                    if time.monotonic() > deadline:
                        self.notes.append(f"{server.name}: scan cut short by time")
                        return
                    if "/_datamove/" in f"/{path}" and path.endswith(".json"):
                        text = fs.cat(path).decode(errors="replace")
                        where = f"{server.name} object {path}"
                        self.scanner.scan(text, where, "stored object")
        except Exception as error:
            self.notes.append(f"{server.name}: scan stopped ({type(error).__name__})")

    def scan_files(self, root: Path) -> None:
        for path in sorted(root.rglob("*")):
            try:
                if not path.is_file() or path.stat().st_size > _MAX_FILE:
                    continue
                if not is_datamove_output(path):
                    continue
                text = path.read_text(errors="replace")
            except OSError:
                continue
            self.scanner.scan(text, f"file {path.relative_to(root)}", "file")

    # Hooks.

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            module = getattr(item, "module", None)
            if isinstance(module, ModuleType):
                self.add_module_secrets(module)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterable[None]:
        self.current = item.nodeid
        os.environ[TEST_ENV] = item.nodeid  # for the processes it starts
        yield
        self.current = "session"
        os.environ.pop(TEST_ENV, None)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Captured output only: a failure's text shows the test's own
        # variables, which may well hold the credentials it passes on.
        for title, content in report.sections:
            self.scanner.scan(content, f"{title} of {report.nodeid}", "output")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        factory = getattr(self.config, "_tmp_path_factory", None)
        basetemp = getattr(factory, "_basetemp", None)
        if basetemp is not None and Path(basetemp).exists():
            self.scan_files(Path(basetemp))
        self.scan_child_logs()
        if self.scanner.findings:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        findings = self.scanner.findings
        counts = ", ".join(
            f"{count} {kind}s" for kind, count in sorted(self.scanner.scanned.items())
        )
        secrets = len(self.scanner.names)
        if not findings:
            terminalreporter.write_line(
                f"secrets guard: no leak of {secrets} secrets in {counts or 'nothing'}"
            )
        else:
            title = f"secrets guard: {len(findings)} leak(s)"
            terminalreporter.section(title, red=True)
            for finding in findings:
                terminalreporter.line(f"secret {finding}")
            terminalreporter.line(f"scanned: {counts}")
        for note in self.notes:
            terminalreporter.write_line(f"secrets guard note: {note}")


_GUARD_NAME = "datamove-secrets-guard"


def pytest_configure(config: pytest.Config) -> None:
    guard = SecretsGuard(config)
    guard.add_known_secrets()
    guard.install()
    config.pluginmanager.register(guard, _GUARD_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.pluginmanager.get_plugin(_GUARD_NAME)
    if isinstance(guard, SecretsGuard):
        guard.uninstall()
        config.pluginmanager.unregister(guard)
