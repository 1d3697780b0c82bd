"""Tied modes through the deployed templates and the stand-in STS (docs/setup.md, Fences): the
hub role of audit-hub.yaml carries its AuditMode as a tag, and audit-member.yaml's trust
requires it, so a report hub (which any step may assume) cannot assume a member deployed for
enforce, while an enforce hub can. The stand-in STS sets aws:PrincipalTag/* from the caller's
role, as IAM does. The other fences are policy conditions, held against the rendered templates
in tests/unit/test_template_fences.py (moto does not evaluate identity policies)."""

from __future__ import annotations

import uuid

import pytest

from tests.stacks import REGION, add_provider, deploy, deploy_stack_set, web_identity
from tests.standins.aws import ACCOUNT
from tests.standins.issuer import braced
from tests.standins.sandbox import Sandbox

MEMBER = "444444444444"
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.*not supported by moto:UserWarning")


def _hub_and_member(sandbox: Sandbox, hub_mode: str, member_mode: str) -> tuple[dict[str, str], str]:
    """A hub of ``hub_mode`` and a member StackSet of ``member_mode`` trusting it; the hub's
    session (from a step of its environment) and the member role's ARN."""
    tag = uuid.uuid4().hex[:8]
    add_provider(sandbox.aws, sandbox.issuer)
    environment = braced()
    hub = deploy(
        sandbox.aws,
        "audit-hub.yaml",
        {
            "WorkspaceName": "acme",
            "WorkspaceUuid": sandbox.issuer.workspace_uuid,
            "RepositoryUuid": sandbox.repo_uuid,
            "CreateProvider": "false",
            "RoleName": f"hub-{tag}",
            "AuditMode": hub_mode,
            "DeploymentEnvironmentUuid": environment,
            "MemberAccountIds": MEMBER,
        },
        name=f"hub-{tag}",
    )
    member = {
        "HubAccountId": ACCOUNT,
        "HubRoleName": f"hub-{tag}",
        "RoleName": f"audit-{tag}",
        "AuditMode": member_mode,
    }
    deploy_stack_set(sandbox.aws, "audit-member.yaml", member, name=f"audit-{tag}", accounts=[MEMBER])
    session = web_identity(sandbox.aws, hub.outputs["RoleArn"], sandbox.token(environment_uuid=environment))
    return session, f"arn:aws:iam::{MEMBER}:role/audit-{tag}"


def test_a_report_hub_cannot_assume_an_enforce_member(sandbox: Sandbox) -> None:
    session, member = _hub_and_member(sandbox, "report", "enforce")
    sts = sandbox.aws.client("sts", region=REGION, **session)
    with pytest.raises(sts.exceptions.ClientError, match="AccessDenied"):
        sts.assume_role(RoleArn=member, RoleSessionName="audit")


def test_an_enforce_hub_assumes_an_enforce_member(sandbox: Sandbox) -> None:
    session, member = _hub_and_member(sandbox, "enforce", "enforce")
    sts = sandbox.aws.client("sts", region=REGION, **session)
    assert sts.assume_role(RoleArn=member, RoleSessionName="audit")["Credentials"]["AccessKeyId"]
