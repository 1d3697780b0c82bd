"""Where a key is published: the grammar of TARGETS (and SOURCE, STORE), and one small protocol.

Kinds: Bitbucket variables of a repository, a deployment environment or a workspace
(``pipe.bitbucket_target``); a Secrets Manager secret or an SSM SecureString parameter (the
durable stores, ``pipe.stores``); a profile in the AWS shared credentials file
(``pipe.profile``). ``pipe.target_factory`` makes the target a spec names.

``read()`` says which key id a target holds now; ``probe()`` proves the target can be written,
changing nothing (before a key is created); ``publish()`` writes a pair and returns the key id
read back (what can be read: Bitbucket returns the unsecured id variable, never the secured
secret); ``sign_with()`` makes a target that calls AWS sign with other credentials from then on
(the self-service switch).

The grammar is on every run's start-up path (config reads it), and the kinds import this
module: it imports none of them, nor the clients or the settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pipe.console import shown
from pipe.schema import DEFAULT_STORE_PREFIX, invalid

if TYPE_CHECKING:
    from pipe.credentials import Credentials

STORE_KINDS = ("secretsmanager", "ssm")
BITBUCKET_KINDS = ("repository", "deployment", "workspace")
# A profile name in the AWS shared files; configparser keeps [DEFAULT] for defaults of every
# section (botocore too): not a profile.
PROFILE_NAME = re.compile(r"\A[\w+=,.@-]{1,64}\Z", re.ASCII)
NOT_A_PROFILE = "DEFAULT"
# Bitbucket workspace ids and repository slugs (letters, digits, - _ . and ~), or a {uuid};
# "." and ".." are refused apart: quoted into an API path they would name another resource.
_SLUG = re.compile(r"\A(?:[A-Za-z0-9_.~-]{1,128}|\{[0-9A-Fa-f-]{36}\})\Z", re.ASCII)
_ENVIRONMENT = re.compile(r"\A[^\x00-\x1f\x7f]{1,255}\Z")
# Secrets Manager names/ARNs: what the service accepts.
_SECRET_ID = re.compile(r"\A[A-Za-z0-9/_+=.@:-]{1,2048}\Z", re.ASCII)
# SSM parameter names (or their ARN): a-zA-Z0-9_.- and /, a name with a / fully qualified, and
# never starting with aws or ssm, case-insensitive (SSM's "Requirements and constraints for
# parameter names": those are refused, or AWS's own).
_SSM_NAME = re.compile(r"\A[A-Za-z0-9/_.-]{1,2048}\Z", re.ASCII)
_SSM_ARN = re.compile(r"\Aarn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter(/.+)\Z", re.ASCII)
_SSM_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")


@dataclass(frozen=True)
class TargetSpec:
    """One entry of TARGETS (or SOURCE, STORE), parsed."""

    kind: str  # repository | deployment | workspace | secretsmanager | ssm | profile
    text: str
    workspace: str = ""
    repo: str = ""
    environment: str = ""
    name: str = ""  # secret id, parameter name or profile name

    @property
    def is_store(self) -> bool:
        return self.kind in STORE_KINDS

    @property
    def is_bitbucket(self) -> bool:
        return self.kind in BITBUCKET_KINDS


# -- the grammar ----------------------------------------------------------------------------
def is_profile_name(text: str) -> bool:
    return bool(PROFILE_NAME.match(text)) and text != NOT_A_PROFILE


def _slug(text: str) -> bool:
    """A workspace id or repository slug: never "." or "..", which quoted into an API path
    (/repositories/acme/..) would name another resource."""
    return bool(_SLUG.match(text)) and text.strip(".") != ""


def is_ssm_parameter(text: str) -> bool:
    """An SSM parameter name, or its ARN, that SSM would accept for PutParameter."""
    arn = _SSM_ARN.match(text)
    name = arn.group(1) if arn else text
    if not _SSM_NAME.match(name) or ("/" in name and not name.startswith("/")):
        return False
    return not name.removeprefix("/").lower().startswith(("aws", "ssm"))


def parse_target(text: str, variable: str = "TARGETS") -> TargetSpec:
    text = text.strip()
    prefix, _, rest = text.partition(":")
    if prefix in ("secretsmanager", "ssm", "profile") and rest:
        if prefix == "profile" and not is_profile_name(rest):
            raise invalid(variable, text, "a profile name has no spaces or brackets, and is not DEFAULT")
        if prefix == "secretsmanager" and not _SECRET_ID.match(rest):
            raise invalid(variable, text, "not a valid secretsmanager name")
        if prefix == "ssm" and not is_ssm_parameter(rest):
            raise invalid(
                variable,
                text,
                "not a valid ssm name (letters, digits, _ . - and /; a path starts with /; "
                "never starting with aws or ssm)",
            )
        return TargetSpec(prefix, text, name=rest)
    if ":" in text:
        raise invalid(variable, text, f"unknown kind {shown(prefix)}")
    place, _, environment = text.partition("@")
    workspace, slash, repo = place.partition("/")
    if (
        not _slug(workspace)
        or (slash and not _slug(repo))
        or ("@" in text and not (repo and _ENVIRONMENT.match(environment)))
    ):
        raise invalid(variable, text)
    if environment:
        return TargetSpec("deployment", text, workspace, repo, environment)
    return TargetSpec("repository" if repo else "workspace", text, workspace, repo)


def split_list(value: str, variable: str = "TARGETS") -> list[str]:
    """Comma or space separated, or a YAML list (``[a, b]`` or ``- a`` lines) of plain values.
    A list that nests (``[[...`` thousands deep: RecursionError in the parser; aliases that
    expand a few lines into millions of items) is refused, not flattened."""
    stripped = value.strip()
    if stripped.startswith(("[", "- ")):
        import yaml

        try:
            loaded = yaml.safe_load(stripped)
        except (yaml.YAMLError, RecursionError):
            loaded = None
        if isinstance(loaded, list):
            if any(isinstance(item, list | dict) for item in loaded):
                raise invalid(variable, value, "a YAML list of plain values, not of lists or mappings")
            return [str(item).strip() for item in loaded if item is not None and str(item).strip()]
    return [part for part in re.split(r"[\s,]+", stripped) if part]


def default_store_name(user: str) -> str:
    """``/bitbucket-pipes/aws-credentials-pipe/<user>``, with the user name escaped to what SSM
    allows in a name (``a-zA-Z0-9_.-``): ``_`` becomes ``__`` and any other character ``_XX``
    per UTF-8 byte (``@`` is ``_40``), so two users never share a parameter. SSM reserves
    names whose first segment starts with ``aws`` (``/aws-credentials-pipe/...`` is refused)."""
    out = []
    for char in user:
        if char in _SSM_SAFE:
            out.append(char)
        elif char == "_":
            out.append("__")
        else:
            out.extend(f"_{byte:02X}" for byte in char.encode())
    return DEFAULT_STORE_PREFIX + "".join(out)


def default_store(user: str) -> TargetSpec:
    name = default_store_name(user)
    return TargetSpec("ssm", f"ssm:{name}", name=name)


# -- the protocol ---------------------------------------------------------------------------
class Target(Protocol):
    spec: TargetSpec

    def read(self) -> str | None: ...

    def probe(self) -> None: ...

    def publish(self, pair: Credentials) -> str | None: ...

    def sign_with(self, credentials: Credentials) -> None: ...
