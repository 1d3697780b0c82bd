"""ACTION=rotate and ACTION=sync: credentials, clients and targets wired to the rotation
protocol of pipe.rotation. Every IAM change is made with the run's own credentials (the
role's, with OIDC), never with the key being rotated, except in the self-service case,
where the only credentials are that key: then the calls after the new key is proven use
the new key."""

from __future__ import annotations

from typing import Any

from pipe import assume, rotation
from pipe.aws import AwsClients, Credentials
from pipe.bitbucket import Bitbucket
from pipe.config import KeyPair, RotationSettings, Route, Settings, TargetSpec
from pipe.console import Console
from pipe.errors import InputError
from pipe.rotation import Report, Rotation, StateError
from pipe.targets import BitbucketTarget, ProfileTarget, SecretsManagerTarget, SsmTarget, Target


def build_target(
    spec: TargetSpec,
    rot: RotationSettings,
    clients: AwsClients,
    credentials: Credentials,
    bitbucket: Bitbucket | None,
) -> Target:
    if spec.is_bitbucket:
        assert bitbucket is not None
        return BitbucketTarget(spec, bitbucket, rot.id_variable, rot.secret_variable)
    if spec.kind == "secretsmanager":
        return SecretsManagerTarget(spec, clients.client("secretsmanager", credentials))
    if spec.kind == "ssm":
        return SsmTarget(spec, clients.client("ssm", credentials))
    return ProfileTarget(spec, rot.credentials_file)


def _user(rot: RotationSettings, arn: str) -> str:
    if rot.user_name:
        return rot.user_name
    if ":user/" in arn:
        return arn.rsplit("/", 1)[1]
    raise InputError(
        "IAM_USER_NAME",
        "IAM_USER_NAME is required when the pipe runs as a role",
        "Set IAM_USER_NAME to the user whose key is rotated.",
    )


def _verifier(clients: AwsClients) -> Any:
    def verify(pair: KeyPair) -> Any:
        return clients.client(
            "sts", Credentials(pair.access_key_id, pair.secret_access_key)
        ).get_caller_identity()

    return verify


def run_rotate(
    settings: Settings, clients: AwsClients, console: Console, bitbucket: Bitbucket | None = None
) -> str:
    rot = settings.rotation
    assert rot is not None
    credentials, identity = assume.obtain(settings, clients, console)
    user = _user(rot, identity.arn)
    targets = [build_target(t, rot, clients, credentials, bitbucket) for t in rot.targets]
    store = next((t for t in targets if isinstance(t, SecretsManagerTarget | SsmTarget)), None)
    proc = Rotation(
        iam=clients.client("iam", credentials),
        verify=_verifier(clients),
        targets=targets,
        store=store,
        settings=rot,
        say=console.info,
    )
    own = settings.access_key if settings.route is Route.ACCESS_KEY else None
    facts = proc.facts(user, own)
    self_service = own is not None and any(k.id == own.access_key_id for k in facts.keys)
    if self_service:
        console.warning(
            f"Self-service: the run's own credentials are {user}'s key {own.access_key_id if own else ''}, "
            "the key being rotated. It creates the new key; every call after the new key is proven uses the new key."
        )
    plan = rotation.make_plan(facts, proc.policy())
    console.info(f"Rotation plan for {user} ({len(targets)} target{'s' if len(targets) != 1 else ''}):")
    console.lines(plan.lines(facts.held))
    report = Report(user, plan.state, settings.dry_run, previous=plan.current, current=plan.current)
    report.targets = {name: {"before": key} for name, key in facts.held.items()}
    if plan.state == "busy":
        report.write(settings.report_dir)
        return f"Another rotation of {user} is in progress; this run changed nothing."
    if plan.blocked:
        report.write(settings.report_dir)
        raise StateError(plan.blocked, plan.blocked_hint)
    if settings.dry_run:
        report.write(settings.report_dir)
        return f"DRY_RUN: the plan for {user} is above; nothing was changed."

    try:
        pair = _act(
            settings=settings,
            clients=clients,
            console=console,
            proc=proc,
            plan=plan,
            facts=facts,
            store=store,
            user=user,
            report=report,
            self_service=self_service,
        )
    except Exception:
        proc.release(user)
        report.state = "failed"
        report.write(settings.report_dir)
        raise
    if isinstance(pair, str):
        return pair
    report.state = "rotated" if plan.rotate else ("resumed" if plan.resume else plan.state)
    path = report.write(settings.report_dir)
    if pair is not None:
        return f"{user}: every target holds {pair.access_key_id}. Report: {path}"
    return f"{user}: nothing was due; every target holds {plan.current}. Report: {path}"


def _act(
    *,
    settings: Settings,
    clients: AwsClients,
    console: Console,
    proc: Rotation,
    plan: rotation.Plan,
    facts: rotation.Facts,
    store: Any,
    user: str,
    report: Report,
    self_service: bool,
) -> KeyPair | str | None:
    """The changes, in the protocol's order. A string: another run got there first."""
    for key, why in plan.delete_first:
        proc.delete_key(user, key)
        report.actions.append(f"deleted {key}: {why}")
        console.info(f"Deleted {key}: {why}.")
    pair = plan.resume
    if plan.rotate and pair is None:
        pair = _new_key(proc, user, store, report, console)
        if pair is None:
            report.write(settings.report_dir)
            return f"Another rotation of {user} created a key first; this run changed nothing."
        if self_service:
            proc.iam = clients.client("iam", Credentials(pair.access_key_id, pair.secret_access_key))
    if pair is not None:
        console.secrets(pair.secret_access_key)
        proc.heartbeat(user, pair.access_key_id)
        proc.publish(pair, facts.held, report, everywhere=plan.everywhere)
        if store is not None:
            store.publish(pair)
            report.targets.setdefault(store.spec.text, {})["after"] = pair.access_key_id
            report.actions.append(f"promoted {pair.access_key_id} to current in {store.spec.text}")
        proc.clear_marker(user)
        report.current = pair.access_key_id
    elif plan.clear_marker:
        proc.clear_marker(user)
        report.actions.append("cleared the marker of a stopped rotation")
    proc.retire(user, plan, report)
    return pair


def _new_key(proc: Rotation, user: str, store: Any, report: Report, console: Console) -> KeyPair | None:
    """Create, store as pending, prove. None when another run created a key first."""
    pair = proc.create(user, report)
    if pair is None:
        return None
    console.secrets(pair.secret_access_key)
    if store is not None:
        store.write_pending(pair)
        report.actions.append(f"stored {pair.access_key_id} as pending in {store.spec.text}")
        console.info(f"Stored {pair.access_key_id} as pending in {store.spec.text}.")
    proc.prove(user, pair, report)
    return pair


def run_sync(
    settings: Settings, clients: AwsClients, console: Console, bitbucket: Bitbucket | None = None
) -> str:
    rot = settings.rotation
    assert rot is not None and rot.source is not None
    credentials, _ = assume.obtain(settings, clients, console)
    source = build_target(rot.source, rot, clients, credentials, bitbucket)
    assert isinstance(source, SecretsManagerTarget | SsmTarget)
    pair = source.state().current
    if pair is None:
        raise StateError(
            f"{rot.source.text} holds no current key",
            "Run ACTION=rotate with it among TARGETS first, or fix SOURCE.",
        )
    console.secrets(pair.secret_access_key)
    try:
        _verifier(clients)(pair)
    except Exception:
        raise StateError(
            f"The key in {rot.source.text} ({pair.access_key_id}) does not work: nothing was published",
            "Run ACTION=rotate to replace it.",
        ) from None
    targets = [
        build_target(t, rot, clients, credentials, bitbucket)
        for t in rot.targets
        if t.text != rot.source.text
    ]
    proc = Rotation(
        iam=None, verify=_verifier(clients), targets=targets, store=None, settings=rot, say=console.info
    )
    held = {t.spec.text: t.read() for t in targets}
    report = Report("", "sync", settings.dry_run, current=pair.access_key_id)
    report.targets = {name: {"before": key} for name, key in held.items()}
    todo = [name for name, key in held.items() if key != pair.access_key_id]
    console.info(
        f"Sync plan: publish {pair.access_key_id} from {rot.source.text} to {', '.join(todo) or 'no target (all hold it)'}."
    )
    if settings.dry_run:
        report.write(settings.report_dir)
        return "DRY_RUN: the plan is above; nothing was changed."
    proc.publish(pair, held, report)
    path = report.write(settings.report_dir)
    return f"Every target holds {pair.access_key_id} from {rot.source.text}. Report: {path}"
