"""ACTION=check with CHECK_SCOPE=workspace, the process against the stand-ins: a workspace
whose listing pages, with a forbidden repository, a secured key id, a key of another account,
keys in every scope (repository, deployment, workspace), one key held by several repositories,
an empty repository; the run reads only and its reports hold no secret. ``Workspace`` is shared
with the image tests (tests/image/test_image.py)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.runner import Result, run_process
from tests.standins.aws import ACCOUNT
from tests.standins.sandbox import Sandbox, fresh_account

ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"
# The auth proxy on a loopback address of these tests' own: its port is Pipelines' (29418), and
# another test session on the machine may hold it on 127.0.0.1.
PROXY_HOST = "127.0.0.18"
OIDC_PIPELINE = "pipelines:\n  default:\n    - step:\n        oidc: true\n        script: [make deploy]\n"
PLAIN_PIPELINE = "pipelines:\n  default:\n    - step:\n        script: [make test]\n"
# The AWS operations the run may make: reads only.
AWS_READS = {
    "AssumeRoleWithWebIdentity",
    "GetCallerIdentity",
    "GetAccessKeyInfo",
    "GetAccessKeyLastUsed",
    "ListAccessKeys",
}


@dataclass
class Workspace:
    """A fresh workspace of 13 repositories, listed 5 to a page."""

    sandbox: Sandbox
    name: str = field(default_factory=lambda: f"mig-{uuid.uuid4().hex[:8]}")
    secrets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        bb, tag = self.sandbox.bitbucket, self.name
        bb.repository_pagelen = 5
        # Two keys of the role's account: one used two days ago (held by app and web), one never.
        (self.used, used_secret), (self.idle, idle_secret) = self.sandbox.add_user(f"ci-{tag}", keys=2)
        self.sandbox.aws.age(self.used, 100, last_used_days_ago=2)
        self.sandbox.aws.age(self.idle, 200)
        self.other_account = fresh_account()
        self.foreign = self.sandbox.account_user(self.other_account, f"ext-{tag}")[0]
        self.secrets += [used_secret, idle_secret]

        app = bb.add_repo(tag, "app", ("Production",))
        bb.put(tag, "app", "", "AWS_ACCESS_KEY_ID", self.used, secured=False)
        bb.put(tag, "app", "", "AWS_SECRET_ACCESS_KEY", used_secret, secured=True)
        bb.put(tag, "app", "", "OTHER", "not a key", secured=False)
        production = bb.environment_uuid(tag, "app", "production")
        bb.put(tag, "app", production, "PROD_ACCESS_KEY_ID", self.idle, secured=True)  # secured: id unknown
        bb.put(tag, "app", production, "PROD_SECRET_ACCESS_KEY", idle_secret, secured=True)
        bb.put_file(tag, "app", "bitbucket-pipelines.yml", PLAIN_PIPELINE)
        assert app.mainbranch == "main"

        bb.add_repo(tag, "web", ("Staging", "Production"))
        bb.put(tag, "web", bb.environment_uuid(tag, "web", "staging"), "DEPLOY_KEY", self.used, secured=False)
        bb.put_file(tag, "web", "bitbucket-pipelines.yml", OIDC_PIPELINE)

        bb.add_repo(tag, "partner")
        bb.put(tag, "partner", "", "PARTNER_ACCESS_KEY_ID", self.foreign, secured=False)
        bb.put_file(tag, "partner", "bitbucket-pipelines.yml", "pipelines: [not closed")

        bb.add_repo(tag, "locked").forbidden = True
        bb.add_repo(tag, "empty").mainbranch = None
        for index in range(8):
            bb.add_repo(tag, f"svc-{index:02}")
            if index % 2:
                bb.put_file(tag, f"svc-{index:02}", "bitbucket-pipelines.yml", OIDC_PIPELINE)
        bb.put(tag, "", "", "DEPLOY_ACCESS_KEY_ID", self.idle, secured=False)
        self.token = bb.access_token("repository", "pipeline")
        self.sandbox.aws.forget_requests()  # the set-up's own calls

    def env(self, clone: Path, **extra: str) -> dict[str, str]:
        variables = {
            "ACTION": "check",
            "CHECK_SCOPE": "workspace",
            "AWS_OIDC_ROLE_ARN": ROLE,
            "BITBUCKET_WORKSPACE": self.name,
            "BITBUCKET_API_URL": self.sandbox.bitbucket.api_url,
            "BITBUCKET_ACCESS_TOKEN": self.token,
            "REPORT_DIR": str(clone / "reports"),
        }
        return self.sandbox.step_env(clone, token=self.sandbox.token(), **(variables | extra))

    def check(self, result: Result, clone: Path) -> dict[str, Any]:
        """The run's outcome and reports as this workspace makes them; the report."""
        assert result.returncode == 0, result.output
        assert result.last == (
            f"✔ Workspace {self.name}: 13 repositories, 3 with static keys, 5 key variables, "
            f"5 using OIDC, 1 not read. Report: {clone / 'reports' / 'migration.md'}"
        ), result.output
        report: dict[str, Any] = json.loads((clone / "reports" / "migration.json").read_text())
        markdown = (clone / "reports" / "migration.md").read_text()
        assert report["summary"] == {
            "repositories": 13,
            "with_static_keys": 3,
            "keys": 5,
            "using_oidc": 5,
            "errors": 1,
        }
        repos = {r["repository"].split("/")[1]: r for r in report["repositories"]}
        assert len(repos) == 13 and repos["svc-00"]["keys"] == [] and repos["svc-01"]["uses_oidc"] is True
        app = {k["variable"]: k for k in repos["app"]["keys"]}
        assert set(app) == {"AWS_ACCESS_KEY_ID", "PROD_ACCESS_KEY_ID"}
        assert (
            app["AWS_ACCESS_KEY_ID"].items()
            >= {
                "scope": "repository",
                "environment": None,
                "access_key_id": self.used,
                "secured": False,
                "account_id": ACCOUNT,
                "iam_user": f"ci-{self.name}",
                "status": "Active",
                "error": None,
            }.items()
        )
        assert app["AWS_ACCESS_KEY_ID"]["last_used"].endswith("Z")
        assert (
            app["PROD_ACCESS_KEY_ID"].items()
            >= {
                "scope": "deployment",
                "environment": "Production",
                "access_key_id": None,
                "secured": True,
                "note": "secured, id unknown",
            }.items()
        )
        assert repos["app"]["uses_oidc"] is False and repos["web"]["uses_oidc"] is True
        [web] = repos["web"]["keys"]
        assert (web["scope"], web["environment"], web["access_key_id"]) == (
            "deployment",
            "Staging",
            self.used,
        )
        [partner] = repos["partner"]["keys"]
        assert partner["other_account"] is True and partner["account_id"] == self.other_account
        assert partner["iam_user"] is None and self.other_account in partner["note"]
        assert repos["partner"]["uses_oidc"] is None and repos["partner"]["pipeline_file"].startswith(
            "unreadable"
        )
        assert "403" in repos["locked"]["error"] and repos["locked"]["keys"] == []
        assert repos["empty"]["main_branch"] is None and repos["empty"]["uses_oidc"] is None
        assert repos["svc-00"]["uses_oidc"] is None and repos["svc-00"]["pipeline_file"] == "not found"
        [workspace_key] = report["workspace_keys"]
        assert (
            workspace_key.items()
            >= {
                "scope": "workspace",
                "variable": "DEPLOY_ACCESS_KEY_ID",
                "access_key_id": self.idle,
                "iam_user": f"ci-{self.name}",
                "status": "Active",
                "last_used": None,
            }.items()
        )
        # migration.md opens with the repositories holding a key used in the last 90 days.
        head = markdown.split("## Every repository")[0]
        assert f"| {self.name}/app | AWS_ACCESS_KEY_ID |" in head and f"| {self.name}/web |" in head
        assert "partner" not in head and "DEPLOY_ACCESS_KEY_ID" not in head
        for secret in self.secrets:
            assert secret not in json.dumps(report) and secret not in markdown and secret not in result.output
        assert "not a key" not in json.dumps(report) + markdown
        return report

    def only_reads(self) -> None:
        """Bitbucket saw GETs only; AWS only reads; each key was looked up once."""
        log = [
            e
            for e in self.sandbox.bitbucket.log
            if f"/{self.name}" in e["path"] and "/commit/" not in e["path"]  # the Code Insights report
        ]
        assert log and {e["method"] for e in log} == {"GET"}
        listing = [e for e in log if e["path"] == f"/2.0/repositories/{self.name}"]
        assert len(listing) == 3  # 13 repositories, 5 to a page
        operations = [action for action, _ in self.sandbox.aws.requests]
        assert set(operations) <= AWS_READS, operations
        assert operations.count("GetAccessKeyInfo") == 3  # used, idle, foreign: each once
        assert operations.count("GetAccessKeyLastUsed") == 2  # the role's account's only
        assert operations.count("ListAccessKeys") == 1  # one user


def test_the_workspace_report(sandbox: Sandbox, clone: Path) -> None:
    world = Workspace(sandbox)
    result = run_process(world.env(clone, RETIRE_LEGACY_KEYS="true"), clone, "check-workspace", timeout=120)
    world.check(result, clone)
    world.only_reads()
    assert "RETIRE_LEGACY_KEYS and TRUST_POLICY_FILE are not read with CHECK_SCOPE=workspace" in result.output


def insights(world: Workspace, commit: str) -> dict[str, Any]:
    """The Code Insights report the run posted on ``commit`` of app (where the step ran)."""
    bb = world.sandbox.bitbucket
    report: dict[str, Any] = bb.reports[(world.name, "app", commit, "aws-credentials-pipe-migration")]
    assert report["details"].startswith("13 repositories, 3 with static keys, 5 key variables, 5 using OIDC")
    notes = bb.annotations[(world.name, "app", commit, "aws-credentials-pipe-migration")]
    assert sorted(n["summary"].split(":")[0] for n in notes.values()) == [
        f"{world.name}/app",
        f"{world.name}/web",
    ]
    return report


def in_pipelines(world: Workspace, clone: Path, commit: str) -> dict[str, str]:
    """The step's environment in Pipelines (CI, the auth proxy), the step in app."""
    world.sandbox.bitbucket.start_proxy(host=PROXY_HOST)
    return world.env(
        clone,
        CI="true",
        BITBUCKET_REPO_SLUG="app",
        BITBUCKET_COMMIT=commit,
        BITBUCKET_AUTH_PROXY_HOST=PROXY_HOST,
    )


def test_in_pipelines_the_summary_is_a_code_insights_report(sandbox: Sandbox, clone: Path) -> None:
    world = Workspace(sandbox)
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    result = run_process(in_pipelines(world, clone, commit), clone, "check-workspace-ci", timeout=120)
    world.check(result, clone)
    assert insights(world, commit)["result"] == "FAILED"


def test_a_workspace_that_cannot_be_listed_names_the_scope(sandbox: Sandbox, clone: Path) -> None:
    world = Workspace(sandbox)
    without = sandbox.bitbucket.access_token("pipeline")
    result = run_process(world.env(clone, BITBUCKET_ACCESS_TOKEN=without), clone, "check-workspace-403")
    assert result.failed_with("repository", "read:repository:bitbucket"), result.output
    assert not (clone / "reports" / "migration.json").exists()
    assert sandbox.aws.requests == []
    unknown = run_process(world.env(clone, BITBUCKET_WORKSPACE="no-such-workspace"), clone, "check-ws-404")
    assert unknown.failed_with("BITBUCKET_WORKSPACE", "no-such-workspace"), unknown.output


def test_the_repository_check_is_unchanged_by_default(sandbox: Sandbox, clone: Path) -> None:
    world = Workspace(sandbox)
    env = world.env(clone)
    del env["CHECK_SCOPE"]
    result = run_process(env, clone, "check-repository")
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    assert not (clone / "reports" / "migration.json").exists()
    assert (clone / "reports" / "oidc-check.json").exists()


def test_without_aws_the_report_is_still_written(sandbox: Sandbox, clone: Path) -> None:
    world = Workspace(sandbox)
    env = world.env(clone, AWS_OIDC_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/no-such-role")
    result = run_process(env, clone, "check-workspace-no-aws", timeout=120)
    assert result.returncode == 0 and result.last.startswith(f"✔ Workspace {world.name}: 13 repositories")
    report = json.loads((clone / "reports" / "migration.json").read_text())
    keys = [k for r in report["repositories"] for k in r["keys"] if k["access_key_id"]]
    assert keys and all(k["error"].startswith("not read:") for k in keys)
