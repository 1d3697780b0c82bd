"""ACTION=check points to templates/oidc.yaml: when the provider is missing or the role's trust
is wrong, its findings and its ✖ line give the `aws cloudformation deploy` command with the
parameter values that set it right, and deploying that command (into the stand-in's
CloudFormation) makes the next check READY.

These runs leave CI unset: the check posts no Code Insights report and never binds the auth
proxy's fixed port (test_check.py's Code Insights test does)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cloudformation import deploy_command_parameters
from tests.runner import Result, run_process
from tests.stacks import add_provider, deploy
from tests.standins.issuer import Issuer, braced, foreign_key
from tests.standins.sandbox import Sandbox

# moto's CloudFormation warns that it skips AWS::SecretsManager::Secret: tests/stacks.py creates it.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.*not supported by moto:UserWarning")


def check(
    sandbox: Sandbox, clone: Path, role: str, token: str, **extra: str
) -> tuple[Result, dict[str, Any]]:
    env = sandbox.step_env(
        clone,
        token=token,
        ACTION="check",
        AWS_OIDC_ROLE_ARN=role,
        BITBUCKET_API_URL=sandbox.bitbucket.api_url,
        REPORT_DIR=str(clone / "reports"),
        **extra,
    )
    assert "CI" not in env
    result = run_process(env, clone, f"check-template-{uuid.uuid4().hex[:6]}")
    path = clone / "reports" / "oidc-check.json"
    return result, (json.loads(path.read_text()) if path.exists() else {})


def hinted(report: dict[str, Any]) -> str:
    [finding] = [f for f in report["findings"] if f["code"] == "deploy-template"]
    assert finding["severity"] == "info"
    return str(finding["fix"])


def apply(sandbox: Sandbox, command: str, **change: str) -> str:
    """Deploy what the command says (as a new stack) in the stand-in; the new role's ARN."""
    parameters = {k: v.strip('"') for k, v in deploy_command_parameters(command).items()} | change
    return deploy(sandbox.aws, "oidc.yaml", parameters, name=f"fix-{uuid.uuid4().hex[:8]}").outputs["RoleArn"]


def fallback_key(sandbox: Sandbox) -> dict[str, str]:
    key_id, secret = sandbox.add_user_key(f"reader-{uuid.uuid4().hex[:6]}")
    return {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}


def test_a_missing_provider_names_the_template_and_its_values(sandbox: Sandbox, clone: Path) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:6]}"
    issuer: Issuer = sandbox.bitbucket.add_issuer(workspace)
    repo = braced()
    role = sandbox.add_role(
        f"check-{uuid.uuid4().hex[:8]}", sandbox.trust_policy(sub=f"{repo}:*", issuer=issuer)
    )
    result, report = check(sandbox, clone, role, issuer.mint(repo), **fallback_key(sandbox))
    assert result.failed_with("NOT READY", "no IAM OIDC identity provider"), result.output
    command = hinted(report)
    expected = (
        f"--parameter-overrides WorkspaceName={workspace} WorkspaceUuid={issuer.workspace_uuid.strip('{}')} "
        f"RepositoryUuid={repo.strip('{}')} CreateProvider=true"
    )
    assert "--template-file templates/oidc.yaml" in command and expected in command
    assert f"Or deploy templates/oidc.yaml: {command}." in result.last
    assert "create-open-id-connect-provider" in result.last  # the one-command fix stays first
    # Deployed (the provider through the API: moto's CloudFormation lacks the type), it works.
    add_provider(sandbox.aws, issuer)
    fixed = apply(sandbox, command, CreateProvider="false")
    result, report = check(sandbox, clone, fixed, issuer.mint(repo))
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    assert not [f for f in report["findings"] if f["code"] == "deploy-template"]


def test_a_hand_made_role_for_another_repository_gets_a_new_stack(sandbox: Sandbox, clone: Path) -> None:
    environment = braced()
    role = sandbox.add_role(f"check-{uuid.uuid4().hex[:8]}", sandbox.trust_policy(sub=f"{braced()}:*"))
    token = sandbox.token(environment_uuid=environment)
    result, report = check(sandbox, clone, role, token, **fallback_key(sandbox))
    assert result.failed_with("NOT READY", "another repository", "templates/oidc.yaml"), result.output
    command = hinted(report)
    parameters = deploy_command_parameters(command)
    assert "--stack-name bitbucket-oidc-shop " in command and parameters["CreateProvider"] == "false"
    assert parameters["DeploymentEnvironmentUuid"] == environment.strip("{}")
    assert "AWS_OIDC_ROLE_ARN" in result.last and "role_stack" not in report["facts"]
    fixed = apply(sandbox, command)
    result, _ = check(sandbox, clone, fixed, sandbox.token(environment_uuid=environment))
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    # Only that environment's steps: the repository's other steps are refused.
    result, _ = check(sandbox, clone, fixed, sandbox.token())
    assert result.failed_with("NOT READY"), result.output


def test_a_role_from_a_stack_is_fixed_by_updating_that_stack(sandbox: Sandbox, clone: Path) -> None:
    """The role's aws-credentials-pipe/stack tag names the stack to update. (moto's
    CloudFormation does not update a role's trust policy on a stack update, so the update's
    effect is proven by rendering in tests/unit/test_template_hint.py.)"""
    name = f"team-{uuid.uuid4().hex[:8]}"
    parameters = {
        "WorkspaceName": "acme",
        "WorkspaceUuid": sandbox.issuer.workspace_uuid,
        "RepositoryUuid": braced(),
        "CreateProvider": "false",
    }
    role = deploy(sandbox.aws, "oidc.yaml", parameters, name=name).outputs["RoleArn"]
    result, report = check(
        sandbox, clone, role, sandbox.token(), AWS_ROLE_DURATION_SECONDS="7200", **fallback_key(sandbox)
    )
    assert result.failed_with("NOT READY", f"--stack-name {name} "), result.output
    assert report["facts"]["role_stack"] == name
    overrides = deploy_command_parameters(hinted(report))
    assert overrides["RepositoryUuid"] == sandbox.repo_uuid.strip("{}")
    assert overrides["MaxSessionDuration"] == "7200" and "CreateProvider" not in overrides
    assert "updates the stack that made the role" in result.last


def environment_step(sandbox: Sandbox, name: str) -> tuple[str, dict[str, str]]:
    """A repository with deployment environment ``name`` in the stand-in: its UUID, and the
    variables that let the check read the environment's name."""
    slug = f"shop-{uuid.uuid4().hex[:6]}"
    sandbox.bitbucket.add_repo("acme", slug, (name,))
    env_uuid = sandbox.bitbucket.environment_uuid("acme", slug, name.lower())
    access = {
        "BITBUCKET_REPO_SLUG": slug,
        "BITBUCKET_ACCESS_TOKEN": sandbox.bitbucket.access_token("pipeline", "pipeline:variable"),
    }
    return env_uuid, access


def test_a_rotation_role_checked_outside_its_environment_is_told_to_run_there(
    sandbox: Sandbox, clone: Path
) -> None:
    """rotation.yaml's role admits one deployment environment's steps (the fence: it creates
    access keys). A step in none is told to run in that environment, by name, and which template
    holds it; never to redeploy the stack as oidc.yaml, nor with an empty environment."""
    env_uuid, access = environment_step(sandbox, "Production")
    name = f"rotate-{uuid.uuid4().hex[:8]}"
    parameters = {
        "WorkspaceName": "acme",
        "WorkspaceUuid": sandbox.issuer.workspace_uuid,
        "RepositoryUuid": sandbox.repo_uuid,
        "DeploymentEnvironmentUuid": env_uuid,
        "UserName": f"ci-{uuid.uuid4().hex[:6]}",
        "CreateProvider": "false",
    }
    role = deploy(sandbox.aws, "rotation.yaml", parameters, name=name).outputs["RoleArn"]
    result, report = check(sandbox, clone, role, sandbox.token(), **access, **fallback_key(sandbox))
    assert result.failed_with("NOT READY", "`deployment: Production`"), result.output
    assert report["facts"]["role_template"] == "rotation.yaml" and report["facts"]["role_stack"] == name
    [advice] = [f for f in report["findings"] if f["code"] == "deployment-environment"]
    assert env_uuid in advice["message"] and "templates/rotation.yaml" in advice["fix"], advice
    assert f"DeploymentEnvironmentUuid stays {env_uuid.strip('{}')}" in advice["fix"], advice
    assert not [f for f in report["findings"] if f["code"] == "deploy-template"], report["findings"]
    assert "templates/oidc.yaml" not in result.output and 'DeploymentEnvironmentUuid=""' not in result.output
    # The trust-condition finding's fix is that environment too, not a sub line for every step.
    assert f'"{sandbox.repo_uuid}:*"' not in result.output, result.output
    # Without a key that may read the role, its tags are unknown: the new oidc.yaml stack says so.
    result, report = check(sandbox, clone, role, sandbox.token(), **access)
    assert "role_template" not in report["facts"], report["facts"]
    [template] = [f for f in report["findings"] if f["code"] == "deploy-template"]
    assert "if rotation.yaml or audit-hub.yaml made it, update that stack instead" in template["message"]
    # Run there, as advised: the role admits the step.
    result, report = check(sandbox, clone, role, sandbox.token(environment_uuid=env_uuid), **access)
    assert report["facts"]["assume"]["ok"] is True, result.output


def test_an_oidc_stack_that_retires_keys_gets_a_command_its_rules_accept(
    sandbox: Sandbox, clone: Path
) -> None:
    """oidc.yaml with RetireLegacyKeys=true admits one environment's steps (its rule
    RetiringNeedsADeploymentEnvironment). A step in none gets that environment, and the update
    as printed, deployed with the stack's other values (as `aws cloudformation deploy` keeps
    them), passes the template's Rules and admits the step."""
    env_uuid, access = environment_step(sandbox, "Staging")
    name = f"team-{uuid.uuid4().hex[:8]}"
    previous = {
        "WorkspaceName": "acme",
        "WorkspaceUuid": sandbox.issuer.workspace_uuid,
        "RepositoryUuid": sandbox.repo_uuid,
        "DeploymentEnvironmentUuid": env_uuid,
        "CreateProvider": "false",
        "LegacyKeyUsers": "legacy/*",
        "RetireLegacyKeys": "true",
    }
    role = deploy(sandbox.aws, "oidc.yaml", previous, name=name).outputs["RoleArn"]
    result, report = check(sandbox, clone, role, sandbox.token(), **access, **fallback_key(sandbox))
    assert result.failed_with("NOT READY", "`deployment: Staging`", f"--stack-name {name} "), result.output
    command = hinted(report)
    overrides = deploy_command_parameters(command)
    assert overrides["RetireLegacyKeys"] == "false" and overrides["DeploymentEnvironmentUuid"] == '""'
    [template] = [f for f in report["findings"] if f["code"] == "deploy-template"]
    assert "then it deactivates no key" in template["message"], template
    # Deployed as printed over the stack's values: the Rules hold (tests/stacks.py asserts them).
    fixed = apply(sandbox, command, **{k: v for k, v in previous.items() if k not in overrides})
    result, _ = check(sandbox, clone, fixed, sandbox.token(), **access)
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output


def test_a_ready_role_gets_no_template(sandbox: Sandbox, clone: Path) -> None:
    role = sandbox.add_role(f"check-{uuid.uuid4().hex[:8]}", sandbox.trust_policy())
    result, report = check(sandbox, clone, role, sandbox.token())
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    assert not [f for f in report["findings"] if f["code"] == "deploy-template"]


def first_run(sandbox: Sandbox, clone: Path, token: str | None) -> Result:
    """ACTION=check with no AWS_OIDC_ROLE_ARN: a newcomer's first run, before any role exists."""
    env = sandbox.step_env(clone, token=token, ACTION="check", BITBUCKET_API_URL=sandbox.bitbucket.api_url)
    assert "AWS_OIDC_ROLE_ARN" not in env
    return run_process(env, clone, f"check-first-{uuid.uuid4().hex[:6]}")


def test_the_first_run_without_a_role_prints_the_deploy_that_makes_the_check_ready(
    sandbox: Sandbox, clone: Path
) -> None:
    """A fresh account and workspace: the first run verifies the token and prints the provider
    URL, the audience and the deploy; deploying that (as printed) and setting the role makes the
    check READY."""
    workspace = f"ws-{uuid.uuid4().hex[:6]}"
    issuer: Issuer = sandbox.bitbucket.add_issuer(workspace)
    repo = braced()
    result = first_run(sandbox, clone, issuer.mint(repo))
    assert result.failed_with("NOT READY", "AWS_OIDC_ROLE_ARN is not set"), result.output
    assert sandbox.aws.requests == []  # no role, no call to AWS
    assert "signature verified against the issuer's key" in result.output
    assert (
        f"provider URL {issuer.url}" in result.output and f"audience     {issuer.audience}" in result.output
    )
    command = result.last.split("Deploy templates/oidc.yaml: ", 1)[1].split(", then set AWS_OIDC_ROLE_ARN")[0]
    assert command.startswith("aws cloudformation deploy --template-file templates/oidc.yaml ")
    assert deploy_command_parameters(command) == {
        "WorkspaceName": workspace,
        "WorkspaceUuid": issuer.workspace_uuid.strip("{}"),
        "RepositoryUuid": repo.strip("{}"),
        "CreateProvider": "true",
    }
    add_provider(sandbox.aws, issuer)  # CreateProvider=true's provider (moto's CloudFormation lacks it)
    role = apply(sandbox, command, CreateProvider="false")
    result, _ = check(sandbox, clone, role, issuer.mint(repo))
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output


def test_the_first_run_refuses_a_forged_token_and_a_step_without_oidc(sandbox: Sandbox, clone: Path) -> None:
    forged = first_run(sandbox, clone, sandbox.token(signing_key=foreign_key()))
    assert forged.failed_with("NOT READY", "signature"), forged.output
    assert "cloudformation deploy" not in forged.output
    missing = first_run(sandbox, clone, None)
    assert missing.failed_with("NOT READY", "oidc: true"), missing.output
