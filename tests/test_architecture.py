"""The import graph: ``_core`` at the bottom, no arrow up, no circle.

Every module of ``src/crucible_actors`` is parsed (``ast``, nothing imported) and its
imports of ``crucible_actors`` modules collected, those inside functions included.
Imports under ``if TYPE_CHECKING:`` are left out: they never run.

Three rules:

- Outside ``_core``, modules import the core only through its facade
  (``crucible_actors._core``), and name no ``_core`` module, not even in a docstring or
  a string: the facade is the line the adapters stand on, so the core's modules can be
  moved and renamed without touching them.
- ``_core`` imports nothing from the adapters (``store``, ``stages``, ``serve``, ``cli``,
  ``executors``), not even lazily inside a function: the core gets what it needs from
  them injected (executors by isolation name, a store opener).
- No import cycle, counting lazy imports inside functions too. A lazy import cannot
  trip over a half-initialised module, but a circle through one still means two
  modules that each need the other, which is what this layout rules out; lazy imports
  stay for what they are for (an optional extra, or ``import crucible_actors`` staying
  light), always pointing the same way as the module-level ones.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import crucible_actors

PACKAGE = Path(crucible_actors.__file__).parent
ADAPTERS = ("store", "stages", "serve", "cli", "executors")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str]) -> list[tuple[str, bool]]:
    """Return (imported module, at module level?) for each crucible_actors import."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, top)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from pkg import x`` imports the module pkg.x when there is one, else a
            # name defined by pkg itself.
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in modules else target, top))
        inner = top and not isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
        )
        if isinstance(node, ast.ClassDef):
            inner = top  # a class body runs at import time
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), True)
    return found


def _graph() -> dict[str, list[tuple[str, bool]]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, list[tuple[str, bool]]] = {}
    for name, path in modules.items():
        edges = []
        for target, top in _imports(path, set(modules)):
            if target in modules and target != name:
                edges.append((target, top))
        graph[name] = edges
    return graph


def test_the_core_imports_no_adapter_not_even_lazily() -> None:
    graph = _graph()
    core = "crucible_actors._core"
    bad = [
        f"{module} imports {target}" + ("" if top else " (inside a function)")
        for module, edges in sorted(graph.items())
        if module == core or module.startswith(core + ".")
        for target, top in edges
        if any(
            target == f"crucible_actors.{a}" or target.startswith(f"crucible_actors.{a}.")
            for a in ADAPTERS
        )
    ]
    assert bad == [], "_core must not import adapters; inject them instead:\n" + "\n".join(bad)


def test_no_import_cycle_lazy_imports_included() -> None:
    graph = {m: sorted({t for t, _ in edges}) for m, edges in _graph().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_walk_sees_lazy_and_module_level_imports() -> None:
    # The rules above are only as good as the walk: it must find both kinds.
    edges = dict(_graph())["crucible_actors._adapters"]
    assert ("crucible_actors.store", False) in edges
    assert ("crucible_actors._core", True) in edges
    assert ("crucible_actors.store", False) in edges


def test_outside_the_core_only_the_facade_is_imported_or_named() -> None:
    core = PACKAGE / "_core"
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(core):
            continue
        rel = path.relative_to(PACKAGE.parent)
        for target, _top in _imports(path, set()):
            if target.startswith("crucible_actors._core."):
                bad.append(f"{rel} imports {target}")
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"_core\.\w", line):
                bad.append(f"{rel}:{lineno} names a core module: {line.strip()}")
    assert bad == [], "import from crucible_actors._core (the facade) instead:\n" + "\n".join(bad)


def test_the_facade_rule_sees_a_private_import() -> None:
    # The rule above is only as good as its check: a private import must be caught.
    found = _imports(PACKAGE / "_core" / "persistence" / "_observer.py", set())
    assert any(t.startswith("crucible_actors._core.") for t, _ in found)


def test_only_the_clock_helper_in_the_core_names_a_backend() -> None:
    # The core is backend-neutral (anyio); the one helper that caches the running
    # backend's clock function is the only place allowed to import asyncio or trio.
    core = PACKAGE / "_core"
    allowed = {"_clock.py"}
    bad = []
    for path in sorted(core.rglob("*.py")):
        if path.name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            bad += [
                f"{path.name}:{node.lineno} imports {n}"
                for n in names
                if n.split(".")[0] in ("asyncio", "trio", "sniffio")
            ]
    assert bad == [], "backend imports in _core outside _clock.py:\n" + "\n".join(bad)
