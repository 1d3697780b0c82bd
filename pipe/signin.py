"""The credential step every action begins with: ``obtain`` gets the run's own credentials by
the route the settings chose (the step's OIDC token, or the fallback key), through each
sts:AssumeRole hop, and proves whose they are before anything uses them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipe import oidc, sts
from pipe.credentials import Credentials, Route

if TYPE_CHECKING:
    from pipe.aws import Clients
    from pipe.config import Settings
    from pipe.console import Console


def obtain(
    settings: Settings, clients: Clients, console: Console, clock: Callable[[], float] = time.time
) -> tuple[Credentials, sts.Identity]:
    """Credentials by the route the settings chose, then through each sts:AssumeRole hop
    (AWS_ROLE_ARN_FOR_KEYS, AWS_CHAINED_ROLE_ARN), proven by GetCallerIdentity (the identity
    must be the last role assumed, in an allowed account) before anything uses them."""
    credentials, caller = _first(settings, clients, console, clock)
    expected = caller or None
    for index, hop in enumerate(settings.hops):
        last = index == len(settings.hops) - 1
        # Only the last session is handed on: it gets the duration and the session policies; the
        # ones before it live just long enough for the next AssumeRole.
        duration = _duration(settings, console, hop, chained=bool(caller)) if last else INTERMEDIATE_SECONDS
        who = caller or f"the fallback key {credentials.access_key_id}"
        console.info(
            f"Assuming {hop.role.arn} ({hop.variable}) as {who} with sts:AssumeRole, {duration}s"
            + (", with an external id." if hop.external_id else ".")
        )
        block = sts.assume_role(
            clients.aws.client("sts", credentials),
            hop=hop,
            caller=who,
            session_name=settings.session_name,
            duration_seconds=duration,
            session_policy=settings.session_policy if last else None,
            policy_arns=settings.session_policy_arns if last else (),
            retry_timeout=settings.retry_timeout,
        )
        credentials = Credentials.from_sts(block)
        console.secrets(*credentials.secrets())
        caller = expected = sts.expected_arn(hop.role, settings.session_name)

    identity = sts.get_caller_identity(
        clients.aws.client("sts", credentials),
        retry_timeout=settings.retry_timeout,
        fallback_key=settings.route is Route.ACCESS_KEY and not settings.hops,
    )
    sts.verify_identity(identity, expected=expected, allowed_accounts=settings.allowed_accounts)
    console.info(f"GetCallerIdentity confirms {identity.arn} (account {identity.account}).")
    return credentials, identity


# The session of a role that only assumes the next one (AWS's minimum).
INTERMEDIATE_SECONDS = 900


def _first(
    settings: Settings, clients: Clients, console: Console, clock: Callable[[], float]
) -> tuple[Credentials, str]:
    """The first credentials, and the role session they are ("" for the fallback key)."""
    if settings.route is not Route.OIDC:
        assert settings.access_key
        console.warning(settings.route_warning)
        console.secrets(*settings.access_key.secrets())
        return settings.access_key, ""
    assert settings.role and settings.claims and settings.token
    now = clock()
    last = not settings.hops
    duration = settings.duration_seconds if last else INTERMEDIATE_SECONDS
    console.info(
        f"Assuming {settings.role.arn} with the step's OIDC token (sub {settings.claims.sub}; "
        f"{oidc.expiry_text(settings.claims, now)}), session {settings.session_name}, {duration}s, "
        f"STS in {settings.region}."
    )
    block = sts.assume_role_with_web_identity(
        clients.aws.client("sts"),
        role=settings.role,
        session_name=settings.session_name,
        token=settings.token,
        claims=settings.claims,
        duration_seconds=duration,
        session_policy=settings.session_policy if last else None,
        policy_arns=settings.session_policy_arns if last else (),
        retry_timeout=settings.retry_timeout,
        now=now,
    )
    credentials = Credentials.from_sts(block)
    console.secrets(*credentials.secrets())
    return credentials, sts.expected_arn(settings.role, settings.session_name)


def _duration(settings: Settings, console: Console, hop: sts.Hop, *, chained: bool) -> int:
    """AWS_ROLE_DURATION_SECONDS for the last hop, capped at an hour when a role session assumes
    it (role chaining), as AWS caps it, with a warning that says so."""
    asked = settings.duration_seconds
    if chained and asked > sts.CHAINED_MAX_SECONDS:
        console.warning(
            f"AWS caps a session assumed by a role session (role chaining) at one hour: {hop.role.arn} "
            f"gets {sts.CHAINED_MAX_SECONDS}s, not the {asked}s of AWS_ROLE_DURATION_SECONDS."
        )
        return sts.CHAINED_MAX_SECONDS
    return asked
