"""The stand-in STS's trust evaluation is the oracle of the failure tests: check it too."""

from __future__ import annotations

from typing import Any

import pytest

from tests.standins import trust

P = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
PRINCIPAL = f"arn:aws:iam::123456789012:oidc-provider/{P}"
CONTEXT = {f"{P}:aud": "ari:cloud:bitbucket::workspace/w", f"{P}:sub": "{r}:{s}"}


def policy(condition: dict[str, Any], effect: str = "Allow", principal: str = PRINCIPAL) -> dict[str, Any]:
    statement = {
        "Effect": effect,
        "Principal": {"Federated": principal},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": condition,
    }
    return {"Statement": [statement]}


@pytest.mark.parametrize(
    ("condition", "allowed"),
    [
        ({"StringEquals": {f"{P}:aud": "ari:cloud:bitbucket::workspace/w"}}, True),
        ({"StringEquals": {f"{P}:aud": "ari:cloud:bitbucket::workspace/{w}"}}, False),
        ({"StringLike": {f"{P}:sub": "{r}:*"}}, True),
        ({"StringEquals": {f"{P}:sub": "{r}:*"}}, False),  # StringEquals takes * literally
        ({"StringLike": {f"{P.upper()}:SUB": "{r}:*"}}, True),  # keys are case-insensitive
        ({"StringLike": {f"{P}:sub": "{R}:*"}}, False),  # values are not
        ({"StringNotLike": {f"{P}:sub": "{other}:*"}}, True),
        ({"StringEqualsIfExists": {f"{P}:amr": "x"}}, True),
        ({"StringEquals": {f"{P}:amr": "x"}}, False),
        ({"Null": {f"{P}:sub": "false"}}, True),
        ({"ForAnyValue:StringLike": {f"{P}:sub": ["{x}:*", "{r}:*"]}}, True),
        ({"StringLike": {"other.example/oidc:sub": "*"}}, False),
    ],
)
def test_conditions(condition: dict[str, Any], allowed: bool) -> None:
    assert (
        trust.allows(
            policy(condition), principal=PRINCIPAL, action="sts:AssumeRoleWithWebIdentity", context=CONTEXT
        )
        is allowed
    )


def test_deny_wins_and_principal_must_match() -> None:
    both = {"Statement": policy({})["Statement"] + policy({}, effect="Deny")["Statement"]}
    assert not trust.allows(
        both, principal=PRINCIPAL, action="sts:AssumeRoleWithWebIdentity", context=CONTEXT
    )
    other = policy(
        {}, principal="arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    )
    assert not trust.allows(
        other, principal=PRINCIPAL, action="sts:AssumeRoleWithWebIdentity", context=CONTEXT
    )


@pytest.mark.parametrize(
    ("condition", "allowed"),
    [
        ({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}, True),
        ({"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "127.0.0.1/32"]}}, True),
        ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, False),
        ({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, True),
        ({"NotIpAddress": {"aws:SourceIp": "127.0.0.1"}}, False),
        ({"IpAddress": {"aws:SourceIp": "not-a-network"}}, False),
        ({"StringLike": {"sts:RoleSessionName": "bitbucket-*"}}, True),
        ({"StringEquals": {"sts:RoleSessionName": "other"}}, False),
        (
            {"Bool": {"aws:SecureTransport": "true"}},
            False,
        ),  # an operator the stand-in does not know never grants
    ],
)
def test_the_requests_own_keys(condition: dict[str, Any], allowed: bool) -> None:
    """What STS sets from the request for AssumeRoleWithWebIdentity: the caller's address and
    the session name (the stand-in's front adds them to the context)."""
    context = {**CONTEXT, "aws:SourceIp": "127.0.0.1", "sts:RoleSessionName": "bitbucket-shop-1"}
    assert (
        trust.allows(
            policy(condition), principal=PRINCIPAL, action="sts:AssumeRoleWithWebIdentity", context=context
        )
        is allowed
    )
