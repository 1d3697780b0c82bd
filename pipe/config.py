r"""Typed, validated settings built from the pipe's variables. Pure: no environment, no I/O
except looking at paths. Every problem becomes an InputError naming its variable, before
anything calls AWS.

Every pattern here is ASCII-only: Python's ``\d`` and ``\w`` match any Unicode digit or letter
('١٢٣', 'é'), and ``str.isdigit`` accepts '²'; AWS and Bitbucket accept none of them. Numbers
are bounded in length before ``int()`` (Python refuses to convert more than 4300 digits), and
JSON and YAML values are bounded before they are parsed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from urllib.parse import urlparse

from pipe import files, oidc
from pipe.console import shown
from pipe.errors import InputError
from pipe.schema import ACTIONS, BY_NAME, IMPLEMENTED_ACTIONS

SHARED_STORAGE_SUFFIX = Path(".bitbucket/pipelines/generated/pipeline/pipes")
CREDENTIALS_SUBDIR = "aws-credentials"
REPORTS_SUBDIR = "aws-credentials-reports"

# Anchored with \A...\Z ('$' accepts a trailing newline), re.ASCII (\d and \w are Unicode otherwise).
_REGION = re.compile(r"\A[a-z]{2}(-[a-z]+)+-\d{1,2}\Z", re.ASCII)
_ROLE_ARN = re.compile(
    r"\Aarn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-[a-z]):iam::(\d{12}):role/([\w+=,.@/-]{1,512})\Z", re.ASCII
)
_SESSION_NAME = re.compile(r"\A[\w+=,.@-]{2,64}\Z", re.ASCII)
_ACCESS_KEY_ID = re.compile(r"\AAKIA[A-Z0-9]{16}\Z", re.ASCII)
_ACCOUNT_ID = re.compile(r"\A\d{12}\Z", re.ASCII)
_PROFILE = re.compile(r"\A[\w+=,.@-]{1,64}\Z", re.ASCII)
# configparser keeps [DEFAULT] for defaults of every section (botocore too): not a profile.
_NOT_A_PROFILE = "DEFAULT"
_NUMBER = re.compile(r"\A[0-9]{1,12}\Z", re.ASCII)
# No variable needs more; longer values are refused before anything parses them.
MAX_VALUE = 65536
_ENDPOINT_VARIABLES = {
    "sts": ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"),
    "iam": ("AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL"),
    "secretsmanager": ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"),
    "ssm": ("AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"),
}
# Bitbucket workspace ids and repository slugs (letters, digits, - _ . and ~), or a {uuid};
# "." and ".." are refused apart: quoted into an API path they would name another resource.
_SLUG = re.compile(r"\A(?:[A-Za-z0-9_.~-]{1,128}|\{[0-9A-Fa-f-]{36}\})\Z", re.ASCII)
_ENVIRONMENT = re.compile(r"\A[^\x00-\x1f\x7f]{1,255}\Z")
# Secrets Manager names/ARNs and SSM parameter names/ARNs: what the services accept.
_STORE_NAME = {
    "secretsmanager": re.compile(r"\A[A-Za-z0-9/_+=.@:-]{1,2048}\Z", re.ASCII),
    "ssm": re.compile(r"\A[A-Za-z0-9/_.:-]{1,2048}\Z", re.ASCII),
}
_IAM_USER = re.compile(r"\A[\w+=,.@-]{1,64}\Z", re.ASCII)
REPORT_FILES = ("rotation.json", "oidc-check.json", "oidc-check.md")
STORE_KINDS = ("secretsmanager", "ssm")
# A lease shorter than this is refused: a heartbeat every third of it must fit between AWS calls
# that can take seconds each, and 0 would let a second run take over a live one at once.
MIN_LEASE_SECONDS = 30
BITBUCKET_KINDS = ("repository", "deployment", "workspace")


class Route(Enum):
    OIDC = "oidc"
    ACCESS_KEY = "access-key"


@dataclass(frozen=True)
class RoleArn:
    arn: str
    partition: str
    account: str
    name: str  # last path segment: what the assumed-role ARN carries


@dataclass(frozen=True)
class KeyPair:
    """A long-lived access key: the fallback key, or a key being rotated."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class TargetSpec:
    """One entry of TARGETS (or SOURCE), parsed."""

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


@dataclass(frozen=True)
class RotationSettings:
    user_name: str | None
    targets: tuple[TargetSpec, ...]
    source: TargetSpec | None
    id_variable: str
    secret_variable: str
    rotate_after: int
    deactivate_after: int
    delete_after: int
    force: bool
    verify_timeout: int
    lease_seconds: int
    concurrency: int
    credentials_file: Path
    store_choice: TargetSpec | None = None  # STORE=ssm:... / secretsmanager:...
    no_store: bool = False  # STORE=none
    grace_days: int = 7
    keep_old_key: bool = False

    def store_for(self, user: str) -> TargetSpec | None:
        """The durable store: STORE when given (None for STORE=none), else the first
        secretsmanager: or ssm: target, else the default SSM parameter for ``user`` (known only
        at run time in the self-service case)."""
        if self.no_store:
            return None
        if self.store_choice is not None:
            return self.store_choice
        first = next((t for t in self.targets if t.is_store), None)
        return first or default_store(user)


DEFAULT_STORE_PREFIX = "/bitbucket-pipes/aws-credentials-pipe/"
_SSM_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")


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


@dataclass(frozen=True)
class Settings:
    action: str
    region: str
    partition: str
    route: Route
    route_warning: str  # set when the fallback key is used: how to enable OIDC
    role: RoleArn | None
    claims: oidc.TokenClaims | None
    token: str | None = field(repr=False)
    access_key: KeyPair | None
    session_name: str
    duration_seconds: int
    session_policy: str | None
    allowed_accounts: frozenset[str]
    profile_name: str
    credentials_dir: Path
    report_dir: Path
    clone_dir: Path
    dry_run: bool
    debug: bool
    retry_timeout: int
    endpoints: Mapping[str, str]
    rotation: RotationSettings | None = None
    bitbucket_url: str = "https://api.bitbucket.org/2.0"
    trust_policy_file: Path | None = None
    bitbucket_auth: Mapping[str, str] = field(default_factory=dict, repr=False)
    workspace: str = ""
    repo_slug: str = ""
    legacy_idle_days: int = 7
    retire_legacy_keys: bool = False
    commit: str = ""
    auth_proxy_host: str = "host.docker.internal"

    def secrets(self) -> tuple[str, ...]:
        values = [self.token]
        if self.access_key:
            values.append(self.access_key.secret_access_key)
        values.extend(self.bitbucket_auth.values())
        return tuple(v for v in values if v)


def _fail(name: str, value: str | None = None, extra: str = "") -> InputError:
    """The ✖ for a bad value. The value is echoed to help, unless it is a secret variable's or
    merely looks like a secret (console.looks_secret: a secret pasted into the wrong variable)."""
    var = BY_NAME[name]
    got = "" if value is None or var.secret else f" (got {shown(value)})"
    message = f"{name} must be {var.expects}{got}" if var.expects else f"{name} is not valid{got}"
    return InputError(
        name, message + (f": {extra}" if extra else ""), f"Change {name} in the pipe's variables."
    )


def _bool(values: Mapping[str, str | None], name: str) -> bool:
    raw = values.get(name)
    value = (raw or BY_NAME[name].default).strip()
    if not value.isascii() or value.lower() not in ("true", "false"):
        raise _fail(name, raw)
    return value.lower() == "true"


def _int(values: Mapping[str, str | None], name: str, low: int, high: int) -> int:
    """ASCII digits only ('²'.isdigit() is true), at most 12 of them before int()."""
    raw = values.get(name)
    text = (raw or BY_NAME[name].default).strip()
    if not _NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise _fail(name, raw)
    return int(text)


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("us-iso-"):
        return "aws-iso"
    if region.startswith("us-isob-"):
        return "aws-iso-b"
    return "aws"


def _region(values: Mapping[str, str | None]) -> str:
    default = values.get("AWS_DEFAULT_REGION")
    other = values.get("AWS_REGION")
    if default and other and default != other:
        raise InputError(
            "AWS_DEFAULT_REGION",
            f"AWS_DEFAULT_REGION ({shown(default)}) and AWS_REGION ({shown(other)}) disagree",
            "Set one of them, or set both to the same region.",
        )
    region = default or other
    if not region:
        raise InputError(
            "AWS_DEFAULT_REGION",
            "AWS_DEFAULT_REGION is required",
            "Set AWS_DEFAULT_REGION (for example eu-west-1) in the pipe's variables.",
        )
    if not _REGION.fullmatch(region):
        raise _fail("AWS_DEFAULT_REGION" if default else "AWS_REGION", region)
    return region


def _role(value: str, partition: str) -> RoleArn:
    match = _ROLE_ARN.fullmatch(value)
    if not match:
        raise _fail("AWS_OIDC_ROLE_ARN", value)
    if match.group(1) != partition:
        raise InputError(
            "AWS_OIDC_ROLE_ARN",
            f"AWS_OIDC_ROLE_ARN is in partition {match.group(1)} but the region is in {partition}",
            "Use a region of the role's partition in AWS_DEFAULT_REGION, or the right role ARN.",
        )
    return RoleArn(value, match.group(1), match.group(2), match.group(3).rsplit("/", 1)[-1])


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _session_policy(value: str | None) -> str | None:
    """The policy as compact JSON. Deep nesting (RecursionError), numbers of thousands of digits
    and NaN/Infinity (which json accepts and AWS does not) are input errors like any bad JSON."""
    if not value:
        return None
    try:
        document = json.loads(value, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise _fail("AWS_ROLE_SESSION_POLICY", None, f"not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise _fail("AWS_ROLE_SESSION_POLICY", None, "not a policy (nested too deeply)") from None
    except ValueError as exc:
        raise _fail("AWS_ROLE_SESSION_POLICY", None, f"not JSON ({str(exc).split(':')[0]})") from None
    if not isinstance(document, dict) or "Statement" not in document:
        raise _fail("AWS_ROLE_SESSION_POLICY", None, "the JSON has no Statement")
    compact = json.dumps(document, separators=(",", ":"))
    if len(compact) > 2048:
        raise _fail("AWS_ROLE_SESSION_POLICY", None, f"{len(compact)} characters; AWS allows 2048")
    return compact


def _accounts(value: str | None) -> frozenset[str]:
    ids = [part for part in re.split(r"[\s,]+", value or "") if part]
    bad = [part for part in ids if not _ACCOUNT_ID.fullmatch(part)]
    if bad:
        raise _fail("ALLOWED_ACCOUNT_IDS", value, f"{shown(bad[0])} is not a 12-digit account id")
    return frozenset(ids)


def default_session_name(repo_slug: str | None, build_number: str | None, now: float) -> str:
    name = f"bitbucket-{repo_slug or 'local'}-{build_number or int(now)}"
    name = re.sub(r"[^\w+=,.@-]+", "-", name, flags=re.ASCII)
    return re.sub(r"-{2,}", "-", name)[:64]


def _endpoints(values: Mapping[str, str | None]) -> dict[str, str]:
    endpoints: dict[str, str] = {}
    for service, names in _ENDPOINT_VARIABLES.items():
        for name in names:
            url = values.get(name)
            if not url:
                continue
            _check_url(name, url)
            endpoints.setdefault(service, url)
    return endpoints


def _check_url(name: str, url: str) -> None:
    """An http(s) URL with a host, in printable ASCII (urlparse raises ValueError on a broken
    IPv6 host, and accepts spaces and Unicode digits in host names)."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise _fail(name, url)
    try:
        parsed = urlparse(url)
        host = parsed.hostname
    except ValueError:
        raise _fail(name, url) from None
    if parsed.scheme not in ("http", "https") or not host:
        raise _fail(name, url)


def _path(values: Mapping[str, str | None], name: str, default: Path, cwd: Path) -> Path:
    raw = values.get(name)
    if not raw:
        return default
    if "\0" in raw:
        raise _fail(name, raw)
    path = Path(raw)
    return path if path.is_absolute() else cwd / path


def canonical(path: Path, clone_dir: Path) -> Path:
    """Where a file or directory the pipe writes really is, with only the symlinks nobody in
    the repository controls resolved (pipe.files refuses any symlink left in a path):

    - inside the clone directory, the clone directory's own location is resolved (it may sit
      under a symlinked /tmp, for instance) and the part inside it is kept as written, so a
      committed `.bitbucket -> ../elsewhere` stays in the path and is refused;
    - outside it, the parent directories are resolved (they belong to the system, or to whoever
      set the variable) and only the last component is kept: it must not be a symlink.

    '.' and '..' are removed lexically first: nothing is followed to interpret them."""
    path = Path(os.path.normpath(path))
    clone = Path(os.path.normpath(clone_dir))
    if path == clone or clone in path.parents:
        return Path(os.path.realpath(clone)) / path.relative_to(clone)
    return Path(os.path.realpath(path.parent)) / path.name


def _check_route(values: Mapping[str, str]) -> tuple[Route, str, KeyPair | None]:
    """The check needs the role; the token's absence is one of its findings, not an input
    error; a fallback key, when given, is what it reads IAM with."""
    if not values.get("AWS_OIDC_ROLE_ARN"):
        raise InputError(
            "AWS_OIDC_ROLE_ARN",
            "AWS_OIDC_ROLE_ARN is required for ACTION=check",
            "Set AWS_OIDC_ROLE_ARN to the role this repository should assume.",
        )
    key_id, secret = values.get("AWS_ACCESS_KEY_ID"), values.get("AWS_SECRET_ACCESS_KEY")
    if bool(key_id) != bool(secret):
        missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
        raise InputError(missing, f"{missing} is missing", "Set both fallback key variables, or neither.")
    if key_id and not _ACCESS_KEY_ID.match(key_id):
        raise _fail("AWS_ACCESS_KEY_ID", key_id)
    return Route.OIDC, "", KeyPair(key_id, secret) if key_id and secret else None


def _route(values: Mapping[str, str | None], require_oidc: bool) -> tuple[Route, str, KeyPair | None]:
    key_id = values.get("AWS_ACCESS_KEY_ID")
    secret = values.get("AWS_SECRET_ACCESS_KEY")
    if bool(key_id) != bool(secret):
        missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
        raise InputError(missing, f"{missing} is missing", "Set both fallback key variables, or neither.")
    key = None
    if key_id and secret:
        if not _ACCESS_KEY_ID.match(key_id):
            raise _fail("AWS_ACCESS_KEY_ID", key_id)
        key = KeyPair(key_id, secret)
    token = values.get(oidc.TOKEN_VARIABLE)
    role = values.get("AWS_OIDC_ROLE_ARN")
    if token and role:
        return Route.OIDC, "", key

    no_token = "this step has no OIDC token"
    enable = "add `oidc: true` to the step"
    if require_oidc or not key:
        if role:
            raise InputError(
                oidc.TOKEN_VARIABLE,
                f"AWS_OIDC_ROLE_ARN is set but {no_token} (BITBUCKET_STEP_OIDC_TOKEN is empty)",
                "Add `oidc: true` to the step that runs the pipe.",
            )
        if token:
            raise InputError(
                "AWS_OIDC_ROLE_ARN",
                "AWS_OIDC_ROLE_ARN is required",
                "Set AWS_OIDC_ROLE_ARN to the ARN of the role this step should assume.",
            )
        fallback = "" if require_oidc else " (or, as a fallback, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        raise InputError(
            oidc.TOKEN_VARIABLE,
            f"No credentials: {no_token} (BITBUCKET_STEP_OIDC_TOKEN is empty) and AWS_OIDC_ROLE_ARN is not set",
            f"To use OIDC, {enable} and set AWS_OIDC_ROLE_ARN{fallback}.",
        )
    if role:
        warning = (
            f"AWS_OIDC_ROLE_ARN is set but {no_token}: using the fallback access key. To use OIDC, {enable}."
        )
    elif token:
        warning = "Using the fallback access key. To use OIDC, set AWS_OIDC_ROLE_ARN (the step already has `oidc: true`)."
    else:
        warning = (
            f"Using the long-lived fallback access key. To use OIDC, {enable} and set AWS_OIDC_ROLE_ARN."
        )
    return Route.ACCESS_KEY, warning + " REQUIRE_OIDC=true forbids this fallback.", key


def _slug(text: str) -> bool:
    """A workspace id or repository slug: never "." or "..", which quoted into an API path
    (/repositories/acme/..) would name another resource."""
    return bool(_SLUG.match(text)) and text.strip(".") != ""


def parse_target(text: str, variable: str = "TARGETS") -> TargetSpec:
    text = text.strip()
    prefix, _, rest = text.partition(":")
    if prefix in ("secretsmanager", "ssm", "profile") and rest:
        if prefix == "profile" and (not _PROFILE.match(rest) or rest == _NOT_A_PROFILE):
            raise _fail(variable, text, "a profile name has no spaces or brackets, and is not DEFAULT")
        if prefix in _STORE_NAME and not _STORE_NAME[prefix].match(rest):
            raise _fail(variable, text, f"not a valid {prefix} name")
        return TargetSpec(prefix, text, name=rest)
    if ":" in text:
        raise _fail(variable, text, f"unknown kind {shown(prefix)}")
    place, _, environment = text.partition("@")
    workspace, slash, repo = place.partition("/")
    if (
        not _slug(workspace)
        or (slash and not _slug(repo))
        or ("@" in text and not (repo and _ENVIRONMENT.match(environment)))
    ):
        raise _fail(variable, text)
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
                raise _fail(variable, value, "a YAML list of plain values, not of lists or mappings")
            return [str(item).strip() for item in loaded if item is not None and str(item).strip()]
    return [part for part in re.split(r"[\s,]+", stripped) if part]


def _rotation(values: Mapping[str, str], action: str, home: str) -> RotationSettings:
    rotate_after = _int(values, "ROTATE_AFTER_DAYS", 1, 3650)
    deactivate_after = _int(values, "DEACTIVATE_AFTER_DAYS", 1, 3650)
    delete_after = _int(values, "DELETE_AFTER_DAYS", 1, 3650)
    if not rotate_after < deactivate_after:
        raise _fail(
            "DEACTIVATE_AFTER_DAYS",
            values.get("DEACTIVATE_AFTER_DAYS"),
            f"not more than ROTATE_AFTER_DAYS ({rotate_after})",
        )
    if not deactivate_after < delete_after:
        raise _fail(
            "DELETE_AFTER_DAYS",
            values.get("DELETE_AFTER_DAYS"),
            f"not more than DEACTIVATE_AFTER_DAYS ({deactivate_after})",
        )
    user = values.get("IAM_USER_NAME")
    if user and not _IAM_USER.match(user):
        raise _fail("IAM_USER_NAME", user)
    text = values.get("TARGETS")
    if text:
        targets = tuple(parse_target(t) for t in split_list(text))
    elif values.get("BITBUCKET_WORKSPACE") and values.get("BITBUCKET_REPO_SLUG"):
        targets = (parse_target(f"{values['BITBUCKET_WORKSPACE']}/{values['BITBUCKET_REPO_SLUG']}"),)
    else:
        raise InputError(
            "TARGETS", "TARGETS is required outside a Bitbucket step", "Set TARGETS, for example acme/shop."
        )
    if len({t.text for t in targets}) != len(targets):
        raise _fail("TARGETS", text, "a target is listed twice")
    source = None
    if action == "sync":
        if not values.get("SOURCE"):
            raise InputError(
                "SOURCE",
                "SOURCE is required for ACTION=sync",
                "Set SOURCE to secretsmanager:<id> or ssm:<name>.",
            )
        source = parse_target(values["SOURCE"], "SOURCE")
        if not source.is_store:
            raise _fail("SOURCE", values["SOURCE"])
    store_choice, no_store = None, False
    store_text = values.get("STORE")
    if store_text and action == "rotate":
        if store_text.lower() == "none":
            no_store = True
        else:
            store_choice = parse_target(store_text, "STORE")
            if not store_choice.is_store:
                raise _fail("STORE", store_text)
    id_variable = values.get("ACCESS_KEY_ID_VARIABLE") or "AWS_ACCESS_KEY_ID"
    secret_variable = values.get("SECRET_ACCESS_KEY_VARIABLE") or "AWS_SECRET_ACCESS_KEY"
    if id_variable == secret_variable:
        raise _fail("SECRET_ACCESS_KEY_VARIABLE", secret_variable, "the same name as ACCESS_KEY_ID_VARIABLE")
    auth = {name: values[name] for name in _BITBUCKET_AUTH if values.get(name)}
    if any(t.is_bitbucket for t in targets):
        pairs = (
            ("ATLASSIAN_ACCOUNT_EMAIL", "ATLASSIAN_API_TOKEN"),
            ("BITBUCKET_USERNAME", "BITBUCKET_APP_PASSWORD"),
        )
        for first, second in pairs:
            if bool(auth.get(first)) != bool(auth.get(second)):
                missing = second if auth.get(first) else first
                raise InputError(missing, f"{missing} is missing", f"Set both {first} and {second}.")
        if not auth:
            raise InputError(
                "BITBUCKET_ACCESS_TOKEN",
                "Bitbucket targets need Bitbucket API access: BITBUCKET_ACCESS_TOKEN is not set",
                "Set BITBUCKET_ACCESS_TOKEN (scopes pipeline and pipeline:variable), or ATLASSIAN_ACCOUNT_EMAIL "
                "and ATLASSIAN_API_TOKEN (scopes read:pipeline:bitbucket and admin:pipeline:bitbucket).",
            )
    credentials_file = values.get("AWS_SHARED_CREDENTIALS_FILE") or str(
        Path(home or "~") / ".aws" / "credentials"
    )
    return RotationSettings(
        user_name=user,
        targets=targets,
        source=source,
        id_variable=id_variable,
        secret_variable=secret_variable,
        rotate_after=rotate_after,
        deactivate_after=deactivate_after,
        delete_after=delete_after,
        force=_bool(values, "FORCE_ROTATE"),
        verify_timeout=_int(values, "VERIFY_TIMEOUT_SECONDS", 5, 900),
        lease_seconds=_int(values, "ROTATION_LEASE_SECONDS", MIN_LEASE_SECONDS, 3600),
        concurrency=_int(values, "PUBLISH_CONCURRENCY", 1, 32),
        credentials_file=Path(credentials_file).expanduser(),
        store_choice=store_choice,
        no_store=no_store,
        grace_days=_int(values, "ROTATION_GRACE_DAYS", 1, 365),
        keep_old_key=_bool(values, "KEEP_OLD_KEY"),
    )


_BITBUCKET_AUTH = (
    "BITBUCKET_ACCESS_TOKEN",
    "ATLASSIAN_ACCOUNT_EMAIL",
    "ATLASSIAN_API_TOKEN",
    "BITBUCKET_USERNAME",
    "BITBUCKET_APP_PASSWORD",
)


def load(raw_values: Mapping[str, str | None], *, cwd: Path, now: float) -> Settings:
    """Build Settings from the variables (unset ones absent or None). Raises InputError.

    Empty values count as unset (Pipelines passes an undefined $VARIABLE as ""); values are
    stripped, except the session policy, whose JSON may span lines.
    """
    values: dict[str, str] = {
        name: (value if name == "AWS_ROLE_SESSION_POLICY" else value.strip())
        for name, value in raw_values.items()
        if value and value.strip()
    }
    for name, value in values.items():
        if name not in BY_NAME:
            continue
        if len(value) > MAX_VALUE:
            raise _fail(name, None, f"{len(value)} characters; the pipe takes at most {MAX_VALUE}")
        if "\0" in value:
            raise _fail(name, None, "it holds a NUL character")

    action = (values.get("ACTION") or "assume").lower()
    if not action.isascii() or action not in ACTIONS:
        raise _fail("ACTION", values.get("ACTION"))
    if action not in IMPLEMENTED_ACTIONS:
        raise InputError(
            "ACTION",
            f"ACTION={action} is not available in this release of the pipe",
            "Use ACTION=assume, or a release that lists it in its CHANGELOG.",
        )
    debug = _bool(values, "DEBUG")
    dry_run = _bool(values, "DRY_RUN")
    require_oidc = _bool(values, "REQUIRE_OIDC")
    duration = _int(values, "AWS_ROLE_DURATION_SECONDS", 900, 43200)
    retry_timeout = _int(values, "RETRY_TIMEOUT_SECONDS", 0, 900)
    region = _region(values)
    partition = partition_of(region)
    allowed = _accounts(values.get("ALLOWED_ACCOUNT_IDS"))
    policy = _session_policy(values.get("AWS_ROLE_SESSION_POLICY"))
    endpoints = _endpoints(values)

    profile = values.get("AWS_PROFILE_NAME") or "default"
    if not _PROFILE.match(profile) or profile == _NOT_A_PROFILE:
        raise _fail("AWS_PROFILE_NAME", profile)

    given_name = values.get("AWS_ROLE_SESSION_NAME")
    if given_name is not None and not _SESSION_NAME.match(given_name):
        raise _fail("AWS_ROLE_SESSION_NAME", given_name)
    session_name = given_name or default_session_name(
        values.get("BITBUCKET_REPO_SLUG"), values.get("BITBUCKET_BUILD_NUMBER"), now
    )

    clone_dir, credentials_dir, report_dir = _places(values, action, cwd)

    rotation = _rotation(values, action, values.get("HOME", "")) if action in ("rotate", "sync") else None
    if rotation is not None:
        rotation = _profiles_file(rotation, cwd, clone_dir)
    if action == "check":
        route, warning, key = _check_route(values)
    else:
        route, warning, key = _route(values, require_oidc)
    if action == "rotate" and route is Route.OIDC and rotation and not rotation.user_name:
        raise InputError(
            "IAM_USER_NAME",
            "IAM_USER_NAME is required when the pipe rotates as a role",
            "Set IAM_USER_NAME to the user whose key is rotated (it defaults to the key's own user only "
            "when the pipe runs with that key).",
        )
    role = claims = token = None
    if route is Route.OIDC:
        role = _role(values["AWS_OIDC_ROLE_ARN"], partition)
        if allowed and role.account not in allowed:
            raise InputError(
                "ALLOWED_ACCOUNT_IDS",
                f"AWS_OIDC_ROLE_ARN is in account {role.account}, which ALLOWED_ACCOUNT_IDS does not list",
                "Use a role in an allowed account, or add the account to ALLOWED_ACCOUNT_IDS.",
            )
        token = _token(values)
        claims = oidc.decode(token) if token else None

    return Settings(
        action=action,
        region=region,
        partition=partition,
        route=route,
        route_warning=warning,
        role=role,
        claims=claims,
        token=token,
        access_key=key,
        session_name=session_name,
        duration_seconds=duration,
        session_policy=policy,
        allowed_accounts=allowed,
        profile_name=profile,
        credentials_dir=credentials_dir,
        report_dir=report_dir,
        clone_dir=clone_dir,
        dry_run=dry_run,
        debug=debug,
        retry_timeout=retry_timeout,
        endpoints=endpoints,
        rotation=rotation,
        bitbucket_url=_bitbucket_url(values),
        trust_policy_file=_trust_policy_file(values, cwd),
        bitbucket_auth={name: values[name] for name in _BITBUCKET_AUTH if values.get(name)},
        workspace=values.get("BITBUCKET_WORKSPACE", ""),
        repo_slug=values.get("BITBUCKET_REPO_SLUG", ""),
        legacy_idle_days=_int(values, "LEGACY_IDLE_DAYS", 1, 365),
        retire_legacy_keys=_bool(values, "RETIRE_LEGACY_KEYS"),
        commit=values.get("BITBUCKET_COMMIT", ""),
        auth_proxy_host=_host(values, "BITBUCKET_AUTH_PROXY_HOST"),
    )


def _places(values: Mapping[str, str], action: str, cwd: Path) -> tuple[Path, Path, Path]:
    """The clone directory, CREDENTIALS_DIR and REPORT_DIR. The two the pipe writes are made
    canonical (see ``canonical``), and REPORT_DIR is checked for symlinks before anything calls
    AWS (assume checks CREDENTIALS_DIR itself: handoff.preflight)."""
    clone_dir = cwd / (values.get("BITBUCKET_CLONE_DIR") or cwd)
    shared = values.get("BITBUCKET_PIPE_SHARED_STORAGE_DIR")
    shared_dir = Path(shared) if shared else clone_dir / SHARED_STORAGE_SUFFIX
    credentials_dir = _path(values, "CREDENTIALS_DIR", shared_dir / CREDENTIALS_SUBDIR, cwd)
    report_dir = _path(values, "REPORT_DIR", clone_dir / REPORTS_SUBDIR, cwd)
    credentials_dir = canonical(cwd / credentials_dir, clone_dir)
    report_dir = canonical(cwd / report_dir, clone_dir)
    if action != "assume":
        files.preflight(report_dir, "REPORT_DIR", REPORT_FILES)
    return clone_dir, credentials_dir, report_dir


def _profiles_file(rotation: RotationSettings, cwd: Path, clone_dir: Path) -> RotationSettings:
    """The shared credentials file of profile: targets, canonical, checked for symlinks."""
    path = canonical(cwd / rotation.credentials_file, clone_dir)
    if any(t.kind == "profile" for t in rotation.targets):
        files.preflight(path.parent, "AWS_SHARED_CREDENTIALS_FILE", (path.name,))
    return dataclasses.replace(rotation, credentials_file=path)


def _token(values: Mapping[str, str]) -> str | None:
    token = values.get(oidc.TOKEN_VARIABLE)
    if token and not token.isascii():  # undecodable bytes would stop the JWT library
        raise InputError(
            oidc.TOKEN_VARIABLE,
            "BITBUCKET_STEP_OIDC_TOKEN is not a JWT (it holds characters a JWT never has)",
            "Run the pipe in a step with `oidc: true`, and do not set BITBUCKET_STEP_OIDC_TOKEN yourself.",
        )
    return token


def _trust_policy_file(values: Mapping[str, str], cwd: Path) -> Path | None:
    if not values.get("TRUST_POLICY_FILE"):
        return None
    path = _path(values, "TRUST_POLICY_FILE", Path(), cwd)
    try:
        found = path.is_file()
    except OSError as exc:  # a name too long, a loop of symlinks...
        raise _fail("TRUST_POLICY_FILE", values["TRUST_POLICY_FILE"], exc.strerror or "") from None
    if not found:
        raise _fail("TRUST_POLICY_FILE", values["TRUST_POLICY_FILE"], "no such file in the repository")
    return path


def _host(values: Mapping[str, str], name: str) -> str:
    host = values.get(name) or BY_NAME[name].default
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host):
        raise _fail(name, host)
    return host


def _bitbucket_url(values: Mapping[str, str]) -> str:
    url = values.get("BITBUCKET_API_URL") or "https://api.bitbucket.org/2.0"
    _check_url("BITBUCKET_API_URL", url)
    from pipe.bitbucket import check_api_url  # requests is loaded at start-up by the toolkit anyway

    if problem := check_api_url(url):
        raise _fail("BITBUCKET_API_URL", url, problem)
    return url.rstrip("/")
