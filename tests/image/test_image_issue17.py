"""Issue 17 and issue 15 (items 15, 16) through the built image, run as Pipelines runs a pipe:
the partitions from the image's pruned botocore data, the step in the session name, a plain
http endpoint elsewhere refused, and a proxy password never echoed, however short."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runner import docker_run, image_python
from tests.standins.aws import ACCOUNT
from tests.standins.sandbox import Sandbox

pytestmark = pytest.mark.image
ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"
STEP = "{8f2d6a0e-3c41-4b7e-9a55-0d6e1f2c3b4a}"


def test_the_images_pruned_data_knows_every_partition(image: str) -> None:
    script = (
        "from pipe import regions; "
        "print(' '.join(f'{r}={regions.partition_of(r)}' for r in "
        "('eu-west-1', 'eusc-de-east-1', 'us-isof-south-1', 'eu-isoe-west-1', 'us-isob-east-1', 'cn-north-1', "
        "'us-gov-west-1', 'eu-central-99', 'xx-east-1')))"
    )
    assert image_python(image, script).split() == [
        "eu-west-1=aws",
        "eusc-de-east-1=aws-eusc",
        "us-isof-south-1=aws-iso-f",
        "eu-isoe-west-1=aws-iso-e",
        "us-isob-east-1=aws-iso-b",
        "cn-north-1=aws-cn",
        "us-gov-west-1=aws-us-gov",
        "eu-central-99=aws",
        "xx-east-1=None",
    ]


def test_the_image_names_the_step_in_the_session(image: str, sandbox: Sandbox, clone: Path) -> None:
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE, BITBUCKET_STEP_UUID=STEP)
    result = docker_run(image, env, clone, "image-session-step")
    assert result.returncode == 0, result.output
    assert f"assumed-role/deploy/bitbucket-shop-42-{STEP.strip('{}')}" in result.lines[-1]


def test_the_image_refuses_plain_http_elsewhere(image: str, sandbox: Sandbox, clone: Path) -> None:
    env = sandbox.step_env(
        clone,
        token=sandbox.token(),
        AWS_OIDC_ROLE_ARN=ROLE,
        AWS_ENDPOINT_URL_STS="http://sts.eu-west-1.amazonaws.com",
    )
    result = docker_run(image, env, clone, "image-plain-http")
    assert result.failed_with("AWS_ENDPOINT_URL_STS", "plain http"), result.output
    assert sandbox.aws.calls("AssumeRoleWithWebIdentity") == 0


PASSWORDS = [
    # (the variables, the password, the variable the ✖ line names)
    ({"HTTPS_PROXY": "http://runner:1/ss-Word9@egress.corp.example:3128"}, "ss-Word9", "HTTPS_PROXY"),
    (
        {
            "HTTPS_PROXY": "http://runner:Zq7x5@egress.corp.example:3128",
            "NO_PROXY": "http://runner:Zq7x5@egress.corp.example:3128",
        },
        "Zq7x5",
        "NO_PROXY",
    ),
]


@pytest.mark.parametrize("case", PASSWORDS)
def test_the_image_never_prints_a_proxy_password(
    image: str, sandbox: Sandbox, clone: Path, case: tuple[dict[str, str], str, str]
) -> None:
    variables, secret, variable = case
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE, **variables)
    result = docker_run(image, env, clone, "image-proxy-password")
    assert result.failed_with(variable), result.output
    assert secret not in result.output, result.output
