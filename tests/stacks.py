"""templates/ deployed into the AWS stand-in's CloudFormation (moto), through the front.

moto's CloudFormation creates IAM roles, users and policies, and StackSet instances in other
accounts, but not ``AWS::IAM::OIDCProvider`` or ``AWS::SecretsManager::Secret``: it skips them
with a warning. A deployment here never relies on that silence: the resources moto created
must be exactly the rendered template's (``tests/cloudformation.py``) minus those two types.
The provider is never deployed (the templates' CreateProvider=false path: a provider exists
once per account and issuer, and the tests create it through the IAM API); a secret the
template holds is created here through the Secrets Manager API, as the template declares it."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from tests.cloudformation import TEMPLATES, Stack
from tests.standins.aws import ACCOUNT, AwsStandIn
from tests.standins.issuer import Issuer

REGION = "eu-west-1"
MOTO_LACKS = {"AWS::IAM::OIDCProvider", "AWS::SecretsManager::Secret"}


@dataclass
class Deployed:
    stack: Stack  # the renderer, with moto's physical ids
    outputs: dict[str, str]
    by_api: list[str] = field(default_factory=list)  # logical ids created through the API here

    def statements(self) -> dict[str, list[dict[str, Any]]]:
        return self.stack.statements_by_principal()


def _parameters(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def deploy(aws: AwsStandIn, template: str, parameters: dict[str, str], name: str) -> Deployed:
    """Create stack ``name`` from ``template`` in the stand-in's account, and check that moto
    made what the template says."""
    cloudformation = aws.client("cloudformation", region=REGION)
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=(TEMPLATES / template).read_text(),
        Parameters=_parameters(parameters),
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described
    summaries = cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
    # moto lists a resource it skipped as an entry without a logical id.
    physical = {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries if s["LogicalResourceId"]}
    stack = Stack(template, parameters, name=name, account=ACCOUNT, region=REGION, physical=physical)
    expected = {logical: r["Type"] for logical, r in stack.resources.items()}
    made = {s["LogicalResourceId"]: s["ResourceType"] for s in summaries if s["LogicalResourceId"]}
    skipped = {logical: kind for logical, kind in expected.items() if logical not in made}
    assert {k: v for k, v in expected.items() if k in made} == made, (expected, made)
    assert set(skipped.values()) <= MOTO_LACKS, skipped
    assert "AWS::IAM::OIDCProvider" not in skipped.values(), (
        "deploy with CreateProvider=false: moto lacks AWS::IAM::OIDCProvider, the tests create it"
    )
    deployed = Deployed(stack, {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])})
    for logical in skipped:  # AWS::SecretsManager::Secret: as the template declares it
        properties = stack.resources[logical]["Properties"]
        aws.client("secretsmanager", region=REGION).create_secret(
            Name=properties["Name"],
            Description=properties["Description"],
            SecretString=properties["SecretString"],
            Tags=properties.get("Tags", []),
        )
        deployed.by_api.append(logical)
    return deployed


def deploy_stack_set(
    aws: AwsStandIn, template: str, parameters: dict[str, str], name: str, accounts: list[str]
) -> dict[str, Stack]:
    """A self-managed StackSet of ``template`` with an instance in each of ``accounts``; the
    rendered stack of each account."""
    cloudformation = aws.client("cloudformation", region=REGION)
    cloudformation.create_stack_set(
        StackSetName=name,
        TemplateBody=(TEMPLATES / template).read_text(),
        Parameters=_parameters(parameters),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        PermissionModel="SELF_MANAGED",
    )
    cloudformation.create_stack_instances(StackSetName=name, Accounts=accounts, Regions=[REGION])
    instances = cloudformation.list_stack_instances(StackSetName=name)["Summaries"]
    assert sorted(i["Account"] for i in instances) == sorted(accounts), instances
    return {
        account: Stack(template, parameters, name=f"StackSet:{name}", account=account, region=REGION)
        for account in accounts
    }


def add_provider(aws: AwsStandIn, issuer: Issuer) -> str:
    """The workspace's IAM OIDC provider, through the IAM API (moto's CloudFormation lacks
    AWS::IAM::OIDCProvider): what the templates' CreateProvider=true would create."""
    iam = aws.client("iam", region="us-east-1")
    arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer.provider}"
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_open_id_connect_provider(Url=issuer.url, ClientIDList=[issuer.audience])
    return arn


def web_identity(aws: AwsStandIn, role_arn: str, token: str) -> dict[str, str]:
    """Credentials for ``role_arn`` from the step's token, through the stand-in STS."""
    sts = aws.client("sts", region=REGION)
    answer = sts.assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName=f"test-{int(time.time())}", WebIdentityToken=token
    )["Credentials"]
    return {
        "aws_access_key_id": answer["AccessKeyId"],
        "aws_secret_access_key": answer["SecretAccessKey"],
        "aws_session_token": answer["SessionToken"],
    }


def moto_role(account: str, name: str) -> Any:
    """A role as moto's CloudFormation made it (its backend: moto runs in this process)."""
    from moto.iam.models import iam_backends

    return iam_backends[account]["aws"].get_role(name)


def deployed_policies(role: Any) -> dict[str, Any]:
    """The role's inline policies as moto keeps them, with AWS::NoValue list items (which
    moto's CloudFormation leaves as null where CloudFormation drops them) removed."""

    def clean(value: Any) -> Any:
        if isinstance(value, list):
            return [clean(v) for v in value if v is not None]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    return {
        name: clean(json.loads(document) if isinstance(document, str) else document)
        for name, document in role.policies.items()
    }
