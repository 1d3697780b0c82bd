"""Entry point: read the environment once, build the clients, run one action, and turn every
failure into one ✖ line. The only module that reads os.environ."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipe import config, schema
from pipe.console import Console
from pipe.errors import InputError, PipeError


class _SchemaError(Exception):
    def __init__(self, errors: Mapping[str, Any]) -> None:
        super().__init__("schema")
        self.errors = errors


def read_variables(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The pipe's variables through bitbucket-pipes-toolkit's Pipe and our schema."""
    from bitbucket_pipes_toolkit import Pipe

    class _Pipe(Pipe):  # type: ignore[misc]
        def fail(self, message: str, print_community_link: bool = False) -> None:
            raise _SchemaError(self.validator.errors)

        def enable_debug_log_level(self) -> None:
            """DEBUG is parsed by config.py (the toolkit treats the string 'false' as true)."""

    try:
        pipe = _Pipe(schema=schema.toolkit_schema(), env=dict(environ))
    except _SchemaError as exc:
        name = next(n for n in schema.BY_NAME if n in exc.errors)
        raise config._fail(name, environ.get(name)) from None
    return {name: value for name, value in pipe.variables.items() if isinstance(value, str)}


def _actions() -> dict[str, Callable[..., str]]:
    from pipe import assume

    return {"assume": assume.run}


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    console = Console()
    console.secrets(*(environ.get(name) for name in schema.SECRET_NAMES))
    try:
        values = read_variables(environ)
        settings = config.load(values, cwd=Path.cwd(), now=time.time())
        if settings.debug:
            console.enable_debug()
        from pipe.aws import AwsClients

        clients = AwsClients(settings.region, settings.endpoints, settings.retry_timeout)
        message = _actions()[settings.action](settings, clients, console)
    except PipeError as error:
        console.failure(error)
        return 1
    except KeyboardInterrupt:
        console.failure(InputError("ACTION", "Interrupted", "Re-run the step."))
        return 1
    except Exception as exc:
        console.unexpected(exc)
        return 1
    console.success(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
