from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standins.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        box.add_oidc_provider()
        box.add_role("deploy")
        yield box


@pytest.fixture(autouse=True)
def _reset(sandbox: Sandbox) -> None:
    sandbox.aws.reset()
    sandbox.bitbucket.oidc_down = False


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    from tests.runner import make_clone_dir

    return make_clone_dir(tmp_path)
