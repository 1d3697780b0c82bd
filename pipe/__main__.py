"""Entry point: read the environment once, build the clients, run one action, and turn every
failure into one ✖ line. The only module that reads os.environ."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipe import config, schema
from pipe.console import Console, looks_secret
from pipe.errors import InputError, PipeError, aws_error


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
        name = next((n for n in schema.BY_NAME if n in exc.errors), "ACTION")
        # config._fail echoes the value only when it does not look like a secret.
        raise config._fail(name, environ.get(name)) from None
    values: dict[str, str | None] = {
        name: value for name, value in pipe.variables.items() if isinstance(value, str)
    }
    # A YAML list under `variables:` reaches a pipe as NAME_0 ... NAME_{COUNT-1} and NAME_COUNT.
    count = environ.get("TARGETS_COUNT", "").strip()
    if not values.get("TARGETS") and count:
        if not re.fullmatch(r"[0-9]{1,4}", count, re.ASCII) or int(count) > _MAX_LIST:
            raise config._fail("TARGETS", None, f"a YAML list of at most {_MAX_LIST} targets (TARGETS_COUNT)")
        values["TARGETS"] = ",".join(environ.get(f"TARGETS_{i}", "") for i in range(int(count)))
    return values


_MAX_LIST = 1000


def secret_looking(environ: Mapping[str, str]) -> list[str]:
    """Values of the pipe's own variables that look like secrets (console.looks_secret): a
    secret given in the wrong variable is masked like any other. Bitbucket's variables (commit
    hashes, paths) are left out, except the token, which is a secret anyway."""
    names = [v.name for v in schema.VARIABLES if v.user or v.secret]
    names += [name for name in environ if name.startswith("TARGETS_")]
    return [value for name in names if (value := environ.get(name)) and looks_secret(value)]


def _aws_refusal(exc: Exception) -> PipeError | None:
    """An AWS error no module mapped more narrowly: one ✖ line naming the operation."""
    from botocore.exceptions import ClientError, ConfigParseError

    if isinstance(exc, ConfigParseError):
        # The SDK reads the shared files of the environment when it builds a client, before the
        # pipe reads anything: a file it cannot parse would be an internal error otherwise.
        return PipeError(
            f"The AWS SDK cannot parse {exc.kwargs.get('path', 'its shared files')}",
            "Fix the file (a profile or a key given twice, or a line outside any [profile], is refused), "
            "or point AWS_SHARED_CREDENTIALS_FILE (or AWS_CONFIG_FILE) at another one.",
        )
    if not isinstance(exc, ClientError):
        return None
    code, message = aws_error(exc)
    operation = exc.operation_name
    if code == "NoSuchEntity" and "user" in message.lower():
        return InputError(
            "IAM_USER_NAME",
            f"AWS says: {message} ({operation})",
            "Set IAM_USER_NAME to an existing IAM user.",
        )
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return PipeError(
            f"AWS refused {operation} ({code}: {message})",
            "Grant the pipe's role this permission: the README lists the least-privilege policy for each action.",
        )
    return PipeError(f"AWS refused {operation} ({code}: {message})", "Check the variables above and re-run.")


def _action(name: str) -> Callable[..., str]:
    """Only the chosen action's modules are imported (start-up time of `assume` is measured)."""
    if name == "assume":
        from pipe import assume

        return assume.run
    if name == "check":
        from pipe import check

        return check.run
    from pipe import rotate

    return {"rotate": rotate.run_rotate, "sync": rotate.run_sync}[name]


def _bitbucket(settings: config.Settings, console: Console) -> Any:
    """The Bitbucket API client, when a target needs it."""
    rot = settings.rotation
    needed = (rot is not None and any(t.is_bitbucket for t in rot.targets)) or (
        settings.action == "check" and bool(settings.bitbucket_auth)
    )
    if not needed:
        return None
    from pipe.bitbucket import Bitbucket, auth_from

    auth, warning = auth_from(dict(settings.bitbucket_auth))
    if warning:
        console.warning(warning)
    return Bitbucket(settings.bitbucket_url, auth, pool_size=max(rot.concurrency if rot else 4, 4))


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    console = Console()
    console.secrets(*(environ.get(name) for name in schema.SECRET_NAMES))
    console.secrets(*secret_looking(environ))
    try:
        values = read_variables(environ)
        settings = config.load(values, cwd=Path.cwd(), now=time.time())
        if settings.debug:
            console.enable_debug()
        from pipe.aws import AwsClients

        clients = AwsClients(settings.region, settings.endpoints, settings.retry_timeout)
        action = _action(settings.action)
        if settings.action == "assume":
            message = action(settings, clients, console)
        else:
            message = action(settings, clients, console, _bitbucket(settings, console))
    except PipeError as error:
        console.failure(error)
        return 1
    except Exception as exc:
        refusal = _aws_refusal(exc)
        if refusal is None:
            console.unexpected(exc)
        else:
            console.failure(refusal)
        return 1
    except KeyboardInterrupt:
        console.failure(InputError("ACTION", "Interrupted", "Re-run the step."))
        return 1
    console.success(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
