"""The first run of ACTION=check, before the AWS side exists: no AWS_OIDC_ROLE_ARN yet.

A newcomer has no role to give the check. This run needs none: it reads the step's token,
verifies its signature against Bitbucket's keys (as the check does), and prints what the AWS
side needs from it: the IAM OIDC provider's URL and audience, and the one
``aws cloudformation deploy`` of templates/oidc.yaml (``pipe.templates``) with this token's
workspace, repository (and deployment environment). It makes no call to AWS and always ends
NOT READY, with the deploy command as its hint: there is no role to assume yet."""

from __future__ import annotations

from pipe import oidc, templates
from pipe.config import Settings
from pipe.console import Console
from pipe.errors import NotReady

NO_ROLE = "NOT READY: AWS_OIDC_ROLE_ARN is not set, so there is no role to assume yet"


def run(settings: Settings, console: Console) -> str:
    """Print the AWS side to deploy for this step's token; raise NotReady (always)."""
    token, claims = settings.token, settings.claims
    if not token or claims is None:
        raise NotReady(
            f"{NO_ROLE}, and this step has no OIDC token (BITBUCKET_STEP_OIDC_TOKEN is empty)",
            "Add `oidc: true` to the step and run ACTION=check again: it prints the AWS side to deploy.",
        )
    console.info("OIDC migration check, first run (no AWS_OIDC_ROLE_ARN yet): the AWS side this step needs")
    console.lines(claims.summary())
    problem = oidc.issuer_problem(claims.iss, settings.bitbucket_url)
    if problem:
        raise NotReady(
            f"{NO_ROLE}, and {problem}",
            "Use the step's own token: add `oidc: true` to the step and do not set BITBUCKET_STEP_OIDC_TOKEN yourself.",
        )
    verified, how = oidc.verify_signature(token, claims, settings.bitbucket_url, network=settings.network)
    if verified is False:
        raise NotReady(
            f"{NO_ROLE}, and the token's {how}",
            "Use the step's own token: do not set BITBUCKET_STEP_OIDC_TOKEN yourself.",
        )
    console.lines([how])
    deploy = templates.oidc_stack(
        claims, repo_slug=settings.repo_slug, create_provider=True, max_session=settings.duration_seconds
    )
    if deploy is None:
        raise NotReady(
            f"{NO_ROLE}, and the token lacks the workspace or repository UUID templates/oidc.yaml needs",
            "Use the step's own token: add `oidc: true` to the step.",
        )
    console.lines(
        [
            f"provider URL {claims.iss}",
            f"audience     {claims.aud}",
            f"deploy       {deploy.command()}",
            f"             ({templates.OIDC_TEMPLATE} of the pipe's repository; CreateProvider=false when "
            f"the account already has a provider for {claims.provider})",
        ]
    )
    raise NotReady(
        NO_ROLE,
        f"Deploy {templates.OIDC_TEMPLATE}: {deploy.command()}, then set AWS_OIDC_ROLE_ARN to the stack's "
        "RoleArn output and run ACTION=check again.",
    )
