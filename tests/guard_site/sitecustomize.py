"""The secrets guard's ears in the processes a test session starts.

``tests/secrets_guard.py`` puts this folder first on ``PYTHONPATH`` and names
a folder in ``DATAMOVE_GUARD_CHILD_LOGS``, so every Python process the tests
start (CLI subprocesses, Dask workers of an embedded or a real cluster, the
emulators) imports this module at start-up. In such a process it records
every message asked of a ``datamove`` logger, at any level, enabled or not,
with the text of any exception attached, one line each, in
``<folder>/<pid>.log`` (under a first line naming the test that was
running when the process started); the guard scans those files at the end
of the session. Nothing else changes: no handler, level or output is touched. In a
process started without the variable this module does nothing.
"""

from __future__ import annotations

import os

_FOLDER = os.environ.get("DATAMOVE_GUARD_CHILD_LOGS")


def _install(folder: str) -> None:
    import functools
    import logging
    import sys
    import threading
    from typing import Any

    lock = threading.Lock()
    files: dict[int, Any] = {}

    def write(text: str) -> None:
        pid = os.getpid()  # a forked child writes a file of its own
        with lock:
            handle = files.get(pid)
            if handle is None:
                try:
                    handle = open(  # noqa: SIM115 - kept open for the process
                        os.path.join(folder, f"{pid}.log"), "a", encoding="utf-8"
                    )
                except OSError:  # the session has ended and removed the folder
                    return
                files[pid] = handle
                started = os.environ.get("DATAMOVE_GUARD_TEST", "the session")
                handle.write(f"# started during {started}\n")
            handle.write(text.replace("\n", "\\n") + "\n")
            handle.flush()

    def message(name: str, level: int, args: tuple[Any, ...], kwargs: Any) -> str:
        record = logging.LogRecord(name, level, "", 0, args[0], args[1:], None)
        try:
            text = record.getMessage()
        except Exception:
            text = f"{args[0]} {args[1:]!r}"
        exc_info = kwargs.get("exc_info")
        error = None
        if isinstance(exc_info, BaseException):
            error = exc_info
        elif isinstance(exc_info, tuple):
            error = exc_info[1]
        elif exc_info:
            error = sys.exc_info()[1]
        if error is not None:
            text += f" | {type(error).__name__}: {error}"
        return f"{name}: {text}"

    def wrap(method: str, level: int | None) -> None:
        original = getattr(logging.Logger, method)

        @functools.wraps(original)
        def logged(self: logging.Logger, *args: Any, **kwargs: Any) -> Any:
            name = self.name
            if name == "datamove" or name.startswith("datamove."):
                try:
                    call_level, call_args = level, args
                    if call_level is None and len(args) >= 2:
                        call_level, call_args = int(args[0]), args[1:]
                    if call_level is not None and call_args:
                        write(message(name, call_level, call_args, kwargs))
                except Exception:  # never break the program under test
                    pass
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            return original(self, *args, **kwargs)

        setattr(logging.Logger, method, logged)

    for method, level in (
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("warning", logging.WARNING),
        ("error", logging.ERROR),
        ("critical", logging.CRITICAL),
        ("log", None),
    ):
        wrap(method, level)


if _FOLDER and os.path.isdir(_FOLDER):
    _install(_FOLDER)
