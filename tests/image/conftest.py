"""Image tests build the pipe's image once and run it with `docker run`, as Pipelines does.

`make test` runs them with REQUIRE_IMAGE_TESTS=1 (after .ci/engine has started an engine and
found a base when it could): a missing engine fails them, with what to do. A bare `pytest`
without an engine skips them loudly (a notice in the summary)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.runner import REPO, docker_cli

TAG = "aws-credentials-pipe:test"
NOTICES: list[str] = []


def engine_answers() -> bool:
    try:
        return (
            subprocess.run([docker_cli(), "info"], capture_output=True, timeout=20, check=False).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


LOCAL_BASE = os.environ.get("LOCAL_BASE") or "aws-credentials-pipe-base:bookworm"  # `make base-image`


def _have(image: str) -> bool:
    return (
        subprocess.run([docker_cli(), "image", "inspect", image], capture_output=True, check=False).returncode
        == 0
    )


def base_image() -> str | None:
    """BASE_IMAGE if set; else the Dockerfile's default, unless only the local base is here."""
    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    if not _have("python:3.13-slim") and _have(LOCAL_BASE):
        return LOCAL_BASE
    return None


def build_command(tag: str) -> list[str]:
    command = [docker_cli(), "build", "--network", "host", "-t", tag]
    base = base_image()
    if base:
        command += ["--build-arg", f"BASE_IMAGE={base}"]
    ca = os.environ.get("PIP_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    if Path(ca).exists():
        command += ["--secret", f"id=pip_ca,src={ca}"]
    return [*command, str(REPO)]


def build_image(tag: str) -> subprocess.CompletedProcess[str]:
    """`docker build` of the pipe's image with BuildKit (the CA bundle as a secret)."""
    env = os.environ | {"DOCKER_BUILDKIT": "1"}
    return subprocess.run(
        build_command(tag), env=env, capture_output=True, text=True, check=False, timeout=900
    )


@pytest.fixture(scope="session")
def image() -> str:
    required = os.environ.get("REQUIRE_IMAGE_TESTS") == "1"
    if not engine_answers():
        reason = "no Docker engine answers (`docker info` failed)"
        if required:
            pytest.fail(
                f"image tests are required (REQUIRE_IMAGE_TESTS=1, as `make test` runs them) but {reason}. "
                "`make test` starts an engine itself as root with apt-get (.ci/engine); otherwise install "
                "Docker and start it, or run `make test REQUIRE_IMAGE_TESTS=0` to skip the image tests."
            )
        NOTICES.append(f"NOTICE: image tests SKIPPED: {reason}. `make test` and CI (bash .ci/run) run them.")
        pytest.skip(reason)
    tag = os.environ.get("PIPE_IMAGE") or TAG
    if not os.environ.get("PIPE_IMAGE"):
        env = os.environ | {"DOCKER_BUILDKIT": "1"}
        proc = subprocess.run(
            build_command(tag), env=env, capture_output=True, text=True, check=False, timeout=900
        )
        if proc.returncode != 0:
            pytest.fail(f"docker build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return tag


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for notice in NOTICES:
        terminalreporter.write_line(notice, yellow=True, bold=True)
