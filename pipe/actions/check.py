"""ACTION=check: can this repository drop its static AWS keys and use OIDC? When not, say
exactly why and what to change.

The token (present? claims, clock, signature against the issuer's JWKS), the AWS side with
whatever the run may read (the IAM OIDC provider and its audiences; the role's trust policy
from iam:GetRole, or TRUST_POLICY_FILE, evaluated statement by statement; trust that is too
broad; MaxSessionDuration), then the real AssumeRoleWithWebIdentity and GetCallerIdentity.
The verdict is READY or NOT READY, with findings by severity, in oidc-check.json and
oidc-check.md. When the provider or the role's trust is what is wrong, the findings also give
the fix from the template that made the role (its tags; pipe.templates): the update of its
stack, or the deployment environment to run the step in (a role that changes keys keeps its
environment); for a role no template made, the `aws cloudformation deploy` of templates/oidc.yaml."""

# Over 300 lines: the check's readings (token, assume, provider, trust policy), the template
# advice and its verdict, each a short function; what to deploy is decided in pipe.templates,
# legacy keys are in pipe.legacy, the reports in pipe.report.

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pipe import bootstrap, legacy, oidc, sts, templates, trust_policy
from pipe.aws import Clients
from pipe.config import Settings
from pipe.console import Console
from pipe.credentials import Credentials
from pipe.errors import InputError, NotReady, PipeError, aws_error
from pipe.report import CheckReport, Place, insights_data, insights_notes, post_insights
from pipe.signin import obtain
from pipe.trust_policy import Finding

SKEW_WARNING_SECONDS = 60
# What templates/oidc.yaml sets right: a missing provider, a missing role, a trust policy that
# refuses this step or admits more, a session too short.
TEMPLATE_FIXES = {
    "no-provider",
    "no-role",
    "trust-condition",
    "trust-empty",
    "trust-deny",
    "max-session",
    "no-sub",
    "sub-any",
    "no-aud",
    "principal-any",
    "other-principal",
    "other-workspace",
    "other-environment",
}
NO_PROVIDER = "No OpenIDConnect provider found"
# IAM's MaxSessionDuration of a role that does not say (GetRole always does; a trust policy
# file never does).
IAM_DEFAULT_MAX_SESSION = 3600


def _token(settings: Settings, report: CheckReport, now: float) -> None:
    claims, token = settings.claims, settings.token
    if not token or claims is None:
        report.add(
            "error",
            "no-token",
            "This step has no OIDC token (BITBUCKET_STEP_OIDC_TOKEN is empty)",
            "Add `oidc: true` to the step.",
        )
        return
    report.facts["token"] = {
        "iss": claims.iss,
        "aud": claims.aud,
        "sub": claims.sub,
        "repositoryUuid": claims.repository_uuid,
        "branchName": claims.branch,
        "deploymentEnvironmentUuid": claims.deployment_environment_uuid or None,
        "iat": claims.iat,
        "exp": claims.exp,
    }
    if claims.exp is not None and claims.exp <= now:
        report.add(
            "error",
            "token-expired",
            f"The token has expired: {oidc.expiry_text(claims, now)}",
            "Run the check early in the step; if the runner's clock is wrong, fix its time sync (NTP).",
        )
    if claims.iat is not None and claims.iat - now > SKEW_WARNING_SECONDS:
        report.add(
            "warning",
            "clock-skew",
            f"The token was issued {int(claims.iat - now)}s in the future: this machine's clock is behind",
            "Fix the runner's time sync (NTP).",
        )
    problem = oidc.issuer_problem(claims.iss, settings.bitbucket_url)
    if problem:
        report.add(
            "warning",
            "issuer-not-bitbucket",
            f"{problem[0].upper()}{problem[1:]}: the check does not fetch keys from it, and cannot vouch for this token",
            "Use the step's own token: add `oidc: true` to the step and do not set BITBUCKET_STEP_OIDC_TOKEN yourself.",
        )
    verified, how = oidc.verify_signature(token, claims, settings.bitbucket_url, network=settings.network)
    report.facts["signature"] = how
    if verified is False:
        report.add(
            "error",
            "signature",
            how.capitalize(),
            "Use the step's own token: do not set BITBUCKET_STEP_OIDC_TOKEN yourself.",
        )
    elif verified is None:
        report.add("info", "signature-unverified", how.capitalize())


def _assume(
    settings: Settings, clients: Clients, console: Console, report: CheckReport
) -> Credentials | None:
    """The real thing, as ACTION=assume does it: AssumeRoleWithWebIdentity, then the identity check."""
    if not (settings.role and settings.claims and settings.token):
        return None
    try:
        credentials, identity = obtain(settings, clients, console)
    except PipeError as error:
        report.facts["assume"] = {"ok": False, "error": error.message}
        report.add(
            "error",
            "assume-failed",
            f"AssumeRoleWithWebIdentity did not give verified credentials: {error.message}",
            error.hint,
        )
        return None
    report.facts["assume"] = {"ok": True, "identity": identity.arn, "account": identity.account}
    report.add("info", "assumed", f"AssumeRoleWithWebIdentity and GetCallerIdentity worked: {identity.arn}")
    return credentials


def _provider(iam: Any, settings: Settings, report: CheckReport) -> None:
    claims, role = settings.claims, settings.role
    if claims is None or role is None:
        return
    arn = oidc.provider_arn(claims, role.account, role.partition)
    try:
        provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    except Exception as exc:
        code, message = aws_error(exc)
        if code == "NoSuchEntity":
            report.add(
                "error",
                "no-provider",
                f"There is no IAM OIDC identity provider for {claims.iss} in account {role.account}",
                f"aws iam create-open-id-connect-provider --url {claims.iss} --client-id-list {claims.aud}",
            )
        elif code:
            report.unread.append(f"the IAM OIDC provider {arn}: {code} ({message})")
        else:
            raise
        return
    audiences = list(provider.get("ClientIDList", []))
    report.facts["provider"] = {"arn": arn, "audiences": audiences}
    if claims.aud not in audiences:
        braced = any(
            a.endswith("}") and a.strip("{}").endswith(claims.aud.rsplit("/", 1)[-1]) for a in audiences
        )
        report.add(
            "error",
            "audience",
            f"The provider's audiences ({', '.join(audiences) or 'none'}) lack the token's aud {claims.aud}"
            + (" (they have the workspace UUID in braces)" if braced else ""),
            f"aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {arn} --client-id {claims.aud}",
        )


def _policy(
    iam: Any, settings: Settings, report: CheckReport, why_not: str = ""
) -> tuple[dict[str, Any] | None, int | None]:
    role = settings.role
    assert role is not None
    if iam is not None:
        try:
            answer = iam.get_role(RoleName=role.name)["Role"]
        except Exception as exc:
            code, message = aws_error(exc)
            if code == "NoSuchEntity":
                report.add(
                    "error",
                    "no-role",
                    f"The role {role.arn} does not exist",
                    "Create it, or fix AWS_OIDC_ROLE_ARN.",
                )
                return None, None
            if not code:
                raise
            report.unread.append(f"the role's trust policy (iam:GetRole): {code} ({message})")
        else:
            document = answer["AssumeRolePolicyDocument"]
            policy = json.loads(unquote(document)) if isinstance(document, str) else dict(document)
            report.facts["trust_policy_source"] = "iam:GetRole"
            # GetRole's answer holds the role's tags: the stack and template that made it.
            tags = {t["Key"]: t["Value"] for t in answer.get("Tags", [])}
            if tags.get(templates.STACK_TAG):
                report.facts["role_stack"] = tags[templates.STACK_TAG]
            if tags.get(templates.TEMPLATE_TAG):
                report.facts["role_template"] = tags[templates.TEMPLATE_TAG]
            environment = templates.role_environment(policy, settings.claims) if settings.claims else ""
            if environment:
                report.facts["role_environment"] = environment
            return policy, int(answer.get("MaxSessionDuration", IAM_DEFAULT_MAX_SESSION))
    path = settings.check.trust_policy_file
    if path is None:
        if iam is None:
            report.unread.append(
                f"the role's trust policy: {why_not or 'no credentials to read IAM with'}; "
                "set TRUST_POLICY_FILE to check it anyway"
            )
        return None, None
    try:
        policy = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            "TRUST_POLICY_FILE",
            f"TRUST_POLICY_FILE {path} cannot be read as JSON ({exc})",
            "Point it at the role's trust policy document.",
        ) from None
    report.facts["trust_policy_source"] = f"TRUST_POLICY_FILE ({path})"
    return policy, None


def _trust(policy: dict[str, Any], max_session: int | None, settings: Settings, report: CheckReport) -> None:
    claims, role = settings.claims, settings.role
    assert role is not None
    if claims is not None:
        provider_arn = oidc.provider_arn(claims, role.account, role.partition)
        evaluation = trust_policy.evaluate(policy, claims=claims, provider_arn=provider_arn)
        report.facts["trust_policy_admits_token"] = evaluation.allowed
        if evaluation.denied_by is not None:
            report.add(
                "error",
                "trust-deny",
                f"{evaluation.denied_by.name} denies this token explicitly",
                "Remove or narrow the Deny statement.",
            )
        elif not evaluation.allowed:
            for statement in evaluation.statements:
                if statement.effect != "Allow":
                    continue
                reasons = [statement.principal_why] if not statement.principal_ok else []
                reasons += (
                    []
                    if statement.action_ok
                    else ["its Action does not include sts:AssumeRoleWithWebIdentity"]
                )
                reasons += [f"{c.operator} {c.key}: {c.why}" for c in statement.conditions if not c.ok]
                fixes = sorted({c.fix for c in statement.conditions if not c.ok and c.fix})
                report.add(
                    "error",
                    "trust-condition",
                    f"The trust policy's {statement.name} does not admit this token: " + "; ".join(reasons),
                    " and ".join(fixes)
                    or "\n".join(oidc.trust_statement_lines(claims, role.account, role.partition)),
                )
            if not evaluation.statements:
                report.add(
                    "error",
                    "trust-empty",
                    "The trust policy has no statement",
                    "\n".join(oidc.trust_statement_lines(claims, role.account, role.partition)),
                )
        report.extend(evaluation.findings)
    if max_session is not None and settings.duration_seconds > max_session:
        report.add(
            "error",
            "max-session",
            f"The role's MaxSessionDuration ({max_session}s) is below AWS_ROLE_DURATION_SECONDS ({settings.duration_seconds}s)",
            "Lower AWS_ROLE_DURATION_SECONDS, or raise the role's MaxSessionDuration.",
        )


def run(settings: Settings, clients: Clients, console: Console) -> str:
    if settings.check.scope == "workspace":  # the migration report of a workspace
        from pipe.actions import check_workspace

        return check_workspace.run(settings, clients, console)
    if settings.role is None:
        return bootstrap.run(settings, console)  # no role yet: the AWS side to deploy
    found = CheckReport(settings.role.arn)
    found.facts["region"] = settings.region
    _token(settings, found, time.time())
    assumed = _assume(settings, clients, console, found)
    iam, why_not = _iam_reader(settings, clients, assumed, found)
    if iam is not None:
        _provider(iam, settings, found)
    elif settings.claims:
        found.unread.append(
            f"the IAM OIDC provider: {why_not or 'no credentials to read IAM with'} (the role could not be "
            "assumed, and no AWS_ACCESS_KEY_ID of its account was given)"
        )
    policy, max_session = _policy(iam, settings, found, why_not)
    if policy is not None:
        _trust(policy, max_session, settings, found)
    _template(settings, found, clients.bitbucket)
    found.verdict = "READY" if assumed and not found.errors else "NOT READY"
    retirer = (
        legacy.Retirer(
            clients.aws.client("iam", assumed), clients.aws.client("sts", assumed), settings.role.account
        )
        if assumed
        else None
    )
    legacy.review(
        settings=settings,
        bitbucket=clients.bitbucket(),
        iam=_legacy_reader(settings, clients, assumed),
        retirer=retirer,
        report=found,
        console=console,
    )
    path = found.write(settings.report_dir, console.clean)
    _post(settings, found, console)
    return _verdict(settings.role.arn, found, path, console)


def _template(settings: Settings, found: CheckReport, bitbucket: Callable[[], Any]) -> None:
    """The fix of what the check found wrong from the template that made the role (its tags),
    or templates/oidc.yaml for a role no template made, as findings: the deploy, and the
    deployment environment to run the step in when the role admits only that one."""
    assume_error = str(found.facts.get("assume", {}).get("error", ""))
    codes = {f.code for f in found.findings}
    wrong = codes & TEMPLATE_FIXES or NO_PROVIDER in assume_error or "AccessDenied" in assume_error
    claims = settings.claims
    if claims is None or not wrong:
        return
    advice = templates.role_fix(
        claims,
        repo_slug=settings.repo_slug,
        create_provider="no-provider" in codes or NO_PROVIDER in assume_error,
        role_stack=str(found.facts.get("role_stack", "")),
        role_template=str(found.facts.get("role_template", "")),
        role_env=str(found.facts.get("role_environment", "")),
        max_session=settings.duration_seconds,
    )
    if advice is None:
        return
    if advice.run_in:
        name = _environment_name(settings, bitbucket(), advice.run_in)
        where = (
            f"in deployment environment {claims.deployment_environment_uuid}"
            if claims.in_deployment
            else "in no deployment environment"
        )
        fix = f"Run this step in that environment: add `deployment: {name}` to it in bitbucket-pipelines.yml."
        found.add(
            "info",
            "deployment-environment",
            f"The role admits only this repository's steps in deployment environment {{{advice.run_in}}}; this step runs {where}",
            fix if advice.deploy else f"{fix} {advice.note}".strip(),
        )
        if not claims.in_deployment:  # the corrected trust line would admit every step: not that
            found.findings[:] = [
                replace(f, fix=fix) if f.code == "trust-condition" and ":sub" in f.fix else f
                for f in found.findings
            ]
    elif advice.note:
        found.add("info", "role-template", advice.note.split(": ", 1)[0], advice.note)
    deploy = advice.deploy
    if deploy is None:
        return
    found.facts["deploy_template"] = deploy.template
    found.add(
        "info",
        "deploy-template",
        (
            f"Updating stack {deploy.stack} ({deploy.template}) makes its role admit"
            if deploy.update
            else f"{deploy.template} sets up the provider and a role that admits"
        )
        + " this repository's steps"
        + (" in this deployment environment" if claims.in_deployment else "")
        + ", and nothing else"
        + (
            ""
            if deploy.update or found.facts.get("trust_policy_source") == "iam:GetRole"
            else " (the role's tags were not read: if rotation.yaml or audit-hub.yaml made it, update "
            "that stack instead, and keep its DeploymentEnvironmentUuid)"
        )
        + (f". {advice.note}" if advice.note else ""),
        deploy.text(),
    )


def _environment_name(settings: Settings, bitbucket: Any, uuid: str) -> str:
    """The deployment environment's name, from Bitbucket when the run may read it."""
    if bitbucket is not None:
        try:
            return str(bitbucket.environment(settings.workspace, settings.repo_slug, "{" + uuid + "}").name)
        except PipeError:
            pass
    return f"<the name of environment {{{uuid}}}>"


def _iam_reader(
    settings: Settings, clients: Clients, assumed: Credentials | None, found: CheckReport
) -> tuple[Any, str]:
    """IAM to read the role and the provider with: the fallback key when one is given and it is
    of the role's account (GetCallerIdentity says which: IAM names are per account, so a key of
    another account would read another role, or none), else the assumed role. (None, why) when
    neither may read them."""
    assert settings.role is not None
    why = ""
    key = settings.access_key
    if key:
        account, why = _key_account(settings, clients)
        if account == settings.role.account:
            found.facts["iam_read_with"] = f"the fallback key {key.access_key_id}"
            return clients.aws.client("iam", key), ""
        if account:
            why = (
                f"the fallback key {key.access_key_id} is of account {account}, not of the role's account "
                f"{settings.role.account}, where IAM names the role and the provider"
            )
        found.add(
            "info",
            "iam-other-account",
            f"IAM was not read with AWS_ACCESS_KEY_ID: {why}"
            + ("; it was read with the assumed role instead" if assumed else ""),
        )
    if assumed:
        found.facts["iam_read_with"] = "the assumed role"
        return clients.aws.client("iam", assumed), ""
    return None, why


def _key_account(settings: Settings, clients: Clients) -> tuple[str, str]:
    """(the fallback key's account, "") by GetCallerIdentity, or ("", why it is unknown)."""
    assert settings.access_key is not None
    try:
        identity = sts.get_caller_identity(
            clients.aws.client("sts", settings.access_key),
            retry_timeout=settings.retry_timeout,
            fallback_key=True,
        )
    except PipeError as error:
        return "", f"the fallback key's account is unknown (GetCallerIdentity: {error.message})"
    return identity.account, ""


def _legacy_reader(settings: Settings, clients: Clients, assumed: Credentials | None) -> Any:
    """IAM to read the legacy keys' last use with: the fallback key when one is given (the legacy
    keys are most likely of its account), else the assumed role (None: neither)."""
    if settings.access_key:
        return clients.aws.client("iam", settings.access_key)
    return clients.aws.client("iam", assumed) if assumed else None


def _post(settings: Settings, found: CheckReport, console: Console) -> None:
    """The Code Insights report on the commit, in Pipelines (CI=true) only."""
    assert settings.role is not None
    place = Place.of(settings)
    if not place.postable:
        return
    paths = {"no-token": "bitbucket-pipelines.yml"}
    policy_file = settings.check.trust_policy_file
    if policy_file is not None and policy_file.is_relative_to(settings.clone_dir):
        relative = str(policy_file.relative_to(settings.clone_dir))
        paths.update(
            {"trust-condition": relative, "trust-deny": relative, "no-sub": relative, "no-aud": relative}
        )
    post_insights(
        place,
        insights_data(found.verdict, found.findings, settings.role.arn),
        insights_notes(found.findings, paths),
        say=console.info,
        warn=console.warning,
        clean=console.clean,
    )


def _verdict(role: str, found: CheckReport, path: Path, console: Console) -> str:
    """Print the findings; the ✔ line's text when READY, else NotReady naming the first cause."""
    console.info(f"OIDC migration check for {role}: {found.verdict}")
    lines = []
    for finding in found.document()["findings"]:
        lines.append(f"{finding['severity'].upper():<8}{finding['message']}")
        lines += [f"        fix: {part}" for part in finding["fix"].splitlines()]
    lines += [f"NOT READ {item}" for item in found.unread]
    console.lines(lines)
    if found.verdict == "READY":
        return f"READY: this repository can drop its static AWS keys ({found.facts['assume']['identity']}). Report: {path}"
    # The most specific cause first: AWS's refusal only says that something is wrong.
    errors = sorted(found.errors, key=lambda f: f.code == "assume-failed")
    first = errors[0] if errors else Finding("error", "unknown", "AWS did not give verified credentials")
    hint = first.fix.splitlines()[0] if first.fix else "See the findings above."
    environment = next((f for f in found.findings if f.code == "deployment-environment"), None)
    if environment is not None:  # before any other: the role was given to that environment
        hint = environment.fix
    template = next((f for f in found.findings if f.code == "deploy-template"), None)
    if template is not None:
        hint = f"{hint.rstrip('.')}. Or deploy {found.facts['deploy_template']}: {template.fix}."
    raise NotReady(f"NOT READY: {first.message}", f"{hint} All findings: {path}")
