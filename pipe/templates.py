"""The AWS-side templates (``templates/`` in the pipe's repository) as a fix: the
``aws cloudformation deploy`` command, its parameter values read from the step's token, that
sets up the IAM OIDC provider and a role whose trust admits this step's repository (and
environment), and nothing else. Pure: ``ACTION=check`` prints it beside what it found."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipe.oidc import TokenClaims

OIDC_TEMPLATE = "templates/oidc.yaml"
ROTATION_TEMPLATE = "templates/rotation.yaml"
# The template parameter that grants an sts:AssumeRole hop's caller its identity-side permission.
HOP_GRANTS = {
    "AWS_CHAINED_ROLE_ARN": f"ChainedRoleArns of {OIDC_TEMPLATE} grants it to that template's deploy role",
    "AWS_ROLE_ARN_FOR_KEYS": f"KeysRoleArns of {ROTATION_TEMPLATE} grants it to that template's fallback user",
}
# The tag every role of templates/ carries: the stack that made it (its update is the fix).
STACK_TAG = "aws-credentials-pipe/stack"
# The templates' fence (docs/setup.md, Fences): no role of theirs may create, deactivate or
# delete a key of a user carrying this tag, nor write it (it is outside aws-credentials-pipe/).
PROTECTED_TAG = "aws-credentials-protected"
DEFAULT_MAX_SESSION = 3600  # the template's MaxSessionDuration default
_ISSUER = re.compile(r"/workspaces/([A-Za-z0-9_-]+)/pipelines-config/identity/oidc/?\Z")
_UUID = re.compile(r"\A\{?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\}?\Z")
_STACK_NAME = re.compile(r"[^A-Za-z0-9-]+")


def _uuid(text: str) -> str | None:
    """A UUID as the templates take it (lower case, braces left out: no shell reads them)."""
    match = _UUID.match(text)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Deploy:
    template: str
    stack: str
    parameters: tuple[tuple[str, str], ...]
    update: bool  # the role came from this stack: the command updates it

    def command(self) -> str:
        overrides = " ".join(f"{key}={value}" for key, value in self.parameters)
        return (
            f"aws cloudformation deploy --template-file {self.template} --stack-name {self.stack} "
            f"--capabilities CAPABILITY_NAMED_IAM --parameter-overrides {overrides}"
        )

    def text(self) -> str:
        """What to do, in one line: the command, and what becomes of AWS_OIDC_ROLE_ARN."""
        after = (
            "(it updates the stack that made the role)"
            if self.update
            else "(from a clone of the pipe's repository), then set AWS_OIDC_ROLE_ARN to the stack's RoleArn output"
        )
        return f"{self.command()} {after}"


def oidc_stack(
    claims: TokenClaims,
    *,
    repo_slug: str,
    create_provider: bool,
    role_stack: str = "",
    max_session: int = DEFAULT_MAX_SESSION,
) -> Deploy | None:
    """The oidc.yaml deployment that admits ``claims``' repository (and deployment
    environment); None when the token is not from Bitbucket's issuer or lacks its UUIDs.
    ``role_stack``: the stack that made the role (its tag), updated rather than a new one."""
    workspace = _ISSUER.search(claims.iss)
    workspace_uuid = _uuid(claims.workspace_uuid) or _uuid(claims.aud.rpartition("/")[2])
    repository_uuid = _uuid(claims.repository_uuid) or _uuid(claims.sub.partition(":")[0])
    if not (workspace and workspace_uuid and repository_uuid):
        return None
    parameters = [
        ("WorkspaceName", workspace.group(1)),
        ("WorkspaceUuid", workspace_uuid),
        ("RepositoryUuid", repository_uuid),
    ]
    environment = _uuid(claims.deployment_environment_uuid)
    if environment or role_stack:  # an update clears an environment this step is not in
        parameters.append(("DeploymentEnvironmentUuid", environment or '""'))
    # An update leaves CreateProvider as it was (false would delete a provider the stack made).
    if create_provider or not role_stack:
        parameters.append(("CreateProvider", "true" if create_provider else "false"))
    if max_session > DEFAULT_MAX_SESSION:
        parameters.append(("MaxSessionDuration", str(max_session)))
    stack = role_stack or _STACK_NAME.sub("-", f"bitbucket-oidc-{repo_slug or repository_uuid}").strip("-")
    return Deploy(OIDC_TEMPLATE, stack[:128], tuple(parameters), update=bool(role_stack))
