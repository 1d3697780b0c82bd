"""ACTION=assume: the run's credentials (signin.obtain), handed to the rest of the step:
credentials.env, the AWS shared files and identity.json in CREDENTIALS_DIR (and the step's
token, with CREDENTIALS_MODE=web-identity)."""

from __future__ import annotations

from pipe import handoff, sts
from pipe.aws import Clients
from pipe.config import Settings
from pipe.console import Console
from pipe.credentials import Credentials
from pipe.signin import obtain


def run(settings: Settings, clients: Clients, console: Console) -> str:
    directory = settings.credentials_dir
    handoff.preflight(directory, handoff.owner_for(settings.clone_dir))
    existing_credentials, existing_config = handoff.read_shared(directory)
    credentials, identity = obtain(settings, clients, console)
    final = settings.final_role
    document = {
        "Account": identity.account,
        "Arn": identity.arn,
        "UserId": identity.user_id,
        "RoleArn": final.arn if final else "",
        "SessionName": settings.session_name if final else "",
        "Expiration": handoff.iso(credentials.expiration),
    }
    web = _web_identity(settings)
    profile, region = settings.profile_name, settings.region
    contents: dict[str, str] = {}
    if web is not None:
        assert settings.token
        contents[handoff.TOKEN_FILE] = settings.token
        contents[handoff.ENV_FILE] = handoff.render_env_web_identity(
            web, region, profile, directory / handoff.CONFIG_FILE
        )
    else:
        contents[handoff.ENV_FILE] = handoff.render_env(credentials, region)
    contents[handoff.CREDENTIALS_FILE] = handoff.render_credentials_file(
        profile, None if web else credentials, existing_credentials
    )
    contents[handoff.CONFIG_FILE] = handoff.render_config_file(profile, region, existing_config, web)
    contents[handoff.IDENTITY_FILE] = handoff.render_identity(document)
    until = _until(credentials, document["Expiration"])
    if settings.dry_run:
        console.info(f"DRY_RUN=true: would write {', '.join(contents)} in {directory}.")
        return f"DRY_RUN: credentials for {identity.arn}{until} verified; nothing written."
    handoff.write(directory, contents, handoff.owner_for(settings.clone_dir))
    console.info(
        f"Wrote {', '.join(contents)} in {directory} (profile {profile}, other profiles kept; for the "
        "shared files set AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE)."
    )
    if web is not None:
        return f"{identity.arn}{until} verified; {_refresh(settings)} Next: source {directory / handoff.ENV_FILE}"
    return f"{identity.arn}{until}. Next: source {directory / handoff.ENV_FILE}"


def _web_identity(settings: Settings) -> handoff.WebIdentity | None:
    """CREDENTIALS_MODE=web-identity (config.load keeps it to the OIDC route)."""
    if settings.credentials_mode != "web-identity" or settings.role is None:
        return None
    chained = settings.hops[-1] if settings.hops else None
    return handoff.WebIdentity(
        role_arn=settings.role.arn,
        token_file=settings.credentials_dir / handoff.TOKEN_FILE,
        session_name=settings.session_name,
        chained_role_arn=chained.role.arn if chained else None,
        external_id=chained.external_id if chained else None,
        chained_duration=min(settings.duration_seconds, sts.CHAINED_MAX_SECONDS) if chained else None,
    )


def _until(credentials: Credentials, expiration: str) -> str:
    if credentials.expiration:
        return f" until {expiration}"
    if credentials.session_token:
        return " (temporary fallback key, expiry unknown)"
    return " (long-lived key, no expiry)"


def _refresh(settings: Settings) -> str:
    """What the SDK does with the token file, in one sentence for the ✔ line."""
    claims = settings.claims
    exp = handoff.iso_epoch(claims.exp) if claims and claims.exp is not None else "its exp"
    return (
        f"the SDK assumes the role itself through profile {settings.profile_name} (and the credentials.env "
        f"variables) and refreshes the session until the step's token expires ({exp})."
    )
