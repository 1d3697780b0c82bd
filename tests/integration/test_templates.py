"""templates/ deployed into the stand-in's CloudFormation (moto): each creates what it renders
to (tests/cloudformation.py), and the roles it creates admit whom they should through the
stand-in STS. The pipe's own runs against deployed stacks are in test_least_privilege.py.

moto's CloudFormation lacks AWS::IAM::OIDCProvider and AWS::SecretsManager::Secret: the
provider is created through the IAM API (tests/stacks.py: add_provider; the templates'
CreateProvider=false path) and a secret through the Secrets Manager API, as the template
declares it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.stacks import (
    REGION,
    add_provider,
    deploy,
    deploy_stack_set,
    deployed_policies,
    moto_role,
    web_identity,
)
from tests.standins.aws import ACCOUNT
from tests.standins.issuer import braced
from tests.standins.sandbox import Sandbox

MEMBERS = ["222222222222", "333333333333"]
# moto's CloudFormation warns that it skips AWS::SecretsManager::Secret: tests/stacks.py creates it.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.*not supported by moto:UserWarning")


def bitbucket(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    return {
        "WorkspaceName": "acme",
        "WorkspaceUuid": sandbox.issuer.workspace_uuid,
        "RepositoryUuid": sandbox.repo_uuid,
        "CreateProvider": "false",
        **extra,
    }


def cases(sandbox: Sandbox, tag: str) -> dict[str, dict[str, str]]:
    user = f"dev-{tag}"
    sandbox.add_user(user)
    return {
        "oidc.yaml": bitbucket(
            sandbox,
            ManagedPolicyArns="arn:aws:iam::aws:policy/ReadOnlyAccess",
            MaxSessionDuration="7200",
            LegacyKeyUsers="legacy/*",
            RetireLegacyKeys="true",
            DeploymentEnvironmentUuid=braced(),
        ),
        "rotation.yaml": bitbucket(
            sandbox,
            UserName=f"ci-{tag}",
            SecretName=f"ci/{tag}/key",
            KmsKeyId=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid.uuid4()}",
            DeploymentEnvironmentUuid=braced(),
        ),
        "self-service.yaml": {"Users": user},
        "audit-hub.yaml": bitbucket(
            sandbox,
            RoleName=f"hub-{tag}",
            DeploymentEnvironmentUuid=braced(),
            AuditOrganization="true",
            AuditMode="enforce",
            NotifyFrom="security@acme.com",
        ),
        "audit-member.yaml": {"HubAccountId": ACCOUNT, "RoleName": f"member-{tag}", "AuditMode": "revoke"},
    }


def _role_in_moto(sandbox: Sandbox, name: str) -> dict[str, Any]:
    """The role as IAM answers for it; its inline policies from moto's backend (for a role made
    by CloudFormation, moto's GetRolePolicy answers the document as Python text, not JSON)."""
    role = sandbox.aws.client("iam", region="us-east-1").get_role(RoleName=name)["Role"]
    return {
        "trust": role["AssumeRolePolicyDocument"],
        "policies": deployed_policies(moto_role(ACCOUNT, name)),
        "max_session": role["MaxSessionDuration"],
        "tags": {t["Key"]: t["Value"] for t in role.get("Tags", [])},
    }


@pytest.mark.parametrize(
    "template", ["oidc.yaml", "rotation.yaml", "self-service.yaml", "audit-hub.yaml", "audit-member.yaml"]
)
def test_each_template_deploys_what_it_renders_to(sandbox: Sandbox, template: str) -> None:
    tag = uuid.uuid4().hex[:8]
    deployed = deploy(sandbox.aws, template, cases(sandbox, tag)[template], name=f"t-{tag}")
    assert deployed.outputs == {k: str(v) for k, v in deployed.stack.outputs.items()}
    for logical, resource in deployed.stack.resources.items():
        properties = resource["Properties"]
        if resource["Type"] != "AWS::IAM::Role":
            continue
        moto = _role_in_moto(sandbox, deployed.stack.physical_id(logical))
        trust = properties["AssumeRolePolicyDocument"]
        assert moto["trust"] == (json.loads(trust) if isinstance(trust, str) else trust)
        assert moto["max_session"] == int(properties.get("MaxSessionDuration", 3600))
        assert moto["tags"] == {t["Key"]: t["Value"] for t in properties.get("Tags", [])}
        inline = {p["PolicyName"]: p["PolicyDocument"] for p in properties.get("Policies", [])}
        for other in deployed.stack.resources.values():  # AWS::IAM::Policy resources on this role
            if (
                other["Type"] == "AWS::IAM::Policy"
                and deployed.stack.physical_id(logical) in other["Properties"]["Roles"]
            ):
                inline[other["Properties"]["PolicyName"]] = other["Properties"]["PolicyDocument"]
        assert moto["policies"] == inline
    if template == "rotation.yaml":
        assert deployed.by_api == ["StoreSecret"]  # moto's CloudFormation lacks the type
    if template == "self-service.yaml":
        iam = sandbox.aws.client("iam", region="us-east-1")
        attached = iam.list_attached_user_policies(UserName=f"dev-{tag}")["AttachedPolicies"]
        assert sorted(p["PolicyArn"] for p in attached) == sorted(deployed.outputs.values())


def test_a_deployed_role_admits_its_repository_only(sandbox: Sandbox) -> None:
    """Through the stand-in STS: the deploy role of oidc.yaml takes the repository's token and
    refuses another repository's and another environment's."""
    tag = uuid.uuid4().hex[:8]
    environment = braced()
    parameters = bitbucket(sandbox, DeploymentEnvironmentUuid=environment)
    role = deploy(sandbox.aws, "oidc.yaml", parameters, name=f"t-{tag}").outputs["RoleArn"]
    assert web_identity(sandbox.aws, role, sandbox.token(environment_uuid=environment))
    sts = sandbox.aws.client("sts", region=REGION)
    for token in (
        sandbox.issuer.mint(braced(), environment_uuid=environment),
        sandbox.token(environment_uuid=braced()),
        sandbox.token(),
    ):
        with pytest.raises(sts.exceptions.ClientError, match="AccessDenied"):
            sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName="other", WebIdentityToken=token)


def test_the_hub_reaches_the_member_roles_of_a_stack_set(sandbox: Sandbox) -> None:
    """audit-hub.yaml in this account, audit-member.yaml as a StackSet in two others (the
    docs/setup.md example): the hub role, assumed with the repository's token, assumes each
    member role with the external id, and nothing else does. ACTION=audit itself runs through
    these roles in test_least_privilege.py (its audit scenarios)."""
    tag = uuid.uuid4().hex[:8]
    add_provider(sandbox.aws, sandbox.issuer)
    hub = deploy(sandbox.aws, "audit-hub.yaml", bitbucket(sandbox, RoleName=f"hub-{tag}"), name=f"hub-{tag}")
    member = {
        "HubAccountId": ACCOUNT,
        "HubRoleName": f"hub-{tag}",
        "RoleName": f"audit-{tag}",
        "ExternalId": f"x-{tag}",
    }
    stacks = deploy_stack_set(sandbox.aws, "audit-member.yaml", member, name=f"audit-{tag}", accounts=MEMBERS)
    hub_session = web_identity(sandbox.aws, hub.outputs["RoleArn"], sandbox.token())
    sts = sandbox.aws.client("sts", region=REGION, **hub_session)
    for account, stack in stacks.items():
        role_arn = f"arn:aws:iam::{account}:role/audit-{tag}"
        assert moto_role(account, f"audit-{tag}").arn == role_arn
        trust = moto_role(account, f"audit-{tag}").assume_role_policy_document
        assert stack.trust_policy("AuditRole") == (json.loads(trust) if isinstance(trust, str) else trust)
        answer = sts.assume_role(RoleArn=role_arn, RoleSessionName="audit", ExternalId=f"x-{tag}")
        member_sts = sandbox.aws.client(
            "sts",
            region=REGION,
            aws_access_key_id=answer["Credentials"]["AccessKeyId"],
            aws_secret_access_key=answer["Credentials"]["SecretAccessKey"],
            aws_session_token=answer["Credentials"]["SessionToken"],
        )
        assert member_sts.get_caller_identity()["Account"] == account
        with pytest.raises(sts.exceptions.ClientError, match="AccessDenied"):
            sts.assume_role(RoleArn=role_arn, RoleSessionName="audit", ExternalId="wrong")
        with pytest.raises(sts.exceptions.ClientError, match="AccessDenied"):
            sandbox.aws.client("sts", region=REGION).assume_role(
                RoleArn=role_arn, RoleSessionName="audit", ExternalId=f"x-{tag}"
            )


def test_an_enforcing_hub_admits_only_its_environments_steps(sandbox: Sandbox) -> None:
    """audit-hub.yaml with AuditMode=enforce (it requires DeploymentEnvironmentUuid): through
    the stand-in STS, a deployment step of that environment assumes the hub; a step of any
    branch outside it, and another environment's, do not."""
    tag = uuid.uuid4().hex[:8]
    add_provider(sandbox.aws, sandbox.issuer)
    environment = braced()
    parameters = bitbucket(
        sandbox, RoleName=f"hub-{tag}", AuditMode="enforce", DeploymentEnvironmentUuid=environment
    )
    hub = deploy(sandbox.aws, "audit-hub.yaml", parameters, name=f"hub-{tag}").outputs["RoleArn"]
    assert web_identity(sandbox.aws, hub, sandbox.token(environment_uuid=environment))
    sts = sandbox.aws.client("sts", region=REGION)
    for token in (sandbox.token(), sandbox.token(environment_uuid=braced())):
        with pytest.raises(sts.exceptions.ClientError, match="AccessDenied"):
            sts.assume_role_with_web_identity(RoleArn=hub, RoleSessionName="other", WebIdentityToken=token)
