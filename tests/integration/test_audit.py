"""ACTION=audit as a process against the stand-ins: the pipe's OIDC role in ACCOUNT is the hub;
each test audits fresh member accounts (moto creates an account on first use) holding the audit
role, so no test sees another's users. Key ages are set in moto's backend (`age`), so the
credential report, ListAccessKeys and the plan agree; the AWS front keeps the credential report
for four hours as IAM does, and records every SES v2 e-mail with both its parts."""

# Over 300 lines: one scenario per rule of the contract's audit section, sharing the Fleet helper.

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.runner import Result, run_process
from tests.standins import registry
from tests.standins.aws import ACCOUNT
from tests.standins.sandbox import Sandbox, fresh_account

HUB = f"arn:aws:iam::{ACCOUNT}:role/deploy"
SENDER = "key-audit@example.com"
# Every call audit may make in report mode and with DRY_RUN (SES v2, a rest-json API, shows as "").
READS = {
    "AssumeRoleWithWebIdentity",
    "GetCallerIdentity",
    "AssumeRole",
    "GenerateCredentialReport",
    "GetCredentialReport",
    "GetAccountAuthorizationDetails",
    "ListAccessKeys",
    "DescribeSecret",
    "ListAccounts",
}
AUDIT_TAGS = (
    "aws-credentials-pipe/audit",
    "aws-credentials-pipe/deactivated",
    "aws-credentials-pipe/notified",
)


class Fleet:
    """Member accounts with the audit role trusting the hub, users with aged keys, a verified
    sender, and the pipe's step environment."""

    def __init__(self, sandbox: Sandbox, clone: Path, accounts: int = 1) -> None:
        self.sandbox = sandbox
        self.clone = clone
        self.accounts = [sandbox.member_account(trusted=HUB) for _ in range(accounts)]
        self.report_dir = clone / "reports"
        sandbox.verify_sender(SENDER)
        self.first_mail = len(sandbox.aws.emails)  # the stand-in keeps every test's e-mails

    @property
    def account(self) -> str:
        return self.accounts[0]

    def user(
        self,
        name: str,
        *ages: tuple[float, float | None] | float,
        account: str | None = None,
        email: bool = True,
        groups: tuple[str, ...] = (),
        tags: dict[str, str] | None = None,
    ) -> list[str]:
        """A user whose keys are these ages (days, or (days, last used days ago)), oldest first."""
        all_tags = ({"email": f"{name}@example.com"} if email else {}) | (tags or {})
        ids = self.sandbox.account_user(
            account or self.account, name, keys=len(ages), tags=all_tags, groups=groups
        )
        for key_id, age in zip(ids, ages, strict=True):
            days, used = age if isinstance(age, tuple) else (age, None)
            self.sandbox.aws.age(key_id, days, last_used_days_ago=used)
        return ids

    def env(self, **extra: str) -> dict[str, str]:
        return (
            self.sandbox.step_env(
                self.clone,
                token=self.sandbox.token(),
                AWS_OIDC_ROLE_ARN=HUB,
                ACTION="audit",
                AUDIT_ACCOUNT_IDS=",".join(self.accounts),
                AUDIT_MODE="enforce",
                NOTIFY_FROM=SENDER,
                REPORT_DIR=str(self.report_dir),
            )
            | extra
        )

    def run(self, label: str, **extra: str) -> Result:
        return run_process(self.env(**extra), self.clone, label, timeout=120)

    def report(self) -> dict[str, Any]:
        return dict(json.loads((self.report_dir / "audit.json").read_text()))

    def entry(self, user: str, account: str | None = None) -> dict[str, Any]:
        accounts = {a["account_id"]: a for a in self.report()["accounts"]}
        users = {u["user"]: u for u in accounts[account or self.account]["users"]}
        return dict(users[user])

    def keys(self, user: str, account: str | None = None) -> dict[str, str]:
        listed = self.sandbox.account_iam(account or self.account).list_access_keys(UserName=user)
        return {k["AccessKeyId"]: k["Status"] for k in listed["AccessKeyMetadata"]}

    def tags(self, user: str, account: str | None = None) -> dict[str, str]:
        tags = self.sandbox.account_iam(account or self.account).list_user_tags(UserName=user)["Tags"]
        return {t["Key"]: t["Value"] for t in tags}

    def secrets(self, account: str | None = None) -> Any:
        return self.sandbox.aws.account_client("secretsmanager", account or self.account)

    def secret(self, user: str, account: str | None = None) -> dict[str, str] | None:
        client = self.secrets(account)
        try:
            value = client.get_secret_value(SecretId=f"aws-credentials/{user}")["SecretString"]
        except client.exceptions.ResourceNotFoundException:
            return None
        return dict(json.loads(value))

    def mails(self, address: str = "") -> list[dict[str, Any]]:
        """The e-mails sent since this fleet was made (to ``address``, when given)."""
        sent = self.sandbox.aws.emails[self.first_mail :]
        return [e for e in sent if not address or address in e["to"] + e["cc"] + e["bcc"]]

    def writes(self) -> list[str]:
        return [action for action, _ in self.sandbox.aws.requests if action not in READS]


@pytest.fixture
def fleet(sandbox: Sandbox, clone: Path) -> Fleet:
    return Fleet(sandbox, clone)


def today() -> str:
    return datetime.now(UTC).date().isoformat()


# -- report mode and DRY_RUN: read calls only -----------------------------------------------------
def test_report_mode_reads_only_and_writes_the_contracts_report(fleet: Fleet) -> None:
    old = fleet.user("alice", (122, 1))[0]
    fleet.user("bob", 10)
    fleet.sandbox.aws.forget_requests()
    result = fleet.run("audit-report", AUDIT_MODE="report")
    assert result.returncode == 0 and result.last.startswith("✔ Audit report of 1 account(s), 2 user(s)"), (
        result.output
    )
    assert fleet.writes() == [] and fleet.mails("alice@example.com") == []
    assert fleet.sandbox.aws.calls("ListAccessKeys") == 1  # only alice needs an action
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert "credential report generated" in result.output
    assert f"{old}: 122 days old (>= 100), deactivated on {tomorrow}" in result.output
    report = fleet.report()
    assert set(report) == {"version", "mode", "dry_run", "generated_at", "policy", "accounts", "summary"}
    assert (report["version"], report["mode"], report["dry_run"]) == (1, "report", False)
    assert report["policy"] == {
        "rotate_after_days": 90,
        "deactivate_after_days": 100,
        "delete_after_days": 110,
    }
    [account] = report["accounts"]
    assert set(account) == {"account_id", "status", "error", "users"} and account["status"] == "ok"
    alice = fleet.entry("alice")
    assert set(alice) == {"user", "status", "email", "keys", "actions", "secret_arn", "notified"}
    assert alice["keys"] == [
        {
            "access_key_id": old,
            "status": "Active",
            "created": alice["keys"][0]["created"],
            "age_days": 122,
            "last_used": alice["keys"][0]["last_used"],
        }
    ]
    assert datetime.fromisoformat(alice["keys"][0]["last_used"].replace("Z", "+00:00")) < datetime.now(UTC)
    # The key is deactivated once the new one is a day old (the user fetches it with the old one).
    assert all(not a["done"] for a in alice["actions"]) and [a["action"] for a in alice["actions"]] == [
        "create",
        "deliver",
        "notify",
    ]
    assert f"{old} to be deactivated on {tomorrow}" in alice["actions"][2]["reason"]
    bob = fleet.entry("bob")
    assert bob["keys"][0]["access_key_id"] is None and bob["actions"] == []  # not listed: nothing to do
    assert report["summary"] == {
        "accounts": 1,
        "users": 2,
        "keys": 2,
        "actions_done": 0,
        "actions_planned": 3,
        "errors": 0,
    }
    markdown = (fleet.report_dir / "audit.md").read_text()
    assert f"## Account {fleet.account}: ok" in markdown and "| alice | audited |" in markdown


def test_dry_run_plans_enforce_and_makes_only_read_calls(fleet: Fleet) -> None:
    fleet.user("alice", 120)
    fleet.user(
        "bob", (200, 50), 3, tags={"aws-credentials-pipe/deactivated": "AKIA0000000000000000=2026-01-01"}
    )
    fleet.sandbox.aws.forget_requests()
    result = fleet.run("audit-dry-run", DRY_RUN="true")
    assert result.returncode == 0 and result.last.startswith("✔ DRY_RUN: the audit's plan is above"), (
        result.output
    )
    assert fleet.writes() == [] and fleet.mails() == []
    assert all(not a["done"] for u in fleet.report()["accounts"][0]["users"] for a in u["actions"])
    assert fleet.report()["dry_run"] is True
    assert set(fleet.keys("alice").values()) == {"Active"} and len(fleet.keys("alice")) == 1


# -- the age policy, at and around each threshold ------------------------------------------------
def test_enforce_at_and_around_each_threshold(fleet: Fleet) -> None:
    young = fleet.user("u89", 89.9)[0]
    rotated = fleet.user("u90", 90)[0]
    before, before_new = fleet.user("d99", 99.9, 5)
    due, due_new = fleet.user("d100", 100, 5)
    keep_inactive, keep_new = fleet.user("x109", (109.9, 30), 5)
    gone, gone_new = fleet.user("x110", (110, 10), 5)
    waiting, waiting_new = fleet.user("x110w", (115, 9), 5)
    iam = fleet.sandbox.account_iam(fleet.account)
    for user, key in (("x109", keep_inactive), ("x110", gone), ("x110w", waiting)):
        iam.update_access_key(UserName=user, AccessKeyId=key, Status="Inactive")
    fleet.sandbox.aws.expire_credential_reports(fleet.account)
    result = fleet.run("audit-thresholds", NOTIFY_BEFORE_DAYS="0")
    assert result.returncode == 0, result.output
    assert fleet.keys("u89") == {young: "Active"}
    new = set(fleet.keys("u90")) - {rotated}
    assert len(new) == 1 and fleet.keys("u90")[rotated] == "Active"
    assert fleet.secret("u90") is not None and fleet.secret("u90")["AccessKeyId"] == new.pop()  # type: ignore[index]
    assert fleet.keys("d99") == {before: "Active", before_new: "Active"}
    assert fleet.keys("d100") == {due: "Inactive", due_new: "Active"}
    assert fleet.keys("x109") == {keep_inactive: "Inactive", keep_new: "Active"}
    assert fleet.keys("x110") == {gone_new: "Active"}
    assert fleet.keys("x110w") == {waiting: "Inactive", waiting_new: "Active"}  # used 9 days ago
    assert fleet.tags("d100")["aws-credentials-pipe/deactivated"] == f"{due}={today()}"
    d100 = fleet.entry("d100")
    assert d100["actions"][0] == {
        "action": "deactivate",
        "access_key_id": due,
        "reason": "100 days old (>= 100)",
        "done": True,
    }
    assert fleet.report()["summary"]["errors"] == 0


def test_exempt_and_managed_users_are_never_changed(fleet: Fleet) -> None:
    exempt = fleet.user("breakglass", 400, groups=("exempt-admins",))[0]
    managed = fleet.user("ci", 400, 40, tags={"aws-credentials-pipe/managed": "rotate"})[0]
    fleet.sandbox.aws.forget_requests()
    result = fleet.run("audit-exempt", EXEMPT_GROUP="exempt-admins")
    assert result.returncode == 0, result.output
    assert fleet.keys("breakglass") == {exempt: "Active"} and fleet.keys("ci")[managed] == "Active"
    assert fleet.entry("breakglass")["status"] == "exempt" and fleet.entry("ci")["status"] == "managed"
    assert fleet.writes() == [] and fleet.mails("ci@example.com") == []


def test_an_account_without_the_exempt_group_is_an_error_and_left_alone(fleet: Fleet) -> None:
    key = fleet.user("alice", 400)[0]
    result = fleet.run("audit-no-exempt-group", EXEMPT_GROUP="break-glass")
    assert result.failed_with(fleet.account, "EXEMPT_GROUP"), result.output
    assert fleet.keys("alice") == {key: "Active"}
    assert fleet.report()["accounts"][0]["status"] == "error"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NOTIFY_FROM", "Key Audit <key-audit@example.com>"),
        ("AUDIT_ACCOUNT_IDS", "12345678901"),
        ("IAM_GROUPS_COUNT", "²"),
        ("AUDIT_EXTERNAL_ID", "a"),
        ("SES_REGION", "mars-1"),
    ],
)
def test_a_bad_audit_variable_fails_before_any_call(fleet: Fleet, name: str, value: str) -> None:
    fleet.sandbox.aws.forget_requests()
    result = fleet.run(f"audit-bad-{name}", **{name: value})
    assert result.failed_with(name.removesuffix("_COUNT")), result.output
    assert fleet.sandbox.aws.requests == []


# -- revoke ----------------------------------------------------------------------------------------
def test_revoke_without_users_or_groups_is_refused_before_any_call(fleet: Fleet) -> None:
    fleet.sandbox.aws.forget_requests()
    result = fleet.run("audit-revoke-refused", AUDIT_MODE="revoke")
    assert result.failed_with("AUDIT_MODE", "IAM_USERS", "IAM_GROUPS"), result.output
    assert fleet.sandbox.aws.requests == []


def test_revoke_a_group_deactivates_then_deletes_on_the_next_run(fleet: Fleet) -> None:
    first = fleet.user("dev1", 3, groups=("developers",))[0]
    second = fleet.user("dev2", 1, 2, groups=("developers",))
    outsider = fleet.user("ops", 3)[0]
    result = fleet.run("audit-revoke-1", AUDIT_MODE="revoke", IAM_GROUPS="developers")
    assert result.returncode == 0, result.output
    assert fleet.keys("dev1") == {first: "Inactive"} and set(fleet.keys("dev2").values()) == {"Inactive"}
    assert fleet.keys("ops") == {outsider: "Active"}
    mail = fleet.mails("dev1@example.com")
    assert (
        len(mail) == 1 and f"Your access key {first} was deactivated (AUDIT_MODE=revoke)" in mail[0]["text"]
    )
    fleet.sandbox.aws.expire_credential_reports()  # a week later
    again = fleet.run("audit-revoke-2", AUDIT_MODE="revoke", IAM_GROUPS="developers")
    assert again.returncode == 0, again.output
    assert fleet.keys("dev1") == {} and fleet.keys("dev2") == {} and fleet.keys("ops") == {outsider: "Active"}
    assert second[0] not in fleet.keys("dev2")


def test_users_and_groups_named_nowhere_end_the_run_naming_them(fleet: Fleet) -> None:
    fleet.user("alice", 10, groups=("developers",))
    result = fleet.run("audit-unknown-group", IAM_GROUPS="developers,devlopers")
    assert result.failed_with("IAM_GROUPS", "devlopers"), result.output
    listed = fleet.env(IAM_USERS_COUNT="2", IAM_USERS_0="alice", IAM_USERS_1="nobody")
    result = run_process(listed, fleet.clone, "audit-unknown-user")
    assert result.failed_with("IAM_USERS", "nobody"), result.output
    assert [u["user"] for u in fleet.report()["accounts"][0]["users"]] == ["alice"]


# -- accounts ---------------------------------------------------------------------------------------
def test_several_accounts_with_one_unreachable(sandbox: Sandbox, clone: Path) -> None:
    fleet = Fleet(sandbox, clone, accounts=2)
    for account in fleet.accounts:
        fleet.user("alice", 120, account=account)
    nowhere = fresh_account()  # no audit role there
    result = fleet.run(
        "audit-unreachable", AUDIT_ACCOUNT_IDS=",".join([*fleet.accounts, nowhere]), AUDIT_CONCURRENCY="3"
    )
    assert result.failed_with(nowhere, "AccessDenied", "AUDIT_ROLE_NAME"), result.output
    report = fleet.report()
    status = {a["account_id"]: (a["status"], a["error"]) for a in report["accounts"]}
    assert status[nowhere][0] == "error" and "sts:AssumeRole" in status[nowhere][1]
    for account in fleet.accounts:
        assert status[account] == ("ok", None)
        assert len(fleet.keys("alice", account)) == 2  # the other accounts went on
    assert report["summary"]["errors"] == 1


def test_the_external_id(sandbox: Sandbox, clone: Path) -> None:
    fleet = Fleet(sandbox, clone, accounts=0)
    fleet.accounts = [sandbox.member_account(trusted=HUB, external_id="acme-audit-7")]
    fleet.user("alice", 10)
    denied = fleet.run("audit-no-external-id")
    assert denied.failed_with(fleet.account, "AUDIT_EXTERNAL_ID"), denied.output
    allowed = fleet.run("audit-external-id", AUDIT_EXTERNAL_ID="acme-audit-7")
    assert allowed.returncode == 0, allowed.output
    assert sandbox.aws.assume_calls[-1]["ExternalId"] == "acme-audit-7"
    assert "acme-audit-7" not in allowed.output + denied.output


def test_the_organizations_active_accounts(sandbox: Sandbox, clone: Path) -> None:
    fleet = Fleet(sandbox, clone, accounts=0)
    fleet.accounts = [sandbox.organization_account(trusted=HUB) for _ in range(2)]
    closed = sandbox.organization_account(trusted=HUB)
    sandbox.aws.client("organizations", region="us-east-1").close_account(AccountId=closed)
    group = f"audited-{uuid.uuid4().hex[:6]}"
    for account in fleet.accounts:
        fleet.user("alice", 10, account=account, groups=(group,))
    result = fleet.run(
        "audit-organization", AUDIT_ACCOUNT_IDS="organization", IAM_GROUPS=group, AUDIT_MODE="report"
    )
    assert result.returncode == 0, result.output
    audited = [a["account_id"] for a in fleet.report()["accounts"]]
    assert set(fleet.accounts) <= set(audited) and closed not in audited and audited[0] == ACCOUNT
    assert sandbox.aws.calls("ListAccounts") >= 1


# -- delivery, e-mail, idempotence ------------------------------------------------------------------
def test_delivery_email_and_a_second_run_that_changes_and_sends_nothing(fleet: Fleet) -> None:
    sandbox = fleet.sandbox
    old = fleet.user("alice", (95, 1))[0]
    fleet.user("bob", 120, email=False)
    fleet.user("carol", 94, 10)
    sandbox.aws.forget_requests()
    result = fleet.run("audit-deliver", NOTIFY_ADMINS="security-team@example.com")
    assert result.returncode == 0, result.output
    [new] = set(fleet.keys("alice")) - {old}
    pair = fleet.secret("alice")
    assert (
        pair is not None and pair["AccessKeyId"] == new and sandbox.aws.issued[new] == pair["SecretAccessKey"]
    )
    entry = fleet.entry("alice")
    assert entry["secret_arn"].startswith(
        f"arn:aws:secretsmanager:eu-west-1:{fleet.account}:secret:aws-credentials/alice"
    )
    assert entry["notified"] is True and all(a["done"] for a in entry["actions"])
    # The resource policy: the user alone reads it; it went on before the value.
    policy = json.loads(
        fleet.secrets().get_resource_policy(SecretId="aws-credentials/alice")["ResourcePolicy"]
    )
    user_arn = f"arn:aws:iam::{fleet.account}:user/alice"
    allow, deny = policy["Statement"]
    assert allow["Effect"] == "Allow" and allow["Principal"] == {"AWS": user_arn}
    assert set(allow["Action"]) == {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    assert deny["Effect"] == "Deny" and deny["Action"] == "secretsmanager:GetSecretValue"
    assert deny["Condition"] == {"StringNotEquals": {"aws:PrincipalArn": user_arn}}
    actions = [a for a, _ in sandbox.aws.requests]
    assert actions.index("PutResourcePolicy") < actions.index("PutSecretValue")
    assert actions.index("PutSecretValue") < actions.index("SendEmail")  # the secret before any e-mail
    # The e-mails: alice's, both parts, the command, no secret.
    [mail] = fleet.mails("alice@example.com")
    assert mail["from"] == SENDER and mail["to"] == ["alice@example.com"] and mail["account"] == ACCOUNT
    command = (
        "aws secretsmanager get-secret-value --secret-id aws-credentials/alice --region eu-west-1 "
        "--query SecretString --output text"
    )
    assert command in mail["text"] and command in mail["html"] and new in mail["text"]
    assert f"Your access key {old} will be deactivated on" in mail["text"]
    assert "<html>" in mail["html"] and mail["subject"].endswith("alice: your new AWS access key is ready")
    secrets = registry.snapshot()
    for sent in fleet.mails():
        assert not any(secret in sent["text"] + sent["html"] + sent["subject"] for secret in secrets)
    # carol: a warning only (94 days, deactivated in 6); bob has no e-mail tag.
    [warning] = fleet.mails("carol@example.com")
    assert "will be deactivated on" in warning["text"] and "get-secret-value" not in warning["text"]
    assert "not notified: no email tag" in result.output and fleet.entry("bob")["notified"] is False
    [summary] = fleet.mails("security-team@example.com")
    assert (
        "access key audit (enforce)" in summary["subject"]
        and f"{fleet.account} alice: create {new}" in summary["text"]
    )
    assert not any(secret in summary["text"] for secret in secrets)
    # The same day again: the credential report is the same (IAM keeps it four hours); nothing
    # changes, nobody is e-mailed.
    assert not any(tag == "aws-credentials-pipe/audit" for tag in fleet.tags("alice"))
    sandbox.aws.forget_requests()
    mailed = len(fleet.mails())
    again = fleet.run("audit-deliver-again", NOTIFY_ADMINS="security-team@example.com")
    assert again.returncode == 0 and "0 action(s) done, 0 planned" in again.last, again.output
    assert fleet.writes() == [] and len(fleet.mails()) == mailed
    assert set(fleet.keys("alice")) == {old, new}


def test_a_key_a_stopped_run_left_undelivered_is_deleted_and_created_again(fleet: Fleet) -> None:
    old = fleet.user("alice", 95)[0]
    iam = fleet.sandbox.account_iam(fleet.account)
    stray = iam.create_access_key(UserName="alice")["AccessKey"]
    registry.record(stray["SecretAccessKey"])
    started = int(datetime.now(UTC).timestamp()) - 5
    iam.tag_user(
        UserName="alice",
        Tags=[{"Key": "aws-credentials-pipe/audit", "Value": f"phase=create started={started}"}],
    )
    fleet.sandbox.aws.expire_credential_reports(fleet.account)
    result = fleet.run("audit-orphan")
    assert result.returncode == 0, result.output
    keys = fleet.keys("alice")
    assert stray["AccessKeyId"] not in keys and old in keys and len(keys) == 2
    assert fleet.secret("alice")["AccessKeyId"] in keys  # type: ignore[index]
    assert "aws-credentials-pipe/audit" not in fleet.tags("alice")
    assert any(
        a["action"] == "delete" and a["access_key_id"] == stray["AccessKeyId"] and a["done"]
        for a in fleet.entry("alice")["actions"]
    )


def test_report_mode_leaves_a_key_in_flight_to_enforce_and_reads_no_secret(fleet: Fleet) -> None:
    """The report-mode member role (templates/audit-member.yaml, AuditMode=report) has no
    Secrets Manager permission: report mode must not ask which key a user's secret holds."""
    old = fleet.user("alice", 95)[0]
    iam = fleet.sandbox.account_iam(fleet.account)
    stray = iam.create_access_key(UserName="alice")["AccessKey"]
    registry.record(stray["SecretAccessKey"])
    flight = f"phase=deliver key={stray['AccessKeyId']} started={int(datetime.now(UTC).timestamp()) - 5}"
    iam.tag_user(UserName="alice", Tags=[{"Key": "aws-credentials-pipe/audit", "Value": flight}])
    fleet.sandbox.aws.forget_requests()
    result = fleet.run("audit-report-in-flight", AUDIT_MODE="report")
    assert result.returncode == 0, result.output
    assert fleet.sandbox.aws.calls("DescribeSecret") == 0 and fleet.writes() == []
    assert "the next AUDIT_MODE=enforce run deletes it" in result.output
    assert fleet.keys("alice") == {old: "Active", stray["AccessKeyId"]: "Active"}


def test_an_unverified_sender_is_an_error_after_the_keys_are_safe(fleet: Fleet) -> None:
    fleet.user("alice", 95)
    result = fleet.run("audit-unverified", NOTIFY_FROM="nobody-verified@example.org")
    assert result.failed_with("alice", "e-mail", "NOTIFY_FROM"), result.output
    assert fleet.secret("alice") is not None
    # The in-flight tag stays: the next run tells alice about her key.
    assert "aws-credentials-pipe/audit" in fleet.tags("alice")
    fixed = fleet.run("audit-verified")
    assert fixed.returncode == 0, fixed.output
    [mail] = fleet.mails("alice@example.com")
    assert fleet.secret("alice")["AccessKeyId"] in mail["text"]  # type: ignore[index]
    assert "aws-credentials-pipe/audit" not in fleet.tags("alice")


# -- rotate's users ----------------------------------------------------------------------------------
def test_rotate_tags_its_user_and_audit_leaves_it_to_rotate(sandbox: Sandbox, clone: Path) -> None:
    from tests.integration.test_rotate import World

    world = World(sandbox, clone, repos=1)
    world.seed()
    sandbox.aws.age(world.initial[0], 400)
    rotated = world.run("rotate-then-audit")
    assert rotated.returncode == 0, rotated.output
    tags = {t["Key"]: t["Value"] for t in sandbox.iam.list_user_tags(UserName=world.user)["Tags"]}
    assert tags["aws-credentials-pipe/managed"] == "rotate"
    env = sandbox.step_env(
        clone,
        token=sandbox.token(),
        AWS_OIDC_ROLE_ARN=HUB,
        ACTION="audit",
        AUDIT_MODE="enforce",
        IAM_USERS=world.user,
        REPORT_DIR=str(clone / "audit-reports"),
    )
    sandbox.aws.forget_requests()
    result = run_process(env, clone, "audit-managed")
    assert result.returncode == 0, result.output
    report = json.loads((clone / "audit-reports" / "audit.json").read_text())
    [account] = report["accounts"]
    assert account["account_id"] == ACCOUNT and sandbox.aws.calls("AssumeRole") == 0  # its own account
    assert [(u["user"], u["status"], u["actions"]) for u in account["users"]] == [(world.user, "managed", [])]
    assert [a for a, _ in sandbox.aws.requests if a not in READS] == []


def test_the_pipe_waits_for_a_credential_report_being_generated(fleet: Fleet) -> None:
    fleet.user("alice", 10)
    fleet.sandbox.aws.report_delay = 1.2  # IAM takes a while: the pipe asks again, 0.5 s then 1 s later
    try:
        result = fleet.run("audit-report-in-progress", AUDIT_MODE="report")
    finally:
        fleet.sandbox.aws.report_delay = 0.0
    assert result.returncode == 0, result.output
    assert fleet.sandbox.aws.calls("GenerateCredentialReport") == 3
    assert fleet.sandbox.aws.calls("GetCredentialReport") == 1


def test_an_account_aws_stops_answering_is_an_error_entry_not_a_crash(fleet: Fleet) -> None:
    from tests.standins.aws import Fault

    fleet.user("alice", 10)
    fleet.sandbox.aws.inject(Fault("GetAccountAuthorizationDetails", kind="drop", times=10))
    result = fleet.run("audit-dropped", AUDIT_MODE="report")
    assert result.failed_with(fleet.account, "could not be read"), result.output
    assert "Unexpected internal error" not in result.output
    assert fleet.report()["accounts"][0]["status"] == "error"


# -- answers lost on the way -------------------------------------------------------------------------
def test_a_create_access_key_whose_answer_is_lost_strands_no_key(fleet: Fleet) -> None:
    """AWS makes the key, the answer is lost (a dropped connection), the SDK asks again and IAM says
    LimitExceeded (two keys): the key AWS made is this run's own and nobody holds it, so the run
    deletes it at once and takes its in-flight tag off; the hint says re-run, and the next run
    delivers a new key. (A run killed there leaves the tag, and the next run deletes the key:
    tests/integration/test_audit_crash.py.)"""
    from tests.standins.aws import Fault

    old = fleet.user("alice", 95)[0]
    fleet.sandbox.aws.inject(Fault("CreateAccessKey", kind="lost"))
    result = fleet.run("audit-create-lost")
    assert result.failed_with("alice", "Re-run", "AWS did not answer"), result.output
    assert "Grant the audit role" not in result.last
    assert fleet.keys("alice") == {old: "Active"}
    assert "aws-credentials-pipe/audit" not in fleet.tags("alice")
    assert fleet.secret("alice") is None
    fixed = fleet.run("audit-create-lost-again")
    assert fixed.returncode == 0, fixed.output
    keys = fleet.keys("alice")
    assert old in keys and len(keys) == 2
    assert fleet.secret("alice")["AccessKeyId"] in keys  # type: ignore[index]
    assert "aws-credentials-pipe/audit" not in fleet.tags("alice")


def test_rotates_tag_on_a_user_whose_key_rotate_no_longer_renews_exempts_nobody(fleet: Fleet) -> None:
    """Users may tag themselves (templates/self-service.yaml): the tag is honoured only while
    the newest key is younger than DEACTIVATE_AFTER_DAYS, and never by revoke."""
    tags = {"aws-credentials-pipe/managed": "rotate"}
    stale = fleet.user("self-tagged", 400, tags=tags)[0]
    marked = fleet.user("marker", 400, tags={"aws-credentials-pipe/rotation": "anything"})[0]
    young = fleet.user("ci", 10, tags=tags)[0]
    result = fleet.run("audit-stale-managed")
    assert result.returncode == 0, result.output
    assert "managed by rotate, but its newest key is 400 days old: audited" in result.output
    assert fleet.entry("self-tagged")["status"] == "audited" and fleet.entry("marker")["status"] == "audited"
    assert fleet.secret("self-tagged") is not None and len(fleet.keys("self-tagged")) == 2
    assert fleet.keys("marker")[marked] == "Active" and len(fleet.keys("marker")) == 2
    assert fleet.keys("self-tagged")[stale] == "Active"  # deactivated once the new key is a day old
    assert fleet.entry("ci")["status"] == "managed" and fleet.keys("ci") == {young: "Active"}
    revoked = fleet.run("audit-revoke-managed", AUDIT_MODE="revoke", IAM_USERS="ci")
    assert revoked.returncode == 0, revoked.output
    assert fleet.keys("ci") == {young: "Inactive"} and fleet.entry("ci")["status"] == "audited"


def test_the_replaced_key_stays_active_until_the_new_key_is_a_day_old(fleet: Fleet) -> None:
    """The new key's secret is read with the user's own credentials: the run that delivers it
    does not deactivate the old key; the first run on a later day does, and the e-mail says when."""
    old = fleet.user("alice", 120)[0]
    result = fleet.run("audit-replace")
    assert result.returncode == 0, result.output
    [new] = set(fleet.keys("alice")) - {old}
    assert fleet.keys("alice") == {old: "Active", new: "Active"} and fleet.secret("alice") is not None
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    [mail] = fleet.mails("alice@example.com")
    assert f"Your access key {old} will be deactivated on {tomorrow}. Switch to your new key" in mail["text"]
    assert "get-secret-value" in mail["text"] and new in mail["text"]
    again = fleet.run("audit-replace-same-day")
    assert again.returncode == 0 and fleet.keys("alice") == {old: "Active", new: "Active"}, again.output
    fleet.sandbox.aws.age(new, 1)  # the next day
    fleet.sandbox.aws.expire_credential_reports(fleet.account)
    next_day = fleet.run("audit-replace-next-day")
    assert next_day.returncode == 0, next_day.output
    assert fleet.keys("alice") == {old: "Inactive", new: "Active"}
    assert f"Your access key {old} was deactivated" in fleet.mails("alice@example.com")[-1]["text"]


def test_a_create_secret_whose_answer_is_lost_finds_the_secret_and_delivers(fleet: Fleet) -> None:
    """The secret is made, the answer lost, the SDK's retry hears ResourceExistsException: the
    secret is the one just made; the key is delivered, not deleted."""
    from tests.standins.aws import Fault

    old = fleet.user("alice", 95)[0]
    fleet.sandbox.aws.inject(Fault("CreateSecret", kind="lost"))
    result = fleet.run("audit-create-secret-lost")
    assert result.returncode == 0, result.output
    assert fleet.sandbox.aws.calls("CreateSecret") == 2
    [new] = set(fleet.keys("alice")) - {old}
    assert fleet.secret("alice")["AccessKeyId"] == new  # type: ignore[index]
    assert "aws-credentials-pipe/audit" not in fleet.tags("alice")
