"""The import graph of core has no circles (import-linter's contracts check the layers)."""

from __future__ import annotations

import grimp


def circles(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Every direct import a → b for which b also reaches a: each lies on a circle."""
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported in graph.modules and graph.chain_exists(imported, importer):
                found.append((importer, imported))
    return found


def test_core_has_no_import_circles() -> None:
    assert circles(grimp.build_graph("core")) == []


def test_the_check_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert circles(graph) == [("a.x", "a.y"), ("a.y", "a.x")]
