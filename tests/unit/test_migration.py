"""pipe.migration, the pure part of the workspace migration report: which variables hold key
ids, whether a pipeline file runs OIDC steps, and the report's shape and figures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipe import migration
from pipe.migration import KeyFacts, KeyVariable, RepositoryScan

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
KEY = "AKIAIOSFODNN7EXAMPLE"
OTHER = "AKIA2222222222222222"


@pytest.mark.parametrize(
    ("name", "value", "secured", "expected"),
    [
        ("AWS_ACCESS_KEY_ID", KEY, False, (KEY, False)),
        ("DEPLOY_ACCESS_KEY_ID", None, True, (None, True)),  # secured: id unknown
        ("deploy_access_key_id", KEY, False, (KEY, False)),
        ("SOMETHING", f"  {KEY} ", False, (KEY, False)),  # by its value
        ("SOMETHING", "ASIAIOSFODNN7EXAMPLE", False, ("ASIAIOSFODNN7EXAMPLE", False)),
        ("AWS_ACCESS_KEY_ID", "$OTHER_VARIABLE", False, (None, False)),  # named, not a key id
        ("SOMETHING", None, True, None),  # secured, and not named like a key id
        ("SOMETHING", f"prefix{KEY}", False, None),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", False, None),
        ("SOMETHING", "AKIAiosfodnn7example", False, None),
    ],
)
def test_key_variables(
    name: str, value: str | None, secured: bool, expected: tuple[str | None, bool] | None
) -> None:
    found = migration.key_variable(name, value, secured, "repository")
    assert (None if found is None else (found.access_key_id, found.secured)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pipelines:\n  default:\n    - step:\n        oidc: true\n        script: [echo]\n", True),
        ("pipelines:\n  default:\n    - step:\n        script: [echo]\n", False),
        ("pipelines:\n  default:\n    - step:\n        oidc: 'true'\n", False),  # a string is not oidc
        (
            "definitions:\n  steps:\n    - step: &deploy\n        oidc: true\n        script: [x]\n"
            "pipelines:\n  branches:\n    main:\n      - step: *deploy\n",
            True,
        ),
        (
            "pipelines:\n  default:\n    - parallel:\n        - step: {script: [a]}\n        - step: {oidc: true}\n",
            True,
        ),
        ("pipelines:\n  default:\n    - stage:\n        steps:\n          - step: {oidc: true}\n", True),
        ("pipelines: [unclosed", None),
        ("just a string", None),
        ("", None),
    ],
)
def test_uses_oidc(text: str, expected: bool | None) -> None:
    assert migration.uses_oidc(text) is expected


def test_a_yaml_bomb_is_walked_once_per_node() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20)
    )
    assert migration.uses_oidc(bomb) is False


def scans() -> tuple[list[RepositoryScan], list[KeyVariable]]:
    app = RepositoryScan(
        "acme/app",
        "main",
        False,
        "read",
        (
            KeyVariable("repository", None, "AWS_ACCESS_KEY_ID", KEY, False),
            KeyVariable("deployment", "Production", "PROD_ACCESS_KEY_ID", None, True),
        ),
    )
    web = RepositoryScan(
        "acme/web", "main", True, "read", (KeyVariable("repository", None, "X", KEY, False),)
    )
    gone = RepositoryScan("acme/gone", None, None, "no main branch", error="Bitbucket refused (403)")
    clean = RepositoryScan("acme/clean", "main", True, "read")
    return [web, app, gone, clean], [KeyVariable("workspace", None, "DEPLOY_ACCESS_KEY_ID", OTHER, False)]


FACTS = {
    KEY: KeyFacts("123456789012", "ci-app", "Active", "2026-12-05T10:00:00Z"),
    OTHER: KeyFacts("210987654321", other_account=True, note="a key of account 210987654321"),
}


def test_the_document_has_the_contracts_shape_and_figures() -> None:
    repos, workspace_keys = scans()
    doc = migration.document("acme", repos, workspace_keys, FACTS, NOW)
    assert (
        doc["version"] == 1 and doc["workspace"] == "acme" and doc["generated_at"] == "2026-12-07T06:00:00Z"
    )
    assert [r["repository"] for r in doc["repositories"]] == [
        "acme/app",
        "acme/clean",
        "acme/gone",
        "acme/web",
    ]
    first = doc["repositories"][0]["keys"][0]
    assert {
        k: first[k]
        for k in (
            "scope",
            "environment",
            "variable",
            "access_key_id",
            "secured",
            "account_id",
            "iam_user",
            "status",
            "last_used",
            "error",
        )
    } == {
        "scope": "repository",
        "environment": None,
        "variable": "AWS_ACCESS_KEY_ID",
        "access_key_id": KEY,
        "secured": False,
        "account_id": "123456789012",
        "iam_user": "ci-app",
        "status": "Active",
        "last_used": "2026-12-05T10:00:00Z",
        "error": None,
    }
    secured = doc["repositories"][0]["keys"][1]
    assert secured["environment"] == "Production" and secured["note"] == "secured, id unknown"
    assert secured["access_key_id"] is None and secured["error"] is None
    assert doc["workspace_keys"][0]["other_account"] is True
    assert doc["summary"] == {
        "repositories": 4,
        "with_static_keys": 2,
        "keys": 4,
        "using_oidc": 2,
        "errors": 1,
    }
    assert migration.distinct_key_ids(repos, workspace_keys) == sorted([KEY, OTHER])


def test_the_markdown_opens_with_the_keys_used_lately() -> None:
    repos, workspace_keys = scans()
    old = {**FACTS, KEY: KeyFacts("123456789012", "ci-app", "Active", "2026-01-01T00:00:00Z")}
    recent = migration.markdown(migration.document("acme", repos, workspace_keys, FACTS, NOW), NOW)
    stale = migration.markdown(migration.document("acme", repos, workspace_keys, old, NOW), NOW)
    head = recent.split("## Every repository")[0]
    assert "| acme/app | AWS_ACCESS_KEY_ID | repository | `AKIAIOSFODNN7EXAMPLE` | ci-app |" in head
    assert "acme/web" in head and "acme/clean" not in head
    assert "No key of these variables was used" in stale.split("## Every repository")[0]
    assert "unknown (no main branch)" in recent and "secured, id unknown" in recent


def test_insights_carry_the_summary_figures() -> None:
    repos, workspace_keys = scans()
    doc = migration.document("acme", repos, workspace_keys, FACTS, NOW)
    data, notes = migration.insights(doc, NOW)
    assert "4 repositories, 2 with static keys, 4 key variables, 2 using OIDC, 1 not read" in data["details"]
    assert [n["summary"].split(":")[0] for n in notes] == ["acme/app", "acme/web"]
    assert migration.success_line(doc).startswith("Workspace acme: 4 repositories, 2 with static keys")
