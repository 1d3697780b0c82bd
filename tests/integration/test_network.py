"""Issue 11, item 6: HTTPS_PROXY, HTTP_PROXY and NO_PROXY for every AWS and Bitbucket call, as
a self-hosted runner behind a proxy sees them. The pipe is pointed at 127.0.0.1 ports that
refuse connections; only the proxy stand-in knows which port really serves each one
(tests/standins/proxy.py), so a call that bypasses the proxy fails. AWS is reached over https
(a CONNECT tunnel, through a TLS front the pipe trusts with AWS_CA_BUNDLE), Bitbucket over
http (absolute-URI forwarding)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.test_rotate import World
from tests.runner import Result, run_process
from tests.standins.aws import ACCOUNT
from tests.standins.proxy import Ca, Proxy, TlsFront, closed_port, make_ca
from tests.standins.sandbox import Sandbox

ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"
USER, PASSWORD = "runner", "proxy-Pa55word-9"


@dataclass
class Net:
    proxy: Proxy
    ca: Ca
    aws: str  # https://127.0.0.1:<closed port>: the AWS stand-in, through the proxy only
    bitbucket: str  # http://127.0.0.1:<closed port>/2.0: the Bitbucket stand-in, through the proxy only

    @property
    def proxy_url(self) -> str:
        return self.proxy.url.replace("http://", f"http://{USER}:{PASSWORD}@")

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.aws,
            "AWS_CA_BUNDLE": str(self.ca.bundle),
            "HTTPS_PROXY": self.proxy_url,
            "http_proxy": self.proxy_url,
        }


@pytest.fixture
def net(sandbox: Sandbox, clone: Path) -> Iterator[Net]:
    ca = make_ca(clone / "tls")
    front = TlsFront(int(urlsplit(sandbox.aws.url).port or 0), ca).start()
    held: list[socket.socket] = []
    routes = {}
    aws_sock, aws_port = closed_port()
    bb_sock, bb_port = closed_port()
    held += [aws_sock, bb_sock]
    routes[f"127.0.0.1:{aws_port}"] = front.port
    routes[f"127.0.0.1:{bb_port}"] = int(urlsplit(sandbox.bitbucket.api_url).port or 0)
    proxy = Proxy(routes, credentials=(USER, PASSWORD)).start()
    path = urlsplit(sandbox.bitbucket.api_url).path
    yield Net(proxy, ca, f"https://127.0.0.1:{aws_port}", f"http://127.0.0.1:{bb_port}{path}")
    proxy.stop()
    front.stop()
    for sock in held:
        sock.close()


def assume(sandbox: Sandbox, clone: Path, label: str, **variables: str) -> Result:
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE, **variables)
    return run_process(env, clone, label)


def test_assume_reaches_aws_only_through_the_proxy(sandbox: Sandbox, clone: Path, net: Net) -> None:
    direct = assume(sandbox, clone, "proxy-none", AWS_ENDPOINT_URL=net.aws, AWS_CA_BUNDLE=str(net.ca.bundle))
    assert direct.failed_with("no connection"), direct.output  # the address is only the proxy's to reach
    sandbox.aws.forget_requests()
    result = assume(sandbox, clone, "proxy-assume", **net.env())
    assert result.returncode == 0, result.output
    aws = urlsplit(net.aws).netloc
    assert [(e.method, e.target) for e in net.proxy.log] == [("CONNECT", aws), ("CONNECT", aws)]
    assert all(e.authorized for e in net.proxy.log)  # the user and password of the proxy URL
    assert sandbox.aws.calls("AssumeRoleWithWebIdentity") == 1 and sandbox.aws.calls("GetCallerIdentity") == 1
    assert f"Network: https through {net.proxy.url}" in result.output
    assert PASSWORD not in result.output


def test_no_proxy_bypasses_the_proxy(sandbox: Sandbox, clone: Path, net: Net) -> None:
    both = {"HTTPS_PROXY": net.proxy_url, "HTTP_PROXY": net.proxy_url}
    through = assume(sandbox, clone, "proxy-http", **both)  # AWS_ENDPOINT_URL: the stand-in's http URL
    assert through.returncode == 0, through.output
    forwarded = [(e.method, e.path) for e in net.proxy.log]
    assert forwarded == [("POST", "/"), ("POST", "/")]  # absolute-URI forwarding of the two STS calls
    net.proxy.clear()
    for no_proxy in ("127.0.0.1", "localhost,127.0.0.0/8", "*"):
        bypassed = assume(sandbox, clone, "proxy-bypass", NO_PROXY=no_proxy, **both)
        assert bypassed.returncode == 0, bypassed.output
        assert net.proxy.log == [], no_proxy
    lower = assume(sandbox, clone, "proxy-bypass-lower", no_proxy="127.0.0.1", **both)
    assert lower.returncode == 0 and net.proxy.log == []


def test_a_refusing_proxy_is_named_in_the_failure(sandbox: Sandbox, clone: Path, net: Net) -> None:
    env = net.env() | {"HTTPS_PROXY": net.proxy.url}  # no user and password: 407
    result = assume(sandbox, clone, "proxy-407", RETRY_TIMEOUT_SECONDS="0", **env)
    assert result.failed_with("could not go through the proxy", "HTTPS_PROXY"), result.output
    assert net.proxy.log and not any(e.authorized for e in net.proxy.log)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"HTTPS_PROXY": "socks5://127.0.0.1:1080"}, "HTTPS_PROXY"),
        ({"HTTPS_PROXY": "http://127.0.0.1:3128", "https_proxy": "http://127.0.0.1:3129"}, "HTTPS_PROXY"),
        ({"http_proxy": "http://127.0.0.1:port"}, "http_proxy"),
        ({"NO_PROXY": "127.0.0.1, not a host"}, "NO_PROXY"),
        ({"AWS_CA_BUNDLE": "no/such/bundle.pem"}, "AWS_CA_BUNDLE"),
    ],
)
def test_bad_network_values_fail_before_any_call(
    sandbox: Sandbox, clone: Path, variables: dict[str, str], named: str
) -> None:
    result = assume(sandbox, clone, "proxy-bad", **variables)
    assert result.failed_with(named), result.output
    assert sandbox.aws.requests == []


def test_rotate_reaches_aws_and_bitbucket_only_through_the_proxy(
    sandbox: Sandbox, clone: Path, net: Net
) -> None:
    world = World(sandbox, clone)
    world.seed()
    result = run_process(
        world.env(FORCE_ROTATE="true", BITBUCKET_API_URL=net.bitbucket, **net.env()),
        clone,
        "proxy-rotate",
        120,
    )
    assert result.returncode == 0, result.output
    assert world.all_work()
    aws, bitbucket = urlsplit(net.aws).netloc, urlsplit(net.bitbucket).netloc
    assert net.proxy.targets() == {aws, bitbucket}
    methods = {e.method for e in net.proxy.log if e.target == bitbucket}
    assert "GET" in methods and methods & {"PUT", "POST"}  # Bitbucket's variables, read and written
    assert world.bb_token not in result.output and PASSWORD not in result.output


def test_a_proxy_that_refuses_bitbucket_is_named_in_the_failure(
    sandbox: Sandbox, clone: Path, net: Net
) -> None:
    world = World(sandbox, clone)
    world.seed()
    env = world.env(FORCE_ROTATE="true", BITBUCKET_API_URL=net.bitbucket, **net.env())
    env["http_proxy"] = net.proxy.url  # no user and password: the proxy answers 407
    result = run_process(env, clone, "proxy-rotate-407", 120)
    assert result.failed_with("Bitbucket could not be reached", "HTTP_PROXY"), result.output
    assert len(world.iam_keys()) == 1  # stopped at the probe: no key was created


def test_the_check_fetches_the_issuers_keys_through_the_proxy(
    sandbox: Sandbox, clone: Path, net: Net
) -> None:
    env = sandbox.step_env(
        clone,
        token=sandbox.token(),
        ACTION="check",
        AWS_OIDC_ROLE_ARN=ROLE,
        BITBUCKET_API_URL=net.bitbucket,
        REPORT_DIR=str(clone / "reports"),
        **net.env(),
    )
    result = run_process(env, clone, "proxy-check")
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    report = json.loads((clone / "reports" / "oidc-check.json").read_text())
    assert report["facts"]["signature"].startswith("signature verified")
    paths = [e.path for e in net.proxy.log if e.target == urlsplit(net.bitbucket).netloc]
    assert any(p.endswith("/.well-known/openid-configuration") for p in paths)
