from __future__ import annotations

import os
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipe import handoff
from pipe.credentials import Credentials
from pipe.errors import InputError, OutputError, PipeError

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


# Issue 7, items 8 and 10: symlinks anywhere in the path, temp files.


def test_a_committed_symlink_in_a_parent_directory_is_refused(tmp_path: Path) -> None:
    """`.bitbucket -> ../elsewhere` committed in the repository redirected credentials.env."""
    clone, elsewhere = tmp_path / "clone", tmp_path / "elsewhere"
    clone.mkdir()
    elsewhere.mkdir()
    (clone / ".bitbucket").symlink_to("../elsewhere")
    directory = clone / ".bitbucket" / "pipelines" / "aws-credentials"
    with pytest.raises(InputError, match=r"CREDENTIALS_DIR.*\.bitbucket is a symlink"):
        handoff.write(directory, {"credentials.env": "secret"})
    assert list(elsewhere.iterdir()) == []


def test_the_writer_refuses_a_symlink_it_finds_while_walking(tmp_path: Path) -> None:
    """The same, for a symlink that appears after the preflight: every component is opened
    with O_NOFOLLOW relative to its parent."""
    from pipe import files  # new in issue 7

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to("elsewhere")
    with pytest.raises(OutputError, match=r"CREDENTIALS_DIR: .*link is a symlink"):
        files.write_files(
            tmp_path / "link" / "d", {"credentials.env": "x"}, variable="CREDENTIALS_DIR", private=True
        )
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_stale_temp_of_a_killed_run_neither_blocks_nor_stays(tmp_path: Path) -> None:
    """The old temp name was .{name}.{pid}.tmp, and the pid is always 1 in a container: a temp
    left by a killed run made every later write fail, and kept a secret on disk."""
    directory = tmp_path / "creds"
    directory.mkdir(mode=0o700)
    stale = [directory / f".credentials.env.{os.getpid()}.tmp", directory / ".credentials.env.1.tmp"]
    stale.append(directory / ".credentials.0123456789abcdef.tmp")
    for path in stale:
        path.write_text("export AWS_SECRET_ACCESS_KEY=old-secret\n")
    keep = directory / ".credentials.env.notours.tmp"  # not our naming: left alone
    keep.write_text("x")
    handoff.write(directory, {"credentials.env": "new", "credentials": "new"})
    assert (directory / "credentials.env").read_text() == "new"
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        ["credentials.env", "credentials", keep.name]
    )


def test_a_write_that_cannot_succeed_leaves_no_secret_behind(tmp_path: Path) -> None:
    directory = tmp_path / "creds"
    (directory / "credentials").mkdir(parents=True)  # in the way of the file
    with pytest.raises(PipeError, match="CREDENTIALS_DIR"):
        handoff.write(directory, {"credentials.env": "secret", "credentials": "secret"})
    assert [p.name for p in directory.iterdir()] == ["credentials"]


def test_a_failed_write_leaves_no_temp_behind(tmp_path: Path) -> None:
    from pipe import files  # new in issue 7

    directory = tmp_path / "creds"
    (directory / "credentials").mkdir(parents=True)  # the rename onto it fails
    with pytest.raises(OutputError, match="CREDENTIALS_DIR"):
        files.write_files(directory, {"credentials": "secret"}, variable="CREDENTIALS_DIR", private=True)
    assert [p.name for p in directory.iterdir()] == ["credentials"]
    assert list((directory / "credentials").iterdir()) == []


def test_an_os_error_names_the_variable_with_a_hint(tmp_path: Path) -> None:
    from pipe import files  # new in issue 7

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError) as err:
        files.write_files(tmp_path / "file" / "d", {"a": "b"}, variable="REPORT_DIR", private=False)
    assert err.value.line().startswith("REPORT_DIR: ") and "Point REPORT_DIR at" in err.value.line()


def test_private_files_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        handoff.write(tmp_path / "d", {"credentials": "x"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d" / "credentials").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700


def test_the_hand_off_is_atomic_without_fsync_and_other_files_stay_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """assume's files serve the rest of its own step on this machine: renamed into place whole,
    not fsynced (1.5 to 30 ms a run on a busy disk). Every other writer still fsyncs."""
    from pipe import files

    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    directory = tmp_path / "out"
    handoff.write(directory, {"credentials.env": "export A=1\n", "identity.json": "{}"})
    assert (directory / "credentials.env").read_text() == "export A=1\n"
    assert sorted(p.name for p in directory.iterdir()) == ["credentials.env", "identity.json"]
    assert synced == []
    files.write_files(tmp_path / "report", {"r.json": "{}"}, variable="REPORT_DIR", private=False)
    assert len(synced) == 2  # the file and its directory
