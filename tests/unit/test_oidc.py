from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from pipe import oidc
from pipe.errors import InputError

ISS = "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
PROVIDER = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"


def token(**claims: object) -> str:
    base = {"iss": ISS, "aud": "ari:cloud:bitbucket::workspace/w", "sub": "{r}:{s}", "repositoryUuid": "{r}"}
    return jwt.encode(base | claims, "k" * 32, algorithm="HS256")


def test_claims_and_condition_keys() -> None:
    claims = oidc.decode(token(exp=1_700_000_000, branchName="main"))
    assert claims.provider == PROVIDER and not claims.in_deployment
    statement = oidc.trust_statement(claims, "123456789012")
    assert statement["Principal"]["Federated"] == f"arn:aws:iam::123456789012:oidc-provider/{PROVIDER}"
    assert statement["Condition"]["StringEquals"] == {f"{PROVIDER}:aud": "ari:cloud:bitbucket::workspace/w"}
    assert statement["Condition"]["StringLike"] == {f"{PROVIDER}:sub": "{r}:*"}
    assert "branchName                 main" in claims.summary()


def test_deployment_step_sub_pattern() -> None:
    claims = oidc.decode(token(sub="{r}:{e}:{s}", deploymentEnvironmentUuid="{e}"))
    assert claims.in_deployment and oidc.sub_pattern(claims) == "{r}:{e}:*"


def test_expiry_text() -> None:
    claims = oidc.decode(token(exp=1000))
    assert "expired 500s ago" in oidc.expiry_text(claims, 1500)
    assert "valid for 500s more" in oidc.expiry_text(claims, 500)


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", jwt.encode({"aud": "x"}, "k" * 32, algorithm="HS256")])
def test_not_a_bitbucket_token(bad: str) -> None:
    with pytest.raises(InputError) as err:
        oidc.decode(bad)
    assert err.value.variable == "BITBUCKET_STEP_OIDC_TOKEN"


def test_decode_agrees_with_pyjwt() -> None:
    """The claims are read with the standard library (``assume``'s start-up); PyJWT reads the same."""
    raw = token(exp=1_700_000_000, iat=1_699_996_400, branchName="feature/x", aud=["only-one"])
    claims = oidc.decode(raw)
    theirs = jwt.decode(raw, options={"verify_signature": False})
    assert (claims.iss, claims.sub, claims.aud, claims.exp, claims.iat, claims.branch) == (
        theirs["iss"],
        theirs["sub"],
        "only-one",
        theirs["exp"],
        theirs["iat"],
        theirs["branchName"],
    )


@pytest.mark.parametrize(
    "bad",
    [
        "a.b",
        "e30.e30.x.y",  # four segments
        "e30.W10.x",  # the payload is a list
        "W10.e30.x",  # the header is a list
        "e30.!!!!.x",
        "e30." + "eyJ" * 3 + ".x",
    ],
)
def test_malformed_segments(bad: str) -> None:
    with pytest.raises(InputError, match="not a JSON Web Token"):
        oidc.decode(bad)


@pytest.mark.parametrize("name", ["exp", "iat"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e300, -1, True, "1700000000"])
def test_a_time_claim_that_is_no_time_is_an_input_error(name: str, value: object) -> None:
    with pytest.raises(InputError) as err:
        oidc.decode(token(**{name: value}))
    assert err.value.variable == "BITBUCKET_STEP_OIDC_TOKEN" and f"invalid {name} claim" in err.value.message


def test_time_claims_at_the_edges() -> None:
    assert oidc.decode(token(exp=oidc.LATEST_TIME)).exp == oidc.LATEST_TIME
    assert oidc.decode(token(exp=1_700_000_000.75)).exp == 1_700_000_000
    assert oidc.decode(token()).exp is None


def test_claims_are_printable() -> None:
    claims = oidc.decode(
        token(sub="{r}:{s}\n✔ forged", branchName="main\x1b[31m", repositoryUuid="{r}\u202e")
    )
    assert claims.sub == "{r}:{s}\\n✔ forged" and claims.branch == "main\\x1b[31m"
    assert claims.repository_uuid == "{r}\\u202e"
    assert all(line.isprintable() for line in claims.summary())


@pytest.mark.parametrize(
    "iss",
    [
        ISS,
        "https://api.bitbucket.org/2.0/workspaces/{01234567-89ab-cdef-0123-456789abcdef}/pipelines-config/identity/oidc",
        "http://127.0.0.1:8080/2.0/workspaces/acme/pipelines-config/identity/oidc",  # the configured API
    ],
)
def test_bitbucket_issuers(iss: str) -> None:
    assert oidc.issuer_problem(iss, "http://127.0.0.1:8080/2.0") is None


@pytest.mark.parametrize(
    "iss",
    [
        "https://attacker.example/2.0/workspaces/acme/pipelines-config/identity/oidc",
        "http://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc",
        "https://api.bitbucket.org:8443/2.0/workspaces/acme/pipelines-config/identity/oidc",
        "https://api.bitbucket.org.attacker.example/2.0/workspaces/acme/pipelines-config/identity/oidc",
        "https://api.bitbucket.org/2.0@attacker.example/workspaces/acme/pipelines-config/identity/oidc",
        "https://user@api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc",
        "https://api.bitbucket.org/2.0/workspaces/../pipelines-config/identity/oidc",
        "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc/",
        "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc?x=1",
        "https://api.bitbucket.org/2.0/workspaces/a/b/pipelines-config/identity/oidc",
        "https://api.bitbucket.org/2.0/repositories/acme/pipelines-config/identity/oidc",
        "http://127.0.0.1:9999/2.0/workspaces/acme/pipelines-config/identity/oidc",  # another port
        "http://localhost:8080/2.0/workspaces/acme/pipelines-config/identity/oidc",
        "https://token.actions.githubusercontent.com",
    ],
)
def test_other_issuers_are_not_bitbucket(iss: str) -> None:
    problem = oidc.issuer_problem(iss, "http://127.0.0.1:8080/2.0")
    assert problem and "is not Bitbucket's" in problem


def test_a_plain_http_api_url_elsewhere_is_no_issuer_base() -> None:
    iss = "http://bitbucket.internal/2.0/workspaces/acme/pipelines-config/identity/oidc"
    assert oidc.issuer_problem(iss, "http://bitbucket.internal/2.0")
    assert oidc.issuer_problem(iss.replace("http:", "https:"), "https://bitbucket.internal/2.0") is None


def test_assume_start_up_reads_the_token_without_pyjwt_or_cryptography(tmp_path: Path) -> None:
    """PyJWT imports cryptography (about 20 ms more per run in the image): `assume` decodes
    its token without either."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "import pipe.__main__, pipe.actions.assume\n"
        "from pipe import config\n"
        "s = config.load({'AWS_DEFAULT_REGION': 'eu-west-1', 'AWS_OIDC_ROLE_ARN': sys.argv[2],\n"
        "                 'BITBUCKET_STEP_OIDC_TOKEN': sys.argv[1]}, cwd=Path('.'), now=0)\n"
        "assert s.claims and s.claims.sub == '{r}:{s}'\n"
        "print(sorted(m for m in ('jwt', 'cryptography') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", script, token(exp=1_700_000_000), "arn:aws:iam::123456789012:role/r"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )
    assert out.stdout.strip() == "[]", out.stderr


START_UP = (
    "import sys, json\n"
    "from pathlib import Path\n"
    "from pipe import __main__ as entry, config\n"
    "from pipe.actions import get\n"
    "from pipe.aws import Clients\n"
    "from pipe.console import Console\n"
    "env = {'AWS_DEFAULT_REGION': 'eu-west-1', 'AWS_OIDC_ROLE_ARN': sys.argv[2],\n"
    "       'BITBUCKET_STEP_OIDC_TOKEN': sys.argv[1], 'BITBUCKET_API_URL': 'https://api.bitbucket.org/2.0',\n"
    "       'BITBUCKET_BRANCH': 'main', 'BITBUCKET_REPO_UUID': '{r}', 'PATH': '/bin', 'HOSTNAME': 'runner'}\n"
    "env.update(json.loads(sys.argv[3]))\n"
    "console = Console()\n"
    "entry._secrets_and_masks(env, console)\n"  # what main() does first
    "entry.misspelt(env, console)\n"
    "s = config.load(entry.read_variables(env), cwd=Path('.'), now=0)\n"
    "get(s.action)\n"
    "Clients.for_settings(s, console).aws.client('sts')\n"
    "assert s.action == 'assume' and 'pipe.actions.assume' in sys.modules\n"
    "loaded = [m for m in sys.modules if m.split('.')[0] in ('pipe', 'jwt', 'cryptography', 'difflib')]\n"
    "print(json.dumps(sorted(m for m in loaded if m.startswith(tuple(sys.argv[4:])))))\n"
)
# What a run of `assume` that sets none of the other actions' or issue 11's variables must not
# import: check, rotate and sync (the Bitbucket client, the rotation, the stores, the reports,
# the trust-policy evaluator), PyJWT and cryptography, and what the proxies and the misspelt
# names need (pipe.network, pipe.config.network, difflib).
UNWANTED = (
    "jwt",
    "cryptography",
    "pipe.bitbucket",
    "pipe.legacy",
    "pipe.trust_policy",
    "pipe.report",
    "pipe.rotation",
    "pipe.stores",
    "pipe.profile",
    "pipe.config.rotation",
    "pipe.actions.check",
    "pipe.actions.rotate",
    "pipe.actions.sync",
    "pipe.network",
    "pipe.config.network",
    "difflib",
)


def start_up_imports(tmp_path: Path, extra: dict[str, str]) -> list[str]:
    import json

    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            START_UP,
            token(exp=1_700_000_000),
            "arn:aws:iam::123456789012:role/r",
            json.dumps(extra),
            *UNWANTED,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )
    found: list[str] = json.loads(out.stdout.splitlines()[-1])  # after the warnings the console printed
    return found


def test_assume_start_up_imports_no_other_action(tmp_path: Path) -> None:
    """`assume` is every run's path: the entry point, the settings, the clients and the action
    import nothing of the other actions, nor what unused features need (UNWANTED)."""
    assert start_up_imports(tmp_path, {}) == []


def test_the_start_up_check_sees_the_features_when_they_are_used(tmp_path: Path) -> None:
    """The same check, with a proxy and a misspelt name: their modules are imported then, so the
    check above can fail."""
    used = start_up_imports(tmp_path, {"HTTPS_PROXY": "http://127.0.0.1:3128", "AWS_OIDC_ROLE_ARM": "x"})
    assert {"pipe.network", "pipe.config.network", "difflib"} <= set(used)
