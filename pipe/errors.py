"""Typed failures, and every read of an AWS error code.

Each failure carries what failed and the next step, and ends the run as one ✖ line. AWS error
codes are read here only (``aws_error``, ``is_aws_code``, ``parsed_code``, ``aws_status``):
other modules match codes through these, narrowly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


# -- AWS error codes ------------------------------------------------------------------------
def aws_error(exc: BaseException) -> tuple[str, str]:
    """(code, message) of an AWS SDK error; ("", "") for anything else."""
    response = getattr(exc, "response", None)
    return parsed_code(response), parsed_message(response)


def is_aws_code(exc: BaseException, *codes: str) -> bool:
    """True when ``exc`` is an AWS error with one of ``codes``."""
    code = aws_error(exc)[0]
    return bool(code) and code in codes


def parsed_code(parsed: Any) -> str:
    """The error code of a response botocore parsed (what a `needs-retry` handler gets)."""
    error = parsed.get("Error", {}) if isinstance(parsed, Mapping) else {}
    return str(error.get("Code", "")) if isinstance(error, Mapping) else ""


def parsed_message(parsed: Any) -> str:
    error = parsed.get("Error", {}) if isinstance(parsed, Mapping) else {}
    return str(error.get("Message", "")) if isinstance(error, Mapping) else ""


def aws_status(exc: BaseException) -> tuple[int, int]:
    """(HTTP status, retries the SDK made) of an AWS SDK error; (0, 0) for anything else."""
    response = getattr(exc, "response", None)
    metadata = response.get("ResponseMetadata", {}) if isinstance(response, Mapping) else {}
    return int(metadata.get("HTTPStatusCode", 0) or 0), int(metadata.get("RetryAttempts", 0) or 0)


# -- error kinds ----------------------------------------------------------------------------
class PipeError(Exception):
    """A failure the user can act on.

    ``message`` says what failed, ``hint`` what to change. ``details`` are printed as lines
    before the final ✖ line (token claims, the trust-policy block to use, ...).
    """

    kind = "error"

    def __init__(self, message: str, hint: str = "", details: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = tuple(details)

    def line(self) -> str:
        text = self.message.rstrip(".")
        return f"{text}. {self.hint}" if self.hint else f"{text}."


class InputError(PipeError):
    """A variable is missing, malformed or contradicts another. Raised before any call to AWS."""

    kind = "input"

    def __init__(self, variable: str, message: str, hint: str = "", details: tuple[str, ...] = ()) -> None:
        super().__init__(message if variable in message else f"{variable}: {message}", hint, details)
        self.variable = variable


class AuthError(PipeError):
    """AWS refused the credentials or the role (names the AWS error code and its cause)."""

    kind = "auth"

    def __init__(self, code: str, message: str, hint: str = "", details: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint, details)
        self.code = code


class IdentityError(PipeError):
    """GetCallerIdentity answered with an identity other than the expected one."""

    kind = "identity"


class UnavailableError(PipeError):
    """AWS kept failing with transient errors until the retry time cap ran out."""

    kind = "unavailable"


class OutputError(PipeError):
    """A file could not be written (or read back) where a variable asked for it."""

    kind = "output"


class SymlinkError(OutputError):
    """A component of a path the pipe writes is a symlink."""


class StateError(PipeError):
    """The rotation cannot go on from what it found (two active keys, targets on different keys
    with no known secret, another run's marker, a key that does not work...)."""

    kind = "state"


class TargetError(PipeError):
    """A target cannot be read or written as it is (a shared credentials file the SDKs would
    refuse, one that cannot be written)."""

    kind = "target"


class BitbucketError(PipeError):
    """Bitbucket's API refused or failed a request (status, the scopes required and granted)."""

    kind = "bitbucket"

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        status: int = 0,
        required: tuple[str, ...] = (),
        granted: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.required = required
        self.granted = granted


class NotReady(PipeError):
    """The check's verdict is NOT READY."""

    kind = "check"


def refusal(exc: BaseException) -> PipeError | None:
    """An AWS SDK failure no module mapped more narrowly, as one ✖ line naming the operation;
    None for anything else (a bug)."""
    from botocore.exceptions import ClientError, ConfigParseError

    if isinstance(exc, ConfigParseError):
        # The SDK reads the shared files of the environment when it builds a client, before the
        # pipe reads anything: a file it cannot parse would be an internal error otherwise.
        return PipeError(
            f"The AWS SDK cannot parse {exc.kwargs.get('path', 'its shared files')}",
            "Fix the file (a profile or a key given twice, or a line outside any [profile], is refused), "
            "or point AWS_SHARED_CREDENTIALS_FILE (or AWS_CONFIG_FILE) at another one.",
        )
    if not isinstance(exc, ClientError):
        return None
    code, message = aws_error(exc)
    operation = exc.operation_name
    if code == "NoSuchEntity" and "user" in message.lower():
        return InputError(
            "IAM_USER_NAME",
            f"AWS says: {message} ({operation})",
            "Set IAM_USER_NAME to an existing IAM user.",
        )
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return PipeError(
            f"AWS refused {operation} ({code}: {message})",
            "Grant the pipe's role this permission: docs/check.md and docs/rotate.md give the least-privilege policy of each action.",
        )
    return PipeError(f"AWS refused {operation} ({code}: {message})", "Check the variables above and re-run.")
