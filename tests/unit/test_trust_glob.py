"""StringLike matching, in the check's evaluator and in the stand-in STS's oracle: the same
answers, and no exponential backtracking (a regex of `.*` runs took 13.5 s on a 21-character
`*a*a...*X`; minutes and more on longer ones)."""

from __future__ import annotations

from typing import Any

import pytest

from pipe import oidc, trust_policy
from tests.standins import trust

P = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
ARN = f"arn:aws:iam::123456789012:oidc-provider/{P}"

CASES = [
    ("", "", True),
    ("", "a", False),
    ("*", "", True),
    ("?", "", False),
    ("a", "", False),
    ("*", "anything at all", True),
    ("**", "x", True),
    ("?", "x", True),
    ("?", "xy", False),
    ("??", "xy", True),
    ("a*", "a", True),
    ("a*", "ba", False),
    ("*a", "ba", True),
    ("*a", "ab", False),
    ("a*b*c", "aXbYc", True),
    ("a*b*c", "aXbYcZ", False),
    ("a*b?c", "abXc", True),
    ("a*b?c", "abc", False),
    ("*ab*ab", "abXabab", True),
    ("{r}:*", "{r}:{s}", True),
    ("{r}:*", "{R}:{s}", False),  # values are case-sensitive
    ("{r}:?{s}", "{r}:{s}", False),
    ("a.c", "abc", False),  # a dot is a dot
    ("a+", "aa", False),
    ("[ab]", "a", False),  # brackets are literal
    ("[ab]", "[ab]", True),
    ("a\\*", "a\\bc", True),  # no escapes: the backslash is literal, the star a star
    ("line*", "line1\nline2", True),  # a star spans newlines
    ("?", "\n", True),
]


def claims(sub: str) -> oidc.TokenClaims:
    return oidc.TokenClaims(iss=f"https://{P}", aud="ari:cloud:bitbucket::workspace/w", sub=sub)


def like(pattern: str, ignore_case_action: bool = False) -> dict[str, Any]:
    return {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": ARN},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringLike": {f"{P}:sub": pattern}},
            }
        ]
    }


def pipe_says(pattern: str, value: str) -> bool:
    return trust_policy.evaluate(like(pattern), claims=claims(value), provider_arn=ARN).allowed


def oracle_says(pattern: str, value: str) -> bool:
    return trust.allows(
        like(pattern),
        principal=ARN,
        action="sts:AssumeRoleWithWebIdentity",
        context={f"{P}:aud": "ari:cloud:bitbucket::workspace/w", f"{P}:sub": value},
    )


@pytest.mark.parametrize(("pattern", "value", "matches"), CASES)
def test_string_like(pattern: str, value: str, matches: bool) -> None:
    assert trust_policy._glob(pattern, value) is matches
    assert trust._glob(pattern, value) is matches
    if value:  # an empty sub never reaches evaluation (decode refuses it)
        assert pipe_says(pattern, value) is matches
        assert oracle_says(pattern, value) is matches


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("STS:AssumeRole*", "sts:AssumeRoleWithWebIdentity", True),
        ("sts:*", "STS:X", True),
        ("a?", "Ab", True),
    ],
)
def test_ignore_case(pattern: str, value: str, matches: bool) -> None:
    assert trust_policy._glob(pattern, value, ignore_case=True) is matches
    assert trust._glob(pattern, value, ignore_case=True) is matches
    assert trust_policy._glob(pattern, value) is (pattern == value)


def test_actions_match_without_regard_to_case() -> None:
    policy = like("*")
    policy["Statement"][0]["Action"] = "STS:AssumeRoleWith*"
    assert trust_policy.evaluate(policy, claims=claims("{r}:{s}"), provider_arn=ARN).allowed
    assert trust.allows(
        policy, principal=ARN, action="sts:AssumeRoleWithWebIdentity", context={f"{P}:sub": "{r}:{s}"}
    )


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("*a" * 10 + "X", "a" * 77),  # the 21 characters, on a sub's length
        ("*a" * 200 + "X", "a" * 400),
        ("*" + "?*" * 300 + "X", "b" * 400),
        ("*a*" * 100 + "b", "{" + "a" * 300 + "}"),
    ],
)
def test_pathological_patterns_finish(pattern: str, value: str) -> None:
    """Each of these backtracks for ages in a regex (the old matcher); both matchers here
    walk them in at most len(pattern) x len(value) steps."""
    assert trust_policy._glob(pattern, value) is False
    assert trust._glob(pattern, value) is False
    assert pipe_says(pattern, value) is False and oracle_says(pattern, value) is False
    assert trust_policy._glob(pattern[:-1], value) is trust._glob(pattern[:-1], value)


def test_the_two_matchers_agree_on_every_short_pattern() -> None:
    """Exhaustive over an alphabet of a, b, * and ?: patterns up to 5, values up to 5."""
    import itertools

    values = ["".join(v) for n in range(6) for v in itertools.product("ab", repeat=n)]
    for n in range(6):
        for pattern in map("".join, itertools.product("ab*?", repeat=n)):
            for value in values:
                assert trust_policy._glob(pattern, value) is trust._glob(pattern, value), (pattern, value)
