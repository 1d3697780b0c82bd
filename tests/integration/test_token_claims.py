"""Token claims that get past a JWT parser but are no Bitbucket claims: non-finite or absurd
times, and text with newlines or escapes. Through the process, for `assume` and `check`:
one ✖ line naming BITBUCKET_STEP_OIDC_TOKEN before any call to AWS (never "Unexpected
internal error"), and nothing printed raw."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.runner import Result, run_process
from tests.standins.aws import ACCOUNT
from tests.standins.issuer import braced
from tests.standins.sandbox import Sandbox

ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"


def run(sandbox: Sandbox, clone: Path, action: str, token: str, role: str = ROLE) -> Result:
    env = sandbox.step_env(
        clone,
        token=token,
        ACTION=action,
        AWS_OIDC_ROLE_ARN=role,
        BITBUCKET_API_URL=sandbox.bitbucket.api_url,
        REPORT_DIR=str(clone / "reports"),
    )
    return run_process(env, clone, f"claims-{action}-{uuid.uuid4().hex[:6]}")


@pytest.mark.parametrize("action", ["assume", "check"])
@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", float("inf")), ("exp", float("nan")), ("exp", 1e300), ("iat", float("-inf")), ("exp", "soon")],
    ids=["exp-Infinity", "exp-NaN", "exp-1e300", "iat--Infinity", "exp-a-string"],
)
def test_a_time_claim_that_is_no_time(
    sandbox: Sandbox, clone: Path, action: str, claim: str, value: object
) -> None:
    result = run(sandbox, clone, action, sandbox.token(extra={claim: value}))
    assert result.failed_with("BITBUCKET_STEP_OIDC_TOKEN", f"invalid {claim} claim"), result.output
    assert "Unexpected internal error" not in result.output and "Traceback" not in result.output
    assert sandbox.aws.requests == []


FORGED = "\n✔ Forged: all good"


@pytest.mark.parametrize("action", ["assume", "check"])
def test_newlines_and_escapes_in_claims_are_never_printed_raw(
    sandbox: Sandbox, clone: Path, action: str
) -> None:
    step = braced()
    token = sandbox.issuer.mint(
        sandbox.repo_uuid,
        step_uuid=step + FORGED,
        branch="main\x1b[2J\r✔ cleared",
    )
    other = sandbox.add_role(
        f"claims-{uuid.uuid4().hex[:8]}", sandbox.trust_policy(sub=f"{braced()}:*")
    )  # STS refuses: the claims are printed to explain why
    result = run(sandbox, clone, action, token, role=other)
    assert result.returncode == 1 and result.last.startswith("✖ "), result.output
    for line in result.output.splitlines():
        assert not line.startswith("✔"), result.output
        assert "\x1b[2J" not in line and "\r" not in line
    assert "\\n✔ Forged" in result.output  # shown, escaped
    if action == "check":
        report = json.loads((clone / "reports" / "oidc-check.json").read_text())
        assert all("\n" not in f["message"] for f in report["findings"])
        markdown = (clone / "reports" / "oidc-check.md").read_text()
        assert "\n✔ Forged" not in markdown
