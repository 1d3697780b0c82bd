"""templates/: cfn-lint clean, and every trust policy, rendered with test parameters, admits
exactly the intended repository (and environment) when held against minted tokens, with the
pipe's own evaluator (pipe/trust_policy.py) and the stand-in STS's (tests/standins/trust.py)."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from cfnlint import api

from pipe import oidc, trust_policy
from pipe.audit import state as audit_state
from pipe.rotation.marker import MANAGED_TAG, MARKER_TAG
from pipe.targets import default_store_name
from tests import iam_policy
from tests.cloudformation import TEMPLATES, Stack, load
from tests.standins import trust
from tests.standins.issuer import Issuer, braced

OIDC_TEMPLATES = {"oidc.yaml": "DeployRole", "rotation.yaml": "RotatingRole", "audit-hub.yaml": "HubRole"}
ACCOUNT = "123456789012"


def lint(*paths: Path) -> list[str]:
    matches = [m for path in paths for m in api.lint_file(path)]
    return [f"{m.filename}:{m.linenumber} {m.rule.id} {m.message}" for m in matches]


def test_every_template_is_clean_under_cfn_lint() -> None:
    templates = sorted(TEMPLATES.glob("*.yaml"))
    assert {t.name for t in templates} == {
        "oidc.yaml",
        "rotation.yaml",
        "self-service.yaml",
        "audit-hub.yaml",
        "audit-member.yaml",
    }
    assert lint(*templates) == []


def test_cfn_lint_finds_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    shutil.copy(TEMPLATES / "rotation.yaml", broken)
    broken.write_text(broken.read_text().replace("MaxSessionDuration: !Ref", "MaxSessionDurations: !Ref"))
    assert any("MaxSessionDurations" in problem for problem in lint(broken))


# -- the OIDC trust policies -------------------------------------------------------------------
@functools.cache
def issuer(workspace: str) -> Issuer:
    return Issuer(workspace)


REPO = braced()
ENVIRONMENT = braced()


def parameters(template: str, **extra: str) -> dict[str, str]:
    values = {
        "WorkspaceName": "acme",
        "WorkspaceUuid": issuer("acme").workspace_uuid,
        "RepositoryUuid": REPO,
        "CreateProvider": "false",
    }
    if template == "rotation.yaml":
        # Without an environment only by choice (tests/unit/test_template_fences.py): these
        # tests hold the trust's shape for both.
        values["UserName"] = "ci-deployer"
        values["AllowAnyBranch"] = "true"
    return values | extra


def verdict(policy: dict[str, Any], token: str) -> tuple[bool, bool, list[str]]:
    """(the pipe's evaluation admits it, the stand-in STS admits it, over-broad findings)."""
    claims = oidc.decode(token)
    provider_arn = oidc.provider_arn(claims, ACCOUNT)
    evaluation = trust_policy.evaluate(policy, claims=claims, provider_arn=provider_arn)
    context = trust_policy.context_for(claims)
    sts = trust.allows(policy, principal=provider_arn, action=trust_policy.ACTION, context=context)
    return evaluation.allowed, sts, [f.code for f in evaluation.findings]


@pytest.mark.parametrize("template", sorted(OIDC_TEMPLATES))
@pytest.mark.parametrize("shape", ["braces", "bare"])
def test_the_trust_admits_the_repository_and_no_other(template: str, shape: str) -> None:
    acme = issuer("acme")
    strip = (lambda u: u.strip("{}")) if shape == "bare" else (lambda u: u)
    stack = Stack(
        template,
        parameters(template, WorkspaceUuid=strip(acme.workspace_uuid), RepositoryUuid=strip(REPO)),
    )
    policy = stack.trust_policy(OIDC_TEMPLATES[template])
    assert verdict(policy, acme.mint(REPO)) == (True, True, [])
    # Every step of the repository, deployment steps included: checked from a deployment step,
    # the check says that other environments' steps get in too (DeploymentEnvironmentUuid).
    assert verdict(policy, acme.mint(REPO, environment_uuid=ENVIRONMENT)) == (
        True,
        True,
        ["other-environment"],
    )
    assert verdict(policy, acme.mint(braced()))[:2] == (False, False)  # another repository
    globex = issuer("globex")
    assert verdict(policy, globex.mint(REPO))[:2] == (False, False)  # another workspace
    other_audience = "ari:cloud:bitbucket::workspace/" + braced().strip("{}")
    assert verdict(policy, acme.mint(REPO, audience=other_audience))[:2] == (False, False)


@pytest.mark.parametrize("template", sorted(OIDC_TEMPLATES))
def test_with_an_environment_only_its_steps_are_admitted(template: str) -> None:
    acme = issuer("acme")
    stack = Stack(template, parameters(template, DeploymentEnvironmentUuid=ENVIRONMENT.strip("{}")))
    policy = stack.trust_policy(OIDC_TEMPLATES[template])
    assert verdict(policy, acme.mint(REPO, environment_uuid=ENVIRONMENT)) == (True, True, [])
    assert verdict(policy, acme.mint(REPO, environment_uuid=braced()))[:2] == (False, False)
    assert verdict(policy, acme.mint(REPO))[:2] == (False, False)  # not a deployment step
    assert verdict(policy, acme.mint(braced(), environment_uuid=ENVIRONMENT))[:2] == (False, False)


@pytest.mark.parametrize("template", sorted(OIDC_TEMPLATES))
def test_the_trust_names_only_keys_sts_sets_for_a_bitbucket_token(template: str) -> None:
    """No branch condition, nor any other key STS never sets for a generic OIDC provider (it
    would never match, or with a negated operator always match): only aud and sub."""
    policy = Stack(template, parameters(template)).trust_policy(OIDC_TEMPLATES[template])
    keys = {key for s in policy["Statement"] for block in s["Condition"].values() for key in block}
    issuer_host = issuer("acme").provider
    assert keys == {f"{issuer_host}:aud", f"{issuer_host}:sub"}
    # AllowAnyBranch is no branch condition: it lets a key-changing role go without an environment.
    assert not [p for p in load(template)["Parameters"] if "branch" in p.lower() and p != "AllowAnyBranch"]


@pytest.mark.parametrize("template", sorted(OIDC_TEMPLATES))
def test_a_created_provider_is_the_one_the_role_trusts(template: str) -> None:
    acme = issuer("acme")
    stack = Stack(template, parameters(template, CreateProvider="true"))
    provider = stack.resources["Provider"]["Properties"]
    assert provider["Url"] == acme.url and provider["ClientIdList"] == [acme.audience]
    assert verdict(stack.trust_policy(OIDC_TEMPLATES[template]), acme.mint(REPO)) == (True, True, [])
    reused = Stack(template, parameters(template))
    assert "Provider" not in reused.resources
    assert reused.trust_policy(OIDC_TEMPLATES[template]) == stack.trust_policy(OIDC_TEMPLATES[template])


def test_a_uuid_in_upper_case_is_refused_before_anything_is_created() -> None:
    """sub is matched case-sensitively and Bitbucket writes UUIDs in lower case."""
    with pytest.raises(ValueError, match="RepositoryUuid"):
        _ = Stack("oidc.yaml", parameters("oidc.yaml", RepositoryUuid=REPO.upper())).resources


@pytest.mark.parametrize("mode", ["revoke", "enforce"])
@pytest.mark.parametrize("this_account", ["true", "false"])
def test_a_hub_that_changes_keys_needs_a_deployment_environment(mode: str, this_account: str) -> None:
    """revoke and enforce let the hub (and the members it assumes) change every user's keys:
    the template's rule refuses them without DeploymentEnvironmentUuid, before anything is
    created, so that not every branch's OIDC steps can assume the hub."""
    acme = issuer("acme")
    open_hub = parameters("audit-hub.yaml", AuditMode=mode, AuditThisAccount=this_account)
    with pytest.raises(ValueError, match=r"ChangesNeedADeploymentEnvironment.*DeploymentEnvironmentUuid"):
        _ = Stack("audit-hub.yaml", open_hub).resources
    with pytest.raises(ValueError, match="DeploymentEnvironmentUuid"):
        _ = Stack("audit-hub.yaml", open_hub).outputs
    stack = Stack("audit-hub.yaml", open_hub | {"DeploymentEnvironmentUuid": ENVIRONMENT.strip("{}")})
    policy = stack.trust_policy("HubRole")
    assert verdict(policy, acme.mint(REPO, environment_uuid=ENVIRONMENT)) == (True, True, [])
    assert verdict(policy, acme.mint(REPO))[:2] == (False, False)  # any branch's step
    # report changes nothing: any step of the repository may run it.
    report = Stack("audit-hub.yaml", parameters("audit-hub.yaml", AuditMode="report"))
    assert verdict(report.trust_policy("HubRole"), acme.mint(REPO))[:2] == (True, True)


def _hub_may_assume(stack: Stack, role_arn: str, context: dict[str, str]) -> bool:
    statements = stack.statements_by_principal()[stack.attribute("HubRole", "Arn")]
    base = {"aws:PrincipalArn": stack.attribute("HubRole", "Arn"), "aws:PrincipalAccount": ACCOUNT}
    return bool(iam_policy.allowing(statements, "sts:AssumeRole", role_arn, base | context))


@pytest.mark.parametrize("organization", ["true", "false"])
def test_a_hub_assumes_the_member_roles_of_its_organization_only(organization: str) -> None:
    """Without MemberAccountIds, whatever AuditOrganization says: sts:AssumeRole on the member
    role name in any account, but only where the role's account is in the hub's own
    organization (aws:ResourceOrgID = ${aws:PrincipalOrgID})."""
    member = "arn:aws:iam::222222222222:role/aws-credentials-audit"
    ours = {"aws:PrincipalOrgID": "o-acme12345"}
    hub = Stack("audit-hub.yaml", parameters("audit-hub.yaml", AuditOrganization=organization))
    assert _hub_may_assume(hub, member, ours | {"aws:ResourceOrgID": "o-acme12345"})
    assert not _hub_may_assume(hub, member, ours | {"aws:ResourceOrgID": "o-other6789"})
    assert not _hub_may_assume(hub, member, ours)  # an account in no organization
    assert not _hub_may_assume(hub, member, {})  # nor from a hub in none
    assert not _hub_may_assume(hub, member.replace("audit", "admin"), ours)


# -- the member role's trust (an AWS principal: the hub role) ----------------------------------
HUB = "111111111111"


def member_admits(stack: Stack, caller_role: str, caller_account: str, external_id: str | None) -> bool:
    policy = stack.trust_policy("AuditRole")
    role_arn = f"arn:aws:iam::{caller_account}:role/{caller_role}"
    forms = [
        f"arn:aws:sts::{caller_account}:assumed-role/{caller_role}/audit",
        role_arn,
        f"arn:aws:iam::{caller_account}:root",
        caller_account,
    ]
    # The hub role's mode tag (audit-hub.yaml); tests/unit/test_template_fences.py ties the modes.
    context = {
        "aws:PrincipalArn": role_arn,
        "aws:PrincipalAccount": caller_account,
        "aws:PrincipalTag/aws-credentials-pipe/audit-mode": "report",
    }
    if external_id is not None:
        context["sts:ExternalId"] = external_id
    return trust.allows(policy, principal=forms, action="sts:AssumeRole", context=context, kind="AWS")


def test_the_member_role_trusts_only_the_hub_role() -> None:
    stack = Stack("audit-member.yaml", {"HubAccountId": HUB}, account="222222222222")
    assert member_admits(stack, "aws-credentials-audit-hub", HUB, None)
    assert not member_admits(stack, "deploy", HUB, None)  # another role of the hub account
    assert not member_admits(stack, "aws-credentials-audit-hub", "333333333333", None)  # another account
    assert stack.resources["AuditRole"]["Properties"]["RoleName"] == "aws-credentials-audit"


def test_with_an_external_id_the_member_role_wants_it() -> None:
    stack = Stack("audit-member.yaml", {"HubAccountId": HUB, "ExternalId": "acme-audit-7"})
    assert member_admits(stack, "aws-credentials-audit-hub", HUB, "acme-audit-7")
    assert not member_admits(stack, "aws-credentials-audit-hub", HUB, None)
    assert not member_admits(stack, "aws-credentials-audit-hub", HUB, "acme-audit-8")


def _sts_external_id() -> tuple[int, int, str]:
    """(min, max, pattern) of sts:AssumeRole's ExternalId in botocore's model of STS."""
    shape = botocore.session.get_session().get_service_model("sts").operation_model("AssumeRole")
    member = shape.input_shape.members["ExternalId"]
    return int(member.metadata["min"]), int(member.metadata["max"]), str(member.metadata["pattern"])


@pytest.mark.parametrize(
    "value", ["a", "ab", "x" * 1224, "x" * 1225, "acme-audit_7+=,.@:/", "with space", "é" * 4, "a;b"]
)
def test_the_member_external_id_is_what_sts_accepts(value: str) -> None:
    """Every ExternalId the template takes, STS takes (botocore's model): 2 to 1224 characters
    of [\\w+=,.@:/-]; a value STS would refuse is refused before anything is created."""
    low, high, pattern = _sts_external_id()
    sts_accepts = low <= len(value) <= high and re.fullmatch(pattern, value, re.ASCII) is not None
    stack = Stack("audit-member.yaml", {"HubAccountId": HUB, "ExternalId": value})
    if sts_accepts:
        assert member_admits(stack, "aws-credentials-audit-hub", HUB, value)
    else:
        with pytest.raises(ValueError, match="ExternalId"):
            _ = stack.resources


AUDITS_OWN = (audit_state.AUDIT_TAG, audit_state.NOTIFIED_TAG)  # the tags only ACTION=audit writes


@pytest.mark.parametrize(
    ("action", "keys", "allowed"),
    [
        ("iam:TagUser", [MARKER_TAG], True),
        ("iam:TagUser", [MANAGED_TAG], True),
        ("iam:TagUser", [MARKER_TAG, MANAGED_TAG], True),
        ("iam:UntagUser", [MARKER_TAG], True),
        ("iam:UntagUser", [MANAGED_TAG], False),
        # rotate records the day it deactivates a key (the recovery window), and drops it
        ("iam:TagUser", [audit_state.DEACTIVATED_TAG], True),
        ("iam:UntagUser", [audit_state.DEACTIVATED_TAG], True),
        ("iam:TagUser", ["aws-credentials-pipe/anything"], False),
        ("iam:TagUser", [MARKER_TAG, "email"], False),
        *[("iam:TagUser", [key], False) for key in AUDITS_OWN],
        *[("iam:UntagUser", [key], False) for key in AUDITS_OWN],
        ("iam:TagUser", [MARKER_TAG, audit_state.AUDIT_TAG], False),
    ],
)
def test_self_service_tags_only_what_rotate_writes(action: str, keys: list[str], allowed: bool) -> None:
    """A self-service user tags their own user with the marker, the managed tag and the
    deactivation dates (the keys pipe/rotation writes) and takes the marker and the dates off;
    never the tags only ACTION=audit writes (a key in flight, the notices), which an explicit
    Deny keeps from them whatever else they are granted."""
    user = "jane"
    arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    stack = Stack("self-service.yaml", {"Users": user})
    statements = stack.statements_by_principal()[arn]
    context = {"aws:username": user, "aws:PrincipalArn": arn, "aws:TagKeys": keys}
    assert bool(iam_policy.allowing(statements, action, arn, context)) is allowed
    assert not iam_policy.allowing(statements, action, arn.replace("jane", "joe"), context)
    if set(keys) & set(AUDITS_OWN):
        everything = {"Effect": "Allow", "Action": "iam:*", "Resource": "*"}
        assert not iam_policy.allowing([*statements, everything], action, arn, context)


# -- what else the templates compute -----------------------------------------------------------
@pytest.mark.parametrize("user", ["ci-deployer", "jane_doe", "jane+ci@acme.com", "a=b,c", "x_y_@z.z"])
def test_the_rotation_store_is_the_pipes_default_store(user: str) -> None:
    stack = Stack("rotation.yaml", parameters("rotation.yaml", UserName=user))
    assert stack.outputs["Store"] == f"ssm:{default_store_name(user)}"
    statement = next(
        s
        for s in stack.resources["RotatingRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        if s["Sid"] == "TheStoreParameter"
    )
    assert statement["Resource"] == f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter{default_store_name(user)}"


def test_one_store_per_rotation_stack() -> None:
    both = parameters("rotation.yaml", SecretName="ci/key", ParameterName="/ci/key")
    with pytest.raises(ValueError, match="not both"):
        _ = Stack("rotation.yaml", both).resources
    secret = Stack("rotation.yaml", parameters("rotation.yaml", SecretName="ci/key"))
    assert secret.outputs["Store"] == "secretsmanager:ci/key"
    assert secret.resources["StoreSecret"]["Properties"]["Name"] == "ci/key"


def test_retiring_legacy_keys_needs_their_users() -> None:
    with pytest.raises(ValueError, match="LegacyKeyUsers"):
        _ = Stack(
            "oidc.yaml",
            parameters(
                "oidc.yaml", RetireLegacyKeys="true", DeploymentEnvironmentUuid=ENVIRONMENT.strip("{}")
            ),
        ).resources


def test_the_deploy_role_takes_managed_policies_and_a_longer_session() -> None:
    arns = "arn:aws:iam::aws:policy/ReadOnlyAccess,arn:aws:iam::123456789012:policy/deploy"
    stack = Stack("oidc.yaml", parameters("oidc.yaml", ManagedPolicyArns=arns, MaxSessionDuration="7200"))
    role = stack.resources["DeployRole"]["Properties"]
    assert role["ManagedPolicyArns"] == arns.split(",") and role["MaxSessionDuration"] == "7200"
    assert (
        "ManagedPolicyArns"
        not in Stack("oidc.yaml", parameters("oidc.yaml")).resources["DeployRole"]["Properties"]
    )


def test_the_deploy_role_may_assume_the_chained_roles_only_when_given() -> None:
    arns = "arn:aws:iam::210987654321:role/deploy,arn:aws-us-gov:iam::123456789012:role/ci/deploy-*"
    stack = Stack("oidc.yaml", parameters("oidc.yaml", ChainedRoleArns=arns, AllowCheck="false"))
    role = stack.attribute("DeployRole", "Arn")
    assert stack.statements_by_principal()[role] == [
        {
            "Sid": "AssumeTheChainedRoles",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": arns.split(","),
            "_policy": "aws-credentials-pipe-chained-roles",
        }
    ]
    assert "ChainedRolesPolicy" not in Stack("oidc.yaml", parameters("oidc.yaml")).resources


def test_the_workspace_check_reads_only_when_asked() -> None:
    stack = Stack("oidc.yaml", parameters("oidc.yaml", WorkspaceCheck="true", AllowCheck="false"))
    role = stack.attribute("DeployRole", "Arn")
    statements = stack.statements_by_principal()[role]
    assert [(s["Sid"], s["Action"], s["Resource"]) for s in statements] == [
        ("WorkspaceCheckReadsKeyAccounts", "sts:GetAccessKeyInfo", "*"),
        (
            "WorkspaceCheckReadsKeys",
            ["iam:GetAccessKeyLastUsed", "iam:ListAccessKeys"],
            f"arn:aws:iam::{ACCOUNT}:user/*",
        ),
    ]
    assert "WorkspaceCheckPolicy" not in Stack("oidc.yaml", parameters("oidc.yaml")).resources


@pytest.mark.parametrize(
    "arns",
    [
        "arn:aws:iam::210987654321:role/deploy, arn:aws:iam::210987654321:role/other",  # a space
        "arn:aws:iam::210987654321:role/deploy,arn:aws:iam::210987654321:user/ci",  # not a role
        "arn:aws:iam::*:role/deploy",  # any account
    ],
)
def test_chained_role_arns_are_checked_one_by_one(arns: str) -> None:
    with pytest.raises(ValueError, match="ChainedRoleArns"):
        _ = Stack("oidc.yaml", parameters("oidc.yaml", ChainedRoleArns=arns)).resources


def test_the_fallback_user_may_assume_the_keys_roles_only_when_given() -> None:
    """KeysRoleArns: AWS_ROLE_ARN_FOR_KEYS's sts:AssumeRole, granted to the fallback user (its
    key makes the call), not to the rotating role; a user the stack does not create too."""
    arns = "arn:aws:iam::210987654321:role/deploy-from-key,arn:aws-cn:iam::123456789012:role/ci/key-*"
    expected = {
        "Sid": "AssumeTheKeysRoles",
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": arns.split(","),
        "_policy": "aws-credentials-pipe-keys-roles",
    }
    for create_user in ("true", "false"):
        stack = Stack("rotation.yaml", parameters("rotation.yaml", KeysRoleArns=arns, CreateUser=create_user))
        by_principal = stack.statements_by_principal()
        assert by_principal[f"arn:aws:iam::{ACCOUNT}:user/ci-deployer"] == [expected]
        role = stack.attribute("RotatingRole", "Arn")
        assert not [s for s in by_principal[role] if "sts:AssumeRole" in str(s["Action"])]
    plain = Stack("rotation.yaml", parameters("rotation.yaml"))
    assert "KeysRolesPolicy" not in plain.resources
    assert [a for a in plain.statements_by_principal() if ":user/" in a] == []


@pytest.mark.parametrize(
    "arns",
    [
        "arn:aws:iam::210987654321:role/deploy, arn:aws:iam::210987654321:role/other",  # a space
        "arn:aws:iam::210987654321:role/deploy,arn:aws:iam::210987654321:user/ci",  # not a role
        "arn:aws:iam::*:role/deploy",  # any account
    ],
)
def test_keys_role_arns_are_checked_one_by_one(arns: str) -> None:
    with pytest.raises(ValueError, match="KeysRoleArns"):
        _ = Stack("rotation.yaml", parameters("rotation.yaml", KeysRoleArns=arns)).resources


KEY = "arn:aws:kms:eu-central-1:123456789012:key/1b4e28ba-2fa1-11d2-883f-0016d3cca427"


@pytest.mark.parametrize(
    ("store", "service", "actions"),
    [
        ({"StoreRegion": "eu-central-1"}, "ssm.eu-central-1", ("kms:Encrypt", "kms:Decrypt")),
        ({"ParameterName": "/ci/key"}, "ssm.eu-west-1", ("kms:Encrypt", "kms:Decrypt")),
        ({"SecretName": "ci/key"}, "secretsmanager.eu-west-1", ("kms:Decrypt", "kms:GenerateDataKey")),
    ],
)
def test_the_stores_kms_key_is_usable_through_the_stores_service_only(
    store: dict[str, str], service: str, actions: tuple[str, ...]
) -> None:
    """KmsKeyId: the rotating role may use that key, and no other, only through the store's own
    service in the store's region (kms:ViaService): SSM's Encrypt and Decrypt for a parameter
    (STORE_KMS_KEY_ID), Secrets Manager's Decrypt and GenerateDataKey for the secret."""
    stack = Stack("rotation.yaml", parameters("rotation.yaml", KmsKeyId=KEY, **store))
    statements = stack.statements_by_principal()[stack.attribute("RotatingRole", "Arn")]
    via = {"kms:ViaService": f"{service}.amazonaws.com"}
    for action in actions:
        assert iam_policy.allowing(statements, action, KEY, via), action
        assert not iam_policy.allowing(statements, action, KEY, {}), f"{action} outside {service}"
        assert not iam_policy.allowing(statements, action, KEY.replace("1b4e", "2c5f"), via), "another key"
    for other in ("ssm.eu-west-3", "secretsmanager.eu-central-1", "ssm.eu-west-1", "s3.eu-west-1"):
        if other != service:
            assert not iam_policy.allowing(
                statements, actions[0], KEY, {"kms:ViaService": f"{other}.amazonaws.com"}
            )
    unused = {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"} - set(actions)
    assert not [a for a in unused if iam_policy.allowing(statements, a, KEY, via)]
    if "SecretName" in store:
        assert stack.resources["StoreSecret"]["Properties"]["KmsKeyId"] == KEY
    plain = Stack("rotation.yaml", parameters("rotation.yaml", **store))
    assert "KmsKeyPolicy" not in plain.resources
    assert not [
        s for s in plain.statements_by_principal()[plain.attribute("RotatingRole", "Arn")] if "kms:" in str(s)
    ]


def test_self_service_users_may_use_their_stores_kms_key_through_ssm_only() -> None:
    """self-service.yaml's KmsKeyId: each user may Encrypt and Decrypt with that key, and no
    other, only through SSM in the store's region (STORE_KMS_KEY_ID on the default store)."""
    stack = Stack("self-service.yaml", {"Users": "jane", "KmsKeyId": KEY, "StoreRegion": "eu-central-1"})
    statements = stack.resources["RotateOwnKeyDefaultStore"]["Properties"]["PolicyDocument"]["Statement"]
    via = {"kms:ViaService": "ssm.eu-central-1.amazonaws.com"}
    for action in ("kms:Encrypt", "kms:Decrypt"):
        assert iam_policy.allowing(statements, action, KEY, via), action
        assert not iam_policy.allowing(statements, action, KEY, {})
        assert not iam_policy.allowing(
            statements, action, KEY, {"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}
        )
        assert not iam_policy.allowing(statements, action, KEY.replace("1b4e", "2c5f"), via)
    assert not iam_policy.allowing(statements, "kms:GenerateDataKey", KEY, via)
    plain = Stack("self-service.yaml", {"Users": "jane"})
    assert "kms:" not in str(plain.resources)
