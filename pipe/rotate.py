"""ACTION=rotate and ACTION=sync: credentials, clients, the store and targets wired to the
rotation protocol of pipe.rotation. Every IAM change is made with the run's own credentials
(the role's, with OIDC), never with the key being rotated, except in the self-service case,
where the only credentials are that key: then every AWS call after the new key first passes
GetCallerIdentity (IAM, the store, the targets' AWS clients) is signed by the new key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipe import assume, rotation
from pipe.aws import AwsClients, Credentials
from pipe.bitbucket import Bitbucket
from pipe.config import KeyPair, RotationSettings, Route, Settings, TargetSpec
from pipe.console import Console
from pipe.errors import InputError
from pipe.rotation import Lease, Report, Rotation, StateError
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


def _store(
    rot: RotationSettings,
    user: str,
    targets: list[Target],
    clients: AwsClients,
    credentials: Credentials,
) -> tuple[Target | None, str]:
    """The durable store (a target of TARGETS, or a place of its own) and how it was chosen."""
    spec = rot.store_for(user)
    if spec is None:
        return None, "none (STORE=none)"
    if rot.store_choice is not None:
        how = "STORE"
    elif any(t.is_store for t in rot.targets):
        how = "the first secretsmanager:/ssm: target"
    else:
        how = "the default: TARGETS names no secretsmanager: or ssm: target"
    store = next((t for t in targets if t.spec.text == spec.text), None)
    if store is None:
        store = build_target(spec, rot, clients, credentials, None)
    return store, f"{spec.text} ({how})"


def run_rotate(
    settings: Settings, clients: AwsClients, console: Console, bitbucket: Bitbucket | None = None
) -> str:
    rot = settings.rotation
    assert rot is not None
    credentials, identity = assume.obtain(settings, clients, console)
    user = _user(rot, identity.arn)
    targets = [build_target(t, rot, clients, credentials, bitbucket) for t in rot.targets]
    store, store_text = _store(rot, user, targets, clients, credentials)
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
            "the key being rotated. It creates the new key; every call after the new key first passes "
            "GetCallerIdentity uses the new key."
        )
    plan = rotation.make_plan(facts, proc.policy())
    console.info(
        f"Rotation plan for {user} ({len(targets)} target{'s' if len(targets) != 1 else ''}; store {store_text}):"
    )
    console.lines(plan.lines(facts.held))
    if store is None:
        console.warning(
            "STORE=none: no durable store. A rotation interrupted after it created a key may not be "
            "resumable: the new secret exists only in the targets that took it."
        )
    report = Report(
        user,
        plan.state,
        settings.dry_run,
        previous=plan.current,
        current=plan.current,
        store=store.spec.text if store is not None else None,
    )
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
            clients=clients,
            console=console,
            proc=proc,
            plan=plan,
            facts=facts,
            user=user,
            report=report,
            self_service=self_service,
        )
    except Exception:
        report.state = "failed"
        report.write(settings.report_dir)
        raise
    if isinstance(pair, str):
        report.write(settings.report_dir)
        return pair
    done = {"due": "rotated", "resume": "resumed", "rollback": "rolled back", "repair": "repaired"}
    report.state = done.get(plan.state, plan.state)
    path = report.write(settings.report_dir)
    if pair is not None:
        return f"{user}: every target holds {pair.access_key_id}. Report: {path}"
    return f"{user}: nothing was due; every target holds {plan.current}. Report: {path}"


def _switcher(proc: Rotation, clients: AwsClients, pair: KeyPair) -> Callable[[], None]:
    """Self-service: from the new key's first successful GetCallerIdentity on, every AWS client
    of the run (IAM, the store's, the targets') signs with the new key."""

    def switch() -> None:
        credentials = Credentials(pair.access_key_id, pair.secret_access_key)
        proc.iam = clients.client("iam", credentials)
        places = [*proc.targets, *([proc.store] if proc.store is not None else [])]
        for place in places:
            if isinstance(place, SecretsManagerTarget):
                place.client = clients.client("secretsmanager", credentials)
            elif isinstance(place, SsmTarget):
                place.client = clients.client("ssm", credentials)

    return switch


def _act(
    *,
    clients: AwsClients,
    console: Console,
    proc: Rotation,
    plan: rotation.Plan,
    facts: rotation.Facts,
    user: str,
    report: Report,
    self_service: bool,
) -> KeyPair | str | None:
    """The changes, in the protocol's order. A string: another run got there first."""
    store = proc.store
    if plan.writes:
        proc.probe()
    lease = Lease(proc, user) if plan.writes or plan.delete_first else None
    try:
        if lease is not None:
            resumed = plan.resume.access_key_id if plan.resume else ""
            lease.acquire(key=resumed, phase="publish" if resumed else "create", everywhere=plan.everywhere)
        for key, why in plan.delete_first:
            proc.delete_key(user, key)
            report.actions.append(f"deleted {key}: {why}")
            console.info(f"Deleted {key}: {why}.")
        pair = plan.resume
        if plan.rotate:
            assert lease is not None
            pair = _new_key(
                proc,
                lease=lease,
                clients=clients,
                user=user,
                report=report,
                console=console,
                self_service=self_service,
            )
            if pair is None:
                lease.abandon()
                return f"Another rotation of {user} created a key first; this run changed nothing."
        elif pair is not None and plan.prove:
            console.secrets(pair.secret_access_key)
            proc.prove(user, pair, report, ours=False)
        if pair is not None:
            assert lease is not None
            console.secrets(pair.secret_access_key)
            lease.update(key=pair.access_key_id, phase="publish")
            proc.publish(pair, facts.held, report, everywhere=plan.everywhere, lease=lease)
            if store is not None:
                lease.check()
                store.publish(pair)
                report.targets.setdefault(store.spec.text, {})["after"] = pair.access_key_id
                report.actions.append(f"promoted {pair.access_key_id} to current in {store.spec.text}")
            report.current = pair.access_key_id
        if lease is not None:
            lease.finish()
    except BaseException:
        if lease is not None:
            lease.release()
        raise
    dead = facts.marker if lease is None and plan.clear_marker else None
    if dead is not None and proc.clear_dead_marker(user, dead):
        report.actions.append("cleared the marker of a stopped rotation")
    proc.retire(user, plan, report)
    return pair


def _new_key(
    proc: Rotation,
    *,
    lease: Lease,
    clients: AwsClients,
    user: str,
    report: Report,
    console: Console,
    self_service: bool,
) -> KeyPair | None:
    """Create, store as pending, prove. None when another run created a key first. A key that
    cannot be stored is deleted again: nothing was published."""
    pair = proc.create(user, lease, report)
    if pair is None:
        return None
    console.secrets(pair.secret_access_key)
    store = proc.store
    if store is not None:
        try:
            store.write_pending(pair)
        except Exception:
            proc.delete_key(user, pair.access_key_id)
            report.actions.append(
                f"deleted {pair.access_key_id}: it could not be stored, nothing was published"
            )
            raise
        report.actions.append(f"stored {pair.access_key_id} as pending in {store.spec.text}")
        console.info(f"Stored {pair.access_key_id} as pending in {store.spec.text}.")
    switch = _switcher(proc, clients, pair) if self_service else None
    proc.prove(user, pair, report, on_success=(lambda: lease.locked(switch)) if switch else None)
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
