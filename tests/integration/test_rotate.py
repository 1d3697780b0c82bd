"""ACTION=rotate and ACTION=sync as a process against the stand-ins."""

from __future__ import annotations

import configparser
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipe.audit.state import DEACTIVATED_TAG
from tests.runner import Result, run_process
from tests.standins.aws import ACCOUNT
from tests.standins.bitbucket import Fault
from tests.standins.sandbox import WORKSPACE, Sandbox

ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"


MARKER_TAG = "aws-credentials-pipe/rotation"
DEFAULT_STORE_PREFIX = "/bitbucket-pipes/aws-credentials-pipe/"
# A Retry-After past the Bitbucket client's 60 s cap: the write fails at once, every time.
REFUSE = {"kind": "status", "status": 429, "retry_after": "120", "times": 1000}


class World:
    """One rotation setup: an IAM user, repositories with a deployment environment, a store.

    ``store``: ``secretsmanager`` (a secretsmanager: target, the store), ``default`` (no store
    target: the default SSM parameter) or ``none`` (STORE=none)."""

    def __init__(
        self, sandbox: Sandbox, clone: Path, repos: int = 2, store: bool | str = True, user: str = ""
    ) -> None:
        self.sandbox = sandbox
        self.clone = clone
        tag = uuid.uuid4().hex[:8]
        self.user = user or f"ci-{tag}"
        self.initial = sandbox.add_user(self.user)[0]
        mode = "secretsmanager" if store is True else ("default" if store is False else str(store))
        self.store_mode = mode
        self.repos = [f"app-{tag}-{i}" for i in range(repos)]
        for repo in self.repos:
            sandbox.bitbucket.add_repo(WORKSPACE, repo, ("Production",))
        self.secret_name = f"ci/{tag}/aws-key"
        self.targets = [f"{WORKSPACE}/{self.repos[0]}", f"{WORKSPACE}/{self.repos[-1]}@production"]
        if mode == "secretsmanager":
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
        if self.store_mode == "none":
            env["STORE"] = "none"
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

    # -- helpers that read and write AWS behind the pipe's back (moto directly: not counted,
    # never interrupted) ------------------------------------------------------------------
    def default_store(self) -> dict[str, Any] | None:
        """The default SSM store's document, or None when the parameter does not exist."""
        ssm = self.sandbox.aws.client("ssm")
        try:
            answer = ssm.get_parameter(Name=DEFAULT_STORE_PREFIX + self.user, WithDecryption=True)
        except ssm.exceptions.ParameterNotFound:
            return None
        return dict(json.loads(answer["Parameter"]["Value"]))

    def marker(self) -> str | None:
        tags = self.sandbox.aws.iam.list_user_tags(UserName=self.user)["Tags"]
        return next((t["Value"] for t in tags if t["Key"] == MARKER_TAG), None)

    def tags(self) -> dict[str, str]:
        tags = self.sandbox.aws.iam.list_user_tags(UserName=self.user)["Tags"]
        return {t["Key"]: t["Value"] for t in tags}

    def set_tag(self, key: str, value: str) -> None:
        self.sandbox.aws.iam.tag_user(UserName=self.user, Tags=[{"Key": key, "Value": value}])

    def set_marker(self, value: str) -> None:
        self.sandbox.aws.iam.tag_user(UserName=self.user, Tags=[{"Key": MARKER_TAG, "Value": value}])

    def expire_marker(self) -> bool:
        """What waiting ROTATION_LEASE_SECONDS would do: the marker's heartbeat is made old."""
        value = self.marker()
        if value is None:
            return False
        self.set_marker(re.sub(r"\bbeat=\d+", "beat=1", value))
        return True

    def claim(self) -> str | None:
        """The claim a rotation of a user at the 50-tag quota wrote to its store in place of a
        pending key (the marker's text), or None."""
        if self.store_mode == "default":
            pending = (self.default_store() or {}).get("pending") or {}
            return pending.get("RotationClaim") if isinstance(pending, dict) else None
        if self.store_mode == "secretsmanager":
            client = self.sandbox.aws.client("secretsmanager")
            try:
                answer = client.get_secret_value(SecretId=self.secret_name, VersionStage="AWSPENDING")
            except client.exceptions.ResourceNotFoundException:
                return None
            try:
                document = json.loads(answer.get("SecretString") or "{}")
            except ValueError:
                return None
            return document.get("RotationClaim") if isinstance(document, dict) else None
        return None

    def expire_claim(self) -> bool:
        """What waiting ROTATION_LEASE_SECONDS would do to a claim in the store: its heartbeat
        is made old (the default store's; a secret's claim is rewritten as a new version)."""
        value = self.claim()
        if value is None:
            return False
        old = re.sub(r"\bbeat=\d+", "beat=1", value)
        if self.store_mode == "default":
            document = self.default_store() or {}
            document["pending"] = {"RotationClaim": old}
            self.sandbox.aws.client("ssm").put_parameter(
                Name=DEFAULT_STORE_PREFIX + self.user,
                Value=json.dumps(document),
                Type="SecureString",
                Overwrite=True,
            )
        else:
            self.sandbox.aws.client("secretsmanager").put_secret_value(
                SecretId=self.secret_name,
                SecretString=json.dumps({"RotationClaim": old}),
                VersionStages=["AWSPENDING"],
            )
        return True

    def variable_uuid(self, target: str, name: str) -> str:
        repo, env_uuid = self.place(target)
        return str(self.sandbox.bitbucket.stored(WORKSPACE, repo, env_uuid)[name]["uuid"])

    def iam_keys(self) -> dict[str, str]:
        return self.sandbox.aws.keys(self.user)

    def converged(self) -> str:
        """The one key every target holds (and that works), or an assertion error."""
        held = self.held()
        ids = {key for key, _ in held.values()}
        assert len(ids) == 1 and None not in ids, held
        assert self.all_work(), held
        return str(ids.pop())


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


def test_age_policy_deactivates_then_deletes_the_previous_key_after_the_grace_period(world: World) -> None:
    old = world.initial[0]
    assert world.run("rotate-1").returncode == 0
    current = world.report()["current_key"]
    aws = world.sandbox.aws
    aws.age(old, 101)
    # The current key is minutes old: IAM's last-used date lags by hours and running pipelines
    # still hold the previous key, so it is not judged "unused" yet.
    early = world.run("rotate-grace")
    assert early.returncode == 0, early.output
    assert "ROTATION_GRACE_DAYS=7" in early.output and world.iam_keys()[old] == "Active"
    aws.age(current, 6.9)
    assert world.run("rotate-grace-6.9").returncode == 0 and world.iam_keys()[old] == "Active"
    aws.age(current, 7.1)
    result = world.run("rotate-deactivate")
    assert result.returncode == 0, result.output
    assert world.iam_keys()[old] == "Inactive" and world.all_work()
    today = datetime.now(UTC).date()
    assert world.tags().get(DEACTIVATED_TAG) == f"{old}={today.isoformat()}"  # the recovery window's start
    # Past DELETE_AFTER_DAYS by age, but deactivated today: kept for the recovery window
    # (DELETE_AFTER_DAYS - DEACTIVATE_AFTER_DAYS = 10 days), so it can still be reactivated.
    aws.age(old, 111)
    kept = world.run("rotate-recovery-window")
    assert kept.returncode == 0, kept.output
    assert world.iam_keys()[old] == "Inactive" and "inactive 10 days" in kept.output, kept.output
    world.set_tag(DEACTIVATED_TAG, f"{old}={(today - timedelta(days=11)).isoformat()}")
    result = world.run("rotate-delete")
    assert result.returncode == 0, result.output
    assert old not in world.iam_keys()
    assert DEACTIVATED_TAG not in world.tags()  # no date is kept for a key that is gone


def test_a_shorter_grace_period_is_honoured(world: World) -> None:
    old = world.initial[0]
    assert world.run("rotate-1").returncode == 0
    world.sandbox.aws.age(old, 101)
    world.sandbox.aws.age(world.report()["current_key"], 1.5)
    result = world.run("rotate-grace-1", ROTATION_GRACE_DAYS="1")
    assert result.returncode == 0, result.output
    assert world.iam_keys()[old] == "Inactive"


def test_a_previous_key_still_in_use_is_kept_with_a_warning(world: World) -> None:
    old = world.initial[0]
    assert world.run("rotate-1").returncode == 0
    world.sandbox.aws.age(world.report()["current_key"], 8)
    world.sandbox.aws.age(old, 101, last_used_days_ago=0)
    result = world.run("rotate-in-use")
    assert result.returncode == 0, result.output
    assert "kept active" in result.output
    assert world.iam_keys()[old] == "Active"


def test_a_run_that_publishes_never_deactivates(world: World) -> None:
    """A previous key past DEACTIVATE_AFTER_DAYS and unused, a current key past the grace period:
    a run that publishes (here: the current key to a target new in TARGETS) deactivates
    nothing; the next run does."""
    old = world.initial[0]
    assert world.run("rotate-1").returncode == 0
    current = world.report()["current_key"]
    aws = world.sandbox.aws
    aws.age(old, 101)
    aws.age(current, 8)
    extra = f"app-{uuid.uuid4().hex[:8]}"
    world.sandbox.bitbucket.add_repo(WORKSPACE, extra)
    world.targets.append(f"{WORKSPACE}/{extra}")
    result = world.run("rotate-new-target")
    assert result.returncode == 0, result.output
    assert "never deactivated by a run that publishes" in result.output
    assert world.converged() == current and world.iam_keys()[old] == "Active"
    after = world.run("rotate-after-publish")
    assert after.returncode == 0, after.output
    assert world.iam_keys()[old] == "Inactive"


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
    sandbox.aws.forget_requests()
    result = world.run("rotate-scope", BITBUCKET_ACCESS_TOKEN=reader)
    assert result.failed_with("pipeline:variable", world.targets[1], "no key was created"), result.output
    # The probe found it before anything changed: no key, no marker.
    assert set(world.iam_keys()) == {world.initial[0]} and world.marker() is None
    assert sandbox.aws.calls("CreateAccessKey") == 0 and sandbox.aws.calls("TagUser") == 0
    fixed = world.run("rotate-after-scope")
    assert fixed.returncode == 0, fixed.output
    assert world.all_work() and len({k for k, _ in world.held().values()}) == 1
    assert len(sandbox.aws.keys(world.user)) == 2


def test_an_interrupted_publish_resumes_from_the_store(world: World) -> None:
    world.seed()
    world.targets.remove(f"secretsmanager:{world.secret_name}")
    world.targets.append(f"secretsmanager:{world.secret_name}")  # the store need not be first
    bb = world.sandbox.bitbucket
    stuck = f"{WORKSPACE}/{world.repos[-1]}@production"
    secret_uuid = world.variable_uuid(stuck, "AWS_SECRET_ACCESS_KEY")
    bb.inject(Fault(method="PUT", path=re.escape(secret_uuid), **REFUSE))  # type: ignore[arg-type]
    failed = world.run("rotate-partial", PUBLISH_CONCURRENCY="1", FORCE_ROTATE="true")
    assert failed.failed_with("did not take", stuck, "resumes"), failed.output
    held = world.held()
    assert held[stuck][0] == world.initial[0]  # still the old pair, which still works
    assert all(
        world.sandbox.aws.works(k, s) for t, (k, s) in held.items() if not t.startswith("secretsmanager:")
    )
    bb.reset()
    resumed = world.run("rotate-resume")
    assert resumed.returncode == 0, resumed.output
    assert "resume" in resumed.output
    world.converged()


def test_a_target_that_fails_every_write_stops_the_run_before_any_change(world: World) -> None:
    """The acceptance suite's scenario: one target answers 500 to every write. The probe finds
    it before a key is created; once the fault is cleared a re-run converges."""
    world.seed()
    bb, aws = world.sandbox.bitbucket, world.sandbox.aws
    broken = f"{WORKSPACE}/{world.repos[-1]}@production"
    for method in ("PUT", "POST"):
        bb.inject(Fault(method=method, path=world.repos[-1], kind="status", status=500, times=1000))
    before = world.held()
    aws.forget_requests()
    failed = world.run("rotate-500", FORCE_ROTATE="true")
    assert failed.failed_with(broken, "500", "no key was created"), failed.output
    assert world.held() == before and set(world.iam_keys()) == {world.initial[0]} and world.marker() is None
    assert aws.calls("CreateAccessKey") == 0
    bb.reset()
    fixed = world.run("rotate-500-cleared", FORCE_ROTATE="true")
    assert fixed.returncode == 0, fixed.output
    new = world.converged()
    assert new != world.initial[0] and set(world.iam_keys()) == {world.initial[0], new}


@pytest.mark.parametrize("store", ["default", "none"])
@pytest.mark.parametrize("failing", ["secret", "id"])
def test_a_write_that_fails_after_the_probe_is_repaired_by_the_rerun(
    sandbox: Sandbox, clone: Path, store: str, failing: str
) -> None:
    """The probe passes, then the real secret write (or only the id write, which leaves the old
    id beside the new secret) fails for good. The run ends ✖ naming the target; after the fault
    is cleared the re-run rewrites both variables and converges, with the default store (from
    the store's pending key) and with STORE=none (a new key, written to every target)."""
    world = World(sandbox, clone, repos=2, store=store)
    world.seed()
    bb = sandbox.bitbucket
    first = world.targets[0]  # published first, and the run stops there
    name = "AWS_SECRET_ACCESS_KEY" if failing == "secret" else "AWS_ACCESS_KEY_ID"
    path = re.escape(world.variable_uuid(first, name))
    if failing == "id":
        bb.inject(Fault(method="PUT", path=path, kind="delay", seconds=0.0, times=1))  # the probe passes
    bb.inject(Fault(method="PUT", path=path, **REFUSE))  # type: ignore[arg-type]
    failed = world.run(f"fail-{failing}-{store}", FORCE_ROTATE="true", PUBLISH_CONCURRENCY="1")
    assert failed.failed_with("did not take", first, "429"), failed.output
    held = world.held()
    old_id, old_secret = world.initial
    if failing == "id":
        # The case: the old id beside the new secret. That pair does not work.
        assert held[first][0] == old_id and held[first][1] != old_secret
        assert not sandbox.aws.works(*held[first])
    marker = world.marker()
    assert marker is not None and "phase=publish" in marker, marker
    new = next(k for k in world.iam_keys() if k != old_id)
    if store == "default":
        document = world.default_store()
        assert document is not None and document["pending"]["AccessKeyId"] == new
    bb.reset()
    rerun = world.run(f"fail-{failing}-{store}-rerun", PUBLISH_CONCURRENCY="1")
    assert rerun.returncode == 0, rerun.output
    final = world.converged()
    if store == "default":
        assert final == new and "resume" in rerun.output
        document = world.default_store()
        assert document is not None and document["current"]["AccessKeyId"] == new
    else:
        assert final not in (new, old_id) and "every target gets a new key" in rerun.output
        assert new not in world.iam_keys()
    assert world.marker() is None
    # And the next run has nothing left to do.
    again = world.run(f"fail-{failing}-{store}-again")
    assert again.returncode == 0 and "nothing was due" in again.last, again.output


@pytest.mark.parametrize("action", ["rotate", "sync"])
def test_a_secured_key_id_variable_stops_the_run_with_nothing_changed(
    world: World, sandbox: Sandbox, action: str
) -> None:
    """Bitbucket never returns a secured variable's value: a target whose key id variable is
    secured cannot say which key it holds (nor read a new id back). The run stops before any key
    is created or any variable written, naming the target and ACCESS_KEY_ID_VARIABLE."""
    if action == "sync":
        assert world.run("rotate-first").returncode == 0
    world.seed()
    secured = world.targets[-1]
    repo, env_uuid = world.place(secured)
    sandbox.bitbucket.put(WORKSPACE, repo, env_uuid, "AWS_ACCESS_KEY_ID", world.initial[0], secured=True)
    before, keys = world.held(), world.iam_keys()
    sandbox.bitbucket.reset()
    extra = (
        {"SOURCE": f"secretsmanager:{world.secret_name}"} if action == "sync" else {"FORCE_ROTATE": "true"}
    )
    failed = world.run(f"secured-id-{action}", ACTION=action, **extra)
    assert failed.failed_with(secured, "AWS_ACCESS_KEY_ID", "ACCESS_KEY_ID_VARIABLE", "unsecured"), (
        failed.output
    )
    assert world.held() == before and world.iam_keys() == keys and world.marker() is None
    assert {method for method, _ in sandbox.bitbucket.requests} == {"GET"}
    assert sandbox.bitbucket.stored(WORKSPACE, repo, env_uuid)["AWS_ACCESS_KEY_ID"]["secured"] is True


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


def test_sync_does_not_publish_a_pending_key_that_aws_made_current(world: World, sandbox: Sandbox) -> None:
    """A rotation stored its new key as pending in a new secret, then stopped. On AWS the
    secret's first version is AWSCURRENT as well as AWSPENDING (PutSecretValue), but the key
    was never proven nor published: sync must not take it for the current key."""
    key, secret = world.initial
    client = sandbox.aws.client("secretsmanager")
    client.create_secret(Name=world.secret_name)
    client.put_secret_value(
        SecretId=world.secret_name,
        SecretString=json.dumps({"AccessKeyId": key, "SecretAccessKey": secret}),
        VersionStages=["AWSPENDING"],
        ClientRequestToken=f"aws-credentials-pipe-{key}",
    )
    extra = f"app-{uuid.uuid4().hex[:8]}"
    sandbox.bitbucket.add_repo(WORKSPACE, extra)
    result = world.run(
        "sync-pending",
        ACTION="sync",
        SOURCE=f"secretsmanager:{world.secret_name}",
        TARGETS=f"{WORKSPACE}/{extra}",
    )
    assert result.failed_with(f"secretsmanager:{world.secret_name}", key, "pending", "ACTION=rotate"), (
        result.output
    )
    assert sandbox.bitbucket.stored(WORKSPACE, extra) == {}


@pytest.mark.parametrize("live", [True, False])
def test_sync_changes_nothing_while_a_rotation_is_live(world: World, sandbox: Sandbox, live: bool) -> None:
    """A live marker on the key's user: a rotation is replacing the key, and sync would publish
    the key being replaced. Sync ends ✔ changing nothing; a dead marker does not stop it."""
    assert world.run("rotate-1").returncode == 0
    current = world.report()["current_key"]
    extra = f"app-{uuid.uuid4().hex[:8]}"
    sandbox.bitbucket.add_repo(WORKSPACE, extra)
    beat = int(time.time()) - (0 if live else 1000)
    world.set_marker(f"started={beat} beat={beat} phase=create run=0123abcd")
    (world.report_dir / "rotation.json").unlink()
    result = world.run(
        "sync-live" if live else "sync-dead",
        ACTION="sync",
        SOURCE=f"secretsmanager:{world.secret_name}",
        TARGETS=f"{WORKSPACE}/{extra}",
        ROTATION_LEASE_SECONDS="300",
    )
    assert result.returncode == 0, result.output
    stored = sandbox.bitbucket.stored(WORKSPACE, extra)
    report = world.report()
    if live:
        assert result.last == (
            f"✔ A rotation of {world.user} is in progress; sync changed nothing "
            "(re-run it once that rotation ends)."
        )
        assert stored == {} and report["state"] == "busy" and report["user"] == world.user
    else:
        assert stored["AWS_ACCESS_KEY_ID"]["value"] == current and report["state"] == "sync"
    assert world.marker() is not None  # sync never writes the marker


def test_a_sync_that_fails_to_publish_still_writes_its_report(world: World, sandbox: Sandbox) -> None:
    assert world.run("rotate-1").returncode == 0
    extra = f"app-{uuid.uuid4().hex[:8]}"
    sandbox.bitbucket.add_repo(WORKSPACE, extra)
    (world.report_dir / "rotation.json").unlink()
    sandbox.bitbucket.inject(Fault(method="POST", path=extra, **REFUSE))  # type: ignore[arg-type]
    failed = world.run(
        "sync-fails",
        ACTION="sync",
        SOURCE=f"secretsmanager:{world.secret_name}",
        TARGETS=f"{WORKSPACE}/{extra}",
    )
    assert failed.failed_with("did not take", extra, "429"), failed.output
    report = world.report()
    assert report["state"] == "failed" and report["targets"] == {f"{WORKSPACE}/{extra}": {"before": None}}


def test_targets_as_a_yaml_list(world: World) -> None:
    env = world.env()
    del env["TARGETS"]
    env["TARGETS_COUNT"] = str(len(world.targets))
    env.update({f"TARGETS_{i}": t for i, t in enumerate(world.targets)})
    result = run_process(env, world.clone, "rotate-yaml-list", timeout=120)
    assert result.returncode == 0, result.output
    assert world.all_work()


def _self_service_env(
    sandbox: Sandbox, clone: Path, credentials: Path, pair: tuple[str, str], **extra: str
) -> dict[str, str]:
    return sandbox.step_env(
        clone,
        ACTION="rotate",
        TARGETS="profile:default",
        AWS_ACCESS_KEY_ID=pair[0],
        AWS_SECRET_ACCESS_KEY=pair[1],
        FORCE_ROTATE="true",
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        REPORT_DIR=str(clone / "reports"),
        VERIFY_TIMEOUT_SECONDS="10",
        **extra,
    )


def _profile(credentials: Path, name: str = "default") -> tuple[str, str]:
    parser = configparser.ConfigParser()
    parser.read(credentials)
    return parser[name]["aws_access_key_id"], parser[name]["aws_secret_access_key"]


def test_self_service_rotates_a_persons_own_key_into_a_profile_again_and_again(
    sandbox: Sandbox, clone: Path
) -> None:
    """Seed 002: a person rotates their own key, as often as they like. Once the new key works
    and sits in the profile (and the store), the old key is deleted; every AWS call after the
    new key's 3 successful GetCallerIdentity calls in a row is signed by the new key."""
    user = f"dev-{uuid.uuid4().hex[:6]}"
    pair = sandbox.add_user(user)[0]
    credentials = clone.parent / "home" / ".aws" / "credentials"
    credentials.parent.mkdir(parents=True)
    credentials.write_text(
        f"[other]\naws_access_key_id = AKIAOTHER\n\n[default]\naws_access_key_id = {pair[0]}\n"
        f"aws_secret_access_key = {pair[1]}\n"
    )
    aws = sandbox.aws
    for turn in (1, 2):
        old = pair
        aws.forget_requests()
        result = run_process(
            _self_service_env(sandbox, clone, credentials, old), clone, f"self-service-{turn}"
        )
        assert result.returncode == 0, result.output
        assert "Self-service" in result.output
        pair = _profile(credentials)
        assert pair[0] != old[0] and aws.works(*pair)
        assert aws.keys(user) == {pair[0]: "Active"}  # only the new key is left
        requests = list(aws.requests)
        first = requests.index(("GetCallerIdentity", pair[0]))
        late = [action for action, key in requests[first:] if key == old[0]]
        assert late == [], late
        # The store (the default SSM parameter) was written with the new key too.
        assert any(action == "PutParameter" and key == pair[0] for action, key in requests[first:])
        assert old[1] not in result.output and pair[1] not in result.output
    parser = configparser.ConfigParser()
    parser.read(credentials)
    assert parser["other"]["aws_access_key_id"] == "AKIAOTHER"
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"


def test_self_service_keep_old_key(sandbox: Sandbox, clone: Path) -> None:
    user = f"dev-{uuid.uuid4().hex[:6]}"
    pair = sandbox.add_user(user)[0]
    credentials = clone.parent / "home" / ".aws" / "credentials"
    credentials.parent.mkdir(parents=True)
    credentials.write_text(f"[default]\naws_access_key_id = {pair[0]}\naws_secret_access_key = {pair[1]}\n")
    env = _self_service_env(sandbox, clone, credentials, pair, KEEP_OLD_KEY="true", STORE="none")
    result = run_process(env, clone, "self-service-keep")
    assert result.returncode == 0, result.output
    new = _profile(credentials)
    assert sandbox.aws.keys(user) == {pair[0]: "Active", new[0]: "Active"}
    assert "KEEP_OLD_KEY=true" in result.output and "STORE=none" in result.output


def test_ssm_store(sandbox: Sandbox, clone: Path) -> None:
    world = World(sandbox, clone, repos=1, store="default")
    parameter = f"/ci/{uuid.uuid4().hex[:6]}/aws-key"
    world.targets.append(f"ssm:{parameter}")
    result = world.run("rotate-ssm")
    assert result.returncode == 0, result.output
    value = json.loads(
        sandbox.aws.client("ssm").get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    )
    assert value["pending"] is None
    assert sandbox.aws.works(value["current"]["AccessKeyId"], value["current"]["SecretAccessKey"])
    # No STORE_KMS_KEY_ID: the account's default key.
    assert _parameter_key(sandbox, parameter) == "alias/aws/ssm"


def _parameter_key(sandbox: Sandbox, name: str) -> str:
    """The KMS key SSM says encrypts the parameter (DescribeParameters)."""
    filters = [{"Key": "Name", "Values": [name]}]
    return str(
        sandbox.aws.client("ssm").describe_parameters(ParameterFilters=filters)["Parameters"][0]["KeyId"]
    )


def test_ssm_store_kms_key_id_encrypts_every_parameter_the_run_writes(sandbox: Sandbox, clone: Path) -> None:
    """STORE_KMS_KEY_ID: the store (the default one) and an ssm: target are written with that
    key, on their creation and on every overwrite (without it SSM would re-encrypt them with
    aws/ssm, as the stand-in does); then ACTION=sync writes its ssm: target with it too."""
    world = World(sandbox, clone, repos=1, store="default")
    kms = sandbox.aws.client("kms")
    key = kms.create_key(Description="aws-credentials-pipe store")["KeyMetadata"]
    alias = f"alias/ci-{uuid.uuid4().hex[:6]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    target = f"/ci/{uuid.uuid4().hex[:6]}/aws-key"
    world.targets.append(f"ssm:{target}")
    store = DEFAULT_STORE_PREFIX + world.user
    result = world.run("rotate-ssm-kms", STORE=f"ssm:{store}", STORE_KMS_KEY_ID=alias)
    assert result.returncode == 0, result.output
    assert f"store ssm:{store} (STORE), encrypted with {alias})" in result.output
    assert _parameter_key(sandbox, store) == alias
    assert _parameter_key(sandbox, target) == alias
    ssm = sandbox.aws.client("ssm")
    held = world.default_store()
    assert held is not None and held["pending"] is None
    new = held["current"]
    assert new["AccessKeyId"] != world.initial[0] and sandbox.aws.works(
        new["AccessKeyId"], new["SecretAccessKey"]
    )
    published = json.loads(ssm.get_parameter(Name=target, WithDecryption=True)["Parameter"]["Value"])
    assert published["current"] == new
    copy = f"/ci/{uuid.uuid4().hex[:6]}/copy"
    synced = world.run(
        "sync-ssm-kms",
        ACTION="sync",
        SOURCE=f"ssm:{target}",
        TARGETS=f"ssm:{copy}",
        STORE_KMS_KEY_ID=key["Arn"],
    )
    assert synced.returncode == 0, synced.output
    assert _parameter_key(sandbox, copy) == key["Arn"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("alias/no such key", ("STORE_KMS_KEY_ID", "alias/<name>")),
        ("alias/no-such-key", ("the store ssm:", "no key was created")),
    ],
)
def test_a_kms_key_the_store_cannot_use_stops_the_run_before_any_change(
    sandbox: Sandbox, clone: Path, value: str, words: tuple[str, ...]
) -> None:
    """Not a KeyId (the first pass), or no key SSM knows (InvalidKeyId, on the store's probe)."""
    world = World(sandbox, clone, repos=1, store="default")
    result = world.run("store-kms-refused", STORE_KMS_KEY_ID=value)
    assert result.failed_with(*words), result.output
    assert set(world.iam_keys()) == {world.initial[0]} and world.marker() is None


def test_mixed_keys_without_a_store_are_explained_then_rolled_back_with_a_known_pair(
    sandbox: Sandbox, clone: Path
) -> None:
    world = World(sandbox, clone, repos=2, store="none")
    world.targets = [f"{WORKSPACE}/{world.repos[0]}", f"{WORKSPACE}/{world.repos[1]}"]
    world.seed()
    bb = sandbox.bitbucket
    # The second repository refuses the secret: it stays on the old pair.
    secret_uuid = world.variable_uuid(world.targets[1], "AWS_SECRET_ACCESS_KEY")
    bb.inject(Fault(method="PUT", path=re.escape(secret_uuid), **REFUSE))  # type: ignore[arg-type]
    failed = world.run("mixed-1", FORCE_ROTATE="true", PUBLISH_CONCURRENCY="1")
    assert failed.failed_with("did not take", world.targets[1]), failed.output
    assert "STORE=none" in failed.output
    bb.reset()
    held = world.held()
    assert held[world.targets[0]][0] != held[world.targets[1]][0]
    assert world.all_work()  # mixed, but every target works: both keys are still active
    blocked = world.run("mixed-2")
    assert blocked.failed_with("different keys", "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"), blocked.output
    assert f"{world.targets[1]} may hold its secret beside another id" in blocked.last
    assert world.all_work()
    # A run that knows one of the pairs (the rotation step of the second repository) rolls back,
    # rewriting both variables of every target.
    old_id, old_secret = world.initial
    env = world.env(AWS_ACCESS_KEY_ID=old_id, AWS_SECRET_ACCESS_KEY=old_secret)
    del env["AWS_OIDC_ROLE_ARN"], env["BITBUCKET_STEP_OIDC_TOKEN"]
    rolled = run_process(env, world.clone, "mixed-3", timeout=120)
    assert rolled.returncode == 0, rolled.output
    assert world.converged() == old_id
    # The new key was published (the first repository held it with its secret): steps running
    # with it keep working, so the rollback keeps it active and says so.
    new_id = held[world.targets[0]][0]
    assert world.iam_keys() == {old_id: "Active", new_id: "Active"}
    assert f"{new_id} was published ({world.targets[0]} held it)" in rolled.output, rolled.output


def test_default_store_is_an_ssm_parameter_named_after_the_user(sandbox: Sandbox, clone: Path) -> None:
    """No secretsmanager:/ssm: target: the store is the SSM SecureString
    /bitbucket-pipes/aws-credentials-pipe/<user>, with what SSM does not allow in a name escaped."""
    tag = uuid.uuid4().hex[:6]
    world = World(sandbox, clone, repos=1, store="default", user=f"ci+{tag}@acme_x")
    parameter = f"{DEFAULT_STORE_PREFIX}ci_2B{tag}_40acme__x"
    result = world.run("default-store")
    assert result.returncode == 0, result.output
    assert f"store ssm:{parameter} (the default" in result.output
    new = world.converged()
    ssm = sandbox.aws.client("ssm")
    answer = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]
    assert answer["Type"] == "SecureString"
    document = json.loads(answer["Value"])
    assert document["pending"] is None and document["current"]["AccessKeyId"] == new
    assert sandbox.aws.works(document["current"]["AccessKeyId"], document["current"]["SecretAccessKey"])
    assert world.report()["store"] == f"ssm:{parameter}"


def test_store_none_warns_and_writes_no_store(sandbox: Sandbox, clone: Path) -> None:
    world = World(sandbox, clone, repos=1, store="none")
    result = world.run("store-none")
    assert result.returncode == 0, result.output
    assert "STORE=none" in result.output and "may not be resumable" in result.output
    assert not any(action.endswith("Parameter") for action, _ in sandbox.aws.requests)
    world.converged()
    assert world.default_store() is None


def test_an_explicit_store_outside_the_targets(sandbox: Sandbox, clone: Path) -> None:
    world = World(sandbox, clone, repos=1, store="default")
    parameter = f"/ci/{uuid.uuid4().hex[:6]}/store"
    result = world.run("explicit-store", STORE=f"ssm:{parameter}")
    assert result.returncode == 0, result.output
    assert f"store ssm:{parameter} (STORE)" in result.output
    new = world.converged()
    value = sandbox.aws.client("ssm").get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    assert json.loads(value)["current"]["AccessKeyId"] == new
    assert world.default_store() is None


def test_a_store_that_cannot_be_written_stops_the_run_before_any_change(
    sandbox: Sandbox, clone: Path
) -> None:
    """A store the run's role may not write (SSM answers AccessDenied): the probe says so before
    a key is created. (A name SSM reserves, /aws..., is refused before any call: see
    test_an_ssm_name_ssm_refuses_is_refused_before_any_change.)"""
    from tests.standins.aws import Fault as AwsFault

    world = World(sandbox, clone, repos=1, store="default")
    denied = (
        "User: arn:aws:sts::123456789012:assumed-role/deploy/x is not authorized to perform: ssm:PutParameter"
    )
    sandbox.aws.inject(AwsFault("PutParameter", code="AccessDeniedException", message=denied, times=10))
    result = world.run("store-refused", STORE="ssm:/ci/credentials-pipe/x")
    assert result.failed_with("the store ssm:/ci/credentials-pipe/x", "no key was created"), result.output
    assert set(world.iam_keys()) == {world.initial[0]} and world.marker() is None


def test_a_resumed_key_is_proven_before_it_is_published(sandbox: Sandbox, clone: Path) -> None:
    """A dead run left a pending key in the store; the key no longer works (deactivated since).
    The re-run proves it with GetCallerIdentity first, and publishes nothing."""
    world = World(sandbox, clone, repos=1, store="default")
    world.seed()
    iam = sandbox.aws.iam
    pending = iam.create_access_key(UserName=world.user)["AccessKey"]
    sandbox.aws.issued[pending["AccessKeyId"]] = pending["SecretAccessKey"]
    pair = {"AccessKeyId": pending["AccessKeyId"], "SecretAccessKey": pending["SecretAccessKey"]}
    sandbox.aws.client("ssm").put_parameter(
        Name=DEFAULT_STORE_PREFIX + world.user,
        Type="SecureString",
        Value=json.dumps({"current": None, "pending": pair}),
    )
    started = int(time.time()) - 3600
    world.set_marker(f"key={pending['AccessKeyId']} started={started} beat={started} phase=create")
    iam.update_access_key(UserName=world.user, AccessKeyId=pending["AccessKeyId"], Status="Inactive")
    before = world.held()
    result = world.run("resume-broken", VERIFY_TIMEOUT_SECONDS="5")
    assert result.failed_with(f"The stored key {pending['AccessKeyId']}", "nothing was published"), (
        result.output
    )
    assert world.held() == before and world.all_work()


def test_a_lease_of_zero_is_refused(world: World, sandbox: Sandbox) -> None:
    sandbox.aws.forget_requests()
    result = world.run("lease-0", ROTATION_LEASE_SECONDS="0")
    assert result.failed_with("ROTATION_LEASE_SECONDS", "30 to 3600"), result.output
    assert sandbox.aws.requests == [] and sandbox.bitbucket.requests == []


def test_the_marker_holds_only_what_iam_accepts_in_a_tag_value(world: World) -> None:
    """Stop a run while it publishes and look at the marker it left: plain words, no JSON."""
    world.seed()
    target = world.targets[-1]
    path = re.escape(world.variable_uuid(target, "AWS_SECRET_ACCESS_KEY"))
    world.sandbox.bitbucket.inject(Fault(method="PUT", path=path, **REFUSE))  # type: ignore[arg-type]
    failed = world.run("marker-left", FORCE_ROTATE="true", PUBLISH_CONCURRENCY="1")
    assert failed.returncode == 1, failed.output
    value = world.marker()
    assert value is not None and re.fullmatch(r"[\w .:/=+\-@]{1,256}", value), value
    assert re.fullmatch(r"key=AKIA\w+ started=\d+ beat=0 phase=publish run=[0-9a-f]+", value), value


def test_a_rollback_to_a_key_the_secret_held_before_promotes_its_version(
    sandbox: Sandbox, clone: Path
) -> None:
    """Issue 15 item 3: publish P, then R, then P again (STORE=none, re-run with the old pair: the
    documented recovery). P's version exists with the same value, so Secrets Manager ignores the
    put and AWSPENDING does not move; the run must still promote P's own version."""
    world = World(sandbox, clone, repos=1, store="none")
    world.targets = [f"secretsmanager:{world.secret_name}", f"{WORKSPACE}/{world.repos[0]}"]
    world.seed()
    first = world.run("publish-p", FORCE_ROTATE="true")
    assert first.returncode == 0, first.output
    p = world.held()[world.targets[1]]
    sandbox.iam.delete_access_key(UserName=world.user, AccessKeyId=world.initial[0])
    second = world.run("publish-r", FORCE_ROTATE="true")
    assert second.returncode == 0, second.output
    r_id = world.converged()
    # The repository refused R (put back on P by hand here): mixed, and R's secret is not known.
    repo, env_uuid = world.place(world.targets[1])
    sandbox.bitbucket.put(WORKSPACE, repo, env_uuid, "AWS_ACCESS_KEY_ID", str(p[0]), secured=False)
    sandbox.bitbucket.put(WORKSPACE, repo, env_uuid, "AWS_SECRET_ACCESS_KEY", str(p[1]), secured=True)
    env = world.env(AWS_ACCESS_KEY_ID=str(p[0]), AWS_SECRET_ACCESS_KEY=str(p[1]))
    del env["AWS_OIDC_ROLE_ARN"], env["BITBUCKET_STEP_OIDC_TOKEN"]
    rolled = run_process(env, world.clone, "publish-p-again", timeout=120)
    assert rolled.returncode == 0, rolled.output
    assert world.converged() == p[0]
    versions = sandbox.aws.client("secretsmanager").list_secret_version_ids(SecretId=world.secret_name)
    labels = {v["VersionId"]: v.get("VersionStages", []) for v in versions["Versions"]}
    assert labels[f"aws-credentials-pipe-{p[0]}"] == ["AWSCURRENT"], labels
    assert not any("AWSPENDING" in stages for stages in labels.values()), labels
    assert r_id in world.iam_keys()


def test_a_secret_with_no_value_is_probed_without_createsecret(sandbox: Sandbox, clone: Path) -> None:
    """Issue 15 item 7: the store secret exists, with no string AWSCURRENT (created empty), and
    the role has no secretsmanager:CreateSecret (templates/rotation.yaml grants none): IAM answers
    CreateSecret AccessDenied, not ResourceExists. The probe must not stop the run there."""
    from tests.standins.aws import Fault as AwsFault

    world = World(sandbox, clone, repos=1)
    world.seed()
    sandbox.aws.client("secretsmanager").create_secret(Name=world.secret_name)
    denied = "User: arn:aws:sts::123456789012:assumed-role/deploy/x is not authorized to perform: secretsmanager:CreateSecret"
    sandbox.aws.inject(AwsFault("CreateSecret", code="AccessDeniedException", message=denied, times=10))
    result = world.run("rotate-empty-secret", FORCE_ROTATE="true")
    assert result.returncode == 0, result.output
    assert world.converged() != world.initial[0]


def test_self_service_switches_only_after_three_successes_in_a_row(sandbox: Sandbox, clone: Path) -> None:
    """Issue 15 item 8: the new key passes GetCallerIdentity once, then IAM refuses it (eventual
    consistency). The run must not have switched to it: the new key is deleted with the old one,
    and the run ends with one typed ✖ line, not a raw ClientError."""
    from tests.standins.aws import Fault as AwsFault

    user = f"dev-{uuid.uuid4().hex[:6]}"
    pair = sandbox.add_user(user)[0]
    credentials = clone.parent / "home" / ".aws" / "credentials"
    credentials.parent.mkdir(parents=True)
    credentials.write_text(f"[default]\naws_access_key_id = {pair[0]}\naws_secret_access_key = {pair[1]}\n")
    # Every call signed by another key than the old one (the new key's), after its first, fails.
    sandbox.aws.inject(
        AwsFault(
            "*",
            code="InvalidClientTokenId",
            message="The security token included in the request is invalid.",
            times=1000,
            skip=1,
            unless_key=pair[0],
        )
    )
    env = _self_service_env(sandbox, clone, credentials, pair, STORE="none") | {"VERIFY_TIMEOUT_SECONDS": "5"}
    result = run_process(env, clone, "self-service-flapping")
    assert result.returncode == 1, result.output
    assert result.last.startswith("✖ ") and "did not pass GetCallerIdentity 3 times in a row" in result.last
    assert result.output.count("✖") == 1, result.output
    assert sandbox.aws.keys(user) == {pair[0]: "Active"}  # the new key is gone, the old one kept
    assert _profile(credentials) == pair


@pytest.mark.parametrize("name", ["/ci/a:b", "/aws/ci/key", "aws-ci-key", "/SSM/ci", "ssmkey", "ci/key"])
def test_an_ssm_name_ssm_refuses_is_refused_before_any_change(world: World, name: str) -> None:
    """Issue 15 item 9: `:`, a name starting with aws or ssm (any case), a path without its
    leading slash: SSM refuses them (tests/standins/servicemodel.py), so the pipe does first."""
    world.targets.append(f"ssm:{name}")
    world.sandbox.aws.forget_requests()
    result = world.run("ssm-name")
    assert result.failed_with("not a valid ssm name", f"ssm:{name}"), result.output
    assert world.sandbox.aws.requests == []


def test_iams_concurrent_modification_is_retried(world: World) -> None:
    """Issue 15 item 9: IAM answers ConcurrentModification when two requests change one user at
    once (AWS's advice: retry); the standard mode does not retry it, the pipe does."""
    from tests.standins.aws import Fault as AwsFault

    world.seed()
    world.sandbox.aws.inject(AwsFault("TagUser", code="ConcurrentModification", message="Rate exceeded"))
    world.sandbox.aws.forget_requests()
    result = world.run("concurrent-modification", FORCE_ROTATE="true")
    assert result.returncode == 0, result.output
    assert world.converged() != world.initial[0]


def _fill_tags(world: World, count: int = 50) -> None:
    """The user's tags up to IAM's quota, none of them the pipe's."""
    tags = [{"Key": f"team/{i}", "Value": "x"} for i in range(count - len(world.tags()))]
    for start in range(0, len(tags), 20):
        world.sandbox.aws.iam.tag_user(UserName=world.user, Tags=tags[start : start + 20])
    assert len(world.tags()) == count


def test_a_user_with_50_tags_is_still_rotated(sandbox: Sandbox, clone: Path) -> None:
    """Issue 15 item 1: a user at IAM's 50-tag quota cannot take the marker; with a store the run
    rotates all the same (its claim, then its pending key, in the store record the rotation) and
    says so."""
    world = World(sandbox, clone, repos=1, store="default")
    world.seed()
    _fill_tags(world)
    result = world.run("rotate-50-tags", FORCE_ROTATE="true")
    assert result.returncode == 0, result.output
    assert "has 50 tags (IAM's quota): this run works without its marker" in result.output
    new = world.converged()
    assert new != world.initial[0] and world.marker() is None
    assert any("worked without the marker" in line for line in world.report()["actions"])
    assert any("not tagged aws-credentials-pipe/managed" in line for line in world.report()["actions"])
    assert (world.default_store() or {})["current"]["AccessKeyId"] == new


def test_a_user_with_50_tags_and_no_store_is_refused_before_any_change(sandbox: Sandbox, clone: Path) -> None:
    world = World(sandbox, clone, repos=1, store="none")
    world.seed()
    _fill_tags(world)
    result = world.run("rotate-50-tags-none", FORCE_ROTATE="true")
    assert result.failed_with("50 tags", "Remove one tag"), result.output
    assert world.iam_keys() == {world.initial[0]: "Active"}


def test_at_50_tags_a_deactivation_keeps_its_recovery_window(world: World) -> None:
    """Issue 15 item 1: the day of a deactivation cannot be recorded at the 50-tag quota. The key
    is deactivated all the same, and its recovery window counts from its own dates (the earliest
    day it can have been deactivated), not from nothing."""
    old = world.initial[0]
    assert world.run("rotate-1").returncode == 0
    current = world.report()["current_key"]
    aws = world.sandbox.aws
    _fill_tags(world)
    aws.age(old, 101)
    aws.age(current, 7.1)
    result = world.run("rotate-deactivate-50-tags")
    assert result.returncode == 0, result.output
    assert world.iam_keys()[old] == "Inactive" and world.all_work(), result.output
    assert "the day of the deactivation cannot be recorded" in result.output
    assert any("did not record the day of deactivation" in line for line in world.report()["actions"])
    # Past DELETE_AFTER_DAYS by age, deactivated about today: kept for the recovery window.
    aws.age(old, 111)
    kept = world.run("rotate-recovery-window-50-tags")
    assert kept.returncode == 0, kept.output
    assert world.iam_keys()[old] == "Inactive" and "no day recorded" in kept.output, kept.output
    aws.age(current, 7.1 + 11)  # eleven days on: the window has passed
    aws.age(old, 122)
    gone = world.run("rotate-delete-50-tags")
    assert gone.returncode == 0, gone.output
    assert old not in world.iam_keys()


@pytest.mark.parametrize("action", ["UpdateSecretVersionStage", "PutSecretValue", "CreateSecret"])
def test_a_lost_secrets_manager_answer_converges_in_the_same_run(
    sandbox: Sandbox, clone: Path, action: str
) -> None:
    """Issue 15 item 2: Secrets Manager acts, the answer is a 500, the SDK retries: the retry
    meets what the first attempt did, and the run still ends ✔ with the key promoted."""
    from tests.standins.aws import Fault as AwsFault

    world = World(sandbox, clone, repos=1)
    world.seed()
    sandbox.aws.inject(AwsFault(action, kind="lost500"))
    result = world.run(f"lost-{action}", FORCE_ROTATE="true")
    assert result.returncode == 0, result.output
    assert sandbox.aws.calls(action) >= 2  # the fault fired, and the SDK retried
    assert world.converged() != world.initial[0]


@pytest.mark.parametrize("store", ["default", "secretsmanager"])
def test_at_50_tags_a_run_killed_before_storing_its_key_strands_none(
    sandbox: Sandbox, clone: Path, tmp_path: Path, store: str
) -> None:
    """Issue 15 items 1 and 2: at the 50-tag quota the run has no marker. Killed between
    CreateAccessKey's answer and the store's pending write, it leaves its claim in the store
    (written before the key was created): while the claim is live the next run is busy; once it
    is dead, the next run deletes the key the dead run made (its secret is known nowhere) and
    rotates. Without the claim that key stayed active and blocked every run ("two active keys")."""
    from tests.runner import make_clone_dir, run_interrupted

    probe = World(sandbox, make_clone_dir(tmp_path / "probe"), repos=1, store=store)
    probe.seed()
    _fill_tags(probe)
    assert (
        run_interrupted(
            sandbox.interrupter,
            0,
            "kill",
            env=probe.env(FORCE_ROTATE="true"),
            cwd=probe.clone,
            label="claim-probe",
        ).returncode
        == 0
    )
    at = sandbox.interrupter.calls.index("AWS CreateAccessKey") + 1
    world = World(sandbox, clone, repos=1, store=store)
    world.seed()
    _fill_tags(world)
    killed = run_interrupted(
        sandbox.interrupter,
        at,
        "kill",
        env=world.env(FORCE_ROTATE="true"),
        cwd=world.clone,
        label="claim-killed",
    )
    assert killed.returncode != 0 and sandbox.interrupter.fired == "AWS CreateAccessKey", killed.output
    made = [key for key in world.iam_keys() if key != world.initial[0]]
    claim = world.claim()
    assert len(made) == 1 and claim and "phase=create" in claim and "key=" not in claim, (made, claim)
    busy = world.run("claim-busy")
    assert busy.returncode == 0 and "in progress" in busy.last, busy.output
    assert world.expire_claim()  # what waiting ROTATION_LEASE_SECONDS would do
    result = world.run("claim-rerun", FORCE_ROTATE="true")
    assert result.returncode == 0, result.output
    assert f"Deleted {made[0]}" in result.output, result.output
    new = world.converged()
    assert set(world.iam_keys()) == {world.initial[0], new} and world.claim() is None


def test_sync_never_takes_a_rotation_claim_for_a_key(world: World, sandbox: Sandbox) -> None:
    """A store whose pending slot holds a rotation's claim (a user at the 50-tag quota, no
    marker): while the claim is live sync changes nothing, as for a live marker; a store that
    holds only a claim has no proven key."""
    world.store_mode, world.targets = "default", world.targets[1:]
    assert world.run("rotate-claim-sync").returncode == 0
    extra = f"app-{uuid.uuid4().hex[:8]}"
    sandbox.bitbucket.add_repo(WORKSPACE, extra)
    now = int(time.time())
    ssm = sandbox.aws.client("ssm")
    name = DEFAULT_STORE_PREFIX + world.user
    document = world.default_store() or {}
    document["pending"] = {"RotationClaim": f"started={now} beat={now} phase=create run=0123abcd"}
    ssm.put_parameter(Name=name, Value=json.dumps(document), Type="SecureString", Overwrite=True)
    sync = {"ACTION": "sync", "SOURCE": f"ssm:{name}", "TARGETS": f"{WORKSPACE}/{extra}"}
    live = world.run("sync-claim-live", **sync)
    assert live.returncode == 0 and "is in progress; sync changed nothing" in live.last, live.output
    assert sandbox.bitbucket.stored(WORKSPACE, extra) == {}
    document["current"] = None
    ssm.put_parameter(Name=name, Value=json.dumps(document), Type="SecureString", Overwrite=True)
    only = world.run("sync-claim-only", **sync)
    assert only.failed_with(f"ssm:{name}", "no proven key yet", "claimed"), only.output
    assert sandbox.bitbucket.stored(WORKSPACE, extra) == {}
