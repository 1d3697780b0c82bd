"""Everything the pipe prints goes through here, and no secret gets past it.

Info and warning lines go through the root logger, with the handler bitbucket-pipes-toolkit
sets up (colorlog's ``INFO: ...`` in blue, warnings in yellow: the look of Atlassian's pipes),
made here without importing the toolkit (``toolkit()`` imports it where it does real work).
The final line is printed plain, so that it starts with ✔ or ✖ for anyone reading or
grepping the log. Every line, the SDK's and the toolkit's included, passes a redaction filter
that knows the secrets of this run (OIDC token, secret keys, session tokens).
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable
from types import ModuleType
from typing import TextIO

from pipe.errors import PipeError

MASK = "****"
_NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")

# What "looks like a secret", for values the pipe would otherwise echo back (issue 7, item 4).
# A secret given in the wrong variable must not be printed whatever the variable, so the rule
# looks at the value only. It errs on the side of hiding: a hidden value costs a less precise
# message, a shown one leaks a credential. A value looks like a secret when it
#   - starts like an Atlassian token (ATATT/ATCTT: API and access tokens; ATBB: app passwords);
#   - is shaped like a JWT (three base64url parts, the first starting eyJ: an OIDC token);
#   - holds the shape of an AWS secret access key: 40 characters of [A-Za-z0-9+/] standing alone;
#   - holds a run of 20 or more characters of [A-Za-z0-9+] mixing upper case, lower case and
#     digits (random tokens of most kinds; ARNs, paths, names and URLs break into shorter runs at
#     ':', '/', '.', '-', '_', and access key ids are upper case and digits only, so they stay
#     visible);
#   - holds a run of 32 or more characters of [A-Za-z0-9+_-] mixing the three, with at least 30%
#     of its letters upper case (base64url tokens; names such as svc-Deploy-Pipelines-2024 have
#     an upper-case letter per word only);
#   - holds a run of 32 or more hex digits, letters and digits both (hex-encoded secrets).
_TOKEN_PREFIXES = ("ATATT", "ATCTT", "ATBB")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/])")
_RUN = re.compile(r"[A-Za-z0-9+]{20,}")
_URLSAFE_RUN = re.compile(r"[A-Za-z0-9+_-]{32,}")
_HEX = re.compile(r"[0-9A-Fa-f]{32,}")
_MIXED = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"))
# Values longer than this are never echoed in full.
SHOWN_MAX = 80
# MASK_ACCOUNT_ID=true: a 12-digit run standing alone (in an ARN, a list, a sentence) is an
# account id. Runs inside longer digit strings, hex or UUIDs (whose last group may be 12
# digits, after a '-') are left alone.
ACCOUNT_MASK = "************"
_ACCOUNT_ID = re.compile(r"(?<![0-9A-Za-z-])[0-9]{12}(?![0-9A-Za-z-])")
# bitbucket-pipes-toolkit's configure_logger: this format, colorlog's colours with INFO in blue.
LOG_FORMAT = "%(log_color)s%(levelname)s: %(message)s"
LOG_COLORS = {"DEBUG": "white", "INFO": "blue", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold_red"}


def _mixed(text: str) -> bool:
    return all(pattern.search(text) for pattern in _MIXED)


def looks_secret(value: str) -> bool:
    """True when ``value`` may be a credential (the rule above)."""
    text = value.strip().strip("'\"")
    if text.startswith(_TOKEN_PREFIXES) or _JWT.search(text):
        return True
    if any(re.search("[A-Fa-f]", run) and re.search("[0-9]", run) for run in _HEX.findall(text)):
        return True
    if any(_mixed(match) for match in _AWS_SECRET.findall(text)):
        return True
    if any(_mixed(run) for run in _RUN.findall(text)):
        return True
    return any(_mixed(run) and _upper_share(run) >= 0.3 for run in _URLSAFE_RUN.findall(text))


def _upper_share(text: str) -> float:
    letters = [c for c in text if c.isascii() and c.isalpha()]
    return sum(c.isupper() for c in letters) / max(len(letters), 1)


def shown(value: str) -> str:
    """How a user's value may appear in a message: quoted, or described without its text when
    it looks like a secret; long values are cut."""
    if looks_secret(value):
        return f"a value of {len(value)} characters, not shown as it looks like a secret"
    if len(value) > SHOWN_MAX:
        return f"{value[:SHOWN_MAX]!r}... ({len(value)} characters)"
    return repr(value)


def variants(value: str) -> set[str]:
    """The forms in which a secret given with stray whitespace or quotes may be printed: the
    value as given, stripped of surrounding whitespace, stripped of one pair of quotes, and each
    of these as it appears escaped inside a Python repr or a JSON string."""
    forms = {value, value.strip()}
    for form in list(forms):
        if len(form) >= 2 and form[0] == form[-1] and form[0] in "'\"":
            forms.add(form[1:-1].strip())
    for form in list(forms):
        forms.add(repr(form)[1:-1])
        forms.add(json.dumps(form)[1:-1])
    return forms


class Redactor(logging.Filter):
    """Replaces every registered secret with ****, in log records and in plain text."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self.mask_accounts = False

    def add(self, *values: str | None, min_length: int = 8) -> None:
        """Register secrets, in every form they may be printed in (see ``variants``): a value
        pasted with a trailing newline is used, and may be printed, stripped. Forms shorter
        than ``min_length`` are left out: very short values would mask ordinary words, and
        generated secrets are long; a password a person chose (a proxy's) is masked whatever
        its length (``min_length=1``)."""
        for value in values:
            for form in variants(value or ""):
                if len(form) >= max(min_length, 1) and form.strip():
                    self._secrets.add(form)

    def clean(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        if self.mask_accounts:
            text = _ACCOUNT_ID.sub(ACCOUNT_MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.clean(record.getMessage())
        record.args = None
        return True


def _colour_handlers(root: logging.Logger) -> list[logging.StreamHandler[TextIO]]:
    """The root logger's colour handlers (pytest adds handlers of its own: not these)."""
    from colorlog import ColoredFormatter

    return [
        handler
        for handler in root.handlers
        if isinstance(handler, logging.StreamHandler) and isinstance(handler.formatter, ColoredFormatter)
    ]


def _colour_handler(root: logging.Logger) -> logging.StreamHandler[TextIO]:
    """The root logger's colour handler: the one already there (made by an earlier Console, or
    by bitbucket-pipes-toolkit when it was imported first), else a new one, made as the
    toolkit's configure_logger makes it (level INFO)."""
    from colorlog import ColoredFormatter, StreamHandler

    found = _colour_handlers(root)
    if found:
        return found[0]
    made: logging.StreamHandler[TextIO] = StreamHandler()
    made.setFormatter(ColoredFormatter(LOG_FORMAT, log_colors=LOG_COLORS))
    root.addHandler(made)
    root.setLevel(logging.INFO)
    return made


def toolkit() -> ModuleType:
    """bitbucket-pipes-toolkit, imported only where it does real work (Code Insights). Its first
    import configures the root logger (a second colour handler, the level back to INFO): after
    a Console's, that is undone, so that every line is printed once, through the console's
    filter, at the level DEBUG chose."""
    root = logging.getLogger()
    ours, level = _colour_handlers(root), root.level
    module = importlib.import_module("bitbucket_pipes_toolkit")
    if ours:
        for handler in _colour_handlers(root):
            if handler not in ours:
                root.removeHandler(handler)
        root.setLevel(level)
    return module


class Console:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.redactor = Redactor()
        self._stream = stream or sys.stdout
        self._logger: logging.Logger = logging.getLogger()
        handler = _colour_handler(self._logger)
        handler.addFilter(self.redactor)
        # One stream for every line: Docker carries stdout and stderr separately, and the
        # final ✔/✖ line must come last in the step's log. An earlier console's stream in this
        # process (a test's capture) may be closed by now: it is replaced without a flush.
        if getattr(handler.stream, "closed", False):
            handler.stream = self._stream
        else:
            handler.setStream(self._stream)
        # The SDK's own debug logs print request bodies (the OIDC token among them): keep them quiet.
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self.debug_enabled = False

    def secrets(self, *values: str | None, any_length: bool = False) -> None:
        """Mask these values in every line from now on (``any_length``: however short)."""
        self.redactor.add(*values, min_length=1 if any_length else 8)

    def clean(self, text: str) -> str:
        """``text`` as it may leave the process (a report, a Code Insights report): the run's
        secrets masked, and account ids with MASK_ACCOUNT_ID=true."""
        return self.redactor.clean(text)

    def mask_account_ids(self) -> None:
        """MASK_ACCOUNT_ID=true: account ids are masked in every line from now on."""
        self.redactor.mask_accounts = True

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
        # A value read from the environment may hold undecodable bytes (lone surrogates): print
        # them escaped rather than fail while printing the failure.
        text = self.redactor.clean(text).encode("utf-8", "backslashreplace").decode("utf-8")
        print(text, file=self._stream, flush=True)
