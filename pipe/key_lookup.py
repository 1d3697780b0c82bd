"""What AWS says about the key ids the workspace scan found (CHECK_SCOPE=workspace): each one's
account (sts:GetAccessKeyInfo) and, in the role's own account, its IAM user and last use
(iam:GetAccessKeyLastUsed) and status (iam:ListAccessKeys, once per user). Reads only.

Each distinct key id is looked up once, however many repositories hold it, and each user's
keys are listed once: the calls grow with the keys, never with the repositories. A key of
another account is said to be so; its IAM is that account's to read."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pipe.errors import aws_error
from pipe.migration import KeyFacts

TEMPORARY_PREFIX = "ASIA"


@dataclass
class Calls:
    """The AWS calls made, by action (for the ✔ line's companion and `make bench`)."""

    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, action: str) -> None:
        with self._lock:
            self.counts[action] = self.counts.get(action, 0) + 1

    def total(self, prefix: str) -> int:
        return sum(n for action, n in self.counts.items() if action.startswith(prefix))


def _failure(call: str, exc: Exception) -> str:
    """The key's error for an AWS refusal, or for an SDK failure (no answer, after the SDK's
    own retries); anything else is a bug, raised."""
    from botocore.exceptions import BotoCoreError

    code, message = aws_error(exc)
    if code:
        return f"{call}: {code}" + (f" ({message})" if message else "")
    if isinstance(exc, BotoCoreError):
        return f"{call}: {type(exc).__name__}"
    raise exc


def _iso(value: Any) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime) else None


def look_up(
    key_ids: Sequence[str],
    *,
    sts: Any,
    iam: Any,
    own_account: str,
    concurrency: int,
    calls: Calls | None = None,
) -> dict[str, KeyFacts]:
    calls = calls if calls is not None else Calls()
    pool_size = max(1, min(concurrency, len(key_ids) or 1))
    with ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="keys") as pool:
        facts = dict(
            zip(key_ids, pool.map(lambda k: _one(k, sts, iam, own_account, calls), key_ids), strict=True)
        )
        users = sorted({f.iam_user for f in facts.values() if f.iam_user and not f.error})
        statuses = dict(zip(users, pool.map(lambda u: _statuses(u, iam, calls), users), strict=True))
    for key_id, known in facts.items():
        if not known.iam_user or known.error:
            continue
        listed, error = statuses[known.iam_user]
        if error:
            facts[key_id] = replace(known, error=error)
        elif key_id in listed:
            facts[key_id] = replace(known, status=listed[key_id])
        else:
            facts[key_id] = replace(known, note=f"not among the keys of {known.iam_user} any more")
    return facts


def _one(key_id: str, sts: Any, iam: Any, own_account: str, calls: Calls) -> KeyFacts:
    try:
        calls.add("sts:GetAccessKeyInfo")
        account = str(sts.get_access_key_info(AccessKeyId=key_id)["Account"])
    except Exception as exc:
        return KeyFacts(error=_failure("sts:GetAccessKeyInfo", exc))
    if account != own_account:
        return KeyFacts(
            account_id=account,
            other_account=True,
            note=f"a key of account {account}, not of the role's account {own_account}: its user and last use are read there",
        )
    if key_id.startswith(TEMPORARY_PREFIX):
        return KeyFacts(account_id=account, note="a temporary key (a role session's): no IAM user")
    try:
        calls.add("iam:GetAccessKeyLastUsed")
        answer = iam.get_access_key_last_used(AccessKeyId=key_id)
    except Exception as exc:
        code = aws_error(exc)[0]
        if code == "NoSuchEntity":
            return KeyFacts(account_id=account, note="no such key in IAM (deleted)")
        return KeyFacts(account_id=account, error=_failure("iam:GetAccessKeyLastUsed", exc))
    used = answer.get("AccessKeyLastUsed") or {}
    return KeyFacts(
        account_id=account, iam_user=answer.get("UserName"), last_used=_iso(used.get("LastUsedDate"))
    )


def _statuses(user: str, iam: Any, calls: Calls) -> tuple[dict[str, str], str | None]:
    """The user's keys and their status, every page; ({}, why) when they cannot be listed."""
    out: dict[str, str] = {}
    try:
        for page in iam.get_paginator("list_access_keys").paginate(UserName=user):
            calls.add("iam:ListAccessKeys")
            out.update({str(k["AccessKeyId"]): str(k["Status"]) for k in page.get("AccessKeyMetadata", [])})
    except Exception as exc:
        return {}, _failure("iam:ListAccessKeys", exc)
    return out, None
