"""The one retry policy, and the translation of store errors into datamove's.

Every call to a store that may fail transiently goes through
:func:`call_with_retry` (or the :func:`retrying` decorator). A failure is first
translated into the datamove error tree by :func:`translate`, then retried
only when it is a :class:`~datamove.errors.TransientStorageError` (timeouts,
connection resets, throttling, 5xx) or a
:class:`~datamove.errors.ChecksumMismatchError` that the store reported while
the bytes were in flight; anything else fails at once. Waits grow
exponentially with full jitter and are capped by :class:`RetryPolicy`. Each
retry is recorded in a :class:`RetryLog` that the caller puts in its report.
"""

from __future__ import annotations

import errno
import functools
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import tenacity

from datamove.errors import (
    ChecksumMismatchError,
    DatamoveError,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Error codes the stores send in a body, by meaning.
_THROTTLE_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "ServerBusy",
    "OperationTimedOut",
    "ServerTimeout",
}
_DIGEST_CODES = {
    "BadDigest",
    "InvalidDigest",
    "XAmzContentChecksumMismatch",
    "XAmzContentSHA256Mismatch",
    "Md5Mismatch",
    "Crc64Mismatch",
    "InvalidMd5",
}
_MISSING_CODES = {
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchUpload",
    "ContainerNotFound",
    "BlobNotFound",
    "ResourceNotFound",
    "404",
    "NotFound",
}
# Client-side failures to find or use credentials, raised before any request
# (botocore, google-auth, azure-identity): permanent, with their own hint.
_CREDENTIAL_ERRORS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "NoAuthTokenError",
    "DefaultCredentialsError",
    "RefreshError",
    "CredentialUnavailableError",
}
_DENIED_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "ExpiredToken",
    "InvalidToken",
    "403",
}
_TRANSIENT_STATUS = {408, 425, 429, 499, 500, 502, 503, 504}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient failures are retried.

    ``attempts`` counts the first try; waits start near ``initial`` seconds,
    double per attempt, are drawn uniformly below that bound (full jitter)
    and never exceed ``maximum`` seconds.
    """

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be at least 1, got {self.attempts}")
        if self.initial < 0 or self.maximum < self.initial:
            raise ValueError(
                f"retry waits must satisfy 0 <= initial <= maximum, got "
                f"initial={self.initial} maximum={self.maximum}"
            )


@dataclass(frozen=True)
class RetryEvent:
    """One retried failure: what was tried, on which object, why, how long."""

    operation: str
    subject: str
    attempt: int
    cause: str
    wait: float


class RetryLog:
    """A thread-safe record of retries, for the run's report.

    It pickles (Dask ships it to workers); a copy records on its own, so
    workers return theirs and the caller merges them with :meth:`extend`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[RetryEvent] = []

    def record(self, event: RetryEvent) -> None:
        with self._lock:
            self._events.append(event)

    def extend(self, events: list[RetryEvent]) -> None:
        with self._lock:
            self._events.extend(events)

    @property
    def events(self) -> list[RetryEvent]:
        """A snapshot of every retry recorded so far, oldest first."""
        with self._lock:
            return list(self._events)

    def causes(self) -> dict[str, int]:
        """How many retries each cause accounts for."""
        with self._lock:
            return dict(Counter(event.cause for event in self._events))

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def __iter__(self) -> Iterator[RetryEvent]:
        return iter(self.events)

    def __getstate__(self) -> dict[str, Any]:
        return {"events": self.events}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self._events = list(state["events"])


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status_and_code(exc: BaseException) -> tuple[int | None, str | None]:
    """The HTTP status and store error code carried by one exception."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:  # botocore ClientError
        error = response.get("Error", {})
        meta = response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        code = error.get("Code")
        return (int(status) if status else None), (str(code) if code else None)
    status = getattr(exc, "status_code", None)  # azure.core HttpResponseError
    if isinstance(status, int):
        code = getattr(exc, "error_code", None)
        return status, (str(getattr(code, "value", code)) if code else None)
    status = getattr(exc, "code", None)  # gcsfs HttpError
    if isinstance(status, int) and type(exc).__name__ == "HttpError":
        return status, None
    status = getattr(exc, "status", None)  # aiohttp ClientResponseError
    if isinstance(status, int) and type(exc).__name__.startswith("Client"):
        return status, None
    return None, None


def _is_network_failure(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    name = type(exc).__name__
    module = type(exc).__module__
    if module.startswith("aiohttp") and name != "ClientResponseError":
        return True  # disconnects, payload errors, connector errors
    if module.startswith(("botocore", "urllib3", "requests")):
        return any(
            word in name
            for word in ("Timeout", "Connection", "EndpointConnection", "ProxyError")
        ) or name in ("ResponseStreamingError", "IncompleteReadError")
    if module.startswith("azure.core"):
        return name in (
            "ServiceRequestError",
            "ServiceResponseError",
            "IncompleteReadError",
            "ServiceRequestTimeoutError",
            "ServiceResponseTimeoutError",
        )
    return False


def _credential_failure(exc: BaseException) -> bool:
    return any(type(link).__name__ in _CREDENTIAL_ERRORS for link in _chain(exc))


def _classify_one(exc: BaseException) -> type[StorageError] | None:
    if isinstance(exc, StorageError):
        return type(exc)
    name = type(exc).__name__
    if name in _CREDENTIAL_ERRORS:
        return PermanentStorageError
    if name == "FlexibleChecksumError" or (
        name == "ChecksumError" and "gcsfs" in type(exc).__module__
    ):
        return ChecksumMismatchError  # the client found a read's bytes damaged
    status, code = _status_and_code(exc)
    if code in _DIGEST_CODES:
        return ChecksumMismatchError
    if code in _THROTTLE_CODES:
        return TransientStorageError
    if code in _MISSING_CODES or code in _DENIED_CODES:
        return PermanentStorageError
    if status is not None:
        if status in _TRANSIENT_STATUS or status >= 500:
            return TransientStorageError
        if status == 400 and _mentions_digest(exc):
            return ChecksumMismatchError
        return PermanentStorageError
    if _is_network_failure(exc):
        return TransientStorageError
    return None


def _mentions_digest(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("md5", "crc32c", "checksum", "digest"))


def classify(exc: BaseException) -> type[StorageError]:
    """The datamove class for a failure raised by a store client.

    Looks through the ``raise ... from`` chain (s3fs and adlfs wrap the
    client's error in an ``OSError``) for an HTTP status, a store error code
    or a network failure. Throttling, timeouts, resets and 5xx are
    transient; a checksum the store rejected is a
    :class:`~datamove.errors.ChecksumMismatchError`; 400, 403, 404 and
    anything unrecognised are permanent.
    """
    for link in _chain(exc):
        found = _classify_one(link)
        if found is not None:
            return found
    if isinstance(exc, FileNotFoundError | PermissionError | FileExistsError):
        return PermanentStorageError
    if isinstance(exc, OSError) and _mentions_digest(exc):
        return ChecksumMismatchError
    return PermanentStorageError


def is_storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a store or the network (not from our code)."""
    for link in _chain(exc):
        if _classify_one(link) is not None:
            return True
    return isinstance(exc, OSError)


def _describe(exc: BaseException) -> str:
    """A short, secret-free account of a store failure: class, status, code."""
    for link in _chain(exc):
        status, code = _status_and_code(link)
        if status is not None or code is not None:
            parts = [type(link).__name__]
            if status is not None:
                parts.append(f"HTTP {status}")
            if code:
                parts.append(code)
            return " ".join(parts)
    local = _os_error_code(exc)
    return f"{type(exc).__name__} {local}" if local else type(exc).__name__


def _os_error_code(exc: BaseException) -> str | None:
    """The symbolic errno (``ENOSPC``) of the first OS error in the chain."""
    for link in _chain(exc):
        number = getattr(link, "errno", None)
        if isinstance(link, OSError) and isinstance(number, int):
            return errno.errorcode.get(number)
    return None


_HINTS: dict[type[StorageError], str] = {
    TransientStorageError: (
        "the store is throttling or unreachable; it was retried, try again later "
        "or lower the number of workers"
    ),
    ChecksumMismatchError: (
        "the store received bytes that differ from the bytes sent; rerun the "
        "sync to rewrite the object"
    ),
}


# Local file-system errors a user can act on, by errno name.
_OS_HINTS = {
    "ENOSPC": "no space left on the device; free space and re-run to resume",
    "EDQUOT": (
        "the disk quota is used up; free space or raise the quota and re-run to resume"
    ),
    "EFBIG": (
        "a file grew past the destination's file-size limit; lower --shard-size "
        "or raise the limit (ulimit -f) and re-run to resume"
    ),
}


def _hint(kind: type[StorageError], exc: BaseException) -> str:
    if kind in _HINTS:
        return _HINTS[kind]
    if _credential_failure(exc):
        return (
            "no usable credentials for this store; provide them the cloud's "
            "standard way (environment variables, config file, instance or "
            "workload identity) or in --dest-options/--source-options"
        )
    local = _os_error_code(exc)
    if local in _OS_HINTS:
        return _OS_HINTS[local]
    status, code = next(
        (pair for pair in map(_status_and_code, _chain(exc)) if pair != (None, None)),
        (None, None),
    )
    if (
        code in _DENIED_CODES
        or status in (401, 403)
        or isinstance(exc, PermissionError)
    ):
        return (
            "access denied; check the credentials (--dest-options/--source-options "
            "or the cloud's standard chain) and that they may read and write here"
        )
    if code in _MISSING_CODES or status == 404 or isinstance(exc, FileNotFoundError):
        return "not found; check that the bucket or container exists and the URL"
    return "the store refused the request; check the URL and the storage options"


def translate(exc: BaseException, subject: str, operation: str) -> StorageError:
    """``exc`` as a datamove storage error whose message names ``subject``.

    ``subject`` must already be redacted (a display URL). The message holds
    the failure's class, HTTP status and store error code, never the
    store's free text, which can echo request headers.
    """
    if isinstance(exc, StorageError):
        return exc
    kind = classify(exc)
    message = f"{subject}: {operation} failed ({_describe(exc)}); {_hint(kind, exc)}"
    error = kind(message)
    error.__cause__ = exc
    return error


def _retryable(error: BaseException) -> bool:
    return isinstance(error, TransientStorageError | ChecksumMismatchError)


def call_with_retry(
    function: Callable[[], T],
    *,
    operation: str,
    subject: str,
    policy: RetryPolicy | None = None,
    retry_log: RetryLog | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run ``function`` until it succeeds, retrying transient store failures.

    Args:
        function: the operation; called again from scratch on each attempt.
        operation: a verb for messages and the log ("write shard", "list").
        subject: the redacted URL of the object or prefix concerned.
        policy: attempts and waits; :class:`RetryPolicy` defaults if None.
        retry_log: where each retry is recorded, if given.
        sleep: the wait function (tests pass a fake clock).
        rng: the source of jitter (tests pass a seeded one).

    Returns:
        What ``function`` returned.

    Raises:
        StorageError: the translated last failure, when it is permanent or the
            attempts are used up; ``__cause__`` holds the original exception.
        DatamoveError: any other datamove error, unchanged and not retried.
        Exception: a failure that does not come from a store (a bug, a
            pyarrow error), unchanged and not retried.
    """
    policy = policy or RetryPolicy()
    random_source = rng or random.Random()
    attempt = 0

    def wait(state: tenacity.RetryCallState) -> float:
        bound = policy.initial * 2 ** (state.attempt_number - 1)
        return min(policy.maximum, random_source.uniform(0, bound))

    def once() -> T:
        nonlocal attempt
        attempt += 1
        try:
            return function()
        except DatamoveError as error:
            if isinstance(error, StorageError):
                raise
            raise _Passthrough(error) from error
        except Exception as error:
            if not is_storage_failure(error):
                raise _Passthrough(error) from error
            raise translate(error, subject, operation) from error

    def before_sleep(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        delay = state.next_action.sleep if state.next_action else 0.0
        cause = _cause_name(error)
        log.info(
            "%s: %s attempt %d failed (%s), retrying in %.1f s",
            subject,
            operation,
            state.attempt_number,
            cause,
            delay,
        )
        if retry_log is not None:
            retry_log.record(
                RetryEvent(operation, subject, state.attempt_number, cause, delay)
            )

    retrier = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=wait,
        retry=tenacity.retry_if_exception(_retryable),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrier(once)
    except _Passthrough as wrapper:
        raise wrapper.original from wrapper.original.__cause__
    except StorageError as error:
        if _retryable(error) and attempt >= policy.attempts > 1:
            error.args = (f"{error.args[0]} (gave up after {attempt} attempts)",)
        raise


def _cause_name(error: BaseException | None) -> str:
    if error is None:
        return "unknown"
    original = error.__cause__
    if original is None:
        return type(error).__name__
    return f"{type(error).__name__}: {_describe(original)}"


class _Passthrough(Exception):
    """Carries a non-storage failure through tenacity without retrying it."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def retrying(
    operation: str,
    policy: RetryPolicy | None = None,
    *,
    subject: str | Callable[..., str] = "",
    retry_log: RetryLog | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorate a function so that each call goes through :func:`call_with_retry`.

    ``subject`` is a fixed redacted URL or a function of the call's arguments
    that returns one.
    """

    def decorate(function: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            name = subject(*args, **kwargs) if callable(subject) else subject
            return call_with_retry(
                lambda: function(*args, **kwargs),
                operation=operation,
                subject=name or function.__name__,
                policy=policy,
                retry_log=retry_log,
                sleep=sleep,
            )

        return wrapper

    return decorate
