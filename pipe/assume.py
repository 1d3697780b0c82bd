"""ACTION=assume: get credentials, prove whose they are, hand them to the rest of the step."""

from __future__ import annotations

import time
from collections.abc import Callable

from pipe import handoff, sts
from pipe.aws import AwsClients, Credentials
from pipe.config import Route, Settings
from pipe.console import Console


def obtain(
    settings: Settings, clients: AwsClients, console: Console, clock: Callable[[], float] = time.time
) -> tuple[Credentials, sts.Identity]:
    """Credentials by the route the settings chose, proven by GetCallerIdentity (the identity
    must be the assumed role, in an allowed account) before anything uses them."""
    expected: str | None = None
    if settings.route is Route.OIDC:
        assert settings.role and settings.claims and settings.token
        console.info(
            f"Assuming {settings.role.arn} with the step's OIDC token (sub {settings.claims.sub}), "
            f"session {settings.session_name}, {settings.duration_seconds}s, STS in {settings.region}."
        )
        credentials = sts.assume_role_with_web_identity(
            clients.client("sts"),
            role=settings.role,
            session_name=settings.session_name,
            token=settings.token,
            claims=settings.claims,
            duration_seconds=settings.duration_seconds,
            session_policy=settings.session_policy,
            retry_timeout=settings.retry_timeout,
            now=clock(),
        )
        expected = sts.expected_arn(settings.role, settings.session_name)
    else:
        assert settings.access_key
        console.warning(settings.route_warning)
        key = settings.access_key
        credentials = Credentials(key.access_key_id, key.secret_access_key)
    console.secrets(*credentials.secrets())

    identity = sts.get_caller_identity(
        clients.client("sts", credentials),
        retry_timeout=settings.retry_timeout,
        fallback_key=settings.route is Route.ACCESS_KEY,
    )
    sts.verify_identity(identity, expected=expected, allowed_accounts=settings.allowed_accounts)
    console.info(f"GetCallerIdentity confirms {identity.arn} (account {identity.account}).")
    return credentials, identity


def run(
    settings: Settings, clients: AwsClients, console: Console, clock: Callable[[], float] = time.time
) -> str:
    handoff.preflight(settings.credentials_dir)
    credentials, identity = obtain(settings, clients, console, clock)
    document = {
        "Account": identity.account,
        "Arn": identity.arn,
        "UserId": identity.user_id,
        "RoleArn": settings.role.arn if settings.role else "",
        "SessionName": settings.session_name if settings.route is Route.OIDC else "",
        "Expiration": handoff.iso(credentials.expiration),
    }
    contents = {
        handoff.ENV_FILE: handoff.render_env(credentials, settings.region),
        handoff.CREDENTIALS_FILE: handoff.render_credentials_file(settings.profile_name, credentials),
        handoff.CONFIG_FILE: handoff.render_config_file(settings.profile_name, settings.region),
        handoff.IDENTITY_FILE: handoff.render_identity(document),
    }
    directory = settings.credentials_dir
    until = f" until {document['Expiration']}" if credentials.expiration else " (long-lived key, no expiry)"
    if settings.dry_run:
        console.info(f"DRY_RUN=true: would write {', '.join(contents)} in {directory}.")
        return f"DRY_RUN: credentials for {identity.arn}{until} verified; nothing written."
    handoff.write(directory, contents, handoff.owner_for(settings.clone_dir))
    console.info(
        f"Wrote {', '.join(contents)} in {directory} (profile {settings.profile_name}; "
        f"for the shared files set AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE)."
    )
    return f"{identity.arn}{until}. Next: source {directory / handoff.ENV_FILE}"
