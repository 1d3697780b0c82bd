from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from pipe import retry
from pipe.errors import UnavailableError
from pipe.retry import SDK_MAX_ATTEMPTS


def aws_error(code: str, status: int = 400, retries: int = 0) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
        },
        "Op",
    )


def raising(exc: Exception):
    def fn() -> str:
        raise exc

    return fn


# -- the pipe's part of botocore's retry decision -------------------------------------------------
def test_idp_errors_are_left_to_the_sdk_for_its_own_attempts() -> None:
    for attempts in range(1, SDK_MAX_ATTEMPTS):
        assert retry.delay_after("IDPCommunicationError", attempts, elapsed=0, timeout=60) is None


def test_past_the_sdks_attempts_idp_errors_back_off_until_the_cap() -> None:
    delays = []
    elapsed = 0.0
    attempts = SDK_MAX_ATTEMPTS
    while (delay := retry.delay_after("IDPCommunicationError", attempts, elapsed, timeout=20)) is not None:
        delays.append(delay)
        elapsed += delay
        attempts += 1
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]  # doubling, at most 5 s, within 20 s
    assert elapsed <= 20


@pytest.mark.parametrize("code", ["InternalFailure", "ServiceUnavailable", "Throttling", "AccessDenied", ""])
def test_nothing_else_is_retried_past_the_sdks_attempts(code: str) -> None:
    assert retry.delay_after(code, SDK_MAX_ATTEMPTS, elapsed=0, timeout=900) is None


def test_a_zero_cap_adds_no_attempt() -> None:
    assert retry.delay_after("IDPCommunicationError", SDK_MAX_ATTEMPTS, elapsed=0, timeout=0) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def needs_retry(handler: retry.IdpRetries, context: dict[str, Any], attempts: int, code: str) -> float | None:
    response = (object(), {"Error": {"Code": code}})
    return handler.needs_retry(attempts=attempts, request_dict={"context": context}, response=response)


def test_the_handler_measures_from_the_calls_start() -> None:
    clock = FakeClock()
    handler = retry.IdpRetries(timeout=3, clock=clock)
    context: dict[str, Any] = {}
    handler.started(context=context)
    clock.now += 1.0  # the SDK's own attempts took a second
    assert needs_retry(handler, context, 3, "IDPCommunicationError") == 0.5
    clock.now += 1.5
    assert needs_retry(handler, context, 4, "IDPCommunicationError") is None  # 2.5 + 1.0 > 3
    assert needs_retry(handler, context, 3, "InternalFailure") is None


def test_the_handler_leaves_connection_errors_to_the_sdk() -> None:
    handler = retry.IdpRetries(timeout=60, clock=FakeClock())
    assert handler.needs_retry(attempts=5, request_dict={"context": {}}, response=None) is None


# -- what the retries gave up on ------------------------------------------------------------------
def test_an_idp_error_that_outlasted_the_cap_names_the_variable() -> None:
    with pytest.raises(UnavailableError) as err:
        retry.call(
            raising(aws_error("IDPCommunicationError", retries=6)), what="Op", timeout=20, hint="raise it"
        )
    assert "kept failing" in err.value.message and "after 7 attempts" in err.value.message
    assert "RETRY_TIMEOUT_SECONDS=20" in err.value.message and err.value.hint == "raise it"


def test_server_errors_the_sdk_gave_up_on_end_at_once() -> None:
    calls = []

    def fn() -> str:
        calls.append(1)
        raise aws_error("InternalFailure", 500, retries=SDK_MAX_ATTEMPTS - 1)

    with pytest.raises(UnavailableError) as err:
        retry.call(fn, what="Op", timeout=60, hint="h")
    assert calls == [1]  # no second round on top of the SDK's attempts
    assert f"(InternalFailure) after {SDK_MAX_ATTEMPTS} attempts" in err.value.message
    assert err.value.hint == retry.SDK_EXHAUSTED_HINT


def test_connection_errors_the_sdk_gave_up_on_end_at_once() -> None:
    with pytest.raises(UnavailableError, match="no connection"):
        retry.call(raising(EndpointConnectionError(endpoint_url="x")), what="Op", timeout=60, hint="h")


@pytest.mark.parametrize(
    "code", ["AccessDenied", "InvalidIdentityToken", "ExpiredTokenException", "ValidationError", "Throttling"]
)
def test_other_errors_propagate_as_they_are(code: str) -> None:
    with pytest.raises(ClientError):
        retry.call(raising(aws_error(code)), what="Op", timeout=60, hint="h")
