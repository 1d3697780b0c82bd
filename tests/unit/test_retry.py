from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from pipe import retry
from pipe.errors import UnavailableError


def aws_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(errors: list[Exception]):
    def fn() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    return fn


def test_transient_errors_are_retried_with_backoff() -> None:
    clock = Clock()
    errors: list[Exception] = [
        aws_error("IDPCommunicationError"),
        aws_error("Whatever", 503),
        EndpointConnectionError(endpoint_url="x"),
    ]
    assert (
        retry.call(
            failing(errors), what="x", timeout=60, hint="h", sleep=clock.sleep, clock=lambda: clock.now
        )
        == "ok"
    )
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_the_time_cap_ends_retries() -> None:
    clock = Clock()
    errors: list[Exception] = [aws_error("IDPCommunicationError")] * 100
    with pytest.raises(UnavailableError, match="IDPCommunicationError") as err:
        retry.call(
            failing(errors), what="x", timeout=10, hint="h", sleep=clock.sleep, clock=lambda: clock.now
        )
    assert clock.now <= 10 and "attempts" in err.value.message


@pytest.mark.parametrize(
    "code", ["AccessDenied", "InvalidIdentityToken", "ExpiredTokenException", "ValidationError", "Throttling"]
)
def test_other_errors_propagate_at_once(code: str) -> None:
    clock = Clock()
    with pytest.raises(ClientError):
        retry.call(
            failing([aws_error(code)]),
            what="x",
            timeout=60,
            hint="h",
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )
    assert clock.sleeps == []


def test_zero_timeout_means_one_try() -> None:
    clock = Clock()
    with pytest.raises(UnavailableError):
        retry.call(
            failing([aws_error("InternalFailure", 500)]),
            what="x",
            timeout=0,
            hint="h",
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )
    assert clock.sleeps == []
