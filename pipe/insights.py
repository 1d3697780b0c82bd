"""The check's verdict as a Code Insights report on the commit, with one annotation per
finding, posted through the Pipelines auth proxy (bitbucket-pipes-toolkit's CodeInsights,
authless). A report that cannot be posted is a warning, never the check's failure."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from typing import Any

from pipe.trust_policy import Finding

REPORT_ID = "aws-credentials-pipe-oidc-check"
_SEVERITY = {"error": "HIGH", "warning": "MEDIUM", "info": "LOW"}


def report_data(verdict: str, findings: Sequence[Finding], role: str) -> dict[str, Any]:
    """The report. No `data` fields: the API excerpt types their `value` as an object while
    Bitbucket's own examples send plain numbers and strings; the verdict and the counts are
    in `details` instead."""
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    return {
        "type": "report",
        "external_id": REPORT_ID,
        "title": f"OIDC migration check: {verdict}",
        "details": (
            f"{verdict}: can this repository drop its static AWS keys and assume {role} with OIDC? "
            f"{errors} error(s), {warnings} warning(s); the findings are the annotations."
        ),
        "report_type": "SECURITY",
        "result": "PASSED" if verdict == "READY" else "FAILED",
        "reporter": "aws-credentials-pipe",
    }


def notes_for(findings: Sequence[Finding], paths: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for index, finding in enumerate(f for f in findings if f.severity != "info"):
        item: dict[str, Any] = {
            "type": "report_annotation",
            "external_id": f"{REPORT_ID}-{index + 1}",
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


def post(
    *,
    workspace: str,
    repo: str,
    commit: str,
    proxy_host: str,
    data: dict[str, Any],
    notes: list[dict[str, Any]],
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> bool:
    from bitbucket_pipes_toolkit import CodeInsights
    from requests import RequestException

    insights = CodeInsights(repo, workspace, auth_type="authless", auth_proxy_host=proxy_host)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # the toolkit prints a ✖ line and exits on errors
            insights.create_report(commit, data)
            if notes:
                insights.create_bulk_annotations(commit, REPORT_ID, notes)
    except (SystemExit, RequestException) as exc:
        reason = " ".join(printed.getvalue().replace("✖", "").split()) or type(exc).__name__
        warn(f"The Code Insights report was not posted ({reason}); the verdict is in the report files.")
        return False
    say(f"Posted the Code Insights report on {commit[:12]} with {len(notes)} annotation(s).")
    return True
