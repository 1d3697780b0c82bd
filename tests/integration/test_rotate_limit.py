"""IAM's two-key limit (LimitExceeded on CreateAccessKey) ends a run ✔ only when another
rotation's marker names the key that took the slot; a key nobody's marker names (a person created
it while the run worked) ends ✖ naming it. And a run that deleted a key first never says it
changed nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from tests import leakcheck
from tests.integration.test_rotate import World
from tests.runner import ANSI, Result
from tests.standins.aws import Fault
from tests.standins.sandbox import Sandbox, base_process_env


def run_while(world: World, sandbox: Sandbox, clone: Path, label: str, meanwhile: object) -> Result:
    """Run a rotation whose CreateAccessKey waits 3 s at the stand-in; ``meanwhile`` runs as soon
    as that request has arrived (before IAM handles it)."""
    sandbox.aws.inject(Fault("CreateAccessKey", kind="delay", seconds=3))
    seen = sandbox.aws.calls("CreateAccessKey")
    # A short lease: the run waits a heartbeat interval (a third of it) for another run's marker.
    env = base_process_env(clone.parent / "home") | world.env(ROTATION_LEASE_SECONDS="30")
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "pipe"],
        env=env,
        cwd=clone,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def watch() -> None:
        deadline = time.monotonic() + 60
        while sandbox.aws.calls("CreateAccessKey") == seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert callable(meanwhile)
        meanwhile()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, _ = proc.communicate(timeout=120)
    watcher.join(5)
    leakcheck.capture(label, out)
    return Result(proc.returncode, ANSI.sub("", out))


def test_a_key_a_person_created_meanwhile_ends_the_run_failed(sandbox: Sandbox, clone: Path) -> None:
    world = World(sandbox, clone)
    world.seed()
    sandbox.aws.age(world.initial[0], 95)
    made: list[str] = []

    def person() -> None:
        made.append(sandbox.aws.iam.create_access_key(UserName=world.user)["AccessKey"]["AccessKeyId"])

    result = run_while(world, sandbox, clone, "limit-person", person)
    assert made, "the test never created its key"
    assert result.returncode != 0, result.output
    assert result.last.startswith("✖ ") and made[0] in result.last and "LimitExceeded" in result.output
    assert "changed nothing" in result.output and "created a key first" not in result.output
    assert set(world.iam_keys()) == {world.initial[0], made[0]}  # the person's key is left alone
    assert world.marker() is None  # nothing of this run's is in flight
    seeded = [pair for target, pair in world.held().items() if not target.startswith("secretsmanager:")]
    assert seeded and all(pair == world.initial for pair in seeded)  # the targets are untouched


def test_a_run_that_deleted_a_key_first_never_says_it_changed_nothing(sandbox: Sandbox, clone: Path) -> None:
    world = World(sandbox, clone)
    world.seed()
    sandbox.aws.age(world.initial[0], 95)
    spare = sandbox.aws.iam.create_access_key(UserName=world.user)["AccessKey"]["AccessKeyId"]
    sandbox.aws.iam.update_access_key(UserName=world.user, AccessKeyId=spare, Status="Inactive")
    other: list[str] = []

    def another_rotation() -> None:
        key = sandbox.aws.iam.create_access_key(UserName=world.user)["AccessKey"]["AccessKeyId"]
        now = int(time.time())
        world.set_marker(f"key={key} started={now} beat={now} phase=create run=0123abcd")
        other.append(key)

    result = run_while(world, sandbox, clone, "limit-other-run", another_rotation)
    assert other, "the test never created its key"
    assert result.returncode == 0, result.output
    assert result.last.startswith("✔ ") and "created a key first" in result.last, result.last
    assert "changed nothing" not in result.last and f"deleted {spare}" in result.last, result.last
    assert set(world.iam_keys()) == {world.initial[0], other[0]}
    assert world.marker() is not None and f"key={other[0]}" in (world.marker() or "")  # the other run's


def test_a_lost_createaccesskey_answer_strands_no_key(sandbox: Sandbox, clone: Path) -> None:
    """Issue 15 item 2: IAM made the key, its answer was a 500, botocore's standard mode retried
    and met LimitExceeded. The key the first attempt made is this run's own: it is deleted, a new
    one is created, and the rotation ends ✔ with no key whose secret nobody holds."""
    world = World(sandbox, clone)
    world.seed()
    sandbox.aws.age(world.initial[0], 95)
    sandbox.aws.inject(Fault("CreateAccessKey", kind="lost500"))
    result = world.run("lost-create")
    assert result.returncode == 0, result.output
    assert "whose answer was lost" in result.output
    new = world.converged()
    assert world.iam_keys() == {world.initial[0]: "Active", new: "Active"}
    assert world.marker() is None
    # The next rotation is not blocked by a stranded key.
    sandbox.aws.iam.delete_access_key(UserName=world.user, AccessKeyId=world.initial[0])
    assert world.run("after-lost-create", FORCE_ROTATE="true").returncode == 0


def test_a_lost_answer_retried_into_a_second_key_strands_neither(sandbox: Sandbox, clone: Path) -> None:
    """A user with no key yet: the retry of a lost CreateAccessKey succeeds and makes a second
    key. The first one (its secret heard by nobody) is deleted."""
    world = World(sandbox, clone)
    world.seed()
    sandbox.aws.iam.delete_access_key(UserName=world.user, AccessKeyId=world.initial[0])
    sandbox.aws.inject(Fault("CreateAccessKey", kind="lost500"))
    result = world.run("lost-create-empty")
    assert result.returncode == 0, result.output
    assert world.iam_keys() == {world.converged(): "Active"}


def test_at_50_tags_a_key_a_person_created_meanwhile_is_never_taken_for_the_runs(
    sandbox: Sandbox, clone: Path
) -> None:
    """A user at the 50-tag quota: the run's claim in the store stands for its marker. A key a
    person created while the run worked ends it ✖ naming that key (not "another rotation"), and
    the claim is taken off, so the next run never deletes the person's key as the run's own."""
    from tests.integration.test_rotate import _fill_tags

    world = World(sandbox, clone, repos=1, store="default")
    world.seed()
    _fill_tags(world)
    sandbox.aws.age(world.initial[0], 95)
    made: list[str] = []

    def person() -> None:
        made.append(sandbox.aws.iam.create_access_key(UserName=world.user)["AccessKey"]["AccessKeyId"])

    result = run_while(world, sandbox, clone, "limit-person-50-tags", person)
    assert made, "the test never created its key"
    assert result.returncode != 0 and result.last.startswith("✖ ") and made[0] in result.last, result.output
    assert "created a key first" not in result.output
    assert world.claim() is None and set(world.iam_keys()) == {world.initial[0], made[0]}
    after = world.run("limit-person-50-tags-next")
    assert made[0] in world.iam_keys() and "two active keys" in after.last, after.output
