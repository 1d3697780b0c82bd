"""Conditions the check cannot evaluate (issue 15, item 14): an IAM operator other than String
and Null, or a key whose value only AWS knows (aws:SourceIp, sts:RoleSessionName). They are
"not evaluated": an Allow is not failed for them, a Deny does not certainly apply, and a
finding names each one. An operator IAM does not know still fails (IAM refuses the policy)."""

from __future__ import annotations

from typing import Any

import pytest

from pipe import oidc, trust_policy

P = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
ARN = f"arn:aws:iam::123456789012:oidc-provider/{P}"
AUD = "ari:cloud:bitbucket::workspace/5a3c2f1e-0b7d-4e8a-9c6f-1d2e3f4a5b6c"
REPO = "{8e3f6a1b-2c4d-4e5f-8a9b-0c1d2e3f4a5b}"
CLAIMS = oidc.TokenClaims(
    iss=f"https://{P}", aud=AUD, sub=f"{REPO}:{{1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d}}", repository_uuid=REPO
)


def statement(
    extra: dict[str, dict[str, Any]] | None = None, effect: str = "Allow", sub: str = f"{REPO}:*"
) -> dict[str, Any]:
    return {
        "Effect": effect,
        "Principal": {"Federated": ARN},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{P}:aud": AUD}, "StringLike": {f"{P}:sub": sub}, **(extra or {})},
    }


def evaluate(*statements: dict[str, Any]) -> trust_policy.Evaluation:
    return trust_policy.evaluate({"Statement": list(statements)}, claims=CLAIMS, provider_arn=ARN)


def not_evaluated(evaluation: trust_policy.Evaluation) -> list[str]:
    return [f.message for f in evaluation.findings if f.code == "not-evaluated"]


UNEVALUATED = [
    ("IpAddress", "aws:SourceIp", "203.0.113.0/24"),
    ("NotIpAddress", "aws:SourceIp", "198.51.100.0/24"),
    ("StringLike", "sts:RoleSessionName", "bitbucket-*"),
    ("StringEquals", "aws:RequestedRegion", "eu-west-1"),
    ("Bool", "aws:SecureTransport", "true"),
    ("DateLessThan", "aws:CurrentTime", "2030-01-01T00:00:00Z"),
    ("NumericLessThanEquals", "aws:MultiFactorAuthAge", "3600"),
    ("ArnLike", "aws:SourceArn", "arn:aws:*"),
    ("IpAddressIfExists", "aws:SourceIp", "203.0.113.0/24"),
    ("Null", "aws:TokenIssueTime", "false"),
]


@pytest.mark.parametrize(("operator", "key", "value"), UNEVALUATED)
def test_an_allow_is_not_failed_by_a_condition_not_evaluated(operator: str, key: str, value: str) -> None:
    evaluation = evaluate(statement({operator: {key: value}}))
    assert evaluation.allowed, evaluation.statements
    (only,) = evaluation.statements[0].unevaluated
    assert (only.operator, only.key) == (operator, key)
    (message,) = not_evaluated(evaluation)
    assert f"{operator} {key}" in message and "not evaluated" in message and "statement 1" in message


def test_a_deny_with_a_condition_not_evaluated_does_not_certainly_apply() -> None:
    deny = statement({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, effect="Deny")
    evaluation = evaluate(statement(), deny)
    assert evaluation.allowed and evaluation.denied_by is None
    (message,) = not_evaluated(evaluation)
    assert "statement 2 (Deny)" in message and "NotIpAddress aws:SourceIp" in message


def test_a_statement_that_fails_elsewhere_still_fails() -> None:
    other = "{00000000-0000-4000-8000-000000000000}:*"
    evaluation = evaluate(statement({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, sub=other))
    assert not evaluation.allowed
    failing = [c for c in evaluation.statements[0].conditions if not c.ok]
    assert [c.key for c in failing] == [f"{P}:sub"]


@pytest.mark.parametrize("operator", ["StringLke", "IpAdress", "Foo:StringLike", "NullIfExists"])
def test_an_operator_iam_does_not_know_fails(operator: str) -> None:
    evaluation = evaluate(statement({operator: {"aws:SourceIp": "x"}}))
    assert not evaluation.allowed
    (failing,) = [c for c in evaluation.statements[0].conditions if not c.ok]
    assert "not an IAM condition operator" in failing.why


def test_keys_sts_never_sets_for_this_token_are_still_evaluated() -> None:
    """The issuer's own keys other than aud and sub, and another provider's: absent, so they fail."""
    for key in (f"{P}:amr", "token.actions.githubusercontent.com:sub"):
        evaluation = evaluate(statement({"StringEquals": {f"{P}:aud": AUD, key: "x"}}))
        assert not evaluation.allowed and not not_evaluated(evaluation), key
