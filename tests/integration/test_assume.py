"""ACTION=assume as a process against the stand-ins: every route, every STS failure."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.runner import Result, mode, run_process, source_and_call
from tests.standins.aws import ACCOUNT, Fault
from tests.standins.issuer import braced, foreign_key
from tests.standins.sandbox import Sandbox

ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"
PROVIDER = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"


def creds_dir(clone: Path) -> Path:
    return clone / ".bitbucket/pipelines/generated/pipeline/pipes/aws-credentials"


def run(sandbox: Sandbox, clone: Path, label: str, token: str | None = None, **variables: str) -> Result:
    env = sandbox.step_env(clone, token=token, **variables)
    return run_process(env, clone, label)


def assume(sandbox: Sandbox, clone: Path, label: str, **variables: str) -> Result:
    variables.setdefault("AWS_OIDC_ROLE_ARN", ROLE)
    return run(sandbox, clone, label, token=variables.pop("token", None) or sandbox.token(), **variables)


def test_assume_writes_verified_credentials_that_a_later_command_uses(sandbox: Sandbox, clone: Path) -> None:
    result = assume(sandbox, clone, "assume-ok")
    assert result.returncode == 0, result.output
    expected = f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/bitbucket-shop-42"
    assert result.last.startswith(f"✔ {expected} until ")
    directory = creds_dir(clone)
    assert f"source {directory / 'credentials.env'}" in result.last
    assert "DECOY" not in result.output

    assert mode(directory) == 0o700
    for name in ("credentials.env", "credentials", "config", "identity.json"):
        assert mode(directory / name) == 0o600, name
    identity = json.loads((directory / "identity.json").read_text())
    assert identity["Arn"] == expected and identity["RoleArn"] == ROLE and identity["Account"] == ACCOUNT
    assert identity["SessionName"] == "bitbucket-shop-42" and identity["Expiration"].endswith("Z")
    env_text = (directory / "credentials.env").read_text()
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CREDENTIAL_EXPIRATION",
    ):
        assert f"export {name}=" in env_text
    # The identity was checked before anything was written, with the new credentials.
    assert sandbox.aws.calls("AssumeRoleWithWebIdentity") == 1
    assert sandbox.aws.calls("GetCallerIdentity") == 1
    assert (
        source_and_call(directory / "credentials.env", sandbox.aws.url, clone.parent, "source-ok") == expected
    )


def test_shared_files_with_a_named_profile(sandbox: Sandbox, clone: Path) -> None:
    import subprocess

    result = assume(sandbox, clone, "profile", AWS_PROFILE_NAME="ci", AWS_ROLE_SESSION_NAME="my.session@ci")
    assert result.returncode == 0, result.output
    directory = creds_dir(clone)
    assert "[profile ci]" in (directory / "config").read_text()
    code = (
        "import boto3, os; s = boto3.session.Session(profile_name='ci'); "
        "print(s.client('sts', endpoint_url=os.environ['E']).get_caller_identity()['Arn'])"
    )
    from tests.standins.sandbox import base_process_env

    env = base_process_env(clone.parent) | {
        "AWS_SHARED_CREDENTIALS_FILE": str(directory / "credentials"),
        "AWS_CONFIG_FILE": str(directory / "config"),
        "E": sandbox.aws.url,
    }
    out = subprocess.run(["python", "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/my.session@ci"


def test_step_without_oidc_says_add_oidc_true(sandbox: Sandbox, clone: Path) -> None:
    result = run(sandbox, clone, "no-token", AWS_OIDC_ROLE_ARN=ROLE)
    assert result.failed_with("oidc: true", "BITBUCKET_STEP_OIDC_TOKEN")
    assert sandbox.aws.requests == []
    assert not creds_dir(clone).exists()


def test_trust_policy_for_another_repository_is_explained(sandbox: Sandbox, clone: Path) -> None:
    other_repo = braced()
    sandbox.add_role("other-repo", sandbox.trust_policy(sub=f"{other_repo}:*"))
    result = assume(
        sandbox, clone, "access-denied", AWS_OIDC_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/other-repo"
    )
    assert result.failed_with("AccessDenied", "trust policy", f"{PROVIDER}:sub", f"{PROVIDER}:aud")
    # The claims and the exact condition keys are printed; the token itself is not.
    assert f"repositoryUuid             {sandbox.repo_uuid}" in result.output
    assert f'"{PROVIDER}:sub": "{sandbox.repo_uuid}:*"' in result.output
    assert f'"{PROVIDER}:aud": "{sandbox.issuer.audience}"' in result.output
    assert not creds_dir(clone).exists()


def test_deployment_step_gets_a_deployment_sub_pattern(sandbox: Sandbox, clone: Path) -> None:
    env_uuid = braced()
    sandbox.add_role("prod-only", sandbox.trust_policy(sub=f"{sandbox.repo_uuid}:{env_uuid}:*"))
    role = f"arn:aws:iam::{ACCOUNT}:role/prod-only"
    ok = assume(
        sandbox, clone, "deploy-ok", token=sandbox.token(environment_uuid=env_uuid), AWS_OIDC_ROLE_ARN=role
    )
    assert ok.returncode == 0, ok.output
    refused = assume(sandbox, clone, "deploy-refused", AWS_OIDC_ROLE_ARN=role)
    assert refused.failed_with("AccessDenied")
    assert "(not a deployment step)" in refused.output


def test_missing_oidc_provider(sandbox: Sandbox, clone: Path) -> None:
    issuer = sandbox.bitbucket.add_issuer("no-provider")
    sandbox.add_role("no-provider", sandbox.trust_policy(issuer=issuer))
    token = issuer.mint(sandbox.repo_uuid)
    result = assume(
        sandbox,
        clone,
        "no-provider",
        token=token,
        AWS_OIDC_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/no-provider",
    )
    assert result.failed_with(
        "InvalidIdentityToken", "Create the IAM OIDC identity provider", issuer.url, issuer.audience
    )


def test_provider_without_the_audience(sandbox: Sandbox, clone: Path) -> None:
    issuer = sandbox.bitbucket.add_issuer("braced-audience")
    sandbox.add_oidc_provider(
        audiences=[f"ari:cloud:bitbucket::workspace/{issuer.workspace_uuid}"], issuer=issuer
    )
    sandbox.add_role("braced-audience", sandbox.trust_policy(issuer=issuer))
    token = issuer.mint(sandbox.repo_uuid)
    role = f"arn:aws:iam::{ACCOUNT}:role/braced-audience"
    result = assume(sandbox, clone, "bad-audience", token=token, AWS_OIDC_ROLE_ARN=role)
    assert result.failed_with("Incorrect token audience", "Add the audience", issuer.audience)


def test_expired_token(sandbox: Sandbox, clone: Path) -> None:
    token = sandbox.token(issued_offset=-7200, lifetime=3600)
    result = assume(sandbox, clone, "expired", token=token)
    assert result.failed_with("ExpiredTokenException", "expired", "NTP")
    assert re.search(r"expired 3(59\d|60\d)s ago", result.last), result.last


def test_clock_skew_is_measured_against_aws(sandbox: Sandbox, clone: Path) -> None:
    sandbox.aws.clock_offset = 7200
    result = assume(sandbox, clone, "skew")
    assert result.failed_with("ExpiredTokenException", "AWS's clock is", "ahead of this machine's")


@pytest.mark.parametrize("garbage", ["not-a-token", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_garbage_token_fails_before_any_aws_call(sandbox: Sandbox, clone: Path, garbage: str) -> None:
    result = assume(sandbox, clone, "garbage", token=garbage)
    assert result.failed_with("BITBUCKET_STEP_OIDC_TOKEN", "oidc: true")
    assert sandbox.aws.requests == []


def test_forged_signature(sandbox: Sandbox, clone: Path) -> None:
    result = assume(sandbox, clone, "forged", token=sandbox.token(signing_key=foreign_key()))
    assert result.failed_with("InvalidIdentityToken", "could not be validated")


def test_issuer_keys_unreachable(sandbox: Sandbox, clone: Path) -> None:
    sandbox.bitbucket.oidc_down = True
    result = assume(sandbox, clone, "jwks-down")
    assert result.failed_with("InvalidIdentityToken", "verification key", "keys.json")


def test_duration_above_max_session_duration(sandbox: Sandbox, clone: Path) -> None:
    result = assume(sandbox, clone, "duration", AWS_ROLE_DURATION_SECONDS="7200")
    assert result.failed_with("AWS_ROLE_DURATION_SECONDS", "ValidationError", "MaxSessionDuration")


def test_session_policy_is_sent(sandbox: Sandbox, clone: Path) -> None:
    policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}'
    result = assume(sandbox, clone, "policy", AWS_ROLE_SESSION_POLICY=policy)
    assert result.returncode == 0, result.output
    # STS got the document itself (compacted, as the README says), and no managed policy.
    [asked] = sandbox.aws.assume_calls
    assert asked["Action"] == "AssumeRoleWithWebIdentity" and asked["RoleArn"] == ROLE
    assert asked["Policy"] == json.dumps(json.loads(policy), separators=(",", ":"))
    assert "PolicyArns" not in asked


def test_no_session_policy_sends_none(sandbox: Sandbox, clone: Path) -> None:
    result = assume(sandbox, clone, "no-policy")
    assert result.returncode == 0, result.output
    [asked] = sandbox.aws.assume_calls
    assert "Policy" not in asked and "PolicyArns" not in asked
    assert asked["RoleSessionName"] == "bitbucket-shop-42" and asked["DurationSeconds"] == 3600


def test_sts_error_codes_fail_at_once(sandbox: Sandbox, clone: Path) -> None:
    sandbox.aws.inject(
        Fault("AssumeRoleWithWebIdentity", code="AccessDenied", message="Not authorized", times=5)
    )
    result = assume(sandbox, clone, "denied-once")
    assert result.failed_with("AccessDenied")
    assert sandbox.aws.calls("AssumeRoleWithWebIdentity") == 1


def test_idp_communication_error_is_retried_past_the_sdks_attempts(sandbox: Sandbox, clone: Path) -> None:
    # More than the SDK's 3 attempts: the pipe's IDP retries go on, in the same loop.
    sandbox.aws.inject(Fault("AssumeRoleWithWebIdentity", code="IDPCommunicationError", times=4))
    result = assume(sandbox, clone, "idp-retry")
    assert result.returncode == 0, result.output
    assert sandbox.aws.calls("AssumeRoleWithWebIdentity") == 5


def test_transient_failures_stop_at_the_time_cap(sandbox: Sandbox, clone: Path) -> None:
    sandbox.aws.inject(Fault("AssumeRoleWithWebIdentity", code="IDPCommunicationError", times=1000))
    started = time.monotonic()
    result = assume(sandbox, clone, "idp-cap", RETRY_TIMEOUT_SECONDS="6")
    elapsed = time.monotonic() - started
    assert result.failed_with("IDPCommunicationError", "RETRY_TIMEOUT_SECONDS", "kept failing")
    calls = sandbox.aws.calls("AssumeRoleWithWebIdentity")
    assert re.search(rf"after {calls} attempts in [0-6]s", result.last), result.last
    # Past the SDK's 3 attempts, never past the cap (plus the process's start and one answer).
    assert calls > 3 and elapsed < 6 + 3, (calls, elapsed)
    assert not creds_dir(clone).exists()


def test_zero_retry_timeout_leaves_the_sdks_attempts(sandbox: Sandbox, clone: Path) -> None:
    sandbox.aws.inject(Fault("AssumeRoleWithWebIdentity", code="IDPCommunicationError", times=1000))
    result = assume(sandbox, clone, "idp-zero", RETRY_TIMEOUT_SECONDS="0")
    assert result.failed_with("IDPCommunicationError", "kept failing", "after 3 attempts")
    assert sandbox.aws.calls("AssumeRoleWithWebIdentity") == 3  # the SDK's standard mode, as it is


def test_server_errors_and_dropped_connections_are_retried(sandbox: Sandbox, clone: Path) -> None:
    sandbox.aws.inject(Fault("AssumeRoleWithWebIdentity", code="InternalFailure", times=2))
    sandbox.aws.inject(Fault("GetCallerIdentity", kind="drop", times=1))
    result = assume(sandbox, clone, "5xx-drop")
    assert result.returncode == 0, result.output
    assert sandbox.aws.calls("AssumeRoleWithWebIdentity") == 3
    assert sandbox.aws.calls("GetCallerIdentity") == 2


def test_server_errors_past_the_sdks_attempts_are_not_retried_again(sandbox: Sandbox, clone: Path) -> None:
    sandbox.aws.inject(Fault("AssumeRoleWithWebIdentity", code="InternalFailure", times=1000))
    result = assume(sandbox, clone, "5xx-kept", RETRY_TIMEOUT_SECONDS="10")
    assert result.failed_with("InternalFailure", "kept failing", "after 3 attempts", "re-run the step")
    assert sandbox.aws.calls("AssumeRoleWithWebIdentity") == 3  # botocore's attempts, not 3 x N
    assert not creds_dir(clone).exists()


def test_a_connection_that_keeps_dropping_ends_after_the_sdks_attempts(sandbox: Sandbox, clone: Path) -> None:
    sandbox.aws.inject(Fault("GetCallerIdentity", kind="drop", times=1000))
    result = assume(sandbox, clone, "drop-kept", RETRY_TIMEOUT_SECONDS="10")
    assert result.failed_with("GetCallerIdentity", "no connection", "kept failing", "after 3 attempts")
    assert sandbox.aws.calls("GetCallerIdentity") == 3
    assert not creds_dir(clone).exists()


def test_throttling_is_left_to_the_sdk(sandbox: Sandbox, clone: Path) -> None:
    sandbox.aws.inject(
        Fault("AssumeRoleWithWebIdentity", code="Throttling", message="Rate exceeded", times=1000)
    )
    result = assume(sandbox, clone, "throttled")
    assert result.failed_with("Throttling", "Re-run")
    assert sandbox.aws.calls("AssumeRoleWithWebIdentity") == 3  # the SDK's standard mode, no more


def test_identity_mismatch_writes_nothing(sandbox: Sandbox, clone: Path) -> None:
    other = f"arn:aws:sts::{ACCOUNT}:assumed-role/someone-else/x"
    sandbox.aws.inject(Fault("GetCallerIdentity", kind="identity", arn=other))
    result = assume(sandbox, clone, "mismatch")
    assert result.failed_with(other, "expected", "Nothing was written")
    assert not creds_dir(clone).exists()


def test_role_in_an_account_that_is_not_allowed(sandbox: Sandbox, clone: Path) -> None:
    result = assume(sandbox, clone, "not-allowed", ALLOWED_ACCOUNT_IDS="111111111111, 222222222222")
    assert result.failed_with("ALLOWED_ACCOUNT_IDS", ACCOUNT)
    assert sandbox.aws.requests == []
    ok = assume(sandbox, clone, "allowed", ALLOWED_ACCOUNT_IDS=f"111111111111 {ACCOUNT}")
    assert ok.returncode == 0, ok.output


def test_fallback_key_warns_how_to_enable_oidc(sandbox: Sandbox, clone: Path) -> None:
    key_id, secret = sandbox.add_user_key("ci-fallback")
    result = run(sandbox, clone, "fallback", AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    assert result.returncode == 0, result.output
    assert "To use OIDC, add `oidc: true` to the step and set AWS_OIDC_ROLE_ARN" in result.output
    assert result.last.startswith(f"✔ arn:aws:iam::{ACCOUNT}:user/ci-fallback (long-lived key")
    env_text = (creds_dir(clone) / "credentials.env").read_text()
    assert "AWS_SESSION_TOKEN=" not in env_text and "unset AWS_SESSION_TOKEN" in env_text
    arn = source_and_call(
        creds_dir(clone) / "credentials.env", sandbox.aws.url, clone.parent, "source-fallback"
    )
    assert arn == f"arn:aws:iam::{ACCOUNT}:user/ci-fallback"


def test_fallback_key_of_a_disallowed_account_writes_nothing(sandbox: Sandbox, clone: Path) -> None:
    key_id, secret = sandbox.add_user_key("ci-other")
    result = run(
        sandbox,
        clone,
        "fallback-acct",
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        ALLOWED_ACCOUNT_IDS="111111111111",
    )
    assert result.failed_with("ALLOWED_ACCOUNT_IDS", ACCOUNT, "Nothing was written")
    assert not creds_dir(clone).exists()


def test_role_without_token_uses_the_fallback_with_a_warning(sandbox: Sandbox, clone: Path) -> None:
    key_id, secret = sandbox.add_user_key("ci-role-no-token")
    result = run(
        sandbox,
        clone,
        "role-no-token",
        AWS_OIDC_ROLE_ARN=ROLE,
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
    )
    assert result.returncode == 0, result.output
    assert "AWS_OIDC_ROLE_ARN is set but this step has no OIDC token" in result.output


def test_require_oidc_refuses_the_fallback(sandbox: Sandbox, clone: Path) -> None:
    key_id, secret = sandbox.add_user_key("ci-required")
    sandbox.aws.forget_requests()
    result = run(
        sandbox,
        clone,
        "require-oidc",
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        REQUIRE_OIDC="true",
    )
    assert result.failed_with("oidc: true")
    assert sandbox.aws.requests == []


def test_deactivated_fallback_key(sandbox: Sandbox, clone: Path) -> None:
    key_id, secret = sandbox.add_user_key("ci-stale")
    sandbox.iam.update_access_key(UserName="ci-stale", AccessKeyId=key_id, Status="Inactive")
    result = run(sandbox, clone, "inactive-key", AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    assert result.failed_with("InvalidClientTokenId", "AWS_ACCESS_KEY_ID", "OIDC")


def test_dry_run_writes_nothing(sandbox: Sandbox, clone: Path) -> None:
    result = assume(sandbox, clone, "dry-run", DRY_RUN="true")
    assert result.returncode == 0 and result.last.startswith("✔ DRY_RUN:"), result.output
    assert not creds_dir(clone).exists()


def test_debug_output_holds_no_secret(sandbox: Sandbox, clone: Path) -> None:
    token = sandbox.token()
    result = assume(sandbox, clone, "debug", token=token, DEBUG="true")
    assert result.returncode == 0, result.output
    assert token not in result.output
    secret = (creds_dir(clone) / "credentials").read_text().split("aws_secret_access_key = ")[1].split()[0]
    assert secret not in result.output


def test_symlinked_credentials_dir_is_refused(sandbox: Sandbox, clone: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = clone / "creds"
    link.symlink_to(target)
    result = assume(sandbox, clone, "symlink", CREDENTIALS_DIR=str(link))
    assert result.failed_with("CREDENTIALS_DIR", "symlink")
    assert sandbox.aws.requests == []
    assert list(target.iterdir()) == []


def test_credentials_dir_is_tightened_and_reused(sandbox: Sandbox, clone: Path) -> None:
    directory = clone / "out"
    directory.mkdir(mode=0o755)
    (directory / "credentials.env").write_text("old")
    result = assume(sandbox, clone, "reuse", CREDENTIALS_DIR="out")
    assert result.returncode == 0, result.output
    assert mode(directory) == 0o700 and mode(directory / "credentials.env") == 0o600
    assert "old" not in (directory / "credentials.env").read_text()
