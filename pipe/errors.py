"""Typed failures. Each carries what failed and the next step, and ends the run as one ✖ line."""

from __future__ import annotations


def aws_error(exc: BaseException) -> tuple[str, str]:
    """(code, message) of an AWS SDK error; ("", "") for anything else."""
    response = getattr(exc, "response", None)
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    return str(error.get("Code", "")), str(error.get("Message", ""))


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
    """The credentials could not be written where they were asked for."""

    kind = "output"
