"""The import graph: ``_core`` at the bottom, no arrow up, no circle; and who may
change a run's state.

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

And one rule about state: a ``RunHandle`` is written only by ``_core/_handle.py``
(others call its transitions, ``handle._finish(...)`` and the like), and ``serve`` and
``cli`` read only its public properties. Which names hold a handle is a heuristic
(annotations, the usual names, calls that return one); its own test keeps it honest.
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


# -- RunHandle: one owner of its state --------------------------------------------------

HANDLE_MODULE = PACKAGE / "_core" / "_handle.py"
#: Names that hold a RunHandle by convention, unless annotated as something else.
HANDLE_NAMES = frozenset({"handle", "run_handle", "h"})
#: Calls that return a RunHandle (a name assigned from one holds it) or, for ``runs``,
#: handles (a loop over one binds them).
HANDLE_CALLS = frozenset({"submit", "resume", "resume_run", "run_handle", "RunHandle"})
HANDLE_LISTS = frozenset({"runs"})
#: Methods that change the list, dict or set they are called on.
MUTATORS = frozenset(
    {"append", "extend", "insert", "pop", "remove", "clear", "add", "discard", "update"}
)


def _handle_methods() -> frozenset[str]:
    """The methods of RunHandle: the only ``_`` attributes others may touch (by calling)."""
    tree = ast.parse(HANDLE_MODULE.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RunHandle")
    return frozenset(
        n.name
        for n in cls.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        and not any(ast.unparse(d) == "property" for d in n.decorator_list)
    )


def _called_name(node: ast.expr) -> str | None:
    """The name of the function ``node`` calls (``await`` stripped), if it is a call."""
    if isinstance(node, ast.Await):
        node = node.value
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _handle_names(scope: ast.AST, inherited: dict[str, bool]) -> dict[str, bool]:
    """Which names of ``scope`` hold a RunHandle (True) or explicitly do not (False)."""
    known = dict(inherited)

    def annotate(name: str, annotation: ast.expr | None) -> None:
        if annotation is not None:
            known[name] = "RunHandle" in ast.unparse(annotation)

    if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
        args = scope.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            annotate(arg.arg, arg.annotation)
    for node in _own_nodes(scope):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotate(node.target.id, node.annotation)
        elif isinstance(node, ast.Assign) and _called_name(node.value) in HANDLE_CALLS:
            known.update({t.id: True for t in node.targets if isinstance(t, ast.Name)})
        elif (
            isinstance(node, ast.For | ast.AsyncFor | ast.comprehension)
            and isinstance(node.target, ast.Name)
            and _called_name(node.iter) in HANDLE_LISTS
        ):
            known[node.target.id] = True
    return known


def _own_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of ``scope``, not those of the functions and classes defined in it."""
    found: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        found.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            todo.extend(ast.iter_child_nodes(node))
    return found


def _is_handle(node: ast.expr, known: dict[str, bool]) -> bool:
    if isinstance(node, ast.Name):
        return known.get(node.id, node.id in HANDLE_NAMES)
    # ``self.handle``: the run supervisor's, its actor's and its instruments' handle.
    return (
        isinstance(node, ast.Attribute)
        and node.attr in HANDLE_NAMES
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _handle_touches(path: Path) -> list[tuple[int, str, str]]:
    """Every ``x.attr`` on a RunHandle ``x`` in ``path``: (line, attr, how: read, call or
    write)."""
    found: list[tuple[int, str, str]] = []

    def walk(scope: ast.AST, inherited: dict[str, bool]) -> None:
        known = _handle_names(scope, inherited)
        nodes = _own_nodes(scope)
        called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
        for node in nodes:
            if isinstance(node, ast.Attribute) and _is_handle(node.value, known):
                if isinstance(node.ctx, ast.Store | ast.Del):
                    how = "write"
                elif id(node) in called:
                    how = "call"
                else:
                    how = "read"
                found.append((node.lineno, node.attr, how))
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                # ``handle._scope.cancel()``, ``handle.attempts.append(...)``: a write
                # through a private attribute, or through a public one's mutator.
                inner = node.value
                if (
                    isinstance(inner, ast.Attribute)
                    and (inner.attr.startswith("_") or node.attr in MUTATORS)
                    and _is_handle(inner.value, known)
                    and id(node) in called
                ):
                    found.append((node.lineno, inner.attr, "write"))
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
                inner = node.value
                if isinstance(inner, ast.Attribute) and _is_handle(inner.value, known):
                    found.append((node.lineno, inner.attr, "write"))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                walk(node, known)

    walk(ast.parse(path.read_text(), str(path)), {})
    return found


def _handle_violations(package: Path, methods: frozenset[str]) -> list[str]:
    handle_module = package / "_core" / "_handle.py"
    adapters = [package / "serve", package / "cli"]
    bad = []
    for path in sorted(package.rglob("*.py")):
        if path == handle_module:
            continue
        rel = path.relative_to(package.parent)
        adapter = any(path.is_relative_to(a) for a in adapters)
        touches = _handle_touches(path)
        writes = {(lineno, attr) for lineno, attr, how in touches if how == "write"}
        for lineno, attr, how in sorted(set(touches)):
            private = attr.startswith("_") and not attr.startswith("__")
            if how == "write":
                bad.append(f"{rel}:{lineno} writes handle.{attr}")
            elif (lineno, attr) in writes or not private:
                continue
            elif adapter:
                bad.append(f"{rel}:{lineno} reads handle.{attr} (use a public property)")
            elif not (how == "call" and attr in methods):
                bad.append(f"{rel}:{lineno} touches handle.{attr} (call a RunHandle method)")
    return bad


def test_only_the_handle_module_writes_a_run_handle() -> None:
    # RunHandle owns its state: the runtime changes it only through the handle's own
    # transitions (``handle._finish(...)``, ...), and serve/ and cli/ read only its
    # public, read-only properties.
    bad = _handle_violations(PACKAGE, _handle_methods())
    assert bad == [], "RunHandle state touched outside _core/_handle.py:\n" + "\n".join(bad)


def test_the_handle_rule_sees_writes_and_private_reads(tmp_path: Path) -> None:
    # The rule above is only as good as its walk: the ways code used to reach into a
    # handle must all be caught.
    (tmp_path / "_core").mkdir()
    (tmp_path / "serve").mkdir()
    (tmp_path / "_core" / "_runtime.py").write_text(
        "def stop(handle, deadline):\n"
        "    handle._scope = None\n"
        "    handle.grace_deadline = deadline\n"
        "    handle._events.append(1)\n"
        "    handle._shut_down(deadline, interrupt=True)\n"
        "class Sup:\n"
        "    def end(self):\n"
        "        self.handle._mark_done()\n"
        "        if self.handle._interrupt:\n"
        "            self.handle.status = 1\n"
        "        self.handle.attempts.append(1)\n"
        "        self.handle.experiment.pipeline.index(1)\n"
    )
    (tmp_path / "serve" / "_views.py").write_text(
        "async def view(rt, sweep: 'SweepHandle'):\n"
        "    h = rt.get('r')\n"
        "    h._failure_summary()\n"
        "    run = sweep.run_handle(0)\n"
        "    x = run._events\n"
        "    sweep._handles = []\n"
        "    for r in rt.runs():\n"
        "        r._error\n"
    )
    found = _handle_violations(tmp_path, frozenset({"_shut_down", "_mark_done"}))
    assert [Path(line.split(" ", 1)[0]).name for line in found] == [
        "_runtime.py:2",
        "_runtime.py:3",
        "_runtime.py:4",
        "_runtime.py:9",
        "_runtime.py:10",
        "_runtime.py:11",
        "_views.py:3",
        "_views.py:5",
        "_views.py:8",
    ]
