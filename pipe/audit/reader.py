"""What audit reads in one account, in a fixed number of calls whatever the number of users:

- the IAM credential report (GenerateCredentialReport until COMPLETE, then GetCredentialReport):
  every user's keys, their status, creation and last use. IAM keeps a report for up to four
  hours, so it can be that old (the plan says how old); it has no key ids;
- the users with their tags and groups, and the groups (GetAccountAuthorizationDetails,
  botocore's paginator, 1000 a page);
and, only for users that need an action, their keys with ids (ListAccessKeys), and for a user
with a key in flight, or with no room for the in-flight tag among IAM's 50 user tags, their
secret (DescribeSecret): which key it holds, and the in-flight record on it. Read-only, all of it."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from pipe.audit import state
from pipe.audit.planner import Key
from pipe.errors import UnavailableError, is_aws_code

REPORT_TIMEOUT = 300.0  # seconds a credential report may take to generate
FIRST_POLL, MAX_POLL = 0.5, 8.0
PAGE_SIZE = 1000  # GetAccountAuthorizationDetails' MaxItems at most
# A secret version written by audit has this ClientRequestToken (its version id): the key id it holds.
VERSION_PREFIX = "aws-credentials-pipe-"


@dataclass(frozen=True)
class CredentialReport:
    generated: float  # when IAM generated it (epoch seconds)
    keys: dict[str, tuple[Key, ...]]  # user name -> keys (without ids)
    skew: float = 0.0  # seconds IAM's clock is ahead of this runner's (its answer's Date header)


@dataclass(frozen=True)
class Person:
    name: str
    arn: str
    tags: dict[str, str]
    groups: frozenset[str]


@dataclass(frozen=True)
class Directory:
    users: dict[str, Person]
    groups: frozenset[str]


def credential_report(
    iam: Any,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = REPORT_TIMEOUT,
) -> CredentialReport:
    """Ask IAM for a report until it is COMPLETE (0.5 s, doubling up to 8 s), then read it."""
    deadline = clock() + timeout
    delay = FIRST_POLL
    while iam.generate_credential_report().get("State") != "COMPLETE":
        if clock() + delay > deadline:
            raise UnavailableError(
                f"IAM did not finish the credential report within {int(timeout)}s",
                "Re-run later: IAM generates at most one report at a time per account.",
            )
        sleep(delay)
        delay = min(delay * 2, MAX_POLL)
    answer = iam.get_credential_report()
    content = answer["Content"]
    text = content.decode("utf-8") if isinstance(content, bytes) else str(content)
    return CredentialReport(
        answer["GeneratedTime"].timestamp(), parse_report(text), skew=clock_skew(answer, clock())
    )


def clock_skew(answer: Any, local: float) -> float:
    """How far IAM's clock is ahead of the runner's (negative: behind), from the answer's HTTP
    ``Date`` (whole seconds). A key's CreateDate is by IAM's clock, which may be up to 5 minutes
    from the runner's (SigV4 accepts that much): what audit compares with it must be too."""
    headers = (answer.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    try:
        return parsedate_to_datetime(str(headers["date"])).timestamp() - local
    except (KeyError, TypeError, ValueError):
        return 0.0


def _when(text: str) -> float | None:
    if not text or text in ("N/A", "no_information", "not_supported"):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_report(text: str) -> dict[str, tuple[Key, ...]]:
    """The credential report's CSV: per user, its keys (slot 1 then 2), without ids."""
    users: dict[str, tuple[Key, ...]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        name = row.get("user", "")
        if not name or name == "<root_account>":
            continue
        keys = []
        for slot in ("1", "2"):
            created = _when(row.get(f"access_key_{slot}_last_rotated", ""))
            if created is None:
                continue
            active = row.get(f"access_key_{slot}_active", "").lower() == "true"
            used = _when(row.get(f"access_key_{slot}_last_used_date", ""))
            keys.append(Key(None, "Active" if active else "Inactive", created, used))
        users[name] = tuple(keys)
    return users


def directory(iam: Any) -> Directory:
    """Users (tags, groups) and groups, in pages of 1000."""
    users: dict[str, Person] = {}
    groups: set[str] = set()
    pages = iam.get_paginator("get_account_authorization_details").paginate(
        Filter=["User", "Group"], PaginationConfig={"PageSize": PAGE_SIZE}
    )
    for page in pages:
        for user in page.get("UserDetailList", []):
            users[user["UserName"]] = Person(
                user["UserName"],
                user["Arn"],
                {t["Key"]: t["Value"] for t in user.get("Tags", [])},
                frozenset(user.get("GroupList", [])),
            )
        groups.update(g["GroupName"] for g in page.get("GroupDetailList", []))
    return Directory(users, frozenset(groups))


def listed_keys(iam: Any, user: str, reported: tuple[Key, ...]) -> tuple[Key, ...]:
    """The user's keys now, with ids (ListAccessKeys); last use from the report, matched by the
    creation second (the report names no key; a key newer than the report was not used before it)."""
    used = {int(k.created): k.last_used for k in reported}
    listed = iam.list_access_keys(UserName=user).get("AccessKeyMetadata", [])
    keys = []
    for meta in listed:
        created = meta["CreateDate"].timestamp()
        keys.append(Key(meta["AccessKeyId"], meta["Status"], created, used.get(int(created))))
    return tuple(sorted(keys, key=lambda k: k.created))


@dataclass(frozen=True)
class SecretState:
    holds: str | None = None  # the key id the secret holds (its current version, written by audit)
    in_flight: str | None = None  # the in-flight tag on the secret (a user at IAM's tag limit)


def secret_state(secrets: Any, name: str) -> SecretState:
    """What the user's secret says (nothing when it does not exist), from one DescribeSecret."""
    try:
        described = secrets.describe_secret(SecretId=name)
    except Exception as exc:
        if is_aws_code(exc, "ResourceNotFoundException"):
            return SecretState()
        raise
    tags = {str(t.get("Key")): str(t.get("Value", "")) for t in described.get("Tags") or []}
    return SecretState(current_key(described), tags.get(state.AUDIT_TAG))


def current_key(described: Any) -> str | None:
    """The key id of a DescribeSecret answer's AWSCURRENT version, when audit wrote it."""
    for version, stages in (described.get("VersionIdsToStages") or {}).items():
        if "AWSCURRENT" in stages and version.startswith(VERSION_PREFIX):
            return str(version[len(VERSION_PREFIX) :])
    return None
