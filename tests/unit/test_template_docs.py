"""docs/setup.md documents every parameter of every template in templates/, and nothing else.

A parameter table (its header starts ``| Parameter |``) belongs to the template whose deploy
command (``--template-file templates/<name>`` or ``file://templates/<name>``) comes last before
it; the names in a row's first cell (in backquotes, several to a row allowed) are parameters of
that template."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cloudformation import TEMPLATES, load

DOCS = Path(__file__).resolve().parents[2] / "docs" / "setup.md"
_COMMAND = re.compile(r"(?:--template-file |file://)templates/([\w.-]+\.yaml)")


def documented_parameters(text: str) -> dict[str, list[str]]:
    """Template -> the parameter names its tables in ``text`` name, in order."""
    out: dict[str, list[str]] = {}
    template = ""
    in_table = False
    for line in text.splitlines():
        command = _COMMAND.search(line)
        if command:
            template = command.group(1)
        if line.startswith("| Parameter |"):
            if not template:
                raise AssertionError(f"a parameter table before any template's deploy command: {line}")
            in_table = True
            out.setdefault(template, [])
            continue
        if in_table and line.startswith("|"):
            first = line.strip("|").split("|", 1)[0]
            if set(first.strip()) <= {"-", ":"}:
                continue
            out[template].extend(re.findall(r"`([A-Za-z0-9]+)`", first))
        else:
            in_table = False
    return out


def template_names() -> list[str]:
    return sorted(path.name for path in TEMPLATES.glob("*.yaml"))


@pytest.mark.parametrize("template", template_names())
def test_every_parameter_is_in_its_templates_table_and_no_other(template: str) -> None:
    documented = documented_parameters(DOCS.read_text())
    assert template in documented, f"docs/setup.md has no parameter table for {template}"
    names = documented[template]
    parameters = set(load(template)["Parameters"])
    assert sorted(parameters - set(names)) == [], f"{template}: parameters docs/setup.md does not name"
    assert sorted(set(names) - parameters) == [], f"{template}: docs/setup.md names parameters it lacks"
    assert len(names) == len(set(names)), f"{template}: a parameter named twice"


def test_docs_name_only_templates_that_exist() -> None:
    assert set(documented_parameters(DOCS.read_text())) <= set(template_names())


def test_the_reader_finds_a_missing_and_an_extra_row() -> None:
    """The parser attributes tables to the last deploy command and reads every row."""
    text = "\n".join(
        [
            "aws cloudformation deploy --template-file templates/a.yaml \\",
            "",
            "| Parameter | Default | What it is |",
            "|---|---|---|",
            "| `One`, `Two` | | x |",
            "| `Three` | `3` | `not-a-name:x` |",
            "",
            "| `AuditMode` | What |",
            "|---|---|",
            "| `report` | y |",
            "  --template-body file://templates/b.yaml \\",
            "| Parameter | Default | What it is |",
            "|---|---|---|",
            "| `Four` | | z |",
        ]
    )
    assert documented_parameters(text) == {"a.yaml": ["One", "Two", "Three"], "b.yaml": ["Four"]}
    with pytest.raises(AssertionError, match="before any template"):
        documented_parameters("| Parameter | Default |\n|---|---|\n| `X` | |")
