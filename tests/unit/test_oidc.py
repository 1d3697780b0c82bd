from __future__ import annotations

import jwt
import pytest

from pipe import oidc
from pipe.errors import InputError

ISS = "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
PROVIDER = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"


def token(**claims: object) -> str:
    base = {"iss": ISS, "aud": "ari:cloud:bitbucket::workspace/w", "sub": "{r}:{s}", "repositoryUuid": "{r}"}
    return jwt.encode(base | claims, "k" * 32, algorithm="HS256")


def test_claims_and_condition_keys() -> None:
    claims = oidc.decode(token(exp=1_700_000_000, branchName="main"))
    assert claims.provider == PROVIDER and not claims.in_deployment
    statement = oidc.trust_statement(claims, "123456789012")
    assert statement["Principal"]["Federated"] == f"arn:aws:iam::123456789012:oidc-provider/{PROVIDER}"
    assert statement["Condition"]["StringEquals"] == {f"{PROVIDER}:aud": "ari:cloud:bitbucket::workspace/w"}
    assert statement["Condition"]["StringLike"] == {f"{PROVIDER}:sub": "{r}:*"}
    assert "branchName                 main" in claims.summary()


def test_deployment_step_sub_pattern() -> None:
    claims = oidc.decode(token(sub="{r}:{e}:{s}", deploymentEnvironmentUuid="{e}"))
    assert claims.in_deployment and oidc.sub_pattern(claims) == "{r}:{e}:*"


def test_expiry_text() -> None:
    claims = oidc.decode(token(exp=1000))
    assert "expired 500s ago" in oidc.expiry_text(claims, 1500)
    assert "valid for 500s more" in oidc.expiry_text(claims, 500)


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", jwt.encode({"aud": "x"}, "k" * 32, algorithm="HS256")])
def test_not_a_bitbucket_token(bad: str) -> None:
    with pytest.raises(InputError) as err:
        oidc.decode(bad)
    assert err.value.variable == "BITBUCKET_STEP_OIDC_TOKEN"
