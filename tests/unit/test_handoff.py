from __future__ import annotations

import os
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipe import handoff
from pipe.aws import Credentials
from pipe.errors import InputError

CREDS = Credentials("ASIAEXAMPLE", "se'cr$et `x`", "tok en", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))


def test_env_file_is_shell_quoted(tmp_path: Path) -> None:
    path = tmp_path / "c.env"
    path.write_text(handoff.render_env(CREDS, "eu-west-1"))
    out = subprocess.run(
        [
            "bash",
            "-c",
            'source "$1"; printf "%s|%s|%s" "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN" "$AWS_CREDENTIAL_EXPIRATION"',
            "x",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "se'cr$et `x`|tok en|2030-01-02T03:04:05Z"


def test_long_lived_key_clears_session_variables() -> None:
    text = handoff.render_env(Credentials("AKIAEXAMPLE", "secret"), "eu-west-1")
    assert "AWS_SESSION_TOKEN=" not in text and "unset AWS_SESSION_TOKEN AWS_CREDENTIAL_EXPIRATION" in text


def test_shared_files() -> None:
    assert "[ci]\naws_access_key_id = ASIAEXAMPLE" in handoff.render_credentials_file("ci", CREDS)
    assert handoff.render_config_file("ci", "eu-west-1") == "[profile ci]\nregion = eu-west-1\n\n"
    assert handoff.render_config_file("default", "eu-west-1").startswith("[default]")


def test_write_is_private_and_replaces(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    handoff.write(directory, {"credentials.env": "one"})
    handoff.write(directory, {"credentials.env": "two"})
    assert (directory / "credentials.env").read_text() == "two"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "credentials.env").stat().st_mode) == 0o600
    assert [p.name for p in directory.iterdir()] == ["credentials.env"]  # no temp files left


def test_symlinked_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("keep")
    (tmp_path / "credentials").symlink_to(tmp_path / "target")
    with pytest.raises(InputError, match="symlink"):
        handoff.write(tmp_path, {"credentials": "x"})
    assert (tmp_path / "target").read_text() == "keep"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_files_go_to_the_clone_dir_owner_when_run_as_root(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    os.chown(clone, 1000, 1000)
    owner = handoff.owner_for(clone)
    assert owner == (1000, 1000)
    handoff.write(clone / "out", {"credentials.env": "x"}, owner)
    assert (clone / "out").stat().st_uid == 1000 and (clone / "out" / "credentials.env").stat().st_uid == 1000
