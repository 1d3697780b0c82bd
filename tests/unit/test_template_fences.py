"""The fences of templates/ (docs/setup.md, Fences), each held against the rendered template
with the static policy evaluator (tests/iam_policy.py) or the stand-in STS's trust evaluation
(tests/standins/trust.py): a negative case per fence, which passes only while the fence is in
the template.

- a protected user (tagged aws-credentials-protected) keeps its keys whatever role acts on it;
- a report-mode hub cannot use a member deployed for revoke or enforce;
- a token of another environment (or of no environment) cannot assume a key-changing role,
  and such a role needs an environment unless AllowAnyBranch=true;
- the audit's secret writes: tagged on creation, written only when tagged, never a public
  policy;
- the hub assumes member roles only in its organization or in MemberAccountIds;
- no bare wildcard in role-ARN lists or LegacyKeyUsers;
- rotation.yaml keeps the user and the store, takes a KMS key, and tags only what rotate
  writes; self-service.yaml's default store is never another user's."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipe.audit import state as audit_state
from pipe.audit.delivery import DELIVERY_TAG, DELIVERY_VALUE
from pipe.audit.planner import Key, Policy, User, plan
from pipe.rotation.marker import MANAGED_TAG, MARKER_TAG
from pipe.targets import default_store_name
from pipe.templates import PROTECTED_TAG
from tests import iam_policy
from tests.cloudformation import Stack, load
from tests.standins import trust
from tests.standins.issuer import Issuer, braced

ACCOUNT = "123456789012"
HUB_ACCOUNT = "111111111111"
ACME = Issuer("acme")
REPO = braced()
ENVIRONMENT = braced()
PROTECTED = {f"aws:ResourceTag/{PROTECTED_TAG}": "true"}
KEY_ACTIONS = ("iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey")


def bitbucket(**extra: str) -> dict[str, str]:
    return {
        "WorkspaceName": "acme",
        "WorkspaceUuid": ACME.workspace_uuid,
        "RepositoryUuid": REPO,
        "CreateProvider": "false",
        **extra,
    }


def role_statements(stack: Stack, logical: str) -> list[dict[str, Any]]:
    return stack.statements_by_principal()[stack.attribute(logical, "Arn")]


def allowed(statements: list[dict[str, Any]], action: str, resource: str, **context: Any) -> bool:
    return bool(iam_policy.allowing(statements, action, resource, context))


# -- protected users ---------------------------------------------------------------------------
# Each key-changing role, the user it acts on, and the key actions it is granted.
KEY_CHANGERS = {
    "audit-hub.yaml, enforce": (
        Stack("audit-hub.yaml", bitbucket(AuditMode="enforce", DeploymentEnvironmentUuid=ENVIRONMENT)),
        "HubRole",
        "admin",
        KEY_ACTIONS,
    ),
    "audit-member.yaml, enforce": (
        Stack("audit-member.yaml", {"HubAccountId": HUB_ACCOUNT, "AuditMode": "enforce"}),
        "AuditRole",
        "admin",
        KEY_ACTIONS,
    ),
    "audit-member.yaml, revoke": (
        Stack("audit-member.yaml", {"HubAccountId": HUB_ACCOUNT, "AuditMode": "revoke"}),
        "AuditRole",
        "admin",
        KEY_ACTIONS[1:],
    ),
    "rotation.yaml": (
        Stack(
            "rotation.yaml",
            bitbucket(UserName="admin", CreateUser="false", DeploymentEnvironmentUuid=ENVIRONMENT),
        ),
        "RotatingRole",
        "admin",
        KEY_ACTIONS,
    ),
    "oidc.yaml, RetireLegacyKeys": (
        Stack(
            "oidc.yaml",
            bitbucket(
                LegacyKeyUsers="legacy-*", RetireLegacyKeys="true", DeploymentEnvironmentUuid=ENVIRONMENT
            ),
        ),
        "DeployRole",
        "legacy-admin",
        ("iam:UpdateAccessKey",),
    ),
}


@pytest.mark.parametrize("name", sorted(KEY_CHANGERS))
def test_a_protected_user_keeps_its_keys(name: str) -> None:
    """The role changes an ordinary user's keys, never a protected one's, even with every IAM
    permission added beside the template's; and it cannot take the protection tag off."""
    stack, logical, user, actions = KEY_CHANGERS[name]
    statements = role_statements(stack, logical)
    arn = f"arn:aws:iam::{stack.account}:user/{user}"
    everything = {"Effect": "Allow", "Action": "iam:*", "Resource": "*"}
    for action in actions:
        assert allowed(statements, action, arn), action  # the job
        assert not allowed(statements, action, arn, **PROTECTED), action
        assert not allowed([*statements, everything], action, arn, **PROTECTED), action
    for action in ("iam:TagUser", "iam:UntagUser"):
        assert not allowed(statements, action, arn, **{"aws:TagKeys": [PROTECTED_TAG]})


def test_the_audit_reports_a_protected_user_and_plans_nothing() -> None:
    now = 1_800_000_000.0
    old = Key("AKIAOLDOLDOLDOLDOLD1", "Active", now - 400 * 86400.0, None)
    policy = Policy(
        mode="enforce",
        rotate_after=90,
        deactivate_after=100,
        delete_after=110,
        notify_before=7,
        now=now,
        exempt_group=None,
        notify=True,
    )

    def user(tags: dict[str, str]) -> User:
        return User("admin", f"arn:aws:iam::{ACCOUNT}:user/admin", tags, frozenset(), (old,), listed=True)

    assert plan(user({}), policy).changes
    for mode in ("enforce", "revoke", "report"):
        protected = plan(user({PROTECTED_TAG: "true"}), dataclasses.replace(policy, mode=mode))
        assert (protected.status, protected.actions) == ("protected", [])


# -- tied modes ----------------------------------------------------------------------------------
def hub_mode_tag(mode: str) -> dict[str, str]:
    """The tags the hub role of audit-hub.yaml deployed with ``mode`` carries, as aws:PrincipalTag."""
    environment = {} if mode == "report" else {"DeploymentEnvironmentUuid": ENVIRONMENT}
    hub = Stack("audit-hub.yaml", bitbucket(AuditMode=mode, **environment), account=HUB_ACCOUNT)
    tags = hub.resources["HubRole"]["Properties"]["Tags"]
    return {f"aws:PrincipalTag/{t['Key']}": str(t["Value"]) for t in tags}


def member_admits(member_mode: str, principal_tags: dict[str, str]) -> bool:
    member = Stack("audit-member.yaml", {"HubAccountId": HUB_ACCOUNT, "AuditMode": member_mode})
    hub = f"arn:aws:iam::{HUB_ACCOUNT}:role/aws-credentials-audit-hub"
    forms = [
        f"arn:aws:sts::{HUB_ACCOUNT}:assumed-role/aws-credentials-audit-hub/audit",
        hub,
        f"arn:aws:iam::{HUB_ACCOUNT}:root",
        HUB_ACCOUNT,
    ]
    context = {"aws:PrincipalArn": hub, "aws:PrincipalAccount": HUB_ACCOUNT, **principal_tags}
    return trust.allows(
        member.trust_policy("AuditRole"),
        principal=forms,
        action="sts:AssumeRole",
        context=context,
        kind="AWS",
    )


@pytest.mark.parametrize(
    ("member", "hub", "admitted"),
    [
        ("enforce", "report", False),
        ("enforce", "revoke", False),
        ("enforce", "enforce", True),
        ("revoke", "report", False),
        ("revoke", "revoke", True),
        ("revoke", "enforce", True),
        ("report", "report", True),
        ("report", "enforce", True),
    ],
)
def test_a_member_admits_only_a_hub_deployed_for_its_mode(member: str, hub: str, admitted: bool) -> None:
    """A report hub, which any branch may assume, cannot use an enforce or revoke member."""
    assert member_admits(member, hub_mode_tag(hub)) is admitted
    assert not member_admits(member, {})  # a hub without the tag (deployed before it existed)


def test_the_hub_cannot_change_its_mode_tag() -> None:
    for mode in ("revoke", "enforce"):
        hub = Stack("audit-hub.yaml", bitbucket(AuditMode=mode, DeploymentEnvironmentUuid=ENVIRONMENT))
        statements = role_statements(hub, "HubRole")
        for action in ("iam:TagRole", "iam:UntagRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"):
            assert not allowed(statements, action, hub.attribute("HubRole", "Arn"))


# -- no branch by default ------------------------------------------------------------------------
# Key-changing roles: template, logical id, the parameters that make it change keys.
ENVIRONMENT_BOUND = {
    "rotation.yaml": ("RotatingRole", {"UserName": "ci-deployer"}),
    "oidc.yaml": ("DeployRole", {"LegacyKeyUsers": "legacy-*", "RetireLegacyKeys": "true"}),
    "audit-hub.yaml": ("HubRole", {"AuditMode": "enforce"}),
}


def sts_admits(policy: dict[str, Any], token: str) -> bool:
    from pipe import oidc, trust_policy

    claims = oidc.decode(token)
    provider = oidc.provider_arn(claims, ACCOUNT)
    return trust.allows(
        policy, principal=provider, action=trust_policy.ACTION, context=trust_policy.context_for(claims)
    )


@pytest.mark.parametrize("template", sorted(ENVIRONMENT_BOUND))
def test_a_key_changing_role_refuses_another_environment_and_needs_one(template: str) -> None:
    logical, changes = ENVIRONMENT_BOUND[template]
    spec = load(template)["Parameters"]["AllowAnyBranch"]
    assert (spec["Type"], spec["Default"]) == ("String", "false")
    with pytest.raises(ValueError, match="DeploymentEnvironmentUuid"):
        _ = Stack(template, bitbucket(**changes)).resources
    fenced = Stack(template, bitbucket(DeploymentEnvironmentUuid=ENVIRONMENT, **changes)).trust_policy(
        logical
    )
    assert sts_admits(fenced, ACME.mint(REPO, environment_uuid=ENVIRONMENT))
    assert not sts_admits(fenced, ACME.mint(REPO, environment_uuid=braced()))  # another environment
    assert not sts_admits(fenced, ACME.mint(REPO))  # any branch's plain step
    # AllowAnyBranch=true: the documented risk, every step of the repository.
    open_role = Stack(template, bitbucket(AllowAnyBranch="true", **changes)).trust_policy(logical)
    assert sts_admits(open_role, ACME.mint(REPO))


# -- the audit's secrets ---------------------------------------------------------------------------
SECRET = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:aws-credentials/jane-AbCdEf"
TAGGED = {f"aws:ResourceTag/{DELIVERY_TAG}": DELIVERY_VALUE}
ENFORCERS = {
    "audit-hub.yaml": (
        Stack("audit-hub.yaml", bitbucket(AuditMode="enforce", DeploymentEnvironmentUuid=ENVIRONMENT)),
        "HubRole",
    ),
    "audit-member.yaml": (
        Stack("audit-member.yaml", {"HubAccountId": HUB_ACCOUNT, "AuditMode": "enforce"}),
        "AuditRole",
    ),
}


@pytest.mark.parametrize("template", sorted(ENFORCERS))
def test_the_audit_writes_only_its_own_secrets_and_never_a_public_policy(template: str) -> None:
    statements = role_statements(*ENFORCERS[template])
    put_policy = "secretsmanager:PutResourcePolicy"
    block = {"secretsmanager:BlockPublicPolicy": "true"}
    assert allowed(statements, put_policy, SECRET, **TAGGED, **block)
    assert not allowed(statements, put_policy, SECRET, **TAGGED)  # without BlockPublicPolicy
    assert not allowed(
        statements, put_policy, SECRET, **TAGGED, **{"secretsmanager:BlockPublicPolicy": "false"}
    )
    assert not allowed(statements, put_policy, SECRET, **block)  # a secret the audit did not create
    assert allowed(statements, "secretsmanager:PutSecretValue", SECRET, **TAGGED)
    assert not allowed(statements, "secretsmanager:PutSecretValue", SECRET)
    request = {f"aws:RequestTag/{DELIVERY_TAG}": DELIVERY_VALUE, "aws:TagKeys": [DELIVERY_TAG]}
    for action in ("secretsmanager:CreateSecret", "secretsmanager:TagResource"):
        assert allowed(statements, action, SECRET, **request)
        assert not allowed(statements, action, SECRET)  # untagged
        assert not allowed(statements, action, SECRET, **{**request, "aws:TagKeys": [DELIVERY_TAG, "owner"]})
    assert allowed(statements, "secretsmanager:DescribeSecret", SECRET)
    # The in-flight record of a user at IAM's 50-tag limit: that one tag key, on its own secrets.
    record = {"aws:TagKeys": [audit_state.AUDIT_TAG]}
    for action in ("secretsmanager:TagResource", "secretsmanager:UntagResource"):
        assert allowed(statements, action, SECRET, **TAGGED, **record)
        assert not allowed(statements, action, SECRET, **record)  # a secret the audit did not create
        assert not allowed(
            statements, action, SECRET, **TAGGED, **{"aws:TagKeys": [audit_state.AUDIT_TAG, "owner"]}
        )
        assert not allowed(statements, action, SECRET, **TAGGED, **{"aws:TagKeys": [DELIVERY_TAG]})
        assert not allowed(statements, action, SECRET, **TAGGED)  # no tag key named


# -- the member accounts ---------------------------------------------------------------------------
def hub_may_assume(stack: Stack, account: str, **context: str) -> bool:
    role = f"arn:aws:iam::{account}:role/aws-credentials-audit"
    return allowed(
        role_statements(stack, "HubRole"),
        "sts:AssumeRole",
        role,
        **{"aws:ResourceAccount": account, **context},
    )


def test_the_hub_assumes_only_the_listed_accounts_or_its_organization() -> None:
    listed = Stack("audit-hub.yaml", bitbucket(MemberAccountIds="222222222222,333333333333"))
    assert hub_may_assume(listed, "222222222222") and hub_may_assume(listed, "333333333333")
    assert not hub_may_assume(listed, "444444444444")
    same_org = {"aws:PrincipalOrgID": "o-acme12345", "aws:ResourceOrgID": "o-acme12345"}
    assert not hub_may_assume(listed, "444444444444", **same_org)  # the list, not the organization
    plain = Stack("audit-hub.yaml", bitbucket())  # AuditOrganization=false, no list
    assert hub_may_assume(plain, "444444444444", **same_org)
    assert not hub_may_assume(plain, "444444444444")  # outside any organization
    assert not hub_may_assume(plain, "444444444444", **{**same_org, "aws:ResourceOrgID": "o-other6789"})


# -- patterns ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "parameter", "value"),
    [
        ("oidc.yaml", "ChainedRoleArns", "arn:aws:iam::210987654321:role/*"),
        (
            "oidc.yaml",
            "ChainedRoleArns",
            "arn:aws:iam::210987654321:role/deploy,arn:aws:iam::210987654321:role/*",
        ),
        ("oidc.yaml", "ChainedRoleArns", "arn:aws:iam::210987654321:role/*deploy"),
        ("rotation.yaml", "KeysRoleArns", "arn:aws:iam::210987654321:role/*"),
        ("oidc.yaml", "LegacyKeyUsers", "*"),
        ("oidc.yaml", "LegacyKeyUsers", "/*"),
        ("oidc.yaml", "LegacyKeyUsers", "**"),
    ],
)
def test_a_bare_wildcard_is_refused(template: str, parameter: str, value: str) -> None:
    extra = {"UserName": "ci", "AllowAnyBranch": "true"} if template == "rotation.yaml" else {}
    with pytest.raises(ValueError, match=parameter):
        _ = Stack(template, bitbucket(**extra, **{parameter: value})).resources


@pytest.mark.parametrize(
    ("template", "parameter", "value"),
    [
        ("oidc.yaml", "ChainedRoleArns", "arn:aws:iam::210987654321:role/ci/deploy-*"),
        ("rotation.yaml", "KeysRoleArns", "arn:aws:iam::210987654321:role/deploy-from-key"),
        ("oidc.yaml", "LegacyKeyUsers", "legacy-*"),
        ("oidc.yaml", "LegacyKeyUsers", "legacy/*"),
    ],
)
def test_a_named_prefix_is_taken(template: str, parameter: str, value: str) -> None:
    extra = {"UserName": "ci", "AllowAnyBranch": "true"} if template == "rotation.yaml" else {}
    assert Stack(template, bitbucket(**extra, **{parameter: value})).resources


# -- rotation.yaml's resources ----------------------------------------------------------------------
def test_the_fallback_user_and_its_store_are_retained() -> None:
    resources = load("rotation.yaml")["Resources"]
    for logical in ("User", "StoreSecret"):
        assert resources[logical]["DeletionPolicy"] == "Retain", logical
        assert resources[logical]["UpdateReplacePolicy"] == "Retain", logical


def test_the_store_secret_takes_a_kms_key_usable_through_secrets_manager_only() -> None:
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    stack = Stack(
        "rotation.yaml",
        bitbucket(UserName="ci", SecretName="ci/key", KmsKeyId=key, DeploymentEnvironmentUuid=ENVIRONMENT),
    )
    assert stack.resources["StoreSecret"]["Properties"]["KmsKeyId"] == key
    statements = role_statements(stack, "RotatingRole")
    via = {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
    assert allowed(statements, "kms:Decrypt", key, **via) and allowed(
        statements, "kms:GenerateDataKey", key, **via
    )
    assert not allowed(statements, "kms:Decrypt", key)  # straight to KMS
    plain = Stack("rotation.yaml", bitbucket(UserName="ci", SecretName="ci/key", AllowAnyBranch="true"))
    assert (
        "KmsKeyId" not in plain.resources["StoreSecret"]["Properties"]
        and "KmsKeyPolicy" not in plain.resources
    )
    # Without SecretName the store is an SSM parameter: the key is usable through SSM only.
    parameter = Stack("rotation.yaml", bitbucket(UserName="ci", KmsKeyId=key, AllowAnyBranch="true"))
    ssm = role_statements(parameter, "RotatingRole")
    via_ssm = {"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}
    assert allowed(ssm, "kms:Encrypt", key, **via_ssm) and allowed(ssm, "kms:Decrypt", key, **via_ssm)
    assert not allowed(ssm, "kms:Decrypt", key, **via) and not allowed(ssm, "kms:Encrypt", key)


@pytest.mark.parametrize(
    ("action", "keys", "expected"),
    [
        ("iam:TagUser", [MARKER_TAG, MANAGED_TAG], True),
        ("iam:TagUser", [audit_state.DEACTIVATED_TAG], True),
        ("iam:UntagUser", [MARKER_TAG, audit_state.DEACTIVATED_TAG], True),
        ("iam:UntagUser", [MANAGED_TAG], False),
        ("iam:TagUser", [audit_state.AUDIT_TAG], False),
        ("iam:TagUser", [audit_state.NOTIFIED_TAG], False),
        ("iam:UntagUser", [audit_state.AUDIT_TAG], False),
        ("iam:TagUser", ["aws-credentials-pipe/anything"], False),
    ],
)
def test_the_rotating_role_tags_only_what_rotate_writes(action: str, keys: list[str], expected: bool) -> None:
    stack = Stack("rotation.yaml", bitbucket(UserName="ci", DeploymentEnvironmentUuid=ENVIRONMENT))
    arn = f"arn:aws:iam::{ACCOUNT}:user/ci"
    assert allowed(role_statements(stack, "RotatingRole"), action, arn, **{"aws:TagKeys": keys}) is expected


# -- one default store per user ---------------------------------------------------------------------
USER_NAMES = st.text(alphabet="abcXYZ019_+=,.@-", min_size=1, max_size=12)


@given(USER_NAMES, USER_NAMES)
def test_two_users_never_share_a_default_store(one: str, other: str) -> None:
    if one.lower() != other.lower():  # IAM user names are unique whatever their case
        assert default_store_name(one) != default_store_name(other)


@pytest.mark.parametrize(
    ("caller", "owner"), [("ci__deployer", "ci_deployer"), ("a_40", "a@"), ("x_2B", "x+")]
)
def test_self_service_never_grants_another_users_default_store(caller: str, owner: str) -> None:
    """The pipe escapes _ + = , @; self-service.yaml grants ${aws:username} unescaped, so the raw
    name of a user with one of them is another user's store: such a user gets none."""
    stack = Stack("self-service.yaml", {"Users": caller})
    arn = f"arn:aws:iam::{ACCOUNT}:user/{caller}"
    statements = stack.statements_by_principal()[arn]
    parameter = f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter{default_store_name(owner)}"
    assert default_store_name(owner).endswith("/" + caller)  # the collision the fence is for
    context = {"aws:username": caller, "aws:PrincipalArn": arn}
    assert not allowed(statements, "ssm:GetParameter", parameter, **context)
    plain = Stack("self-service.yaml", {"Users": "jane"})
    jane = f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter{default_store_name('jane')}"
    assert allowed(
        plain.statements_by_principal()[f"arn:aws:iam::{ACCOUNT}:user/jane"],
        "ssm:GetParameter",
        jane,
        **{"aws:username": "jane"},
    )
