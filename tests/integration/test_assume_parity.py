"""Issue 11: what configure-aws-credentials users rely on, as processes against the stand-ins:
SDK-refreshed credentials (CREDENTIALS_MODE=web-identity), role chaining, the fallback key
assuming a role, managed session policies, several profiles, MASK_ACCOUNT_ID, misspelt
variables. Proxies are in test_network.py."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests import leakcheck
from tests.runner import Result, mode, run_process, source_and_call
from tests.standins.aws import ACCOUNT, STUB_CREDENTIALS
from tests.standins.sandbox import Sandbox, base_process_env

ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"
OTHER_ACCOUNT = "210987654321"
SESSION = "bitbucket-shop-42"


def creds_dir(clone: Path) -> Path:
    return clone / ".bitbucket/pipelines/generated/pipeline/pipes/aws-credentials"


def assume(sandbox: Sandbox, clone: Path, label: str, **variables: str) -> Result:
    variables.setdefault("AWS_OIDC_ROLE_ARN", ROLE)
    token = variables.pop("token", None) or sandbox.token()
    return run_process(sandbox.step_env(clone, token=token, **variables), clone, label)


def with_key(sandbox: Sandbox, clone: Path, label: str, **variables: str) -> Result:
    """A step without `oidc: true`: the fallback key route."""
    return run_process(sandbox.step_env(clone, **variables), clone, label)


def iam_in(sandbox: Sandbox, account: str) -> Any:
    """IAM of another account, straight to moto (its `x-moto-account-id` header)."""
    client = boto3.client(
        "iam", endpoint_url=sandbox.aws.moto_url, region_name="us-east-1", **STUB_CREDENTIALS
    )

    def to_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account

    client.meta.events.register("before-sign.iam.*", to_account)
    return client


def add_role_in(
    sandbox: Sandbox, account: str, name: str, principal: str, external_id: str | None = None
) -> str:
    """A role in ``account`` that ``principal`` (an AWS principal) may assume."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    iam = iam_in(sandbox, account)
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=document, MaxSessionDuration=43200)
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=document)
    return f"arn:aws:iam::{account}:role/{name}"


def sdk(script: str, env: dict[str, str], home: Path, label: str) -> subprocess.CompletedProcess[str]:
    """A later command of the step: Python with boto3 (from this venv), a fresh environment."""
    proc = subprocess.run(
        ["python", "-c", script],
        env=base_process_env(home) | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    leakcheck.capture(label, proc.stdout + proc.stderr)
    return proc


def web_identity_calls(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [c for c in sandbox.aws.assume_calls if c["Action"] == "AssumeRoleWithWebIdentity"]


# -- 1. SDK-refreshed credentials ---------------------------------------------------------------


def outlives_its_sessions(sandbox: Sandbox, directory: Path, home: Path, label: str) -> str:
    """The profile the pipe wrote in ``directory`` (profile deploy) serves two calls 6 s apart,
    across the stand-in's session end, with the same role and a new session: the SDK assumed
    the role again by itself. The first session's key."""
    sandbox.aws.forget_requests()
    env = {
        "AWS_CONFIG_FILE": str(directory / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(directory / "credentials"),
        "AWS_ENDPOINT_URL": sandbox.aws.url,
    }
    proc = sdk(REFRESH.replace("sys.argv[1]", "'deploy'").replace("sys.argv[2]", "6"), env, home, label)
    assert proc.returncode == 0, proc.stderr
    first, second, key, again = proc.stdout.split()
    assert first == second == f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/{SESSION}"
    assert key != again  # a new session
    assert len(web_identity_calls(sandbox)) >= 2
    return key


def test_web_identity_mode_writes_the_token_and_a_profile_the_sdk_uses(sandbox: Sandbox, clone: Path) -> None:
    token = sandbox.token()
    result = assume(sandbox, clone, "web-identity", token=token, CREDENTIALS_MODE="web-identity")
    assert result.returncode == 0, result.output
    directory = creds_dir(clone)
    token_file = directory / "web-identity-token"
    assert token_file.read_text() == token and mode(token_file) == 0o600
    config = (directory / "config").read_text()
    assert f"role_arn = {ROLE}" in config and f"web_identity_token_file = {token_file}" in config
    assert f"role_session_name = {SESSION}" in config
    env_text = (directory / "credentials.env").read_text()
    assert f"export AWS_ROLE_ARN={ROLE}" in env_text
    assert f"export AWS_WEB_IDENTITY_TOKEN_FILE={token_file}" in env_text
    assert f"export AWS_ROLE_SESSION_NAME={SESSION}" in env_text
    assert "AWS_SECRET_ACCESS_KEY=" not in env_text and "unset AWS_ACCESS_KEY_ID" in env_text
    assert "[default]" not in (directory / "credentials").read_text()  # no static keys beside it
    # The token's expiry is printed, and the ✔ line says until when the SDK can refresh.
    assert "valid for 3" in result.output and "the SDK assumes the role itself" in result.last
    assert token not in result.output
    # A later command that sources credentials.env assumes the role by itself.
    sandbox.aws.forget_requests()
    arn = source_and_call(directory / "credentials.env", sandbox.aws.url, clone.parent, "web-identity-source")
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/{SESSION}"
    assert [c["RoleSessionName"] for c in web_identity_calls(sandbox)] == [SESSION]


REFRESH = """
import boto3, os, sys, time
session = boto3.session.Session(profile_name=sys.argv[1])
sts = session.client("sts")
first = sts.get_caller_identity()["Arn"]
key = session.get_credentials().get_frozen_credentials().access_key
time.sleep(float(sys.argv[2]))  # the first session ends meanwhile
second = sts.get_caller_identity()["Arn"]
again = session.get_credentials().get_frozen_credentials().access_key
print(first, second, key, again)
"""


def test_a_step_that_outlives_its_session_keeps_working_through_the_sdks_refresh(
    sandbox: Sandbox, clone: Path
) -> None:
    """AWS_ROLE_DURATION_SECONDS=900 (the shortest session AWS gives), and the stand-in ends every
    session 4 s after it is issued (its `session_lifetime` knob), refusing its keys afterwards
    with ExpiredToken: a step whose second call comes after that works only if the SDK assumes
    the role again by itself, through the profile."""
    sandbox.aws.session_lifetime = 4
    result = assume(
        sandbox,
        clone,
        "refresh",
        CREDENTIALS_MODE="web-identity",
        AWS_ROLE_DURATION_SECONDS="900",
        AWS_PROFILE_NAME="deploy",
    )
    assert result.returncode == 0, result.output
    key = outlives_its_sessions(sandbox, creds_dir(clone), clone.parent, "sdk")
    calls = web_identity_calls(sandbox)
    assert len(calls) >= 2 and all(c["RoleArn"] == ROLE and c["RoleSessionName"] == SESSION for c in calls)
    # The first session really ended: its key is refused now.
    assert sandbox.aws.session_ends[key] < time.time()
    refused = sdk(
        "import boto3, os, sys\n"
        "c = boto3.client('sts', aws_access_key_id=sys.argv[1], aws_secret_access_key='x', aws_session_token='y')\n"
        "c.get_caller_identity()".replace("sys.argv[1]", repr(key)),
        {"AWS_ENDPOINT_URL": sandbox.aws.url, "AWS_DEFAULT_REGION": "eu-west-1"},
        clone.parent,
        "refresh-expired",
    )
    assert refused.returncode != 0 and "ExpiredToken" in refused.stderr


def test_web_identity_mode_refuses_session_policies_before_any_call(sandbox: Sandbox, clone: Path) -> None:
    result = assume(
        sandbox,
        clone,
        "web-identity-policy",
        CREDENTIALS_MODE="web-identity",
        AWS_ROLE_SESSION_POLICY_ARNS="arn:aws:iam::aws:policy/ReadOnlyAccess",
    )
    assert result.failed_with("CREDENTIALS_MODE", "AWS_ROLE_SESSION_POLICY_ARNS")
    assert sandbox.aws.requests == []


def test_web_identity_mode_with_the_fallback_key_hands_on_a_session(sandbox: Sandbox, clone: Path) -> None:
    key_id, secret = sandbox.add_user_key("ci-web-fallback")
    result = with_key(
        sandbox,
        clone,
        "web-identity-fallback",
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        CREDENTIALS_MODE="web-identity",
    )
    assert result.returncode == 0, result.output
    assert "CREDENTIALS_MODE=web-identity needs the step's OIDC token" in result.output
    assert not (creds_dir(clone) / "web-identity-token").exists()
    assert f"export AWS_ACCESS_KEY_ID={key_id}" in (creds_dir(clone) / "credentials.env").read_text()


# -- 2. role chaining ---------------------------------------------------------------------------


def test_role_chaining_into_another_account(sandbox: Sandbox, clone: Path) -> None:
    hub_session = f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/{SESSION}"
    target = add_role_in(sandbox, OTHER_ACCOUNT, "cross-deploy", ROLE, external_id="acme-42")
    result = assume(
        sandbox,
        clone,
        "chained",
        AWS_CHAINED_ROLE_ARN=target,
        AWS_CHAINED_EXTERNAL_ID="acme-42",
        ALLOWED_ACCOUNT_IDS=OTHER_ACCOUNT,  # the final role's account; the hub's need not be listed
        AWS_ROLE_SESSION_POLICY_ARNS="arn:aws:iam::aws:policy/ReadOnlyAccess",
    )
    assert result.returncode == 0, result.output
    expected = f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/cross-deploy/{SESSION}"
    assert result.last.startswith(f"✔ {expected} until ")
    web, chained = sandbox.aws.assume_calls
    assert web["Action"] == "AssumeRoleWithWebIdentity" and web["RoleArn"] == ROLE
    assert web["DurationSeconds"] == 900 and "PolicyArns" not in web  # it only assumes the next role
    assert chained["Action"] == "AssumeRole" and chained["RoleArn"] == target
    assert chained["ExternalId"] == "acme-42" and chained["DurationSeconds"] == 3600
    assert chained["PolicyArns"] == [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]
    identity = json.loads((creds_dir(clone) / "identity.json").read_text())
    assert identity["Arn"] == expected and identity["RoleArn"] == target
    assert hub_session in result.output  # who assumed the chained role
    arn = source_and_call(creds_dir(clone) / "credentials.env", sandbox.aws.url, clone.parent, "chained-src")
    assert arn == expected


def test_role_chaining_says_aws_caps_the_session_at_an_hour(sandbox: Sandbox, clone: Path) -> None:
    target = add_role_in(sandbox, OTHER_ACCOUNT, "capped", ROLE)
    sandbox.add_role("deploy", max_session=43200)
    try:
        result = assume(
            sandbox, clone, "chained-cap", AWS_CHAINED_ROLE_ARN=target, AWS_ROLE_DURATION_SECONDS="7200"
        )
    finally:
        sandbox.add_role("deploy")
    assert result.returncode == 0, result.output
    assert "caps a session assumed by a role session (role chaining) at one hour" in result.output
    assert sandbox.aws.assume_calls[-1]["DurationSeconds"] == 3600


def test_role_chaining_refused_by_the_trust_policy_or_the_external_id(sandbox: Sandbox, clone: Path) -> None:
    target = add_role_in(sandbox, OTHER_ACCOUNT, "needs-id", ROLE, external_id="right")
    wrong = assume(
        sandbox, clone, "chained-wrong-id", AWS_CHAINED_ROLE_ARN=target, AWS_CHAINED_EXTERNAL_ID="wrong"
    )
    assert wrong.failed_with("AccessDenied", target, "AWS_CHAINED_ROLE_ARN", "sts:ExternalId")
    assert "(ChainedRoleArns of templates/oidc.yaml grants it to that template's deploy role)" in wrong.last
    assert not creds_dir(clone).exists()
    missing = assume(sandbox, clone, "chained-no-id", AWS_CHAINED_ROLE_ARN=target)
    assert missing.failed_with("AccessDenied", "AWS_CHAINED_EXTERNAL_ID")


def test_allowed_accounts_apply_to_the_chained_role_before_any_call(sandbox: Sandbox, clone: Path) -> None:
    target = add_role_in(sandbox, OTHER_ACCOUNT, "not-allowed", ROLE)
    result = assume(
        sandbox, clone, "chained-allowed", AWS_CHAINED_ROLE_ARN=target, ALLOWED_ACCOUNT_IDS=ACCOUNT
    )
    assert result.failed_with("ALLOWED_ACCOUNT_IDS", "AWS_CHAINED_ROLE_ARN", OTHER_ACCOUNT)
    assert sandbox.aws.requests == []


def test_web_identity_mode_with_a_chained_role_lets_the_sdk_chain_too(sandbox: Sandbox, clone: Path) -> None:
    target = add_role_in(sandbox, OTHER_ACCOUNT, "sdk-chained", ROLE, external_id="acme-7")
    result = assume(
        sandbox,
        clone,
        "web-chained",
        CREDENTIALS_MODE="web-identity",
        AWS_CHAINED_ROLE_ARN=target,
        AWS_CHAINED_EXTERNAL_ID="acme-7",
    )
    assert result.returncode == 0, result.output
    directory = creds_dir(clone)
    env_text = (directory / "credentials.env").read_text()
    assert (
        f"export AWS_CONFIG_FILE={directory / 'config'}" in env_text
        and "export AWS_PROFILE=default" in env_text
    )
    sandbox.aws.forget_requests()
    arn = source_and_call(directory / "credentials.env", sandbox.aws.url, clone.parent, "web-chained-src")
    assert arn == f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/sdk-chained/{SESSION}"
    actions = [(c["Action"], c["RoleArn"], c.get("ExternalId")) for c in sandbox.aws.assume_calls]
    assert actions == [("AssumeRoleWithWebIdentity", ROLE, None), ("AssumeRole", target, "acme-7")]


# -- 3. the fallback key assumes a role ---------------------------------------------------------


def test_the_fallback_key_assumes_a_role_and_still_warns(sandbox: Sandbox, clone: Path) -> None:
    key_id, secret = sandbox.add_user_key("ci-keys-role")
    role = add_role_in(sandbox, ACCOUNT, "for-keys", f"arn:aws:iam::{ACCOUNT}:user/ci-keys-role", "k-1")
    result = with_key(
        sandbox,
        clone,
        "keys-role",
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_ROLE_ARN_FOR_KEYS=role,
        AWS_EXTERNAL_ID_FOR_KEYS="k-1",
    )
    assert result.returncode == 0, result.output
    assert "To use OIDC, add `oidc: true` to the step" in result.output  # the loud warning stays
    expected = f"arn:aws:sts::{ACCOUNT}:assumed-role/for-keys/{SESSION}"
    assert result.last.startswith(f"✔ {expected} until ")
    call = sandbox.aws.assume_calls[-1]
    assert (call["Action"], call["RoleArn"], call["ExternalId"]) == ("AssumeRole", role, "k-1")
    env_text = (creds_dir(clone) / "credentials.env").read_text()
    assert key_id not in env_text and "AWS_SESSION_TOKEN=" in env_text  # the role's session, not the key


def test_a_temporary_key_with_its_session_token_assumes_a_role(sandbox: Sandbox, clone: Path) -> None:
    key_id, secret = sandbox.add_user_key("ci-temporary")
    first = add_role_in(sandbox, ACCOUNT, "temporary-source", f"arn:aws:iam::{ACCOUNT}:user/ci-temporary")
    sts = sandbox.aws.client("sts", aws_access_key_id=key_id, aws_secret_access_key=secret)
    session = sts.assume_role(RoleArn=first, RoleSessionName="elsewhere")["Credentials"]  # an ASIA key
    assert session["AccessKeyId"].startswith("ASIA")
    role = add_role_in(sandbox, ACCOUNT, "for-temporary", first)
    variables = {
        "AWS_ACCESS_KEY_ID": session["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": session["SecretAccessKey"],
        "AWS_SESSION_TOKEN": session["SessionToken"],
    }
    result = with_key(sandbox, clone, "temporary-role", AWS_ROLE_ARN_FOR_KEYS=role, **variables)
    assert result.returncode == 0, result.output
    assert result.last.startswith(f"✔ arn:aws:sts::{ACCOUNT}:assumed-role/for-temporary/{SESSION}")
    assert session["SessionToken"] not in result.output
    missing = with_key(
        sandbox,
        clone,
        "temporary-no-token",
        AWS_ROLE_ARN_FOR_KEYS=role,
        **{**variables, "AWS_SESSION_TOKEN": ""},
    )
    assert missing.failed_with("AWS_SESSION_TOKEN")


def test_the_fallback_key_refused_by_the_role(sandbox: Sandbox, clone: Path) -> None:
    key_id, secret = sandbox.add_user_key("ci-not-trusted")
    role = add_role_in(sandbox, ACCOUNT, "trusts-someone-else", f"arn:aws:iam::{ACCOUNT}:user/someone")
    result = with_key(
        sandbox,
        clone,
        "keys-denied",
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_ROLE_ARN_FOR_KEYS=role,
    )
    assert result.failed_with("AccessDenied", "AWS_ROLE_ARN_FOR_KEYS", key_id)
    assert (
        "(KeysRoleArns of templates/rotation.yaml grants it to that template's fallback user)" in result.last
    )
    assert not creds_dir(clone).exists()


# -- 4. managed session policies ----------------------------------------------------------------


def test_managed_session_policies_are_sent_to_sts(sandbox: Sandbox, clone: Path) -> None:
    arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess", f"arn:aws:iam::{ACCOUNT}:policy/ci/deploy-narrow"]
    result = assume(sandbox, clone, "policy-arns", AWS_ROLE_SESSION_POLICY_ARNS=", ".join(arns))
    assert result.returncode == 0, result.output
    assert sandbox.aws.assume_calls[-1]["PolicyArns"] == [{"arn": arn} for arn in arns]


@pytest.mark.parametrize(
    "value",
    [
        " ".join(f"arn:aws:iam::aws:policy/P{i}" for i in range(11)),  # 11 > AWS's 10
        "arn:aws:iam::aws:role/NotAPolicy",
        "arn:aws-cn:iam::aws:policy/ReadOnlyAccess",  # another partition than eu-west-1's
        "arn:aws:iam::aws:policy/A arn:aws:iam::aws:policy/A",
    ],
)
def test_bad_managed_session_policies_fail_before_any_call(sandbox: Sandbox, clone: Path, value: str) -> None:
    result = assume(sandbox, clone, "policy-arns-bad", AWS_ROLE_SESSION_POLICY_ARNS=value)
    assert result.failed_with("AWS_ROLE_SESSION_POLICY_ARNS")
    assert sandbox.aws.requests == []


# -- 5. several profiles in one step ------------------------------------------------------------


def test_two_runs_leave_two_working_profiles_and_keep_the_others(sandbox: Sandbox, clone: Path) -> None:
    directory = creds_dir(clone)
    directory.mkdir(parents=True)
    (directory / "credentials").write_text(
        "[mine]\naws_access_key_id = AKIAMINE\naws_secret_access_key = x\n"
    )
    (directory / "config").write_text("[profile mine]\nregion = us-east-2\noutput = json\n")
    other = sandbox.add_role("deploy-other")
    first = assume(sandbox, clone, "profile-a", AWS_PROFILE_NAME="a")
    second = assume(sandbox, clone, "profile-b", AWS_PROFILE_NAME="b", AWS_OIDC_ROLE_ARN=other)
    assert first.returncode == 0 and second.returncode == 0, first.output + second.output
    credentials = (directory / "credentials").read_text()
    config = (directory / "config").read_text()
    assert "[mine]" in credentials and "[a]" in credentials and "[b]" in credentials
    assert "[profile mine]\nregion = us-east-2\noutput = json" in config
    assert "[profile a]" in config and "[profile b]" in config
    script = (
        "import boto3, os\n"
        "for p in ('a', 'b'):\n"
        "    print(boto3.session.Session(profile_name=p).client('sts').get_caller_identity()['Arn'])\n"
    )
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(directory / "credentials"),
        "AWS_CONFIG_FILE": str(directory / "config"),
        "AWS_ENDPOINT_URL": sandbox.aws.url,
    }
    proc = sdk(script, env, clone.parent, "two-profiles")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/{SESSION}",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy-other/{SESSION}",
    ]


def test_a_shared_file_the_sdk_would_refuse_stops_the_run_before_any_call(
    sandbox: Sandbox, clone: Path
) -> None:
    directory = creds_dir(clone)
    directory.mkdir(parents=True)
    (directory / "credentials").write_text("[a]\naws_access_key_id = A\n[a]\naws_access_key_id = B\n")
    result = assume(sandbox, clone, "duplicate-profile")
    assert result.failed_with("CREDENTIALS_DIR", "'a' twice")
    assert sandbox.aws.requests == []


# -- 7. MASK_ACCOUNT_ID -------------------------------------------------------------------------


def test_mask_account_id_hides_account_ids_in_every_line_but_not_in_files(
    sandbox: Sandbox, clone: Path
) -> None:
    shown = assume(sandbox, clone, "mask-off")
    assert ACCOUNT in shown.output
    masked = assume(sandbox, clone, "mask-on", MASK_ACCOUNT_ID="true")
    assert masked.returncode == 0, masked.output
    assert ACCOUNT not in masked.output and "arn:aws:sts::************:assumed-role/deploy" in masked.last
    assert json.loads((creds_dir(clone) / "identity.json").read_text())["Account"] == ACCOUNT
    # A failure's lines too (the trust statement names the account), and a bad value's echo.
    sandbox.add_role("mask-denied", sandbox.trust_policy(sub="{other}:*"))
    denied = assume(
        sandbox,
        clone,
        "mask-denied",
        MASK_ACCOUNT_ID="true",
        AWS_OIDC_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/mask-denied",
    )
    assert denied.failed_with("AccessDenied") and ACCOUNT not in denied.output
    bad = assume(sandbox, clone, "mask-bad", MASK_ACCOUNT_ID="true", ALLOWED_ACCOUNT_IDS=f"{ACCOUNT} 12345")
    assert bad.failed_with("ALLOWED_ACCOUNT_IDS") and ACCOUNT not in bad.output


# -- 11. misspelt variables ---------------------------------------------------------------------


def test_misspelt_variables_get_a_did_you_mean_without_their_values(sandbox: Sandbox, clone: Path) -> None:
    result = assume(
        sandbox,
        clone,
        "misspelt",
        AWS_OIDC_ROLE_ARM="arn:aws:iam::123456789012:role/typo-value",
        AWS_ROLE_SESION_NAME="typo-session-value",
        TARGETS="acme/shop",
    )
    assert result.returncode == 0, result.output
    assert (
        "AWS_OIDC_ROLE_ARM is not a variable of this pipe (ignored): did you mean AWS_OIDC_ROLE_ARN?"
        in result.output
    )
    assert (
        "AWS_ROLE_SESION_NAME is not a variable of this pipe (ignored): did you mean AWS_ROLE_SESSION_NAME?"
        in (result.output)
    )
    assert "typo-value" not in result.output and "typo-session-value" not in result.output
    assert "TARGETS is not read by ACTION=assume: ignored." in result.output
    # Bitbucket's own variables of the step (BITBUCKET_REPO_UUID, BITBUCKET_BRANCH...) are not "misspelt".
    assert result.output.count("did you mean") == 2
