"""ACTION=sync: publish the current key of a store (SOURCE) to TARGETS, once it is proven to
work. Nothing is created or retired: ACTION=rotate does that."""

from __future__ import annotations

from pipe.aws import Clients
from pipe.config import Settings
from pipe.console import Console
from pipe.credentials import obtain
from pipe.errors import StateError
from pipe.report import RotationReport
from pipe.rotation.executor import verify
from pipe.rotation.publish import publish
from pipe.targets import build, build_store


def run(settings: Settings, clients: Clients, console: Console) -> str:
    rot = settings.rotation
    assert rot is not None and rot.source is not None
    credentials, _ = obtain(settings, clients, console)
    source = build_store(rot.source, clients.aws, credentials)
    pair = source.state().current
    if pair is None:
        raise StateError(
            f"{rot.source.text} holds no current key",
            "Run ACTION=rotate with it among TARGETS first, or fix SOURCE.",
        )
    console.secrets(pair.secret_access_key)
    try:
        verify(clients.aws, pair)
    except Exception:
        raise StateError(
            f"The key in {rot.source.text} ({pair.access_key_id}) does not work: nothing was published",
            "Run ACTION=rotate to replace it.",
        ) from None
    places = [build(t, rot, clients, credentials) for t in rot.targets if t.text != rot.source.text]
    held = {t.spec.text: t.read() for t in places}
    report = RotationReport("", "sync", settings.dry_run, current=pair.access_key_id)
    report.targets = {name: {"before": key} for name, key in held.items()}
    todo = [name for name, key in held.items() if key != pair.access_key_id]
    console.info(
        f"Sync plan: publish {pair.access_key_id} from {rot.source.text} to {', '.join(todo) or 'no target (all hold it)'}."
    )
    if settings.dry_run:
        report.write(settings.report_dir)
        return "DRY_RUN: the plan is above; nothing was changed."
    publish(places, pair, held, report, concurrency=rot.concurrency, say=console.info)
    path = report.write(settings.report_dir)
    return f"Every target holds {pair.access_key_id} from {rot.source.text}. Report: {path}"
