"""The one exception tree of datamove.

Every error datamove raises derives from :class:`DatamoveError`. Errors from the
layers below (pyarrow, fsspec, botocore, azure, google) are translated where
they are caught, with ``raise ... from``, into one of these classes. Messages
name the input that caused the error and say what to change. They never
contain credentials or key material: build them from redacted values only.
"""

from __future__ import annotations


class DatamoveError(Exception):
    """Root of every error datamove raises.

    ``exit_code`` is what the CLI exits with: 2 for usage and input errors that
    the user must fix, 1 for runs that failed or could not be verified.
    """

    exit_code = 1


class UsageError(DatamoveError):
    """An option, URL or configuration file is invalid."""

    exit_code = 2


class InputError(DatamoveError):
    """A source file cannot be read as the format it claims to be."""

    exit_code = 2


class SchemaConflictError(InputError):
    """Two source files disagree on a column type that cannot be unified."""


class BadRowsError(InputError):
    """Malformed rows were found and ``--on-bad-rows fail`` is in force."""


class StorageError(DatamoveError):
    """A read, write, list or delete at a store failed."""


class TransientStorageError(StorageError):
    """A storage failure worth retrying: timeouts, resets, throttling, 5xx."""


class PermanentStorageError(StorageError):
    """A storage failure that retrying cannot fix: 403, 404, bad request."""


class ChecksumMismatchError(PermanentStorageError):
    """Bytes at the store differ from the bytes datamove wrote."""


class LeaseHeldError(DatamoveError):
    """Another run holds the destination's lease."""


class SyncFailedError(DatamoveError):
    """A sync ran but some units failed; ``failed`` names them."""

    def __init__(self, message: str, failed: list[str] | None = None) -> None:
        super().__init__(message)
        self.failed = failed or []


class VerificationError(DatamoveError):
    """The destination does not hold what its manifest records."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []
