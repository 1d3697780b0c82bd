"""Two, then five, rotations of the same user start at once: at most one creates a key, the
others end cleanly (exit 0), and every target ends on one working key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import leakcheck
from tests.integration.test_rotate import World
from tests.runner import ANSI
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
