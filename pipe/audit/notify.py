"""The e-mails (seed 003): one to each user the run changed something for, or whose active key will
soon be deactivated, and one summary per run to NOTIFY_ADMINS. Plain text and HTML, through SES
v2 `SendEmail` from NOTIFY_FROM. They say what happened, what comes next (with dates) and how to
fetch a new key (`aws secretsmanager get-secret-value ...`). They never hold a secret: nothing
here is given one (the letters are composed from key ids, dates and names)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

SUBJECT_PREFIX = "[AWS account {account}]"
SES_HINT = (
    "Verify NOTIFY_FROM in SES in SES_REGION (and, while SES is in its sandbox, the recipients too), "
    "and grant the pipe's role ses:SendEmail on it (docs/audit.md#permissions)."
)


@dataclass(frozen=True)
class Letter:
    subject: str
    text: str
    html: str


@dataclass
class News:
    """What one user is told: the facts of this run, and the next steps."""

    account: str
    user: str
    mode: str
    today: date
    region: str
    secret: str | None = None  # the secret holding the new key
    new_key: str | None = None
    deactivated: list[tuple[str, str]] = field(default_factory=list)  # (key id, why)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)

    @property
    def happened(self) -> list[str]:
        lines = []
        if self.new_key:
            lines.append(
                f"A new access key, {self.new_key}, is ready for you in the Secrets Manager secret "
                f"{self.secret} (region {self.region}), which only you can read."
            )
        lines += [f"Your access key {key} was deactivated ({why})." for key, why in self.deactivated]
        lines += [f"Your inactive access key {key} was deleted ({why})." for key, why in self.deleted]
        return lines

    def subject(self) -> str:
        prefix = SUBJECT_PREFIX.format(account=self.account)
        if self.new_key:
            return f"{prefix} {self.user}: your new AWS access key is ready"
        if self.deactivated:
            return f"{prefix} {self.user}: your AWS access key {self.deactivated[0][0]} was deactivated"
        if self.deleted:
            return f"{prefix} {self.user}: your inactive AWS access key {self.deleted[0][0]} was deleted"
        return f"{prefix} {self.user}: your AWS access key will be deactivated soon"


def fetch_command(secret: str, region: str) -> str:
    return (
        f"aws secretsmanager get-secret-value --secret-id {secret} --region {region} "
        "--query SecretString --output text"
    )


def user_letter(news: News) -> Letter:
    happened = news.happened
    intro = (
        f"This is the access key audit of AWS account {news.account} (aws-credentials-pipe, "
        f"AUDIT_MODE={news.mode}), about the access keys of IAM user {news.user}."
    )
    text = [f"Hello {news.user},", "", intro, ""]
    if happened:
        text += [f"What happened today ({news.today.isoformat()}):", *(f"- {line}" for line in happened), ""]
    if news.next_steps:
        text += ["What comes next:", *(f"- {line}" for line in news.next_steps), ""]
    command = fetch_command(news.secret, news.region) if news.secret else ""
    if command:
        text += [
            "To fetch the new key, run this with your current credentials (add --profile <name> if you "
            "use named profiles); it prints the key as JSON (AccessKeyId, SecretAccessKey):",
            "",
            f"  {command}",
            "",
        ]
    text += ["This e-mail holds no secret. Nothing needs a reply."]
    body = [f"<p>Hello {_h(news.user)},</p>", f"<p>{_h(intro)}</p>"]
    if happened:
        body += [f"<p>What happened today ({news.today.isoformat()}):</p>", _ul(happened)]
    if news.next_steps:
        body += ["<p>What comes next:</p>", _ul(news.next_steps)]
    if command:
        body += [
            "<p>To fetch the new key, run this with your current credentials (add <code>--profile "
            "&lt;name&gt;</code> if you use named profiles); it prints the key as JSON:</p>",
            f"<pre><code>{_h(command)}</code></pre>",
        ]
    body.append("<p>This e-mail holds no secret. Nothing needs a reply.</p>")
    return Letter(news.subject(), "\n".join(text) + "\n", _page("\n".join(body)))


def next_steps(
    *,
    today: date,
    active: Sequence[tuple[str, date]],
    deactivated: Sequence[str],
    window: int,
    new_key: str | None,
) -> list[str]:
    """The dates to come: each remaining active key's deactivation, each deactivated key's deletion."""
    lines = []
    for key, when in active:
        if key == new_key:
            continue
        switch = " Switch to your new key before then." if new_key else ""
        lines.append(f"Your access key {key} will be deactivated on {when.isoformat()}.{switch}")
    for key in deactivated:
        later = (today + timedelta(days=window)).isoformat()
        lines.append(f"The deactivated key {key} will be deleted on or after {later}.")
    return lines


@dataclass
class Summary:
    """The run as the admins see it."""

    mode: str
    dry_run: bool
    accounts: int
    done: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def worth_sending(self) -> bool:
        return bool(self.done or self.errors or (self.planned and self.mode != "report"))


def admin_letter(summary: Summary, report_path: str) -> Letter:
    counts = (
        f"{len(summary.done)} action(s) done, {len(summary.planned)} planned but not done, "
        f"{len(summary.errors)} error(s)"
    )
    subject = (
        f"[aws-credentials-pipe] access key audit ({summary.mode}) of {summary.accounts} account(s): {counts}"
    )
    sections = [("Errors", summary.errors), ("Done", summary.done), ("Planned, not done", summary.planned)]
    text = [
        f"The access key audit ran in AUDIT_MODE={summary.mode} over {summary.accounts} account(s): {counts}.",
        "",
    ]
    body = [f"<p>{_h(text[0])}</p>"]
    for title, lines in sections:
        if lines:
            text += [f"{title}:", *(f"- {line}" for line in lines[:500]), ""]
            body += [f"<p>{_h(title)}:</p>", _ul(lines[:500])]
    text.append(
        f"The full report is audit.json / audit.md in the pipeline's {report_path}. No secret is in it."
    )
    body.append(f"<p>The full report is audit.json / audit.md in the pipeline's {_h(report_path)}.</p>")
    return Letter(subject[:900], "\n".join(text) + "\n", _page("\n".join(body)))


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _ul(lines: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{_h(line)}</li>" for line in lines) + "</ul>"


def _page(body: str) -> str:
    return f'<!DOCTYPE html>\n<html><body style="font-family: sans-serif">\n{body}\n</body></html>\n'


class Mailer:
    """SES v2 SendEmail from NOTIFY_FROM, with a client ``ses()`` gives at each e-mail (made with the
    pipe's own credentials, renewed in a long run, in SES_REGION)."""

    def __init__(self, ses: Callable[[], Any], sender: str) -> None:
        self.ses = ses
        self.sender = sender

    def send(self, to: Sequence[str], letter: Letter) -> str:
        answer = self.ses().send_email(
            FromEmailAddress=self.sender,
            Destination={"ToAddresses": list(to)},
            Content={
                "Simple": {
                    "Subject": {"Data": letter.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": letter.text, "Charset": "UTF-8"},
                        "Html": {"Data": letter.html, "Charset": "UTF-8"},
                    },
                }
            },
        )
        return str(answer.get("MessageId", ""))
