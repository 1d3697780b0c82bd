"""Hostile surroundings, met as a user meets them (issue 15, items 10, 11, 12 and 17): the built
image run with `docker run` as Pipelines runs it, in a clone directory where an earlier step
(another user, a committed file) or a hostile answer has planted something."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runner import docker_cli, docker_run
from tests.standins.aws import ACCOUNT
from tests.standins.http import Request, Response, Server
from tests.standins.sandbox import Sandbox

pytestmark = pytest.mark.image
ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"
STRANGER = 4242  # another user of the runner: an earlier step's, say


def credentials_dir(clone: Path) -> Path:
    return clone / ".bitbucket/pipelines/generated/pipeline/pipes/aws-credentials"


def as_root(image: str, clone: Path, script: str) -> None:
    """Run ``script`` with the image's Python as root in a container with the clone directory
    mounted, as an earlier step could (and whatever user runs the tests): to plant files of
    another uid."""
    command = [docker_cli(), "run", "--rm", "--network", "none", "-v", f"{clone}:{clone}"]
    command += ["--entrypoint", "/opt/pipe/bin/python", image, "-I", "-c", script]
    subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)


# -- item 10: a planted [DEFAULT] section ------------------------------------------------------
def test_image_refuses_a_planted_default_section(image: str, sandbox: Sandbox, clone: Path) -> None:
    """An earlier step's (or a committed) config file with a [DEFAULT] section: botocore applies
    its keys to every profile, the pipe's own included, so every later call of the step would go
    to its endpoint_url. The pipe refuses the file before any call and writes nothing."""
    directory = credentials_dir(clone)
    directory.mkdir(parents=True, mode=0o700)
    planted = "[DEFAULT]\nendpoint_url = http://127.0.0.1:9/\n\n[profile other]\nregion = eu-west-1\n"
    (directory / "config").write_text(planted)
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE)
    result = docker_run(image, env, clone, "image-default-section")
    assert result.failed_with("CREDENTIALS_DIR", "[DEFAULT]", "endpoint_url"), result.output
    assert sandbox.aws.requests == []
    assert (directory / "config").read_text() == planted
    assert not (directory / "credentials.env").exists()


# -- item 11: a directory or a file made by another user ----------------------------------------
@pytest.mark.parametrize("made", ["aws-credentials", ".bitbucket"])
def test_image_refuses_a_credentials_dir_made_by_another_user(
    image: str, sandbox: Sandbox, clone: Path, made: str
) -> None:
    """CREDENTIALS_DIR (or a directory above it, in the clone) made by another uid, 0777, with a
    credentials.env of theirs in it: they could read the secret, or swap the file (or the whole
    directory) before the step sources it. Refused before any call; their file is left as it was
    (nothing is written there)."""
    directory = credentials_dir(clone)
    theirs = clone / ".bitbucket" if made == ".bitbucket" else directory
    as_root(
        image,
        clone,
        f"import os; d = {str(directory)!r}; os.makedirs(d)\n"
        f"for p in (d, {str(theirs)!r}): os.chmod(p, 0o777); os.chown(p, {STRANGER}, {STRANGER})\n"
        f"f = os.path.join(d, 'credentials.env'); open(f, 'w').write('# theirs\\n'); os.chown(f, {STRANGER}, {STRANGER})",
    )
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE)
    result = docker_run(image, env, clone, "image-foreign-dir")
    assert result.failed_with("CREDENTIALS_DIR", f"{theirs} belongs to uid {STRANGER}"), result.output
    assert sandbox.aws.requests == []
    assert (directory / "credentials.env").read_text() == "# theirs\n"
    assert sorted(p.name for p in directory.iterdir()) == ["credentials.env"]


def test_image_never_hands_a_private_file_to_whoever_planted_it(
    image: str, sandbox: Sandbox, clone: Path
) -> None:
    """The pipe's own directory (root's, 0700), with files another uid planted in it earlier:
    the files written in their place are the pipe's, never the planter's."""
    directory = credentials_dir(clone)
    as_root(
        image,
        clone,
        f"import os; d = {str(directory)!r}; os.makedirs(d, 0o700)\n"
        f"for name in ('credentials.env', 'credentials', 'identity.json'):\n"
        f"    f = os.path.join(d, name); open(f, 'w').write(''); os.chmod(f, 0o666); os.chown(f, {STRANGER}, {STRANGER})",
    )
    env = sandbox.step_env(clone, token=sandbox.token(), AWS_OIDC_ROLE_ARN=ROLE)
    result = docker_run(image, env, clone, "image-planted-files")
    assert result.returncode == 0, result.output
    owners = {
        name: os.stat(directory / name).st_uid for name in ("credentials.env", "credentials", "identity.json")
    }
    assert STRANGER not in owners.values(), owners
    assert all(os.stat(directory / name).st_mode & 0o777 == 0o600 for name in owners)


# -- item 12: a `next` link that urlsplit and urllib3 read differently -------------------------
@pytest.fixture
def elsewhere() -> Iterator[tuple[Server, list[Request]]]:
    """Another origin on loopback that records whatever reaches it."""
    hits: list[Request] = []

    def record(request: Request) -> Response:
        hits.append(request)
        return Response(200, b'{"values": [], "pagelen": 100}', {"Content-Type": "application/json"})

    server = Server(record).start()
    yield server, hits
    server.stop()


def test_image_never_sends_the_bitbucket_token_behind_a_backslash(
    image: str, sandbox: Sandbox, clone: Path, elsewhere: tuple[Server, list[Request]]
) -> None:
    from tests.integration.test_rotate import World

    server, hits = elsewhere
    world = World(sandbox, clone)
    world.seed()
    link = sandbox.bitbucket.hostile_next("pipelines_config/variables$", server.url.removeprefix("http://"))
    result = docker_run(image, world.env(FORCE_ROTATE="true"), clone, "image-hostile-next")
    reached = [(h.method, h.path, "authorization" in h.headers) for h in hits]  # never the token itself
    assert reached == []
    assert result.failed_with("outside BITBUCKET_API_URL", "does not send its token there"), result.output
    assert link.split("\\")[0] in result.last
    assert world.bb_token not in result.output


# -- item 17: reports and Code Insights through the console's filter ----------------------------
@pytest.mark.filterwarnings("ignore:Unsupported scheme type")
def test_image_masks_account_ids_in_the_reports_and_code_insights(
    image: str, sandbox: Sandbox, clone: Path
) -> None:
    bb = sandbox.bitbucket
    # The proxy's port is fixed (29418): another loopback address keeps parallel runs apart.
    proxy_host = bb.start_proxy(host=f"127.0.{os.urandom(1)[0]}.{10 + os.urandom(1)[0] % 240}")
    slug = "masked-" + os.urandom(3).hex()
    bb.add_repo("acme", slug)
    commit = os.urandom(20).hex()
    env = sandbox.step_env(
        clone,
        token=sandbox.token(),
        ACTION="check",
        AWS_OIDC_ROLE_ARN=ROLE,
        BITBUCKET_API_URL=bb.api_url,
        REPORT_DIR=str(clone / "reports"),
        MASK_ACCOUNT_ID="true",
        CI="true",
        BITBUCKET_REPO_SLUG=slug,
        BITBUCKET_COMMIT=commit,
        BITBUCKET_AUTH_PROXY_HOST=proxy_host,
    )
    result = docker_run(image, env, clone, "image-masked-reports")
    assert result.returncode == 0 and result.last.startswith("✔ READY"), result.output
    assert "Posted the Code Insights report" in result.output and ACCOUNT not in result.output
    for name in ("oidc-check.json", "oidc-check.md"):
        text = (clone / "reports" / name).read_text()
        assert ACCOUNT not in text and "role/deploy" in text, name
    assert json.loads((clone / "reports" / "oidc-check.json").read_text())["verdict"] == "READY"
    posted = bb.reports[("acme", slug, commit, "aws-credentials-pipe-oidc-check")]
    assert ACCOUNT not in json.dumps(posted) and "role/deploy" in posted["details"]
