"""Typed, validated settings built from the pipe's variables. Pure: no environment, no I/O
except looking at paths. Every problem becomes an InputError naming its variable, before
anything calls AWS."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from urllib.parse import urlparse

from pipe import oidc
from pipe.errors import InputError
from pipe.schema import ACTIONS, BY_NAME, IMPLEMENTED_ACTIONS

SHARED_STORAGE_SUFFIX = Path(".bitbucket/pipelines/generated/pipeline/pipes")
CREDENTIALS_SUBDIR = "aws-credentials"
REPORTS_SUBDIR = "aws-credentials-reports"

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_ROLE_ARN = re.compile(
    r"^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-[a-z]):iam::(\d{12}):role/([\w+=,.@/-]{1,512})$"
)
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_ACCESS_KEY_ID = re.compile(r"^AKIA[A-Z0-9]{16}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_PROFILE = re.compile(r"^[\w+=,.@-]{1,64}$")
_ENDPOINT_VARIABLES = {
    "sts": ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"),
    "iam": ("AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL"),
    "secretsmanager": ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"),
    "ssm": ("AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"),
}
_SLUG = re.compile(r"^[A-Za-z0-9_.~-]+$")
_IAM_USER = re.compile(r"^[\w+=,.@-]{1,64}$")
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
    var = BY_NAME[name]
    shown = "" if value is None or var.secret else f" (got {value!r})"
    message = f"{name} must be {var.expects}{shown}" if var.expects else f"{name} is not valid{shown}"
    return InputError(
        name, message + (f": {extra}" if extra else ""), f"Change {name} in the pipe's variables."
    )


def _bool(values: Mapping[str, str | None], name: str) -> bool:
    value = (values.get(name) or BY_NAME[name].default).strip().lower()
    if value not in ("true", "false"):
        raise _fail(name, value)
    return value == "true"


def _int(values: Mapping[str, str | None], name: str, low: int, high: int) -> int:
    raw = values.get(name)
    text = (raw or BY_NAME[name].default).strip()
    if not text.isdigit() or not low <= int(text) <= high:
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
            f"AWS_DEFAULT_REGION ({default}) and AWS_REGION ({other}) disagree",
            "Set one of them, or set both to the same region.",
        )
    region = default or other
    if not region:
        raise InputError(
            "AWS_DEFAULT_REGION",
            "AWS_DEFAULT_REGION is required",
            "Set AWS_DEFAULT_REGION (for example eu-west-1) in the pipe's variables.",
        )
    if not _REGION.match(region):
        raise _fail("AWS_DEFAULT_REGION" if default else "AWS_REGION", region)
    return region


def _role(value: str, partition: str) -> RoleArn:
    match = _ROLE_ARN.match(value)
    if not match:
        raise _fail("AWS_OIDC_ROLE_ARN", value)
    if match.group(1) != partition:
        raise InputError(
            "AWS_OIDC_ROLE_ARN",
            f"AWS_OIDC_ROLE_ARN is in partition {match.group(1)} but the region is in {partition}",
            "Use a region of the role's partition in AWS_DEFAULT_REGION, or the right role ARN.",
        )
    return RoleArn(value, match.group(1), match.group(2), match.group(3).rsplit("/", 1)[-1])


def _session_policy(value: str | None) -> str | None:
    if not value:
        return None
    try:
        document = json.loads(value)
    except json.JSONDecodeError as exc:
        raise _fail("AWS_ROLE_SESSION_POLICY", None, f"not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(document, dict) or "Statement" not in document:
        raise _fail("AWS_ROLE_SESSION_POLICY", None, "the JSON has no Statement")
    compact = json.dumps(document, separators=(",", ":"))
    if len(compact) > 2048:
        raise _fail("AWS_ROLE_SESSION_POLICY", None, f"{len(compact)} characters; AWS allows 2048")
    return compact


def _accounts(value: str | None) -> frozenset[str]:
    ids = [part for part in re.split(r"[\s,]+", value or "") if part]
    bad = [part for part in ids if not _ACCOUNT_ID.match(part)]
    if bad:
        raise _fail("ALLOWED_ACCOUNT_IDS", value, f"{', '.join(bad)} is not a 12-digit account id")
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
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise _fail(name, url)
            endpoints.setdefault(service, url)
    return endpoints


def _path(values: Mapping[str, str | None], name: str, default: Path, cwd: Path) -> Path:
    raw = values.get(name)
    if not raw:
        return default
    if "\0" in raw:
        raise _fail(name, raw)
    path = Path(raw)
    return path if path.is_absolute() else cwd / path


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


def parse_target(text: str, variable: str = "TARGETS") -> TargetSpec:
    text = text.strip()
    prefix, _, rest = text.partition(":")
    if prefix in ("secretsmanager", "ssm", "profile") and rest:
        if prefix == "profile" and not _PROFILE.match(rest):
            raise _fail(variable, text, "a profile name has no spaces or brackets")
        return TargetSpec(prefix, text, name=rest)
    if ":" in text:
        raise _fail(variable, text, f"unknown kind {prefix!r}")
    place, _, environment = text.partition("@")
    workspace, _, repo = place.partition("/")
    if (
        not _SLUG.match(workspace)
        or (repo and not _SLUG.match(repo))
        or ("@" in text and not (repo and environment))
    ):
        raise _fail(variable, text)
    if environment:
        return TargetSpec("deployment", text, workspace, repo, environment)
    return TargetSpec("repository" if repo else "workspace", text, workspace, repo)


def split_list(value: str) -> list[str]:
    """Comma or space separated, or a YAML list (``[a, b]`` or ``- a`` lines)."""
    stripped = value.strip()
    if stripped.startswith(("[", "- ")):
        import yaml

        try:
            loaded = yaml.safe_load(stripped)
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, list):
            return [str(item).strip() for item in loaded if str(item).strip()]
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

    action = (values.get("ACTION") or "assume").lower()
    if action not in ACTIONS:
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
    if not _PROFILE.match(profile):
        raise _fail("AWS_PROFILE_NAME", profile)

    given_name = values.get("AWS_ROLE_SESSION_NAME")
    if given_name is not None and not _SESSION_NAME.match(given_name):
        raise _fail("AWS_ROLE_SESSION_NAME", given_name)
    session_name = given_name or default_session_name(
        values.get("BITBUCKET_REPO_SLUG"), values.get("BITBUCKET_BUILD_NUMBER"), now
    )

    clone_dir = Path(values.get("BITBUCKET_CLONE_DIR") or cwd)
    shared = values.get("BITBUCKET_PIPE_SHARED_STORAGE_DIR")
    shared_dir = Path(shared) if shared else clone_dir / SHARED_STORAGE_SUFFIX
    credentials_dir = _path(values, "CREDENTIALS_DIR", shared_dir / CREDENTIALS_SUBDIR, cwd)
    report_dir = _path(values, "REPORT_DIR", clone_dir / REPORTS_SUBDIR, cwd)

    rotation = _rotation(values, action, values.get("HOME", "")) if action in ("rotate", "sync") else None
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
        token = values.get(oidc.TOKEN_VARIABLE)
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


def _trust_policy_file(values: Mapping[str, str], cwd: Path) -> Path | None:
    if not values.get("TRUST_POLICY_FILE"):
        return None
    path = _path(values, "TRUST_POLICY_FILE", Path(), cwd)
    if not path.is_file():
        raise _fail("TRUST_POLICY_FILE", values["TRUST_POLICY_FILE"], "no such file in the repository")
    return path


def _host(values: Mapping[str, str], name: str) -> str:
    host = values.get(name) or BY_NAME[name].default
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host):
        raise _fail(name, host)
    return host


def _bitbucket_url(values: Mapping[str, str]) -> str:
    url = values.get("BITBUCKET_API_URL") or "https://api.bitbucket.org/2.0"
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise _fail("BITBUCKET_API_URL", url)
    return url.rstrip("/")
