"""The package-level import graph of `observatory_api` gains no new cycles.

Every import of every module (at module level, inside functions, under TYPE_CHECKING) is read with
`ast`; a node is a top-level package or module of `observatory_api` (`db`, `traces`, `deps`, ...).
A cycle is a strongly connected component of more than one node. The cycles that exist today are
listed in ALLOWED_CYCLES: a new one (or a package joining an allowed one) fails the test, and so
does an allowed one that is gone, so that the list only ever shrinks.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = "observatory_api"
SOURCE = Path(__file__).resolve().parents[2] / "src" / PACKAGE

# Cycles tolerated for now: none left (issue 17 removed them). Keep it empty: make the imports go
# one way instead of adding one here.
ALLOWED_CYCLES: frozenset[frozenset[str]] = frozenset()


def _node_of(module: str) -> str | None:
    """`observatory_api.db.tables` -> `db`; None outside the package."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    return parts[1]


def _module_name(path: Path, root: Path = SOURCE) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path, root: Path = SOURCE) -> set[str]:
    """The absolute names of what `path` imports (`from x import y` counts as x.y and x)."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """Package -> the other packages of `observatory_api` its modules import."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted(SOURCE.rglob("*.py")):
        source = _node_of(_module_name(path))
        if source is None:
            continue  # observatory_api/__init__.py
        graph[source]
        for imported in _imported_modules(path):
            target = _node_of(imported)
            # `from observatory_api import x` names x itself; a name that is no module is no node.
            if target is not None and target != source and _exists(target):
                graph[source].add(target)
    return dict(graph)


def _exists(node: str) -> bool:
    return (SOURCE / node).is_dir() or (SOURCE / f"{node}.py").is_file()


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(cycle: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(cycle)) + "}"


def test_no_new_import_cycles() -> None:
    found = cycles(import_graph())
    new = found - ALLOWED_CYCLES
    assert not new, "new package import cycles (make the imports go one way): " + "; ".join(
        _describe(c) for c in sorted(new, key=sorted)
    )
    gone = ALLOWED_CYCLES - found
    assert not gone, "these allowed cycles no longer exist: remove them from ALLOWED_CYCLES: " + "; ".join(
        _describe(c) for c in sorted(gone, key=sorted)
    )


def test_core_imports_nothing_of_the_app_outside_core() -> None:
    # The bottom layer (docs/architecture.md): everything may import it, it imports no other layer.
    outside = sorted(import_graph().get("core", set()))
    assert not outside, f"core imports {outside}: move what it needs into core, or the caller out of it"


def test_the_graph_sees_relative_and_lazy_imports(tmp_path: Path) -> None:
    # The reader itself: a relative import and an import inside a function are both edges.
    package = tmp_path / PACKAGE / "alpha"
    package.mkdir(parents=True)
    module = package / "thing.py"
    module.write_text("from ..beta import x\n\ndef f():\n    import observatory_api.gamma.y\n")
    imported = _imported_modules(module, root=tmp_path / PACKAGE)
    assert "observatory_api.beta.x" in imported
    assert "observatory_api.gamma.y" in imported


def test_cycles_finds_components_not_edges() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": set()}
    assert cycles(graph) == {frozenset({"a", "b", "c"})}
