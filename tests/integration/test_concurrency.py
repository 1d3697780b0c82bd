"""Two, then five, rotations of the same user start at once: at most one creates a key, the
others end cleanly (exit 0), and every target ends on one working key. And a rotation slowed
past its lease keeps its lock (the heartbeat), so a run started meanwhile stops cleanly."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import leakcheck
from tests.integration.test_rotate import World
from tests.runner import ANSI
from tests.standins.bitbucket import Fault
from tests.standins.sandbox import Sandbox, base_process_env

FIGURES: list[str] = []


@pytest.mark.parametrize("runs", [2, 5])
def test_simultaneous_rotations(sandbox: Sandbox, clone: Path, runs: int) -> None:
    world = World(sandbox, clone)
    world.seed()
    sandbox.aws.age(world.initial[0], 95)
    env = base_process_env(clone.parent / "home") | world.env(VERIFY_TIMEOUT_SECONDS="20")
    procs = [
        subprocess.Popen(
            [sys.executable, "-I", "-m", "pipe"],
            env=env,
            cwd=clone,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(runs)
    ]
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        leakcheck.capture(f"concurrent-{runs}", out)
        outputs.append((proc.returncode, ANSI.sub("", out)))
    created = [out for _, out in outputs if re.search(r"Created AKIA", out)]
    assert len(created) <= 1, outputs
    assert all(code == 0 for code, _ in outputs), outputs
    clean = [out for _, out in outputs if "changed nothing" in out or "nothing was due" in out]
    assert len(clean) >= runs - 1, outputs
    held = world.held()
    assert len({k for k, _ in held.values()}) == 1 and world.all_work()
    assert len(sandbox.aws.keys(world.user)) <= 2
    endings = sorted(out.strip().splitlines()[-1][:80] for _, out in outputs)
    FIGURES.append(
        f"{runs} at once: {len(created)} created a key, {len(clean)} ended cleanly: " + " | ".join(endings)
    )


def _start(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-I", "-m", "pipe"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_publish_slower_than_the_lease_keeps_its_lock(sandbox: Sandbox, clone: Path) -> None:
    """Bitbucket makes the first run wait (429, Retry-After) for longer than
    ROTATION_LEASE_SECONDS. The run's heartbeat keeps its marker fresh, so a second run started
    meanwhile stops cleanly as "in progress" instead of taking over; the first run finishes, and
    nothing writes the marker after it was cleared."""
    lease = 30
    world = World(sandbox, clone)
    world.seed()
    sandbox.aws.age(world.initial[0], 95)
    target = world.targets[1]
    secret = re.escape(world.variable_uuid(target, "AWS_SECRET_ACCESS_KEY"))
    sandbox.bitbucket.inject(
        Fault(method="PUT", path=secret, kind="status", status=429, retry_after="12", times=3)
    )
    env = base_process_env(clone.parent / "home") | world.env(ROTATION_LEASE_SECONDS=str(lease))
    first = _start(env, clone)
    deadline = time.monotonic() + 60
    while not any(e["status"] == 429 for e in list(sandbox.bitbucket.log) if "status" in e):
        assert time.monotonic() < deadline and first.poll() is None, "the first run never reached the 429s"
        time.sleep(0.2)
    time.sleep(lease + 3)  # the marker was last written (phase=publish) more than a lease ago
    assert first.poll() is None, "the first run finished too early for the test to mean anything"
    second = _start(env, clone)
    out2, _ = second.communicate(timeout=120)
    out1, _ = first.communicate(timeout=120)
    for label, out in (("slow-first", out1), ("slow-second", out2)):
        leakcheck.capture(label, out)
    out1, out2 = ANSI.sub("", out1), ANSI.sub("", out2)
    assert second.returncode == 0 and "in progress; this run changed nothing" in out2, out2
    assert first.returncode == 0, out1
    assert "Created AKIA" not in out2
    held = world.held()
    assert len({k for k, _ in held.values()}) == 1 and world.all_work()
    assert world.marker() is None
    time.sleep(lease / 3 + 1)  # a heartbeat thread that outlived the run would write by now
    assert world.marker() is None
    FIGURES.append(
        f"publish slowed to over {lease} s (the lease): the run that started meanwhile ended "
        f"{out2.strip().splitlines()[-1][:60]!r}"
    )
