"""Hands the credentials to the rest of the step: credentials.env, the AWS shared files,
identity.json. Directory 0700, files 0600, written atomically, symlinks refused."""

from __future__ import annotations

import configparser
import io
import json
import os
import shlex
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pipe.aws import Credentials
from pipe.errors import InputError, OutputError

ENV_FILE = "credentials.env"
CREDENTIALS_FILE = "credentials"
CONFIG_FILE = "config"
IDENTITY_FILE = "identity.json"
FILES = (ENV_FILE, CREDENTIALS_FILE, CONFIG_FILE, IDENTITY_FILE)
VARIABLE = "CREDENTIALS_DIR"


def iso(when: datetime | None) -> str:
    return "" if when is None else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_env(credentials: Credentials, region: str) -> str:
    lines = ["# Written by aws-credentials-pipe. Use: source <this file>"]

    def export(name: str, value: str) -> None:
        lines.append(f"export {name}={shlex.quote(value)}")

    export("AWS_ACCESS_KEY_ID", credentials.access_key_id)
    export("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key)
    if credentials.session_token:
        export("AWS_SESSION_TOKEN", credentials.session_token)
    export("AWS_REGION", region)
    export("AWS_DEFAULT_REGION", region)
    if credentials.expiration:
        export("AWS_CREDENTIAL_EXPIRATION", iso(credentials.expiration))
    else:
        # A long-lived key: clear what an earlier source may have left behind.
        lines.append("unset AWS_SESSION_TOKEN AWS_CREDENTIAL_EXPIRATION")
    return "\n".join(lines) + "\n"


def _ini(sections: Mapping[str, Mapping[str, str]]) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    for name, values in sections.items():
        parser[name] = dict(values)
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def render_credentials_file(profile: str, credentials: Credentials) -> str:
    values = {
        "aws_access_key_id": credentials.access_key_id,
        "aws_secret_access_key": credentials.secret_access_key,
    }
    if credentials.session_token:
        values["aws_session_token"] = credentials.session_token
    return _ini({profile: values})


def render_config_file(profile: str, region: str) -> str:
    section = "default" if profile == "default" else f"profile {profile}"
    return _ini({section: {"region": region}})


def render_identity(document: Mapping[str, str]) -> str:
    return json.dumps(dict(document), indent=2) + "\n"


def preflight(directory: Path) -> None:
    """Refuse a CREDENTIALS_DIR that is a symlink or not a directory, before any AWS call."""
    if directory.is_symlink():
        raise InputError(
            VARIABLE,
            f"CREDENTIALS_DIR {directory} is a symlink",
            "Point CREDENTIALS_DIR at a real directory.",
        )
    if directory.exists() and not directory.is_dir():
        raise InputError(
            VARIABLE,
            f"CREDENTIALS_DIR {directory} is not a directory",
            "Point CREDENTIALS_DIR at a directory.",
        )
    for name in FILES:
        if (directory / name).is_symlink():
            raise InputError(
                VARIABLE,
                f"{directory / name} is a symlink; the pipe does not write through symlinks",
                "Remove the symlink or choose another CREDENTIALS_DIR.",
            )


def owner_for(clone_dir: Path) -> tuple[int, int] | None:
    """When the pipe runs as root and the clone directory belongs to someone else (a step with
    ``run-as-user``), the files are handed to that owner so the step can read them."""
    if os.geteuid() != 0:
        return None
    try:
        info = clone_dir.stat()
    except OSError:
        return None
    return None if info.st_uid == 0 else (info.st_uid, info.st_gid)


def write(
    directory: Path,
    contents: Mapping[str, str],
    owner: tuple[int, int] | None = None,
) -> None:
    """Write each file atomically (temp file, fsync, rename) inside ``directory``."""
    preflight(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise OutputError(
            f"Cannot create or open CREDENTIALS_DIR {directory} ({exc.strerror})",
            "Point CREDENTIALS_DIR at a writable directory.",
        ) from None
    try:
        info = os.fstat(dir_fd)
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != 0o700:
            os.fchmod(dir_fd, 0o700)
        if owner:
            os.fchown(dir_fd, *owner)
        for name, text in contents.items():
            _write_one(dir_fd, directory, name, text, owner)
    finally:
        os.close(dir_fd)


def _write_one(dir_fd: int, directory: Path, name: str, text: str, owner: tuple[int, int] | None) -> None:
    temporary = f".{name}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
        try:
            os.write(fd, text.encode())
            os.fchmod(fd, 0o600)
            if owner:
                os.fchown(fd, *owner)
            os.fsync(fd)
        finally:
            os.close(fd)
        if stat.S_ISLNK(_lstat_mode(dir_fd, name)):
            os.unlink(temporary, dir_fd=dir_fd)
            raise InputError(VARIABLE, f"{directory / name} is a symlink", "Remove the symlink.")
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        raise OutputError(
            f"Cannot write {directory / name} ({exc.strerror})",
            "Point CREDENTIALS_DIR at a writable directory.",
        ) from None


def _lstat_mode(dir_fd: int, name: str) -> int:
    try:
        return os.lstat(name, dir_fd=dir_fd).st_mode
    except FileNotFoundError:
        return 0
