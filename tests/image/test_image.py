"""The built image, run with `docker run` the way Pipelines runs a pipe: host network (the
stand-ins listen on 127.0.0.1), the clone directory mounted at the same path, the working
directory in it, a decoy pipe/ package there, and the step's environment passed by name."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.runner import docker_cli, docker_run, image_python, mode, source_and_call
from tests.standins.aws import ACCOUNT
from tests.standins.issuer import braced
from tests.standins.sandbox import Sandbox

pytestmark = pytest.mark.image
ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"


def test_image_assumes_the_role_and_the_step_uses_the_credentials(
    image: str, sandbox: Sandbox, clone: Path
) -> None:
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE)
    result = docker_run(image, env, clone, "image-ok")
    expected = f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/bitbucket-shop-42"
    assert result.returncode == 0, result.output
    assert result.last.startswith(f"✔ {expected} until ")
    assert "DECOY" not in result.output
    directory = clone / ".bitbucket/pipelines/generated/pipeline/pipes/aws-credentials"
    assert mode(directory) == 0o700
    for name in ("credentials.env", "credentials", "config", "identity.json"):
        assert mode(directory / name) == 0o600
    assert json.loads((directory / "identity.json").read_text())["Arn"] == expected
    assert (
        source_and_call(directory / "credentials.env", sandbox.aws.url, clone.parent, "image-source")
        == expected
    )


def test_image_step_without_oidc(image: str, sandbox: Sandbox, clone: Path) -> None:
    result = docker_run(image, sandbox.step_env(clone, AWS_OIDC_ROLE_ARN=ROLE), clone, "image-no-token")
    assert result.failed_with("oidc: true")
    assert sandbox.aws.requests == []


def test_image_trust_policy_for_another_repository(image: str, sandbox: Sandbox, clone: Path) -> None:
    sandbox.add_role("image-other-repo", sandbox.trust_policy(sub=f"{braced()}:*"))
    env = sandbox.step_env(
        clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/image-other-repo"
    )
    result = docker_run(image, env, clone, "image-denied")
    assert result.failed_with("AccessDenied", "trust policy")
    assert f"{sandbox.repo_uuid}:*" in result.output


def test_image_bad_variable_makes_no_call(image: str, sandbox: Sandbox, clone: Path) -> None:
    env = sandbox.step_env(
        clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE, AWS_ROLE_DURATION_SECONDS="60"
    )
    result = docker_run(image, env, clone, "image-bad-var")
    assert result.failed_with("AWS_ROLE_DURATION_SECONDS")
    assert sandbox.aws.requests == []


def test_image_holds_only_the_venv_and_the_pipe(image: str) -> None:
    script = (
        "import importlib.util, pathlib, sys\n"
        "bad = [m for m in ('pip', 'setuptools', 'pytest', 'moto', 'docker', 'git') if importlib.util.find_spec(m)]\n"
        "root = pathlib.Path('/opt/pipe')\n"
        "tests = [str(p) for p in root.rglob('tests') if p.is_dir()]\n"
        "caches = [p for p in ('/root/.cache', '/root/.cache/pip') if pathlib.Path(p).exists()]\n"
        "data = sorted(p.name for p in (root / 'lib').glob('python3*/site-packages/botocore/data/*') if p.is_dir())\n"
        "print(bad, tests, caches, data)\n"
    )
    out = image_python(image, script)
    assert out == "[] [] [] ['iam', 'organizations', 'secretsmanager', 'sesv2', 'ssm', 'sts']"
    history = subprocess.run(
        [docker_cli(), "history", "--format", "{{.CreatedBy}}|{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    added = [line for line in history if "buildkit" in line or "COPY" in line]
    assert len([line for line in added if "COPY" in line]) == 1, history


def test_image_rotates_a_key_into_bitbucket_and_the_store(image: str, sandbox: Sandbox, clone: Path) -> None:
    from tests.integration.test_rotate import World

    world = World(sandbox, clone)
    world.seed()
    result = docker_run(image, world.env(FORCE_ROTATE="true"), clone, "image-rotate")
    assert result.returncode == 0, result.output
    held = world.held()
    assert len({key for key, _ in held.values()}) == 1 and world.all_work()
    report = json.loads((world.report_dir / "rotation.json").read_text())
    assert report["state"] == "rotated" and report["current_key"] != world.initial[0]
    assert world.initial[1] not in result.output


def test_image_runs_the_migration_check(image: str, sandbox: Sandbox, clone: Path) -> None:
    env = sandbox.step_env(
        clone,
        token=sandbox.token(),
        ACTION="check",
        AWS_OIDC_ROLE_ARN=ROLE,
        BITBUCKET_API_URL=sandbox.bitbucket.api_url,
        REPORT_DIR=str(clone / "reports"),
    )
    result = docker_run(image, env, clone, "image-check")
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    report = json.loads((clone / "reports" / "oidc-check.json").read_text())
    assert report["verdict"] == "READY" and report["facts"]["signature"].startswith("signature verified")
    other = sandbox.add_role("image-check-other", sandbox.trust_policy(sub=f"{braced()}:*"))
    denied = docker_run(image, env | {"AWS_OIDC_ROLE_ARN": other}, clone, "image-check-denied")
    assert denied.failed_with("NOT READY", "AccessDenied"), denied.output


def test_image_first_check_without_a_role_prints_the_deploy(
    image: str, sandbox: Sandbox, clone: Path
) -> None:
    """A newcomer's first run: ACTION=check with no AWS_OIDC_ROLE_ARN verifies the token against
    the issuer's keys and ends NOT READY with the deploy of templates/oidc.yaml for this token."""
    env = sandbox.step_env(
        clone, token=sandbox.token(), ACTION="check", BITBUCKET_API_URL=sandbox.bitbucket.api_url
    )
    result = docker_run(image, env, clone, "image-check-first")
    assert result.failed_with("NOT READY", "AWS_OIDC_ROLE_ARN is not set"), result.output
    assert "signature verified against the issuer's key" in result.output
    issuer = sandbox.issuer
    assert (
        f"provider URL {issuer.url}" in result.output and f"audience     {issuer.audience}" in result.output
    )
    assert (
        "Deploy templates/oidc.yaml: aws cloudformation deploy --template-file templates/oidc.yaml "
        "--stack-name bitbucket-oidc-shop --capabilities CAPABILITY_NAMED_IAM --parameter-overrides "
        f"WorkspaceName=acme WorkspaceUuid={issuer.workspace_uuid.strip('{}')} "
        f"RepositoryUuid={sandbox.repo_uuid.strip('{}')} CreateProvider=true, then set AWS_OIDC_ROLE_ARN"
    ) in result.last
    assert sandbox.aws.requests == []


# Run by the image's Python: each distribution's top-level packages that are missing, and each
# requirement (its environment marker evaluated for this interpreter) that no distribution meets.
METADATA_SCRIPT = """
import importlib.metadata as m, pathlib, platform, re, sys
site = pathlib.Path(m.distribution('botocore').locate_file(''))
here = {'python_version': platform.python_version_tuple()[:2], 'python_full_version': platform.python_version_tuple(),
        'platform_python_implementation': platform.python_implementation(), 'implementation_name': sys.implementation.name,
        'sys_platform': sys.platform, 'extra': ''}
def compare(match):
    name, op, value = match.groups()
    mine = here[name]
    if isinstance(mine, tuple):
        mine, value = tuple(int(p) for p in mine), tuple(int(p) for p in value.split('.'))
    return str({'<': mine < value, '<=': mine <= value, '>': mine > value, '>=': mine >= value,
                '==': mine == value, '!=': mine != value}[op])
def applies(marker):
    expr = re.sub(r"(\\w+)\\s*(<=|>=|==|!=|<|>)\\s*['\\"]([^'\\"]*)['\\"]", compare, marker)
    assert re.fullmatch(r"[\\s()]*((True|False|and|or|not)[\\s()]*)*", expr), expr
    return eval(expr) if expr.strip() else True
norm = lambda n: re.sub(r'[-_.]+', '-', n).lower()
names = {norm(d.metadata['Name']) for d in m.distributions()}
missing, unmet = [], set()
for d in m.distributions():
    tops = {f.parts[0] for f in d.files or () if len(f.parts) > 1 and not f.parts[0].endswith('-info') and f.parts[0] not in ('..', 'bin')}
    missing += [t for t in tops if not (site / t).exists()]
    for r in d.requires or ():
        name, _, marker = r.partition(';')
        base = norm(re.split(r'[ <>=!~\\[(;]', name.strip())[0])
        if applies(marker) and base not in names:
            unmet.add(base)
print(sorted(missing), sorted(unmet))
"""


def test_image_entry_point_runs_without_site_on_the_venv_s_path(image: str) -> None:
    """The entry point skips ``site`` (-S: Debian's sitecustomize costs 2 to 9 ms of every run)
    and puts on sys.path exactly the directory site would: the venv's purelib, after the
    standard library, nothing from the working directory (-I: the clone's decoy pipe/ above)."""
    entry = subprocess.run(
        [docker_cli(), "image", "inspect", "-f", "{{json .Config.Entrypoint}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(entry) == ["/opt/pipe/bin/python", "-I", "-S", "/opt/pipe/bin/entrypoint.py"]
    flags = [*json.loads(entry)[:-1], "-c"]
    script = (
        "import json, runpy, sys; before = list(sys.path); runpy.run_path('/opt/pipe/bin/entrypoint.py'); "
        "print(json.dumps([before, sys.path, 'site' in sys.modules]))"
    )
    flags.append(script)
    proc = subprocess.run(
        [docker_cli(), "run", "--rm", "--network", "none", "--entrypoint", flags[0], image, *flags[1:]],
        capture_output=True,
        text=True,
        check=True,
    )
    before, after, site = json.loads(proc.stdout)
    purelib = image_python(image, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    assert not site
    assert after == [*before, purelib]
    assert all(path.startswith("/usr/") for path in before), before


def test_image_package_metadata_matches_the_files(image: str) -> None:
    """Every installed distribution's top-level packages are there (SBOM tools read the
    metadata: nothing it lists may have been deleted by hand, as cffi and pycparser once were),
    and each one's requirements are installed, except what requirements.txt leaves out on
    purpose (bitbucket-pipes-toolkit's docker and GitPython, installed --no-deps)."""
    assert image_python(image, METADATA_SCRIPT) == "[] ['docker', 'gitpython']"


def test_image_audit_report_mode_makes_read_calls_only(image: str, sandbox: Sandbox, clone: Path) -> None:
    from tests.integration.test_audit import READS, Fleet

    fleet = Fleet(sandbox, clone, accounts=2)
    old = fleet.user("alice", 120)[0]
    fleet.user("bob", 30, account=fleet.accounts[1])
    sandbox.aws.forget_requests()
    result = docker_run(image, fleet.env(AUDIT_MODE="report"), clone, "image-audit-report")
    assert result.returncode == 0 and result.last.startswith("✔ Audit report of 2 account(s), 2 user(s)"), (
        result.output
    )
    assert [a for a, _ in sandbox.aws.requests if a not in READS] == [] and fleet.mails() == []
    report = fleet.report()
    assert [a["status"] for a in report["accounts"]] == ["ok", "ok"]
    # What enforce would do, none of it done: a new key now, the old one deactivated a day later.
    actions = fleet.entry("alice")["actions"]
    assert {
        "action": "create",
        "access_key_id": None,
        "reason": f"{old} is 120 days old (>= 90)",
        "done": False,
    } in actions, actions
    assert any(a["action"] == "notify" and f"{old} to be deactivated on" in a["reason"] for a in actions)
    assert not any(a["done"] for a in actions)
    assert (fleet.report_dir / "audit.md").read_text().startswith("# IAM access key audit (report)")


def test_image_audit_enforces_delivers_mails_and_a_second_run_does_nothing(
    image: str, sandbox: Sandbox, clone: Path
) -> None:
    from tests.integration.test_audit import Fleet
    from tests.standins import registry

    fleet = Fleet(sandbox, clone)
    old = fleet.user("alice", 100)[0]
    result = docker_run(image, fleet.env(), clone, "image-audit-enforce")
    assert result.returncode == 0, result.output
    [new] = set(fleet.keys("alice")) - {old}
    # The old key stays active until the new one is a day old: its secret is read with it.
    assert fleet.keys("alice") == {old: "Active", new: "Active"}
    pair = fleet.secret("alice")
    assert (
        pair is not None and pair["AccessKeyId"] == new and sandbox.aws.issued[new] == pair["SecretAccessKey"]
    )
    [mail] = fleet.mails("alice@example.com")
    assert "aws secretsmanager get-secret-value --secret-id aws-credentials/alice" in mail["text"]
    assert new in mail["html"] and not any(s in mail["text"] + mail["html"] for s in registry.snapshot())
    sandbox.aws.forget_requests()
    again = docker_run(image, fleet.env(), clone, "image-audit-again")
    assert again.returncode == 0 and "0 action(s) done, 0 planned" in again.last, again.output
    assert fleet.writes() == [] and len(fleet.mails()) == 1


def test_image_reports_a_whole_workspace(image: str, sandbox: Sandbox, clone: Path) -> None:
    """CHECK_SCOPE=workspace through the image: the listing pages, a forbidden repository, a
    secured id, a key of another account, keys in every scope; reads only; the summary as a
    Code Insights report through the auth proxy (tests/integration/test_check_workspace.py)."""
    import uuid

    from tests.integration.test_check_workspace import Workspace, in_pipelines, insights

    world = Workspace(sandbox)
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    result = docker_run(image, in_pipelines(world, clone, commit), clone, "image-check-workspace")
    world.check(result, clone)
    world.only_reads()
    insights(world, commit)
    without = sandbox.bitbucket.access_token("pipeline")
    refused = docker_run(
        image, world.env(clone, BITBUCKET_ACCESS_TOKEN=without), clone, "image-workspace-403"
    )
    assert refused.failed_with("repository", "read:repository:bitbucket"), refused.output
