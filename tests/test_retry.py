"""The retry policy: what is retried, how long it waits, what it records."""

from __future__ import annotations

import pickle
import random
import threading
from typing import Any

import pytest

from datamove.errors import (
    ChecksumMismatchError,
    PermanentStorageError,
    SchemaConflictError,
    TransientStorageError,
)
from datamove.retry import (
    RetryLog,
    RetryPolicy,
    call_with_retry,
    classify,
    retrying,
    translate,
)


class FakeClock:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    response: Any = {
        "Error": {"Code": code, "Message": "secret-free text"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    error: Exception = ClientError(response, "PutObject")
    return error


def _failing(failures: list[BaseException], result: str = "ok") -> Any:
    calls = {"count": 0}

    def function() -> str:
        calls["count"] += 1
        if failures:
            raise failures.pop(0)
        return result

    function.calls = calls  # type: ignore[attr-defined]
    return function


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_client_error("SlowDown", 503), TransientStorageError),
        (_client_error("InternalError", 500), TransientStorageError),
        (_client_error("TooManyRequests", 429), TransientStorageError),
        (_client_error("AccessDenied", 403), PermanentStorageError),
        (_client_error("NoSuchBucket", 404), PermanentStorageError),
        (_client_error("InvalidArgument", 400), PermanentStorageError),
        (_client_error("BadDigest", 400), ChecksumMismatchError),
        (ConnectionResetError("reset by peer"), TransientStorageError),
        (TimeoutError(), TransientStorageError),
        (FileNotFoundError("bucket/key"), PermanentStorageError),
        (PermissionError("denied"), PermanentStorageError),
        (TransientStorageError("already ours"), TransientStorageError),
    ],
)
def test_classify(error: Exception, expected: type) -> None:
    assert classify(error) is expected


def test_classify_follows_the_cause_chain() -> None:
    wrapped = OSError("s3fs wraps it")
    wrapped.__cause__ = _client_error("SlowDown", 503)
    assert classify(wrapped) is TransientStorageError


def test_azure_and_gcs_errors_are_classified_by_status() -> None:
    from azure.core.exceptions import HttpResponseError
    from gcsfs.retry import HttpError

    assert classify(HttpError({"code": 503, "message": "x"})) is TransientStorageError
    assert classify(HttpError({"code": 403, "message": "x"})) is PermanentStorageError
    azure = HttpResponseError(message="busy")
    azure.status_code = 503
    assert classify(azure) is TransientStorageError


def test_transient_failures_are_retried_with_capped_jittered_waits() -> None:
    clock = FakeClock()
    failures: list[BaseException] = [_client_error("SlowDown", 503) for _ in range(4)]
    function = _failing(failures)
    log = RetryLog()
    policy = RetryPolicy(attempts=5, initial=1.0, maximum=3.0)

    result = call_with_retry(
        function,
        operation="write shard",
        subject="s3://b/k",
        policy=policy,
        retry_log=log,
        sleep=clock.sleep,
        rng=random.Random(7),
    )

    assert result == "ok"
    assert function.calls["count"] == 5
    bounds = [1.0, 2.0, 3.0, 3.0]  # initial * 2**n, capped by maximum
    assert len(clock.waits) == 4
    assert all(
        0 <= wait <= bound for wait, bound in zip(clock.waits, bounds, strict=True)
    )
    assert [event.attempt for event in log.events] == [1, 2, 3, 4]
    assert [event.wait for event in log.events] == clock.waits
    assert log.causes() == {"TransientStorageError: ClientError HTTP 503 SlowDown": 4}
    assert {event.subject for event in log.events} == {"s3://b/k"}


def test_permanent_failure_is_raised_at_once_translated() -> None:
    clock = FakeClock()
    function = _failing([_client_error("AccessDenied", 403)])

    with pytest.raises(PermanentStorageError) as caught:
        call_with_retry(
            function, operation="write", subject="s3://b/k", sleep=clock.sleep
        )

    assert function.calls["count"] == 1
    assert clock.waits == []
    message = str(caught.value)
    assert message.startswith("s3://b/k: write failed (ClientError HTTP 403")
    assert "credentials" in message
    assert "secret-free text" not in message  # the store's text is left out
    assert caught.value.__cause__ is not None


def test_exhausted_retries_raise_the_last_failure() -> None:
    clock = FakeClock()
    function = _failing([_client_error("SlowDown", 503) for _ in range(3)])

    with pytest.raises(TransientStorageError, match="gave up after 3 attempts"):
        call_with_retry(
            function,
            operation="write",
            subject="s3://b/k",
            policy=RetryPolicy(attempts=3),
            sleep=clock.sleep,
        )
    assert function.calls["count"] == 3
    assert len(clock.waits) == 2


def test_checksum_mismatch_is_retried_then_permanent() -> None:
    clock = FakeClock()
    function = _failing([_client_error("BadDigest", 400) for _ in range(2)])

    with pytest.raises(ChecksumMismatchError):
        call_with_retry(
            function,
            operation="write",
            subject="s3://b/k",
            policy=RetryPolicy(attempts=2),
            sleep=clock.sleep,
        )
    assert function.calls["count"] == 2
    assert isinstance(ChecksumMismatchError("x"), PermanentStorageError)


def test_non_storage_errors_pass_through_untouched() -> None:
    schema = SchemaConflictError("a.csv: column x")
    with pytest.raises(SchemaConflictError) as caught:
        call_with_retry(_failing([schema]), operation="o", subject="s")
    assert caught.value is schema
    bug = KeyError("bug")
    with pytest.raises(KeyError) as raised:
        call_with_retry(_failing([bug]), operation="o", subject="s")
    assert raised.value is bug


def test_decorator_names_the_subject_from_arguments() -> None:
    clock = FakeClock()
    log = RetryLog()
    failures: list[BaseException] = [ConnectionResetError()]

    @retrying(
        "upload",
        RetryPolicy(attempts=2),
        subject=lambda path: f"gs://{path}",
        retry_log=log,
        sleep=clock.sleep,
    )
    def upload(path: str) -> str:
        if failures:
            raise failures.pop(0)
        return path

    assert upload("b/k") == "b/k"
    assert [event.subject for event in log.events] == ["gs://b/k"]


def test_translate_keeps_our_errors() -> None:
    ours = PermanentStorageError("x")
    assert translate(ours, "s", "o") is ours


def test_log_is_thread_safe_and_pickles() -> None:
    log = RetryLog()
    clock = FakeClock()

    def work() -> None:
        for _ in range(50):
            call_with_retry(
                _failing([TimeoutError()]),
                operation="o",
                subject="s",
                retry_log=log,
                sleep=clock.sleep,
            )

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(log) == 200
    copy = pickle.loads(pickle.dumps(log))
    assert copy.events == log.events


@pytest.mark.parametrize(
    "arguments", [{"attempts": 0}, {"initial": -1.0}, {"initial": 5.0, "maximum": 1.0}]
)
def test_policy_rejects_nonsense(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**arguments)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param("botocore", id="aws"),
        pytest.param("google", id="gcp"),
        pytest.param("azure", id="azure"),
    ],
)
def test_missing_credentials_are_permanent_with_their_own_hint(error: str) -> None:
    failure: Exception
    if error == "botocore":
        from botocore.exceptions import NoCredentialsError

        failure = NoCredentialsError()
    elif error == "google":
        from google.auth.exceptions import DefaultCredentialsError

        failure = DefaultCredentialsError("no default credentials")
    else:
        from azure.identity import CredentialUnavailableError

        failure = CredentialUnavailableError("no credential in the chain")
    clock = FakeClock()
    function = _failing([failure])

    with pytest.raises(PermanentStorageError) as caught:
        call_with_retry(
            function, operation="read manifest", subject="s3://b", sleep=clock.sleep
        )

    assert function.calls["count"] == 1
    assert clock.waits == []
    message = str(caught.value)
    assert message.startswith(f"s3://b: read manifest failed ({type(failure).__name__}")
    assert "no usable credentials" in message
