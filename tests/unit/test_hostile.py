"""Hostile surroundings at the unit tier (issue 15, items 10, 11, 12 and 17): a planted
[DEFAULT] section, a directory of another user, links that parsers read differently, and
reports that must pass the console's filter. The image tier (tests/image/test_image_hostile.py)
meets each as a user would."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipe import files, handoff, urls
from pipe.console import ACCOUNT_MASK, MASK, Console
from pipe.credentials import Credentials
from pipe.errors import InputError, OutputError, TargetError
from pipe.oidc import issuer_problem
from pipe.profile import ProfileTarget
from pipe.report import AuditReport, CheckReport, RotationReport
from pipe.targets import TargetSpec

PAIR = Credentials("AKIA" + "N" * 16, "new-secret-" + "s" * 29)
PLANTED = "[DEFAULT]\nendpoint_url = http://attacker.example/\ncredential_process = /tmp/x\n\n[other]\nregion = eu-west-1\n"


# -- item 10 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["credentials", "config"])
def test_a_default_section_in_credentials_dir_is_refused_before_any_call(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(PLANTED)
    with pytest.raises(InputError) as err:
        handoff.read_shared(tmp_path)
    line = err.value.line()
    assert "CREDENTIALS_DIR" in line and "[DEFAULT]" in line and "'endpoint_url'" in line
    assert "attacker.example" not in line and "Move those keys" in line


def test_a_default_section_in_a_profile_targets_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(PLANTED)
    target = ProfileTarget(TargetSpec("profile", "profile:ci", name="ci"), path)
    with pytest.raises(TargetError, match=r"\[DEFAULT\]"):
        target.publish(PAIR)
    assert path.read_text() == PLANTED


def test_an_empty_default_section_is_harmless_and_not_written_back(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[DEFAULT]\n[other]\nregion = eu-west-1\n")
    _, config = handoff.read_shared(tmp_path)
    assert "DEFAULT" not in handoff.render_config_file("ci", "eu-west-1", config)


# -- item 11 -------------------------------------------------------------------------------------
STRANGER = 4242


@pytest.fixture
def foreign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 0777 directory of another user than the pipe's: really chowned when the tests run as
    root, else the pipe pretends to run as another uid (the directory is then the tester's)."""
    directory = tmp_path / "creds"
    directory.mkdir()
    directory.chmod(0o777)
    if os.geteuid() == 0:
        os.chown(directory, STRANGER, STRANGER)
    else:
        uid = os.geteuid() + STRANGER
        monkeypatch.setattr(os, "geteuid", lambda: uid)
    return directory


def test_a_credentials_dir_of_another_user_is_refused_before_any_call(foreign: Path) -> None:
    with pytest.raises(InputError) as err:
        handoff.preflight(foreign)
    assert f"{foreign} belongs to uid {os.stat(foreign).st_uid}, not root's, the pipe's" in err.value.line()
    assert f"Remove {foreign}" in err.value.line()


def test_a_directory_of_another_user_on_the_way_is_refused(foreign: Path) -> None:
    with pytest.raises(InputError, match=f"{foreign} belongs to uid"):
        handoff.preflight(foreign / "aws-credentials")


def test_a_credentials_dir_of_another_user_is_refused_when_writing(foreign: Path) -> None:
    with pytest.raises(OutputError, match="belongs to uid"):
        files.write_files(
            foreign, {"credentials.env": "x"}, variable="CREDENTIALS_DIR", private=True, tighten=True
        )
    assert list(foreign.iterdir()) == []


def test_the_clone_owners_directory_is_accepted_and_tightened(foreign: Path) -> None:
    info = os.stat(foreign)
    owner = (info.st_uid, info.st_gid)
    handoff.preflight(foreign, owner)  # no error
    if os.geteuid() == 0:  # only root can hand a directory over
        handoff.write(foreign, {"credentials.env": "x"}, owner)
        assert os.stat(foreign).st_mode & 0o777 == 0o700
        assert os.stat(foreign / "credentials.env").st_uid == owner[0]


def test_a_missing_directory_is_fine(tmp_path: Path) -> None:
    handoff.preflight(tmp_path / "not-yet" / "creds")  # nothing exists yet: nothing to refuse


def test_a_private_file_planted_by_another_user_is_taken_over(tmp_path: Path) -> None:
    """Root replacing a private file another uid planted in root's own directory: the new file is
    root's, 0600 (before the fix it kept the planter's uid). Without root, nothing can be planted."""
    directory = tmp_path / "creds"
    directory.mkdir(mode=0o700)
    planted = directory / "credentials.env"
    planted.write_text("# theirs\n")
    if os.geteuid() == 0:
        os.chown(planted, STRANGER, STRANGER)
    handoff.write(directory, {"credentials.env": "x"})
    info = os.stat(planted)
    assert info.st_uid == os.geteuid() and info.st_mode & 0o777 == 0o600


# -- item 12 -------------------------------------------------------------------------------------
API = ("https", "api.bitbucket.org", 443)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example\\@api.bitbucket.org/2.0/repositories/a/b/pipelines_config/variables?page=2",
        "https://evil.example%5C@api.bitbucket.org/2.0/x",  # user info, however spelt
        "https://user:pass@api.bitbucket.org/2.0/x",
        "https://api.bitbucket.org/2.0/x\t",
        "https://api.bitbucket.org\u00a0/2.0/x",
        "https://api.bitbucket.org:99999/2.0/x",
    ],
)
def test_links_that_parsers_read_differently_are_not_the_api(url: str) -> None:
    assert not urls.same_origin(url, API)


def test_a_plain_link_on_the_api_is_the_api() -> None:
    assert urls.same_origin("https://API.bitbucket.org:443/2.0/x?page=2", API)
    assert urls.origin("https://evil.example\\@api.bitbucket.org/") == ("https", "evil.example", 443)


def test_the_issuer_check_refuses_the_same_links() -> None:
    iss = "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
    assert issuer_problem(iss, "https://api.bitbucket.org/2.0") is None
    for bad in ("https://x@api.bitbucket.org", "https://api.bitbucket.org\\"):
        assert issuer_problem(iss.replace("https://api.bitbucket.org", bad), "https://api.bitbucket.org/2.0")


def test_a_backslash_in_bitbucket_api_url_is_refused() -> None:
    assert urls.check_api_url("https://evil.example\\@api.bitbucket.org/2.0") is not None


# -- item 17 -------------------------------------------------------------------------------------
ACCOUNT = "123456789012"
SECRET = "Zq8" + "x" * 30 + "Yp4"


@pytest.fixture
def console() -> Console:
    console = Console()
    console.secrets(SECRET)
    console.mask_account_ids()
    return console


def test_every_report_passes_the_consoles_filter(tmp_path: Path, console: Console) -> None:
    check = CheckReport(f"arn:aws:iam::{ACCOUNT}:role/deploy")
    check.add("error", "trust", f"the policy quotes {SECRET}", f"fix {SECRET}")
    check.write(tmp_path, console.clean)
    rotation = RotationReport("ci", "rotated", False, actions=[f"wrote {SECRET} to {ACCOUNT}"])
    rotation.write(tmp_path, console.clean)
    audit = AuditReport(
        "report", False, {"rotate_after_days": 90, "deactivate_after_days": 100, "delete_after_days": 110}
    )
    audit.accounts.append({"account_id": ACCOUNT, "status": "ok", "error": SECRET, "users": []})
    audit.write(tmp_path, console.clean)
    for name in ("oidc-check.json", "oidc-check.md", "rotation.json", "audit.json", "audit.md"):
        text = (tmp_path / name).read_text()
        assert SECRET not in text and ACCOUNT not in text, name
        assert MASK in text or ACCOUNT_MASK in text, name
    assert json.loads((tmp_path / "audit.json").read_text())["accounts"][0]["account_id"] == ACCOUNT_MASK
