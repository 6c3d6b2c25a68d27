"""The import structure of `src/courier`: the kit never imports the business code, no module
imports itself back through others, and no library module builds anything when imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

SOURCE = ROOT / "src"
BUSINESS = "courier.demo"
# The modules that gunicorn, Celery's command line and `python -m` load: they may build things.
ENTRY_MODULES = {"courier.__main__", "courier.api.wsgi", "courier.queue.main"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def imported(name: str, path: Path) -> Iterator[str]:
    """Every courier module that `name` imports anywhere in its file (inside functions and
    `if TYPE_CHECKING:` blocks too), resolved to the module that holds the imported name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from courier.queue import roles` imports the module courier.queue.roles.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith("courier") and target != name:
                yield target


GRAPH = {name: set(imported(name, path)) for name, path in MODULES.items()}


def is_business(name: str) -> bool:
    return name == BUSINESS or name.startswith(BUSINESS + ".")


def test_the_graph_sees_the_imports_it_must() -> None:
    assert len(MODULES) > 25
    assert "courier.settings" in GRAPH["courier.plugin"]
    assert "courier.queue.roles" in GRAPH["courier.process.roles"]  # inside a function
    assert "courier.plugin" in GRAPH["courier.demo.plugin"]


def test_the_kit_never_imports_business_code() -> None:
    offending = {
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if not is_business(name)
        for target in targets
        if is_business(target)
    }
    assert not offending, sorted(offending)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
    return found


def test_no_import_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles(GRAPH) == []


def test_importing_a_library_module_builds_nothing(tmp_path: Path) -> None:
    """Every module but the entry modules imports with no app built and no `.env` read (an
    unreadable `.env` in the working directory would stop any reader of it)."""
    (tmp_path / ".env").write_bytes(b"PORT=\xff\n")
    library = sorted(set(MODULES) - ENTRY_MODULES)
    script = (
        "import importlib, sys, celery._state as state\n"
        f"for name in {library!r}:\n"
        "    importlib.import_module(name)\n"
        "assert not list(state._apps), list(state._apps)\n"
        "print(len(sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
