"""What the e-mails say (pipe.audit.notify): what happened, what comes next with dates, and the
command that fetches the new key; the HTML part says the same, escaped."""

from __future__ import annotations

from datetime import date

from pipe.audit.notify import News, Summary, admin_letter, fetch_command, next_steps, user_letter

TODAY = date(2026, 12, 1)


def test_a_new_key_letter_gives_the_command_and_the_dates() -> None:
    news = News(
        account="123456789012",
        user="alice",
        mode="enforce",
        today=TODAY,
        region="eu-west-1",
        secret="aws-credentials/alice",
        new_key="AKIANEWNEWNEWNEWNEW2",
        deactivated=[("AKIAOLDOLDOLDOLDOLD1", "120 days old (>= 100)")],
        next_steps=next_steps(
            today=TODAY,
            active=[("AKIANEWNEWNEWNEWNEW2", date(2027, 3, 11))],
            deactivated=["AKIAOLDOLDOLDOLDOLD1"],
            window=10,
            new_key="AKIANEWNEWNEWNEWNEW2",
        ),
    )
    letter = user_letter(news)
    command = (
        "aws secretsmanager get-secret-value --secret-id aws-credentials/alice --region eu-west-1 "
        "--query SecretString --output text"
    )
    assert fetch_command("aws-credentials/alice", "eu-west-1") == command
    assert letter.subject == "[AWS account 123456789012] alice: your new AWS access key is ready"
    for part in (letter.text, letter.html):
        assert command in part
        assert "AKIANEWNEWNEWNEWNEW2" in part and "aws-credentials/alice" in part
        assert "AKIAOLDOLDOLDOLDOLD1 was deactivated (120 days old (&gt;= 100))" in part or (
            "AKIAOLDOLDOLDOLDOLD1 was deactivated (120 days old (>= 100))" in part
        )
        assert "will be deleted on or after 2026-12-11" in part
        assert "holds no secret" in part
    assert "&gt;=" in letter.html and "<html>" in letter.html and "<" not in letter.text.replace("<name>", "")


def test_a_warning_letter_says_when() -> None:
    news = News(
        account="123456789012",
        user="bob <b>",
        mode="enforce",
        today=TODAY,
        region="eu-west-1",
        next_steps=next_steps(
            today=TODAY,
            active=[("AKIAOLDOLDOLDOLDOLD1", date(2026, 12, 6))],
            deactivated=[],
            window=10,
            new_key=None,
        ),
    )
    letter = user_letter(news)
    assert letter.subject.endswith("your AWS access key will be deactivated soon")
    assert "Your access key AKIAOLDOLDOLDOLDOLD1 will be deactivated on 2026-12-06." in letter.text
    assert "get-secret-value" not in letter.text  # no new key: nothing to fetch
    assert "bob &lt;b&gt;" in letter.html and "bob <b>" not in letter.html


def test_the_admins_summary() -> None:
    summary = Summary(
        "enforce", False, 3, done=["111111111111 alice: create AKIA (x)"], errors=["account 2: refused"]
    )
    assert summary.worth_sending()
    letter = admin_letter(summary, "/build/aws-credentials-reports")
    assert "1 action(s) done" in letter.subject and "1 error(s)" in letter.subject
    assert "account 2: refused" in letter.text and "111111111111 alice" in letter.html
    assert not Summary("enforce", False, 3).worth_sending()
    assert not Summary("report", False, 3, planned=["x"]).worth_sending()
