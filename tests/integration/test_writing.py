"""Where the pipe writes, as a process: symlinks committed in the repository, symlinked
reports, a REPORT_DIR that cannot be written, a shared credentials file the SDK would refuse
(issue 7, items 8 and 9)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.integration.test_rotate import World
from tests.runner import run_process
from tests.standins.aws import ACCOUNT
from tests.standins.sandbox import Sandbox

ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"


def test_a_committed_bitbucket_symlink_does_not_redirect_the_credentials(
    sandbox: Sandbox, clone: Path
) -> None:
    """`.bitbucket -> ../elsewhere` in the repository: CREDENTIALS_DIR (under the shared
    storage dir, inside the clone) would have been written outside the clone."""
    elsewhere = clone.parent / "elsewhere"
    elsewhere.mkdir()
    (clone / ".bitbucket").symlink_to("../elsewhere")
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE)
    result = run_process(env, clone, "bitbucket-symlink")
    assert result.failed_with("CREDENTIALS_DIR", "symlink"), result.output
    assert [str(p) for p in elsewhere.rglob("*")] == []
    assert sandbox.aws.requests == []  # refused before anything else


@pytest.mark.parametrize(("action", "name"), [("rotate", "rotation.json"), ("check", "oidc-check.json")])
def test_a_symlinked_report_is_refused_before_anything(
    sandbox: Sandbox, clone: Path, action: str, name: str
) -> None:
    precious = clone.parent / "precious"
    precious.write_text("keep")
    reports = clone / "reports"
    reports.mkdir()
    (reports / name).symlink_to(precious)
    env = sandbox.step_env(
        clone,
        token=sandbox.token(),
        AWS_OIDC_ROLE_ARN=ROLE,
        ACTION=action,
        IAM_USER_NAME="ci",
        TARGETS="ssm:/ci/key",
        REPORT_DIR="reports",
    )
    env.pop("BITBUCKET_COMMIT")  # no Code Insights report
    result = run_process(env, clone, f"symlinked-{name}")
    assert result.failed_with("REPORT_DIR", "symlink"), result.output
    assert precious.read_text() == "keep"
    assert sandbox.aws.requests == []


@pytest.fixture
def world(sandbox: Sandbox, clone: Path) -> World:
    return World(sandbox, clone, repos=1)


def test_a_symlink_in_report_dir_inside_the_clone_is_refused(world: World, clone: Path) -> None:
    elsewhere = clone.parent / "elsewhere"
    elsewhere.mkdir()
    (clone / "out").symlink_to(elsewhere)
    result = world.run("report-dir-symlink", DRY_RUN="true", REPORT_DIR=str(clone / "out" / "reports"))
    assert result.failed_with("REPORT_DIR", "symlink"), result.output
    assert list(elsewhere.iterdir()) == []


def test_rotation_json_is_written_through_the_safe_writer(world: World) -> None:
    world.report_dir.mkdir()
    stale = world.report_dir / ".rotation.json.1.tmp"  # left by a killed run (pid 1 in a container)
    stale.write_text("{}")
    result = world.run("rotation-json", DRY_RUN="true")
    assert result.returncode == 0, result.output
    assert world.report()["dry_run"] is True
    assert sorted(p.name for p in world.report_dir.iterdir()) == ["rotation.json"]


def unwritable(clone: Path) -> Path:
    """A REPORT_DIR that cannot be created: under a read-only directory, or /sys for root."""
    if os.geteuid() == 0:
        parent = Path("/sys")
    else:
        parent = clone.parent / "read-only"
        parent.mkdir(mode=0o500)
    with pytest.raises(OSError):  # the premise: nobody can write there
        (parent / f"probe-{uuid.uuid4().hex}").mkdir()
    return parent / "aws-credentials-reports"


def test_an_unwritable_report_dir_ends_in_a_hint_not_an_internal_error(world: World, clone: Path) -> None:
    result = world.run("report-dir-unwritable", DRY_RUN="true", REPORT_DIR=str(unwritable(clone)))
    assert result.failed_with("REPORT_DIR", "cannot create", "Point REPORT_DIR at a writable directory"), (
        result.output
    )
    assert "Unexpected internal error" not in result.output and "Traceback" not in result.output


def test_a_profile_file_the_sdk_would_refuse_stops_the_rotation_with_nothing_changed(
    sandbox: Sandbox, clone: Path
) -> None:
    user = f"dev-{uuid.uuid4().hex[:6]}"
    key_id, secret = sandbox.add_user(user)[0]
    credentials = clone.parent / "home" / ".aws" / "credentials"
    credentials.parent.mkdir(parents=True)
    text = (
        f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n\n"
        "[other]\naws_access_key_id = AKIAOTHER\n\n[other]\naws_access_key_id = AKIAOTHER2\n"
    )
    credentials.write_text(text)
    env = sandbox.step_env(
        clone,
        ACTION="rotate",
        TARGETS="profile:default",
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        FORCE_ROTATE="true",
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        REPORT_DIR=str(clone / "reports"),
    )
    result = run_process(env, clone, "profile-duplicate", timeout=120)
    # The SDK reads this file too (it is in the environment), and refuses it first.
    assert result.failed_with("cannot parse", str(credentials), "AWS_SHARED_CREDENTIALS_FILE"), result.output
    assert credentials.read_text() == text
    assert sandbox.aws.keys(user) == {key_id: "Active"}
    assert secret not in result.output
