"""Which accounts audit reads, and how it gets into each.

AUDIT_ACCOUNT_IDS unset: the account of the pipe's own credentials. A list: those accounts.
`organization`: every ACTIVE account of the AWS Organization (organizations:ListAccounts, with
the pipe's own credentials: the management account or a delegated administrator). Every account
other than the pipe's own is entered with sts:AssumeRole into AUDIT_ROLE_NAME there (role
chaining when the pipe runs as a role: the session lasts an hour at most), with
AUDIT_EXTERNAL_ID when set."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from pipe.credentials import Credentials
from pipe.errors import PipeError, aws_error

if TYPE_CHECKING:
    from pipe.aws import AwsClients
    from pipe.config.audit import AuditSettings

SESSION_SECONDS = 3600  # role chaining allows no more
# botocore's session is not made for concurrent client creation; calls on a client are.
_CLIENTS = threading.Lock()


def client(aws: AwsClients, service: str, credentials: Credentials) -> Any:
    with _CLIENTS:
        return aws.client(service, credentials)


def account_ids(settings: AuditSettings, own: str, organizations: Any) -> list[str]:
    """The accounts to audit, in order (the pipe's own first when it is among them)."""
    if not settings.organization:
        return list(settings.account_ids) or [own]
    try:
        ids = [
            str(account["Id"])
            for page in organizations.get_paginator("list_accounts").paginate()
            for account in page.get("Accounts", [])
            if (account.get("State") or account.get("Status")) == "ACTIVE"
        ]
    except Exception as exc:
        code, message = aws_error(exc)
        if not code:
            raise
        raise PipeError(
            f"AUDIT_ACCOUNT_IDS=organization: Organizations refused ListAccounts ({code}: {message})",
            "Run the audit with credentials of the organization's management account or of a delegated "
            "administrator, with organizations:ListAccounts (docs/audit.md#permissions), or list the "
            "accounts in AUDIT_ACCOUNT_IDS.",
        ) from None
    return sorted(ids, key=lambda i: (i != own, i))


def role_arn(partition: str, account: str, role_name: str) -> str:
    return f"arn:{partition}:iam::{account}:role/{role_name}"


def principal(arn: str) -> str:
    """What a trust policy names for the pipe's identity: the role of a role session."""
    match = re.fullmatch(r"arn:([\w-]+):sts::([0-9]{12}):assumed-role/([^/]+)/.+", arn)
    return f"arn:{match.group(1)}:iam::{match.group(2)}:role/{match.group(3)}" if match else arn


def assume(
    sts: Any, *, arn: str, session_name: str, external_id: str | None, hub: str
) -> tuple[Credentials | None, str, str]:
    """(credentials, "", "") or (None, why, what to change) for an account that cannot be entered."""
    extra = {"ExternalId": external_id} if external_id else {}
    try:
        answer = sts.assume_role(
            RoleArn=arn, RoleSessionName=session_name, DurationSeconds=SESSION_SECONDS, **extra
        )
    except Exception as exc:
        code, message = aws_error(exc)
        if not code:
            raise
        hint = (
            f"Deploy the role {arn} (AUDIT_ROLE_NAME) trusting {principal(hub)} (docs/audit.md#permissions); "
            + (
                "check that its trust policy's sts:ExternalId is AUDIT_EXTERNAL_ID"
                if external_id
                else "if its trust policy requires an sts:ExternalId, set AUDIT_EXTERNAL_ID"
            )
            + "; or leave the account out of AUDIT_ACCOUNT_IDS."
        )
        return None, f"sts:AssumeRole into {arn} was refused ({code}: {message})", hint
    return Credentials.from_sts(answer["Credentials"]), "", ""
