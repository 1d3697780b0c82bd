"""Issue 15, items 15 and 16, as a step meets them (the pipe as a process against the stand-ins).

15. An ``http://`` AWS endpoint sends the step's token (and every session token) in clear
    text: only https, or plain http to this machine (a stand-in), is accepted, as for
    BITBUCKET_API_URL; AWS_ENDPOINT_URL that also covers STS is said out loud.
16. A proxy URL whose password holds ``/`` was partly echoed in the ✖ line, and a short proxy
    password was not masked: no ✖ line echoes a proxy URL's path or user part, and its password
    is masked whatever its length."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runner import Result, run_process
from tests.standins.aws import ACCOUNT
from tests.standins.sandbox import Sandbox

ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"


def assume(sandbox: Sandbox, clone: Path, label: str, **variables: str) -> Result:
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE, **variables)
    return run_process(env, clone, label)


@pytest.mark.parametrize(
    "variables",
    [
        {"AWS_ENDPOINT_URL_STS": "http://sts.eu-west-1.amazonaws.com"},
        {"AWS_ENDPOINT_URL": "http://vpce-0a1b2c3d.sts.eu-west-1.vpce.amazonaws.com"},
        {"AWS_ENDPOINT_URL_STS": "http://10.0.0.5:4566"},
    ],
)
def test_a_plain_http_endpoint_elsewhere_is_refused_before_any_call(
    sandbox: Sandbox, clone: Path, variables: dict[str, str]
) -> None:
    (name,) = variables
    result = assume(sandbox, clone, "plain-http-endpoint", **variables)
    assert result.failed_with(name, "plain http", "https"), result.output
    assert sandbox.aws.calls("AssumeRoleWithWebIdentity") == 0


def test_plain_http_to_this_machine_is_accepted(sandbox: Sandbox, clone: Path) -> None:
    """The stand-in's own URL is http://127.0.0.1:<port> (step_env's AWS_ENDPOINT_URL)."""
    url = sandbox.aws.url
    assert url.startswith("http://127.0.0.1:")
    result = assume(
        sandbox, clone, "plain-http-loopback", AWS_ENDPOINT_URL_STS=url.replace("127.0.0.1", "localhost")
    )
    assert result.returncode == 0, result.output
    assert "also sends STS" not in result.output


def test_aws_endpoint_url_that_also_covers_sts_is_warned(sandbox: Sandbox, clone: Path) -> None:
    result = assume(sandbox, clone, "endpoint-covers-sts", AWS_ENDPOINT_URL="https://aws-endpoint.invalid")
    warning = next((line for line in result.lines if line.startswith("WARNING: AWS_ENDPOINT_URL")), "")
    assert "also sends STS" in warning and "AWS_ENDPOINT_URL_STS" in warning, result.output
    with_sts = assume(
        sandbox,
        clone,
        "endpoint-sts-apart",
        AWS_ENDPOINT_URL="https://aws-endpoint.invalid",
        AWS_ENDPOINT_URL_STS=sandbox.aws.url,
    )
    assert with_sts.returncode == 0 and "also sends STS" not in with_sts.output, with_sts.output


@pytest.mark.parametrize(
    ("proxy", "password"),
    [
        ("http://runner:1/ss-Word9@egress.corp.example:3128", "1/ss-Word9"),  # a '/' in the password
        ("http://run/ner:pw-Secret7@egress.corp.example:3128", "pw-Secret7"),  # a '/' in the user
        ("http://runner:2?x#Yz@egress.corp.example:3128", "2?x#Yz"),  # '?' and '#'
    ],
)
def test_a_proxy_password_is_never_echoed(sandbox: Sandbox, clone: Path, proxy: str, password: str) -> None:
    result = assume(sandbox, clone, "proxy-password-echo", HTTPS_PROXY=proxy)
    assert result.failed_with("HTTPS_PROXY"), result.output
    last = result.lines[-1]
    assert password not in result.output and "ss-Word" not in last and "Secret7" not in last, result.output
    # neither the user part nor a guess of it
    assert "runner" not in last and "run/ner" not in last and "egress" not in last
    assert "%2F" in last  # what to write instead


def test_a_short_proxy_password_is_masked(sandbox: Sandbox, clone: Path) -> None:
    """A password of 5 characters (the redactor masked only values of 8 or more) in a value the
    ✖ line echoes: the proxy URL pasted into NO_PROXY as well."""
    proxy = "http://runner:Zq7x5@proxy.internal:3128"
    result = assume(sandbox, clone, "proxy-short-password", HTTPS_PROXY=proxy, NO_PROXY=proxy)
    assert result.failed_with("NO_PROXY"), result.output
    assert "Zq7x5" not in result.output and "****" in result.lines[-1], result.output
