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
    PROXY_NAMES,
    REPORTS_SUBDIR,
    SHARED_STORAGE_SUFFIX,
    default,
    invalid,
)
from pipe.sts import Hop, RoleArn

if TYPE_CHECKING:
    from pipe.config.audit import AuditSettings
    from pipe.config.check import CheckSettings
    from pipe.config.rotation import RotationSettings
    from pipe.network import Network

REPORT_FILES = (
    "rotation.json",
    "oidc-check.json",
    "oidc-check.md",
    "audit.json",
    "audit.md",
    "migration.json",
    "migration.md",
)


@dataclass(frozen=True)
class Settings:
    """Everything a run was given, validated: what the actions read."""

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
    # The assume block (issue 11).
    hops: tuple[Hop, ...] = ()  # sts:AssumeRole after the first credentials, in order
    session_policy_arns: tuple[str, ...] = ()
    credentials_mode: str = "session"  # or "web-identity"
    mask_account_id: bool = False
    network: Network | None = None  # proxies and CA bundle; None: the SDKs' defaults
    warnings: tuple[str, ...] = ()  # printed before the action runs

    @property
    def final_role(self) -> RoleArn | None:
        """The role whose session is handed on (None: the fallback key itself)."""
        return self.hops[-1].role if self.hops else self.role

    audit: AuditSettings | None = None  # audit

    def secrets(self) -> tuple[str, ...]:
        values = [self.token]
        if self.access_key:
            values.extend(self.access_key.secrets())
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
    check_settings = check.load(values, cwd)
    if action == "check" and check_settings.scope == "repository":
        chosen, warning, key = route.for_check(values)
    else:
        chosen, warning, key = route.choose(values, require_oidc, temporary=action == "assume")
    if action == "rotate" and chosen is Route.OIDC and rotation and not rotation.user_name:
        raise InputError(
            "IAM_USER_NAME",
            "IAM_USER_NAME is required when the pipe rotates as a role",
            "Set IAM_USER_NAME to the user whose key is rotated (it defaults to the key's own user only "
            "when the pipe runs with that key).",
        )
    role, claims, token = _oidc(values, chosen, partition)
    hops = route.hops(values, chosen, partition, assume=action == "assume")
    _allowed(allowed, hops[-1] if hops else None, role)
    arns = fields.policy_arns(values, partition)
    mode = fields.credentials_mode(values)
    notes = _ignored(values, action) + fields.endpoint_warnings(values)
    mode, more = _mode_notes(mode, action, chosen=chosen, hops=hops, policy=policy, arns=arns)
    notes += more
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
        check=check_settings,
        rotation=rotation,
        hops=hops,
        session_policy_arns=arns,
        credentials_mode=mode,
        mask_account_id=fields.boolean(values, "MASK_ACCOUNT_ID"),
        network=_network(values, cwd),
        warnings=tuple(notes),
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
    values: Mapping[str, str], chosen: Route, partition: str
) -> tuple[RoleArn | None, oidc.TokenClaims | None, str | None]:
    """The role, the token's claims and the token, on the OIDC route (the role is None only
    for ACTION=check's first run, before there is one)."""
    if chosen is not Route.OIDC:
        return None, None, None
    arn = values.get("AWS_OIDC_ROLE_ARN")
    role = fields.role(arn, partition) if arn else None
    token = fields.token(values)
    return role, (oidc.decode(token) if token else None), token


def _allowed(allowed: frozenset[str], last: Hop | None, role: RoleArn | None) -> None:
    """The role whose session is handed on (the last hop's, else AWS_OIDC_ROLE_ARN) must be in
    an allowed account: checked before any call, and the identity again after GetCallerIdentity."""
    variable, final = (last.variable, last.role) if last else ("AWS_OIDC_ROLE_ARN", role)
    if allowed and final and final.account not in allowed:
        raise InputError(
            "ALLOWED_ACCOUNT_IDS",
            f"{variable} is in account {final.account}, which ALLOWED_ACCOUNT_IDS does not list",
            "Use a role in an allowed account, or add the account to ALLOWED_ACCOUNT_IDS.",
        )


def _ignored(values: Mapping[str, str], action: str) -> list[str]:
    """A warning naming the pipe's variables that are set but that this action does not read."""
    names = [
        name
        for name in values
        if name in BY_NAME and BY_NAME[name].user and action not in BY_NAME[name].actions
    ]
    if not names:
        return []
    verb = "is" if len(names) == 1 else "are"
    return [f"{', '.join(names)} {verb} not read by ACTION={action}: ignored."]


def _mode_notes(
    mode: str,
    action: str,
    *,
    chosen: Route,
    hops: tuple[Hop, ...],
    policy: str | None,
    arns: tuple[str, ...],
) -> tuple[str, list[str]]:
    """CREDENTIALS_MODE as this run can honour it, and what to say about the session policies.
    The SDK's profile cannot carry a session policy: with web-identity, the sessions the SDK
    makes itself would have the role's whole permissions, so the two are refused together."""
    notes: list[str] = []
    if action != "assume":
        return "session", notes
    if mode == "web-identity" and chosen is not Route.OIDC:
        notes.append(
            "CREDENTIALS_MODE=web-identity needs the step's OIDC token; this step uses the fallback key, "
            "so it hands on a session. To use OIDC, add `oidc: true` to the step."
        )
        mode = "session"
    if mode == "web-identity" and (policy or arns):
        name = "AWS_ROLE_SESSION_POLICY" if policy else "AWS_ROLE_SESSION_POLICY_ARNS"
        raise InputError(
            "CREDENTIALS_MODE",
            f"CREDENTIALS_MODE=web-identity cannot narrow the SDK's own sessions with {name}: "
            "the AWS SDKs' profiles have no setting for session policies",
            f"Remove {name}, or use CREDENTIALS_MODE=session.",
        )
    if chosen is Route.ACCESS_KEY and not hops and (policy or arns):
        notes.append(
            "AWS_ROLE_SESSION_POLICY and AWS_ROLE_SESSION_POLICY_ARNS narrow a role's session: they have no "
            "effect on the fallback key itself (set AWS_ROLE_ARN_FOR_KEYS to assume a role with it)."
        )
    return mode, notes


def _network(values: Mapping[str, str], cwd: Path) -> Network | None:
    """Proxies and the CA bundle, parsed only when one is set (start-up time of `assume`)."""
    if not any(values.get(name) for name in (*PROXY_NAMES, "AWS_CA_BUNDLE")):
        return None
    from pipe.config import network

    return network.load(values, cwd)


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
