"""A ``profile:`` target: a profile in the AWS shared credentials file (the self-service case).
Read and written through pipe.files; the file is never read as empty when it cannot be parsed."""

from __future__ import annotations

import configparser
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pipe import files, shared_files
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
            files.write_file(self.path, shared_files.render(parser), variable=PROFILE_VARIABLE, private=True)
        return self.read()


PROFILE_VARIABLE = "AWS_SHARED_CREDENTIALS_FILE"
_PROFILE_FILES = threading.Lock()


def read_profiles(path: Path) -> configparser.ConfigParser:
    """The shared credentials file, parsed (pipe.shared_files): a file that cannot be read or
    parsed is a TargetError, never read as empty."""
    return shared_files.read(path, PROFILE_VARIABLE, TargetError)
