"""README, pipe.yml and the code's variable schema agree."""

from __future__ import annotations

import re

import yaml

from pipe import schema
from tests.runner import REPO


def readme_table() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Variables", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)`(?: \(\*\))? \|([^|]*)\|", section, re.MULTILINE)
    return {name: default.strip().strip("`") for name, default in rows}


def pipe_yml() -> dict[str, dict[str, object]]:
    data = yaml.safe_load((REPO / "pipe.yml").read_text())
    return {entry["name"]: entry for entry in data["variables"]}


def test_readme_table_matches_the_schema() -> None:
    table = readme_table()
    assert list(table) == [v.name for v in schema.USER_VARIABLES]
    for var in schema.USER_VARIABLES:
        assert table[var.name] == var.default, var.name


def test_pipe_yml_matches_the_schema() -> None:
    entries = pipe_yml()
    assert list(entries) == [v.name for v in schema.USER_VARIABLES]
    for var in schema.USER_VARIABLES:
        assert str(entries[var.name].get("default", "")) == var.default, var.name
        assert bool(entries[var.name].get("secret", False)) == var.secret, var.name


def test_required_marks_agree() -> None:
    section = (REPO / "README.md").read_text().split("## Variables", 1)[1]
    required_readme = set(re.findall(r"^\| `([A-Z0-9_]+)` \(\*\)", section, re.MULTILINE))
    required_yml = {name for name, entry in pipe_yml().items() if entry.get("required")}
    assert required_readme == required_yml == {"AWS_DEFAULT_REGION"}


def test_bitbucket_variables_the_pipe_reads_are_documented() -> None:
    text = (REPO / "README.md").read_text()
    for var in schema.VARIABLES:
        if not var.user:
            assert f"`{var.name}`" in text, var.name


def test_the_yaml_definition_uses_only_known_variables() -> None:
    text = (REPO / "README.md").read_text()
    sections = [
        text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0] for name in ("YAML Definition", "Examples")
    ]
    used = set(re.findall(r"^\s+#?\s*([A-Z][A-Z0-9_]+): ", "\n".join(sections), re.MULTILINE))
    assert used <= set(schema.BY_NAME) | {"SMOKE_AWS_ROLE_ARN"}, used - set(schema.BY_NAME)
