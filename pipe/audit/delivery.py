"""Delivery of a new key (seed 003): the Secrets Manager secret `<AUDIT_SECRET_PREFIX><user>` in
the user's account, which only that user may read.

The resource policy goes on first, every time, before any value: a new secret is created empty,
given its policy, and only then its value. The policy allows the user `GetSecretValue` and
`DescribeSecret`, and denies `GetSecretValue` to every other principal (the account's
administrators keep managing the secret, its policy included; nobody else reads it). The pipe
never reads a secret back: the value's version id (its ClientRequestToken) names the key it
holds, which `DescribeSecret` shows (pipe.audit.reader.secret_state).

The secret also holds the in-flight record of a user who has no room for it in IAM's 50 user
tags: the tag ``aws-credentials-pipe/audit`` on the secret (``mark``, ``unmark``), the same value
as the user tag (pipe.audit.state.InFlight). The secret is the pipe's own (it carries
DELIVERY_TAG, one tag of the 50 Secrets Manager allows), so there is always room for it; the
templates let the audit write that one tag key on such a secret, and no other."""

from __future__ import annotations

import json
from typing import Any

from pipe.audit import state
from pipe.audit.reader import VERSION_PREFIX
from pipe.credentials import Credentials
from pipe.errors import StateError, is_aws_code

# The tag of every secret the audit creates: audit-hub.yaml and audit-member.yaml let it put a
# value and a resource policy only on secrets that carry it (and create none without it).
DELIVERY_TAG = "aws-credentials-pipe/delivery"
DELIVERY_VALUE = "audit"


def resource_policy(user_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TheUserReadsTheirKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": user_arn},
                    "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    "Resource": "*",
                },
                {
                    "Sid": "NobodyElseReadsIt",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                    "Condition": {"StringNotEquals": {"aws:PrincipalArn": user_arn}},
                },
            ],
        },
        separators=(",", ":"),
    )


def version_token(key_id: str) -> str:
    """The ClientRequestToken (32-64 characters) of the version that holds ``key_id``."""
    return VERSION_PREFIX + key_id


def deliver(secrets: Any, name: str, user: str, user_arn: str, pair: Credentials) -> str:
    """Put ``pair`` in the user's secret, the resource policy first; the secret's ARN."""
    arn = secret_arn(secrets, name, user)
    secrets.put_resource_policy(
        SecretId=arn, ResourcePolicy=resource_policy(user_arn), BlockPublicPolicy=True
    )
    secrets.put_secret_value(
        SecretId=arn,
        ClientRequestToken=version_token(pair.access_key_id),
        SecretString=json.dumps(
            {"AccessKeyId": pair.access_key_id, "SecretAccessKey": pair.secret_access_key}
        ),
    )
    return arn


def mark(secrets: Any, arn: str, value: str) -> None:
    """Record a key in flight on the user's secret (``secret_arn``: created empty when missing)."""
    secrets.tag_resource(SecretId=arn, Tags=[{"Key": state.AUDIT_TAG, "Value": value}])


def unmark(secrets: Any, name: str) -> None:
    """Take the in-flight record off the user's secret."""
    secrets.untag_resource(SecretId=name, TagKeys=[state.AUDIT_TAG])


def secret_arn(secrets: Any, name: str, user: str) -> str:
    """The secret's ARN, created empty when it does not exist."""
    try:
        described = secrets.describe_secret(SecretId=name)
    except Exception as exc:
        if not is_aws_code(exc, "ResourceNotFoundException"):
            raise
    else:
        if described.get("DeletedDate"):
            raise StateError(
                f"The secret {name} is scheduled for deletion: the new key of {user} cannot be stored",
                f"Restore it (aws secretsmanager restore-secret --secret-id {name}) or delete it for good, then re-run.",
            )
        return str(described["ARN"])
    try:
        created = secrets.create_secret(
            Name=name,
            Description=f"The access key of IAM user {user}, delivered by aws-credentials-pipe (ACTION=audit).",
            # The templates let the audit write only the secrets that carry this tag.
            Tags=[{"Key": DELIVERY_TAG, "Value": DELIVERY_VALUE}],
        )
    except Exception as exc:
        # A retry after a lost answer (or another run) finds the secret made: it is the one.
        if not is_aws_code(exc, "ResourceExistsException"):
            raise
        return secret_arn(secrets, name, user)
    return str(created["ARN"])
