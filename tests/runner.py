"""Running the pipe as Pipelines does: a process (or a container) with the step's environment,
its working directory in the clone directory. Output is recorded for the leak check."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests import leakcheck
from tests.standins.interrupt import Interrupter
from tests.standins.sandbox import base_process_env

ANSI = re.compile(r"\x1b\[[0-9;]*m")
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    returncode: int
    output: str  # stdout and stderr together, colours removed

    @property
    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]

    @property
    def last(self) -> str:
        return self.lines[-1] if self.lines else ""

    def failed_with(self, *words: str) -> bool:
        return self.returncode == 1 and self.last.startswith("✖ ") and all(w in self.last for w in words)


def make_clone_dir(root: Path) -> Path:
    """A clone directory like a user's pipe repository, with a decoy pipe/ package in it."""
    clone = root / "build"
    decoy = clone / "pipe"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("")
    (decoy / "__main__.py").write_text("print('DECOY pipe/ package ran'); raise SystemExit(3)\n")
    leakcheck.scan_dir(clone)
    return clone


def run_process(env: dict[str, str], cwd: Path, label: str, timeout: float = 60) -> Result:
    full = base_process_env(cwd.parent / "home") | env
    proc = subprocess.run(
        [sys.executable, "-I", "-m", "pipe"],
        env=full,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    leakcheck.capture(label, proc.stdout)
    return Result(proc.returncode, ANSI.sub("", proc.stdout))


def run_interrupted(
    interrupter: Interrupter, at: int, how: str, *, env: dict[str, str], cwd: Path, label: str
) -> Result:
    """Run the pipe as a process that ``interrupter`` stops at the ``at``-th call it sees
    (``how``: kill or error); ``env`` on top of the base environment (HOME: cwd's sibling)."""
    interrupter.arm(at, how)
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "pipe"],
        env=base_process_env(cwd.parent / "home") | env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    interrupter.pid = proc.pid
    out, _ = proc.communicate(timeout=120)
    interrupter.disarm()
    leakcheck.capture(label, out)
    return Result(proc.returncode, ANSI.sub("", out))


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def source_and_call(env_file: Path, endpoint: str, home: Path, label: str) -> str:
    """Source credentials.env in bash, then call AWS from a separate process. The SDK's every
    call, its own AssumeRole* included, goes to the stand-in (AWS_ENDPOINT_URL): loopback only."""
    script = (
        'set -e; source "$1"; exec python -c "import boto3; '
        "print(boto3.client('sts').get_caller_identity()['Arn'])\""
    )
    proc = subprocess.run(
        ["bash", "-c", script, "probe", str(env_file)],
        env=base_process_env(home) | {"AWS_ENDPOINT_URL": endpoint},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    leakcheck.capture(label, proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def docker_cli() -> str:
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


def image_python(image: str, script: str) -> str:
    """What ``script`` prints when the image's own Python runs it (no network): for looking
    inside the image."""
    command = [docker_cli(), "run", "--rm", "--network", "none", "--entrypoint", "/opt/pipe/bin/python"]
    proc = subprocess.run(
        [*command, image, "-I", "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return proc.stdout.strip()


def docker_run(image: str, env: dict[str, str], clone: Path, label: str) -> Result:
    """`docker run` as Pipelines runs a pipe: host network (the stand-ins listen on loopback),
    the clone directory mounted at the same path and used as working directory, the step's
    variables passed by name."""
    command = [docker_cli(), "run", "--rm", "--network", "host", "-v", f"{clone}:{clone}", "-w", str(clone)]
    for name in sorted(env):
        command += ["-e", name]  # by name; the values come from this process's environment
    proc = subprocess.run(
        [*command, image],
        env=base_process_env(clone.parent) | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    leakcheck.capture(label, proc.stdout)
    return Result(proc.returncode, ANSI.sub("", proc.stdout))
