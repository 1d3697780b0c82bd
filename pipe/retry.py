"""Retrying transient AWS failures, and only those, under a total time cap."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pipe.errors import UnavailableError

T = TypeVar("T")

# Codes worth another try. Throttling is not here: the SDK's standard retry mode handles it.
TRANSIENT_CODES = frozenset(
    {"IDPCommunicationError", "InternalFailure", "InternalError", "ServiceUnavailable", "RequestTimeout"}
)


def _error_code(exc: BaseException) -> str | None:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in TRANSIENT_CODES or status >= 500:
            return code or f"HTTP {status}"
    return None


def _connection_problem(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    return isinstance(exc, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError)


def call(
    fn: Callable[[], T],
    *,
    what: str,
    timeout: float,
    hint: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``fn``; on a transient failure try again with backoff until ``timeout`` seconds
    have passed since the first try. Anything else propagates at once."""
    start = clock()
    delay = 0.5
    attempts = 0
    while True:
        attempts += 1
        try:
            return fn()
        except Exception as exc:
            code = _error_code(exc)
            if code is None and not _connection_problem(exc):
                raise
            reason = code or "no connection"
            elapsed = clock() - start
            if elapsed + delay > timeout:
                raise UnavailableError(
                    f"{what} kept failing with a transient error ({reason}) after {attempts} "
                    f"attempt{'s' if attempts > 1 else ''} in {elapsed:.0f}s",
                    hint,
                ) from None
            sleep(delay)
            delay = min(delay * 2, 5.0)
