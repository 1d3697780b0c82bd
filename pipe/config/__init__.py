"""Typed, validated settings built from the pipe's variables: parsing and validation only.
Pure: no environment, no I/O except looking at paths. Every problem becomes an InputError naming
its variable, before anything calls AWS.

The field validators are in ``fields``, the credential route in ``route``, the per-action parts
in ``check`` and ``rotation``; the domain types come from their owners (role ARNs from
``pipe.sts``, credentials from ``pipe.credentials``, the target grammar from ``pipe.targets``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipe import files, oidc
from pipe.config import check, fields, route
from pipe.credentials import Credentials, Route
from pipe.errors import InputError
from pipe.schema import (
    ACTIONS,
    BITBUCKET_AUTH,
    BY_NAME,
    CREDENTIALS_SUBDIR,
    IMPLEMENTED_ACTIONS,
    REPORTS_SUBDIR,
    SHARED_STORAGE_SUFFIX,
    default,
    invalid,
)
from pipe.sts import RoleArn

if TYPE_CHECKING:
    from pipe.config.audit import AuditSettings
    from pipe.config.check import CheckSettings
    from pipe.config.rotation import RotationSettings

REPORT_FILES = ("rotation.json", "oidc-check.json", "oidc-check.md", "audit.json", "audit.md")


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
    access_key: Credentials | None  # the fallback key (a long-lived key: no session token)
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
    bitbucket_url: str
    bitbucket_auth: Mapping[str, str] = field(repr=False)
    workspace: str
    repo_slug: str
    check: CheckSettings
    rotation: RotationSettings | None  # rotate and sync
    audit: AuditSettings | None = None  # audit

    def secrets(self) -> tuple[str, ...]:
        values = [self.token]
        if self.access_key:
            values.append(self.access_key.secret_access_key)
        values.extend(self.bitbucket_auth.values())
        return tuple(v for v in values if v)


def _normalised(raw_values: Mapping[str, str | None]) -> dict[str, str]:
    """Empty values count as unset (Pipelines passes an undefined $VARIABLE as ""); values are
    stripped, except the session policy, whose JSON may span lines. No value of the pipe's is
    longer than MAX_VALUE or holds a NUL."""
    values: dict[str, str] = {
        name: (value if name == "AWS_ROLE_SESSION_POLICY" else value.strip())
        for name, value in raw_values.items()
        if value and value.strip()
    }
    for name, value in values.items():
        if name not in BY_NAME:
            continue
        if len(value) > fields.MAX_VALUE:
            raise invalid(name, None, f"{len(value)} characters; the pipe takes at most {fields.MAX_VALUE}")
        if "\0" in value:
            raise invalid(name, None, "it holds a NUL character")
    return values


def _action(values: Mapping[str, str]) -> str:
    action = (values.get("ACTION") or default("ACTION")).lower()
    if not action.isascii() or action not in ACTIONS:
        raise invalid("ACTION", values.get("ACTION"))
    if action not in IMPLEMENTED_ACTIONS:
        raise InputError(
            "ACTION",
            f"ACTION={action} is not available in this release of the pipe",
            "Use ACTION=assume, or a release that lists it in its CHANGELOG.",
        )
    return action


def load(raw_values: Mapping[str, str | None], *, cwd: Path, now: float) -> Settings:
    """Build Settings from the variables (unset ones absent or None). Raises InputError."""
    values = _normalised(raw_values)
    action = _action(values)
    debug = fields.boolean(values, "DEBUG")
    dry_run = fields.boolean(values, "DRY_RUN")
    require_oidc = fields.boolean(values, "REQUIRE_OIDC")
    duration = fields.integer(values, "AWS_ROLE_DURATION_SECONDS", 900, 43200)
    retry_timeout = fields.integer(values, "RETRY_TIMEOUT_SECONDS", 0, 900)
    region = fields.region(values)
    partition = fields.partition_of(region)
    allowed = fields.accounts(values.get("ALLOWED_ACCOUNT_IDS"))
    policy = fields.session_policy(values.get("AWS_ROLE_SESSION_POLICY"))
    endpoints = fields.endpoints(values)
    profile = fields.profile_name(values)
    session_name = fields.session_name(values, now)
    clone_dir, credentials_dir, report_dir = _places(values, action, cwd)
    rotation = _rotation(values, action, cwd, clone_dir)
    if action == "check":
        chosen, warning, key = route.for_check(values)
    else:
        chosen, warning, key = route.choose(values, require_oidc)
    if action == "rotate" and chosen is Route.OIDC and rotation and not rotation.user_name:
        raise InputError(
            "IAM_USER_NAME",
            "IAM_USER_NAME is required when the pipe rotates as a role",
            "Set IAM_USER_NAME to the user whose key is rotated (it defaults to the key's own user only "
            "when the pipe runs with that key).",
        )
    role, claims, token = _oidc(values, chosen, partition, allowed)
    return Settings(
        action=action,
        region=region,
        partition=partition,
        route=chosen,
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
        bitbucket_url=fields.bitbucket_url(values),
        bitbucket_auth={name: values[name] for name in BITBUCKET_AUTH if values.get(name)},
        workspace=values.get("BITBUCKET_WORKSPACE", ""),
        repo_slug=values.get("BITBUCKET_REPO_SLUG", ""),
        check=check.load(values, cwd),
        rotation=rotation,
        audit=_audit(values, action),
    )


def _rotation(values: Mapping[str, str], action: str, cwd: Path, clone_dir: Path) -> RotationSettings | None:
    """The rotate/sync part, imported only for those actions (start-up time of `assume`)."""
    if action not in ("rotate", "sync"):
        return None
    from pipe.config import rotation

    return rotation.load(values, action, cwd=cwd, clone_dir=clone_dir)


def _audit(values: Mapping[str, str], action: str) -> AuditSettings | None:
    """The audit part, imported only for that action."""
    if action != "audit":
        return None
    from pipe.config import audit

    return audit.load(values)


def _oidc(
    values: Mapping[str, str], chosen: Route, partition: str, allowed: frozenset[str]
) -> tuple[RoleArn | None, oidc.TokenClaims | None, str | None]:
    """The role, the token's claims and the token, on the OIDC route."""
    if chosen is not Route.OIDC:
        return None, None, None
    role = fields.role(values["AWS_OIDC_ROLE_ARN"], partition)
    if allowed and role.account not in allowed:
        raise InputError(
            "ALLOWED_ACCOUNT_IDS",
            f"AWS_OIDC_ROLE_ARN is in account {role.account}, which ALLOWED_ACCOUNT_IDS does not list",
            "Use a role in an allowed account, or add the account to ALLOWED_ACCOUNT_IDS.",
        )
    token = fields.token(values)
    return role, (oidc.decode(token) if token else None), token


def _places(values: Mapping[str, str], action: str, cwd: Path) -> tuple[Path, Path, Path]:
    """The clone directory, CREDENTIALS_DIR and REPORT_DIR. The two the pipe writes are made
    canonical (see ``fields.canonical``), and REPORT_DIR is checked for symlinks before anything
    calls AWS (assume checks CREDENTIALS_DIR itself: handoff.preflight)."""
    clone_dir = cwd / (values.get("BITBUCKET_CLONE_DIR") or cwd)
    shared = values.get("BITBUCKET_PIPE_SHARED_STORAGE_DIR")
    shared_dir = Path(shared) if shared else clone_dir / SHARED_STORAGE_SUFFIX
    credentials_dir = fields.path(values, "CREDENTIALS_DIR", shared_dir / CREDENTIALS_SUBDIR, cwd)
    report_dir = fields.path(values, "REPORT_DIR", clone_dir / REPORTS_SUBDIR, cwd)
    credentials_dir = fields.canonical(cwd / credentials_dir, clone_dir)
    report_dir = fields.canonical(cwd / report_dir, clone_dir)
    if action in BY_NAME["REPORT_DIR"].actions:  # assume writes no report
        files.preflight(report_dir, "REPORT_DIR", REPORT_FILES)
    return clone_dir, credentials_dir, report_dir
