"""CHECK_SCOPE in the settings: `repository` (the default) is the check as it was; `workspace`
needs the workspace and Bitbucket credentials, and takes AWS credentials as `assume` does
(the step's token and the role, or the fallback key), checked before any call."""

from __future__ import annotations

import pytest

from pipe.credentials import Route
from pipe.errors import InputError
from tests.unit.test_config import KEY, ROLE, TOKEN, load

WORKSPACE = {"ACTION": "check", "CHECK_SCOPE": "workspace", "BITBUCKET_WORKSPACE": "acme"}
BITBUCKET = {"BITBUCKET_ACCESS_TOKEN": "bbat-" + "x" * 40}


def test_the_default_scope_is_the_repository_and_without_a_role_is_the_first_run() -> None:
    assert load(ACTION="check", AWS_OIDC_ROLE_ARN=ROLE).check.scope == "repository"
    first_run = load(ACTION="check", **KEY)  # no role yet: the check prints the AWS side to deploy
    assert first_run.check.scope == "repository" and first_run.role is None


@pytest.mark.parametrize("value", ["workspace", "Workspace", "WORKSPACE"])
def test_the_workspace_scope_with_the_steps_token(value: str) -> None:
    given = WORKSPACE | BITBUCKET | {"CHECK_SCOPE": value}
    settings = load(**given, AWS_OIDC_ROLE_ARN=ROLE, BITBUCKET_STEP_OIDC_TOKEN=TOKEN)
    assert (
        settings.check.scope == "workspace" and settings.route is Route.OIDC and settings.workspace == "acme"
    )


def test_the_workspace_scope_with_the_fallback_key() -> None:
    settings = load(**(WORKSPACE | BITBUCKET | KEY))
    assert settings.route is Route.ACCESS_KEY and settings.access_key is not None


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        (WORKSPACE | KEY, "BITBUCKET_ACCESS_TOKEN"),  # no Bitbucket credentials
        ({**WORKSPACE, "BITBUCKET_WORKSPACE": ""} | BITBUCKET | KEY, "BITBUCKET_WORKSPACE"),
        (WORKSPACE | BITBUCKET | {"CHECK_SCOPE": "organisation"} | KEY, "CHECK_SCOPE"),
    ],
)
def test_the_workspace_scope_refuses_before_any_call(values: dict[str, str], variable: str) -> None:
    with pytest.raises(InputError) as refused:
        load(**values)
    assert refused.value.variable == variable
