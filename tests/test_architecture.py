"""The package's shape: data flows one way, so no module imports one that imports it back.

Every import of an `archiver` module counts, at module level or inside a function (a lazy
import still ties the two modules together), and so does `from package import name` on the
package's `__init__`. A cycle of any length fails the test with the modules that form it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import archiver

PACKAGE = Path(archiver.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The archiver modules `name` imports, resolved as Python would find them."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")  # a submodule
                elif target in known:
                    found.add(target)  # a name defined by that module (or package __init__)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, set(known)) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_resolver_sees_relative_lazy_and_package_imports(tmp_path: Path) -> None:
    edges = graph()
    assert "archiver.fs" in edges["archiver.archive"]  # relative, module level
    assert "archiver.archive" in edges["archiver.sync"]  # inside a function
    assert "archiver.providers" in edges["archiver.sync"]  # a name from a package's __init__


def test_no_module_imports_one_that_imports_it_back() -> None:
    found = cycles(graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_file_layer_imports_nothing_above_it() -> None:
    """fs, errors and paths sit at the bottom: everything may use them, they use no pipeline stage."""
    edges = graph()
    stages = {"archiver.sync", "archiver.archive", "archiver.download", "archiver.store", "archiver.retag",
              "archiver.providers", "archiver.tagging", "archiver.transport"}
    for low in ("archiver.fs", "archiver.errors", "archiver.paths", "archiver.lock"):
        assert not (edges[low] & stages), (low, edges[low] & stages)


def test_verify_rebuild_and_retag_need_no_http_code() -> None:
    edges = graph()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    http = {"archiver.download", "archiver.transport", "archiver.providers.http", "archiver.sync"}
    for name in ("archiver.verify", "archiver.rebuild", "archiver.retag"):
        assert not (reach(name) & http), (name, reach(name) & http)


def test_the_web_app_stays_on_the_read_side() -> None:
    """archiver serve reads through readdb/library/query: no ORM, sync pipeline or HTTP client code."""
    edges = graph()
    web = {name for name in edges if name.startswith("archiver.web")}
    assert "archiver.web.app" in web and "archiver.library" in edges["archiver.web.pages"]
    seen, todo = set(), list(web)
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    writers = {"archiver.sync", "archiver.archive", "archiver.download", "archiver.transport",
               "archiver.providers.http", "archiver.retag", "archiver.tagging"}
    assert not (seen & writers), seen & writers
    importers = {name for name in edges if name not in web and edges[name] & web}
    assert importers == {"archiver.cli.serve_cmds"}, importers
