"""ACTION=rotate: the run's credentials, then facts -> plan -> print -> executor -> report.

The plan is pure (pipe.rotation.planner); the executor (pipe.rotation.executor) reads the facts
and carries the plan out whole, returning one outcome; rotation.json is written once, here,
whatever the outcome (a failure is raised after it is written)."""

from __future__ import annotations

from pipe.aws import Clients
from pipe.config import Settings
from pipe.console import Console
from pipe.credentials import Route
from pipe.errors import InputError
from pipe.rotation.executor import Executor
from pipe.rotation.planner import Policy, make_plan
from pipe.signin import obtain


def run(settings: Settings, clients: Clients, console: Console) -> str:
    rot = settings.rotation
    assert rot is not None
    credentials, identity = obtain(settings, clients, console)
    user = _user(rot.user_name, identity.arn)
    executor = Executor.for_run(rot, user, clients, credentials, console)
    facts = executor.facts(settings.access_key if settings.route is Route.ACCESS_KEY else None)
    if facts.self_service and facts.own is not None:
        console.warning(
            f"Self-service: the run's own credentials are {user}'s key {facts.own.access_key_id}, "
            "the key being rotated. It creates the new key; every call after the new key first passes "
            "GetCallerIdentity uses the new key."
        )
    plan = make_plan(facts, Policy.from_settings(rot))
    count = len(executor.targets)
    store = rot.store_for(user)
    chosen = f"{store.text} ({rot.store_reason()})" if store is not None else "none (STORE=none)"
    if store is not None and store.kind == "ssm" and rot.store_kms_key_id:
        chosen += f", encrypted with {rot.store_kms_key_id}"
    console.info(f"Rotation plan for {user} ({count} target{'s' if count != 1 else ''}; store {chosen}):")
    console.lines(plan.lines(facts.held))
    if store is None:
        console.warning(
            "STORE=none: no durable store. A rotation interrupted after it created a key may not be "
            "resumable: the new secret exists only in the targets that took it."
        )
    outcome = executor.execute(plan, facts, dry_run=settings.dry_run)
    path = outcome.report.write(settings.report_dir, console.clean)
    if outcome.error is not None:
        raise outcome.error
    return outcome.summary(path)


def _user(user_name: str | None, arn: str) -> str:
    """IAM_USER_NAME, or the user of the run's own key (the self-service case)."""
    if user_name:
        return user_name
    if ":user/" in arn:
        return arn.rsplit("/", 1)[1]
    raise InputError(
        "IAM_USER_NAME",
        "IAM_USER_NAME is required when the pipe runs as a role",
        "Set IAM_USER_NAME to the user whose key is rotated.",
    )
