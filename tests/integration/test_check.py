"""ACTION=check against the stand-ins. For every diagnosis the stand-in STS really refuses
the role (or really admits it), and the check names the real cause."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runner import Result, run_process
from tests.standins.aws import ACCOUNT
from tests.standins.aws import Fault as AwsFault
from tests.standins.bitbucket import Fault
from tests.standins.http import Request, Response, Server
from tests.standins.issuer import Issuer, braced, foreign_key
from tests.standins.sandbox import Sandbox, fresh_account

PROVIDER = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"


def check(
    sandbox: Sandbox, clone: Path, role: str, token: str | None = "mint", **extra: str
) -> tuple[Result, dict[str, Any]]:
    env = sandbox.step_env(
        clone,
        token=sandbox.token() if token == "mint" else token,
        ACTION="check",
        AWS_OIDC_ROLE_ARN=role,
        BITBUCKET_API_URL=sandbox.bitbucket.api_url,
        REPORT_DIR=str(clone / "reports"),
    )
    env.update(extra)
    result = run_process(env, clone, f"check-{uuid.uuid4().hex[:6]}")
    path = clone / "reports" / "oidc-check.json"
    return result, (json.loads(path.read_text()) if path.exists() else {})


def codes(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {f["code"]: f for f in report["findings"]}


def role_with(sandbox: Sandbox, policy: dict[str, Any], max_session: int = 3600) -> str:
    return sandbox.add_role(f"check-{uuid.uuid4().hex[:8]}", policy, max_session)


def test_ready(sandbox: Sandbox, clone: Path) -> None:
    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()))
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    assert report["verdict"] == "READY" and report["facts"]["assume"]["ok"] is True
    assert report["facts"]["signature"].startswith("signature verified")
    assert report["facts"]["trust_policy_admits_token"] is True
    assert (clone / "reports" / "oidc-check.md").read_text().startswith("# OIDC migration check: READY")


def test_no_oidc_true(sandbox: Sandbox, clone: Path) -> None:
    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()), token=None)
    assert result.failed_with("NOT READY", "oidc: true"), result.output
    assert "no-token" in codes(report)


def test_no_provider_for_the_issuer(sandbox: Sandbox, clone: Path) -> None:
    issuer = sandbox.bitbucket.add_issuer(f"ws-{uuid.uuid4().hex[:6]}")
    role = role_with(sandbox, sandbox.trust_policy(issuer=issuer))
    key_id, secret = sandbox.add_user_key(f"legacy-{uuid.uuid4().hex[:6]}")
    result, report = check(
        sandbox,
        clone,
        role,
        token=issuer.mint(sandbox.repo_uuid),
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
    )
    assert result.failed_with("NOT READY", "no IAM OIDC identity provider"), result.output
    assert "create-open-id-connect-provider" in codes(report)["no-provider"]["fix"]
    assert (
        "InvalidIdentityToken" in report["facts"]["assume"]["error"]
    )  # the stand-in STS refused for that reason


def test_audience_with_braces(sandbox: Sandbox, clone: Path) -> None:
    issuer = sandbox.bitbucket.add_issuer(f"ws-{uuid.uuid4().hex[:6]}")
    sandbox.add_oidc_provider(
        audiences=[f"ari:cloud:bitbucket::workspace/{issuer.workspace_uuid}"], issuer=issuer
    )
    role = role_with(sandbox, sandbox.trust_policy(issuer=issuer))
    result, report = check(sandbox, clone, role, token=issuer.mint(sandbox.repo_uuid))
    # Nothing could assume the role, and no key was given to read IAM: the report says so.
    assert result.failed_with("NOT READY"), result.output
    assert "Incorrect token audience" in report["facts"]["assume"]["error"]
    assert any("no credentials to read IAM" in u for u in report["not_read"])
    key_id, secret = sandbox.add_user_key(f"legacy-{uuid.uuid4().hex[:6]}")
    result, report = check(
        sandbox,
        clone,
        role,
        token=issuer.mint(sandbox.repo_uuid),
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
    )
    assert "braces" in codes(report)["audience"]["message"], report


def test_trust_policy_for_another_repository(sandbox: Sandbox, clone: Path) -> None:
    role = role_with(sandbox, sandbox.trust_policy(sub=f"{braced()}:*"))
    key_id, secret = sandbox.add_user_key(f"legacy-{uuid.uuid4().hex[:6]}")
    result, report = check(sandbox, clone, role, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    assert result.failed_with("NOT READY", "another repository"), result.output
    finding = codes(report)["trust-condition"]
    assert finding["fix"] == f'"StringLike": {{"{PROVIDER}:sub": "{sandbox.repo_uuid}:*"}}'
    assert "AccessDenied" in report["facts"]["assume"]["error"]


def test_string_equals_on_a_wildcard(sandbox: Sandbox, clone: Path) -> None:
    role = role_with(sandbox, sandbox.trust_policy(operator="StringEquals"))
    key_id, secret = sandbox.add_user_key(f"legacy-{uuid.uuid4().hex[:6]}")
    result, _ = check(sandbox, clone, role, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    assert result.failed_with("NOT READY", "use StringLike"), result.output


def test_trust_policy_file_when_iam_cannot_be_read(sandbox: Sandbox, clone: Path) -> None:
    policy = sandbox.trust_policy(sub=f"{braced()}:*")
    role = role_with(sandbox, policy)
    (clone / "trust.json").write_text(json.dumps(policy))
    result, report = check(sandbox, clone, role, TRUST_POLICY_FILE="trust.json")
    assert result.failed_with("NOT READY", "another repository"), result.output
    assert report["facts"]["trust_policy_source"].startswith("TRUST_POLICY_FILE")


def test_trust_that_is_too_broad_is_ready_with_warnings(sandbox: Sandbox, clone: Path) -> None:
    statement = dict(sandbox.trust_policy()["Statement"][0])
    statement["Condition"] = {"StringEquals": {f"{PROVIDER}:aud": sandbox.issuer.audience}}
    aud_only = {"Version": "2012-10-17", "Statement": [statement]}
    result, report = check(sandbox, clone, role_with(sandbox, aud_only))
    assert result.returncode == 0 and "READY" in result.last, result.output
    assert codes(report)["no-sub"]["severity"] == "warning"
    assert "every repository in the workspace" in result.output


@pytest.mark.parametrize("sub", ["{*}:{*}", "{*", "**", "{*}*"])
def test_a_sub_pattern_that_admits_every_repository_is_flagged(
    sandbox: Sandbox, clone: Path, sub: str
) -> None:
    """Issue 15, item 13: decided by the evaluator, not by the pattern's spelling."""
    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy(sub=sub)))
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    finding = codes(report)["sub-any"]
    assert finding["severity"] == "warning" and sub in finding["message"], finding
    assert finding["fix"] == f'"StringLike": {{"{PROVIDER}:sub": "{sandbox.repo_uuid}:*"}}'


def test_a_second_workspace_trusted_under_for_all_values_is_flagged(sandbox: Sandbox, clone: Path) -> None:
    """ForAllValues on this provider's sub holds for a token that has no such key: every token
    of the other workspace's provider gets in."""
    other = f"api.bitbucket.org/2.0/workspaces/other-{uuid.uuid4().hex[:6]}/pipelines-config/identity/oidc"
    sandbox.iam.create_open_id_connect_provider(
        Url=f"https://{other}",
        ClientIDList=["ari:cloud:bitbucket::workspace/other"],
        ThumbprintList=["0" * 40],
    )
    policy = sandbox.trust_policy()
    statement = policy["Statement"][0]
    statement["Principal"]["Federated"] = [
        statement["Principal"]["Federated"],
        f"arn:aws:iam::{ACCOUNT}:oidc-provider/{other}",
    ]
    statement["Condition"] = {"ForAllValues:StringLike": statement["Condition"]["StringLike"]}
    result, report = check(sandbox, clone, role_with(sandbox, policy))
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    finding = codes(report)["other-workspace"]
    assert finding["severity"] == "warning" and other in finding["message"], finding


def test_a_deployment_step_is_warned_of_trust_in_every_environment(sandbox: Sandbox, clone: Path) -> None:
    env = braced()
    token = sandbox.token(environment_uuid=env)
    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()), token=token)
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    finding = codes(report)["other-environment"]
    assert finding["fix"] == f'"StringLike": {{"{PROVIDER}:sub": "{sandbox.repo_uuid}:{env}:*"}}', finding
    # The deploy that narrows it: templates/oidc.yaml with this deployment environment.
    assert f"DeploymentEnvironmentUuid={env.strip('{}')}" in codes(report)["deploy-template"]["fix"], report
    narrow = sandbox.trust_policy(sub=f"{sandbox.repo_uuid}:{env}:*")
    result, report = check(
        sandbox, clone, role_with(sandbox, narrow), token=sandbox.token(environment_uuid=env)
    )
    assert result.returncode == 0 and "other-environment" not in codes(report), report["findings"]


@pytest.mark.parametrize(
    ("operator", "key", "value"),
    [("IpAddress", "aws:SourceIp", "127.0.0.0/8"), ("StringLike", "sts:RoleSessionName", "bitbucket-*")],
)
def test_a_condition_the_check_cannot_evaluate_does_not_make_it_not_ready(
    sandbox: Sandbox, clone: Path, operator: str, key: str, value: str
) -> None:
    """Issue 15, item 14: STS admits the token (the stand-in evaluates the request's own keys);
    the check says which condition it did not evaluate, and READY rests on AWS's answer."""
    policy = sandbox.trust_policy()
    policy["Statement"][0]["Condition"][operator] = {key: value}
    result, report = check(sandbox, clone, role_with(sandbox, policy))
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    finding = codes(report)["not-evaluated"]
    assert finding["severity"] == "info" and f"{operator} {key}" in finding["message"], finding
    assert report["facts"]["trust_policy_admits_token"] is True


def test_a_condition_not_evaluated_that_aws_refuses_is_not_ready(sandbox: Sandbox, clone: Path) -> None:
    policy = sandbox.trust_policy()
    policy["Statement"][0]["Condition"]["IpAddress"] = {"aws:SourceIp": "203.0.113.0/24"}
    key_id, secret = sandbox.add_user_key(f"legacy-{uuid.uuid4().hex[:6]}")  # IAM read with it
    result, report = check(
        sandbox, clone, role_with(sandbox, policy), AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret
    )
    assert result.failed_with("NOT READY"), result.output
    assert "IpAddress aws:SourceIp" in codes(report)["not-evaluated"]["message"]
    assert "AccessDenied" in report["facts"]["assume"]["error"]


def test_max_session_duration(sandbox: Sandbox, clone: Path) -> None:
    role = role_with(sandbox, sandbox.trust_policy(), max_session=3600)
    key_id, secret = sandbox.add_user_key(f"legacy-{uuid.uuid4().hex[:6]}")
    result, report = check(
        sandbox,
        clone,
        role,
        AWS_ROLE_DURATION_SECONDS="7200",
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
    )
    assert result.failed_with("NOT READY"), result.output
    assert "max-session" in codes(report) and "MaxSessionDuration" in report["facts"]["assume"]["error"]


def test_expired_token_and_clock(sandbox: Sandbox, clone: Path) -> None:
    role = role_with(sandbox, sandbox.trust_policy())
    result, report = check(sandbox, clone, role, token=sandbox.token(issued_offset=-7200, lifetime=3600))
    assert result.failed_with("NOT READY", "expired"), result.output
    assert "ExpiredTokenException" in report["facts"]["assume"]["error"]
    _, ahead = check(sandbox, clone, role, token=sandbox.token(issued_offset=600))
    assert "clock-skew" in codes(ahead)


def test_forged_signature_and_unreachable_keys(sandbox: Sandbox, clone: Path) -> None:
    role = role_with(sandbox, sandbox.trust_policy())
    result, report = check(sandbox, clone, role, token=sandbox.token(signing_key=foreign_key()))
    assert result.failed_with("NOT READY"), result.output
    assert "signature" in codes(report) and "could not be validated" in report["facts"]["assume"]["error"]
    sandbox.bitbucket.oidc_down = True
    _, down = check(sandbox, clone, role)
    assert down["facts"]["signature"].startswith("signature not verified")
    assert "verification key" in down["facts"]["assume"]["error"]


def test_the_role_account_must_be_allowed(sandbox: Sandbox, clone: Path) -> None:
    result, _ = check(
        sandbox, clone, f"arn:aws:iam::{ACCOUNT}:role/deploy", ALLOWED_ACCOUNT_IDS="111111111111"
    )
    assert result.failed_with("ALLOWED_ACCOUNT_IDS")
    assert sandbox.aws.requests == []


def test_legacy_keys_are_listed_and_idle_ones_retired_only_when_ready(sandbox: Sandbox, clone: Path) -> None:
    bb = sandbox.bitbucket
    slug = f"legacy-{uuid.uuid4().hex[:6]}"
    bb.add_repo("acme", slug, ("Production",))
    user = f"legacy-user-{uuid.uuid4().hex[:6]}"
    (used_id, used_secret), (idle_id, idle_secret) = sandbox.add_user(user, keys=2)
    env_uuid = bb.environment_uuid("acme", slug, "production")
    bb.put("acme", slug, "", "AWS_ACCESS_KEY_ID", used_id, secured=False)
    bb.put("acme", slug, "", "AWS_SECRET_ACCESS_KEY", used_secret, secured=True)
    bb.put("acme", slug, env_uuid, "PROD_AWS_ACCESS_KEY_ID", idle_id, secured=False)
    bb.put("acme", slug, env_uuid, "PROD_AWS_SECRET_ACCESS_KEY", idle_secret, secured=True)
    bb.put("acme", slug, "", "NPM_TOKEN", "not-an-aws-key-at-all", secured=True)
    sandbox.aws.age(used_id, 30, last_used_days_ago=1)
    sandbox.aws.age(idle_id, 30, last_used_days_ago=20)
    role = role_with(sandbox, sandbox.trust_policy())
    access = {
        "BITBUCKET_REPO_SLUG": slug,
        "BITBUCKET_ACCESS_TOKEN": bb.access_token("pipeline", "pipeline:variable"),
    }

    result, report = check(sandbox, clone, role, **access)
    assert result.returncode == 0, result.output
    # Only this repository's: other tests of the session keep keys in the workspace's variables.
    keys = {k["key_id"]: k for k in report["facts"]["legacy_keys"] if slug in k["scope"]}
    assert set(keys) == {used_id, idle_id}
    assert keys[used_id]["in_use"] is True and keys[idle_id]["in_use"] is False
    assert (
        keys[idle_id]["scope"] == f"acme/{slug}@Production"
        and keys[idle_id]["secret_variable"] == "PROD_AWS_SECRET_ACCESS_KEY"
    )
    assert "still in use" in result.output

    result, report = check(sandbox, clone, role, RETIRE_LEGACY_KEYS="true", DRY_RUN="true", **access)
    assert result.returncode == 0 and all(a.startswith("would ") for a in report["facts"]["retired"]), report[
        "facts"
    ]
    assert sandbox.aws.keys(user) == {used_id: "Active", idle_id: "Active"}

    other = role_with(sandbox, sandbox.trust_policy(sub=f"{braced()}:*"))
    result, report = check(sandbox, clone, other, RETIRE_LEGACY_KEYS="true", **access)
    assert result.returncode == 1 and "retire-skipped" in codes(report)
    assert sandbox.aws.keys(user) == {used_id: "Active", idle_id: "Active"}

    result, report = check(sandbox, clone, role, RETIRE_LEGACY_KEYS="true", **access)
    assert result.returncode == 0, result.output
    assert sandbox.aws.keys(user) == {used_id: "Active", idle_id: "Inactive"}
    assert set(bb.stored("acme", slug, env_uuid)) == set()
    assert set(bb.stored("acme", slug)) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "NPM_TOKEN"}
    assert report["facts"]["retired"] == [
        f"delete PROD_AWS_ACCESS_KEY_ID from acme/{slug}@Production",
        f"delete PROD_AWS_SECRET_ACCESS_KEY from acme/{slug}@Production",
        f"deactivate {idle_id} of {user}",
    ]


def test_without_bitbucket_access_the_legacy_keys_are_not_read(sandbox: Sandbox, clone: Path) -> None:
    _, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()))
    assert any("legacy keys" in item and "BITBUCKET_ACCESS_TOKEN" in item for item in report["not_read"])


@pytest.mark.filterwarnings("ignore:Unsupported scheme type")
def test_code_insights_report_through_the_auth_proxy(sandbox: Sandbox, clone: Path) -> None:
    from tests.integration.test_bitbucket_contract import check as follows_the_excerpt
    from tests.integration.test_bitbucket_contract import exchanges_from_log

    bb = sandbox.bitbucket
    bb.start_proxy()
    slug = f"insights-{uuid.uuid4().hex[:6]}"
    bb.add_repo("acme", slug)
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    role = role_with(sandbox, sandbox.trust_policy(sub=f"{braced()}:*"))
    bb.reset()
    key_id, secret = sandbox.add_user_key(f"legacy-{uuid.uuid4().hex[:6]}")
    result, _ = check(
        sandbox,
        clone,
        role,
        CI="true",
        BITBUCKET_REPO_SLUG=slug,
        BITBUCKET_COMMIT=commit,
        BITBUCKET_AUTH_PROXY_HOST="127.0.0.1",
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
    )
    assert result.failed_with("NOT READY"), result.output
    assert "Posted the Code Insights report" in result.output
    report = bb.reports[("acme", slug, commit, "aws-credentials-pipe-oidc-check")]
    assert report["result"] == "FAILED" and report["title"] == "OIDC migration check: NOT READY"
    notes = bb.annotations[("acme", slug, commit, "aws-credentials-pipe-oidc-check")]
    assert any("another repository" in n["summary"] and n["severity"] == "HIGH" for n in notes.values())
    posted = [e for e in exchanges_from_log(bb.log) if "/reports/" in str(e.request.url)]
    assert len(posted) == 2 and follows_the_excerpt(posted) == 2


def test_a_report_that_cannot_be_posted_is_only_a_warning(sandbox: Sandbox, clone: Path) -> None:
    role = role_with(sandbox, sandbox.trust_policy())
    result, _ = check(
        sandbox, clone, role, CI="true", BITBUCKET_COMMIT="a" * 40, BITBUCKET_AUTH_PROXY_HOST="127.0.0.2"
    )
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    assert "Code Insights report was not posted" in result.output
    assert len([line for line in result.lines if "✖" in line]) == 0


def test_outside_pipelines_no_code_insights_report_is_sent(sandbox: Sandbox, clone: Path) -> None:
    """Without CI=true (not a Pipelines step: no auth proxy) the check posts nothing. The
    toolkit used to send the report straight to api.bitbucket.org then; here any such request
    reaches a loopback recorder set as the process's HTTP proxy instead of the network."""
    seen: list[str] = []

    def record(request: Request) -> Response:
        seen.append(f"{request.method} {request.path}")
        return Response(502)

    recorder = Server(record).start()
    try:
        result, report = check(
            sandbox,
            clone,
            role_with(sandbox, sandbox.trust_policy()),
            BITBUCKET_COMMIT="a" * 40,
            http_proxy=recorder.url,
            HTTP_PROXY=recorder.url,
            https_proxy=recorder.url,
            HTTPS_PROXY=recorder.url,
            no_proxy="127.0.0.1,localhost",
            NO_PROXY="127.0.0.1,localhost",
        )
    finally:
        recorder.stop()
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    assert report["verdict"] == "READY"
    assert seen == []
    assert "Code Insights" not in result.output


# -- the signature: Bitbucket's keys only (issue 7, item 6) ------------------------------


@pytest.fixture
def attacker(sandbox: Sandbox) -> Iterator[tuple[Issuer, Server, list[str]]]:
    """A loopback server posing as an OIDC issuer: it serves the discovery document and the
    JWKS of its own key, and records every request it gets."""
    impostor = Issuer("acme")
    hits: list[str] = []

    def serve(request: Request) -> Response:
        hits.append(request.path)
        if request.path.endswith("/keys.json"):
            body = impostor.jwks()
        else:
            body = {**impostor.discovery(), "jwks_uri": f"{server.url}{ISSUER_PATH}/keys.json"}
        return Response(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    server = Server(serve).start()
    yield impostor, server, hits
    server.stop()


ISSUER_PATH = "/2.0/workspaces/acme/pipelines-config/identity/oidc"


def test_a_token_naming_another_issuer_is_not_fetched_from(
    sandbox: Sandbox, clone: Path, attacker: tuple[Issuer, Server, list[str]]
) -> None:
    impostor, server, hits = attacker
    token = impostor.mint(sandbox.repo_uuid, extra={"iss": f"{server.url}{ISSUER_PATH}"})
    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()), token=token)
    assert result.failed_with("NOT READY"), result.output
    assert report["facts"]["signature"].startswith("signature not verified: the token's issuer")
    assert codes(report)["issuer-not-bitbucket"]["severity"] == "warning"
    assert "is not Bitbucket's (https://api.bitbucket.org/2.0/workspaces/<workspace>/" in result.output
    assert hits == []


def test_a_redirect_from_the_issuer_is_not_followed(
    sandbox: Sandbox, clone: Path, attacker: tuple[Issuer, Server, list[str]]
) -> None:
    _, server, hits = attacker
    sandbox.bitbucket.inject(
        Fault(
            path="openid-configuration$",
            kind="redirect",
            url=f"{server.url}{ISSUER_PATH}/.well-known/openid-configuration",
        )
    )
    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()))
    assert result.returncode == 0, result.output  # AWS's own check is what READY rests on
    assert report["facts"]["signature"].startswith("signature not verified")
    assert "redirect (302)" in report["facts"]["signature"] and "signature-unverified" in codes(report)
    assert hits == []


def test_a_jwks_uri_on_another_origin_is_not_fetched(
    sandbox: Sandbox, clone: Path, attacker: tuple[Issuer, Server, list[str]]
) -> None:
    impostor, server, hits = attacker
    document = {**sandbox.issuer.discovery(), "jwks_uri": f"{server.url}{ISSUER_PATH}/keys.json"}
    sandbox.bitbucket.inject(
        Fault(path="openid-configuration$", kind="body", body=json.dumps(document).encode())
    )
    # Signed by the impostor's key under Bitbucket's issuer: its JWKS would "verify" it.
    forged = impostor.mint(
        sandbox.repo_uuid, extra={"iss": sandbox.issuer.url, "aud": sandbox.issuer.audience}
    )
    _, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()), token=forged)
    assert report["facts"]["signature"].startswith("signature not verified"), report["facts"]
    assert "is not on the issuer's origin" in report["facts"]["signature"]
    assert hits == []


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b'{"keys": {"kid": "x"}}',
        b'{"keys": "abc"}',
        b'{"keys": [1, 2]}',
        b"[]",
        b'{"keys": [{"kty": "RSA", "kid": "KID", "n": "!!!", "e": "AQAB", "alg": "RS256"}]}',
        b'{"keys": [{"kty": "RSA", "kid": "KID", "n": 5, "e": [], "alg": "RS256"}]}',
    ],
    ids=["not-json", "keys-a-dict", "keys-a-string", "keys-numbers", "a-list", "bad-modulus", "bad-types"],
)
def test_a_malformed_jwks_is_not_verified_and_not_an_internal_error(
    sandbox: Sandbox, clone: Path, body: bytes
) -> None:
    sandbox.bitbucket.inject(
        Fault(path="keys.json$", kind="body", body=body.replace(b"KID", sandbox.issuer.kid.encode()))
    )
    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()))
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    assert report["facts"]["signature"].startswith("signature not verified"), report["facts"]
    assert codes(report)["signature-unverified"]["severity"] == "info"


# -- retiring legacy keys: a secret is deleted only with its own id (issue 7, item 3) ------


def legacy_repo(sandbox: Sandbox) -> tuple[str, dict[str, str]]:
    bb = sandbox.bitbucket
    slug = f"legacy-{uuid.uuid4().hex[:6]}"
    bb.add_repo("acme", slug)
    access = {
        "BITBUCKET_REPO_SLUG": slug,
        "BITBUCKET_ACCESS_TOKEN": bb.access_token("pipeline", "pipeline:variable"),
        "RETIRE_LEGACY_KEYS": "true",
    }
    return slug, access


def test_retiring_an_idle_key_deletes_its_own_secret_not_the_one_in_use(
    sandbox: Sandbox, clone: Path
) -> None:
    """The issue's scenario: OLD_ACCESS_KEY_ID is idle, its secret is OLD_SECRET_KEY; the
    in-use pair is AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""
    bb = sandbox.bitbucket
    slug, access = legacy_repo(sandbox)
    user = f"legacy-user-{uuid.uuid4().hex[:6]}"
    (used_id, used_secret), (old_id, old_secret) = sandbox.add_user(user, keys=2)
    bb.put("acme", slug, "", "AWS_ACCESS_KEY_ID", used_id, secured=False)
    bb.put("acme", slug, "", "AWS_SECRET_ACCESS_KEY", used_secret, secured=True)
    bb.put("acme", slug, "", "OLD_ACCESS_KEY_ID", old_id, secured=False)
    bb.put("acme", slug, "", "OLD_SECRET_KEY", old_secret, secured=True)
    sandbox.aws.age(used_id, 30, last_used_days_ago=1)
    sandbox.aws.age(old_id, 30, last_used_days_ago=20)

    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()), **access)
    assert result.returncode == 0, result.output
    assert set(bb.stored("acme", slug)) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert sandbox.aws.keys(user) == {used_id: "Active", old_id: "Inactive"}
    assert [a for a in report["facts"]["retired"] if slug in a or old_id in a] == [
        f"delete OLD_ACCESS_KEY_ID from acme/{slug}",
        f"delete OLD_SECRET_KEY from acme/{slug}",
        f"deactivate {old_id} of {user}",
    ]


@pytest.mark.parametrize(
    ("variables", "why"),
    [
        # Two secrets could be OLD's: which one is not for the pipe to guess.
        (
            {"OLD_ACCESS_KEY_ID": "old", "OLD_SECRET_ACCESS_KEY": "old", "OLD_SECRET_KEY": "other"},
            "ambiguous",
        ),
        # OLD_ACCESS_KEY and OLD_ACCESS_KEY_ID both pair with OLD_SECRET_KEY.
        ({"OLD_ACCESS_KEY_ID": "old", "OLD_ACCESS_KEY": "used", "OLD_SECRET_KEY": "old"}, "ambiguous"),
        # No secret of its own: the old fallback deleted AWS_SECRET_ACCESS_KEY here.
        ({"OLD_ACCESS_KEY_ID": "old"}, "no secret variable pairs with OLD_ACCESS_KEY_ID"),
        # An id whose name says nothing of its secret.
        ({"DEPLOY_KEY": "old", "DEPLOY_SECRET": "old"}, "its secret variable is unknown"),
    ],
    ids=["two-secrets", "two-ids", "no-secret", "unnamed"],
)
def test_a_key_without_one_unambiguous_secret_is_not_retired(
    sandbox: Sandbox, clone: Path, variables: dict[str, str], why: str
) -> None:
    bb = sandbox.bitbucket
    slug, access = legacy_repo(sandbox)
    user = f"legacy-user-{uuid.uuid4().hex[:6]}"
    (used_id, used_secret), (old_id, old_secret) = sandbox.add_user(user, keys=2)
    bb.put("acme", slug, "", "AWS_ACCESS_KEY_ID", used_id, secured=False)
    bb.put("acme", slug, "", "AWS_SECRET_ACCESS_KEY", used_secret, secured=True)
    values = {"old": (old_id, old_secret), "used": (used_id, used_secret), "other": ("x", "y" * 40)}
    for name, which in variables.items():
        key_id, secret = values[which]
        is_secret = "SECRET" in name
        bb.put("acme", slug, "", name, secret if is_secret else key_id, secured=is_secret)
    sandbox.aws.age(used_id, 30, last_used_days_ago=1)
    sandbox.aws.age(old_id, 30, last_used_days_ago=20)
    before = set(bb.stored("acme", slug))

    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()), **access)
    assert result.returncode == 0, result.output
    assert set(bb.stored("acme", slug)) == before  # nothing deleted: no half pair, no other's secret
    assert sandbox.aws.keys(user) == {used_id: "Active", old_id: "Active"}
    refused = [f for f in report["findings"] if f["code"] == "retire-refused" and old_id in f["message"]]
    assert len(refused) == 1 and why in refused[0]["message"], report["findings"]
    assert not [a for a in report["facts"]["retired"] if old_id in a or slug in a]
    assert f"{old_id} was not retired" in result.output


# -- retiring legacy keys: only idle ones of this repository, never rotate's -----------------------


def test_a_key_never_used_is_idle_only_from_its_creation(sandbox: Sandbox, clone: Path) -> None:
    """A key published an hour ago (by ACTION=rotate, say) was never used yet: it is not idle.
    One never used in 30 days is."""
    bb = sandbox.bitbucket
    slug, access = legacy_repo(sandbox)
    user = f"legacy-user-{uuid.uuid4().hex[:6]}"
    (new_id, new_secret), (old_id, old_secret) = sandbox.add_user(user, keys=2)
    bb.put("acme", slug, "", "NEW_ACCESS_KEY_ID", new_id, secured=False)
    bb.put("acme", slug, "", "NEW_SECRET_ACCESS_KEY", new_secret, secured=True)
    bb.put("acme", slug, "", "OLD_ACCESS_KEY_ID", old_id, secured=False)
    bb.put("acme", slug, "", "OLD_SECRET_ACCESS_KEY", old_secret, secured=True)
    sandbox.aws.age(new_id, 1 / 24)
    sandbox.aws.age(old_id, 30)

    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()), **access)
    assert result.returncode == 0, result.output
    # One ListAccessKeys per user with a key never used (the workspace holds other tests' keys).
    never = {k["user"] for k in report["facts"]["legacy_keys"] if k["user"] and k["last_used"] is None}
    assert user in never and sandbox.aws.calls("ListAccessKeys") == len(never), sandbox.aws.requests
    assert sandbox.aws.keys(user) == {new_id: "Active", old_id: "Inactive"}
    assert set(bb.stored("acme", slug)) == {"NEW_ACCESS_KEY_ID", "NEW_SECRET_ACCESS_KEY"}
    keys = {k["key_id"]: k for k in report["facts"]["legacy_keys"] if slug in k["scope"]}
    assert keys[new_id]["in_use"] is True and keys[new_id]["idle_days"] == 0.0, keys
    assert keys[old_id]["in_use"] is False and keys[old_id]["idle_days"] == 30.0, keys
    assert keys[new_id]["last_used"] is None and keys[new_id]["created"], keys


def test_a_key_in_a_workspace_variable_is_never_retired(sandbox: Sandbox, clone: Path) -> None:
    """Other repositories of the workspace may still use it (a monthly release pipeline)."""
    bb = sandbox.bitbucket
    slug, access = legacy_repo(sandbox)
    user = f"legacy-user-{uuid.uuid4().hex[:6]}"
    (shared_id, shared_secret), (own_id, own_secret) = sandbox.add_user(user, keys=2)
    prefix = f"WS{uuid.uuid4().hex[:6].upper()}_"
    bb.put("acme", "", "", f"{prefix}ACCESS_KEY_ID", shared_id, secured=False)
    bb.put("acme", "", "", f"{prefix}SECRET_ACCESS_KEY", shared_secret, secured=True)
    bb.put("acme", slug, "", "OLD_ACCESS_KEY_ID", own_id, secured=False)
    bb.put("acme", slug, "", "OLD_SECRET_ACCESS_KEY", own_secret, secured=True)
    sandbox.aws.age(shared_id, 60, last_used_days_ago=25)
    sandbox.aws.age(own_id, 60, last_used_days_ago=25)

    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()), **access)
    assert result.returncode == 0, result.output
    assert sandbox.aws.keys(user) == {shared_id: "Active", own_id: "Inactive"}
    assert {f"{prefix}ACCESS_KEY_ID", f"{prefix}SECRET_ACCESS_KEY"} <= set(bb.stored("acme"))
    assert set(bb.stored("acme", slug)) == set()
    refused = [f for f in report["findings"] if f["code"] == "retire-refused" and shared_id in f["message"]]
    assert len(refused) == 1, report["findings"]
    assert "other repositories of the workspace" in refused[0]["message"]
    assert "by hand" in refused[0]["message"] and "every repository" in refused[0]["message"]
    assert not [a for a in report["facts"]["retired"] if shared_id in a or prefix in a]


def test_a_key_that_action_rotate_manages_is_not_retired(sandbox: Sandbox, clone: Path) -> None:
    bb = sandbox.bitbucket
    slug, access = legacy_repo(sandbox)
    user = f"legacy-user-{uuid.uuid4().hex[:6]}"
    ((key_id, secret),) = sandbox.add_user(user)
    sandbox.iam.tag_user(UserName=user, Tags=[{"Key": "aws-credentials-pipe/managed", "Value": "rotate"}])
    bb.put("acme", slug, "", "AWS_ACCESS_KEY_ID", key_id, secured=False)
    bb.put("acme", slug, "", "AWS_SECRET_ACCESS_KEY", secret, secured=True)
    sandbox.aws.age(key_id, 60, last_used_days_ago=25)

    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()), **access)
    assert result.returncode == 0, result.output
    assert sandbox.aws.keys(user) == {key_id: "Active"}
    assert set(bb.stored("acme", slug)) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    refused = [f for f in report["findings"] if f["code"] == "retire-refused" and key_id in f["message"]]
    assert len(refused) == 1 and "ACTION=rotate" in refused[0]["message"], report["findings"]


# -- IAM is read in the role's account only (a fallback key of another account) ----------------


def test_a_fallback_key_of_another_account_does_not_read_the_role(sandbox: Sandbox, clone: Path) -> None:
    """The role's name exists in the key's account too, trusting another repository, and that
    account has no provider: reading there would give NOT READY for the wrong role."""
    name = f"check-{uuid.uuid4().hex[:8]}"
    role = sandbox.add_role(name, sandbox.trust_policy())
    other = fresh_account()
    sandbox.account_iam(other).create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(sandbox.trust_policy(sub=f"{braced()}:*"))
    )
    (key_id,) = sandbox.account_user(other, f"ci-{uuid.uuid4().hex[:6]}")
    secret = sandbox.aws.issued[key_id]

    result, report = check(sandbox, clone, role, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    assert report["facts"]["iam_read_with"].startswith("the assumed role"), json.dumps(report)
    assert report["facts"]["trust_policy_source"] == "iam:GetRole"
    assert report["facts"]["provider"]["arn"].startswith(f"arn:aws:iam::{ACCOUNT}:")
    note = codes(report)["iam-other-account"]
    assert other in note["message"] and ACCOUNT in note["message"] and key_id in note["message"]

    # No role session to fall back on: the reads are not done, and the report says why.
    broken = sandbox.add_role(f"check-{uuid.uuid4().hex[:8]}", sandbox.trust_policy(sub=f"{braced()}:*"))
    result, report = check(sandbox, clone, broken, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    assert result.failed_with("NOT READY"), result.output
    assert "no-role" not in codes(report) and "no-provider" not in codes(report), report["findings"]
    unread = [item for item in report["not_read"] if other in item]
    assert len(unread) == 2 and any("provider" in i for i in unread), report["not_read"]


# -- ACTION=audit's Code Insights report (here: it binds the auth proxy's fixed port too) --------
@pytest.mark.filterwarnings("ignore:Unsupported scheme type")
def test_audit_posts_its_code_insights_report_through_the_auth_proxy(sandbox: Sandbox, clone: Path) -> None:
    from tests.integration.test_audit import Fleet
    from tests.integration.test_bitbucket_contract import check as follows_the_excerpt
    from tests.integration.test_bitbucket_contract import exchanges_from_log

    bb = sandbox.bitbucket
    bb.start_proxy()
    slug = f"audit-insights-{uuid.uuid4().hex[:6]}"
    bb.add_repo("acme", slug)
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    fleet = Fleet(sandbox, clone)
    old = fleet.user("alice", 120)[0]
    bb.reset()
    env = fleet.env(
        AUDIT_MODE="report",
        CI="true",
        BITBUCKET_REPO_SLUG=slug,
        BITBUCKET_COMMIT=commit,
        BITBUCKET_AUTH_PROXY_HOST="127.0.0.1",
    )
    result = run_process(env, clone, "audit-insights")
    assert result.returncode == 0, result.output
    assert "Posted the Code Insights report" in result.output
    report = bb.reports[("acme", slug, commit, "aws-credentials-pipe-audit")]
    assert report["result"] == "PASSED" and report["title"] == "IAM access key audit (report)"
    notes = bb.annotations[("acme", slug, commit, "aws-credentials-pipe-audit")]
    # What enforce would do, not done (report): a new key now, the old one deactivated a day later.
    assert any(
        f"alice: create ({old} is 120 days old" in n["summary"] and n["result"] == "SKIPPED"
        for n in notes.values()
    )
    assert any(
        f"{old} to be deactivated on" in n["summary"] and n["result"] == "SKIPPED" for n in notes.values()
    )
    posted = [e for e in exchanges_from_log(bb.log) if "/reports/" in str(e.request.url)]
    assert len(posted) == 2 and follows_the_excerpt(posted) == 2


# -- retiring legacy keys in the key's own account only (issue 15, item 5) -----------------------


@pytest.mark.parametrize("namesake", [True, False], ids=["namesake-user-in-role-account", "no-namesake"])
def test_a_legacy_key_of_another_account_is_not_retired(
    sandbox: Sandbox, clone: Path, namesake: bool
) -> None:
    """The legacy keys are of the fallback key's account, the role of another: the last use is
    read in the key's account, but the retirement would act in the role's. With a user of the
    same name in the role's account, the variables were deleted, then UpdateAccessKey failed
    with NoSuchEntity: the key stayed active and nothing held it any more. The key's account
    (sts:GetAccessKeyInfo) is read before any variable is touched."""
    bb = sandbox.bitbucket
    slug, access = legacy_repo(sandbox)
    other = fresh_account()
    user = f"ci-{uuid.uuid4().hex[:6]}"
    fallback_id, idle_id = sandbox.account_user(other, user, keys=2)
    fallback_secret, idle_secret = sandbox.aws.issued[fallback_id], sandbox.aws.issued[idle_id]
    if namesake:
        sandbox.add_user(user)
    bb.put("acme", slug, "", "OLD_ACCESS_KEY_ID", idle_id, secured=False)
    bb.put("acme", slug, "", "OLD_SECRET_ACCESS_KEY", idle_secret, secured=True)
    sandbox.aws.age(idle_id, 60, last_used_days_ago=25)

    result, report = check(
        sandbox,
        clone,
        role_with(sandbox, sandbox.trust_policy()),
        AWS_ACCESS_KEY_ID=fallback_id,
        AWS_SECRET_ACCESS_KEY=fallback_secret,
        **access,
    )
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    keys = {k["key_id"]: k for k in report["facts"]["legacy_keys"] if slug in k["scope"]}
    assert keys[idle_id]["in_use"] is False and keys[idle_id]["user"] == user, keys
    assert set(bb.stored("acme", slug)) == {"OLD_ACCESS_KEY_ID", "OLD_SECRET_ACCESS_KEY"}
    listed = sandbox.aws.account_client("iam", other).list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert {k["AccessKeyId"]: k["Status"] for k in listed} == {fallback_id: "Active", idle_id: "Active"}
    refused = [f for f in report["findings"] if f["code"] == "retire-refused" and idle_id in f["message"]]
    assert len(refused) == 1, report["findings"]
    assert other in refused[0]["message"] and ACCOUNT in refused[0]["message"], refused
    assert not [a for a in report["facts"]["retired"] if idle_id in a or slug in a]
    assert sandbox.aws.calls("GetAccessKeyInfo") >= 1


def test_a_deactivation_that_fails_after_the_variables_went_is_reported(
    sandbox: Sandbox, clone: Path
) -> None:
    """UpdateAccessKey refused once the variables are deleted: the run says what is left to do by
    hand (a retire-refused warning) instead of ending on AWS's error."""
    bb = sandbox.bitbucket
    slug, access = legacy_repo(sandbox)
    user = f"legacy-user-{uuid.uuid4().hex[:6]}"
    ((key_id, secret),) = sandbox.add_user(user)
    bb.put("acme", slug, "", "OLD_ACCESS_KEY_ID", key_id, secured=False)
    bb.put("acme", slug, "", "OLD_SECRET_ACCESS_KEY", secret, secured=True)
    sandbox.aws.age(key_id, 60, last_used_days_ago=25)
    sandbox.aws.inject(AwsFault("UpdateAccessKey", code="AccessDenied", message="not authorized"))

    result, report = check(sandbox, clone, role_with(sandbox, sandbox.trust_policy()), **access)
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    assert sandbox.aws.keys(user) == {key_id: "Active"} and set(bb.stored("acme", slug)) == set()
    refused = [f for f in report["findings"] if f["code"] == "retire-refused" and key_id in f["message"]]
    assert len(refused) == 1 and "deactivate the key by hand" in refused[0]["message"], report["findings"]
    assert not [a for a in report["facts"]["retired"] if "deactivate" in a and key_id in a]
