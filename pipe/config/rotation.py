"""The settings of ACTION=rotate and ACTION=sync: thresholds, TARGETS, SOURCE, STORE, the
Bitbucket variable names and access, the shared credentials file of profile: targets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipe import files
from pipe.config.fields import IAM_USER, boolean, canonical, integer
from pipe.errors import InputError
from pipe.schema import BITBUCKET_AUTH, default, invalid
from pipe.targets import TargetSpec, default_store, parse_target, split_list

# A lease shorter than this is refused: a heartbeat every third of it must fit between AWS calls
# that can take seconds each, and 0 would let a second run take over a live one at once.
MIN_LEASE_SECONDS = 30
_AUTH_PAIRS = (
    ("ATLASSIAN_ACCOUNT_EMAIL", "ATLASSIAN_API_TOKEN"),
    ("BITBUCKET_USERNAME", "BITBUCKET_APP_PASSWORD"),
)


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
    store_choice: TargetSpec | None  # STORE=ssm:... / secretsmanager:...
    no_store: bool  # STORE=none
    store_kms_key_id: str | None  # STORE_KMS_KEY_ID: the KMS key of the SSM parameters written
    grace_days: int
    keep_old_key: bool

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

    def store_reason(self) -> str:
        """How ``store_for`` chose a store (for the plan's heading)."""
        if self.store_choice is not None:
            return "STORE"
        if any(t.is_store for t in self.targets):
            return "the first secretsmanager:/ssm: target"
        return "the default: TARGETS names no secretsmanager: or ssm: target"


def load(values: Mapping[str, str], action: str, *, cwd: Path, clone_dir: Path) -> RotationSettings:
    rotate_after, deactivate_after, delete_after = ages(values)
    user = values.get("IAM_USER_NAME")
    if user and not IAM_USER.match(user):
        raise invalid("IAM_USER_NAME", user)
    targets = _targets(values)
    source = _source(values) if action == "sync" else None
    store_choice, no_store = _store(values) if action == "rotate" else (None, False)
    id_variable, secret_variable = _variable_names(values)
    if any(t.is_bitbucket for t in targets):
        _require_bitbucket_access(values)
    settings = RotationSettings(
        user_name=user,
        targets=targets,
        source=source,
        id_variable=id_variable,
        secret_variable=secret_variable,
        rotate_after=rotate_after,
        deactivate_after=deactivate_after,
        delete_after=delete_after,
        force=boolean(values, "FORCE_ROTATE"),
        verify_timeout=integer(values, "VERIFY_TIMEOUT_SECONDS", 5, 900),
        lease_seconds=integer(values, "ROTATION_LEASE_SECONDS", MIN_LEASE_SECONDS, 3600),
        concurrency=integer(values, "PUBLISH_CONCURRENCY", 1, 32),
        credentials_file=_credentials_file(values),
        store_choice=store_choice,
        no_store=no_store,
        store_kms_key_id=values.get("STORE_KMS_KEY_ID") or None,
        grace_days=integer(values, "ROTATION_GRACE_DAYS", 1, 365),
        keep_old_key=boolean(values, "KEEP_OLD_KEY"),
    )
    return _profiles_file(settings, cwd, clone_dir)


def ages(values: Mapping[str, str]) -> tuple[int, int, int]:
    """ROTATE_AFTER_DAYS < DEACTIVATE_AFTER_DAYS < DELETE_AFTER_DAYS (rotate and audit)."""
    rotate_after = integer(values, "ROTATE_AFTER_DAYS", 1, 3650)
    deactivate_after = integer(values, "DEACTIVATE_AFTER_DAYS", 1, 3650)
    delete_after = integer(values, "DELETE_AFTER_DAYS", 1, 3650)
    if not rotate_after < deactivate_after:
        raise invalid(
            "DEACTIVATE_AFTER_DAYS",
            values.get("DEACTIVATE_AFTER_DAYS"),
            f"not more than ROTATE_AFTER_DAYS ({rotate_after})",
        )
    if not deactivate_after < delete_after:
        raise invalid(
            "DELETE_AFTER_DAYS",
            values.get("DELETE_AFTER_DAYS"),
            f"not more than DEACTIVATE_AFTER_DAYS ({deactivate_after})",
        )
    return rotate_after, deactivate_after, delete_after


def _targets(values: Mapping[str, str]) -> tuple[TargetSpec, ...]:
    """TARGETS, or this repository in a Bitbucket step."""
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
        raise invalid("TARGETS", text, "a target is listed twice")
    return targets


def _source(values: Mapping[str, str]) -> TargetSpec:
    if not values.get("SOURCE"):
        raise InputError(
            "SOURCE",
            "SOURCE is required for ACTION=sync",
            "Set SOURCE to secretsmanager:<id> or ssm:<name>.",
        )
    source = parse_target(values["SOURCE"], "SOURCE")
    if not source.is_store:
        raise invalid("SOURCE", values["SOURCE"])
    return source


def _store(values: Mapping[str, str]) -> tuple[TargetSpec | None, bool]:
    """(STORE's store, STORE=none)."""
    text = values.get("STORE")
    if not text:
        return None, False
    if text.lower() == "none":
        return None, True
    choice = parse_target(text, "STORE")
    if not choice.is_store:
        raise invalid("STORE", text)
    return choice, False


def _variable_names(values: Mapping[str, str]) -> tuple[str, str]:
    id_variable = values.get("ACCESS_KEY_ID_VARIABLE") or default("ACCESS_KEY_ID_VARIABLE")
    secret_variable = values.get("SECRET_ACCESS_KEY_VARIABLE") or default("SECRET_ACCESS_KEY_VARIABLE")
    if id_variable == secret_variable:
        raise invalid(
            "SECRET_ACCESS_KEY_VARIABLE", secret_variable, "the same name as ACCESS_KEY_ID_VARIABLE"
        )
    return id_variable, secret_variable


def _require_bitbucket_access(values: Mapping[str, str]) -> None:
    """Bitbucket targets need one complete way of Bitbucket API access."""
    auth = {name: values[name] for name in BITBUCKET_AUTH if values.get(name)}
    for first, second in _AUTH_PAIRS:
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


def _credentials_file(values: Mapping[str, str]) -> Path:
    """AWS_SHARED_CREDENTIALS_FILE, or the SDK's default under HOME (when the step gives one)."""
    text = values.get("AWS_SHARED_CREDENTIALS_FILE")
    if not text:
        text = default("AWS_SHARED_CREDENTIALS_FILE")
        home = values.get("HOME", "")
        if home and text.startswith("~"):
            text = home + text[1:]
    return Path(text).expanduser()


def _profiles_file(settings: RotationSettings, cwd: Path, clone_dir: Path) -> RotationSettings:
    """The shared credentials file of profile: targets, canonical, checked for symlinks."""
    path = canonical(cwd / settings.credentials_file, clone_dir)
    if any(t.kind == "profile" for t in settings.targets):
        files.preflight(path.parent, "AWS_SHARED_CREDENTIALS_FILE", (path.name,))
    return dataclasses.replace(settings, credentials_file=path)
