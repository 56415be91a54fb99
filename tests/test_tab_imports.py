"""No dashboard tab imports another tab, directly or through a shared module.

A tab that imports another cannot be read, tested or removed alone, and a change in one tab quietly changes the
other. What two tabs share lives in a module that is not a tab (``dashboard/compute.py``, ``jobs.py``,
``state.py``…). The tabs are the modules of the render functions in ``dashboard.tabs.TABS``, the page's own list;
the imports are read from the source at every depth (``tests/test_import_cycles.py``).
"""

from __future__ import annotations

from tests.test_import_cycles import import_graph


def tab_modules() -> set[str]:
    from dashboard.tabs import TABS

    return {render.__module__ for _, render in TABS}


def path_to_another(graph: dict[str, set[str]], start: str, targets: set[str]) -> list[str] | None:
    """The import chain from ``start`` to the first module of ``targets`` (other than ``start``) it reaches, or
    None (breadth first, so the chain is a shortest one)."""
    chains, seen = [[start]], {start}
    while chains:
        chain = chains.pop(0)
        for nxt in sorted(graph.get(chain[-1], ())):
            if nxt in seen:
                continue
            if nxt in targets:
                return [*chain, nxt]
            seen.add(nxt)
            chains.append([*chain, nxt])
    return None


def test_the_chain_finder_sees_direct_and_indirect_imports():
    graph = {"t1": {"shared"}, "shared": {"t2"}, "t2": {"base"}, "t3": {"base"}, "base": set()}
    tabs = {"t1", "t2", "t3"}
    assert path_to_another(graph, "t1", tabs) == ["t1", "shared", "t2"]
    assert path_to_another(graph, "t2", tabs) is None
    assert path_to_another({"t1": {"t2"}, "t2": {"t1"}}, "t1", {"t1", "t2"}) == ["t1", "t2"]


def test_the_tabs_are_the_pages_tabs():
    from dashboard.tabs import TABS

    tabs = tab_modules()
    assert len(tabs) == len(TABS) and {"dashboard.metrics", "dashboard.sweep", "dashboard.training"} <= tabs
    graph = import_graph()
    assert {"dashboard.compute", "dashboard.jobs"} <= graph["dashboard.sweep"]  # what the tabs share is seen


def test_no_tab_imports_another_tab():
    graph, tabs = import_graph(), tab_modules()
    found = [chain for tab in sorted(tabs) if (chain := path_to_another(graph, tab, tabs))]
    assert not found, "tabs that import another tab (move what they share to a module that is not a tab): " + (
        "; ".join(" -> ".join(chain) for chain in found)
    )
