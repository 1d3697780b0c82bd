"""Crash safety: interrupt a rotation at every external call, once by killing the process
(SIGKILL, after the call took effect) and once by an API error at that call; for 1, 3 and 10
targets, with and without a store target. After each interruption check the invariants,
then re-run to convergence and check again.

Invariants (../shared/contract.md):
  I1 every target holds a key pair that works;
  I2 the previous key is never deactivated before every target holds the new key;
  I3 a key created and never published (or that failed its test) is gone after the re-run;
  I4 a re-run converges to one current key on every target.
Where there is no store and a kill leaves targets on two keys, the re-run must say what
happened and what recovers it; the harness then recovers as it says (a run that knows one
of the pairs) and checks convergence.

The harness prints its counts. One window is known and counted apart: a kill or an error
between a Bitbucket target's two variable writes (the secret, then the id) leaves that one
target with the old id beside the new secret until the re-run, which rewrites it.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import leakcheck
from tests.integration.test_rotate import World
from tests.runner import ANSI, Result, run_process
from tests.standins.sandbox import WORKSPACE, Sandbox, base_process_env

COUNTS: dict[str, Counter[str]] = {}
SUMMARY: list[str] = []


@dataclass
class Case:
    targets: int
    store: bool

    @property
    def name(self) -> str:
        return f"{self.targets} target{'s' if self.targets > 1 else ''}, {'with' if self.store else 'without'} store"


CASES = [Case(1, True), Case(1, False), Case(3, True), Case(3, False), Case(10, True), Case(10, False)]


def make_world(sandbox: Sandbox, clone: Path, case: Case) -> World:
    world = World(sandbox, clone, repos=max(1, case.targets - 1), store=False)
    repos = [f"{WORKSPACE}/{r}" for r in world.repos]
    world.targets = [f"{WORKSPACE}/{world.repos[0]}@production", *repos][
        : case.targets - (1 if case.store else 0)
    ]
    if case.store:
        world.targets.append(f"secretsmanager:{world.secret_name}")
        key_id, secret = world.initial
        import json

        sandbox.aws.client("secretsmanager").create_secret(
            Name=world.secret_name,
            SecretString=json.dumps({"AccessKeyId": key_id, "SecretAccessKey": secret}),
        )
    world.seed()
    sandbox.aws.age(world.initial[0], 95)  # due for rotation
    return world


def run_interrupted(world: World, at: int, mode: str) -> Result:
    interrupter = world.sandbox.interrupter
    env = base_process_env(world.clone.parent / "home") | world.env(
        PUBLISH_CONCURRENCY="1", ROTATION_LEASE_SECONDS="0"
    )
    interrupter.arm(at, mode)
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "pipe"],
        env=env,
        cwd=world.clone,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    interrupter.pid = proc.pid
    out, _ = proc.communicate(timeout=120)
    interrupter.disarm()
    leakcheck.capture(f"crash-{mode}-{at}", out)
    return Result(proc.returncode, ANSI.sub("", out))


def rerun(world: World, label: str) -> Result:
    return run_process(
        world.env(PUBLISH_CONCURRENCY="1", ROTATION_LEASE_SECONDS="0"), world.clone, label, timeout=120
    )


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


def invariants_at_interruption(world: World, check: Check, where: str) -> None:
    aws = world.sandbox.aws
    held = world.held()
    broken = [t for t, (k, s) in held.items() if k is not None and not aws.works(k, s)]
    keys = aws.keys(world.user)
    old = world.initial[0]
    if broken:
        # The known window: a Bitbucket target whose secret was written and whose id (the commit
        # mark, written second) was not yet: the old id beside the new secret.
        in_window = all(
            not t.startswith("secretsmanager:") and held[t][0] == old and held[t][1] != world.initial[1]
            for t in broken
        )
        if in_window and len(broken) == 1:
            check.counts["I1 window (secret written, id not yet)"] += 1
        else:
            check.expect("I1", False, f"{where}: {broken} hold pairs that do not work")
    else:
        check.expect("I1", True, "")
    if keys.get(old) == "Inactive":
        check.expect(
            "I2",
            len({k for k, _ in held.values()}) == 1 and old not in {k for k, _ in held.values()},
            f"{where}: old key inactive early",
        )
    else:
        check.expect("I2", True, "")


def converge(world: World, check: Check, where: str) -> None:
    aws = world.sandbox.aws
    result = rerun(world, f"rerun-{where}")
    attempts = 1
    while attempts < 3 and result.returncode != 0 and "different keys" not in result.output:
        result = rerun(world, f"rerun-{where}-{attempts}")
        attempts += 1
    if "different keys" in result.output:
        check.counts["no store, mixed: re-run explained it"] += 1
        env = world.env(
            PUBLISH_CONCURRENCY="1",
            ROTATION_LEASE_SECONDS="0",
            AWS_ACCESS_KEY_ID=world.initial[0],
            AWS_SECRET_ACCESS_KEY=world.initial[1],
        )
        del env["AWS_OIDC_ROLE_ARN"], env["BITBUCKET_STEP_OIDC_TOKEN"]
        result = run_process(env, world.clone, f"recover-{where}", timeout=120)
        check.counts["no store, mixed: recovered with a known pair"] += int(result.returncode == 0)
    held = world.held()
    ids = {k for k, _ in held.values()}
    check.expect(
        "I4",
        result.returncode == 0 and len(ids) == 1 and None not in ids and world.all_work(),
        f"{where}: re-run ended {result.last!r}, targets {held}",
    )
    keys = aws.keys(world.user)
    check.expect("I3", set(keys) <= ids | {world.initial[0]}, f"{where}: keys {keys} vs held {ids}")
    check.expect("I1 after re-run", world.all_work(), f"{where}")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_interrupt_at_every_external_call(sandbox: Sandbox, tmp_path: Path, case: Case) -> None:
    from tests.runner import make_clone_dir

    check = Check()
    baseline = make_world(sandbox, make_clone_dir(tmp_path / "baseline"), case)
    first = run_interrupted(baseline, 0, "kill")
    assert first.returncode == 0, first.output
    total = sandbox.interrupter.count
    for mode in ("kill", "error"):
        for at in range(1, total + 1):
            world = make_world(sandbox, make_clone_dir(tmp_path / f"{mode}-{at}"), case)
            result = run_interrupted(world, at, mode)
            where = f"{mode} at call {at} ({sandbox.interrupter.fired})"
            check.counts["interruption points"] += 1
            if mode == "error":
                check.expect(
                    "one ✖ line on an API error",
                    result.returncode == 0 or result.last.startswith("✖ "),
                    f"{where}: {result.last!r}",
                )
            invariants_at_interruption(world, check, where)
            converge(world, check, where)
    COUNTS[case.name] = check.counts
    held = {k: v for k, v in check.counts.items() if k.endswith("held")}
    SUMMARY.append(
        f"crash safety, {case.name}: {total} external calls x 2 modes = {check.counts['interruption points']} interruptions; "
        + ", ".join(
            f"{k.removesuffix(' held')} {v}/{check.counts[k.replace('held', 'checked')]}"
            for k, v in sorted(held.items())
        )
        + "".join(f"; {k}: {v}" for k, v in check.counts.items() if k.startswith(("I1 window", "no store")))
    )
    assert not check.failures, "\n".join(check.failures[:20])
