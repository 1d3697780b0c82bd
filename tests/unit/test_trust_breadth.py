"""Trust that is too broad, decided by the evaluator (issue 15, item 13): for generated
statements, the check warns exactly when the stand-in STS's own evaluation (tests/standins/
trust.py, independent of pipe/) admits a foreign token: one of another repository of the
workspace, of another deployment environment of this repository (in a deployment step), or
of another workspace's provider that the statement trusts too.

The foreign tokens here are drawn at random, and the check makes up its own: the patterns are
built from characters that do not tell two foreign ids apart (`{`, `}`, `:`, `-`, `*`, `?`, and
this token's own ids whole), so any two foreign tokens of one shape get the same answer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipe import oidc, trust_policy
from tests.standins import trust

ACCOUNT = "123456789012"
WORKSPACE = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
SECOND = "api.bitbucket.org/2.0/workspaces/other/pipelines-config/identity/oidc"
ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{WORKSPACE}"
SECOND_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{SECOND}"
AUD = "ari:cloud:bitbucket::workspace/5a3c2f1e-0b7d-4e8a-9c6f-1d2e3f4a5b6c"
SECOND_AUD = "ari:cloud:bitbucket::workspace/0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b"
REPO = "{8e3f6a1b-2c4d-4e5f-8a9b-0c1d2e3f4a5b}"
ENV = "{b7c6d5e4-f3a2-4b1c-9d8e-7f6a5b4c3d2e}"
STEP = "{1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d}"
BREADTH = {"no-sub", "sub-any", "other-environment", "other-workspace", "principal-any"}


def claims(environment: bool) -> oidc.TokenClaims:
    return oidc.TokenClaims(
        iss=f"https://{WORKSPACE}",
        aud=AUD,
        sub=f"{REPO}:{ENV}:{STEP}" if environment else f"{REPO}:{STEP}",
        repository_uuid=REPO,
        deployment_environment_uuid=ENV if environment else "",
    )


# -- generated statements ------------------------------------------------------------------------
PIECES = ["{", "}", ":", "-", "*", "?", "*:", "{*}", REPO, ENV, f"{REPO}:", f"{ENV}:", REPO[:-1]]
patterns = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
STRING_OPERATORS = [
    "StringLike",
    "StringNotLike",
    "StringEquals",
    "StringNotEquals",
    "StringLikeIfExists",
    "StringNotLikeIfExists",
    "ForAnyValue:StringLike",
    "ForAllValues:StringLike",
    "ForAllValues:StringNotLike",
    "StringEqualsIgnoreCase",
]


@st.composite
def sub_conditions(draw: st.DrawFn, provider: str) -> tuple[str, str, Any]:
    operator = draw(st.sampled_from([*STRING_OPERATORS, "Null"]))
    if operator == "Null":
        return operator, f"{provider}:sub", draw(st.sampled_from(["true", "false"]))
    values = draw(st.lists(patterns, min_size=1, max_size=2))
    return operator, f"{provider}:sub", values[0] if len(values) == 1 else values


@st.composite
def statements(draw: st.DrawFn, second_provider: bool = False) -> dict[str, Any]:
    condition: dict[str, dict[str, Any]] = {}
    for operator, key, value in draw(st.lists(sub_conditions(WORKSPACE), max_size=2)):
        condition.setdefault(operator, {})[key] = value
    aud = draw(st.sampled_from(["StringEquals", "ForAllValues:StringEquals", "StringEqualsIfExists", None]))
    if aud:
        condition.setdefault(aud, {})[f"{WORKSPACE}:aud"] = AUD
    principals = [ARN, SECOND_ARN] if second_provider else ARN
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Federated": principals},
        "Action": "sts:AssumeRoleWithWebIdentity",
    }
    if condition:
        statement["Condition"] = condition
    return statement


def ids() -> st.SearchStrategy[str]:
    return st.uuids().map(lambda u: "{" + str(u) + "}")


def oracle(statement: dict[str, Any], provider: str, aud: str, sub: str) -> bool:
    """The stand-in STS: does the statement admit a token of ``provider`` with this aud and sub?"""
    return trust.allows(
        {"Statement": [statement]},
        principal=f"arn:aws:iam::{ACCOUNT}:oidc-provider/{provider}",
        action="sts:AssumeRoleWithWebIdentity",
        context={f"{provider}:aud": aud, f"{provider}:sub": sub},
    )


def warned(statement: dict[str, Any], environment: bool) -> set[str]:
    evaluation = trust_policy.evaluate(
        {"Statement": [statement]}, claims=claims(environment), provider_arn=ARN
    )
    return {f.code for f in evaluation.findings} & BREADTH


@settings(max_examples=400, deadline=None)
@given(statement=statements(), environment=st.booleans(), repo=ids(), env=ids(), step=ids())
def test_warned_exactly_when_another_repository_or_environment_gets_in(
    statement: dict[str, Any], environment: bool, repo: str, env: str, step: str
) -> None:
    other_repo = oracle(statement, WORKSPACE, AUD, f"{repo}:{step}") or oracle(
        statement, WORKSPACE, AUD, f"{repo}:{env}:{step}"
    )
    other_env = environment and (
        oracle(statement, WORKSPACE, AUD, f"{REPO}:{env}:{step}")
        or oracle(statement, WORKSPACE, AUD, f"{REPO}:{step}")
    )
    codes = warned(statement, environment)
    assert bool(codes & {"no-sub", "sub-any"}) is other_repo, (codes, statement)
    assert ("other-environment" in codes) is (other_env and not other_repo), (codes, statement)


@settings(max_examples=300, deadline=None)
@given(statement=statements(second_provider=True), repo=ids(), step=ids())
def test_warned_exactly_when_another_workspace_gets_in(
    statement: dict[str, Any], repo: str, step: str
) -> None:
    """The statement trusts a second workspace's provider too; its conditions name this one's keys."""
    admitted = oracle(statement, SECOND, SECOND_AUD, f"{repo}:{step}")
    assert ("other-workspace" in warned(statement, False)) is admitted, statement


# -- the patterns, by name -----------------------------------------------------------------
def like(sub: str, operator: str = "StringLike") -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Principal": {"Federated": ARN},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{WORKSPACE}:aud": AUD}, operator: {f"{WORKSPACE}:sub": sub}},
    }


@pytest.mark.parametrize("sub", ["*", "{*}:*", "*:*", "{*}:{*}", "{*", "**", "{*}*", "{*}:{*}:{*}", "?*"])
def test_every_pattern_that_admits_any_repository_is_flagged(sub: str) -> None:
    assert warned(like(sub), False) == {"sub-any"}


@pytest.mark.parametrize("sub", [f"{REPO}:*", f"{REPO}:{{*}}", f"{REPO}*", f"{REPO}:{ENV}:*"])
def test_this_repository_only_is_not_flagged(sub: str) -> None:
    assert warned(like(sub), False) == set()


def test_a_deployment_step_flags_trust_in_every_environment() -> None:
    assert warned(like(f"{REPO}:*"), True) == {"other-environment"}
    assert warned(like(f"{REPO}:{ENV}:*"), True) == set()


def test_a_second_workspace_under_for_all_values_is_flagged() -> None:
    statement = like(f"{REPO}:*", "ForAllValues:StringLike")
    statement["Condition"] = {"ForAllValues:StringLike": statement["Condition"]["ForAllValues:StringLike"]}
    statement["Principal"] = {"Federated": [ARN, SECOND_ARN]}
    assert warned(statement, False) == {"other-workspace"}
    # Its own conditions on the second provider's keys: not flagged.
    statement["Condition"]["StringLike"] = {f"{SECOND}:sub": "{" + str(uuid.uuid4()) + "}:*"}
    assert warned(statement, False) == set()
