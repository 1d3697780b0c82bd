""".ci/engine and the make targets that use it, with a fake `docker` CLI (the process boundary):
which base the image is built on, and what `make test`, `make demo` and `make image` run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.runner import REPO

FAKE_DOCKER = """#!/bin/sh
# A Docker CLI whose engine answers and holds the images listed in $FAKE_IMAGES.
echo "$*" >> "$FAKE_LOG"
case "$1" in
  info) exit 0 ;;
  image) for have in $FAKE_IMAGES; do [ "$have" = "$3" ] && exit 0; done; exit 1 ;;
  pull) exit 1 ;;
esac
exit 1
"""


def engine(tmp_path: Path, images: str, **env: str) -> tuple[int, str, list[str]]:
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "docker.log"
    log.write_text("")
    full = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DOCKER": str(docker),
        "FAKE_IMAGES": images,
        "FAKE_LOG": str(log),
        "LOCAL_BASE": "aws-credentials-pipe-base:bookworm",
        **env,
    }
    proc = subprocess.run(
        [str(REPO / ".ci/engine")], env=full, capture_output=True, text=True, timeout=60, check=False
    )
    return proc.returncode, proc.stdout.strip(), log.read_text().splitlines()


def test_the_dockerfiles_default_base_when_it_is_here(tmp_path: Path) -> None:
    assert engine(tmp_path, "python:3.13-slim aws-credentials-pipe-base:bookworm")[:2] == (
        0,
        "python:3.13-slim",
    )


def test_the_local_base_when_the_default_is_missing(tmp_path: Path) -> None:
    code, base, calls = engine(tmp_path, "aws-credentials-pipe-base:bookworm")
    assert (code, base) == (0, "aws-credentials-pipe-base:bookworm")
    assert not any(call.startswith("pull") for call in calls)  # a local base once built is used


def test_a_base_image_given_wins(tmp_path: Path) -> None:
    assert engine(tmp_path, "", BASE_IMAGE="registry.example/python:3.13")[:2] == (
        0,
        "registry.example/python:3.13",
    )


def test_a_pull_is_tried_before_building_a_base(tmp_path: Path) -> None:
    # Neither base is here and the pull fails: the script goes on to build the local base; a
    # make that cannot (no mmdebstrap on PATH, no apt-get) ends it with exit 3, after the pull.
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "bash", "timeout", "id", "dirname", "seq", "sleep", "cat", "printf"):
        found = subprocess.run(
            ["sh", "-c", f"command -v {tool}"], capture_output=True, text=True, check=False
        )
        if found.stdout.strip():
            (bare / tool).symlink_to(found.stdout.strip())
    code, base, calls = engine(tmp_path, "", PATH=str(bare))
    assert code == 3 and base == ""
    assert "pull -q python:3.13-slim" in calls


def make_dry_run(*args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    proc = subprocess.run(
        ["make", "-n", "-C", str(REPO), "VENV=.venv", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_image_passes_the_ca_bundle_as_one_secret(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    out = make_dry_run("image", f"PIP_CA_BUNDLE={bundle}")
    assert f"--secret id=pip_ca,src={bundle}" in out and ".ci/engine" in out


def test_make_test_and_demo_get_an_engine_and_require_the_image(tmp_path: Path) -> None:
    test = make_dry_run("test")
    assert ".ci/engine" in test and "REQUIRE_IMAGE_TESTS=1" in test
    assert "REQUIRE_IMAGE_TESTS=0" in make_dry_run("test", "REQUIRE_IMAGE_TESTS=0")
    assert ".ci/engine" in make_dry_run("demo")
