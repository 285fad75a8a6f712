"""The package's shape: no import cycle among gwproactor's modules, nothing imports the
proactor module except the package's ``__init__`` and the CLI, and the folders follow the
spine of a message's path."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import gwproactor

PACKAGE = Path(gwproactor.__file__).parent
PROACTOR_MODULE = "gwproactor.runtime.proactor"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_names(name: str, path: Path) -> Iterator[str]:
    """Every module name an import statement of ``path`` names, TYPE_CHECKING blocks and
    function-level (lazy) imports included: a cycle through either is still a knot."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {
        name: {n for n in imported_names(name, path) if n in mods and n != name}
        for name, path in mods.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root, targets in graph.items():
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(targets)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_sees_real_imports() -> None:
    graph = import_graph()
    assert PROACTOR_MODULE in graph["gwproactor"]
    assert "gwproactor.routing._dispatcher" in graph[PROACTOR_MODULE] | graph["gwproactor.routing"]


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_gwproactor() -> None:
    assert cycles(import_graph()) == []


def test_only_the_package_and_the_cli_import_the_proactor() -> None:
    importers = sorted(n for n, deps in import_graph().items() if PROACTOR_MODULE in deps)
    allowed = {"gwproactor"} | {n for n in importers if n.startswith("gwproactor.cli")}
    assert set(importers) <= allowed, importers


def test_folders_follow_the_spine() -> None:
    # link -> decode -> queue -> dispatch -> actor / store -> uploader, plus the runtime
    # that owns them and the observation around them.
    stages = ["mqtt", "links", "wire", "routing", "actor", "events", "store", "runtime", "observe"]
    for stage in stages:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "_version.py", "errors.py"], flat
