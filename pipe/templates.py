"""The AWS-side templates (``templates/`` in the pipe's repository) as a fix: the
``aws cloudformation deploy`` command, its parameter values read from the step's token, that
sets up the IAM OIDC provider and a role whose trust admits this step's repository (and
environment), and nothing else. Pure: ``ACTION=check`` prints it beside what it found.

A role a template made carries its stack and template as tags: the fix updates that stack with
that template. A role that can change access keys (rotation.yaml's, audit-hub.yaml's) is never
told to clear its deployment environment (the templates' fence, docs/setup.md): the step is
told to run in that environment instead."""

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
# The tags every role of templates/ carries: the stack that made it (its update is the fix),
# and the template that stack was deployed from.
STACK_TAG = "aws-credentials-pipe/stack"
TEMPLATE_TAG = "aws-credentials-pipe/template"
# The templates whose role a step assumes (web identity), each with the same Bitbucket
# parameters; rotation.yaml's and audit-hub.yaml's roles change access keys, so their
# DeploymentEnvironmentUuid is required unless AllowAnyBranch=true. audit-member.yaml's role is
# assumed by the hub's, never by a step.
STEP_TEMPLATES = ("oidc.yaml", "rotation.yaml", "audit-hub.yaml")
MEMBER_TEMPLATE = "audit-member.yaml"
# The templates' fence (docs/setup.md, Fences): no role of theirs may create, deactivate or
# delete a key of a user carrying this tag, nor write it (it is outside aws-credentials-pipe/).
PROTECTED_TAG = "aws-credentials-protected"
DEFAULT_MAX_SESSION = 3600  # the template's MaxSessionDuration default
_ISSUER = re.compile(r"/workspaces/([A-Za-z0-9_-]+)/pipelines-config/identity/oidc/?\Z")
_UUID = re.compile(r"\A\{?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\}?\Z")
_ENV_SUB = re.compile(r"\{([0-9a-f-]{36})\}:\{([0-9a-f-]{36})\}:")
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


@dataclass(frozen=True)
class Advice:
    """What fixes the role for this step: ``deploy`` (a command), ``run_in`` (the deployment
    environment, a UUID, that the role admits and the step should run in), and ``note`` (what
    to change when no command is right). Any may be empty."""

    deploy: Deploy | None
    run_in: str = ""
    note: str = ""


def role_environment(policy: object, claims: TokenClaims) -> str:
    """The deployment environment (its UUID) that a template's trust policy admits ``claims``'
    repository's steps of, read from its sub pattern ``{repo}:{env}:*``; "" when none."""
    repository = _uuid(claims.repository_uuid) or _uuid(claims.sub.partition(":")[0])
    for repo, env in _ENV_SUB.findall(str(policy)):
        if repo == repository:
            return str(env)
    return ""


def oidc_stack(
    claims: TokenClaims,
    *,
    repo_slug: str,
    create_provider: bool,
    max_session: int = DEFAULT_MAX_SESSION,
) -> Deploy | None:
    """A new oidc.yaml stack that admits ``claims``' repository (and deployment environment);
    None when the token is not from Bitbucket's issuer or lacks its UUIDs."""
    parameters = _identity(claims)
    if parameters is None:
        return None
    environment = _uuid(claims.deployment_environment_uuid)
    if environment:
        parameters.append(("DeploymentEnvironmentUuid", environment))
    parameters.append(("CreateProvider", "true" if create_provider else "false"))
    if max_session > DEFAULT_MAX_SESSION:
        parameters.append(("MaxSessionDuration", str(max_session)))
    stack = _STACK_NAME.sub("-", f"bitbucket-oidc-{repo_slug or parameters[2][1]}").strip("-")
    return Deploy(OIDC_TEMPLATE, stack[:128], tuple(parameters), update=False)


def role_fix(
    claims: TokenClaims,
    *,
    repo_slug: str,
    create_provider: bool,
    role_stack: str = "",
    role_template: str = "",
    role_env: str = "",
    max_session: int = DEFAULT_MAX_SESSION,
) -> Advice | None:
    """The fix for the role: a new oidc.yaml stack when no template made it (``role_stack``
    and ``role_template`` are its tags), else that stack's update with its own template.
    ``role_env``: the deployment environment the role admits now (``role_environment``).
    Never an empty DeploymentEnvironmentUuid for a role that changes keys."""
    if not (role_stack and role_template):
        new = oidc_stack(
            claims, repo_slug=repo_slug, create_provider=create_provider, max_session=max_session
        )
        return Advice(new) if new else None
    parameters = _identity(claims)
    if parameters is None:
        return None
    step_env = _uuid(claims.deployment_environment_uuid) or ""
    role_env = _uuid(role_env) or ""
    run_in = role_env if role_env and role_env != step_env else ""
    if role_template == MEMBER_TEMPLATE:
        return Advice(
            None,
            note=f"The role is the audit member role of stack {role_stack} (templates/{MEMBER_TEMPLATE}): "
            f"the audit hub's role assumes it, no step does. Set AWS_OIDC_ROLE_ARN to the hub's role "
            f"(the RoleArn output of templates/audit-hub.yaml).",
        )
    if role_template not in STEP_TEMPLATES:
        return Advice(
            None,
            run_in,
            f"The role was made by stack {role_stack} from {role_template}: set its WorkspaceName, "
            f"WorkspaceUuid and RepositoryUuid to {', '.join(v for _, v in parameters)}.",
        )
    template = f"templates/{role_template}"
    note = ""
    if step_env:
        parameters.append(("DeploymentEnvironmentUuid", step_env))
    elif role_env and role_template == "oidc.yaml":
        # Every step of the repository: then the role may deactivate no key (the template's rule
        # RetiringNeedsADeploymentEnvironment refuses an empty environment with RetireLegacyKeys).
        parameters += [("DeploymentEnvironmentUuid", '""'), ("RetireLegacyKeys", "false")]
        note = (
            "Or let every step of the repository assume it: then it deactivates no key "
            "(RetireLegacyKeys=false; only a deployment environment's steps may retire keys)."
        )
    elif role_env:  # the role changes keys: the step runs in its environment, which stays
        return Advice(
            None,
            run_in,
            f"{template}'s role changes access keys: its DeploymentEnvironmentUuid stays {role_env} "
            f"(AllowAnyBranch=true would let every branch's steps assume it; docs/setup.md, Fences).",
        )
    # An update leaves CreateProvider as it was (false would delete a provider the stack made).
    if create_provider:
        parameters.append(("CreateProvider", "true"))
    if max_session > DEFAULT_MAX_SESSION:
        parameters.append(("MaxSessionDuration", str(max_session)))
    return Advice(Deploy(template, role_stack, tuple(parameters), update=True), run_in, note)


def _identity(claims: TokenClaims) -> list[tuple[str, str]] | None:
    """The templates' Bitbucket parameters for ``claims``' repository; None when the token is
    not from Bitbucket's issuer or lacks its UUIDs."""
    workspace = _ISSUER.search(claims.iss)
    workspace_uuid = _uuid(claims.workspace_uuid) or _uuid(claims.aud.rpartition("/")[2])
    repository_uuid = _uuid(claims.repository_uuid) or _uuid(claims.sub.partition(":")[0])
    if not (workspace and workspace_uuid and repository_uuid):
        return None
    return [
        ("WorkspaceName", workspace.group(1)),
        ("WorkspaceUuid", workspace_uuid),
        ("RepositoryUuid", repository_uuid),
    ]
