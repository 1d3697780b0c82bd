"""pipe.yml, the docs and the code's variable schema agree.

The docs are split by action: each page has one variables table, under "## Variables", with
the variables its actions read (the schema's `actions`):

- README.md (`assume`): every variable `assume` reads, the ones every action reads among them;
- docs/check.md, docs/rotate.md, docs/audit.md: the variables their actions read beyond those
  every action reads (which they point to in the README). A variable read by check and rotate, such as
  REPORT_DIR or the Bitbucket access, is in both pages.

Each row carries the schema's default and "Read by" (the implemented actions that read it,
"every action" for all of them), in the schema's order.

The runner's proxy variables (the schema's `environment` ones: HTTPS_PROXY and the others) are
not the pipe's: they are in no variables table and not in pipe.yml, but the README's table of
environment variables lists every one of them, and YAML examples may pass them. Every check is a function of the
repository root returning its problems, so the tests at the end can break a copy of the docs
and see each check fail.
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipe import schema

REPO = Path(__file__).resolve().parents[2]
IMAGE = "aws-credentials-pipe/aws-credentials-pipe"
# The page that documents each implemented action (a new action needs its page here).
PAGES: dict[str, tuple[str, ...]] = {
    "README.md": ("assume",),
    "docs/check.md": ("check",),
    "docs/rotate.md": ("rotate", "sync"),
    "docs/audit.md": ("audit",),
}
EVERY_ACTION = "every action"
# assume's details, moved out of the README: its proxies table is checked there.
ASSUME_PAGE = "docs/assume.md"


def docs(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def read_by(var: schema.Variable) -> str:
    actions = [a for a in schema.IMPLEMENTED_ACTIONS if a in var.actions]
    return EVERY_ACTION if len(actions) == len(schema.IMPLEMENTED_ACTIONS) else ", ".join(actions)


def read_by_every_action(var: schema.Variable) -> bool:
    return read_by(var) == EVERY_ACTION


def expected_rows(actions: tuple[str, ...]) -> list[schema.Variable]:
    if "assume" in actions:
        return [v for v in schema.USER_VARIABLES if "assume" in v.actions]
    return [v for v in schema.USER_VARIABLES if set(v.actions) & set(actions) and not read_by_every_action(v)]


def schema_required() -> set[str]:
    """The schema says "Required" in a variable's description (there is no flag for it)."""
    return {v.name for v in schema.USER_VARIABLES if re.search(r"\bRequired\b", v.description)}


# --- reading Markdown ---------------------------------------------------------------------

# A fence may be indented (a code block inside a list item): its lines are dedented.
FENCE = re.compile(r"^( *)```([\w-]*)\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)


def prose(text: str) -> str:
    """The text without fenced code blocks (kept as blank lines, so line numbers hold)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def code_blocks(text: str, *languages: str) -> list[str]:
    return [textwrap.dedent(m.group(3)) for m in FENCE.finditer(text) if m.group(2) in languages]


@dataclass
class Table:
    line: int
    heading: str  # the "## " section it is in
    header: list[str]
    rows: list[list[str]]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def tables(text: str) -> list[Table]:
    lines = prose(text).splitlines()
    found: list[Table] = []
    heading = ""
    i = 0
    while i < len(lines):
        if lines[i].startswith("## "):
            heading = lines[i][3:].strip()
        if (
            lines[i].startswith("|")
            and i + 1 < len(lines)
            and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip())
        ):
            table = Table(i + 1, heading, cells(lines[i]), [])
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                table.rows.append(cells(lines[i]))
                i += 1
            found.append(table)
            continue
        i += 1
    return found


def variables_tables(text: str) -> list[Table]:
    """Tables of the pipe's variables: the first column is headed "Variable"."""
    return [t for t in tables(text) if t.header and t.header[0] == "Variable"]


ROW_NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`( \(\*\))?")


def row_name(cell: str) -> tuple[str, bool] | None:
    match = ROW_NAME.fullmatch(cell)
    return (match.group(1), bool(match.group(2))) if match else None


def column(table: Table, row: list[str], name: str) -> str | None:
    return row[table.header.index(name)] if name in table.header else None


def bitbucket_slug(heading: str) -> str:
    """The id bitbucket.org gives a heading: Python-Markdown's toc slugify (the heading's text,
    NFKD to ASCII, characters other than word characters, spaces and hyphens dropped, lower
    case, runs of spaces and hyphens as one hyphen), prefixed with markdown-header-."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = re.sub(r"[`*]", "", text)  # code and emphasis: their text only
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return "markdown-header-" + re.sub(r"[-\s]+", "-", text)


def anchors(text: str) -> set[str]:
    """The heading ids of a page as bitbucket.org renders it; a repeated id gets _1, _2, ...
    (Python-Markdown's toc)."""
    found: set[str] = set()
    for match in re.finditer(r"^#{1,6} (.+?)\s*#*$", prose(text), re.MULTILINE):
        slug = bitbucket_slug(match.group(1))
        unique, count = slug, 0
        while unique in found:
            count += 1
            unique = f"{slug}_{count}"
        found.add(unique)
    return found


# --- the checks: each returns its problems --------------------------------------------------


def pipe_yml(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((root / "pipe.yml").read_text())
    return data


def problems_pipe_yml(root: Path) -> list[str]:
    entries = pipe_yml(root)["variables"]
    names = [e["name"] for e in entries]
    problems = []
    if names != [v.name for v in schema.USER_VARIABLES]:
        problems.append(f"pipe.yml lists {names}, the schema's user variables are in another order or set")
    for entry in entries:
        var = schema.BY_NAME.get(entry["name"])
        if var is None or not var.user:
            problems.append(f"pipe.yml: {entry['name']} is not a user variable of the schema")
            continue
        unknown = sorted(set(entry) - {"name", "default", "required", "secret"})
        if unknown:
            problems.append(f"pipe.yml: {var.name} has unknown keys {unknown}")
        if str(entry.get("default", "")) != var.default:
            problems.append(f"pipe.yml: {var.name} default {entry.get('default')!r}, schema {var.default!r}")
        if bool(entry.get("secret", False)) != var.secret:
            problems.append(f"pipe.yml: {var.name} secret is {entry.get('secret')}, schema {var.secret}")
        if bool(entry.get("required", False)) != (var.name in schema_required()):
            problems.append(f"pipe.yml: {var.name} required is {entry.get('required')}, schema disagrees")
    return problems


def problems_pages(root: Path) -> list[str]:
    """Each page tables exactly the variables its actions read, with the schema's defaults."""
    problems = []
    covered = [a for actions in PAGES.values() for a in actions]
    if sorted(covered) != sorted(schema.IMPLEMENTED_ACTIONS):
        problems.append(
            f"PAGES documents {covered}, the implemented actions are {schema.IMPLEMENTED_ACTIONS}"
        )
    for page, actions in PAGES.items():
        path = root / page
        if not path.exists():
            problems.append(f"{page} is missing")
            continue
        found = variables_tables(path.read_text())
        if len(found) != 1 or found[0].heading != "Variables":
            problems.append(f"{page}: {len(found)} variables tables; expected one, under '## Variables'")
            continue
        table = found[0]
        if table.header[:3] != ["Variable", "Default", "Read by"]:
            problems.append(f"{page}: the table's columns are {table.header}")
            continue
        names = [(row_name(row[0]) or (row[0], False))[0] for row in table.rows]
        want = [v.name for v in expected_rows(actions)]
        if names != want:
            missing = [n for n in want if n not in names]
            extra = [n for n in names if n not in want]
            problems.append(
                f"{page}: the table lists {names}; expected {want} in the schema's order "
                f"(missing {missing}, not read by {', '.join(actions)}: {extra})"
            )
        for row in table.rows:
            named = row_name(row[0])
            var = schema.BY_NAME.get(named[0]) if named else None
            if var is None:
                continue
            default = (column(table, row, "Default") or "").strip("`")
            if default != var.default:
                problems.append(f"{page}: {var.name} default {default!r}, schema {var.default!r}")
            if column(table, row, "Read by") != read_by(var):
                problems.append(
                    f"{page}: {var.name} read by {column(table, row, 'Read by')!r}, schema {read_by(var)!r}"
                )
    return problems


def problems_required(root: Path) -> list[str]:
    marked: set[str] = set()
    for doc in docs(root):
        for table in variables_tables(doc.read_text()):
            marked |= {n[0] for row in table.rows if (n := row_name(row[0])) and n[1]}
    in_yml = {e["name"] for e in pipe_yml(root)["variables"] if e.get("required")}
    problems = []
    if not marked == in_yml == schema_required() == {"AWS_DEFAULT_REGION"}:
        problems.append(f"required: docs {marked}, pipe.yml {in_yml}, schema {schema_required()}")
    if marked and "_(*) = required variable._" not in (root / "README.md").read_text():
        problems.append("README.md: the (*) legend is missing")
    return problems


def problems_tables(root: Path) -> list[str]:
    """Variables tables name only variables users set; every table's rows are whole."""
    problems = []
    for doc in docs(root):
        for table in tables(doc.read_text()):
            problems += [
                f"{rel(root, doc)}:{table.line}: a row of {len(row)} cells under {len(table.header)} columns"
                for row in table.rows
                if len(row) != len(table.header)
            ]
        for table in variables_tables(doc.read_text()):
            for row in table.rows:
                named = row_name(row[0])
                if named is None or named[0] not in schema.BY_NAME or not schema.BY_NAME[named[0]].user:
                    problems.append(f"{rel(root, doc)}:{table.line}: {row[0]} is not a variable users set")
    return problems


def pipe_variables(node: Any) -> Iterator[str]:
    """The variables of every use of this pipe in a parsed YAML example."""
    if isinstance(node, dict):
        if IMAGE in str(node.get("pipe", "")):
            yield from (node.get("variables") or {})
        for value in node.values():
            yield from pipe_variables(value)
    elif isinstance(node, list):
        for item in node:
            yield from pipe_variables(item)


def yaml_examples(root: Path) -> Iterator[tuple[str, str]]:
    for doc in docs(root):
        for block in code_blocks(doc.read_text(), "yaml", "yml"):
            yield rel(root, doc), block
    yield "pipe.yml (yml)", str(pipe_yml(root)["yml"])


def problems_examples(root: Path) -> list[str]:
    """YAML examples (commented-out `# NAME:` lines too) and `docker run -e NAME` set only
    variables the pipe knows; each page shows the pipe in use at least once."""
    problems = []
    users = {v.name for v in schema.USER_VARIABLES} | {v.name for v in schema.ENVIRONMENT_VARIABLES}
    uses: dict[str, int] = {}
    for where, block in yaml_examples(root):
        uncommented = re.sub(r"^(\s*)# ([A-Z][A-Z0-9_]*: )", r"\1\2", block, flags=re.MULTILINE)
        try:
            parsed = yaml.safe_load(uncommented)
        except yaml.YAMLError as exc:
            problems.append(f"{where}: a YAML example does not parse: {exc}")
            continue
        names = list(pipe_variables(parsed))
        uses[where] = uses.get(where, 0) + (IMAGE in block)
        problems += [
            f"{where}: a YAML example sets {n}, which the pipe does not read" for n in names if n not in users
        ]
    for doc in docs(root):
        for block in code_blocks(doc.read_text(), "bash", "sh"):
            if IMAGE in block and "docker run" in block:
                for name in re.findall(r"(?:^|\s)-e ([A-Za-z_][A-Za-z0-9_]*)", block):
                    if name not in schema.BY_NAME:
                        problems.append(
                            f"{rel(root, doc)}: docker run passes {name}, which the pipe does not read"
                        )
    problems += [f"{page}: no YAML example uses the pipe" for page in PAGES if not uses.get(page)]
    return problems


def problems_bitbucket_variables(root: Path) -> list[str]:
    text = (root / "README.md").read_text()
    return [
        f"README.md does not name {v.name}, which the pipe reads"
        for v in schema.VARIABLES
        if not v.user and f"`{v.name}`" not in text
    ]


def problems_environment(root: Path) -> list[str]:
    """docs/assume.md's table headed "Environment variable" (its Proxies section) names each
    environment variable of the schema (both forms of one, in its first column), and nothing else."""
    text = (root / ASSUME_PAGE).read_text()
    found = [t for t in tables(text) if t.header and t.header[0] == "Environment variable"]
    if len(found) != 1:
        return [f"{ASSUME_PAGE}: {len(found)} tables headed 'Environment variable'; expected one"]
    named = [name for row in found[0].rows for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", row[0])]
    want = [v.name for v in schema.ENVIRONMENT_VARIABLES]
    if sorted(named) != sorted(want):
        return [
            f"{ASSUME_PAGE}: the environment variables table names {sorted(named)}; the schema has {sorted(want)}"
        ]
    return []


LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH_IN_CODE = re.compile(r"`(\.?[a-z][\w.-]*(?:/[\w.-]+)+\.(?:py|json|md|ya?ml|j2|toml|txt|cfg))`")
# Where the docs are read: bitbucket.org, whose heading ids are `bitbucket_slug`. The README is
# also the pipe's Marketplace page, where a relative link has no repository to resolve against,
# so the README links to files (and to its own headings) absolutely: pipe.yml's repository,
# branch main. docs/*.md are read in the repository only, and link relatively.
BRANCH = "main"


def repository_urls(root: Path) -> re.Pattern[str]:
    base = re.escape(str(pipe_yml(root)["repository"]))
    return re.compile(rf"{base}/(?:src|raw)/{BRANCH}/([^\s)#>`'\"]+)(?:#([\w-]+))?")


def _target(root: Path, doc: Path, path: Path, anchor: str, shown: str) -> list[str]:
    if not path.is_relative_to(root) or not path.exists():
        return [f"{rel(root, doc)}: the link {shown} leads to no file of the repository"]
    if anchor and (path.suffix != ".md" or anchor not in anchors(path.read_text())):
        return [
            f"{rel(root, doc)}: the link {shown} names no heading of {path.name} (as bitbucket.org ids them)"
        ]
    return []


def problems_links(root: Path) -> list[str]:
    """Every link resolves where the page is read: a relative link (docs/ only) or a link into
    pipe.yml's repository leads to a file of the repository, and its #anchor to one of that
    file's headings as bitbucket.org renders them. A file path in inline code is one of the
    repository's. Paths under pipe/ need only their first part: the package's files move
    (docs/design.md's module map)."""
    problems = []
    urls = repository_urls(root)
    for doc in docs(root):
        raw = doc.read_text()
        for match in urls.finditer(raw):  # code blocks too: the README's curl of a template
            path = Path(os.path.normpath(root / match.group(1)))
            problems += _target(root, doc, path, match.group(2) or "", match.group(0))
        text = prose(raw)
        for target in LINK.findall(re.sub(r"`[^`\n]*`", "", text)):
            if re.match(r"[a-z]+:", target):
                continue
            if doc.name == "README.md" and doc.parent == root:
                problems.append(
                    f"README.md: the link {target} is relative; the Marketplace page cannot follow it"
                )
                continue
            path_part, _, anchor = target.partition("#")
            path = Path(os.path.normpath(doc.parent / path_part)) if path_part else doc
            problems += _target(root, doc, path, anchor, target)
        for named in PATH_IN_CODE.findall(text):
            first = named.split("/", 1)[0]
            exists = (root / first).exists() if first == "pipe" else (root / named).exists()
            if not exists:
                problems.append(f"{rel(root, doc)}: `{named}` is not a file of the repository")
    return problems


README_LIST = re.compile(
    r"reads? these variables of \[the README's table\]\(\.\./README\.md#markdown-header-variables\):"
    r"((?:\s*`[A-Z][A-Z0-9_]*`,?)*)\."
)


def problems_readme_lists(root: Path) -> list[str]:
    """Each action page lists, by name, the variables of the README's table its actions read
    (the schema's `actions`), in the schema's order: the list cannot drift from the code."""
    problems = []
    for page, actions in PAGES.items():
        if "assume" in actions:
            continue
        found = README_LIST.findall((root / page).read_text())
        want = [
            v.name for v in schema.USER_VARIABLES if "assume" in v.actions and set(v.actions) & set(actions)
        ]
        if len(found) != 1:
            problems.append(f"{page}: {len(found)} lists of the README's variables; expected one")
        elif (names := re.findall(r"`([A-Z][A-Z0-9_]*)`", found[0])) != want:
            problems.append(f"{page}: lists the README's variables {names}; the schema says {want}")
    return problems


def problems_snippet(root: Path) -> list[str]:
    """pipe.yml's `yml` is a snippet for a script section (no `- step:`), and the README shows
    exactly it as its YAML Definition."""
    snippet = str(pipe_yml(root)["yml"])
    text = (root / "README.md").read_text()
    section = text.split("\n### 2. YAML Definition\n", 1)[-1].split("\n#", 1)[0]
    problems = []
    if not isinstance(yaml.safe_load(snippet), list) or "step:" in snippet:
        problems.append("pipe.yml: yml is not a list of script-section lines")
    if snippet not in code_blocks(section, "yaml"):
        problems.append("README.md: the YAML Definition's snippet is not pipe.yml's yml")
    return problems


def problems_support_and_license(root: Path) -> list[str]:
    text = (root / "README.md").read_text()
    support = text.split("\n## Support\n", 1)[-1].split("\n## ", 1)[0] if "\n## Support\n" in text else ""
    problems = []
    if f"{pipe_yml(root)['repository']}/issues" not in support:
        problems.append("README.md: Support does not name the issue tracker of pipe.yml's repository")
    if "\n## License\n" not in text or "Apache-2.0" not in text.split("\n## License\n", 1)[1]:
        problems.append("README.md: no License section saying Apache-2.0")
    if "Apache License" not in (root / "LICENSE").read_text():
        problems.append("LICENSE is not the Apache License")
    return problems


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "pipe_yml": problems_pipe_yml,
    "pages": problems_pages,
    "required": problems_required,
    "tables": problems_tables,
    "examples": problems_examples,
    "bitbucket": problems_bitbucket_variables,
    "environment": problems_environment,
    "links": problems_links,
    "lists": problems_readme_lists,
    "snippet": problems_snippet,
    "support": problems_support_and_license,
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_the_docs_agree_with_the_schema(check: str) -> None:
    assert CHECKS[check](REPO) == []


# --- each check fails on a broken copy of the docs ------------------------------------------

BREAKAGES = [
    # (check, file, text to replace, replacement)
    (
        "pipe_yml",
        "pipe.yml",
        '  - name: DEBUG\n    default: "false"\n',
        '  - name: DEBUG\n    default: "true"\n',
    ),
    (
        "pipe_yml",
        "pipe.yml",
        "  - name: BITBUCKET_APP_PASSWORD\n    secret: true\n",
        "  - name: BITBUCKET_APP_PASSWORD\n",
    ),
    (
        "pipe_yml",
        "pipe.yml",
        "  - name: AUDIT_EXTERNAL_ID\n    secret: true\n",
        "  - name: AUDIT_EXTERNAL_ID\n",
    ),
    (
        "pipe_yml",
        "pipe.yml",
        "  - name: AWS_REGION\n  - name: AWS_OIDC_ROLE_ARN\n",
        "  - name: AWS_OIDC_ROLE_ARN\n  - name: AWS_REGION\n",
    ),
    ("pages", "README.md", "| `DEBUG` | `false` |", "| `DEBUG` | `true` |"),
    (
        "pages",
        "docs/check.md",
        "| `LEGACY_IDLE_DAYS` | `7` | check |",
        "| `LEGACY_IDLE_DAYS` | `7` | check, rotate |",
    ),
    ("pages", "docs/rotate.md", "| `SOURCE` | | sync |", "| `SOURCES` | | sync |"),
    ("pages", "docs/check.md", "| `TRUST_POLICY_FILE` |", "| `IAM_USER_NAME` |"),
    ("pages", "docs/rotate.md", "| `REPORT_DIR` |", "| `REPORT_DIRECTORY` |"),
    ("pages", "docs/audit.md", "| `AUDIT_MODE` | `report` | audit |", "| `AUDIT_MODE` | `enforce` | audit |"),
    (
        "pages",
        "docs/audit.md",
        "| `ROTATE_AFTER_DAYS` | `90` | rotate, audit |",
        "| `ROTATE_AFTER_DAYS` | `90` | rotate |",
    ),
    ("required", "README.md", "| `AWS_DEFAULT_REGION` (*) |", "| `AWS_DEFAULT_REGION` |"),
    ("required", "docs/rotate.md", "| `SOURCE` |", "| `SOURCE` (*) |"),
    (
        "tables",
        "docs/design.md",
        "## Decisions\n",
        "## Decisions\n\n| Variable | Default |\n|---|---|\n| `HTTPS_PROXY` | |\n",
    ),
    ("tables", "docs/rotate.md", "| `none` | no store;", "| `none` | no | store;"),
    ("examples", "README.md", "              ACTION: check\n", "              ACTIONS: check\n"),
    (
        "examples",
        "docs/rotate.md",
        "                IAM_USER_NAME: ci-deployer",
        "                IAM_USER: ci-deployer",
    ),
    ("examples", "docs/rotate.md", "-e FORCE_ROTATE=true", "-e FORCE=true"),
    ("bitbucket", "README.md", "`BITBUCKET_COMMIT`", "the commit"),
    ("bitbucket", "README.md", "`BITBUCKET_CLONE_DIR` and", "the clone directory and"),
    ("environment", "docs/assume.md", "| `NO_PROXY` (or `no_proxy`) |", "| `NO_PROXY` |"),
    ("examples", "docs/assume.md", "    HTTPS_PROXY: $HTTPS_PROXY", "    HTTPS_PROXI: $HTTPS_PROXY"),
    ("links", "README.md", "/src/main/docs/check.md)", "/src/main/docs/checks.md)"),
    ("links", "README.md", "/raw/main/templates/oidc.yaml\n", "/raw/main/templates/oidc.yml\n"),
    (
        "links",
        "README.md",
        "docs/assume.md#markdown-header-troubleshooting)",
        "docs/assume.md#troubleshooting)",
    ),
    (
        "links",
        "README.md",
        "[Variables](https://bitbucket.org/aws-credentials-pipe/aws-credentials-pipe/src/main/README.md#",
        "[Variables](",
    ),
    (
        "links",
        "docs/check.md",
        "(../README.md#markdown-header-1-the-aws-side)",
        "(../README.md#1-the-aws-side)",
    ),
    (
        "links",
        "docs/audit.md",
        "](../README.md#markdown-header-variables)",
        "](README.md#markdown-header-variables)",
    ),
    ("lists", "docs/check.md", "`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_STS`.", "`AWS_ENDPOINT_URL`."),
    ("lists", "docs/audit.md", "`ACTION`, `AWS_DEFAULT_REGION`,", "`AWS_DEFAULT_REGION`, `ACTION`,"),
    ("snippet", "pipe.yml", "    AWS_DEFAULT_REGION: '<string>'\n", "    AWS_DEFAULT_REGION: eu-west-1\n"),
    (
        "snippet",
        "README.md",
        "- pipe: docker://aws-credentials-pipe/aws-credentials-pipe:1\n  variables:\n    AWS_OIDC_ROLE_ARN: '<string>'",
        "- pipe: docker://aws-credentials-pipe/aws-credentials-pipe:1\n  variables:\n    AWS_OIDC_ROLE_ARN: '<arn>'",
    ),
    (
        "links",
        "docs/development.md",
        "`tests/standins/servicemodel.py`",
        "`shared/bitbucket-api/openapi-excerpt.json`",
    ),
    ("support", "README.md", "aws-credentials-pipe/issues", "aws-credentials-pipe/wiki"),
]


@pytest.mark.parametrize(
    ("check", "file", "old", "new"), BREAKAGES, ids=[f"{b[0]}-{b[1]}" for b in BREAKAGES]
)
def test_each_check_fails_on_a_broken_doc(tmp_path: Path, check: str, file: str, old: str, new: str) -> None:
    for entry in REPO.iterdir():
        if entry.name in ("README.md", "pipe.yml", "LICENSE", "docs"):
            copy = shutil.copytree if entry.is_dir() else shutil.copy2
            copy(entry, tmp_path / entry.name)
        elif entry.name != ".git":
            (tmp_path / entry.name).symlink_to(entry)
    assert CHECKS[check](tmp_path) == [], "the copy starts clean"
    path = tmp_path / file
    assert old in path.read_text(), f"the breakage no longer applies to {file}: update BREAKAGES"
    path.write_text(path.read_text().replace(old, new, 1))
    assert CHECKS[check](tmp_path) != []
