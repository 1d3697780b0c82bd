"""A corpus of trust-policy shapes: from the seed articles, AWS's documentation and the
mistakes people report. For each: the verdict expected, what the pipe's evaluator says, and
what the stand-in STS really does when the role is assumed (the oracle). All three agree,
and the diagnosis names the real cause."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from pipe import oidc, trust_policy
from tests.standins.aws import ACCOUNT
from tests.standins.issuer import braced
from tests.standins.sandbox import REGION, Sandbox

GITHUB = "token.actions.githubusercontent.com"


@dataclass
class Shape:
    name: str
    build: Callable[[dict[str, str]], Any]  # names -> Statement list
    allowed: bool
    says: str = ""  # a phrase of the diagnosis, or a finding code
    deployment: bool = False
    # What STS answers, when it differs from the check's evaluation: a condition the check does
    # not evaluate (aws:SourceIp) that AWS refuses.
    aws: bool | None = None


def stmt(v: dict[str, str], condition: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Federated": v["arn"]},
        "Action": "sts:AssumeRoleWithWebIdentity",
    }
    if condition is not None:
        statement["Condition"] = condition
    statement.update(overrides)
    return statement


def good(v: dict[str, str]) -> dict[str, Any]:
    return {"StringEquals": {f"{v['p']}:aud": v["aud"]}, "StringLike": {f"{v['p']}:sub": f"{v['repo']}:*"}}


SHAPES = [
    Shape("the recommended statement", lambda v: [stmt(v, good(v))], True),
    Shape(
        "the seed article: aud only",
        lambda v: [stmt(v, {"StringEquals": {f"{v['p']}:aud": v["aud"]}})],
        True,
        "no-sub",
    ),
    Shape("no condition at all", lambda v: [stmt(v)], True, "no-aud"),
    Shape(
        "StringEquals on a wildcard sub",
        lambda v: [stmt(v, {"StringEquals": {f"{v['p']}:sub": f"{v['repo']}:*"}})],
        False,
        "use StringLike",
    ),
    Shape(
        "sub without the step part",
        lambda v: [stmt(v, {"StringEquals": {f"{v['p']}:sub": v["repo"]}})],
        False,
        "only the repository",
    ),
    Shape(
        "StringLike sub without :*",
        lambda v: [stmt(v, {"StringLike": {f"{v['p']}:sub": v["repo"]}})],
        False,
        "only the repository",
    ),
    Shape(
        "audience with braces",
        lambda v: [stmt(v, {"StringEquals": {f"{v['p']}:aud": v["aud_braced"]}})],
        False,
        "braces",
    ),
    Shape(
        "a custom audience",
        lambda v: [stmt(v, {"StringEquals": {f"{v['p']}:aud": "sts.amazonaws.com"}})],
        False,
        "the token's aud is",
    ),
    Shape(
        "another repository's sub",
        lambda v: [stmt(v, {"StringLike": {f"{v['p']}:sub": f"{v['other']}:*"}})],
        False,
        "another repository",
    ),
    Shape(
        "sub in upper case",
        lambda v: [stmt(v, {"StringLike": {f"{v['p']}:sub": f"{v['repo'].upper()}:*"}})],
        False,
        "letter case",
    ),
    Shape(
        "GitHub's condition keys",
        lambda v: [stmt(v, {"StringLike": {f"{GITHUB}:sub": "repo:acme/*"}})],
        False,
        "prefix",
    ),
    Shape(
        "GitHub's provider as principal",
        lambda v: [
            stmt(v, good(v), Principal={"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GITHUB}"})
        ],
        False,
        "not this token's provider",
    ),
    Shape(
        "Bitbucket and GitHub in one role",
        lambda v: [
            stmt(v, good(v)),
            stmt(
                v,
                {"StringLike": {f"{GITHUB}:sub": "repo:acme/*"}},
                Principal={"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GITHUB}"},
            ),
        ],
        True,
        "other-principal",
    ),
    Shape(
        "an AWS principal instead of Federated",
        lambda v: [stmt(v, good(v), Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"})],
        False,
        "not Federated",
    ),
    Shape(
        "sts:AssumeRole instead of ...WithWebIdentity",
        lambda v: [stmt(v, good(v), Action="sts:AssumeRole")],
        False,
        "action",
    ),
    Shape("sts:* action", lambda v: [stmt(v, good(v), Action="sts:*")], True),
    Shape(
        "action in a list",
        lambda v: [stmt(v, good(v), Action=["sts:TagSession", "sts:AssumeRoleWithWebIdentity"])],
        True,
    ),
    Shape(
        "sub of *",
        lambda v: [
            stmt(v, {"StringEquals": {f"{v['p']}:aud": v["aud"]}, "StringLike": {f"{v['p']}:sub": "*"}})
        ],
        True,
        "sub-any",
    ),
    Shape("any principal", lambda v: [stmt(v, good(v), Principal="*")], True, "principal-any"),
    Shape(
        "sub of {*}:{*}",
        lambda v: [
            stmt(v, {"StringEquals": {f"{v['p']}:aud": v["aud"]}, "StringLike": {f"{v['p']}:sub": "{*}:{*}"}})
        ],
        True,
        "sub-any",
    ),
    Shape(
        "a second workspace's provider under ForAllValues",
        lambda v: [
            stmt(
                v,
                {"ForAllValues:StringLike": {f"{v['p']}:sub": f"{v['repo']}:*"}},
                Principal={"Federated": [v["arn"], v["arn"].replace("/acme/", "/other/")]},
            )
        ],
        True,
        "other-workspace",
    ),
    Shape(
        "every environment, deployment step",
        lambda v: [stmt(v, good(v))],
        True,
        "other-environment",
        True,
    ),
    Shape(
        "IpAddress on aws:SourceIp",
        lambda v: [stmt(v, {**good(v), "IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})],
        True,
        "not evaluated",
    ),
    Shape(
        "IpAddress on aws:SourceIp elsewhere",
        lambda v: [stmt(v, {**good(v), "IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})],
        True,
        "not evaluated",
        aws=False,
    ),
    Shape(
        "sts:RoleSessionName",
        lambda v: [
            stmt(v, {**good(v), "StringEquals": {f"{v['p']}:aud": v["aud"], "sts:RoleSessionName": "corpus"}})
        ],
        True,
        "not evaluated",
    ),
    Shape(
        "a deployment environment, deployment step",
        lambda v: [
            stmt(
                v,
                {
                    "StringLike": {f"{v['p']}:sub": f"{v['repo']}:{v['env']}:*"},
                    "StringEquals": {f"{v['p']}:aud": v["aud"]},
                },
            )
        ],
        True,
        "",
        True,
    ),
    Shape(
        "a deployment environment, plain step",
        lambda v: [
            stmt(
                v,
                {
                    "StringLike": {f"{v['p']}:sub": f"{v['repo']}:{v['env']}:*"},
                    "StringEquals": {f"{v['p']}:aud": v["aud"]},
                },
            )
        ],
        False,
        "does not match",
    ),
    Shape(
        "several repositories in a list",
        lambda v: [
            stmt(
                v,
                {
                    "StringLike": {f"{v['p']}:sub": [f"{v['other']}:*", f"{v['repo']}:*"]},
                    "StringEquals": {f"{v['p']}:aud": v["aud"]},
                },
            )
        ],
        True,
    ),
    Shape(
        "ForAnyValue:StringLike",
        lambda v: [
            stmt(
                v,
                {
                    "ForAnyValue:StringLike": {f"{v['p']}:sub": [f"{v['other']}:*", f"{v['repo']}:*"]},
                    "StringEquals": {f"{v['p']}:aud": v["aud"]},
                },
            )
        ],
        True,
    ),
    Shape(
        "ForAllValues:StringLike on the other repository",
        lambda v: [
            stmt(
                v,
                {
                    "ForAllValues:StringLike": {f"{v['p']}:sub": f"{v['other']}:*"},
                    "StringEquals": {f"{v['p']}:aud": v["aud"]},
                },
            )
        ],
        False,
        "another repository",
    ),
    Shape(
        "IfExists on a key STS does not set",
        lambda v: [stmt(v, {**good(v), "StringEqualsIfExists": {f"{v['p']}:amr": "x"}})],
        True,
    ),
    Shape(
        "a key STS does not set",
        lambda v: [stmt(v, {**good(v), "StringEquals": {f"{v['p']}:amr": "authenticated"}})],
        False,
        "sets no 'amr'",
    ),
    Shape(
        "StringNotLike other repositories only",
        lambda v: [
            stmt(
                v,
                {
                    "StringNotLike": {f"{v['p']}:sub": f"{v['other']}:*"},
                    "StringEquals": {f"{v['p']}:aud": v["aud"]},
                },
            )
        ],
        True,
        "no-sub",
    ),
    Shape(
        "StringNotEquals excluding this very sub",
        lambda v: [stmt(v, {"StringNotLike": {f"{v['p']}:sub": f"{v['repo']}:*"}})],
        False,
        "excludes",
    ),
    Shape(
        "an explicit Deny for this repository",
        lambda v: [
            stmt(v, good(v)),
            stmt(v, {"StringLike": {f"{v['p']}:sub": f"{v['repo']}:*"}}, Effect="Deny"),
        ],
        False,
        "deny",
    ),
    Shape(
        "Null false on sub",
        lambda v: [
            stmt(v, {"Null": {f"{v['p']}:sub": "false"}, "StringEquals": {f"{v['p']}:aud": v["aud"]}})
        ],
        True,
        "no-sub",
    ),
    Shape("Null true on sub", lambda v: [stmt(v, {"Null": {f"{v['p']}:sub": "true"}})], False, "Null true"),
    Shape(
        "keys in another letter case",
        lambda v: [
            stmt(
                v,
                {
                    "StringEquals": {f"{v['p'].upper()}:AUD": v["aud"]},
                    "StringLike": {f"{v['p'].upper()}:SUB": f"{v['repo']}:*"},
                },
            )
        ],
        True,
    ),
    Shape(
        "StringEqualsIgnoreCase on aud",
        lambda v: [
            stmt(
                v,
                {
                    "StringEqualsIgnoreCase": {f"{v['p']}:aud": v["aud"].upper()},
                    "StringLike": {f"{v['p']}:sub": f"{v['repo']}:*"},
                },
            )
        ],
        True,
    ),
    Shape(
        "one statement for another repo, one for this one",
        lambda v: [stmt(v, {"StringLike": {f"{v['p']}:sub": f"{v['other']}:*"}}), stmt(v, good(v))],
        True,
    ),
]


def diagnosis(evaluation: trust_policy.Evaluation) -> str:
    parts = [f.code for f in evaluation.findings]
    for s in evaluation.statements:
        parts += [
            s.principal_why,
            "" if s.action_ok else "action",
            "deny" if s.effect == "Deny" and s.matches else "",
        ]
        parts += [c.why for c in s.conditions]
    return " | ".join(p for p in parts if p)


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_shape(sandbox: Sandbox, shape: Shape) -> None:
    env_uuid = braced()
    token = sandbox.token(environment_uuid=env_uuid if shape.deployment else None)
    claims = oidc.decode(token)
    names = {
        "p": claims.provider,
        "arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{claims.provider}",
        "aud": claims.aud,
        "aud_braced": f"ari:cloud:bitbucket::workspace/{{{claims.aud.rsplit('/', 1)[-1]}}}",
        "repo": sandbox.repo_uuid,
        "other": braced(),
        "env": env_uuid,
    }
    policy = {"Version": "2012-10-17", "Statement": shape.build(names)}
    role = sandbox.add_role(f"corpus-{uuid.uuid4().hex[:10]}", policy)
    sts = boto3.client(
        "sts", endpoint_url=sandbox.aws.url, region_name=REGION, config=Config(signature_version=UNSIGNED)
    )
    try:
        sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName="corpus", WebIdentityToken=token)
        oracle = True
    except sts.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied", exc
        oracle = False
    evaluation = trust_policy.evaluate(policy, claims=claims, provider_arn=names["arn"])
    said = diagnosis(evaluation)
    assert oracle is (shape.allowed if shape.aws is None else shape.aws), (
        f"the stand-in STS disagrees with the corpus: {json.dumps(policy)}"
    )
    assert evaluation.allowed is shape.allowed, said
    if shape.says:
        assert shape.says.lower() in said.lower(), said


def test_the_corpus_is_large_enough() -> None:
    assert len(SHAPES) >= 25
