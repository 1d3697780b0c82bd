"""Legacy AWS keys in Bitbucket variables: find them (repository, its deployment
environments, the workspace), tell whether each is still in use (GetAccessKeyLastUsed), and
retire the idle ones: delete their variables, then deactivate the key."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC
from typing import Any

from pipe.bitbucket import Bitbucket, Scope, Variable
from pipe.errors import aws_error

KEY_SHAPE = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")
DAY = 86400.0


@dataclass
class LegacyKey:
    scope: str
    variable: str
    secured: bool
    key_id: str | None  # None when the id variable is secured: Bitbucket never returns it
    secret_variable: str | None
    user: str = ""
    last_used: str | None = None
    service: str = ""
    region: str = ""
    idle_days: float | None = None
    in_use: bool | None = None
    not_read: str = ""

    def document(self) -> dict[str, Any]:
        return asdict(self)


def scopes(bitbucket: Bitbucket, workspace: str, repo: str) -> list[Scope]:
    found = [Scope(workspace, repo, label=f"{workspace}/{repo}")]
    found += [
        Scope(workspace, repo, e.uuid, label=f"{workspace}/{repo}@{e.name}")
        for e in bitbucket.environments(workspace, repo)
    ]
    found.append(Scope(workspace, label=f"{workspace} (workspace)"))
    return found


def _is_key_id(variable: Variable) -> bool:
    named = variable.key.upper().endswith(("ACCESS_KEY_ID", "ACCESS_KEY"))
    shaped = variable.value is not None and KEY_SHAPE.match(variable.value) is not None
    return shaped or (named and "SECRET" not in variable.key.upper())


def find(bitbucket: Bitbucket, places: list[Scope]) -> list[tuple[Scope, LegacyKey]]:
    out = []
    for scope in places:
        variables = bitbucket.variables(scope)
        names = {v.key for v in variables}
        for variable in variables:
            if not _is_key_id(variable):
                continue
            secret = next(
                (
                    n
                    for n in (
                        variable.key.upper().replace("ACCESS_KEY_ID", "SECRET_ACCESS_KEY"),
                        "AWS_SECRET_ACCESS_KEY",
                    )
                    if n in names
                ),
                None,
            )
            key_id = variable.value if variable.value and KEY_SHAPE.match(variable.value) else None
            out.append(
                (
                    scope,
                    LegacyKey(
                        str(scope),
                        variable.key,
                        variable.secured,
                        key_id,
                        secret,
                        not_read="" if key_id else "the id variable is secured: its value cannot be read",
                    ),
                )
            )
    return out


def last_use(iam: Any, key: LegacyKey, now: float, idle_days: int) -> None:
    if not key.key_id:
        return
    try:
        answer = iam.get_access_key_last_used(AccessKeyId=key.key_id)
    except Exception as exc:
        code, message = aws_error(exc)
        if not code:
            raise
        key.not_read = f"GetAccessKeyLastUsed: {code} ({message})"
        return
    key.user = str(answer.get("UserName", ""))
    used = answer.get("AccessKeyLastUsed", {})
    when = used.get("LastUsedDate")
    key.service = str(used.get("ServiceName", ""))
    key.region = str(used.get("Region", ""))
    if when is None:
        key.idle_days, key.in_use = None, False
        return
    key.last_used = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    key.idle_days = round((now - when.timestamp()) / DAY, 1)
    key.in_use = key.idle_days < idle_days


def retire(
    bitbucket: Bitbucket,
    iam: Any,
    found: list[tuple[Scope, LegacyKey]],
    *,
    dry_run: bool,
    say: Callable[[str], None],
) -> list[str]:
    """Idle keys only: delete their variables first (no pipeline picks up a dead key), then
    deactivate the key. Returns what was done (or would be)."""
    actions: list[str] = []
    done_keys: set[str] = set()
    for scope, key in found:
        if not key.key_id or key.in_use is not False or not key.user:
            continue
        variables = {v.key: v for v in bitbucket.variables(scope)}
        for name in (key.variable, key.secret_variable):
            if name and name in variables:
                text = f"delete {name} from {scope}"
                actions.append(("would " if dry_run else "") + text)
                if not dry_run:
                    bitbucket.delete_variable(scope, variables[name].uuid)
                say(("DRY_RUN: would " if dry_run else "Did: ") + text)
        if key.key_id in done_keys:
            continue
        done_keys.add(key.key_id)
        text = f"deactivate {key.key_id} of {key.user}"
        actions.append(("would " if dry_run else "") + text)
        if not dry_run:
            iam.update_access_key(UserName=key.user, AccessKeyId=key.key_id, Status="Inactive")
        say(("DRY_RUN: would " if dry_run else "Did: ") + text)
    return actions


def summary(key: LegacyKey, idle_days: int) -> tuple[str, str]:
    """(severity, message) for the report."""
    where = f"{key.scope}: {key.variable}"
    if not key.key_id or key.not_read:
        return "info", f"{where} holds an AWS key; {key.not_read or 'its id is unknown'}"
    if key.in_use:
        return "warning", (
            f"{where} holds {key.key_id} ({key.user}), still in use: last used {key.last_used} "
            f"on {key.service} in {key.region}"
        )
    when = f"last used {key.last_used}" if key.last_used else "never used"
    return "info", f"{where} holds {key.key_id} ({key.user}), idle: {when} (LEGACY_IDLE_DAYS={idle_days})"
