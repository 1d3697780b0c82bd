"""ACTION=check with CHECK_SCOPE=workspace: the migration report of a whole workspace.

Gather (``pipe.workspace_scan``: every repository's variables, deployment variables and
pipeline file, and the workspace's variables; ``pipe.key_lookup``: each distinct key id's
account, user, status and last use), evaluate and render (``pipe.migration``, pure), report
(migration.json and migration.md in REPORT_DIR, and a Code Insights report in Pipelines).
Reads only: no variable, key or anything else is changed.

Exit 0 whatever it finds; the run fails only when the workspace itself cannot be listed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pipe import key_lookup, migration, report, workspace_scan
from pipe.aws import Clients
from pipe.config import Settings
from pipe.console import Console
from pipe.errors import InputError, PipeError
from pipe.migration import KeyFacts
from pipe.signin import obtain


def run(settings: Settings, clients: Clients, console: Console) -> str:
    workspace = settings.workspace
    bitbucket = clients.bitbucket()
    if bitbucket is None:  # pipe.config.check demands credentials; kept for a direct call
        raise InputError(
            "BITBUCKET_ACCESS_TOKEN",
            "CHECK_SCOPE=workspace needs Bitbucket credentials",
            "Set BITBUCKET_ACCESS_TOKEN to a workspace access token with the scopes repository and pipeline.",
        )
    if settings.check.retire_legacy_keys or settings.check.trust_policy_file:
        console.warning(
            "RETIRE_LEGACY_KEYS and TRUST_POLICY_FILE are not read with CHECK_SCOPE=workspace, which reads only: ignored."
        )
    console.info(
        f"Workspace migration report of {workspace}: reading every repository's variables, deployment "
        "variables and bitbucket-pipelines.yml, and the workspace's variables; nothing is changed."
    )
    found = workspace_scan.scan(
        bitbucket, workspace, concurrency=settings.check.concurrency, say=console.info
    )
    key_ids = migration.distinct_key_ids(found.repositories, found.workspace_keys)
    facts = _facts(settings, clients, console, key_ids)
    now = datetime.now(UTC)
    doc = migration.document(
        workspace,
        found.repositories,
        found.workspace_keys,
        facts,
        now,
        workspace_error=found.workspace_error,
    )
    report.write(
        settings.report_dir,
        {
            migration.JSON_FILE: json.dumps(doc, indent=2) + "\n",
            migration.MARKDOWN_FILE: migration.markdown(doc, now),
        },
        console.clean,
    )
    _print(doc, now, console)
    _post(settings, doc, now, console)
    return f"{migration.success_line(doc)}. Report: {settings.report_dir / migration.MARKDOWN_FILE}"


def _facts(settings: Settings, clients: Clients, console: Console, key_ids: list[str]) -> dict[str, KeyFacts]:
    """Each key id's facts; when AWS cannot be reached, every key says why (the report is
    still written)."""
    if not key_ids:
        return {}
    try:
        credentials, identity = obtain(settings, clients, console)
    except PipeError as error:
        console.warning(f"The keys' accounts and users were not read: {error.message}. {error.hint}")
        return {k: KeyFacts(error=f"not read: {error.message}") for k in key_ids}
    calls = key_lookup.Calls()
    facts = key_lookup.look_up(
        key_ids,
        sts=clients.aws.client("sts", credentials),
        iam=clients.aws.client("iam", credentials),
        own_account=identity.account,
        concurrency=settings.check.concurrency,
        calls=calls,
    )
    console.info(
        f"{len(key_ids)} distinct key id(s): {calls.total('sts:')} STS and {calls.total('iam:')} IAM call(s) "
        f"({', '.join(f'{a} {n}' for a, n in sorted(calls.counts.items()))})."
    )
    return facts


def _print(doc: dict[str, object], now: datetime, console: Console) -> None:
    repositories = doc["repositories"]
    assert isinstance(repositories, list)
    lines = []
    for repo in repositories:
        for key in repo["keys"]:
            if migration.recently_used(key, now):
                lines.append(
                    f"USED    {repo['repository']}: {key['variable']} {key['access_key_id']} ({key['last_used']})"
                )
        if repo["error"]:
            lines.append(f"NOT READ {repo['repository']}: {repo['error']}")
    console.lines(lines)


def _post(settings: Settings, doc: dict[str, object], now: datetime, console: Console) -> None:
    """The Code Insights report on the commit, in Pipelines (CI=true) only."""
    place = report.Place.of(settings)
    if not place.postable:
        return
    data, notes = migration.insights(doc, now)
    report.post_insights(place, data, notes, say=console.info, warn=console.warning, clean=console.clean)
