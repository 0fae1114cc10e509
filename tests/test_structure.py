"""The house stays easy to change: no import cycles between our modules, and no imports
hidden inside functions to dodge one (AppConfig.ready, where Django wants them, aside)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "playground"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, ast.Module]:
    return {
        module_name(path): ast.parse(path.read_text(), str(path))
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
    }


def imports_at_top(tree: ast.Module, modules: set[str]) -> set[str]:
    """Our modules this one imports when it is loaded (TYPE_CHECKING blocks excluded)."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node) if not isinstance(node, ast.FunctionDef) else []:
            if isinstance(child, ast.ImportFrom) and child.module:
                names = [f"{child.module}.{alias.name}" for alias in child.names]
                found.update(n for n in [child.module, *names] if n in modules)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names if alias.name in modules)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_it_has_no_import_cycles() -> None:
    modules = our_modules()
    graph = {name: imports_at_top(tree, set(modules)) - {name} for name, tree in modules.items()}
    # A package's __init__ importing its own submodules is how packages work, not a cycle.
    for name in graph:
        graph[name] = {dep for dep in graph[name] if not name.startswith(dep + ".")}
    assert find_cycle(graph) == []


def function_local_imports(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name != "ready":
            for child in ast.walk(node):
                if isinstance(child, ast.Import | ast.ImportFrom):
                    found.append(f"{node.name}:{child.lineno}")
    return found


@pytest.mark.parametrize("name", sorted(our_modules()))
def test_it_imports_at_module_level_only(name: str) -> None:
    assert function_local_imports(our_modules()[name]) == []
