"""Entry point: read the environment once, build the settings and the clients, run the chosen
action, and turn every failure into one ✖ line. The only module that reads os.environ."""

from __future__ import annotations

import gc
import os

if __name__ == "__main__":
    # Start-up: the imports allocate a few hundred thousand objects that live as long as the
    # process, and the cyclic GC would walk them again and again (about 10 ms of every run in
    # the image). It is switched back on, with those objects frozen, once the clients are made.
    gc.disable()
    # `assume` (ACTION unset or assume) loads the modules its libraries import and it never
    # uses lazily (pipe.lazy); the other actions use threads, which LazyLoader does not suit.
    if os.environ.get("ACTION", "").strip().lower() in ("", "assume"):
        from pipe import lazy

        lazy.install()

import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from pipe import config, schema
from pipe.console import Console, looks_secret
from pipe.errors import InputError, PipeError, refusal

# A variable given as a YAML list (TARGETS, IAM_USERS, ...) reaches a pipe as NAME_0 ...
# NAME_{COUNT-1} and NAME_COUNT.
MAX_TARGETS = 1000
LIST_VARIABLES = ("TARGETS", "IAM_USERS", "IAM_GROUPS", "AUDIT_ACCOUNT_IDS", "NOTIFY_ADMINS")
_COUNT = re.compile(r"[0-9]{1,4}", re.ASCII)


def read_variables(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The pipe's variables, held to their patterns (``schema.first_pass``); a YAML list given
    as NAME_0 ... NAME_{COUNT-1} joined with commas, once its count is held to our bounds (a
    plain value wins). ``pipe.config`` validates the rest: one path for every action."""
    values: dict[str, str | None] = dict(schema.first_pass(environ))
    for name in LIST_VARIABLES:
        count = environ.get(f"{name}_COUNT", "").strip()
        if values.get(name) or not count:
            continue
        if not _COUNT.fullmatch(count) or int(count) > MAX_TARGETS:
            raise schema.invalid(name, None, f"a YAML list of at most {MAX_TARGETS} items ({name}_COUNT)")
        values[name] = ",".join(environ.get(f"{name}_{i}") or "" for i in range(int(count)))
    return values


def secret_looking(environ: Mapping[str, str]) -> list[str]:
    """Values of the pipe's own variables that look like secrets (console.looks_secret): a
    secret given in the wrong variable is masked like any other. Bitbucket's variables (commit
    hashes, paths) are left out, except the token, which is a secret anyway."""
    names = [v.name for v in schema.VARIABLES if v.user or v.secret]
    names += [name for name in environ if name.startswith(tuple(f"{n}_" for n in LIST_VARIABLES))]
    return [value for name in names if (value := environ.get(name)) and looks_secret(value)]


def _secrets_and_masks(environ: Mapping[str, str], console: Console) -> None:
    """What the console masks from the first line on: every secret, and account ids when
    MASK_ACCOUNT_ID is true (read here too, so that a failure to load the settings is masked)."""
    console.secrets(*(environ.get(name) for name in schema.SECRET_NAMES))
    console.secrets(*secret_looking(environ))
    if any(environ.get(name) for name in schema.PROXY_NAMES):
        from pipe.network import url_secrets

        for name in schema.PROXY_NAMES:
            console.secrets(*url_secrets(environ.get(name)), any_length=True)
    if environ.get("MASK_ACCOUNT_ID", "").strip().lower() == "true":
        console.mask_account_ids()


def misspelt(environ: Mapping[str, str], console: Console) -> None:
    """Warn about names close to the pipe's own (``pipe.spelling``); values are never read."""
    from pipe.spelling import suggestions

    for name, ours in suggestions(environ):
        console.warning(f"{name} is not a variable of this pipe (ignored): did you mean {ours}?")


def _started() -> None:
    """The start-up is over (see the top of this module): the objects made so far are frozen
    out of the cyclic GC's sight, and the GC runs again for whatever the action makes."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    console = Console()
    _secrets_and_masks(environ, console)
    try:
        values = read_variables(environ)
        misspelt(environ, console)
        settings = config.load(values, cwd=Path.cwd(), now=time.time())
        if settings.debug:
            console.enable_debug()
        if settings.mask_account_id:
            console.mask_account_ids()
        for warning in settings.warnings:
            console.warning(warning)
        from pipe.actions import get
        from pipe.aws import Clients

        action = get(settings.action)
        clients = Clients.for_settings(settings, console)
        _started()
        message = action(settings, clients, console)
    except PipeError as error:
        console.failure(error)
        return 1
    except Exception as exc:
        known = refusal(exc)
        if known is None:
            console.unexpected(exc)
        else:
            console.failure(known)
        return 1
    except KeyboardInterrupt:
        console.failure(InputError("ACTION", "Interrupted", "Re-run the step."))
        return 1
    console.success(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
