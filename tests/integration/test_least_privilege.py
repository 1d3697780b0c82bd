"""Least privilege, proven from both sides (issue 10).

Each scenario deploys the templates it needs into the stand-in's CloudFormation
(``tests/stacks.py``), runs the pipe as a process against what was deployed, the way a user
would after the deploy commands of docs/setup.md, and records every AWS call the pipe makes
(``tests/standins/calls.py``: who made it, and each authorisation IAM makes for it, with the
resource's ARN and the condition keys). Then:

1. every run ended ✔ (the deployed roles, users and stores are enough);
2. every recorded call is allowed by the policy the deployed template gives its caller,
   action and resource ARN and conditions (``tests/iam_policy.py``); a call by an identity no
   template gives permissions fails too;
3. every action every template grants was used by some scenario: removing any one action from
   any statement makes some recorded call fail (2), so no line is there for nothing;
4. docs/setup.md's table of what each action calls is exactly what was recorded.

A call the pipe starts making without a policy line fails 2; a policy line the pipe stops
using fails 3. ``SCENARIOS`` is the list, ACTION=audit's among them: the hub role of
audit-hub.yaml in ACCOUNT, the member role of audit-member.yaml as a StackSet in the other
accounts, one scenario per AuditMode, and AUDIT_ACCOUNT_IDS=organization."""

# Over 300 lines: one scenario per action and store, each a short function, and the four checks.

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipe.targets import default_store_name
from tests.iam_policy import allowing
from tests.runner import Result, make_clone_dir, run_process
from tests.stacks import Deployed, add_provider, deploy, deploy_stack_set
from tests.standins.aws import ACCOUNT
from tests.standins.calls import Check, Recorded, recording
from tests.standins.issuer import Issuer, braced
from tests.standins.sandbox import Sandbox, fresh_account

REPO = "app"
OTHER_REPO = "other"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "setup.md"
# moto's CloudFormation warns that it skips AWS::SecretsManager::Secret: tests/stacks.py creates it.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS.*not supported by moto:UserWarning")


# -- one scenario being run ------------------------------------------------------------------------
@dataclass
class Grant:
    """The statements one deployed template gives one identity."""

    template: str
    statements: list[dict[str, Any]]


@dataclass
class Run:
    """A scenario's own Bitbucket workspace (its issuer, its provider in IAM, two repositories,
    the first with a Production environment), so its variables never meet another test's; the
    stacks it deployed; and the AWS calls its pipe runs made."""

    sandbox: Sandbox
    root: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    calls: list[Recorded] = field(default_factory=list)
    grants: dict[str, Grant] = field(default_factory=dict)  # identity ARN -> its grant
    runs: int = 0

    def __post_init__(self) -> None:
        self.workspace = f"lp-{self.tag}"
        self.issuer: Issuer = self.sandbox.bitbucket.add_issuer(self.workspace)
        add_provider(self.sandbox.aws, self.issuer)
        self.repo_uuid = braced()
        self.sandbox.bitbucket.add_repo(self.workspace, REPO, ("Production",))
        self.sandbox.bitbucket.add_repo(self.workspace, OTHER_REPO)
        self.bitbucket_token = self.sandbox.bitbucket_token()
        self.clone = make_clone_dir(self.root / self.tag)

    def trust(self, **parameters: str) -> dict[str, str]:
        """A template's Bitbucket parameters for this workspace and repository."""
        return {
            "WorkspaceName": self.workspace,
            "WorkspaceUuid": self.issuer.workspace_uuid,
            "RepositoryUuid": self.repo_uuid,
            "CreateProvider": "false",
            **parameters,
        }

    def deploy(self, template: str, parameters: dict[str, str]) -> Deployed:
        deployed = deploy(self.sandbox.aws, template, parameters, name=f"lp-{self.tag}-{len(self.grants)}")
        for identity, statements in deployed.statements().items():
            self.grants[identity] = Grant(template, statements)
        return deployed

    def deploy_stack_set(self, template: str, parameters: dict[str, str], accounts: list[str]) -> None:
        """A StackSet of ``template`` with an instance in each account (audit-member.yaml)."""
        name = f"lp-{self.tag}-{len(self.grants)}"
        for stack in deploy_stack_set(self.sandbox.aws, template, parameters, name, accounts).values():
            for identity, statements in stack.statements_by_principal().items():
                self.grants[identity] = Grant(template, statements)

    def environment_uuid(self, slug: str = "production") -> str:
        """The UUID of one of REPO's deployment environments (braced, as Bitbucket writes it)."""
        return self.sandbox.bitbucket.environment_uuid(self.workspace, REPO, slug)

    def env(self, *, oidc: bool = True, environment: str = "", **variables: str) -> dict[str, str]:
        """A step's environment; ``environment``: a deployment step of that environment (its
        UUID in the token's sub and deploymentEnvironmentUuid)."""
        token = self.issuer.mint(self.repo_uuid, environment_uuid=environment or None) if oidc else None
        if environment:
            variables = {"BITBUCKET_DEPLOYMENT_ENVIRONMENT_UUID": environment, **variables}
        env = self.sandbox.step_env(
            self.clone,
            token=token,
            BITBUCKET_WORKSPACE=self.workspace,
            BITBUCKET_REPO_SLUG=REPO,
            BITBUCKET_REPO_FULL_NAME=f"{self.workspace}/{REPO}",
            BITBUCKET_REPO_UUID=self.repo_uuid,
            BITBUCKET_API_URL=self.sandbox.bitbucket.api_url,
            BITBUCKET_ACCESS_TOKEN=self.bitbucket_token,
            REPORT_DIR=str(self.clone / "reports"),
            VERIFY_TIMEOUT_SECONDS="10",
        )
        env.update(variables)
        return env

    def pipe(self, label: str, *, oidc: bool = True, environment: str = "", **variables: str) -> Result:
        """Run the pipe; keep the AWS calls it made. Every run must end ✔."""
        recorder = self.sandbox.aws.recorder
        assert recorder is not None
        start = len(recorder.calls)
        self.runs += 1
        env = self.env(oidc=oidc, environment=environment, **variables)
        result = run_process(env, self.clone, f"lp-{label}", timeout=120)
        self.calls.extend(recorder.calls[start:])
        assert result.returncode == 0 and result.last.startswith("✔"), result.output
        return result

    def stored(self, repo: str = REPO, environment: str = "") -> dict[str, str]:
        env_uuid = (
            self.sandbox.bitbucket.environment_uuid(self.workspace, repo, environment) if environment else ""
        )
        variables = self.sandbox.bitbucket.stored(self.workspace, repo, env_uuid)
        return {name: str(v["value"]) for name, v in variables.items()}

    def put_key(self, name_prefix: str, pair: tuple[str, str], environment: str = "") -> None:
        env_uuid = (
            self.sandbox.bitbucket.environment_uuid(self.workspace, REPO, environment) if environment else ""
        )
        bb = self.sandbox.bitbucket
        bb.put(self.workspace, REPO, env_uuid, f"{name_prefix}ACCESS_KEY_ID", pair[0], secured=False)
        bb.put(self.workspace, REPO, env_uuid, f"{name_prefix}SECRET_ACCESS_KEY", pair[1], secured=True)


# -- the scenarios ---------------------------------------------------------------------------------
def assume(run: Run) -> None:
    """ACTION=assume through the deploy role of oidc.yaml (no check permissions)."""
    role = run.deploy("oidc.yaml", run.trust(AllowCheck="false")).outputs["RoleArn"]
    result = run.pipe("assume", AWS_OIDC_ROLE_ARN=role)
    assert role.split("/")[-1] in result.last


def assume_chained(run: Run) -> None:
    """ACTION=assume with role chaining: oidc.yaml's deploy role with ChainedRoleArns, then
    sts:AssumeRole into a role of another account whose trust policy admits the deploy role
    with an external id (docs/setup.md, Role chaining). The stand-in STS enforces that trust
    and the id; the deploy role's own sts:AssumeRole is held against ChainedRolesPolicy."""
    account = fresh_account()
    target = f"arn:aws:iam::{account}:role/deploy-{run.tag}"
    deployed = run.deploy("oidc.yaml", run.trust(AllowCheck="false", ChainedRoleArns=target))
    role = deployed.outputs["RoleArn"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": role},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": f"ext-{run.tag}"}},
            }
        ],
    }
    run.sandbox.aws.account_client("iam", account).create_role(
        RoleName=f"deploy-{run.tag}", AssumeRolePolicyDocument=json.dumps(trust)
    )
    result = run.pipe(
        "assume-chained",
        AWS_OIDC_ROLE_ARN=role,
        AWS_CHAINED_ROLE_ARN=target,
        AWS_CHAINED_EXTERNAL_ID=f"ext-{run.tag}",
    )
    assert f"deploy-{run.tag}" in result.last
    assert [c.action for c in run.calls if not c.exempt] == ["sts:AssumeRole"]


def assume_keys_role(run: Run) -> None:
    """ACTION=assume with the fallback key and AWS_ROLE_ARN_FOR_KEYS: rotation.yaml's fallback
    user with KeysRoleArns, its key, then sts:AssumeRole into a role of another account whose
    trust policy admits the user with an external id (docs/setup.md, The fallback key assumes
    a role). The stand-in STS enforces that trust and the id; the user's own sts:AssumeRole is
    held against KeysRolesPolicy."""
    account = fresh_account()
    target = f"arn:aws:iam::{account}:role/deploy-from-key-{run.tag}"
    user = f"ci-key-{run.tag}"
    outputs = run.deploy(
        "rotation.yaml", run.trust(UserName=user, KeysRoleArns=target, AllowAnyBranch="true")
    ).outputs
    pair = run.sandbox.add_user_key(user)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": outputs["UserArn"]},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": f"ext-{run.tag}"}},
            }
        ],
    }
    run.sandbox.aws.account_client("iam", account).create_role(
        RoleName=f"deploy-from-key-{run.tag}", AssumeRolePolicyDocument=json.dumps(trust)
    )
    result = run.pipe(
        "assume-keys-role",
        oidc=False,
        AWS_ACCESS_KEY_ID=pair[0],
        AWS_SECRET_ACCESS_KEY=pair[1],
        AWS_ROLE_ARN_FOR_KEYS=target,
        AWS_EXTERNAL_ID_FOR_KEYS=f"ext-{run.tag}",
    )
    assert f"deploy-from-key-{run.tag}" in result.last
    assert [(c.action, c.principal_arn) for c in run.calls if not c.exempt] == [
        ("sts:AssumeRole", outputs["UserArn"])
    ]


def check(run: Run) -> None:
    """ACTION=check through the same role with the check's reads, legacy keys in the
    repository's and its environment's variables, and RETIRE_LEGACY_KEYS=true."""
    user = f"legacy-{run.tag}"
    # Permissions, not branches, are under test here (tests/unit/test_template_fences.py).
    parameters = run.trust(LegacyKeyUsers="legacy-*", RetireLegacyKeys="true", AllowAnyBranch="true")
    role = run.deploy("oidc.yaml", parameters).outputs["RoleArn"]
    used, idle = run.sandbox.add_user(user, keys=2)
    # Published an hour ago and never used yet (its creation date is read): not idle.
    (fresh,) = run.sandbox.add_user(f"{user}-new")
    run.put_key("AWS_", used)
    run.put_key("PROD_AWS_", idle, environment="production")
    run.put_key("NEW_AWS_", fresh)
    run.sandbox.aws.age(used[0], 30, last_used_days_ago=1)
    run.sandbox.aws.age(idle[0], 30, last_used_days_ago=20)
    run.sandbox.aws.age(fresh[0], 1 / 24)
    result = run.pipe("check", ACTION="check", AWS_OIDC_ROLE_ARN=role, RETIRE_LEGACY_KEYS="true")
    assert "READY" in result.last
    assert run.sandbox.aws.keys(user) == {used[0]: "Active", idle[0]: "Inactive"}
    assert run.sandbox.aws.keys(f"{user}-new") == {fresh[0]: "Active"}


def check_workspace(run: Run) -> None:
    """ACTION=check with CHECK_SCOPE=workspace through oidc.yaml's role with WorkspaceCheck
    only: keys in a repository's and an environment's variables (one used, one idle, of two
    users of the account) and a key of another account in the other repository."""
    parameters = run.trust(AllowCheck="false", WorkspaceCheck="true")
    role = run.deploy("oidc.yaml", parameters).outputs["RoleArn"]
    (used,) = run.sandbox.add_user(f"ci-{run.tag}")
    (idle,) = run.sandbox.add_user(f"ci-old-{run.tag}")
    run.sandbox.aws.age(used[0], 30, last_used_days_ago=1)
    run.put_key("AWS_", used)
    run.put_key("PROD_AWS_", idle, environment="production")
    foreign = run.sandbox.account_user(fresh_account(), f"partner-{run.tag}")[0]
    run.sandbox.bitbucket.put(run.workspace, OTHER_REPO, "", "PARTNER_ACCESS_KEY_ID", foreign, secured=False)
    result = run.pipe(
        "check-workspace",
        ACTION="check",
        CHECK_SCOPE="workspace",
        AWS_OIDC_ROLE_ARN=role,
        BITBUCKET_ACCESS_TOKEN=run.sandbox.bitbucket_token("repository", "pipeline"),
    )
    assert f"Workspace {run.workspace}: 2 repositories, 2 with static keys, 3 key variables" in result.last
    report = json.loads((run.clone / "reports" / "migration.json").read_text())
    keys = {k["variable"]: k for r in report["repositories"] for k in r["keys"]}
    assert keys["AWS_ACCESS_KEY_ID"]["status"] == "Active" and keys["AWS_ACCESS_KEY_ID"]["error"] is None
    assert keys["PROD_AWS_ACCESS_KEY_ID"]["iam_user"] == f"ci-old-{run.tag}"
    assert keys["PARTNER_ACCESS_KEY_ID"]["other_account"] is True


def _rotation(run: Run, **store: str) -> tuple[str, str, str]:
    """rotation.yaml for a user of this run: (role ARN, user name, the Store output)."""
    user = f"ci_{run.tag}@acme"  # _ and @ are escaped in the default store's name
    # Permissions, not branches, are under test here (tests/unit/test_template_fences.py).
    outputs = run.deploy("rotation.yaml", run.trust(UserName=user, AllowAnyBranch="true", **store)).outputs
    return outputs["RoleArn"], user, outputs["Store"]


def past_the_recovery_window(run: Run, user: str, key_id: str) -> None:
    """What waiting DELETE_AFTER_DAYS - DEACTIVATE_AFTER_DAYS days would do: the day rotate
    recorded for the key's deactivation (a user tag, written by the pipe's own recorded call)
    moves 11 days back, straight in moto (not a recorded call)."""
    tag = "aws-credentials-pipe/deactivated"
    tags = {t["Key"]: t["Value"] for t in run.sandbox.aws.iam.list_user_tags(UserName=user)["Tags"]}
    assert tags.get(tag, "").startswith(f"{key_id}="), tags  # rotate recorded the day
    day = (datetime.now(UTC).date() - timedelta(days=11)).isoformat()
    run.sandbox.aws.iam.tag_user(UserName=user, Tags=[{"Key": tag, "Value": f"{key_id}={day}"}])


def rotate_default_store(run: Run) -> None:
    """ACTION=rotate to a repository, a deployment environment and the workspace, with the
    default SSM store; then the key ages: rotated, the old one deactivated, then deleted; then
    ACTION=sync from the store to another repository."""
    role, user, store = _rotation(run)
    assert store == f"ssm:{default_store_name(user)}"
    targets = f"{run.workspace}/{REPO},{run.workspace}/{REPO}@production,{run.workspace}"
    aws = run.sandbox.aws

    def rotate(label: str) -> None:
        run.pipe(label, ACTION="rotate", AWS_OIDC_ROLE_ARN=role, IAM_USER_NAME=user, TARGETS=targets)

    rotate("rotate-first")
    first = run.stored()["AWS_ACCESS_KEY_ID"]
    aws.age(first, 95)
    rotate("rotate-due")
    second = run.stored()["AWS_ACCESS_KEY_ID"]
    assert second != first and aws.keys(user) == {first: "Active", second: "Active"}
    aws.age(first, 101)
    aws.age(second, 8)
    rotate("rotate-deactivate")
    assert aws.keys(user) == {first: "Inactive", second: "Active"}
    aws.age(first, 111)
    past_the_recovery_window(run, user, first)
    rotate("rotate-delete")
    assert aws.keys(user) == {second: "Active"}
    run.pipe(
        "sync", ACTION="sync", AWS_OIDC_ROLE_ARN=role, SOURCE=store, TARGETS=f"{run.workspace}/{OTHER_REPO}"
    )
    assert run.stored(OTHER_REPO)["AWS_ACCESS_KEY_ID"] == second


def rotate_secret_store(run: Run) -> None:
    """ACTION=rotate with the stack's Secrets Manager secret as the store, then ACTION=sync
    from it."""
    role, user, store = _rotation(run, SecretName=f"ci/{run.tag}/aws-key")
    targets = f"{store},{run.workspace}/{REPO}"
    run.pipe("rotate-secret", ACTION="rotate", AWS_OIDC_ROLE_ARN=role, IAM_USER_NAME=user, TARGETS=targets)
    key = run.stored()["AWS_ACCESS_KEY_ID"]
    run.pipe(
        "sync-secret",
        ACTION="sync",
        AWS_OIDC_ROLE_ARN=role,
        SOURCE=store,
        TARGETS=f"{run.workspace}/{OTHER_REPO}",
    )
    assert run.stored(OTHER_REPO)["AWS_ACCESS_KEY_ID"] == key


def rotate_parameter_store(run: Run) -> None:
    """ACTION=rotate with a named SSM parameter (an ssm: target) as the store, encrypted with a
    customer-managed KMS key (KmsKeyId, STORE_KMS_KEY_ID), then sync."""
    key = run.sandbox.aws.client("kms").create_key(Description=f"store {run.tag}")["KeyMetadata"]["Arn"]
    role, user, store = _rotation(run, ParameterName=f"/ci/{run.tag}/aws-key", KmsKeyId=key)
    targets = f"{store},{run.workspace}/{REPO}"
    run.pipe(
        "rotate-ssm",
        ACTION="rotate",
        AWS_OIDC_ROLE_ARN=role,
        IAM_USER_NAME=user,
        TARGETS=targets,
        STORE_KMS_KEY_ID=key,
    )
    ssm = run.sandbox.aws.client("ssm")
    found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [store[4:]]}])["Parameters"]
    assert found[0]["KeyId"] == key
    key = run.stored()["AWS_ACCESS_KEY_ID"]
    run.pipe(
        "sync-ssm",
        ACTION="sync",
        AWS_OIDC_ROLE_ARN=role,
        SOURCE=store,
        TARGETS=f"{run.workspace}/{OTHER_REPO}",
    )
    assert run.stored(OTHER_REPO)["AWS_ACCESS_KEY_ID"] == key


def self_service_profile(run: Run) -> None:
    """Seed 002: a person rotates their own key into a profile with nothing but that key, the
    default store kept (self-service.yaml attached to the user), encrypted with a
    customer-managed KMS key (KmsKeyId, STORE_KMS_KEY_ID)."""
    user = f"dev-{run.tag}"
    pair = run.sandbox.add_user(user)[0]
    key = run.sandbox.aws.client("kms").create_key(Description=f"store {run.tag}")["KeyMetadata"]["Arn"]
    run.deploy("self-service.yaml", {"Users": user, "KmsKeyId": key})
    credentials = run.root / run.tag / "home" / ".aws" / "credentials"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_text(f"[default]\naws_access_key_id = {pair[0]}\naws_secret_access_key = {pair[1]}\n")
    run.pipe(
        "self-service-profile",
        oidc=False,
        ACTION="rotate",
        TARGETS="profile:default",
        FORCE_ROTATE="true",
        AWS_ACCESS_KEY_ID=pair[0],
        AWS_SECRET_ACCESS_KEY=pair[1],
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        STORE_KMS_KEY_ID=key,
    )
    parser = configparser.ConfigParser()
    parser.read(credentials)
    new = parser["default"]["aws_access_key_id"]
    assert run.sandbox.aws.keys(user) == {new: "Active"}
    store = default_store_name(user)
    found = run.sandbox.aws.client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [store]}]
    )
    assert found["Parameters"][0]["KeyId"] == key


def self_service_pipeline(run: Run) -> None:
    """A pipeline that rotates its own fallback key in its repository's variables, without a
    store (STORE=none, self-service.yaml with IncludeDefaultStore=false); then the old key
    ages out: deactivated, then deleted, each run signed by the key the variables hold."""
    user = f"ci-self-{run.tag}"
    pair = run.sandbox.add_user(user)[0]
    run.put_key("AWS_", pair)
    run.deploy("self-service.yaml", {"Users": user, "IncludeDefaultStore": "false"})
    aws = run.sandbox.aws

    def rotate(label: str, **extra: str) -> None:
        key_id, secret = run.stored()["AWS_ACCESS_KEY_ID"], run.stored()["AWS_SECRET_ACCESS_KEY"]
        run.pipe(
            label,
            oidc=False,
            ACTION="rotate",
            TARGETS=f"{run.workspace}/{REPO}",
            STORE="none",
            AWS_ACCESS_KEY_ID=key_id,
            AWS_SECRET_ACCESS_KEY=secret,
            **extra,
        )

    rotate("self-service-rotate", FORCE_ROTATE="true")
    current = run.stored()["AWS_ACCESS_KEY_ID"]
    assert current != pair[0] and aws.keys(user) == {pair[0]: "Active", current: "Active"}
    aws.age(pair[0], 101)
    aws.age(current, 8)
    rotate("self-service-deactivate")
    assert aws.keys(user) == {pair[0]: "Inactive", current: "Active"}
    aws.age(pair[0], 111)
    past_the_recovery_window(run, user, pair[0])
    rotate("self-service-delete")
    assert aws.keys(user) == {current: "Active"}


# -- ACTION=audit: the hub (audit-hub.yaml) and the member role (audit-member.yaml, a StackSet) ---
AUDIT_TAG = "aws-credentials-pipe/audit"


@dataclass
class Audit:
    """A run's audit set-up: the hub role deployed in ACCOUNT (it audits ACCOUNT itself,
    AuditThisAccount=true), the member role deployed as a StackSet into the other accounts, and
    one user of the same name in each account (IAM_USERS: other tests' users are never read)."""

    run: Run
    mode: str
    accounts: list[str]
    hub: str = ""
    user: str = ""

    @property
    def role(self) -> str:
        return f"audit-{self.run.tag}"

    @property
    def environment(self) -> str:
        """revoke and enforce run from the Production deployment environment only (audit-hub.yaml
        refuses those modes without DeploymentEnvironmentUuid); report from any step."""
        return "" if self.mode == "report" else self.run.environment_uuid()

    def deploy(self, external_id: str = "", **hub: str) -> None:
        run = self.run
        if self.environment:
            hub = {"DeploymentEnvironmentUuid": self.environment, **hub}
        if "AuditOrganization" not in hub:  # the accounts it audits, by number
            hub = {"MemberAccountIds": ",".join(a for a in self.accounts if a != ACCOUNT), **hub}
        parameters = run.trust(
            RoleName=f"hub-{run.tag}", MemberRoleName=self.role, AuditMode=self.mode, **hub
        )
        self.hub = run.deploy("audit-hub.yaml", parameters).outputs["RoleArn"]
        member = {
            "HubAccountId": ACCOUNT,
            "HubRoleName": f"hub-{run.tag}",
            "RoleName": self.role,
            "AuditMode": self.mode,
            **({"ExternalId": external_id} if external_id else {}),
        }
        run.deploy_stack_set("audit-member.yaml", member, accounts=[a for a in self.accounts if a != ACCOUNT])
        self.user = f"lp-{run.tag}"

    def keys(self, account: str, *ages: tuple[float, float | None], inactive: int = 0) -> list[str]:
        """The user's keys in ``account``, these ages (days, last used days ago), oldest first;
        the first ``inactive`` of them Inactive. The credential report is made afresh."""
        sandbox = self.run.sandbox
        ids = sandbox.account_user(
            account, self.user, keys=len(ages), tags={"email": f"{self.user}@example.com"}
        )
        for key_id, (days, used) in zip(ids, ages, strict=True):
            sandbox.aws.age(key_id, days, last_used_days_ago=used)
        for key_id in ids[:inactive]:
            sandbox.account_iam(account).update_access_key(
                UserName=self.user, AccessKeyId=key_id, Status="Inactive"
            )
        sandbox.aws.expire_credential_reports(account)
        return ids

    def in_flight(self, account: str, key_id: str) -> None:
        """A key an enforce run created and stopped before delivering (its tag on the user)."""
        started = int(time.time()) - 5
        self.run.sandbox.account_iam(account).tag_user(
            UserName=self.user,
            Tags=[{"Key": AUDIT_TAG, "Value": f"phase=deliver key={key_id} started={started}"}],
        )

    def pipe(self, label: str, **variables: str) -> dict[str, Any]:
        self.run.pipe(
            label,
            oidc=True,
            environment=self.environment,
            ACTION="audit",
            AWS_OIDC_ROLE_ARN=self.hub,
            AUDIT_MODE=self.mode,
            AUDIT_ROLE_NAME=self.role,
            IAM_USERS=variables.pop("IAM_USERS", self.user),
            AUDIT_ACCOUNT_IDS=variables.pop("AUDIT_ACCOUNT_IDS", ",".join(self.accounts)),
            **variables,
        )
        return dict(json.loads((self.run.clone / "reports" / "audit.json").read_text()))

    def state(self, account: str) -> tuple[dict[str, str], dict[str, str]]:
        """The user's keys (id -> status) and tags in ``account``."""
        iam = self.run.sandbox.account_iam(account)
        keys = iam.list_access_keys(UserName=self.user)["AccessKeyMetadata"]
        tags = iam.list_user_tags(UserName=self.user)["Tags"]
        return {k["AccessKeyId"]: k["Status"] for k in keys}, {t["Key"]: t["Value"] for t in tags}


def audit_enforce(run: Run) -> None:
    """AUDIT_MODE=enforce in the hub's own account and a member account (with an external id):
    per account, an inactive key past its window deleted, a new key created and delivered into
    the user's secret (created, its resource policy, its value), the user e-mailed through SES
    from NOTIFY_FROM, the state in user tags; the next day, the 105-day key deactivated (not the
    day its replacement was made: the user fetches the new key with it). A second user, at IAM's
    50-tag quota (none of them the pipe's), gets a new key too: its in-flight record goes on its
    secret (TagResource, then UntagResource, of that one tag key)."""
    audit = Audit(run, "enforce", [ACCOUNT, fresh_account()])
    sender = f"key-audit-{run.tag}@example.com"
    run.sandbox.verify_sender(sender)
    audit.deploy(external_id=f"ext-{run.tag}", NotifyFrom=sender)
    full = f"full-{run.tag}"
    crowded = {"email": f"{full}@example.com", **{f"team-{i:02}": "x" for i in range(49)}}
    for account in audit.accounts:
        [due] = run.sandbox.account_user(account, full, tags=crowded)
        run.sandbox.aws.age(due, 95, last_used_days_ago=1)
    before = {account: audit.keys(account, (130, 30), (105, 1), inactive=1) for account in audit.accounts}
    first_mail = len(run.sandbox.aws.emails)
    variables = {
        "AUDIT_EXTERNAL_ID": f"ext-{run.tag}",
        "NOTIFY_FROM": sender,
        "IAM_USERS": f"{audit.user},{full}",
    }
    report = audit.pipe("audit-enforce", **variables)
    assert [a["status"] for a in report["accounts"]] == ["ok", "ok"]
    for account in audit.accounts:
        secrets = run.sandbox.aws.account_client("secretsmanager", account)
        described = secrets.describe_secret(SecretId=f"aws-credentials/{full}")
        keys = run.sandbox.account_iam(account).list_access_keys(UserName=full)["AccessKeyMetadata"]
        assert len(keys) == 2 and AUDIT_TAG not in {t["Key"] for t in described.get("Tags", [])}
        assert any(v.startswith("aws-credentials-pipe-AKIA") for v in described["VersionIdsToStages"])
    made: dict[str, str] = {}
    for account, (gone, old) in before.items():
        keys, tags = audit.state(account)
        [new] = set(keys) - {old}
        made[account] = new
        assert keys == {old: "Active", new: "Active"} and gone not in keys
        secrets = run.sandbox.aws.account_client("secretsmanager", account)
        value = json.loads(secrets.get_secret_value(SecretId=f"aws-credentials/{audit.user}")["SecretString"])
        assert value["AccessKeyId"] == new
        assert (
            audit.user
            in secrets.get_resource_policy(SecretId=f"aws-credentials/{audit.user}")["ResourcePolicy"]
        )
        assert AUDIT_TAG not in tags and f"new={new}" in tags["aws-credentials-pipe/notified"]
        run.sandbox.aws.age(new, 1)  # the next day
        run.sandbox.aws.expire_credential_reports(account)
    report = audit.pipe("audit-enforce-next-day", **variables)
    assert [a["status"] for a in report["accounts"]] == ["ok", "ok"]
    for account, (_, old) in before.items():
        keys, tags = audit.state(account)
        assert keys == {old: "Inactive", made[account]: "Active"}
        assert old in tags["aws-credentials-pipe/deactivated"]
    mails = [m for m in run.sandbox.aws.emails[first_mail:] if f"{audit.user}@example.com" in m["to"]]
    assert sorted(m["account"] for m in mails) == [ACCOUNT] * 4 and {m["from"] for m in mails} == {sender}


def audit_report(run: Run) -> None:
    """AUDIT_MODE=report through report-mode roles in the hub's own account and a member
    account, a user with an old key and a key in flight from a stopped enforce run in each: the
    plan only, nothing changed, and no call to Secrets Manager (the report role has none)."""
    audit = Audit(run, "report", [ACCOUNT, fresh_account()])
    audit.deploy()
    before = {}
    for account in audit.accounts:
        stray = audit.keys(account, (122, 1), (0, None))[1]
        audit.in_flight(account, stray)
        before[account] = audit.state(account)
    report = audit.pipe("audit-report")
    assert {account: audit.state(account) for account in audit.accounts} == before
    planned = [a for account in report["accounts"] for u in account["users"] for a in u["actions"]]
    # The 122-day key's deactivation waits for a day: the key in flight (a replacement) is from today.
    assert planned == [] and all(u["status"] == "audited" for a in report["accounts"] for u in a["users"])
    assert not [c for c in run.calls if c.service == "secretsmanager"]


def audit_organization(run: Run) -> None:
    """AUDIT_ACCOUNT_IDS=organization (report mode): the hub lists the organization's ACTIVE
    accounts and audits each, the member StackSet deployed into every one but the hub's own (a
    service-managed StackSet's reach). The account made here is closed afterwards."""
    org = run.sandbox.aws.client("organizations", region="us-east-1")
    with contextlib.suppress(org.exceptions.AlreadyInOrganizationException):
        org.create_organization(FeatureSet="ALL")
    made = str(
        org.create_account(Email=f"{run.tag}@example.com", AccountName=run.tag)["CreateAccountStatus"][
            "AccountId"
        ]
    )
    try:
        active = [
            str(a["Id"])
            for page in org.get_paginator("list_accounts").paginate()
            for a in page["Accounts"]
            if a["Status"] == "ACTIVE"
        ]
        audit = Audit(run, "report", sorted(active, key=lambda a: (a != ACCOUNT, a)))
        audit.deploy(AuditOrganization="true")
        for account in (ACCOUNT, made):
            audit.keys(account, (95, 1))
        report = audit.pipe("audit-organization", AUDIT_ACCOUNT_IDS="organization")
        audited = [a["account_id"] for a in report["accounts"]]
        assert audited[0] == ACCOUNT and made in audited and set(audited) == set(active)
    finally:
        org.close_account(AccountId=made)  # other tests' organization audits never meet its role


def audit_revoke(run: Run) -> None:
    """AUDIT_MODE=revoke through revoke-mode roles in the hub's own account and a member
    account: the active key deactivated, the inactive one deleted."""
    audit = Audit(run, "revoke", [ACCOUNT, fresh_account()])
    audit.deploy()
    before = {account: audit.keys(account, (200, 50), (10, 1), inactive=1) for account in audit.accounts}
    audit.pipe("audit-revoke")
    for account, (gone, active) in before.items():
        keys, tags = audit.state(account)
        assert keys == {active: "Inactive"} and gone not in keys
        assert active in tags["aws-credentials-pipe/deactivated"]


@dataclass(frozen=True)
class Scenario:
    name: str  # as docs/setup.md's table names it
    steps: Callable[[Run], None]


SCENARIOS = [
    Scenario("assume", assume),
    Scenario("assume, chained role", assume_chained),
    Scenario("assume, fallback key into a role", assume_keys_role),
    Scenario("check, RETIRE_LEGACY_KEYS=true", check),
    Scenario("check, CHECK_SCOPE=workspace", check_workspace),
    Scenario("rotate and sync, default store", rotate_default_store),
    Scenario("rotate and sync, Secrets Manager store", rotate_secret_store),
    Scenario("rotate and sync, SSM parameter store and its KMS key", rotate_parameter_store),
    Scenario("rotate, self-service into a profile, the store's KMS key", self_service_profile),
    Scenario("rotate, self-service in a pipeline", self_service_pipeline),
    Scenario("audit, enforce, two accounts", audit_enforce),
    Scenario("audit, report, two accounts", audit_report),
    Scenario("audit, report, AUDIT_ACCOUNT_IDS=organization", audit_organization),
    Scenario("audit, revoke, two accounts", audit_revoke),
]


# -- running them once, recording ------------------------------------------------------------------
@dataclass
class Outcome:
    run: Run
    error: str = ""


@pytest.fixture(scope="module")
def outcomes(
    _sandbox_session: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    sandbox = _sandbox_session
    sandbox.aws.reset()
    sandbox.bitbucket.reset()
    out: dict[str, Outcome] = {}
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as env, recording(sandbox.aws):
        # As tests/conftest.py's hermetic_env, which runs per test, after this fixture.
        for name in [n for n in os.environ if n.startswith(("AWS_", "BITBUCKET_", "ATLASSIAN_"))]:
            env.delenv(name)
        env.setenv("HOME", str(home))
        env.setenv("AWS_CONFIG_FILE", str(home / "no-config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-credentials"))
        for scenario in SCENARIOS:
            run = Run(sandbox, tmp_path_factory.mktemp("least-privilege"))
            try:
                scenario.steps(run)
                out[scenario.name] = Outcome(run)
            except Exception:  # reported by test_every_scenario_ends_green
                out[scenario.name] = Outcome(run, traceback.format_exc())
    yield out


# -- evaluating ------------------------------------------------------------------------------------
def organization_of(account: str) -> str | None:
    """The id of the organization ``account`` is in, as the stand-in's Organizations (moto, in
    this process) knows it; None when it is in none."""
    from moto.organizations.models import organizations_backends

    management, partition = organizations_backends.master_accounts.get(account, (account, "aws"))
    organization = organizations_backends[management][partition].org
    return None if organization is None else str(organization.id)


def context_of(call: Recorded, check: Check) -> dict[str, Any]:
    """The request context's global keys the templates' policies use: IAM sets
    aws:PrincipalOrgID when the caller's account is in an organization, aws:ResourceOrgID when
    the resource's account is (an ARN's fifth field, also aws:ResourceAccount)."""
    context: dict[str, Any] = {"aws:PrincipalArn": call.principal_arn, "aws:PrincipalAccount": call.account}
    if ":user/" in call.principal_arn:
        context["aws:username"] = call.principal_arn.rsplit("/", 1)[1]
    principal_org = organization_of(call.account)
    if principal_org:
        context["aws:PrincipalOrgID"] = principal_org
    fields = check.resource.split(":")
    resource_org = organization_of(fields[4]) if len(fields) > 5 and fields[4] else None
    if resource_org:
        context["aws:ResourceOrgID"] = resource_org
    if len(fields) > 5 and fields[4]:
        context["aws:ResourceAccount"] = fields[4]
    return context


def denials(run: Run, grants: dict[str, Grant] | None = None) -> list[str]:
    """Every authorisation of a recorded call that its caller's grant does not allow."""
    grants = run.grants if grants is None else grants
    out = []
    for call in run.calls:
        if call.exempt:
            continue
        grant = grants.get(call.principal_arn)
        for check in call.checks:
            statements = grant.statements if grant else []
            if not allowing(
                statements, check.action, check.resource, {**context_of(call, check), **check.context}
            ):
                shown = ", ".join(f"{k}={v}" for k, v in check.context.items())
                owner = f"{grant.template}'s policy" if grant else "no template (no grant for this identity)"
                out.append(
                    f"{check.action} on {check.resource} ({shown}) by {call.principal_arn}: not allowed by {owner}"
                )
    return out


def used(outcomes: dict[str, Outcome]) -> set[tuple[str, str, str]]:
    """(template, statement Sid, action) of every grant some recorded call needed."""
    out = set()
    for outcome in outcomes.values():
        for call in outcome.run.calls:
            grant = outcome.run.grants.get(call.principal_arn)
            if call.exempt or grant is None:
                continue
            for check in call.checks:
                context = {**context_of(call, check), **check.context}
                for statement in allowing(grant.statements, check.action, check.resource, context):
                    out.add((grant.template, str(statement["Sid"]), check.action.lower()))
    return out


def granted(outcomes: dict[str, Outcome]) -> set[tuple[str, str, str]]:
    """(template, statement Sid, action) of every Allow statement (a Deny grants nothing)."""
    out: set[tuple[str, str, str]] = set()
    for outcome in outcomes.values():
        for grant in outcome.run.grants.values():
            for statement in grant.statements:
                if statement.get("Effect") != "Allow":
                    continue
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                out.update((grant.template, str(statement["Sid"]), str(a).lower()) for a in actions)
    return out


# -- the tests -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_every_scenario_ends_green_on_what_was_deployed(outcomes: dict[str, Outcome], name: str) -> None:
    assert outcomes[name].error == "", outcomes[name].error
    assert outcomes[name].run.calls, "no AWS call was recorded"


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_every_call_is_allowed_by_the_deployed_templates(outcomes: dict[str, Outcome], name: str) -> None:
    run = outcomes[name].run
    assert run.grants or all(c.exempt for c in run.calls), "the scenario deployed no grant"
    problems = denials(run)
    assert problems == [], "\n".join(problems)


def test_every_granted_action_is_used(outcomes: dict[str, Outcome]) -> None:
    assert all(o.error == "" for o in outcomes.values()), "a scenario failed: see its own test"
    unused = granted(outcomes) - used(outcomes)
    assert unused == set(), "granted but never called: " + ", ".join(
        f"{action} ({template}, {sid})" for template, sid, action in sorted(unused)
    )


def test_removing_any_action_from_a_policy_denies_a_recorded_call(outcomes: dict[str, Outcome]) -> None:
    """The mutation form of the two checks above: drop one action from one statement of one
    deployed grant, and some recorded call must now be refused."""
    assert all(o.error == "" for o in outcomes.values()), "a scenario failed: see its own test"
    survivors = []
    for template, sid, action in sorted(granted(outcomes)):
        refused = False
        for outcome in outcomes.values():
            grants = {
                identity: Grant(
                    grant.template,
                    [_without(s, template, sid, action, grant.template) for s in grant.statements],
                )
                for identity, grant in outcome.run.grants.items()
            }
            if denials(outcome.run, grants):
                refused = True
                break
        if not refused:
            survivors.append(f"{action} ({template}, {sid})")
    assert survivors == [], "no recorded call needs: " + ", ".join(survivors)


def _without(statement: dict[str, Any], template: str, sid: str, action: str, owner: str) -> dict[str, Any]:
    if owner != template or statement.get("Sid") != sid:
        return statement
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    return {**statement, "Action": [a for a in actions if str(a).lower() != action]}


def matrix(outcomes: dict[str, Outcome]) -> dict[str, list[str]]:
    """Scenario -> the actions its runs were authorised for, sorted (exempt ones left out)."""
    return {
        name: sorted({check.action for call in outcome.run.calls if not call.exempt for check in call.checks})
        for name, outcome in outcomes.items()
    }


def documented_matrix() -> dict[str, list[str]]:
    """docs/setup.md's table under "What each action calls": scenario -> actions."""
    text = DOCS.read_text()
    section = text.split("## What each action calls", 1)[1].split("\n## ", 1)[0]
    rows = [
        line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Scenario")
    ]
    out = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if set(cells[0]) <= {"-", " "}:
            continue
        out[cells[0]] = sorted(re.findall(r"`([a-z0-9-]+:[A-Za-z]+)`", cells[2]))
    return out


def test_the_documented_matrix_is_what_the_pipe_calls(outcomes: dict[str, Outcome]) -> None:
    assert all(o.error == "" for o in outcomes.values()), "a scenario failed: see its own test"
    recorded = matrix(outcomes)
    assert documented_matrix() == recorded, json.dumps(recorded, indent=1)
