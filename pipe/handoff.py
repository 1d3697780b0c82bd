"""Hands the credentials to the rest of the step: credentials.env, the AWS shared files,
identity.json, and with CREDENTIALS_MODE=web-identity the step's token. Directory 0700, files
0600, written atomically through pipe.files, symlinks refused in every component of the path.

The shared files keep every other profile: a run reads them (pipe.shared_files), replaces its
own profile's sections and writes them back, so two runs with two AWS_PROFILE_NAMEs leave two
profiles. credentials.env and identity.json describe the last run."""

from __future__ import annotations

import configparser
import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipe import files, shared_files
from pipe.errors import InputError

if TYPE_CHECKING:
    from pipe.credentials import Credentials

ENV_FILE = "credentials.env"
CREDENTIALS_FILE = "credentials"
CONFIG_FILE = "config"
IDENTITY_FILE = "identity.json"
TOKEN_FILE = "web-identity-token"
FILES = (ENV_FILE, CREDENTIALS_FILE, CONFIG_FILE, IDENTITY_FILE, TOKEN_FILE)
VARIABLE = "CREDENTIALS_DIR"
SOURCE_SUFFIX = "-oidc"  # the web identity profile a chained profile starts from
# What a session in credentials.env replaces, and what the web identity variables replace.
_SESSION_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
)
_WEB_IDENTITY_VARIABLES = ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME")


@dataclass(frozen=True)
class WebIdentity:
    """CREDENTIALS_MODE=web-identity: what the SDK needs to assume (and refresh) by itself."""

    role_arn: str  # AWS_OIDC_ROLE_ARN
    token_file: Path
    session_name: str
    chained_role_arn: str | None = None  # AWS_CHAINED_ROLE_ARN: the profile's role, from the web identity
    external_id: str | None = None
    chained_duration: int | None = None


def iso(when: datetime | None) -> str:
    return "" if when is None else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_epoch(seconds: int) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC))


def _export(name: str, value: str) -> str:
    return f"export {name}={shlex.quote(value)}"


def render_env(credentials: Credentials, region: str) -> str:
    lines = ["# Written by aws-credentials-pipe. Use: source <this file>"]
    lines.append(_export("AWS_ACCESS_KEY_ID", credentials.access_key_id))
    lines.append(_export("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key))
    if credentials.session_token:
        lines.append(_export("AWS_SESSION_TOKEN", credentials.session_token))
    lines.append(_export("AWS_REGION", region))
    lines.append(_export("AWS_DEFAULT_REGION", region))
    if credentials.expiration:
        lines.append(_export("AWS_CREDENTIAL_EXPIRATION", iso(credentials.expiration)))
    # Clear what an earlier source may have left behind: a long-lived key has no session token
    # and no expiry (a temporary fallback key has a token and no known expiry).
    stale = [] if credentials.session_token else ["AWS_SESSION_TOKEN"]
    stale += [] if credentials.expiration else ["AWS_CREDENTIAL_EXPIRATION"]
    if stale:
        lines.append("unset " + " ".join(stale))
    return "\n".join(lines) + "\n"


def render_env_web_identity(web: WebIdentity, region: str, profile: str, config_file: Path) -> str:
    """CREDENTIALS_MODE=web-identity: the SDK's own web identity variables (AWS_ROLE_ARN,
    AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_SESSION_NAME) instead of static keys. A chained role
    cannot be said with them: then the profile in ``config_file`` does it (AWS_CONFIG_FILE,
    AWS_PROFILE)."""
    lines = ["# Written by aws-credentials-pipe (CREDENTIALS_MODE=web-identity). Use: source <this file>"]
    if web.chained_role_arn:
        lines.append("unset " + " ".join([*_SESSION_VARIABLES, *_WEB_IDENTITY_VARIABLES]))
        lines.append(_export("AWS_CONFIG_FILE", str(config_file)))
        lines.append(_export("AWS_PROFILE", profile))
    else:
        lines.append("unset " + " ".join(_SESSION_VARIABLES))
        lines.append(_export("AWS_ROLE_ARN", web.role_arn))
        lines.append(_export("AWS_WEB_IDENTITY_TOKEN_FILE", str(web.token_file)))
        lines.append(_export("AWS_ROLE_SESSION_NAME", web.session_name))
    lines.append(_export("AWS_REGION", region))
    lines.append(_export("AWS_DEFAULT_REGION", region))
    return "\n".join(lines) + "\n"


def _section(profile: str) -> str:
    """A profile's section in the config file ("default" has no "profile " before it)."""
    return "default" if profile == "default" else f"profile {profile}"


def _replace(parser: configparser.ConfigParser, section: str, values: Mapping[str, str] | None) -> None:
    """The section holds exactly ``values`` (None: the section goes); every other section stays."""
    parser.remove_section(section)
    if values is not None:
        parser[section] = dict(values)


def render_credentials_file(
    profile: str, credentials: Credentials | None, existing: configparser.ConfigParser | None = None
) -> str:
    """The shared credentials file with ``profile``'s keys (None: without the profile, which a
    web identity profile in the config file replaces), every other profile kept."""
    parser = existing if existing is not None else configparser.ConfigParser(interpolation=None)
    values = None
    if credentials is not None:
        values = {
            "aws_access_key_id": credentials.access_key_id,
            "aws_secret_access_key": credentials.secret_access_key,
        }
        if credentials.session_token:
            values["aws_session_token"] = credentials.session_token
    _replace(parser, profile, values)
    return shared_files.render(parser)


def render_config_file(
    profile: str,
    region: str,
    existing: configparser.ConfigParser | None = None,
    web: WebIdentity | None = None,
) -> str:
    """The shared config file with ``profile``'s region (and, with ``web``, the web identity
    settings with which the SDK assumes and refreshes by itself), every other profile kept."""
    parser = existing if existing is not None else configparser.ConfigParser(interpolation=None)
    values: dict[str, str] = {"region": region}
    if web is not None:
        source = {
            "role_arn": web.role_arn,
            "web_identity_token_file": str(web.token_file),
            "role_session_name": web.session_name,
            "region": region,
            "sts_regional_endpoints": "regional",
        }
        if web.chained_role_arn:
            _replace(parser, _section(profile + SOURCE_SUFFIX), source)
            values = {
                "role_arn": web.chained_role_arn,
                "source_profile": profile + SOURCE_SUFFIX,
                "role_session_name": web.session_name,
                "region": region,
                "sts_regional_endpoints": "regional",
            }
            if web.external_id:
                values["external_id"] = web.external_id
            if web.chained_duration:
                values["duration_seconds"] = str(web.chained_duration)
        else:
            values = source
    _replace(parser, _section(profile), values)
    return shared_files.render(parser)


def read_shared(directory: Path) -> tuple[configparser.ConfigParser, configparser.ConfigParser]:
    """The shared files already in CREDENTIALS_DIR (credentials, config), to be merged into.
    Read before any call to AWS: a file the SDKs would refuse stops the run with nothing done."""

    def fail(message: str, hint: str) -> InputError:
        return InputError(VARIABLE, message, hint)

    return (
        shared_files.read(directory / CREDENTIALS_FILE, VARIABLE, fail),
        shared_files.read(directory / CONFIG_FILE, VARIABLE, fail),
    )


def render_identity(document: Mapping[str, str]) -> str:
    return json.dumps(dict(document), indent=2) + "\n"


def preflight(directory: Path, owner: tuple[int, int] | None = None) -> None:
    """Before any AWS call: refuse a CREDENTIALS_DIR with a symlink anywhere in its path (a
    committed ``.bitbucket -> ../elsewhere`` among them), a component that is not a directory,
    credential files that are symlinks, and a directory that belongs to another user than the
    pipe's or ``owner`` (see pipe.files for the rules)."""
    files.preflight(directory, VARIABLE, FILES, private=True, owner=owner)


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
    anywhere in the path (pipe.files). Not fsynced: the files are for the rest of this step, on
    this machine, and a crash of the machine ends the step (pipe.files: ``durable``)."""
    preflight(directory, owner)
    files.write_files(
        directory, contents, variable=VARIABLE, private=True, owner=owner, tighten=True, durable=False
    )
