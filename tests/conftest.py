"""Hermetic tests: a temporary HOME, none of the caller's AWS_* or BITBUCKET_* variables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standins.sandbox import Sandbox


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("AWS_", "BITBUCKET_", "ATLASSIAN_")):
            monkeypatch.delenv(name)
    home: Path = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    # boto3 clients made inside tests read these; nothing real is ever used.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-credentials"))
    yield


@pytest.fixture(scope="session")
def _sandbox_session() -> Iterator[Sandbox]:
    with Sandbox() as box:
        box.add_oidc_provider()
        box.add_role("deploy")
        yield box


@pytest.fixture
def sandbox(_sandbox_session: Sandbox) -> Sandbox:
    """The stand-ins, with faults, clocks and request logs reset for each test."""
    _sandbox_session.aws.reset()
    _sandbox_session.bitbucket.reset()
    return _sandbox_session


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    from tests.runner import make_clone_dir

    return make_clone_dir(tmp_path)
