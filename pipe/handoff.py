"""Hands the credentials to the rest of the step: credentials.env, the AWS shared files,
identity.json. Directory 0700, files 0600, written atomically through pipe.files, symlinks
refused in every component of the path."""

from __future__ import annotations

import configparser
import io
import json
import os
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipe import files

if TYPE_CHECKING:
    from pipe.credentials import Credentials

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
    """Before any AWS call: refuse a CREDENTIALS_DIR with a symlink anywhere in its path (a
    committed ``.bitbucket -> ../elsewhere`` among them), a component that is not a directory,
    and credential files that are symlinks (see pipe.files for the rules)."""
    files.preflight(directory, VARIABLE, FILES)


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
    """Write each file atomically inside ``directory``: directory 0700, files 0600, no symlink
    anywhere in the path (pipe.files)."""
    preflight(directory)
    files.write_files(directory, contents, variable=VARIABLE, private=True, owner=owner, tighten=True)
