"""pipe/templates.py: the deploy command ACTION=check suggests, rendered through the template it
names, sets up a trust policy that admits the very token the check was given."""

from __future__ import annotations

import shlex

import pytest

from pipe import oidc, trust_policy
from pipe.templates import oidc_stack, role_environment, role_fix
from tests.cloudformation import Stack, deploy_command_parameters
from tests.standins.issuer import Issuer, braced

ACME = Issuer("acme")


def admitted(command: str, token: str, previous: dict[str, str] | None = None) -> bool:
    """Render the command's template with its parameters (an update keeps the stack's previous
    values for the others, as `aws cloudformation deploy` does) and evaluate the token."""
    assert "--template-file templates/oidc.yaml" in command
    overrides = {k: v.strip('"') for k, v in deploy_command_parameters(command).items()}
    stack = Stack("oidc.yaml", {**(previous or {}), **overrides})
    claims = oidc.decode(token)
    policy = stack.trust_policy("DeployRole")
    evaluation = trust_policy.evaluate(
        policy, claims=claims, provider_arn=oidc.provider_arn(claims, stack.account)
    )
    return evaluation.allowed and not evaluation.findings


@pytest.mark.parametrize("environment", [None, braced()], ids=["repository", "deployment"])
def test_a_new_stack_admits_the_token(environment: str | None) -> None:
    repo = braced()
    token = ACME.mint(repo, environment_uuid=environment)
    deploy = oidc_stack(oidc.decode(token), repo_slug="shop", create_provider=True)
    assert deploy is not None and not deploy.update
    command = deploy.command()
    assert command.startswith(
        "aws cloudformation deploy --template-file templates/oidc.yaml --stack-name bitbucket-oidc-shop "
    )
    parameters = deploy_command_parameters(command)
    assert parameters["WorkspaceName"] == "acme" and parameters["CreateProvider"] == "true"
    assert parameters["RepositoryUuid"] == repo.strip("{}")  # no braces for a shell to read
    assert parameters.get("DeploymentEnvironmentUuid") == (environment.strip("{}") if environment else None)
    assert admitted(command, token)
    assert "RoleArn output" in deploy.text()
    assert shlex.split(command)[0] == "aws"


def test_an_update_of_the_stack_that_made_the_role() -> None:
    """The role's stack trusted another repository: the update names only what changes, and
    leaves CreateProvider alone (false would delete a provider that stack made)."""
    repo = braced()
    token = ACME.mint(repo)
    previous = {
        "WorkspaceName": "acme",
        "WorkspaceUuid": ACME.workspace_uuid,
        "RepositoryUuid": braced(),
        "DeploymentEnvironmentUuid": braced(),
        "CreateProvider": "true",
        "RoleName": "deploy",
    }
    assert not admitted("--template-file templates/oidc.yaml --parameter-overrides", token, previous)
    advice = role_fix(
        oidc.decode(token),
        repo_slug="shop",
        create_provider=False,
        role_stack="team-oidc",
        role_template="oidc.yaml",
        role_env=previous["DeploymentEnvironmentUuid"],
    )
    assert advice is not None and advice.run_in == previous["DeploymentEnvironmentUuid"].strip("{}")
    deploy = advice.deploy
    assert deploy is not None and deploy.update and "--stack-name team-oidc " in deploy.command()
    assert "CreateProvider" not in deploy_command_parameters(deploy.command())
    assert admitted(deploy.command(), token, previous)
    assert "updates the stack" in deploy.text()


def test_a_long_session_is_asked_for() -> None:
    deploy = oidc_stack(
        oidc.decode(ACME.mint(braced())), repo_slug="shop", create_provider=False, max_session=7200
    )
    assert deploy is not None and deploy_command_parameters(deploy.command())["MaxSessionDuration"] == "7200"


def test_a_token_of_another_issuer_gets_no_template() -> None:
    claims = oidc.decode(ACME.mint(braced(), extra={"iss": "https://token.actions.githubusercontent.com"}))
    assert oidc_stack(claims, repo_slug="shop", create_provider=True) is None


def admits(template: str, logical: str, parameters: dict[str, str], token: str) -> bool:
    stack = Stack(template, parameters)
    claims = oidc.decode(token)
    evaluation = trust_policy.evaluate(
        stack.trust_policy(logical), claims=claims, provider_arn=oidc.provider_arn(claims, stack.account)
    )
    return evaluation.allowed


def rotation(environment: str, repo: str) -> dict[str, str]:
    return {
        "WorkspaceName": "acme",
        "WorkspaceUuid": ACME.workspace_uuid,
        "RepositoryUuid": repo,
        "DeploymentEnvironmentUuid": environment,
        "UserName": "ci-deployer",
        "CreateProvider": "false",
    }


def test_a_key_changing_role_is_never_told_to_admit_every_step() -> None:
    """rotation.yaml's role in one environment, a step in none: the advice is that environment,
    no command (rotation.yaml refuses an empty environment; oidc.yaml is another role)."""
    repo, environment = braced(), braced()
    previous = rotation(environment, repo)
    policy = Stack("rotation.yaml", previous).trust_policy("RotatingRole")
    token = ACME.mint(repo)
    assert role_environment(policy, oidc.decode(token)) == environment.strip("{}")
    assert role_environment(policy, oidc.decode(ACME.mint(braced()))) == ""  # another repository's
    for template in ("rotation.yaml", "audit-hub.yaml"):
        advice = role_fix(
            oidc.decode(token),
            repo_slug="shop",
            create_provider=False,
            role_stack="rotate",
            role_template=template,
            role_env=environment,
        )
        assert advice is not None and advice.deploy is None
        assert advice.run_in == environment.strip("{}") and f"templates/{template}" in advice.note


def test_a_key_changing_role_moved_to_the_steps_environment_keeps_its_template() -> None:
    repo, old, new = braced(), braced(), braced()
    token = ACME.mint(repo, environment_uuid=new)
    advice = role_fix(
        oidc.decode(token),
        repo_slug="shop",
        create_provider=False,
        role_stack="rotate",
        role_template="rotation.yaml",
        role_env=old,
    )
    assert advice is not None and advice.deploy is not None and advice.run_in == old.strip("{}")
    command = advice.deploy.command()
    assert "--template-file templates/rotation.yaml --stack-name rotate " in command
    overrides = deploy_command_parameters(command)
    assert overrides["DeploymentEnvironmentUuid"] == new.strip("{}")
    assert admits("rotation.yaml", "RotatingRole", {**rotation(old, repo), **overrides}, token)


def test_an_oidc_stack_that_retires_keys_gets_a_command_its_rules_accept() -> None:
    """oidc.yaml with RetireLegacyKeys=true in one environment, a step in none: clearing the
    environment alone fails RetiringNeedsADeploymentEnvironment; the command turns retiring off."""
    repo, environment = braced(), braced()
    previous = {
        "WorkspaceName": "acme",
        "WorkspaceUuid": ACME.workspace_uuid,
        "RepositoryUuid": repo,
        "DeploymentEnvironmentUuid": environment,
        "CreateProvider": "false",
        "LegacyKeyUsers": "ci-*",
        "RetireLegacyKeys": "true",
    }
    token = ACME.mint(repo)
    advice = role_fix(
        oidc.decode(token),
        repo_slug="shop",
        create_provider=False,
        role_stack="team-oidc",
        role_template="oidc.yaml",
        role_env=environment,
    )
    assert advice is not None and advice.deploy is not None and advice.run_in == environment.strip("{}")
    overrides = {k: v.strip('"') for k, v in deploy_command_parameters(advice.deploy.command()).items()}
    assert overrides["RetireLegacyKeys"] == "false"
    Stack("oidc.yaml", {**previous, **overrides}).check_rules()  # raises when a rule refuses it
    assert admitted(advice.deploy.command(), token, previous)


def test_a_member_role_is_not_a_steps_role() -> None:
    advice = role_fix(
        oidc.decode(ACME.mint(braced())),
        repo_slug="shop",
        create_provider=False,
        role_stack="members",
        role_template="audit-member.yaml",
    )
    assert advice is not None and advice.deploy is None and "audit-hub.yaml" in advice.note
