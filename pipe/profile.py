"""A ``profile:`` target: a profile in the AWS shared credentials file (the self-service case).
Read and written through pipe.files; the file is never read as empty when it cannot be parsed."""

from __future__ import annotations

import configparser
import io
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pipe import files
from pipe.console import shown
from pipe.errors import TargetError

if TYPE_CHECKING:
    from pipe.credentials import Credentials
    from pipe.targets import TargetSpec


class ProfileTarget:
    """A profile in the AWS shared credentials file. Other profiles are kept (comments are not:
    configparser does not keep them). Written atomically, 0600, through pipe.files (see
    ``read_profiles`` for reading)."""

    def __init__(self, spec: TargetSpec, path: Path) -> None:
        self.spec = spec
        self.path = path

    def _parser(self) -> configparser.ConfigParser:
        return read_profiles(self.path)

    def read(self) -> str | None:
        parser = self._parser()
        return parser.get(self.spec.name, "aws_access_key_id", fallback=None)

    def probe(self) -> None:
        """A permission probe: the file parses and can be rewritten (its directory, or the
        nearest one that exists, is writable; the file itself too when it exists)."""
        try:
            self._parser()
        except (configparser.Error, OSError) as exc:
            raise TargetError(
                f"{self.path} cannot be read ({type(exc).__name__})",
                "Fix the file (or point AWS_SHARED_CREDENTIALS_FILE elsewhere) and re-run.",
            ) from None
        directory = self.path.parent
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
        if not os.access(directory, os.W_OK | os.X_OK) or (
            self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK)
        ):
            raise TargetError(
                f"{self.path} cannot be written (permission denied)",
                "Make the file and its directory writable, or point AWS_SHARED_CREDENTIALS_FILE elsewhere.",
            )

    def sign_with(self, credentials: Credentials) -> None:
        """No AWS call here: nothing to switch."""

    def publish(self, pair: Credentials) -> str | None:
        with _PROFILE_FILES:  # targets publish concurrently; one read-modify-write at a time
            parser = self._parser()
            if not parser.has_section(self.spec.name):
                parser.add_section(self.spec.name)
            parser.set(self.spec.name, "aws_access_key_id", pair.access_key_id)
            parser.set(self.spec.name, "aws_secret_access_key", pair.secret_access_key)
            parser.remove_option(self.spec.name, "aws_session_token")
            text = io.StringIO()
            parser.write(text)
            files.write_file(self.path, text.getvalue(), variable=PROFILE_VARIABLE, private=True)
        return self.read()


PROFILE_VARIABLE = "AWS_SHARED_CREDENTIALS_FILE"
_PROFILE_FILES = threading.Lock()


def read_profiles(path: Path) -> configparser.ConfigParser:
    """The shared credentials file, parsed. Read through pipe.files (no symlink in the path).
    A missing file has no profiles; a file that cannot be read or parsed (not UTF-8, a profile
    or a key given twice, which the AWS SDKs refuse too) is a TargetError, never read as empty:
    writing it back would drop the other profiles. Messages never quote the file's lines."""
    parser = configparser.ConfigParser(interpolation=None)
    data = files.read_file(path, variable=PROFILE_VARIABLE)
    if data is None:
        return parser

    def fail(
        problem: str, hint: str = f"Fix the file, or point {PROFILE_VARIABLE} at another one."
    ) -> TargetError:
        return TargetError(f"{PROFILE_VARIABLE} {path} {problem}", hint)

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (byte {exc.start})") from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.DuplicateSectionError as exc:
        raise fail(
            f"has profile {shown(exc.section)} twice (line {exc.lineno})",
            "Merge the two sections into one: the AWS SDKs refuse such a file too.",
        ) from None
    except configparser.DuplicateOptionError as exc:
        raise fail(
            f"has {shown(exc.option)} twice in profile {shown(exc.section)} (line {exc.lineno})",
            "Keep one of them: the AWS SDKs refuse such a file too.",
        ) from None
    except configparser.MissingSectionHeaderError as exc:
        raise fail(f"is not a credentials file (line {exc.lineno} is outside any [profile])") from None
    except configparser.ParsingError as exc:
        lines = ", ".join(str(lineno) for lineno, _ in exc.errors)
        raise fail(f"is not a credentials file (cannot parse line {lines})") from None
    except configparser.Error:
        raise fail("is not a credentials file") from None
    return parser
