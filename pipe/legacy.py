"""Legacy AWS keys in Bitbucket variables (ACTION=check): find them (repository, its deployment
environments, the workspace), tell whether each is still in use (GetAccessKeyLastUsed; a key never
used is idle from its creation, ListAccessKeys), and retire the idle ones of this repository:
delete their variables, then deactivate the key. A key in a workspace variable, of a user
ACTION=rotate manages, or of an account other than the role's (sts:GetAccessKeyInfo: IAM acts in
one account), is reported, never retired."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipe.bitbucket import Bitbucket, Scope, Variable
from pipe.errors import PipeError, aws_error
from pipe.rotation import marker as markers

if TYPE_CHECKING:
    from pipe.config import Settings
    from pipe.console import Console
    from pipe.report import CheckReport

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
    created: str | None = None  # read only for a key never used: it is idle from then
    service: str = ""
    region: str = ""
    idle_days: float | None = None
    in_use: bool | None = None
    not_read: str = ""
    unpaired: str = ""  # why no secret variable pairs with the id unambiguously ("" when one does)

    def document(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Retirer:
    """Who retires keys: IAM and STS clients of the role's session, and the account they act in."""

    iam: Any
    sts: Any
    account: str


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


# The secret variable's name for an id variable's name: the id's suffix swapped for one of
# these, and nothing else (no fallback to AWS_SECRET_ACCESS_KEY: that one pairs with
# AWS_ACCESS_KEY_ID only).
PAIRS = (
    ("ACCESS_KEY_ID", ("SECRET_ACCESS_KEY", "SECRET_KEY")),
    ("ACCESS_KEY", ("SECRET_KEY", "SECRET_ACCESS_KEY")),
)


def secret_names(id_name: str) -> tuple[str, ...]:
    """The names a secret paired with ``id_name`` may have (upper case): ``X_ACCESS_KEY_ID``
    pairs with ``X_SECRET_ACCESS_KEY`` or ``X_SECRET_KEY``, ``X_ACCESS_KEY`` with
    ``X_SECRET_KEY`` or ``X_SECRET_ACCESS_KEY``; any other name with none."""
    upper = id_name.upper()
    for suffix, secrets in PAIRS:
        if upper.endswith(suffix):
            prefix = upper.removesuffix(suffix)
            return tuple(prefix + secret for secret in secrets)
    return ()


def pair(id_name: str, names: list[str], id_names: list[str]) -> tuple[str | None, str]:
    """(the secret variable paired with ``id_name``, "") or (None, why there is none).

    A pair is the id's own name with its suffix swapped (``secret_names``), in the same
    place. It is refused when no such variable exists, when two exist, or when another id
    variable of that place may pair with it too: retiring would then delete a secret that
    another key may still need, or leave half a pair behind."""
    wanted = secret_names(id_name)
    if not wanted:
        return (
            None,
            f"{id_name} is not named ..._ACCESS_KEY_ID or ..._ACCESS_KEY, so its secret variable is unknown",
        )
    found = [n for n in names if n.upper() in wanted]
    if not found:
        return None, f"no secret variable pairs with {id_name} here (looked for {' or '.join(wanted)})"
    if len(found) > 1:
        return (
            None,
            f"{id_name} may pair with {' and '.join(sorted(found))}: which one is its secret is ambiguous",
        )
    secret = found[0]
    rivals = sorted(other for other in id_names if other != id_name and secret.upper() in secret_names(other))
    if rivals:
        return (
            None,
            f"{secret} may be the secret of {', '.join(rivals)} too: which id it pairs with is ambiguous",
        )
    return secret, ""


def find(bitbucket: Bitbucket, places: list[Scope]) -> list[tuple[Scope, LegacyKey]]:
    out = []
    for scope in places:
        variables = bitbucket.variables(scope)
        names = [v.key for v in variables]
        ids = [v for v in variables if _is_key_id(v)]
        for variable in ids:
            secret, why = pair(variable.key, names, [v.key for v in ids])
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
                        unpaired=why,
                    ),
                )
            )
    return out


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# A user's keys' creation dates (ListAccessKeys), or why they could not be read: one call per user.
Created = dict[str, dict[str, datetime] | str]


def _created(iam: Any, user: str, cache: Created) -> dict[str, datetime] | str:
    if user not in cache:
        try:
            listed = iam.list_access_keys(UserName=user).get("AccessKeyMetadata", [])
        except Exception as exc:
            code, message = aws_error(exc)
            if not code:
                raise
            cache[user] = f"ListAccessKeys: {code} ({message})"
        else:
            cache[user] = {str(k["AccessKeyId"]): k["CreateDate"] for k in listed if "CreateDate" in k}
    return cache[user]


def last_use(iam: Any, key: LegacyKey, now: float, idle_days: int, created: Created | None = None) -> None:
    """When the key was last used, and whether it is idle: unused for ``idle_days`` since its
    last use or, for a key never used, since its creation (ListAccessKeys, once per user in
    ``created``): a key published an hour ago is not idle."""
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
        dates = _created(iam, key.user, {} if created is None else created) if key.user else "no user"
        made = dates.get(key.key_id) if isinstance(dates, dict) else None
        if made is None:
            why = dates if isinstance(dates, str) else "ListAccessKeys does not list it"
            key.not_read = f"never used, and its creation date is unknown ({why})"
            return
        key.created = _stamp(made)
        key.idle_days = round(max(0.0, now - made.timestamp()) / DAY, 1)
        key.in_use = key.idle_days < idle_days
        return
    key.last_used = _stamp(when)
    key.idle_days = round((now - when.timestamp()) / DAY, 1)
    key.in_use = key.idle_days < idle_days


def retire(
    bitbucket: Bitbucket,
    retirer: Retirer,
    found: list[tuple[Scope, LegacyKey]],
    *,
    dry_run: bool,
    say: Callable[[str], None],
) -> tuple[list[str], list[str]]:
    """Idle keys only: delete their variables first (no pipeline picks up a dead key), then
    deactivate the key. A key is retired whole or not at all: nothing of it is touched when a
    workspace variable holds it (other repositories of the workspace may still use it), when
    any place that holds it has no unambiguous secret variable for it (no half pair left
    behind, no secret deleted that another id may pair with), when it is not a key of the
    account the role acts in (GetAccessKeyInfo, read before any variable is touched: IAM names
    users and keys within one account), or when its user carries the tag ACTION=rotate puts on
    the users it manages (ListUserTags, once per user). Returns what was done (or would be) and
    what was left, with the reason, for a person to decide."""
    actions: list[str] = []
    left: list[str] = []
    idle: dict[str, list[tuple[Scope, LegacyKey]]] = {}
    for scope, key in found:
        if key.key_id and key.in_use is False and key.user:
            idle.setdefault(key.key_id, []).append((scope, key))
    tags: dict[str, dict[str, str] | str] = {}
    for key_id, places in idle.items():
        refused = _refusal(retirer, key_id, places, tags)
        if refused:
            left.append(refused)
            continue
        user = places[0][1].user
        for scope, key in places:
            variables = {v.key: v for v in bitbucket.variables(scope)}
            for name in (key.variable, key.secret_variable):
                if name and name in variables:
                    text = f"delete {name} from {scope}"
                    actions.append(("would " if dry_run else "") + text)
                    if not dry_run:
                        bitbucket.delete_variable(scope, variables[name].uuid)
                    say(("DRY_RUN: would " if dry_run else "Did: ") + text)
        text = f"deactivate {key_id} of {user}"
        if not dry_run:
            try:
                retirer.iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Inactive")
            except Exception as exc:
                code, message = aws_error(exc)
                if not code:
                    raise
                left.append(
                    f"{key_id} was not deactivated: UpdateAccessKey: {code} ({message}). Its variables are "
                    f"deleted; deactivate the key by hand in account {retirer.account} (user {user})."
                )
                continue
        actions.append(("would " if dry_run else "") + text)
        say(("DRY_RUN: would " if dry_run else "Did: ") + text)
    return actions, left


def _refusal(
    retirer: Retirer,
    key_id: str,
    places: list[tuple[Scope, LegacyKey]],
    tags: dict[str, dict[str, str] | str],
) -> str:
    """Why ``key_id`` must not be retired ("" when it may be), in the order that reads least."""
    shared = [(scope, key) for scope, key in places if not scope.repo]
    if shared:
        return _workspace_refusal(key_id, shared)
    unpaired = [(scope, key) for scope, key in places if key.unpaired or not key.secret_variable]
    if unpaired:
        reasons = "; ".join(f"{scope}: {key.unpaired}" for scope, key in unpaired)
        return f"{key_id} was not retired: {reasons}. Delete its variables by hand, then deactivate the key."
    why = _foreign(retirer, key_id) or _managed(retirer.iam, places[0][1].user, tags)
    return f"{key_id} was not retired: {why}" if why else ""


def _foreign(retirer: Retirer, key_id: str) -> str:
    """Why ``key_id`` is not the role's to retire: it is a key of another account, or its
    account could not be read ("" when it is of the role's account)."""
    try:
        account = str(retirer.sts.get_access_key_info(AccessKeyId=key_id)["Account"])
    except Exception as exc:
        code, message = aws_error(exc)
        if not code:
            raise
        return (
            f"its account could not be read (GetAccessKeyInfo: {code} ({message})), and the role can "
            f"retire only the keys of its own account {retirer.account}. Grant the role "
            "sts:GetAccessKeyInfo, or retire the key by hand."
        )
    if account != retirer.account:
        return (
            f"it is a key of account {account}, and the role acts in account {retirer.account} "
            "(IAM names users and keys within one account). Retire it by hand in account "
            f"{account}: delete its variables, then deactivate the key."
        )
    return ""


def _workspace_refusal(key_id: str, shared: list[tuple[Scope, LegacyKey]]) -> str:
    names = " and ".join(
        f"{name} of {scope}" for scope, key in shared for name in (key.variable, key.secret_variable) if name
    )
    return (
        f"{key_id} was not retired: it is in the workspace variables ({names}), and other repositories "
        "of the workspace may still use it, in a pipeline that runs rarely (a monthly release, say). "
        "Once every repository of the workspace uses OIDC, delete those workspace variables by hand, "
        "then deactivate the key."
    )


def _managed(iam: Any, user: str, cache: dict[str, dict[str, str] | str]) -> str:
    """Why ``user``'s key must not be retired: ACTION=rotate manages it, or its tags could not
    be read ("" when it may be retired)."""
    if user not in cache:
        try:
            cache[user] = markers.tags(iam, user)
        except Exception as exc:
            code, message = aws_error(exc)
            if not code:
                raise
            cache[user] = f"ListUserTags: {code} ({message})"
    found = cache[user]
    if isinstance(found, str):
        return (
            f"the tags of {user} could not be read ({found}), so whether ACTION=rotate manages its key "
            "is unknown. Grant iam:ListUserTags on the user, or retire the key by hand."
        )
    if found.get(markers.MANAGED_TAG) == markers.MANAGED_VALUE:
        return (
            f"{user} carries {markers.MANAGED_TAG}={markers.MANAGED_VALUE}: ACTION=rotate manages its key. "
            "Stop rotating it (and remove the tag) before retiring it, or leave it to rotate."
        )
    return ""


def summary(key: LegacyKey, idle_days: int) -> tuple[str, str]:
    """(severity, message) for the report."""
    where = f"{key.scope}: {key.variable}"
    if not key.key_id or key.not_read:
        return "info", f"{where} holds an AWS key; {key.not_read or 'its id is unknown'}"
    if key.in_use and not key.last_used:
        return "warning", (
            f"{where} holds {key.key_id} ({key.user}), not idle yet: never used, but created "
            f"{key.created}, less than LEGACY_IDLE_DAYS={idle_days} days ago"
        )
    if key.in_use:
        return "warning", (
            f"{where} holds {key.key_id} ({key.user}), still in use: last used {key.last_used} "
            f"on {key.service} in {key.region}"
        )
    when = f"last used {key.last_used}" if key.last_used else f"never used since its creation {key.created}"
    return "info", f"{where} holds {key.key_id} ({key.user}), idle: {when} (LEGACY_IDLE_DAYS={idle_days})"


def review(
    *,
    settings: Settings,
    bitbucket: Bitbucket | None,
    iam: Any,
    retirer: Retirer | None,
    report: CheckReport,
    console: Console,
) -> None:
    """The AWS keys this repository still keeps in Bitbucket variables, as the check's findings;
    retire the idle ones when asked (RETIRE_LEGACY_KEYS) and READY."""
    if bitbucket is None or not (settings.workspace and settings.repo_slug):
        report.unread.append(
            "legacy keys in Bitbucket variables: no Bitbucket API access (set BITBUCKET_ACCESS_TOKEN)"
        )
        return
    try:
        found = find(bitbucket, scopes(bitbucket, settings.workspace, settings.repo_slug))
    except PipeError as error:
        report.unread.append(f"legacy keys in Bitbucket variables: {error.line()}")
        return
    idle_days = settings.check.legacy_idle_days
    created: Created = {}
    for _, key in found:
        if iam is not None:
            last_use(iam, key, time.time(), idle_days, created)
        else:
            key.not_read = key.not_read or "no credentials to read GetAccessKeyLastUsed"
        severity, message = summary(key, idle_days)
        report.add(severity, "legacy-key", message)
    report.facts["legacy_keys"] = [key.document() for _, key in found]
    if not settings.check.retire_legacy_keys:
        return
    if report.verdict != "READY" or retirer is None:
        report.add(
            "info", "retire-skipped", "RETIRE_LEGACY_KEYS acts only on a READY verdict: nothing was retired"
        )
        return
    report.facts["retired"], left = retire(
        bitbucket, retirer, found, dry_run=settings.dry_run, say=console.info
    )
    for reason in left:
        report.add("warning", "retire-refused", reason)
