"""The actions. ``ACTIONS`` maps each ACTION to the module that runs it; a module is imported
only when its action is chosen (start-up time of `assume` is measured). Every module has
``run(settings, clients, console) -> str``: the text of the ✔ line; a failure is a PipeError."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pipe.aws import Clients
    from pipe.config import Settings
    from pipe.console import Console

ACTIONS = {
    "assume": "pipe.actions.assume",
    "check": "pipe.actions.check",
    "rotate": "pipe.actions.rotate",
    "sync": "pipe.actions.sync",
    "audit": "pipe.actions.audit",
}


class Action(Protocol):
    def __call__(self, settings: Settings, clients: Clients, console: Console) -> str: ...


def get(name: str) -> Action:
    """The ``run`` of ACTION=``name`` (its module imported now)."""
    run: Action = importlib.import_module(ACTIONS[name]).run
    return run
