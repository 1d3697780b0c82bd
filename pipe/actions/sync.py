"""ACTION=sync: publish the current key of a store (SOURCE) to TARGETS, once it is proven to
work. Nothing is created or retired: ACTION=rotate does that.

Sync takes no lease (it would need iam:TagUser), but it reads the rotation's pending marker on
the key's IAM user just before it writes: while a rotation of that user is live, sync changes
nothing and ends ✔ (like a rotation that finds another one in progress), so it never publishes
the key being replaced back over the new one. A rotation of a user at the 50-tag quota has no
marker: its claim in the store's pending slot (``pipe.stores``) counts the same, and is never
read as a key. rotation.json is written whatever the outcome."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pipe.aws import Clients
from pipe.config import Settings
from pipe.console import Console
from pipe.credentials import Credentials
from pipe.errors import StateError, is_aws_code
from pipe.report import RotationReport
from pipe.rotation import marker as markers
from pipe.rotation.executor import verify
from pipe.rotation.publish import publish
from pipe.signin import obtain
from pipe.target_factory import build, build_store


def run(settings: Settings, clients: Clients, console: Console) -> str:
    rot = settings.rotation
    assert rot is not None and rot.source is not None
    credentials, _ = obtain(settings, clients, console)
    source = build_store(rot.source, clients.aws, credentials, rot.store_kms_key_id)
    state = source.state()
    pair = state.current
    if pair is None and state.pending is not None:
        raise StateError(
            f"{rot.source.text} holds no proven key yet: its only key, {state.pending.access_key_id}, is "
            "pending (a rotation stored it and has not finished); nothing was published",
            "Run ACTION=rotate for the key's IAM user to finish that rotation (or wait for its run to "
            "end), then re-run the sync.",
        )
    if pair is None and state.claim is not None:
        raise StateError(
            f"{rot.source.text} holds no proven key yet: a rotation claimed it (started "
            f"{_when(state.claim.started)}) and has not stored a key; nothing was published",
            "Run ACTION=rotate for the key's IAM user to finish that rotation (or wait for its run to "
            "end), then re-run the sync.",
        )
    if pair is None:
        raise StateError(
            f"{rot.source.text} holds no current key",
            "Run ACTION=rotate with it among TARGETS first, or fix SOURCE.",
        )
    console.secrets(pair.secret_access_key)
    try:
        identity = verify(clients.aws, pair)
    except Exception:
        raise StateError(
            f"The key in {rot.source.text} ({pair.access_key_id}) does not work: nothing was published",
            "Run ACTION=rotate to replace it.",
        ) from None
    user = _user(identity)
    places = [build(t, rot, clients, credentials) for t in rot.targets if t.text != rot.source.text]
    held = {t.spec.text: t.read() for t in places}
    report = RotationReport(user, "sync", settings.dry_run, current=pair.access_key_id)
    report.targets = {name: {"before": key} for name, key in held.items()}
    todo = [name for name, key in held.items() if key != pair.access_key_id]
    console.info(
        f"Sync plan: publish {pair.access_key_id} from {rot.source.text} to {', '.join(todo) or 'no target (all hold it)'}."
    )
    try:
        if settings.dry_run:
            return "DRY_RUN: the plan is above; nothing was changed."
        live_claim = state.claim is not None and state.claim.alive(time.time(), rot.lease_seconds)
        if live_claim or (user and _rotating(clients, credentials, user, rot.lease_seconds, console)):
            report.state = "busy"
            return f"A rotation of {user or 'the key'} is in progress; sync changed nothing (re-run it once that rotation ends)."
        publish(places, pair, held, report, concurrency=rot.concurrency, say=console.info)
    except BaseException:
        report.state = "failed"
        raise
    finally:
        path = report.write(settings.report_dir, console.clean)
    return f"Every target holds {pair.access_key_id} from {rot.source.text}. Report: {path}"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _user(identity: Any) -> str:
    """The IAM user whose key the store holds ("" when GetCallerIdentity names no user)."""
    arn = str(identity.get("Arn", "")) if isinstance(identity, dict) else ""
    return arn.rsplit("/", 1)[1] if ":user/" in arn else ""


def _rotating(clients: Clients, credentials: Credentials, user: str, lease: int, console: Console) -> bool:
    """A live pending marker on ``user``: a rotation is replacing the key right now. A run that
    may not read the user's tags (iam:ListUserTags) says so and goes on, as before."""
    try:
        found = markers.read(clients.aws.client("iam", credentials), user)
    except Exception as exc:
        if not is_aws_code(exc, "AccessDenied"):
            raise
        console.warning(
            f"Could not read the rotation marker of {user} (iam:ListUserTags was denied): a rotation in "
            "progress would not be noticed. Allow iam:ListUserTags on the user to the sync role."
        )
        return False
    return found is not None and found.alive(time.time(), lease)
