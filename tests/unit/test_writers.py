"""What the pipe writes besides credentials: a `profile:` target's shared credentials file,
rotation.json and the check's reports (issue 7, items 8 to 10)."""

from __future__ import annotations

import configparser
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipe.credentials import Credentials
from pipe.errors import OutputError, PipeError
from pipe.profile import ProfileTarget
from pipe.report import CheckReport, RotationReport
from pipe.targets import TargetSpec

PAIR = Credentials("AKIA" + "N" * 16, "new-secret-" + "s" * 29)
OTHER = "[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = other-secret\n"


def profile(path: Path, name: str = "ci") -> ProfileTarget:
    return ProfileTarget(TargetSpec("profile", f"profile:{name}", name=name), path)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_stale_0644_temp_does_not_make_the_credentials_file_0644(tmp_path: Path) -> None:
    """The old temp was opened without O_EXCL: a stale 0644 temp kept its mode."""
    path = tmp_path / ".aws" / "credentials"
    path.parent.mkdir()
    stale = path.with_name(f".credentials.{os.getpid()}.tmp")
    stale.write_text("[old]\naws_secret_access_key = stale-secret\n")
    stale.chmod(0o644)
    assert profile(path).publish(PAIR) == PAIR.access_key_id
    assert mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["credentials"]  # the stale temp is gone


def test_an_existing_file_keeps_its_other_profiles_and_becomes_0600(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(OTHER)
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    profile(path).publish(PAIR)
    assert mode(tmp_path) == 0o755  # the user's ~/.aws is left as it is
    parser = configparser.ConfigParser()
    parser.read_string(path.read_text())
    assert parser["other"]["aws_secret_access_key"] == "other-secret"
    assert parser["ci"]["aws_secret_access_key"] == PAIR.secret_access_key
    assert mode(path) == 0o600


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (OTHER + OTHER, ("'other'", "twice", "line 4")),
        (OTHER + "aws_access_key_id = AKIAAGAIN\n", ("aws_access_key_id", "twice", "'other'")),
        ("aws_secret_access_key = loose-secret-value\n" + OTHER, ("not a credentials file", "line 1")),
        (OTHER + "loose-secret-value\n", ("not a credentials file", "line 4")),
    ],
)
def test_a_file_the_sdk_would_refuse_stops_the_run_and_is_left_alone(
    tmp_path: Path, text: str, words: tuple[str, ...]
) -> None:
    path = tmp_path / "credentials"
    path.write_text(text)
    for call in (profile(path).read, lambda: profile(path).publish(PAIR)):
        with pytest.raises(PipeError) as err:
            call()
        line = err.value.line()
        assert "AWS_SHARED_CREDENTIALS_FILE" in line and all(w in line for w in words), line
        assert "secret" not in line.replace("credentials", "").replace("aws_secret_access_key", "")
    assert path.read_text() == text


def test_a_file_that_is_not_utf8_is_not_read_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_bytes(OTHER.encode() + b"# caf\xe9\n")
    with pytest.raises(PipeError, match=r"AWS_SHARED_CREDENTIALS_FILE .* is not UTF-8"):
        profile(path).publish(PAIR)
    assert path.read_bytes().startswith(OTHER.encode())


def test_a_file_that_cannot_be_read_is_not_read_as_empty(tmp_path: Path) -> None:
    """configparser.read() skips a file it cannot open: the profile was then written into an
    empty file, dropping every other profile."""
    path = tmp_path / "credentials"
    path.mkdir()  # cannot be read as a file, whoever runs the test (root reads any mode)
    with pytest.raises(PipeError, match="AWS_SHARED_CREDENTIALS_FILE"):
        profile(path).read()


def test_a_file_whose_read_fails_is_not_read_as_empty() -> None:
    """A regular file whose read fails (EIO), for root too: this process's /proc/<pid>/mem at
    offset 0."""
    path = Path(f"/proc/{os.getpid()}/mem")
    assert path.is_file()
    with pytest.raises(PipeError, match="AWS_SHARED_CREDENTIALS_FILE: cannot read"):
        profile(path).read()


def test_a_symlinked_credentials_file_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text(OTHER)
    (tmp_path / "credentials").symlink_to(real)
    with pytest.raises(PipeError, match="symlink"):
        profile(tmp_path / "credentials").publish(PAIR)
    assert real.read_text() == OTHER


def test_profiles_published_at_once_are_all_kept(tmp_path: Path) -> None:
    """Targets publish concurrently (PUBLISH_CONCURRENCY): a read-modify-write each."""
    path = tmp_path / "credentials"
    names = [f"p{i}" for i in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda name: profile(path, name).publish(PAIR), names))
    parser = configparser.ConfigParser()
    parser.read_string(path.read_text())
    assert sorted(parser.sections()) == sorted(names)


# Reports: rotation.json, oidc-check.json and oidc-check.md


def write_report(kind: str, directory: Path) -> Path:
    if kind == "rotation":
        return RotationReport("ci", "clean", False).write(directory, str)
    return CheckReport("arn:aws:iam::123456789012:role/deploy").write(directory, str)


@pytest.mark.parametrize(("kind", "name"), [("rotation", "rotation.json"), ("check", "oidc-check.json")])
def test_a_symlinked_report_does_not_overwrite_its_target(tmp_path: Path, kind: str, name: str) -> None:
    target = tmp_path / "precious"
    target.write_text("keep")
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / name).symlink_to(target)
    with pytest.raises(OutputError, match=r"REPORT_DIR: .* is a symlink"):
        write_report(kind, reports)
    assert target.read_text() == "keep"
    assert (reports / name).is_symlink()


@pytest.mark.parametrize("kind", ["rotation", "check"])
def test_a_symlinked_report_dir_parent_is_refused(tmp_path: Path, kind: str) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").symlink_to("elsewhere")
    with pytest.raises(OutputError, match=r"REPORT_DIR: .*out is a symlink"):
        write_report(kind, tmp_path / "out" / "reports")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def unwritable(tmp_path: Path) -> Path:
    """A directory the pipe cannot create: under a read-only directory, or under /sys for root."""
    if os.geteuid() == 0:
        parent = Path("/sys")
    else:
        parent = tmp_path / "read-only"
        parent.mkdir(mode=0o500)
    with pytest.raises(OSError):  # the premise: this place really cannot be written
        (parent / "probe").mkdir()
    return parent / "aws-credentials-reports"


@pytest.mark.parametrize("kind", ["rotation", "check"])
def test_an_unwritable_report_dir_is_an_output_error_with_a_hint(tmp_path: Path, kind: str) -> None:
    with pytest.raises(OutputError) as err:
        write_report(kind, unwritable(tmp_path))
    assert err.value.line().startswith("REPORT_DIR: cannot create ")
    assert "Point REPORT_DIR at a writable directory" in err.value.line()


@pytest.mark.parametrize("kind", ["rotation", "check"])
def test_a_report_dir_under_a_file_is_an_output_error(tmp_path: Path, kind: str) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError) as err:
        write_report(kind, tmp_path / "file" / "reports")
    assert err.value.line().startswith("REPORT_DIR: ") and "is not a directory" in err.value.line()


@pytest.mark.parametrize("kind", ["rotation", "check"])
def test_reports_are_written_readable(tmp_path: Path, kind: str) -> None:
    path = write_report(kind, tmp_path / "a" / "reports")
    assert path.read_text() and mode(path) == 0o644 and mode(path.parent) == 0o755
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
