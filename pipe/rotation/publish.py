"""One pair written to many targets at once (PUBLISH_CONCURRENCY): the probe before a key is
created, and the publication itself. ACTION=rotate's executor and ACTION=sync both use it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from pipe.errors import PipeError, StateError, aws_error

if TYPE_CHECKING:
    from pipe.credentials import Credentials
    from pipe.report import RotationReport
    from pipe.rotation.lease import Lease
    from pipe.stores import Store
    from pipe.targets import Target


def probe(places: Sequence[Target], *, concurrency: int, store: Store | None) -> None:
    """Prove every place can be written, changing nothing (a write of what is there, or a
    permission probe), before any key is created. A place that cannot be written stops the run
    here, with nothing changed."""
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for target, error in zip(places, pool.map(_probe_one, places), strict=True):
            if error:
                what = "the store " if target is store else ""
                failures.append(f"{what}{target.spec.text}: {error}")
    if failures:
        raise StateError(
            f"{len(failures)} of {len(places)} places cannot be written, so no key was created and nothing "
            "changed: " + " | ".join(failures),
            "Fix what is named above (the token's scope, the target's name, a permission on the store or its KMS key), "
            "then re-run.",
        )


def _probe_one(target: Target) -> str:
    """Why ``target`` cannot be written ("" when it can)."""
    try:
        target.probe()
    except PipeError as exc:
        return exc.line()
    except Exception as exc:
        code, message = aws_error(exc)
        if not code:
            raise
        return f"AWS refused the write ({code}: {message})"
    return ""


def publish(
    places: Sequence[Target],
    pair: Credentials,
    held: Mapping[str, str | None],
    report: RotationReport,
    *,
    concurrency: int,
    say: Callable[[str], None],
    everywhere: bool = False,
    lease: Lease | None = None,
    store: Store | None = None,
) -> None:
    """Write ``pair`` to every target that does not hold it (every target with ``everywhere``),
    both variables, ``concurrency`` at a time; not to the store (it is promoted apart). After a
    failure no further target is started. Rotate and sync both publish this way."""
    todo = [
        t for t in places if t is not store and (everywhere or held.get(t.spec.text) != pair.access_key_id)
    ]
    failures: list[str] = []
    stop = threading.Event()

    def one(target: Target) -> tuple[Target, str | None, str]:
        if stop.is_set() or (lease is not None and lease.lost):
            return target, None, "skipped"
        try:
            return target, target.publish(pair), ""
        except PipeError as exc:
            stop.set()
            return target, None, exc.line()
        except Exception as exc:
            code, message = aws_error(exc)
            if not code:
                raise
            stop.set()
            return target, None, f"AWS refused the write ({code}: {message})"

    skipped = 0
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for target, readback, error in pool.map(one, todo):
            name = target.spec.text
            if error == "skipped":
                skipped += 1
            elif error or readback != pair.access_key_id:
                failures.append(f"{name}: {error or _misread(readback, pair.access_key_id)}")
            else:
                report.targets.setdefault(name, {})["after"] = pair.access_key_id
                say(f"Published {pair.access_key_id} to {name} (read back)")
    if lease is not None:
        lease.check()
    if failures:
        raise _not_published(pair, failures, len(todo), skipped, store)


def _misread(readback: str | None, expected: str) -> str:
    """Why a write's read-back is not the key written. Nothing to read back (an id variable
    that is secured, a store that lost it) is a failure too: the target may not hold the key."""
    if readback is None:
        return "the key id could not be read back after the write"
    return f"read back {readback}, expected {expected}"


def _not_published(
    pair: Credentials, failures: list[str], attempted: int, skipped: int, store: Store | None
) -> StateError:
    rest = f" ({skipped} more not started)" if skipped else ""
    if store is not None:
        hint = (
            "Fix the cause and re-run: the rotation resumes where it stopped (the key is in the store "
            f"{store.spec.text})."
        )
    else:
        hint = (
            "Fix the cause and re-run. With STORE=none the key's secret is not kept: the re-run writes a "
            "new key to every target, or, when some targets already hold this one, asks for a known pair."
        )
    return StateError(
        f"{len(failures)} of {attempted} targets did not take {pair.access_key_id}{rest}: "
        + " | ".join(failures),
        hint,
    )
