"""Issue 11 through the built image, run as Pipelines runs a pipe (tests/runner.py: docker_run):
the `source` line of the docs in the step's shell with and without
BITBUCKET_PIPE_SHARED_STORAGE_DIR, two profiles from two runs, SDK-refreshed credentials,
role chaining, the fallback key assuming a role, managed session policies, masked account
ids, proxies (CONNECT, NO_PROXY), misspelt variables and the partitions' STS endpoints."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import leakcheck
from tests.integration.test_assume_parity import add_role_in, outlives_its_sessions
from tests.runner import docker_run, image_python, mode
from tests.standins.aws import ACCOUNT
from tests.standins.proxy import Proxy, TlsFront, closed_port, make_ca
from tests.standins.sandbox import Sandbox, base_process_env

pytestmark = pytest.mark.image
ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"
OTHER_ACCOUNT = "210987654321"
SESSION = "bitbucket-shop-42"
# The line the README, pipe.yml and docs/check.md give, exactly.
SOURCE = (
    'source "${BITBUCKET_PIPE_SHARED_STORAGE_DIR:-$BITBUCKET_CLONE_DIR/.bitbucket/pipelines/generated/pipeline/pipes}'
    '/aws-credentials/credentials.env"'
)
CALL = "python -c \"import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])\""


def step_shell(script: str, env: dict[str, str], home: Path, label: str) -> subprocess.CompletedProcess[str]:
    """A later command of the step, in bash; every AWS call (the SDK's own AssumeRole* too)
    goes to the stand-in."""
    proc = subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {script}"],
        env=base_process_env(home) | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    leakcheck.capture(label, proc.stdout + proc.stderr)
    return proc


def test_the_documented_source_line_works_with_and_without_the_shared_storage_variable(
    image: str, sandbox: Sandbox, clone: Path
) -> None:
    docs = "\n".join(
        (Path(__file__).resolve().parents[2] / name).read_text()
        for name in ("README.md", "pipe.yml", "docs/check.md")
    )
    assert SOURCE in docs
    expected = f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/{SESSION}"
    shared = str(clone / ".bitbucket/pipelines/generated/pipeline/pipes")
    for pipe_has_it in (True, False):
        env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE)
        if not pipe_has_it:
            del env["BITBUCKET_PIPE_SHARED_STORAGE_DIR"]
        result = docker_run(image, env, clone, f"image-source-{pipe_has_it}")
        assert result.returncode == 0, result.output
        for shell_has_it in (True, False):
            shell = {"BITBUCKET_CLONE_DIR": str(clone), "AWS_ENDPOINT_URL": sandbox.aws.url}
            if shell_has_it:
                shell["BITBUCKET_PIPE_SHARED_STORAGE_DIR"] = shared
            proc = step_shell(f"cd /; {SOURCE}; {CALL}", shell, clone.parent, "image-source-shell")
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.strip() == expected, (pipe_has_it, shell_has_it)


def test_two_image_runs_leave_two_working_profiles(image: str, sandbox: Sandbox, clone: Path) -> None:
    other = sandbox.add_role("image-deploy-other")
    for profile, role in (("app", ROLE), ("dns", other)):
        env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=role, AWS_PROFILE_NAME=profile)
        result = docker_run(image, env, clone, f"image-profile-{profile}")
        assert result.returncode == 0, result.output
    directory = clone / ".bitbucket/pipelines/generated/pipeline/pipes/aws-credentials"
    script = (
        f'export AWS_SHARED_CREDENTIALS_FILE="{directory}/credentials" AWS_CONFIG_FILE="{directory}/config"; '
        'for p in app dns; do aws_profile=$p python -c "import boto3, os; '
        "print(boto3.session.Session(profile_name=os.environ['aws_profile']).client('sts')"
        ".get_caller_identity()['Arn'])\"; done"
    )
    proc = step_shell(script, {"AWS_ENDPOINT_URL": sandbox.aws.url}, clone.parent, "image-profiles")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/{SESSION}",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/image-deploy-other/{SESSION}",
    ]


def test_image_web_identity_mode_outlives_its_session(image: str, sandbox: Sandbox, clone: Path) -> None:
    sandbox.aws.session_lifetime = 4
    env = sandbox.step_env(
        clone,
        token=sandbox.token(),
        AWS_OIDC_ROLE_ARN=ROLE,
        CREDENTIALS_MODE="web-identity",
        AWS_ROLE_DURATION_SECONDS="900",
        AWS_PROFILE_NAME="deploy",
    )
    result = docker_run(image, env, clone, "image-web-identity")
    assert result.returncode == 0, result.output
    directory = clone / ".bitbucket/pipelines/generated/pipeline/pipes/aws-credentials"
    assert mode(directory / "web-identity-token") == 0o600
    outlives_its_sessions(sandbox, directory, clone.parent, "img")


def test_image_chains_into_another_account_with_policies_and_masked_ids(
    image: str, sandbox: Sandbox, clone: Path
) -> None:
    target = add_role_in(sandbox, OTHER_ACCOUNT, "image-cross", ROLE, external_id="img-1")
    policy = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    env = sandbox.step_env(
        clone,
        token=sandbox.token(),
        AWS_OIDC_ROLE_ARN=ROLE,
        AWS_CHAINED_ROLE_ARN=target,
        AWS_CHAINED_EXTERNAL_ID="img-1",
        AWS_ROLE_SESSION_POLICY_ARNS=policy,
        ALLOWED_ACCOUNT_IDS=OTHER_ACCOUNT,
        MASK_ACCOUNT_ID="true",
        AWS_OIDC_ROLE_ARM="typo",
    )
    result = docker_run(image, env, clone, "image-chained")
    assert result.returncode == 0, result.output
    assert result.last.startswith("✔ arn:aws:sts::************:assumed-role/image-cross/")
    assert ACCOUNT not in result.output and OTHER_ACCOUNT not in result.output
    assert "did you mean AWS_OIDC_ROLE_ARN?" in result.output and "typo" not in result.output
    chained = sandbox.aws.assume_calls[-1]
    assert (chained["RoleArn"], chained["ExternalId"], chained["PolicyArns"]) == (
        target,
        "img-1",
        [{"arn": policy}],
    )
    identity = json.loads(
        (clone / ".bitbucket/pipelines/generated/pipeline/pipes/aws-credentials/identity.json").read_text()
    )
    assert identity["Account"] == OTHER_ACCOUNT


def test_image_fallback_key_assumes_a_role(image: str, sandbox: Sandbox, clone: Path) -> None:
    key_id, secret = sandbox.add_user_key("image-keys-role")
    role = add_role_in(sandbox, ACCOUNT, "image-for-keys", f"arn:aws:iam::{ACCOUNT}:user/image-keys-role")
    env = sandbox.step_env(
        clone, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret, AWS_ROLE_ARN_FOR_KEYS=role
    )
    result = docker_run(image, env, clone, "image-keys-role")
    assert result.returncode == 0, result.output
    assert result.last.startswith(f"✔ arn:aws:sts::{ACCOUNT}:assumed-role/image-for-keys/{SESSION}")
    assert "To use OIDC" in result.output and secret not in result.output


def test_image_reaches_aws_only_through_the_proxy_unless_no_proxy_says_so(
    image: str, sandbox: Sandbox, clone: Path
) -> None:
    ca = make_ca(clone / "tls")  # in the clone directory: the container sees it at the same path
    front = TlsFront(int(urlsplit(sandbox.aws.url).port or 0), ca).start()
    held, port = closed_port()
    proxy = Proxy({f"127.0.0.1:{port}": front.port}, credentials=("runner", "image-Pa55word")).start()
    try:
        login = proxy.url.replace("http://", "http://runner:image-Pa55word@")
        env = sandbox.step_env(
            clone,
            token=sandbox.token(),
            AWS_OIDC_ROLE_ARN=ROLE,
            AWS_ENDPOINT_URL=f"https://127.0.0.1:{port}",
            AWS_CA_BUNDLE=str(ca.bundle),
            HTTPS_PROXY=login,
        )
        result = docker_run(image, env, clone, "image-proxy")
        assert result.returncode == 0, result.output
        assert [e.method for e in proxy.log] == ["CONNECT", "CONNECT"] and all(
            e.authorized for e in proxy.log
        )
        assert "image-Pa55word" not in result.output
        proxy.clear()
        direct = sandbox.step_env(
            clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE, HTTP_PROXY=login, no_proxy="127.0.0.1"
        )
        bypassed = docker_run(image, direct, clone, "image-no-proxy")
        assert bypassed.returncode == 0, bypassed.output
        assert proxy.log == []
    finally:
        proxy.stop()
        front.stop()
        held.close()


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("us-gov-west-1", "https://sts.us-gov-west-1.amazonaws.com"),
        ("cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn"),
        ("cn-northwest-1", "https://sts.cn-northwest-1.amazonaws.com.cn"),
    ],
)
def test_the_images_pruned_sdk_data_still_knows_every_partitions_sts(
    image: str, region: str, endpoint: str
) -> None:
    script = f"from pipe.aws import AwsClients; print(AwsClients({region!r}, {{}}, 60).client('sts').meta.endpoint_url)"
    out = image_python(image, script)
    assert out == endpoint
