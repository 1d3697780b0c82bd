"""ACTION=audit: key-age enforcement over IAM users, groups and accounts (pipe/audit/).

The run's own credentials (the hub); the accounts (AUDIT_ACCOUNT_IDS, or the organization); in
each account, concurrently: enter (sts:AssumeRole), read (the credential report and the users,
a fixed number of calls), plan every selected user (pure). Every plan is printed before anything
changes; `report` and DRY_RUN stop there. `enforce` and `revoke` then carry the plans out,
concurrently per account, e-mail the users and send NOTIFY_ADMINS one summary. audit.json and
audit.md are written whatever happened, and a Code Insights report is posted in Pipelines. An
account that could not be audited, or an action that failed, ends the run with ✖."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipe.audit import accounts
from pipe.audit.account import AccountAudit, Hub, Problem
from pipe.audit.executor import Entry
from pipe.audit.notify import SES_HINT, Mailer, Summary, admin_letter
from pipe.aws import AwsClients, Clients
from pipe.config import Settings
from pipe.config.audit import AuditSettings
from pipe.console import Console
from pipe.errors import PipeError, aws_error
from pipe.report import AuditReport, Place, post_insights
from pipe.signin import obtain


def run(settings: Settings, clients: Clients, console: Console) -> str:
    aud = settings.audit
    assert aud is not None
    credentials, identity = obtain(settings, clients, console)
    hub = Hub(
        aws=clients.aws,
        credentials=credentials,
        own_account=identity.account,
        own_arn=identity.arn,
        settings=aud,
        region=settings.region,
        partition=settings.partition,
        session_name=settings.session_name,
        mailer=None,
        console=console,
        renew=lambda: obtain(settings, clients, console)[0],
    )
    hub.mailer = _mailer(aud, hub)
    organizations = hub.client("organizations") if aud.organization else None
    ids = accounts.account_ids(aud, identity.account, organizations)
    where = "the organization's ACTIVE accounts" if aud.organization else "accounts"
    console.info(
        f"Audit ({aud.mode}{', DRY_RUN' if settings.dry_run else ''}) of {len(ids)} {where}: "
        f"{', '.join(ids[:20])}{' ...' if len(ids) > 20 else ''}; {min(aud.concurrency, len(ids))} at a time."
    )
    audits = [AccountAudit(hub, account) for account in ids]
    with ThreadPoolExecutor(max_workers=max(1, min(aud.concurrency, len(audits)))) as pool:
        list(pool.map(AccountAudit.prepare, audits))
        for audit in audits:
            console.lines(_plan_lines(audit))
        acting = aud.changes and not settings.dry_run
        if acting:
            list(pool.map(AccountAudit.act, audits))
    problems = [p for audit in audits for p in audit.errors()] + _missing(aud, audits)
    report = _report(aud, settings.dry_run, audits, problems)
    if acting:
        _summarise(hub, report, settings.report_dir, problems)
    path = report.write(settings.report_dir, console.clean)
    _post(settings, report, console)
    return _ending(aud, settings.dry_run, report, path, problems)


def _mailer(aud: AuditSettings, hub: Hub) -> Mailer | None:
    if aud.notify_from is None:
        return None
    aws = hub.aws
    ses_aws = (
        aws if aud.ses_region == aws.region else AwsClients(aud.ses_region, aws.endpoints, aws.retry_timeout)
    )
    return Mailer(lambda: hub.client("sesv2", ses_aws), aud.notify_from)


def _plan_lines(audit: AccountAudit) -> list[str]:
    """The account's plan: its heading and problems, then each user with something to say."""
    lines = [audit.heading() + ":"]
    lines += [f"  ERROR {p.message}" for p in audit.problems]
    quiet = 0
    for entry in audit.entries:
        plan = entry.plan
        if not (plan.actions or plan.notes or plan.status != "audited"):
            quiet += 1
            continue
        lines.append(f"  {plan.user} ({plan.status}{', ' + plan.email if plan.email else ''})")
        now = audit.policy.now if audit.policy else 0.0
        lines += [
            f"    key {k.id or '(id not read)'} {k.status}, {k.age(now)} days old"
            + (f", last used {_iso(k.last_used)[:10]}" if k.last_used else ", never used")
            for k in entry.user.keys
        ]
        lines += [f"    - {a.action} {a.key or ''}".rstrip() + f": {a.reason}" for a in plan.actions]
        lines += [f"    note: {n}" for n in plan.notes]
    if audit.entries or not audit.problems:
        lines.append(f"  {quiet} other user(s): nothing to do")
    return lines


def _missing(aud: AuditSettings, audits: list[AccountAudit]) -> list[Problem]:
    """IAM_USERS and IAM_GROUPS names found in no account that could be read (a typo, most likely)."""
    read = [a for a in audits if a.policy is not None]
    if not read:
        return []
    problems = []
    users = set.intersection(*(a.missing_users for a in read))
    groups = set.intersection(*(a.missing_groups for a in read))
    if users:
        problems.append(
            Problem(
                f"IAM_USERS names {', '.join(sorted(users))}, found in no audited account", "Fix IAM_USERS."
            )
        )
    if groups:
        problems.append(
            Problem(
                f"IAM_GROUPS names {', '.join(sorted(groups))}, found in no audited account",
                "Fix IAM_GROUPS.",
            )
        )
    return problems


def _iso(when: float | None) -> str:
    return "" if when is None else datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user_document(entry: Entry, now: float) -> dict[str, Any]:
    plan = entry.plan
    return {
        "user": plan.user,
        "status": plan.status,
        "email": plan.email,
        "keys": [
            {
                "access_key_id": k.id,
                "status": k.status,
                "created": _iso(k.created),
                "age_days": k.age(now),
                "last_used": _iso(k.last_used) or None,
            }
            for k in entry.user.keys
        ],
        "actions": [a.document() for a in plan.actions],
        "secret_arn": entry.secret_arn,
        "notified": entry.notified,
    }


def _report(
    aud: AuditSettings, dry_run: bool, audits: list[AccountAudit], problems: list[Problem]
) -> AuditReport:
    report = AuditReport(
        aud.mode,
        dry_run,
        {
            "rotate_after_days": aud.rotate_after,
            "deactivate_after_days": aud.deactivate_after,
            "delete_after_days": aud.delete_after,
        },
        problems=[p.message for p in problems],
    )
    for audit in audits:
        errors = audit.errors()
        now = audit.policy.now if audit.policy else 0.0
        report.accounts.append(
            {
                "account_id": audit.account_id,
                "status": "error" if errors else "ok",
                "error": "; ".join(p.message for p in errors) or None,
                "users": [_user_document(e, now) for e in audit.entries],
            }
        )
    return report


def _summarise(hub: Hub, report: AuditReport, report_dir: Path, problems: list[Problem]) -> None:
    """One e-mail to NOTIFY_ADMINS, when the run changed something or failed."""
    aud = hub.settings
    if hub.mailer is None or not aud.notify_admins:
        return
    summary = Summary(aud.mode, report.dry_run, len(report.accounts), errors=[p.message for p in problems])
    for account in report.accounts:
        for user in account["users"]:
            for action in user["actions"]:
                line = (
                    f"{account['account_id']} {user['user']}: {action['action']} "
                    f"{action['access_key_id'] or ''} ({action['reason']})"
                )
                (summary.done if action["done"] else summary.planned).append(" ".join(line.split()))
    if not summary.worth_sending():
        return
    try:
        hub.mailer.send(list(aud.notify_admins), admin_letter(summary, str(report_dir)))
        hub.console.info(f"Sent the summary to {', '.join(aud.notify_admins)}.")
    except PipeError as exc:  # the pipe's own session could not be renewed
        problem = Problem(f"the summary to NOTIFY_ADMINS was not sent: {exc.message}", exc.hint)
        problems.append(problem)
        report.problems.append(problem.message)
    except Exception as exc:
        code, message = aws_error(exc)
        if not code:
            raise
        problem = Problem(f"the summary to NOTIFY_ADMINS was not sent ({code}: {message})", SES_HINT)
        problems.append(problem)
        report.problems.append(problem.message)


def _post(settings: Settings, report: AuditReport, console: Console) -> None:
    place = Place.of(settings)
    if place.postable:
        data, notes = report.insights()
        post_insights(place, data, notes, say=console.info, warn=console.warning, clean=console.clean)


def _ending(
    aud: AuditSettings, dry_run: bool, report: AuditReport, path: Path, problems: list[Problem]
) -> str:
    counts = report.summary()
    told = (
        f"{counts['accounts']} account(s), {counts['users']} user(s), {counts['keys']} key(s): "
        f"{counts['actions_done']} action(s) done, {counts['actions_planned']} planned"
    )
    if problems:
        first = problems[0]
        more = f" ({len(problems) - 1} more error(s) in the report)" if len(problems) > 1 else ""
        raise PipeError(f"Audit: {first.message}{more}", f"{first.hint} Report: {path}")
    if aud.mode == "report":
        return f"Audit report of {told} (AUDIT_MODE=report changes nothing). Report: {path}"
    if dry_run:
        return f"DRY_RUN: the audit's plan is above ({told}); nothing was changed. Report: {path}"
    return f"Audit ({aud.mode}) of {told}. Report: {path}"
