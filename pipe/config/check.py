"""The settings of ACTION=check: the trust policy file, legacy keys, and where and whether the
Code Insights report is posted. Read (and validated) whatever the action, like every variable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipe.config.fields import boolean, host, integer, path
from pipe.errors import InputError
from pipe.schema import BITBUCKET_AUTH, default, invalid

# CHECK_SCOPE=workspace: the repositories read at once (and the Bitbucket client's connections).
WORKSPACE_CONCURRENCY = 24
SCOPES = ("repository", "workspace")


@dataclass(frozen=True)
class CheckSettings:
    """The check's own settings (ACTION=check)."""

    trust_policy_file: Path | None
    legacy_idle_days: int
    retire_legacy_keys: bool
    commit: str  # BITBUCKET_COMMIT: the commit the Code Insights report is posted on
    ci: bool  # CI=true: in a Pipelines step, where the auth proxy answers
    auth_proxy_host: str
    scope: str = "repository"  # CHECK_SCOPE: repository | workspace
    concurrency: int = WORKSPACE_CONCURRENCY


def load(values: Mapping[str, str], cwd: Path) -> CheckSettings:
    return CheckSettings(
        trust_policy_file=_trust_policy_file(values, cwd),
        legacy_idle_days=integer(values, "LEGACY_IDLE_DAYS", 1, 365),
        retire_legacy_keys=boolean(values, "RETIRE_LEGACY_KEYS"),
        commit=values.get("BITBUCKET_COMMIT", ""),
        ci=values.get("CI", "").lower() == "true",
        auth_proxy_host=host(values, "BITBUCKET_AUTH_PROXY_HOST"),
        scope=_scope(values),
    )


def _scope(values: Mapping[str, str]) -> str:
    """CHECK_SCOPE; ``workspace`` needs the workspace and Bitbucket credentials, checked here,
    before anything calls AWS or Bitbucket."""
    scope = (values.get("CHECK_SCOPE") or default("CHECK_SCOPE")).lower()
    if scope not in SCOPES:
        raise invalid("CHECK_SCOPE", values.get("CHECK_SCOPE"))
    if scope != "workspace" or (values.get("ACTION") or "").lower() != "check":
        return scope
    if not values.get("BITBUCKET_WORKSPACE"):
        raise InputError(
            "BITBUCKET_WORKSPACE",
            "CHECK_SCOPE=workspace needs BITBUCKET_WORKSPACE (Pipelines sets it)",
            "Run the step in Bitbucket Pipelines, or set BITBUCKET_WORKSPACE to the workspace's ID.",
        )
    if not any(values.get(name) for name in BITBUCKET_AUTH):
        raise InputError(
            "BITBUCKET_ACCESS_TOKEN",
            "CHECK_SCOPE=workspace needs Bitbucket credentials that can read the workspace's repositories and variables",
            "Set BITBUCKET_ACCESS_TOKEN to a workspace access token with the scopes repository and pipeline "
            "(or ATLASSIAN_ACCOUNT_EMAIL and ATLASSIAN_API_TOKEN: read:repository:bitbucket, read:pipeline:bitbucket).",
        )
    return scope


def _trust_policy_file(values: Mapping[str, str], cwd: Path) -> Path | None:
    if not values.get("TRUST_POLICY_FILE"):
        return None
    found_path = path(values, "TRUST_POLICY_FILE", Path(), cwd)
    try:
        found = found_path.is_file()
    except OSError as exc:  # a name too long, a loop of symlinks...
        raise invalid("TRUST_POLICY_FILE", values["TRUST_POLICY_FILE"], exc.strerror or "") from None
    if not found:
        raise invalid("TRUST_POLICY_FILE", values["TRUST_POLICY_FILE"], "no such file in the repository")
    return found_path
