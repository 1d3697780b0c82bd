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
    ("ACTION", "audits", "ACTION"),
    ("TRUST_POLICY_FILE", "no/such/trust.json", "TRUST_POLICY_FILE"),
    ("LEGACY_IDLE_DAYS", "0", "LEGACY_IDLE_DAYS"),
    ("RETIRE_LEGACY_KEYS", "please", "RETIRE_LEGACY_KEYS"),
    ("BITBUCKET_AUTH_PROXY_HOST", "http://proxy:29418", "BITBUCKET_AUTH_PROXY_HOST"),
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
    # Issue 7, item 12: values that got past validation, or ended as "Unexpected internal error".
    ("AWS_ROLE_DURATION_SECONDS", "9" * 5000, "AWS_ROLE_DURATION_SECONDS"),  # int() digit limit
    ("RETRY_TIMEOUT_SECONDS", "0" * 4301, "RETRY_TIMEOUT_SECONDS"),
    ("LEGACY_IDLE_DAYS", "1" * 5000, "LEGACY_IDLE_DAYS"),
    ("AWS_ROLE_SESSION_POLICY", "[" * 50_000 + "]" * 50_000, "AWS_ROLE_SESSION_POLICY"),  # RecursionError
    ("AWS_ROLE_SESSION_POLICY", '{"Statement": [' + "1" * 5000 + "]}", "AWS_ROLE_SESSION_POLICY"),
    ("AWS_ROLE_SESSION_POLICY", '{"Statement": [], "Version": NaN}', "AWS_ROLE_SESSION_POLICY"),
    ("ALLOWED_ACCOUNT_IDS", f"{ACCOUNT} ١٢٣٤٥٦٧٨٩٠١٢", "ALLOWED_ACCOUNT_IDS"),  # Unicode digits match \d
    ("AWS_OIDC_ROLE_ARN", f"arn:aws:iam::{ACCOUNT}:role/déploy", "AWS_OIDC_ROLE_ARN"),  # and \w
    ("AWS_ROLE_SESSION_NAME", "déploiement", "AWS_ROLE_SESSION_NAME"),
    ("AWS_PROFILE_NAME", "prodé", "AWS_PROFILE_NAME"),
    ("AWS_PROFILE_NAME", "DEFAULT", "AWS_PROFILE_NAME"),
    ("BITBUCKET_API_URL", "http://[::1", "BITBUCKET_API_URL"),  # urlparse raises ValueError
    ("AWS_ENDPOINT_URL_STS", "http://[zz]/", "AWS_ENDPOINT_URL_STS"),
    ("TRUST_POLICY_FILE", "t" * 5000, "TRUST_POLICY_FILE"),  # ENAMETOOLONG
    ("STORE_KMS_KEY_ID", "alias/ci store", "STORE_KMS_KEY_ID"),  # PutParameter's KeyId pattern
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


ROTATE_BAD = [
    ("TARGETS", "acme/shop@", "TARGETS"),
    ("TARGETS", "vault:secret/x", "TARGETS"),
    ("TARGETS", "acme/sh%op", "TARGETS"),
    ("TARGETS", "acme/shop, acme/shop", "TARGETS"),
    ("TARGETS", "profile:my]", "TARGETS"),
    ("IAM_USER_NAME", "bad user!", "IAM_USER_NAME"),
    ("IAM_USER_NAME", "", "IAM_USER_NAME"),  # required as a role
    ("ROTATE_AFTER_DAYS", "0", "ROTATE_AFTER_DAYS"),
    ("ROTATE_AFTER_DAYS", "ninety", "ROTATE_AFTER_DAYS"),
    ("DEACTIVATE_AFTER_DAYS", "80", "DEACTIVATE_AFTER_DAYS"),
    ("DELETE_AFTER_DAYS", "100", "DELETE_AFTER_DAYS"),
    ("FORCE_ROTATE", "now", "FORCE_ROTATE"),
    ("VERIFY_TIMEOUT_SECONDS", "1", "VERIFY_TIMEOUT_SECONDS"),
    ("ROTATION_LEASE_SECONDS", "3601", "ROTATION_LEASE_SECONDS"),
    ("PUBLISH_CONCURRENCY", "0", "PUBLISH_CONCURRENCY"),
    ("ACCESS_KEY_ID_VARIABLE", "AWS-KEY", "ACCESS_KEY_ID_VARIABLE"),
    ("SECRET_ACCESS_KEY_VARIABLE", "AWS_ACCESS_KEY_ID", "SECRET_ACCESS_KEY_VARIABLE"),
    ("BITBUCKET_ACCESS_TOKEN", "", "BITBUCKET_ACCESS_TOKEN"),
    ("ATLASSIAN_ACCOUNT_EMAIL", "dev@example.com", "ATLASSIAN_API_TOKEN"),
    ("BITBUCKET_API_URL", "api.bitbucket.org", "BITBUCKET_API_URL"),
    ("BITBUCKET_API_URL", "http://bitbucket.example.com/2.0", "BITBUCKET_API_URL"),  # token in clear
    ("AWS_ENDPOINT_URL_IAM", "iam.local", "AWS_ENDPOINT_URL_IAM"),
    ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "sm.local", "AWS_ENDPOINT_URL_SECRETS_MANAGER"),
    ("AWS_ENDPOINT_URL_SSM", "ssm.local", "AWS_ENDPOINT_URL_SSM"),
    ("SOURCE", "acme/shop", "SOURCE"),
    # Issue 7, item 12: names that reached the API as other paths, or broke the parser.
    ("TARGETS", "..", "TARGETS"),
    ("TARGETS", "../..", "TARGETS"),
    ("TARGETS", "acme/..", "TARGETS"),
    ("TARGETS", "acme/shop, acme/.", "TARGETS"),
    ("TARGETS", "[" * 30_000, "TARGETS"),  # RecursionError in the YAML parser
    ("TARGETS", "ssm:/ci/clé", "TARGETS"),
    ("TARGETS", "profile:DEFAULT", "TARGETS"),
    ("SOURCE", "ssm:/ci/clé", "SOURCE"),
    ("IAM_USER_NAME", "usér", "IAM_USER_NAME"),
    ("ROTATE_AFTER_DAYS", "9" * 5000, "ROTATE_AFTER_DAYS"),
    ("ROTATION_LEASE_SECONDS", "1" * 4400, "ROTATION_LEASE_SECONDS"),
]


@pytest.mark.parametrize(
    ("name", "value", "named"), ROTATE_BAD, ids=[f"{n}={v[:20]!r}" for n, v, _ in ROTATE_BAD]
)
def test_bad_rotation_value_fails_before_any_call(
    sandbox: Sandbox, clone: Path, name: str, value: str, named: str
) -> None:
    env = sandbox.step_env(
        clone,
        token=sandbox.token(),
        AWS_OIDC_ROLE_ARN=ROLE,
        ACTION="sync" if name == "SOURCE" else "rotate",
        IAM_USER_NAME="ci",
        TARGETS="acme/shop, secretsmanager:ci/key",
        BITBUCKET_ACCESS_TOKEN="not-checked-before-validation",
        BITBUCKET_API_URL=sandbox.bitbucket.api_url,
    )
    if name == "ATLASSIAN_ACCOUNT_EMAIL":
        del env["BITBUCKET_ACCESS_TOKEN"]
    env[name] = value
    result = run_process(env, clone, f"bad-rotate-{name}")
    assert result.failed_with(named), result.output
    assert sandbox.aws.requests == [] and sandbox.bitbucket.requests == []


def test_a_list_count_that_is_not_a_number_is_an_input_error(sandbox: Sandbox, clone: Path) -> None:
    env = sandbox.step_env(
        clone,
        token=sandbox.token(),
        AWS_OIDC_ROLE_ARN=ROLE,
        ACTION="rotate",
        IAM_USER_NAME="ci",
        TARGETS_COUNT="²",  # '²'.isdigit() is true; int('²') raises ValueError
        TARGETS_0="acme/shop",
    )
    result = run_process(env, clone, "bad-targets-count")
    assert result.failed_with("TARGETS"), result.output
    assert sandbox.aws.requests == []


def test_a_token_with_undecodable_bytes_is_an_input_error(sandbox: Sandbox, clone: Path) -> None:
    env = sandbox.step_env(clone, token=sandbox.token() + "\udcff", AWS_OIDC_ROLE_ARN=ROLE)
    result = run_process(env, clone, "bad-token-bytes")
    assert result.failed_with("BITBUCKET_STEP_OIDC_TOKEN"), result.output
    assert sandbox.aws.requests == []


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AWS_ACCESS_KEY_ID", AWS_SECRET),  # config's check
        ("AWS_ACCESS_KEY_ID", f"{AWS_SECRET}\n"),
        ("DRY_RUN", AWS_SECRET),  # the schema's check (a pattern)
        ("AWS_DEFAULT_REGION", "ATATT3xFfGF0" + "T0k3nV4lu3" * 6),
        ("ALLOWED_ACCOUNT_IDS", f"{ACCOUNT},{AWS_SECRET}"),
    ],
)
def test_a_secret_in_the_wrong_variable_is_never_echoed(
    sandbox: Sandbox, clone: Path, name: str, value: str
) -> None:
    """Issue 7, item 4: `AWS_ACCESS_KEY_ID=<a secret>` ended in `✖ ... (got 'wJalr...')`."""
    env = sandbox.step_env(clone, AWS_ACCESS_KEY_ID="AKIA" + "X" * 16, AWS_SECRET_ACCESS_KEY="s" * 40)
    env[name] = value
    result = run_process(env, clone, f"secret-in-{name}")
    assert result.failed_with(name), result.output
    assert "not shown" in result.last
    for part in (value.strip(), value.strip()[:12], value.strip()[-12:]):
        assert part not in result.output
    assert sandbox.aws.requests == []


def test_a_secret_looking_value_is_masked_wherever_it_is_printed(sandbox: Sandbox, clone: Path) -> None:
    """A value that looks like a secret is registered with the redactor, whatever its variable:
    here a valid session name, which the pipe prints in its progress and in the final line."""
    name = "Zx8Qw2Lm5Rt7Yp1Kc4Vb9Nh3Jd6Fg0Sa"
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE, AWS_ROLE_SESSION_NAME=name)
    result = run_process(env, clone, "secret-looking-session-name")
    assert result.returncode == 0 and result.last.startswith("✔ "), result.output
    assert name not in result.output and "****" in result.last
