"""ACTION=rotate and ACTION=sync as a process against the stand-ins."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.runner import Result, run_process
from tests.standins.aws import ACCOUNT
from tests.standins.bitbucket import Fault
from tests.standins.sandbox import WORKSPACE, Sandbox

ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"


class World:
    """One rotation setup: an IAM user, repositories with a deployment environment, a store."""

    def __init__(self, sandbox: Sandbox, clone: Path, repos: int = 2, store: bool = True) -> None:
        self.sandbox = sandbox
        self.clone = clone
        tag = uuid.uuid4().hex[:8]
        self.user = f"ci-{tag}"
        self.initial = sandbox.add_user(self.user)[0]
        self.repos = [f"app-{tag}-{i}" for i in range(repos)]
        for repo in self.repos:
            sandbox.bitbucket.add_repo(WORKSPACE, repo, ("Production",))
        self.secret_name = f"ci/{tag}/aws-key"
        self.targets = [f"{WORKSPACE}/{self.repos[0]}", f"{WORKSPACE}/{self.repos[-1]}@production"]
        if store:
            self.targets.insert(0, f"secretsmanager:{self.secret_name}")
        self.bb_token = sandbox.bitbucket_token()
        self.report_dir = clone / "reports"

    def env(self, **extra: str) -> dict[str, str]:
        env = self.sandbox.step_env(
            self.clone,
            token=self.sandbox.token(),
            AWS_OIDC_ROLE_ARN=ROLE,
            ACTION="rotate",
            IAM_USER_NAME=self.user,
            TARGETS=",".join(self.targets),
            BITBUCKET_ACCESS_TOKEN=self.bb_token,
            BITBUCKET_API_URL=self.sandbox.bitbucket.api_url,
            REPORT_DIR=str(self.report_dir),
            VERIFY_TIMEOUT_SECONDS="10",
        )
        env.update(extra)
        return env

    def run(self, label: str, **extra: str) -> Result:
        return run_process(self.env(**extra), self.clone, label, timeout=120)

    def held(self) -> dict[str, tuple[str | None, str | None]]:
        """What each target holds: (key id, secret), read from the stand-ins' storage."""
        out: dict[str, tuple[str | None, str | None]] = {}
        bb = self.sandbox.bitbucket
        for target in self.targets:
            if target.startswith("secretsmanager:"):
                client = self.sandbox.aws.client("secretsmanager")
                try:
                    # The stage explicitly: moto's default version does not follow AWSCURRENT (AWS's does).
                    answer = client.get_secret_value(SecretId=self.secret_name, VersionStage="AWSCURRENT")
                    doc = json.loads(answer["SecretString"])
                    out[target] = (doc["AccessKeyId"], doc["SecretAccessKey"])
                except client.exceptions.ResourceNotFoundException:
                    out[target] = (None, None)
                continue
            repo, env_uuid = self.place(target)
            stored = bb.stored(WORKSPACE, repo, env_uuid)
            out[target] = (
                stored.get("AWS_ACCESS_KEY_ID", {}).get("value"),
                stored.get("AWS_SECRET_ACCESS_KEY", {}).get("value"),
            )
        return out

    def place(self, target: str) -> tuple[str, str]:
        place, _, env_name = target.partition("@")
        if "/" not in place:
            return "", ""  # workspace variables
        repo = place.split("/")[1]
        return repo, (self.sandbox.bitbucket.environment_uuid(WORKSPACE, repo, env_name) if env_name else "")

    def seed(self) -> None:
        """The starting point of most teams: the user's key already in every Bitbucket target."""
        key_id, secret = self.initial
        for target in self.targets:
            if target.startswith("secretsmanager:"):
                continue
            repo, env_uuid = self.place(target)
            self.sandbox.bitbucket.put(WORKSPACE, repo, env_uuid, "AWS_ACCESS_KEY_ID", key_id, secured=False)
            self.sandbox.bitbucket.put(
                WORKSPACE, repo, env_uuid, "AWS_SECRET_ACCESS_KEY", secret, secured=True
            )

    def all_work(self) -> bool:
        return all(self.sandbox.aws.works(key, secret) for key, secret in self.held().values())

    def report(self) -> dict[str, Any]:
        return dict(json.loads((self.report_dir / "rotation.json").read_text()))


@pytest.fixture
def world(sandbox: Sandbox, clone: Path) -> World:
    return World(sandbox, clone)


def test_first_rotation_publishes_a_proven_key_everywhere(world: World) -> None:
    result = world.run("rotate-first")
    assert result.returncode == 0, result.output
    held = world.held()
    keys = {key for key, _ in held.values()}
    assert len(keys) == 1 and None not in keys
    new = keys.pop()
    assert new != world.initial[0] and world.all_work()
    assert result.last.startswith(f"✔ {world.user}: every target holds {new}")
    assert "no target holds a key yet" in result.output
    report = world.report()
    assert report["current_key"] == new and report["state"] == "rotated"
    assert all(entry["after"] == new for entry in report["targets"].values())
    # The previous key is kept (it may be in use); the secret is stored secured.
    assert world.sandbox.aws.keys(world.user) == {world.initial[0]: "Active", new: "Active"}
    bb = world.sandbox.bitbucket
    assert bb.stored(WORKSPACE, world.repos[0])["AWS_SECRET_ACCESS_KEY"]["secured"] is True
    # Nothing is due right after.
    again = world.run("rotate-again")
    assert again.returncode == 0 and "nothing was due" in again.last, again.output


def test_dry_run_changes_nothing(world: World) -> None:
    aws, bb = world.sandbox.aws, world.sandbox.bitbucket
    aws.forget_requests()
    bb.reset()
    result = world.run("rotate-dry", DRY_RUN="true")
    assert result.returncode == 0 and result.last.startswith("✔ DRY_RUN"), result.output
    assert "create a new key" in result.output
    reads = {
        "AssumeRoleWithWebIdentity",
        "GetCallerIdentity",
        "ListAccessKeys",
        "GetAccessKeyLastUsed",
        "ListUserTags",
        "GetSecretValue",
    }
    assert {action for action, _ in aws.requests} <= reads
    assert {method for method, _ in bb.requests} == {"GET"}
    assert world.held() == dict.fromkeys(world.targets, (None, None))
    assert world.report()["dry_run"] is True


def test_two_active_keys_block_with_a_clear_message(world: World) -> None:
    assert world.run("rotate-1").returncode == 0
    result = world.run("rotate-forced", FORCE_ROTATE="true")
    assert result.failed_with("two active keys", "Deactivate the key no target uses"), result.output
    assert world.all_work()


def test_age_policy_deactivates_then_deletes_the_previous_key(world: World) -> None:
    old = world.initial[0]
    assert world.run("rotate-1").returncode == 0
    aws = world.sandbox.aws
    aws.age(old, 101)
    result = world.run("rotate-deactivate")
    assert result.returncode == 0, result.output
    assert aws.keys(world.user)[old] == "Inactive" and world.all_work()
    aws.age(old, 111)
    result = world.run("rotate-delete")
    assert result.returncode == 0, result.output
    assert old not in aws.keys(world.user)


def test_a_previous_key_still_in_use_is_kept_with_a_warning(world: World) -> None:
    old = world.initial[0]
    assert world.run("rotate-1").returncode == 0
    world.sandbox.aws.age(old, 101, last_used_days_ago=0)
    result = world.run("rotate-in-use")
    assert result.returncode == 0, result.output
    assert "kept active" in result.output
    assert world.sandbox.aws.keys(world.user)[old] == "Active"


def test_an_old_current_key_is_rotated_and_kept_until_it_ages_out(world: World) -> None:
    assert world.run("rotate-1").returncode == 0
    current = world.report()["current_key"]
    aws = world.sandbox.aws
    aws.iam.delete_access_key(UserName=world.user, AccessKeyId=world.initial[0])
    aws.age(current, 95)
    result = world.run("rotate-due")
    assert result.returncode == 0, result.output
    assert "95 days old" in result.output
    new = world.report()["current_key"]
    assert new != current and world.all_work()
    assert aws.keys(world.user) == {
        current: "Active",
        new: "Active",
    }  # never retired by the run that replaced it


def test_iam_eventual_consistency_is_waited_for(world: World) -> None:
    world.sandbox.aws.new_key_delay = 2.0
    result = world.run("rotate-slow-iam")
    assert result.returncode == 0, result.output
    assert world.all_work()


def test_a_key_that_never_works_is_deleted_and_nothing_is_published(world: World) -> None:
    world.sandbox.aws.new_key_delay = 60.0
    result = world.run("rotate-broken-key", VERIFY_TIMEOUT_SECONDS="5")
    assert result.failed_with("VERIFY_TIMEOUT_SECONDS", "deleted"), result.output
    assert set(world.sandbox.aws.keys(world.user)) == {world.initial[0]}
    bitbucket_targets = [t for t in world.targets if not t.startswith("secretsmanager:")]
    assert all(world.held()[t] == (None, None) for t in bitbucket_targets)


def test_missing_write_scope_names_it_and_a_rerun_converges(world: World, sandbox: Sandbox) -> None:
    reader = sandbox.bitbucket_token("pipeline")
    result = world.run("rotate-scope", BITBUCKET_ACCESS_TOKEN=reader)
    assert result.failed_with("pipeline:variable"), result.output
    fixed = world.run("rotate-after-scope")
    assert fixed.returncode == 0, fixed.output
    assert world.all_work() and len({k for k, _ in world.held().values()}) == 1
    assert len(sandbox.aws.keys(world.user)) == 2


def test_an_interrupted_publish_resumes_from_the_store(world: World) -> None:
    world.seed()
    world.targets.remove(f"secretsmanager:{world.secret_name}")
    world.targets.append(f"secretsmanager:{world.secret_name}")  # the store need not be first
    bb = world.sandbox.bitbucket
    bb.inject(Fault(method="PUT", path=world.repos[-1], kind="status", status=500, times=1000))
    bb.inject(Fault(method="POST", path=world.repos[-1], kind="status", status=500, times=1000))
    failed = world.run("rotate-partial", PUBLISH_CONCURRENCY="1", FORCE_ROTATE="true")
    assert failed.failed_with("did not take the new key", "resumes"), failed.output
    held = world.held()
    stuck = f"{WORKSPACE}/{world.repos[-1]}@production"
    assert held[stuck][0] == world.initial[0]  # still the old pair, which still works
    assert all(
        world.sandbox.aws.works(k, s) for t, (k, s) in held.items() if not t.startswith("secretsmanager:")
    )
    bb.reset()
    resumed = world.run("rotate-resume")
    assert resumed.returncode == 0, resumed.output
    assert "resume" in resumed.output
    assert world.all_work() and len({k for k, _ in world.held().values()}) == 1


def test_sync_publishes_the_store_key(world: World, sandbox: Sandbox) -> None:
    assert world.run("rotate-1").returncode == 0
    current = world.report()["current_key"]
    extra = f"app-{uuid.uuid4().hex[:8]}"
    sandbox.bitbucket.add_repo(WORKSPACE, extra)
    result = world.run(
        "sync", ACTION="sync", SOURCE=f"secretsmanager:{world.secret_name}", TARGETS=f"{WORKSPACE}/{extra}"
    )
    assert result.returncode == 0, result.output
    stored = sandbox.bitbucket.stored(WORKSPACE, extra)
    assert stored["AWS_ACCESS_KEY_ID"]["value"] == current
    assert sandbox.aws.works(current, stored["AWS_SECRET_ACCESS_KEY"]["value"])


def test_targets_as_a_yaml_list(world: World) -> None:
    env = world.env()
    del env["TARGETS"]
    env["TARGETS_COUNT"] = str(len(world.targets))
    env.update({f"TARGETS_{i}": t for i, t in enumerate(world.targets)})
    result = run_process(env, world.clone, "rotate-yaml-list", timeout=120)
    assert result.returncode == 0, result.output
    assert world.all_work()


def test_self_service_rotates_a_persons_own_key_into_a_profile(sandbox: Sandbox, clone: Path) -> None:
    user = f"dev-{uuid.uuid4().hex[:6]}"
    key_id, secret = sandbox.add_user(user)[0]
    credentials = clone.parent / "home" / ".aws" / "credentials"
    credentials.parent.mkdir(parents=True)
    credentials.write_text(
        f"[other]\naws_access_key_id = AKIAOTHER\n\n[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
    )
    env = sandbox.step_env(
        clone,
        ACTION="rotate",
        TARGETS="profile:default",
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        FORCE_ROTATE="true",
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        REPORT_DIR=str(clone / "reports"),
        VERIFY_TIMEOUT_SECONDS="10",
    )
    result = run_process(env, clone, "self-service", timeout=120)
    assert result.returncode == 0, result.output
    assert "Self-service" in result.output
    import configparser

    parser = configparser.ConfigParser()
    parser.read(credentials)
    new_id, new_secret = parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]
    assert new_id != key_id and sandbox.aws.works(new_id, new_secret)
    assert parser["other"]["aws_access_key_id"] == "AKIAOTHER"
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    assert sandbox.aws.keys(user) == {key_id: "Active", new_id: "Active"}  # the old key ages out later
    assert secret not in result.output and new_secret not in result.output


def test_ssm_store(sandbox: Sandbox, clone: Path) -> None:
    world = World(sandbox, clone, repos=1, store=False)
    parameter = f"/ci/{uuid.uuid4().hex[:6]}/aws-key"
    world.targets.append(f"ssm:{parameter}")
    result = world.run("rotate-ssm")
    assert result.returncode == 0, result.output
    value = json.loads(
        sandbox.aws.client("ssm").get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    )
    assert value["pending"] is None
    assert sandbox.aws.works(value["current"]["AccessKeyId"], value["current"]["SecretAccessKey"])


def test_mixed_keys_without_a_store_are_explained_then_rolled_back_with_a_known_pair(
    sandbox: Sandbox, clone: Path
) -> None:
    world = World(sandbox, clone, repos=2, store=False)
    world.targets = [f"{WORKSPACE}/{world.repos[0]}", f"{WORKSPACE}/{world.repos[1]}"]
    world.seed()
    bb = sandbox.bitbucket
    # The second repository refuses the secret: its id is put back, so it stays on the old pair.
    bb.inject(Fault(method="PUT", path=world.repos[1], kind="status", status=500, times=1000))
    failed = world.run("mixed-1", FORCE_ROTATE="true", PUBLISH_CONCURRENCY="1")
    assert failed.returncode == 1, failed.output
    bb.reset()
    held = world.held()
    assert held[world.targets[0]][0] != held[world.targets[1]][0]
    assert world.all_work()  # mixed, but every target works: both keys are still active
    blocked = world.run("mixed-2")
    assert blocked.failed_with("different keys", "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"), blocked.output
    assert world.all_work()
    # A run that knows one of the pairs (the rotation step of the second repository) rolls back.
    old_id, old_secret = world.initial
    env = world.env(AWS_ACCESS_KEY_ID=old_id, AWS_SECRET_ACCESS_KEY=old_secret)
    del env["AWS_OIDC_ROLE_ARN"], env["BITBUCKET_STEP_OIDC_TOKEN"]
    rolled = run_process(env, world.clone, "mixed-3", timeout=120)
    assert rolled.returncode == 0, rolled.output
    assert {k for k, _ in world.held().values()} == {old_id} and world.all_work()
    assert set(sandbox.aws.keys(world.user)) == {old_id}
