"""Everything the pipe prints goes through here, and no secret gets past it.

Info and warning lines use bitbucket-pipes-toolkit's logger (the look of Atlassian's pipes).
The final line is printed plain, so that it starts with ✔ or ✖ for anyone reading or
grepping the log. Every line, the toolkit's included, passes a redaction filter that knows
the secrets of this run (OIDC token, secret keys, session tokens).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterable
from typing import TextIO

from pipe.errors import PipeError

MASK = "****"
_NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")


class Redactor(logging.Filter):
    """Replaces every registered secret with ****, in log records and in plain text."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, *values: str | None) -> None:
        for value in values:
            # Very short values would mask ordinary words; real secrets are long.
            if value and len(value) >= 8:
                self._secrets.add(value)

    def clean(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.clean(record.getMessage())
        record.args = None
        return True


class Console:
    def __init__(self, stream: TextIO | None = None) -> None:
        from bitbucket_pipes_toolkit import get_logger
        from colorlog import ColoredFormatter

        self.redactor = Redactor()
        self._stream = stream or sys.stdout
        self._logger: logging.Logger = get_logger()
        for handler in self._logger.handlers:
            if not isinstance(handler, logging.StreamHandler) or not isinstance(
                handler.formatter, ColoredFormatter
            ):
                continue  # not the toolkit's handler (pytest adds its own to the root logger)
            handler.addFilter(self.redactor)
            # One stream for every line: Docker carries stdout and stderr separately, and the
            # final ✔/✖ line must come last in the step's log.
            handler.setStream(self._stream)
        # The SDK's own debug logs print request bodies (the OIDC token among them): keep them quiet.
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self.debug_enabled = False

    def secrets(self, *values: str | None) -> None:
        self.redactor.add(*values)

    def enable_debug(self) -> None:
        self.debug_enabled = True
        self._logger.setLevel(logging.DEBUG)

    def info(self, message: str) -> None:
        self._logger.info(message)

    def warning(self, message: str) -> None:
        self._logger.warning(message)

    def debug(self, message: str) -> None:
        self._logger.debug(message)

    def lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self._print(f"  {line}")

    def success(self, message: str) -> None:
        self._print(f"✔ {message}")

    def failure(self, error: PipeError) -> None:
        if error.details:
            self.lines(error.details)
        # One line, whatever a message (an AWS or Bitbucket one among them) contains.
        self._print("✖ " + " ".join(error.line().split()))

    def unexpected(self, exc: BaseException) -> None:
        """A bug, not a user error: no traceback unless DEBUG=true, and never a secret."""
        if self.debug_enabled:
            text = "".join(traceback.format_exception(exc))
            for line in text.rstrip().splitlines():
                self._print(line)
        self._print(
            f"✖ Unexpected internal error ({type(exc).__name__}). Re-run with DEBUG=true and report "
            "the output (it contains no secrets) to the pipe's issue tracker."
        )

    def _print(self, text: str) -> None:
        print(self.redactor.clean(text), file=self._stream, flush=True)
