"""Every variable's bad values end in exit 1 and a ✖ line naming the variable, with no call to AWS."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runner import run_process
from tests.standins.aws import ACCOUNT
from tests.standins.sandbox import Sandbox

ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"

BAD = [
    ("ACTION", "deploy", "ACTION"),
    ("ACTION", "rotate", "ACTION"),
    ("AWS_DEFAULT_REGION", "", "AWS_DEFAULT_REGION"),
    ("AWS_DEFAULT_REGION", "Europe", "AWS_DEFAULT_REGION"),
    ("AWS_REGION", "us-east-1", "AWS_DEFAULT_REGION"),  # disagrees with AWS_DEFAULT_REGION
    ("AWS_OIDC_ROLE_ARN", "deploy", "AWS_OIDC_ROLE_ARN"),
    ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::12345:role/deploy", "AWS_OIDC_ROLE_ARN"),
    ("AWS_OIDC_ROLE_ARN", f"arn:aws-cn:iam::{ACCOUNT}:role/deploy", "AWS_OIDC_ROLE_ARN"),
    ("AWS_ROLE_SESSION_NAME", "has space", "AWS_ROLE_SESSION_NAME"),
    ("AWS_ROLE_SESSION_NAME", "x", "AWS_ROLE_SESSION_NAME"),
    ("AWS_ROLE_SESSION_NAME", "a" * 65, "AWS_ROLE_SESSION_NAME"),
    ("AWS_ROLE_DURATION_SECONDS", "899", "AWS_ROLE_DURATION_SECONDS"),
    ("AWS_ROLE_DURATION_SECONDS", "43201", "AWS_ROLE_DURATION_SECONDS"),
    ("AWS_ROLE_DURATION_SECONDS", "1h", "AWS_ROLE_DURATION_SECONDS"),
    ("AWS_ROLE_SESSION_POLICY", "{not json", "AWS_ROLE_SESSION_POLICY"),
    ("AWS_ROLE_SESSION_POLICY", "[]", "AWS_ROLE_SESSION_POLICY"),
    ("AWS_ROLE_SESSION_POLICY", '{"Statement": "' + "x" * 3000 + '"}', "AWS_ROLE_SESSION_POLICY"),
    ("ALLOWED_ACCOUNT_IDS", "12345", "ALLOWED_ACCOUNT_IDS"),
    ("ALLOWED_ACCOUNT_IDS", f"{ACCOUNT};111111111111", "ALLOWED_ACCOUNT_IDS"),
    ("AWS_ACCESS_KEY_ID", "AKIA0000000000000000", "AWS_SECRET_ACCESS_KEY"),  # half a key
    ("AWS_SECRET_ACCESS_KEY", "x" * 40, "AWS_ACCESS_KEY_ID"),  # the other half
    ("REQUIRE_OIDC", "yes", "REQUIRE_OIDC"),
    ("AWS_PROFILE_NAME", "my profile", "AWS_PROFILE_NAME"),
    ("AWS_PROFILE_NAME", "ci]", "AWS_PROFILE_NAME"),
    ("DRY_RUN", "maybe", "DRY_RUN"),
    ("DEBUG", "1", "DEBUG"),
    ("RETRY_TIMEOUT_SECONDS", "-1", "RETRY_TIMEOUT_SECONDS"),
    ("RETRY_TIMEOUT_SECONDS", "901", "RETRY_TIMEOUT_SECONDS"),
    ("AWS_ENDPOINT_URL", "ftp://127.0.0.1", "AWS_ENDPOINT_URL"),
    ("AWS_ENDPOINT_URL_STS", "127.0.0.1:4566", "AWS_ENDPOINT_URL_STS"),
    ("CREDENTIALS_DIR", "identity.json", "CREDENTIALS_DIR"),  # an existing file, not a directory
]


@pytest.mark.parametrize(("name", "value", "named"), BAD, ids=[f"{n}={v[:20]!r}" for n, v, _ in BAD])
def test_bad_value_fails_before_any_aws_call(
    sandbox: Sandbox, clone: Path, name: str, value: str, named: str
) -> None:
    (clone / "identity.json").write_text("{}")
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE)
    env[name] = value
    result = run_process(env, clone, f"bad-{name}")
    assert result.failed_with(named), result.output
    assert len([line for line in result.lines if line.startswith("✖")]) == 1
    assert "Traceback" not in result.output
    assert sandbox.aws.requests == []
    if name == "AWS_SECRET_ACCESS_KEY":
        assert value not in result.output


def test_secret_values_are_never_echoed(sandbox: Sandbox, clone: Path) -> None:
    env = sandbox.step_env(
        clone, AWS_ACCESS_KEY_ID="not-a-key-id", AWS_SECRET_ACCESS_KEY="S3cr3t/value/that/is/long"
    )
    result = run_process(env, clone, "echo-secret")
    assert result.failed_with("AWS_ACCESS_KEY_ID")
    assert "S3cr3t/value/that/is/long" not in result.output
