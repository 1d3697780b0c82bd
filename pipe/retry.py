"""Retrying transient AWS failures: one retry loop per call (botocore's), never two nested.

- **botocore's `standard` retry mode** (`SDK_MAX_ATTEMPTS` attempts in all) retries
  throttling (with its retry quota), 5xx answers, connection errors (refused, dropped, timed
  out) and, for STS, `IDPCommunicationError`, with jittered exponential backoff.
- **`IdpRetries`** extends that same loop for `IDPCommunicationError` on
  AssumeRoleWithWebIdentity (AWS could not reach the token's issuer; an issuer outage can
  outlast three quick attempts, and configure-aws-credentials retries it too): once the SDK's
  own attempts are used up, it asks botocore for another attempt after 0.5 s, doubling, at
  most 5 s, while that stays within ``timeout`` (`RETRY_TIMEOUT_SECONDS`) of the call's start.
  It is a `needs-retry` handler, botocore's own extension point: the attempts are botocore's,
  counted once. Nothing else is retried beyond the SDK's attempts.
- **IAM's `ConcurrentModification`** (another request changed the same entity at once; retrying
  is AWS's advice), which the standard mode does not retry (the model does not mark it
  retryable), is retried by the same handler within the SDK's attempts, on every IAM call.
- **`call`** runs one SDK call and turns what the retries gave up on into `UnavailableError`
  ("kept failing"): an `IDPCommunicationError`, a 5xx, a connection error. Anything else
  propagates at once for the caller to explain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pipe.errors import UnavailableError, aws_error, aws_status, parsed_code

T = TypeVar("T")

# Attempts in all (the first one included) of botocore's `standard` retry mode, for every
# call: its default, and the AWS SDKs' common one. It covers throttling, 5xx, connection
# errors and STS's IDPCommunicationError with jittered exponential backoff (up to 1 s, then
# 2 s) and a retry quota: enough for a blip to clear; more attempts mostly add load during an
# outage. RETRY_TIMEOUT_SECONDS does not change it; it only lets `IdpRetries` go on
# past these attempts for IDPCommunicationError, within the same loop.
SDK_MAX_ATTEMPTS = 3

# Codes whose retries go on past the SDK's attempts, under the time cap.
RETRIED_LONGER = frozenset({"IDPCommunicationError"})
# Codes the standard mode does not retry that AWS advises retrying: within the SDK's attempts.
RETRIED_TOO = frozenset({"ConcurrentModification"})
FIRST_DELAY = 0.5
MAX_DELAY = 5.0
_STARTED = "aws_credentials_pipe_retry_started"
SDK_EXHAUSTED_HINT = (
    "AWS answered with server errors, or the connection failed, on every attempt the SDK makes: "
    "re-run the step in a few minutes. If AWS_ENDPOINT_URL is set, check it points at AWS."
)


def delay_after(code: str, attempts: int, elapsed: float, timeout: float) -> float | None:
    """The pipe's part of the retry decision after ``attempts`` attempts failed with ``code``,
    ``elapsed`` seconds after the first one began: seconds to wait before one more attempt, or
    None to leave the decision to the SDK's standard mode (which retries up to its own attempts
    and no further)."""
    if code in RETRIED_TOO:
        return min(FIRST_DELAY * 2 ** (attempts - 1), MAX_DELAY) if attempts < SDK_MAX_ATTEMPTS else None
    if code not in RETRIED_LONGER or attempts < SDK_MAX_ATTEMPTS:
        return None
    delay = min(FIRST_DELAY * 2 ** (attempts - SDK_MAX_ATTEMPTS), MAX_DELAY)
    return delay if elapsed + delay <= timeout else None


class IdpRetries:
    """botocore event handlers that apply `delay_after` to one operation of a client."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock

    def register(self, client: Any, operation: str = "") -> None:
        """On ``operation`` of ``client``; on every operation when it is ""."""
        service = client.meta.service_model.service_id.hyphenize()
        name = f"{service}.{operation}" if operation else service
        client.meta.events.register(f"before-call.{name}", self.started)
        client.meta.events.register_first(f"needs-retry.{name}", self.needs_retry)

    def started(self, context: dict[str, Any], **_: Any) -> None:
        context[_STARTED] = self.clock()

    def needs_retry(
        self, attempts: int, request_dict: Mapping[str, Any], response: Any = None, **_: Any
    ) -> float | None:
        if response is None:  # no answer (a connection error): the SDK's decision
            return None
        code = parsed_code(response[1])
        started = request_dict.get("context", {}).get(_STARTED, self.clock())
        return delay_after(code, attempts, self.clock() - started, self.timeout)


def _exhausted(exc: BaseException) -> tuple[str, int] | None:
    """(reason, attempts) when ``exc`` is a transient failure the retries gave up on."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        code = aws_error(exc)[0]
        status, retries = aws_status(exc)
        if code in RETRIED_LONGER or status >= 500:
            return code or f"HTTP {status}", retries + 1
        return None
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError):
        return "no connection", SDK_MAX_ATTEMPTS
    return None


def _proxy_refusal(exc: BaseException, what: str) -> UnavailableError | None:
    """The proxy (HTTPS_PROXY, HTTP_PROXY) could not be reached, or refused the request (a 407:
    wrong or missing user and password). The message names no URL: a proxy URL may hold a
    password."""
    from botocore.exceptions import ProxyConnectionError

    if not isinstance(exc, ProxyConnectionError):
        return None
    return UnavailableError(
        f"{what} could not go through the proxy (HTTPS_PROXY, HTTP_PROXY)",
        "Check the proxy's URL and its user and password in HTTPS_PROXY or HTTP_PROXY, or name the "
        "endpoint's host in NO_PROXY to reach it directly.",
    )


def call(
    fn: Callable[[], T],
    *,
    what: str,
    timeout: float,
    hint: str,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``fn`` (one SDK call, its retries included). A transient failure it gave up on
    becomes `UnavailableError`: with ``hint`` for an `IDPCommunicationError` (retried up to
    ``timeout``), with the SDK's hint for a 5xx or a connection error. Anything else propagates."""
    start = clock()
    try:
        return fn()
    except Exception as exc:
        proxy = _proxy_refusal(exc, what)
        if proxy is not None:
            raise proxy from None
        exhausted = _exhausted(exc)
        if exhausted is None:
            raise
        reason, attempts = exhausted
        plural = "s" if attempts != 1 else ""
        if reason in RETRIED_LONGER:
            raise UnavailableError(
                f"{what} kept failing with a transient error ({reason}) after {attempts} attempt{plural} "
                f"in {clock() - start:.0f}s (RETRY_TIMEOUT_SECONDS={timeout:g})",
                hint,
            ) from None
        raise UnavailableError(
            f"{what} kept failing with a transient error ({reason}) after {attempts} attempt{plural}",
            SDK_EXHAUSTED_HINT,
        ) from None
