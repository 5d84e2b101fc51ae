"""The layers hold: no import cycle in publisher/, a pure core, and no layer
importing one above it (docs/architecture.md draws them)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "publisher"
IO_MODULES = {
    "httpx",
    "sqlite3",
    "socket",
    "threading",
    "subprocess",
    "cheroot",
    "werkzeug",
    "click",
    "rich",
    "asyncio",
    "urllib.request",
    "http.client",
}
#: A layer may import the layers listed after it, never those before it.
ORDER = ["cli", "service", "compose", "pipeline", "adapters", "ports", "core"]


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports (at any level, TYPE_CHECKING included)."""
    path = _modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    known = _modules()
    resolved = set()
    for name in found:
        while name not in known and "." in name and name.startswith("publisher."):
            name = name.rpartition(".")[0]
        resolved.add(name)
    resolved.discard(module)
    return resolved


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


def test_no_import_cycles() -> None:
    graph = {
        m: {i for i in _imports(m) if i in _modules() and not i.startswith(m + ".")}
        for m in _modules()
    }
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _layer(m) == "core"))
def test_the_core_is_pure(module: str) -> None:
    for imported in _imports(module):
        top = imported.split(".")[0]
        assert imported not in IO_MODULES and top not in IO_MODULES, f"{module} imports {imported}"
        if imported.startswith("publisher."):
            assert imported.startswith("publisher.core"), f"{module} imports {imported}"


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _layer(m) is not None))
def test_no_layer_imports_one_above_it(module: str) -> None:
    mine = ORDER.index(_layer(module) or "")
    for imported in _imports(module):
        layer = _layer(imported)
        if layer is not None and imported.startswith("publisher."):
            assert ORDER.index(layer) >= mine, f"{module} ({ORDER[mine]}) imports {imported}"
