"""pipe/templates.py: the deploy command ACTION=check suggests, rendered through the template it
names, sets up a trust policy that admits the very token the check was given."""

from __future__ import annotations

import shlex

import pytest

from pipe import oidc, trust_policy
from pipe.templates import oidc_stack
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
    deploy = oidc_stack(oidc.decode(token), repo_slug="shop", create_provider=False, role_stack="team-oidc")
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
