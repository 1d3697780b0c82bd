"""Releases the Atlassian way: the version lives in .changes/ (semversioner); .ci/release is
the only writer of the places that show it, and refuses to release an unbumped version."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

import pipe
from tests.runner import REPO

SEMVERSIONER = str(Path(sys.executable).parent / "semversioner")
IMAGE_TAG = re.compile(r"aws-credentials-pipe/aws-credentials-pipe:([0-9][0-9.]*)")


def semversioner(*args: str, cwd: Path = REPO) -> str:
    proc = subprocess.run(
        [SEMVERSIONER, *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    )
    return proc.stdout.strip()


def shown_versions(root: Path) -> tuple[str, str, set[str]]:
    """(pipe.__version__, pipe.yml's image tag, the image tags used in the docs' YAML)."""
    code = re.search(r'__version__ = "([^"]+)"', (root / "pipe/__init__.py").read_text())
    assert code
    definition = yaml.safe_load((root / "pipe.yml").read_text())
    image = str(definition["image"]).rsplit(":", 1)[1]
    texts = [str(definition["yml"])]
    texts += [doc.read_text() for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]]
    tags = {tag for text in texts for tag in IMAGE_TAG.findall(text)}
    return code.group(1), image, tags


def test_the_version_is_shown_as_the_change_files_say() -> None:
    version = semversioner("current-version")
    code, image, tags = shown_versions(REPO)
    assert pipe.__version__ == code == image == version
    assert tags == {version.split(".")[0]}, "the docs' YAML pins the major tag, as users pin it"


MAX_CHANGE = 300  # characters: one line of the CHANGELOG; the detail goes in docs/


def test_each_change_is_one_short_line() -> None:
    """semversioner's CHANGELOG has one line per change file: a short sentence, whose detail is
    in the docs (docs/development.md, Releasing)."""
    files = sorted((REPO / ".changes").glob("*.json")) + sorted(
        (REPO / ".changes/next-release").glob("*.json")
    )
    long = []
    for path in files:
        data = json.loads(path.read_text())
        for change in data.get("changes", [data]):
            text = change["description"]
            if "\n" in text or len(text) > MAX_CHANGE:
                long.append(f"{path.name}: {len(text)} characters: {text[:60]}...")
    assert long == []


def test_the_changelog_is_generated_from_the_change_files() -> None:
    generated = semversioner("changelog", "--template", ".ci/changelog.md.j2")
    assert (REPO / "CHANGELOG.md").read_text().strip() == generated.strip()


def _scratch_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name in (".changes", "pipe/__init__.py", "pipe.yml", "README.md", "CHANGELOG.md", ".ci"):
        source = REPO / name
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    for change in (root / ".changes/next-release").glob("*.json"):
        change.unlink()  # start from "nothing to release"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "start"], cwd=root, check=True)
    return root


def _release(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{Path(SEMVERSIONER).parent}:/usr/bin:/bin",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "HOME": str(root.parent),
    }
    return subprocess.run(
        ["bash", ".ci/release", *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )


def test_release_refuses_an_unbumped_version_and_writes_every_shown_version(tmp_path: Path) -> None:
    root = _scratch_repo(tmp_path)
    before = shown_versions(root)
    refused = _release(root)
    assert refused.returncode == 1 and refused.stdout.strip().splitlines()[-1].startswith(
        "✖ Nothing to release"
    ), refused.stdout + refused.stderr
    assert shown_versions(root) == before
    assert subprocess.run(["git", "tag"], check=True, cwd=root, capture_output=True, text=True).stdout == ""

    current = semversioner("current-version", cwd=root)
    major, minor, _ = (int(p) for p in current.split("."))
    (root / ".changes/next-release/minor-1.json").write_text(
        json.dumps({"type": "minor", "description": "A feature"})
    )
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "change"],
        cwd=root,
        check=True,
    )
    released = _release(root)
    assert released.returncode == 0, released.stdout + released.stderr
    expected = f"{major}.{minor + 1}.0"
    assert shown_versions(root) == (expected, expected, {str(major)})
    assert f"## {expected}" in (root / "CHANGELOG.md").read_text()
    tags = subprocess.run(["git", "tag"], check=True, cwd=root, capture_output=True, text=True).stdout.split()
    assert tags == [f"v{expected}"]
    assert _release(root, "--verify-tag", f"v{expected}").returncode == 0
    wrong = _release(root, "--verify-tag", f"v{major}.{minor + 2}.0")
    assert wrong.returncode == 1 and "does not name the released version" in wrong.stdout

    again = _release(root)
    assert again.returncode == 1 and "Nothing to release" in again.stdout
