"""The crash harness: a rotation is interrupted at every external call the pipe process makes
(AWS and Bitbucket alike), once by killing the process (SIGKILL, after the call took effect)
and once by an API error at that call; and at every AWS write (CreateAccessKey, CreateSecret,
PutSecretValue, TagUser, UpdateAccessKey and the others in ``WRITES``) once more by a lost
answer: AWS acts, the answer is a 500, and botocore's standard mode retries the call. Cases: the default store (an SSM parameter), an explicit
secretsmanager: store target, and STORE=none, across 1, 3 and 10 targets; a user at IAM's 50-tag
quota (no marker: the run's claim goes to the store); and two runs that only retire a previous
key (a deactivation, a deletion past the recovery window), so that UpdateAccessKey and
DeleteAccessKey are interrupted too. After each
interruption the invariants are checked; then the lease is made to expire (what waiting
ROTATION_LEASE_SECONDS would do), and the re-run must converge.

Invariants (../shared/contract.md):
  I1 every target holds a key pair that works;
  I2 the previous key is never deactivated early (with the grace period: never, here);
  I3 a key created and never published (or that failed its test) is gone after the re-run;
  I4 a re-run converges to one current key on every target;
  I5 no key is stranded: every active key of the user but those it started with (published
     before, held by running steps) is held, with its secret, by a target or the store. Checked
     after the re-run, and after a lost answer's run that ended ✔;
  I6 (the retiring cases) after the re-run a deactivated key is inactive, still there, with its
     day recorded; a key past its recovery window is gone, with its day.
After every re-run the marker and a claim in the store are cleared.
Where STORE=none and an interruption leaves targets on two keys, the re-run must say what
happened and what recovers it; the harness then recovers as it says (a run that knows one of
the pairs) and checks convergence.

One window is known and counted apart from I1, strictly: two variables cannot be written
atomically, so a target may hold the old id beside the new secret when the interrupted call is
exactly that target's secret write (kill: it took effect) or its id write (error), it is the
only broken target, and the marker names the new key in phase publish (at the 50-tag quota,
with no marker: the store's pending key is the new key), so the re-run rewrites it. Any other broken target fails I1.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipe.audit.state import DEACTIVATED_TAG, render_dates
from tests import runner
from tests.integration.test_rotate import World
from tests.runner import Result, run_process
from tests.standins.sandbox import WORKSPACE, Sandbox

COUNTS: dict[str, Counter[str]] = {}
SUMMARY: list[str] = []


@dataclass
class Case:
    targets: int
    store: str  # default | secretsmanager | none
    tags: int = 0  # foreign tags on the user before the run (50: IAM's quota, no marker can be added)
    retire: str = ""  # "": a rotation; deactivate | delete: a run that only retires a previous key

    @property
    def name(self) -> str:
        store = {"default": "default store", "secretsmanager": "secretsmanager store", "none": "STORE=none"}
        name = f"{self.targets} target{'s' if self.targets > 1 else ''}, {store[self.store]}"
        if self.tags:
            name += f", {self.tags} tags"
        if self.retire:
            name += f", {self.retire} a previous key"
        return name


ALL_CASES = [Case(n, store) for store in ("default", "secretsmanager", "none") for n in (1, 3, 10)]
# All nine combinations take about 15 minutes without lost answers (730 interruptions). By
# default the harness runs these four (378 interruptions with the lost answers, 8 to 25 minutes
# on 2 shared cores): every store mode at 3 targets, and the default store at 10.
# CRASH_HARNESS=full runs all nine.
DEFAULT_CASES = [Case(3, "default"), Case(10, "default"), Case(3, "secretsmanager"), Case(3, "none")]
# Beside them, always: a user at IAM's 50-tag quota (the run's marker cannot be added), and two
# runs that only retire a previous key (a deactivation, a deletion past the recovery window), so
# that UpdateAccessKey and DeleteAccessKey are interrupted too: 147 interruptions, about 3 minutes.
EXTRA_CASES = [
    Case(3, "default", tags=50),
    Case(3, "default", retire="deactivate"),
    Case(3, "default", retire="delete"),
]
CASES = (ALL_CASES if os.environ.get("CRASH_HARNESS") == "full" else DEFAULT_CASES) + EXTRA_CASES
# The AWS calls that change something: a lost answer (lost500) is tried at each.
WRITES = frozenset(
    {
        "CreateAccessKey",
        "CreateSecret",
        "PutSecretValue",
        "UpdateSecretVersionStage",
        "PutParameter",
        "TagUser",
        "UntagUser",
        "UpdateAccessKey",
        "DeleteAccessKey",
    }
)


class CrashWorld(World):
    """A World that remembers the keys the user had before the run (published before: running
    steps may hold them) and the previous key a retiring run acts on."""

    started_with: frozenset[str] = frozenset()
    previous: str = ""
    retire: str = ""


def make_world(sandbox: Sandbox, clone: Path, case: Case) -> CrashWorld:
    bitbucket = case.targets - (1 if case.store == "secretsmanager" else 0)
    world = CrashWorld(sandbox, clone, repos=max(1, bitbucket - 1), store=case.store)
    repos = [f"{WORKSPACE}/{r}" for r in world.repos]
    world.targets = [f"{WORKSPACE}/{world.repos[0]}@production", *repos][:bitbucket]
    if case.store == "secretsmanager":
        world.targets.append(f"secretsmanager:{world.secret_name}")
        key_id, secret = world.initial
        sandbox.aws.client("secretsmanager").create_secret(
            Name=world.secret_name,
            SecretString=json.dumps({"AccessKeyId": key_id, "SecretAccessKey": secret}),
        )
    world.seed()
    if case.retire:
        retire_setup(world, case.retire)
    else:
        # Due for rotation, and past DEACTIVATE_AFTER_DAYS: only the grace period and "never in
        # the run that rotates" keep it active (I2).
        sandbox.aws.age(world.initial[0], 105)
    for n in range(case.tags):
        world.set_tag(f"team/{n:02d}", "foreign")
    world.started_with = frozenset(world.iam_keys())
    return world


def retire_setup(world: CrashWorld, retire: str) -> None:
    """The targets hold a 30-day-old key (not due; past ROTATION_GRACE_DAYS), and the user has a
    previous key, never used since: 105 days old and active (deactivate), or 115 days old,
    inactive, deactivated 20 days ago by this pipe (delete: its recovery window is over)."""
    aws = world.sandbox.aws
    aws.age(world.initial[0], 30)
    previous = aws.iam.create_access_key(UserName=world.user)["AccessKey"]["AccessKeyId"]
    world.previous, world.retire = previous, retire
    if retire == "deactivate":
        aws.age(previous, 105)
        return
    aws.age(previous, 115)
    aws.iam.update_access_key(UserName=world.user, AccessKeyId=previous, Status="Inactive")
    day = datetime.fromtimestamp(aws.aws_now(), UTC).date() - timedelta(days=20)
    world.set_tag(DEACTIVATED_TAG, render_dates({previous: day}))


def run_interrupted(world: CrashWorld, at: int, mode: str) -> Result:
    return runner.run_interrupted(
        world.sandbox.interrupter,
        at,
        mode,
        env=world.env(PUBLISH_CONCURRENCY="1"),
        cwd=world.clone,
        label=f"crash-{mode}-{at}",
    )


def rerun(world: CrashWorld, label: str, **extra: str) -> Result:
    world.expire_marker()  # what waiting ROTATION_LEASE_SECONDS would do
    world.expire_claim()
    env = world.env(PUBLISH_CONCURRENCY="1") | extra
    if "AWS_ACCESS_KEY_ID" in extra:
        del env["AWS_OIDC_ROLE_ARN"], env["BITBUCKET_STEP_OIDC_TOKEN"]
    return run_process(env, world.clone, label, timeout=120)


@dataclass
class Check:
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def expect(self, name: str, ok: bool, detail: str) -> None:
        self.counts[f"{name} checked"] += 1
        if ok:
            self.counts[f"{name} held"] += 1
        else:
            self.failures.append(f"{name}: {detail}")


def in_window(world: World, target: str, fired: str, mode: str) -> str:
    """Why ``target``, broken, is not the known window ("" when it is)."""
    if target.startswith("secretsmanager:"):
        return "a store target is never in the window"
    key_id, secret = world.held()[target]
    old_id, old_secret = world.initial
    if key_id != old_id or secret == old_secret:
        return f"it holds {key_id} with a secret that is not its pair's"
    written = "AWS_SECRET_ACCESS_KEY" if mode == "kill" else "AWS_ACCESS_KEY_ID"
    uuid = world.variable_uuid(target, written)
    if not (fired.startswith("Bitbucket PUT ") and fired.endswith("/" + uuid)):
        return f"the interrupted call ({fired}) is not its {written} write"
    new = next((k for k, s in world.sandbox.aws.issued.items() if s == secret), "")
    marker = world.marker() or ""
    if new and f"key={new} " in marker + " " and "phase=publish" in marker:
        return ""
    # A user at the 50-tag quota has no marker: the store's pending key records the rotation,
    # and the re-run resumes it to every target whose id does not name it.
    pending = ((world.default_store() or {}).get("pending") or {}) if world.store_mode == "default" else {}
    if not marker and new and pending.get("AccessKeyId") == new and pending.get("SecretAccessKey") == secret:
        return ""
    return f"the marker ({marker!r}) does not record {new or 'its secret'} in phase publish, nor the store's pending key"


def invariants_at_interruption(world: World, check: Check, where: str, fired: str, mode: str) -> None:
    aws = world.sandbox.aws
    held = world.held()
    broken = [t for t, (k, s) in held.items() if k is not None and not aws.works(k, s)]
    if not broken:
        check.expect("I1", True, "")
    else:
        why = in_window(world, broken[0], fired, mode) if len(broken) == 1 else f"{len(broken)} broken"
        if why:
            check.expect("I1", False, f"{where}: {broken} hold pairs that do not work: {why}")
        else:
            check.counts["I1 window (one target, its write interrupted)"] += 1
    check.expect(
        "I2", world.iam_keys().get(world.initial[0]) != "Inactive", f"{where}: old key inactive early"
    )


def stranded(world: CrashWorld) -> list[str]:
    """Active keys (but those the user started with) whose secret no target and no store holds."""
    aws = world.sandbox.aws
    pairs = [pair for pair in world.held().values() if pair[0]]
    if world.store_mode == "default":
        document = world.default_store() or {}
        for slot in ("current", "pending"):
            raw = document.get(slot) or {}
            pairs.append((raw.get("AccessKeyId"), raw.get("SecretAccessKey")))
    if world.store_mode == "secretsmanager":
        client = aws.client("secretsmanager")
        for version in client.list_secret_version_ids(SecretId=world.secret_name)["Versions"]:
            if version.get("VersionStages"):
                text = client.get_secret_value(SecretId=world.secret_name, VersionId=version["VersionId"])
                try:
                    doc = json.loads(text.get("SecretString") or "{}")
                    pairs.append((doc.get("AccessKeyId"), doc.get("SecretAccessKey")))
                except ValueError:
                    continue
    held = {key for key, secret in pairs if key and aws.works(key, secret)}
    return [
        key
        for key, status in world.iam_keys().items()
        if status == "Active" and key not in world.started_with and key not in held
    ]


def converge(world: CrashWorld, check: Check, where: str) -> None:
    result = rerun(world, f"rerun-{where}")
    attempts = 1
    while attempts < 3 and result.returncode != 0 and "different keys" not in result.output:
        result = rerun(world, f"rerun-{where}-{attempts}")
        attempts += 1
    if attempts > 1:
        check.counts["re-runs needed more than one"] += 1
    if "different keys" in result.output:
        check.counts["STORE=none, mixed: re-run explained it"] += 1
        # What the hint says: the pair of a repository that holds the newest key, so that no
        # working key is left behind (a rollback to the old pair keeps the newer key active).
        aws = world.sandbox.aws
        pair = next(
            (
                (k, s)
                for k, s in world.held().values()
                if k and s and k != world.initial[0] and aws.works(k, s)
            ),
            world.initial,
        )
        result = rerun(world, f"recover-{where}", AWS_ACCESS_KEY_ID=pair[0], AWS_SECRET_ACCESS_KEY=pair[1])
        check.counts["STORE=none, mixed: recovered with a known pair"] += int(result.returncode == 0)
    held = world.held()
    ids = {k for k, _ in held.values()}
    check.expect(
        "I4",
        result.returncode == 0 and len(ids) == 1 and None not in ids and world.all_work(),
        f"{where}: re-run ended {result.last!r}, targets {held}",
    )
    keys = world.iam_keys()
    check.expect("I3", set(keys) <= ids | world.started_with, f"{where}: keys {keys} vs held {ids}")
    check.expect("I1 after re-run", world.all_work(), where)
    check.expect("I2 after re-run", keys.get(world.initial[0]) != "Inactive", f"{where}: old key inactive")
    check.expect("marker cleared", world.marker() is None, f"{where}: marker {world.marker()!r}")
    check.expect("claim cleared", world.claim() is None, f"{where}: the store holds {world.claim()!r}")
    if world.previous:
        retired(world, check, where)
    lost = stranded(world)
    check.expect("I5 after re-run", not lost, f"{where}: {lost} active, their secret held nowhere")


def retired(world: CrashWorld, check: Check, where: str) -> None:
    """I6: the retirement converges and keeps the recovery window: a deactivated previous key is
    inactive, still there, with its day recorded; one past its window is gone."""
    status = world.iam_keys().get(world.previous)
    dates = world.tags().get(DEACTIVATED_TAG)
    if world.retire == "delete":
        ok = status is None and dates is None  # deleted, and its day dropped
    else:
        ok = status == "Inactive" and world.previous in (dates or "")
    check.expect("I6 after re-run", ok, f"{where}: {world.previous} is {status or 'gone'}, tag {dates!r}")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_interrupt_at_every_external_call(sandbox: Sandbox, tmp_path: Path, case: Case) -> None:
    from tests.runner import make_clone_dir

    started = time.monotonic()
    check = Check()
    baseline = make_world(sandbox, make_clone_dir(tmp_path / "baseline"), case)
    first = run_interrupted(baseline, 0, "kill")
    assert first.returncode == 0, first.output
    total = sandbox.interrupter.count
    labels = list(sandbox.interrupter.calls)
    writes = [at for at, label in enumerate(labels, start=1) if label.removeprefix("AWS ") in WRITES]
    for mode, points in (("kill", range(1, total + 1)), ("error", range(1, total + 1)), ("lost500", writes)):
        for at in points:
            world = make_world(sandbox, make_clone_dir(tmp_path / f"{mode}-{at}"), case)
            result = run_interrupted(world, at, mode)
            fired = sandbox.interrupter.fired
            where = f"{mode} at call {at} ({fired})"
            check.counts["interruption points"] += 1
            if mode == "error":
                check.expect(
                    "one ✖ line on an API error",
                    result.returncode == 0 or result.last.startswith("✖ "),
                    f"{where}: {result.last!r}",
                )
            if mode == "lost500":
                check.counts["lost answers"] += 1
                check.expect(
                    "lost answer: ✔ or one ✖ line",
                    result.returncode == 0 or result.last.startswith("✖ "),
                    f"{where}: {result.last!r}",
                )
                if result.returncode == 0:
                    lost = stranded(world)
                    check.expect("I5", not lost, f"{where}: {lost} active, their secret held nowhere")
            invariants_at_interruption(world, check, where, fired, mode)
            converge(world, check, where)
    COUNTS[case.name] = check.counts
    held = {k: v for k, v in check.counts.items() if k.endswith("held")}
    SUMMARY.append(
        f"crash safety, {case.name}: {total} external calls x 2 modes + {len(writes)} lost answers = "
        f"{check.counts['interruption points']} interruptions in {time.monotonic() - started:.0f} s; "
        + ", ".join(
            f"{k.removesuffix(' held')} {v}/{check.counts[k.replace('held', 'checked')]}"
            for k, v in sorted(held.items())
        )
        + "".join(
            f"; {k}: {v}"
            for k, v in check.counts.items()
            if k.startswith(("I1 window", "STORE=none", "re-runs needed"))
        )
    )
    assert not check.failures, "\n".join(check.failures[:20])


def test_the_window_rule_can_fail(sandbox: Sandbox, tmp_path: Path) -> None:
    """The harness's I1 exemption is narrow: a broken target whose interrupted call was not its
    own secret write is not the window."""
    from tests.runner import make_clone_dir

    world = make_world(sandbox, make_clone_dir(tmp_path / "w"), Case(3, "none"))
    target = world.targets[0]
    repo, env_uuid = world.place(target)
    sandbox.bitbucket.put(WORKSPACE, repo, env_uuid, "AWS_SECRET_ACCESS_KEY", "not-the-secret", secured=True)
    assert in_window(world, target, "AWS CreateAccessKey", "kill")
    secret_uuid = world.variable_uuid(target, "AWS_SECRET_ACCESS_KEY")
    assert "marker" in in_window(world, target, f"Bitbucket PUT /x/{secret_uuid}", "kill")


def test_the_stranded_key_rule_can_fail(sandbox: Sandbox, tmp_path: Path) -> None:
    """I5 sees an active key whose secret nobody holds, and not one a target holds."""
    from tests.runner import make_clone_dir

    world = make_world(sandbox, make_clone_dir(tmp_path / "w"), Case(3, "default"))
    assert stranded(world) == []
    key = sandbox.aws.iam.create_access_key(UserName=world.user)["AccessKey"]["AccessKeyId"]
    assert stranded(world) == [key]
