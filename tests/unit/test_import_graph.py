"""Imports in pipe/ run one way (issue 17): no cycle, counting every import a module makes, at
module level, under ``if TYPE_CHECKING:`` or inside a function alike. Read from the source with
ast, so a type-only or lazy import that closes a loop fails here too."""

from __future__ import annotations

import ast
from pathlib import Path

PIPE = Path(__file__).resolve().parents[2] / "pipe"


def module_name(path: Path) -> str:
    parts = path.relative_to(PIPE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str, modules: set[str]) -> set[str]:
    """The modules of pipe/ that ``path`` imports, wherever in the file the import is. ``from
    pipe.config import fields`` is an import of pipe.config.fields; ``from pipe.config import
    Settings`` one of pipe.config."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in sorted(PIPE.rglob("*.py"))}
    return {name: imported(path, name, set(paths)) for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a path (its first module repeated at the end), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_pipe_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 40 and graph["pipe.actions.assume"], "the graph was not read"
    cycle = find_cycle(graph)
    assert not cycle, "import cycle in pipe/: " + " -> ".join(cycle)


def test_the_check_finds_a_type_only_cycle(tmp_path: Path) -> None:
    """The same reading, on two modules that import each other only for type checking."""
    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipe.b import B\n"
    )
    (tmp_path / "b.py").write_text("def f():\n    from pipe.a import A\n")
    modules = {"pipe.a", "pipe.b"}
    graph = {name: imported(tmp_path / f"{name[5:]}.py", name, modules) for name in modules}
    assert find_cycle(graph) == ["pipe.a", "pipe.b", "pipe.a"]


def test_the_config_imports_no_client_and_no_action() -> None:
    """The settings sit below the clients and the actions: nothing pipe.config imports, however
    indirectly, is an action, the SDK clients or the credential step."""
    graph = import_graph()
    seen: set[str] = set()
    todo = ["pipe.config"]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    assert not {m for m in seen if m.startswith("pipe.actions")} | ({"pipe.aws", "pipe.signin"} & seen)
