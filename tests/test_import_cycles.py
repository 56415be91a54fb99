"""No import cycle between the project's modules, counting the imports hidden inside functions.

A function-level import only postpones a cycle: the two modules still need each other, so neither can be read,
tested or moved alone. The graph is built from the source with ``ast`` (nothing is imported): an edge for every
``import``/``from ... import`` of a project module, at any depth. ``from package import name`` counts as an edge
to ``package.name`` when that is a module, else to the package; the implicit import of a parent package's
``__init__`` is not an edge (every submodule would otherwise "import" its package). Imports done with
``importlib`` by name (the packages' lazy ``__getattr__``) are not seen, as intended: they are how a package
re-exports without a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("generators", "evaluation", "dashboard", "genlab")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported(node: ast.AST, here: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """The project modules one import statement names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = here.split(".") if is_package else here.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    named = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in modules]
    if len(named) < len(node.names) and source in modules:
        named.append(source)
    return named


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = (imported(n, name, path.name == "__init__.py", modules) for n in ast.walk(tree))
        graph[name] = {t for ts in targets for t in ts if t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_graph_sees_imports_at_every_depth():
    """Known edges of each kind: top level (``from .errors import``), inside a function (the sweep imports the
    training entry point only when it trains), ``from . import module``, and an absolute import across packages."""
    graph = import_graph()
    assert len(graph) >= 60
    assert "generators.errors" in graph["generators.checkpoints"]
    assert "generators.training" in graph["generators.sweep"]
    assert "generators.distributed" in graph["generators.trainer"]
    assert "generators.checkpoints" in graph["evaluation.runner"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_project_modules():
    found = cycles(import_graph())
    assert not found, "import cycles (each a set of modules that import each other): " + "; ".join(
        " <-> ".join(c) for c in found
    )
