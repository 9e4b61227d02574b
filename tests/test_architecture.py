"""The layout holds: no module over 400 lines, no import cycle, the manifest package stands alone, and the
dependency rule of docs/ARCHITECTURE.md (import-linter's contracts) is kept.

Imports are read from the source (``ast``), every one of them: at the top, inside functions and under
``TYPE_CHECKING``, because each is a dependency a reader has to follow, whenever it runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[1] / "runner"
MAX_LINES = 400
#: What ``runner.manifest`` may import from the rest of ``runner``.
MANIFEST_MAY_USE = {"runner.models", "runner.errors", "runner.accounts"}  # accounts: plan --accounts (issue 18)


def module_name(path: Path) -> str:
    parts = path.relative_to(RUNNER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(RUNNER.rglob("*.py"))}


def imported(name: str) -> Iterator[str]:
    """The ``runner`` modules module ``name`` imports, anywhere in its source: ``from a import b`` counts as
    importing ``a.b`` when that is a module, else ``a``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # ``import runner.x.y`` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph(prefix: str = "runner") -> dict[str, set[str]]:
    return {
        name: {t for t in imported(name) if t == prefix or t.startswith(prefix + ".")}
        for name in MODULES
        if name == prefix or name.startswith(prefix + ".")
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


@pytest.mark.parametrize("path", list(MODULES.values()), ids=lambda p: str(p.relative_to(RUNNER)))
def test_no_module_over_400_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(RUNNER.parent)} has {lines} lines; at most {MAX_LINES}"


def test_no_import_cycle_in_the_manifest_package() -> None:
    assert cycles(graph("runner.manifest")) == []


def test_no_import_cycle_in_runner() -> None:
    assert cycles(graph("runner")) == []


def test_the_manifest_package_imports_nothing_from_the_engine() -> None:
    outside = {
        (name, target)
        for name, targets in graph("runner").items()
        if name.startswith("runner.manifest")
        for target in targets
        if not target.startswith("runner.manifest") and target not in MANIFEST_MAY_USE
    }
    assert outside == set()


def test_the_import_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: function-level, TYPE_CHECKING, relative and package imports all count."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from runner.manifest.schema import Parts\n"
        "def f():\n    from . import issues\n    import runner.manifest.read\n"
        "from runner.manifest import load\n"
    )
    name = "runner.manifest.expand"
    original = MODULES[name]
    probe = tmp_path / "expand.py"
    probe.write_text(source, encoding="utf-8")
    MODULES[name] = probe
    try:
        found = set(imported(name))
    finally:
        MODULES[name] = original
    assert found == {"runner.manifest.schema", "runner.manifest.issues", "runner.manifest.read", "runner.manifest.load"}


def test_the_dependency_rule_holds() -> None:
    """import-linter's contracts (pyproject.toml): entry points -> features -> store -> base, features independent,
    the emulator importing only the model table. Also run by ``make lint``; here so that CI checks them too."""
    import subprocess
    import sys

    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint)], cwd=RUNNER.parent, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout
