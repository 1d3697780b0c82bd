"""ACTION=assume: the run's credentials (credentials.obtain), handed to the rest of the step:
credentials.env, the AWS shared files and identity.json in CREDENTIALS_DIR."""

from __future__ import annotations

from pipe import handoff
from pipe.aws import Clients
from pipe.config import Settings
from pipe.console import Console
from pipe.credentials import Route, obtain


def run(settings: Settings, clients: Clients, console: Console) -> str:
    handoff.preflight(settings.credentials_dir)
    credentials, identity = obtain(settings, clients, console)
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
