"""The workspace migration report (ACTION=check, CHECK_SCOPE=workspace), pure: which variables
hold AWS key ids, whether a pipeline file runs steps with `oidc: true`, and the report built from
what was read (migration.json, migration.md, the Code Insights report). No I/O: the reading is
``pipe.workspace_scan`` (Bitbucket) and ``pipe.key_lookup`` (AWS).

Reports hold no variable value other than a key id, and never a secret."""

# Over 300 lines: the detection rules, the document in the contract's shape, and its Markdown
# and Code Insights renderings, which must agree on every figure: one module.

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

VERSION = 1
JSON_FILE, MARKDOWN_FILE = "migration.json", "migration.md"
INSIGHTS_ID = "aws-credentials-pipe-migration"
RECENT_DAYS = 90
KEY_ID = re.compile(r"(AKIA|ASIA)[A-Z0-9]{16}")
KEY_NAME_SUFFIX = "ACCESS_KEY_ID"


# -- what was read -----------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyVariable:
    """A variable that holds (or names) an AWS access key id."""

    scope: str  # repository | deployment | workspace
    environment: str | None  # the deployment environment's name (scope deployment)
    variable: str
    access_key_id: str | None  # None: secured (Bitbucket never returns it), or not a key id
    secured: bool


@dataclass(frozen=True)
class RepositoryScan:
    """One repository as Bitbucket showed it."""

    repository: str  # workspace/slug
    main_branch: str | None
    uses_oidc: bool | None  # None: the pipeline file could not be read
    pipeline_file: str  # read | not found | unreadable: <why> | no main branch
    keys: tuple[KeyVariable, ...] = ()
    error: str | None = None  # its variables could not be read


@dataclass(frozen=True)
class KeyFacts:
    """What AWS says about one key id."""

    account_id: str | None = None
    iam_user: str | None = None
    status: str | None = None
    last_used: str | None = None  # ISO 8601, Z
    other_account: bool = False
    note: str | None = None
    error: str | None = None


def key_variable(
    name: str, value: str | None, secured: bool, scope: str, environment: str | None = None
) -> KeyVariable | None:
    """The variable as a KeyVariable when it holds a key id: its name ends in ACCESS_KEY_ID, or
    its value is one (AKIA/ASIA and 16 more). A secured one's value is hidden: id unknown."""
    named = name.upper().endswith(KEY_NAME_SUFFIX)
    shown = None if secured or value is None else value.strip()
    shaped = shown is not None and KEY_ID.fullmatch(shown) is not None
    if not (named or shaped):
        return None
    return KeyVariable(scope, environment, name, shown if shaped else None, secured)


def key_variables(
    variables: Iterable[tuple[str, str | None, bool]], scope: str, environment: str | None = None
) -> list[KeyVariable]:
    """The key variables among (name, value, secured) triples."""
    found = (key_variable(n, v, s, scope, environment) for n, v, s in variables)
    return [k for k in found if k is not None]


def uses_oidc(text: str) -> bool | None:
    """Whether a bitbucket-pipelines.yml runs any step with `oidc: true` (anchors and
    definitions included); None when it is not YAML or not a mapping."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(document, dict):
        return None
    seen: set[int] = set()
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # aliases share objects: each is walked once
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            step = node.get("step")
            if isinstance(step, dict) and step.get("oidc") is True:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def distinct_key_ids(scans: Sequence[RepositoryScan], workspace_keys: Sequence[KeyVariable]) -> list[str]:
    """Every key id seen, once each, sorted: AWS is asked once per key, however many
    repositories hold it."""
    ids = {k.access_key_id for s in scans for k in s.keys} | {k.access_key_id for k in workspace_keys}
    return sorted(i for i in ids if i)


# -- the document ----------------------------------------------------------------------------------
def _key_entry(key: KeyVariable, facts: Mapping[str, KeyFacts]) -> dict[str, Any]:
    known = facts.get(key.access_key_id or "")
    if key.access_key_id is None:
        note = "secured, id unknown" if key.secured else "the value is not an access key id"
        known = KeyFacts(note=note)
    known = known or KeyFacts(error="not looked up")
    return {
        "scope": key.scope,
        "environment": key.environment,
        "variable": key.variable,
        "access_key_id": key.access_key_id,
        "secured": key.secured,
        "account_id": known.account_id,
        "iam_user": known.iam_user,
        "status": known.status,
        "last_used": known.last_used,
        "other_account": known.other_account,
        "note": known.note,
        "error": known.error,
    }


def document(
    workspace: str,
    scans: Sequence[RepositoryScan],
    workspace_keys: Sequence[KeyVariable],
    facts: Mapping[str, KeyFacts],
    generated_at: datetime,
    *,
    workspace_error: str | None = None,
) -> dict[str, Any]:
    """migration.json, in the contract's shape (issue 18), repositories by name."""
    repositories = [
        {
            "repository": scan.repository,
            "main_branch": scan.main_branch,
            "uses_oidc": scan.uses_oidc,
            "pipeline_file": scan.pipeline_file,
            "keys": [_key_entry(k, facts) for k in scan.keys],
            "error": scan.error,
        }
        for scan in sorted(scans, key=lambda s: s.repository)
    ]
    workspace_entries = [_key_entry(k, facts) for k in workspace_keys]
    return {
        "version": VERSION,
        "workspace": workspace,
        "generated_at": generated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "repositories": repositories,
        "workspace_keys": workspace_entries,
        "workspace_variables_error": workspace_error,
        "summary": summary(repositories, workspace_entries),
    }


def summary(
    repositories: Sequence[Mapping[str, Any]], workspace_keys: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    return {
        "repositories": len(repositories),
        "with_static_keys": sum(1 for r in repositories if r["keys"]),
        "keys": sum(len(r["keys"]) for r in repositories) + len(workspace_keys),
        "using_oidc": sum(1 for r in repositories if r["uses_oidc"] is True),
        "errors": sum(1 for r in repositories if r["error"]),
    }


def recently_used(key: Mapping[str, Any], now: datetime, days: int = RECENT_DAYS) -> bool:
    last = key.get("last_used")
    if not last:
        return False
    when = datetime.strptime(str(last), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return now - when <= timedelta(days=days)


def success_line(doc: Mapping[str, Any]) -> str:
    s = doc["summary"]
    return (
        f"Workspace {doc['workspace']}: {s['repositories']} repositories, {s['with_static_keys']} with static "
        f"keys, {s['keys']} key variables, {s['using_oidc']} using OIDC, {s['errors']} not read"
    )


# -- migration.md ----------------------------------------------------------------------------------
def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|").replace("`", "'") or "-"


def _where(key: Mapping[str, Any]) -> str:
    if key["scope"] == "deployment":
        return f"deployment {key['environment']}"
    return str(key["scope"])


def _key_text(key: Mapping[str, Any]) -> str:
    if key["access_key_id"]:
        return f"`{key['access_key_id']}`"
    return _cell(key["note"])


def _aws_text(key: Mapping[str, Any]) -> str:
    if key["error"]:
        return f"not read: {_cell(key['error'])}"
    if key["other_account"]:
        return _cell(key["note"])
    parts = [p for p in (key["iam_user"], key["status"]) if p]
    return _cell(", ".join(parts)) if parts else _cell(key["note"])


def markdown(doc: Mapping[str, Any], now: datetime) -> str:
    """migration.md: the next migrations first (repositories holding a key used in the last
    RECENT_DAYS days), then every repository, the workspace's own keys, and what was not read."""
    s = doc["summary"]
    lines = [
        f"# AWS keys in Bitbucket: workspace {doc['workspace']}",
        "",
        f"Generated {doc['generated_at']}. {s['repositories']} repositories: {s['with_static_keys']} hold "
        f"static keys ({s['keys']} key variables in all, the workspace's included), {s['using_oidc']} run "
        f"steps with `oidc: true`, {s['errors']} could not be read.",
        "",
        f"## Next migrations: keys used in the last {RECENT_DAYS} days",
        "",
    ]
    recent = [(repo, key) for repo in doc["repositories"] for key in repo["keys"] if recently_used(key, now)]
    recent += [
        ({"repository": "(workspace variable)"}, key)
        for key in doc["workspace_keys"]
        if recently_used(key, now)
    ]
    if recent:
        lines += [
            "| Repository | Variable | Where | Key | IAM user | Last used |",
            "|---|---|---|---|---|---|",
        ]
        recent.sort(key=lambda pair: str(pair[1]["last_used"]), reverse=True)
        for repo, key in recent:
            lines.append(
                f"| {_cell(repo['repository'])} | {_cell(key['variable'])} | {_cell(_where(key))} | "
                f"{_key_text(key)} | {_cell(key['iam_user'])} | {_cell(key['last_used'])} |"
            )
    else:
        lines.append("No key of these variables was used in that time.")
    lines += [
        "",
        "## Every repository",
        "",
        "| Repository | Main branch | OIDC steps | Keys | Error |",
        "|---|---|---|---|---|",
    ]
    for repo in doc["repositories"]:
        oidc = {True: "yes", False: "no", None: f"unknown ({repo['pipeline_file']})"}[repo["uses_oidc"]]
        keys = "<br>".join(
            f"{_cell(k['variable'])} ({_cell(_where(k))}): {_key_text(k)}"
            + (f", {_aws_text(k)}" if k["access_key_id"] else "")
            for k in repo["keys"]
        )
        lines.append(
            f"| {_cell(repo['repository'])} | {_cell(repo['main_branch'])} | {_cell(oidc)} | "
            f"{keys or 'none'} | {_cell(repo['error'])} |"
        )
    lines += ["", "## Workspace variables", ""]
    if doc.get("workspace_variables_error"):
        lines.append(f"Not read: {_cell(doc['workspace_variables_error'])}")
    elif doc["workspace_keys"]:
        lines += ["| Variable | Key | AWS | Last used |", "|---|---|---|---|"]
        for key in doc["workspace_keys"]:
            lines.append(
                f"| {_cell(key['variable'])} | {_key_text(key)} | {_aws_text(key)} | {_cell(key['last_used'])} |"
            )
    else:
        lines.append("No workspace variable holds a key id.")
    return "\n".join(lines) + "\n"


# -- Code Insights ---------------------------------------------------------------------------------
def insights(doc: Mapping[str, Any], now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report (the summary's figures in its details: the excerpt types a data field's
    value as an object, see pipe.report.insights_data) and one annotation per repository
    holding a key used in the last RECENT_DAYS days, at most 100."""
    s = doc["summary"]
    data = {
        "type": "report",
        "external_id": INSIGHTS_ID,
        "title": f"AWS keys in workspace {doc['workspace']}",
        "details": (
            f"{s['repositories']} repositories, {s['with_static_keys']} with static keys, {s['keys']} key "
            f"variables, {s['using_oidc']} using OIDC, {s['errors']} not read. migration.md has the tables."
        ),
        "report_type": "SECURITY",
        "result": "FAILED" if s["with_static_keys"] else "PASSED",
        "reporter": "aws-credentials-pipe",
    }
    notes: list[dict[str, Any]] = []
    for repo in doc["repositories"]:
        used = [k for k in repo["keys"] if recently_used(k, now)]
        if not used:
            continue
        summary_text = f"{repo['repository']}: " + ", ".join(
            f"{k['variable']} ({_where(k)}) used {str(k['last_used'])[:10]}" for k in used
        )
        notes.append(
            {
                "type": "report_annotation",
                "external_id": f"{INSIGHTS_ID}-{len(notes) + 1}",
                "annotation_type": "VULNERABILITY",
                "summary": summary_text[:450],
                "details": summary_text[:2000],
                "result": "FAILED",
                "severity": "MEDIUM",
            }
        )
    return data, notes[:100]
