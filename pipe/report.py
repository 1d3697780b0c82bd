"""Every report the pipe writes, and the Code Insights report it posts.

- ``oidc-check.json`` and ``oidc-check.md`` (``CheckReport``), ``rotation.json``
  (``RotationReport``), ``audit.json`` and ``audit.md`` (``AuditReport``): in REPORT_DIR, written through ``pipe.files`` (atomic, no symlink); any
  OS error is an OutputError naming REPORT_DIR, never an internal error. Never a secret.
- Every report, the Code Insights one and its annotations included, passes the console's filter
  (``clean``: ``Console.clean``, the run's secrets masked, and account ids with
  MASK_ACCOUNT_ID=true) before it leaves the process, as every printed line does (issue 15,
  item 17). ``clean`` is a required argument: no report is written or posted without it.
- The check's verdict (and the audit's outcome) as a Code Insights report on the commit, with one
  annotation per finding, posted through the Pipelines auth proxy (bitbucket-pipes-toolkit's CodeInsights, authless)
  when the run is in Pipelines (CI) only. A report that cannot be posted is a warning, never
  the check's failure.
"""

# Over 300 lines: one module for every report the pipe writes (check, rotation, audit) and the
# one Code Insights poster they share, as the module map has it.

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipe import files
from pipe.errors import OutputError
from pipe.oidc import printable
from pipe.trust_policy import Finding

if TYPE_CHECKING:
    from pipe.config import Settings

VARIABLE = "REPORT_DIR"
ROTATION_FILE = "rotation.json"
CHECK_JSON, CHECK_MARKDOWN = "oidc-check.json", "oidc-check.md"
AUDIT_JSON, AUDIT_MARKDOWN = "audit.json", "audit.md"
FILES = (ROTATION_FILE, CHECK_JSON, CHECK_MARKDOWN, AUDIT_JSON, AUDIT_MARKDOWN)


Clean = Callable[[str], str]  # the console's filter (Console.clean)


def write(directory: Path, contents: Mapping[str, str], clean: Clean) -> None:
    """Write reports (name -> text) in REPORT_DIR, world-readable: each passes ``clean`` first."""
    cleaned = {name: clean(text) for name, text in contents.items()}
    try:
        files.write_files(directory, cleaned, variable=VARIABLE, private=False)
    except OSError as exc:  # pipe.files wraps its own; anything else is still the place's fault
        raise OutputError(
            f"{VARIABLE}: cannot write {', '.join(contents)} in {directory} ({exc.strerror or type(exc).__name__})",
            f"Point {VARIABLE} at a writable directory with no symlink in its path.",
        ) from None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- rotation.json --------------------------------------------------------------------------
@dataclass
class RotationReport:
    """What a rotate or sync run found and did: the state, the keys, every change, and the key
    id each target held before and holds after."""

    user: str
    state: str
    dry_run: bool
    previous: str | None = None
    current: str | None = None
    store: str | None = None
    actions: list[str] = field(default_factory=list)
    targets: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "state": self.state,
            "dry_run": self.dry_run,
            "previous_key": self.previous,
            "current_key": self.current,
            "store": self.store,
            "actions": self.actions,
            "targets": self.targets,
            "finished": _now(),
        }

    def write(self, directory: Path, clean: Clean) -> Path:
        write(directory, {ROTATION_FILE: json.dumps(self.document(), indent=2) + "\n"}, clean)
        return directory / ROTATION_FILE


# -- oidc-check.json and oidc-check.md ------------------------------------------------------
_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class CheckReport:
    role: str
    verdict: str = "NOT READY"
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    unread: list[str] = field(default_factory=list)

    def add(self, severity: str, code: str, message: str, fix: str = "") -> None:
        self.extend([Finding(severity, code, message, fix)])

    def extend(self, findings: Iterable[Finding]) -> None:
        """Findings quote the token's claims, the trust policy and Bitbucket's variables:
        each line is made printable (no raw newline or escape reaches a log or a report)."""
        for f in findings:
            fix = "\n".join(printable(line) for line in f.fix.split("\n"))
            self.findings.append(Finding(f.severity, f.code, printable(f.message), fix))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def document(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "role": self.role,
            "findings": [asdict(f) for f in sorted(self.findings, key=lambda f: _ORDER.get(f.severity, 3))],
            "facts": self.facts,
            "not_read": self.unread,
        }

    def markdown(self) -> str:
        lines = [f"# OIDC migration check: {self.verdict}", "", f"Role: `{self.role}`", ""]
        document = self.document()
        if document["findings"]:
            lines += ["| Severity | Finding | What to change |", "|---|---|---|"]
            for f in document["findings"]:
                fix = f["fix"].replace("|", "\\|").replace("\n", " ")
                lines.append(
                    f"| {f['severity']} | {f['message'].replace('|', chr(92) + '|')} | {('`' + fix + '`') if fix else ''} |"
                )
            lines.append("")
        if self.unread:
            lines += ["## Not read", "", *(f"- {u}" for u in self.unread), ""]
        lines += ["## Facts", "", "```json", json.dumps(self.facts, indent=2), "```", ""]
        return "\n".join(lines)

    def write(self, directory: Path, clean: Clean) -> Path:
        write(
            directory,
            {CHECK_JSON: json.dumps(self.document(), indent=2) + "\n", CHECK_MARKDOWN: self.markdown()},
            clean,
        )
        return directory / CHECK_MARKDOWN


# -- Code Insights --------------------------------------------------------------------------
INSIGHTS_ID = "aws-credentials-pipe-oidc-check"
AUTH_PROXY_PORT = 29418  # where the Pipelines auth proxy listens
_SEVERITY = {"error": "HIGH", "warning": "MEDIUM", "info": "LOW"}


def insights_data(verdict: str, findings: Sequence[Finding], role: str) -> dict[str, Any]:
    """The report. No `data` fields: the API excerpt types their `value` as an object while
    Bitbucket's own examples send plain numbers and strings; the verdict and the counts are
    in `details` instead."""
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    return {
        "type": "report",
        "external_id": INSIGHTS_ID,
        "title": f"OIDC migration check: {verdict}",
        "details": (
            f"{verdict}: can this repository drop its static AWS keys and assume {role} with OIDC? "
            f"{errors} error(s), {warnings} warning(s); the findings are the annotations."
        ),
        "report_type": "SECURITY",
        "result": "PASSED" if verdict == "READY" else "FAILED",
        "reporter": "aws-credentials-pipe",
    }


def insights_notes(findings: Sequence[Finding], paths: Mapping[str, str]) -> list[dict[str, Any]]:
    out = []
    for index, finding in enumerate(f for f in findings if f.severity != "info"):
        item: dict[str, Any] = {
            "type": "report_annotation",
            "external_id": f"{INSIGHTS_ID}-{index + 1}",
            "annotation_type": "VULNERABILITY" if finding.severity == "error" else "CODE_SMELL",
            "summary": finding.message[:450],
            "details": (finding.fix or finding.message)[:2000],
            "result": "FAILED",
            "severity": _SEVERITY[finding.severity],
        }
        if finding.code in paths:
            item["path"] = paths[finding.code]
        out.append(item)
    return out[:100]


@dataclass(frozen=True)
class Place:
    """Where a Code Insights report goes: the commit of a repository, in a Pipelines step (CI)
    whose auth proxy answers at ``proxy_host``."""

    ci: bool
    workspace: str
    repo: str
    commit: str
    proxy_host: str

    @property
    def postable(self) -> bool:
        return self.ci and bool(self.workspace and self.repo and self.commit)

    @classmethod
    def of(cls, settings: Settings) -> Place:
        """The step's own commit (BITBUCKET_COMMIT of BITBUCKET_WORKSPACE/BITBUCKET_REPO_SLUG)."""
        return cls(
            ci=settings.check.ci,
            workspace=settings.workspace,
            repo=settings.repo_slug,
            commit=settings.check.commit,
            proxy_host=settings.check.auth_proxy_host,
        )


def post_insights(
    place: Place,
    data: dict[str, Any],
    notes: list[dict[str, Any]],
    *,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    clean: Clean,
) -> bool:
    """Post the report and its annotations, every text passed through ``clean``; False (after a
    warning) when it could not be posted. Outside Pipelines (CI not true) nothing is sent: the
    auth proxy exists only there."""
    if not place.postable:
        return False
    data = _cleaned(data, clean)
    notes = [_cleaned(note, clean) for note in notes]
    from requests import RequestException

    insights = _insights(place)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # the toolkit prints a ✖ line and exits on errors
            insights.create_report(place.commit, data)
            if notes:
                insights.create_bulk_annotations(place.commit, data["external_id"], notes)
    except (SystemExit, RequestException) as exc:
        reason = " ".join(printed.getvalue().replace("✖", "").split()) or type(exc).__name__
        warn(f"The Code Insights report was not posted ({reason}); the outcome is in the report files.")
        return False
    say(f"Posted the Code Insights report on {place.commit[:12]} with {len(notes)} annotation(s).")
    return True


def _cleaned(document: dict[str, Any], clean: Clean) -> dict[str, Any]:
    """``document`` with each of its texts passed through ``clean`` (reports are flat)."""
    return {key: clean(value) if isinstance(value, str) else value for key, value in document.items()}


def _insights(place: Place) -> Any:
    """bitbucket-pipes-toolkit's CodeInsights, told where the auth proxy is rather than left to
    look for CI in the environment (the pipe reads its environment once, in pipe.__main__)."""
    from pipe.console import toolkit

    insights: Any = toolkit().CodeInsights
    proxy = f"http://{place.proxy_host}:{AUTH_PROXY_PORT}"

    class ThroughTheProxy(insights):  # type: ignore[misc]
        def _get_http_proxies(self) -> dict[str, str]:
            return {"http": proxy, "https": proxy.replace("http://", "https://", 1)}

    return ThroughTheProxy(
        place.repo, place.workspace, auth_type="authless", auth_proxy_host=place.proxy_host
    )


# -- audit.json and audit.md ----------------------------------------------------------------
AUDIT_INSIGHTS_ID = "aws-credentials-pipe-audit"


@dataclass
class AuditReport:
    """audit.json exactly as the contract shows it, and audit.md (a table per account). The
    accounts are given as the contract's dicts (``pipe.actions.audit`` builds them)."""

    mode: str
    dry_run: bool
    policy: dict[str, int]
    accounts: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # every error of the run, one line each
    generated_at: str = field(default_factory=_now)

    def summary(self) -> dict[str, int]:
        users = [u for a in self.accounts for u in a["users"]]
        actions = [x for u in users for x in u["actions"]]
        return {
            "accounts": len(self.accounts),
            "users": len(users),
            "keys": sum(len(u["keys"]) for u in users),
            "actions_done": sum(1 for x in actions if x["done"]),
            "actions_planned": sum(1 for x in actions if not x["done"]),
            "errors": len(self.problems),
        }

    def document(self) -> dict[str, Any]:
        return {
            "version": 1,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "generated_at": self.generated_at,
            "policy": self.policy,
            "accounts": self.accounts,
            "summary": self.summary(),
        }

    def markdown(self) -> str:
        counts = self.summary()
        title = f"# IAM access key audit ({self.mode}{', DRY_RUN' if self.dry_run else ''})"
        lines = [
            title,
            "",
            f"Generated {self.generated_at}. Policy: new key at {self.policy['rotate_after_days']} days, "
            f"deactivated at {self.policy['deactivate_after_days']}, deleted at {self.policy['delete_after_days']}.",
            "",
            ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()),
            "",
        ]
        for account in self.accounts:
            lines += [f"## Account {account['account_id']}: {account['status']}", ""]
            if account["error"]:
                lines += [f"Error: {_cell(account['error'])}", ""]
            if account["users"]:
                lines += ["| User | Status | Keys | Actions | E-mailed |", "|---|---|---|---|---|"]
                lines += [_user_row(user) for user in account["users"]]
                lines.append("")
        return "\n".join(lines)

    def write(self, directory: Path, clean: Clean) -> Path:
        write(
            directory,
            {AUDIT_JSON: json.dumps(self.document(), indent=2) + "\n", AUDIT_MARKDOWN: self.markdown()},
            clean,
        )
        return directory / AUDIT_JSON

    def insights(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The Code Insights report and its annotations (errors first, then actions)."""
        counts = self.summary()
        data = {
            "type": "report",
            "external_id": AUDIT_INSIGHTS_ID,
            "title": f"IAM access key audit ({self.mode}{', DRY_RUN' if self.dry_run else ''})",
            "details": (
                f"{counts['accounts']} account(s), {counts['users']} user(s), {counts['keys']} key(s): "
                f"{counts['actions_done']} action(s) done, {counts['actions_planned']} planned, "
                f"{counts['errors']} error(s). The errors and actions are the annotations; audit.md has it all."
            ),
            "report_type": "SECURITY",
            "result": "FAILED" if counts["errors"] else "PASSED",
            "reporter": "aws-credentials-pipe",
        }
        notes: list[dict[str, Any]] = []
        for problem in self.problems:
            notes.append(_note(len(notes), "BUG", "HIGH", problem, "FAILED"))
        for account in self.accounts:
            for user in account["users"]:
                for action in user["actions"]:
                    summary = (
                        f"{account['account_id']} {user['user']}: {action['action']} "
                        f"{action['access_key_id'] or ''} ({action['reason']})"
                    )
                    result = "PASSED" if action["done"] else "SKIPPED"
                    notes.append(_note(len(notes), "VULNERABILITY", "MEDIUM", summary, result))
        return data, notes[:100]


def _note(index: int, kind: str, severity: str, summary: str, result: str) -> dict[str, Any]:
    return {
        "type": "report_annotation",
        "external_id": f"{AUDIT_INSIGHTS_ID}-{index + 1}",
        "annotation_type": kind,
        "summary": " ".join(summary.split())[:450],
        "details": summary[:2000],
        "result": result,
        "severity": severity,
    }


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _user_row(user: Mapping[str, Any]) -> str:
    keys = "<br>".join(
        f"`{k['access_key_id'] or '(id not read)'}` {k['status']}, {k['age_days']} d"
        + (f", used {k['last_used'][:10]}" if k["last_used"] else ", never used")
        for k in user["keys"]
    )
    actions = "<br>".join(
        f"{'done' if a['done'] else 'planned'}: {a['action']} {a['access_key_id'] or ''} ({_cell(a['reason'])})"
        for a in user["actions"]
    )
    mailed = "yes" if user["notified"] else "no"
    return f"| {_cell(user['user'])} | {user['status']} | {keys or 'none'} | {actions or '-'} | {mailed} |"
