"""The registry's modules import without a cycle, each on its own, and never import a face."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import portscope

PACKAGE = Path(portscope.__file__).resolve().parent
REGISTRY = sorted(p.stem for p in (PACKAGE / "registry").glob("*.py"))
MINE = [
    *(f"portscope.registry.{m}" if m != "__init__" else "portscope.registry" for m in REGISTRY),
    "portscope.render._lookup",
    "portscope.render.registry",
    "portscope.cli.lookup",
    "portscope.cli.registry",
]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, *, with_type_checking: bool) -> set[str]:
    """Every module an import statement names, at any depth (function-level imports too);
    ``from pkg import sub`` names ``pkg.sub`` when ``sub`` is a module of portscope."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not with_type_checking:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            base = PACKAGE.parent.joinpath(*node.module.split("."))
            for alias in node.names:
                if (base / f"{alias.name}.py").exists() or (base / alias.name).is_dir():
                    found.add(f"{node.module}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _file(module: str) -> Path:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _registry_graph() -> dict[str, set[str]]:
    nodes = {f"portscope.registry.{m}" for m in REGISTRY if m != "__init__"}
    return {
        node: _imports(ast.parse(_file(node).read_text()), with_type_checking=False) & nodes
        for node in nodes
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)) is not None:
            return found
    return None


def test_no_import_cycle_in_the_registry() -> None:
    graph = _registry_graph()
    assert _cycle(graph) is None, _cycle(graph)
    # the circle that was: _store built the cache through _build, which imported _store
    assert "portscope.registry._store" not in graph["portscope.registry._build"]
    assert "portscope.registry._layout" in graph["portscope.registry._build"]
    assert graph["portscope.registry._layout"] == set()


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize("module", MINE)
def test_each_module_imports_alone(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("module", MINE[:-2])
def test_no_face_imported_below_the_cli(module: str) -> None:
    # type-only imports count too: a renderer takes data, not the CLI's environment
    names = _imports(ast.parse(_file(module).read_text()), with_type_checking=True)
    assert not {n for n in names if n == "portscope.cli" or n.startswith("portscope.cli.")}


def test_the_entry_fields_key_the_cache() -> None:
    from portscope.registry._layout import Entry, source_files, source_key

    assert Entry._fields in source_key(source_files())
    assert Entry._fields == (
        "port", "port_end", "proto", "name", "aliases", "description", "source", "notes",
        "frequency",
    )  # fmt: skip
    e = Entry(443, None, "tcp", "https", ("h",), None, "curated", None, 0.5)
    assert (e.port, e.name, e._replace(port=8443).port) == (443, "https", 8443)
    assert repr(e).startswith("Entry(port=443, port_end=None, proto='tcp'")
    with pytest.raises(TypeError):
        Entry._make((1, 2, 3))
    with pytest.raises(TypeError):
        Entry(443, None, "tcp")  # type: ignore[call-arg]
    assert Entry.__doc__ and "one field list" in Entry.__doc__


def test_the_public_service_has_the_entry_fields() -> None:
    import dataclasses

    from portscope.models import Service
    from portscope.registry._layout import Entry

    assert {f.name for f in dataclasses.fields(Service)} == set(Entry._fields)
