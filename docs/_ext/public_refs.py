"""Point the references autodoc generates at public names, and check external ones.

autodoc writes a signature's annotations and a class's bases with the object's real
module (``crucible_actors._core._context.Context``), which is private: the page documents
the object under its public name (``crucible_actors.Context``). Two fixes, both limited
to what autodoc generates, so a docstring that links to a private name still fails the
nitpicky build:

- a base class defined in a private module is written as the public name that documents
  it (``autodoc-process-bases``);
- a reference inside a signature to a private path resolves to the public name of the
  same object when the reference documents that name.

A reference to a name outside this package (``int``, ``anyio.abc.TaskGroup``,
``msgspec.Struct``) cannot link anywhere offline; it is rendered as text once the name
is checked to exist (imported and looked up). A name that does not exist still warns.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import sys
import typing
from functools import cache
from typing import Any

from public_api import public_modules
from sphinx import addnodes
from sphinx.util import logging

if typing.TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

logger = logging.getLogger(__name__)

PACKAGE = "crucible_actors"


def _is_private(path: str) -> bool:
    return any(part.startswith("_") for part in path.split("."))


def _public_names(obj: object) -> list[str]:
    """Every ``module.name`` of a public module whose ``__all__`` holds ``obj``."""
    found = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            if getattr(module, name, None) is obj:
                found.append(f"{module_name}.{name}")
    return found


def _lookup(path: str) -> tuple[bool, Any]:
    """Import the longest module prefix of ``path`` and walk the rest as attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False, None
        return True, obj
    if len(parts) == 1:
        for namespace in (builtins, typing):
            if hasattr(namespace, path):
                return True, getattr(namespace, path)
    return False, None


def _documented(env: BuildEnvironment, name: str) -> bool:
    return name in env.get_domain("py").objects  # type: ignore[attr-defined]


def process_bases(app: Sphinx, name: str, obj: object, options: object, bases: list[Any]) -> None:
    for index, base in enumerate(bases):
        module = getattr(base, "__module__", "") or ""
        if not module.startswith(PACKAGE) or not _is_private(module):
            continue
        public = _public_names(base)
        if public:
            bases[index] = f":py:class:`~{public[0]}`"
        else:  # a private base class: nothing documents it, so it stays text
            UNDOCUMENTED.add(f"{module}.{base.__qualname__}")
            bases[index] = f"``{base.__qualname__}``"


def _signature(node: nodes.Node) -> addnodes.desc_signature | None:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, addnodes.desc_signature):
            return parent
        parent = parent.parent
    return None


@cache
def _imports(module_name: str) -> dict[str, str]:
    """Names bound at the top of a module's source, ``TYPE_CHECKING`` imports included."""
    try:
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        tree = ast.parse(inspect.getsource(module))
    except (ImportError, OSError, TypeError):
        return {}
    package = module.__name__ if hasattr(module, "__path__") else module.__name__.rpartition(".")[0]
    bound: dict[str, str] = {}
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                bound.setdefault(
                    alias.asname or alias.name.partition(".")[0],
                    alias.name if alias.asname else alias.name.partition(".")[0],
                )
        elif isinstance(stmt, ast.ImportFrom):
            base = stmt.module or ""
            if stmt.level:
                parent = package.rsplit(".", stmt.level - 1)[0] if stmt.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for alias in stmt.names:
                bound.setdefault(alias.asname or alias.name, f"{base}.{alias.name}")
    top = list(tree.body)
    for stmt in tree.body:  # and what an ``if TYPE_CHECKING:`` block at the top defines
        if isinstance(stmt, ast.If):
            top.extend(stmt.body)
    for stmt in top:  # module-level definitions (a local name never qualifies)
        names: list[str] = []
        if isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names = [stmt.name]
        elif isinstance(stmt, ast.Assign):
            names = [target.id for target in stmt.targets if isinstance(target, ast.Name)]
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names = [stmt.target.id]
        for name in names:
            bound.setdefault(name, f"{module_name}.{name}")
    return bound


def _defining_module(signature: addnodes.desc_signature) -> str | None:
    """The real module of the object a signature documents (its class's, for a member)."""
    ok, obj = _lookup(signature.get("module", ""))
    if not ok:
        return None
    found = getattr(obj, "__name__", None)
    for part in signature.get("fullname", "").split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            break
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and (inspect.isclass(obj) or inspect.isroutine(obj)):
            found = module
    return found


def _qualify(target: str, signature: addnodes.desc_signature) -> str:
    """``target`` as written in the defining module's source, made a full dotted path."""
    if target.startswith(PACKAGE + ".") or ("." in target and target.split(".")[0] in sys.modules):
        return target
    module = _defining_module(signature)
    if module is None:
        return target
    head, _, rest = target.partition(".")
    full = _imports(module).get(head)
    if full is None:
        return target
    return f"{full}.{rest}" if rest else full


def _documented_name(env: BuildEnvironment, path: str) -> str | None:
    """The documented public name of the object at ``path``, or None.

    The longest prefix of ``path`` that names an object exported by a public module is
    replaced by the name that documents it, so ``crucible_actors.errors.StageFailed``,
    ``crucible_actors.store.Store.gc`` and (in a signature) a private path all land on
    the one page that documents the object.
    """
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        ok, obj = _lookup(".".join(parts[:cut]))
        if not ok or inspect.ismodule(obj):
            continue
        for public in _public_names(obj):
            full = ".".join([public, *parts[cut:]])
            if _documented(env, full):
                return full
    return None


def missing_reference(
    app: Sphinx, env: BuildEnvironment, node: addnodes.pending_xref, contnode: nodes.Element
) -> nodes.Node | None:
    if node.get("refdomain") != "py" or node.get("reftype") == "mod":
        return None
    target = node.get("reftarget", "").lstrip("~.")
    signature = _signature(node)
    if signature is not None and not all(part.isidentifier() for part in target.split(".")):
        # Not a name but an annotation autodoc could not split (``Annotated[str, Meta(...)]``
        # behind an alias): it reads as written and has nothing to link to.
        return contnode
    if signature is not None:
        target = _qualify(target, signature)
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module and not target.startswith(PACKAGE + "."):
        candidates = [f"{module}.{cls}.{target}"] if cls else []
        candidates += [f"{module}.{target}", target]
    for candidate in candidates:
        if not candidate.startswith(PACKAGE + "."):
            continue
        if _is_private(candidate) and signature is None:
            continue  # a docstring that links to a private name must say the public one
        public = _documented_name(env, candidate)
        if public is not None:
            return env.get_domain("py").resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], public, node, contnode
            )
    if target.startswith(PACKAGE + ".") or target == PACKAGE:
        if signature is None or not _is_private(target):
            return None
        ok, _ = _lookup(target)
        owner, _, name = target.rpartition(".")
        if ok or _imports(owner).get(name) == target:
            # A private type in a public signature (or a type alias for type checkers
            # only): nothing documents it, so it stays text, and the build lists it.
            UNDOCUMENTED.add(target)
            return contnode
        return None
    ok, _ = _lookup(target)
    return contnode if ok else None


UNDOCUMENTED: set[str] = set()


def builtins_as_text(app: Sphinx, doctree: nodes.document) -> None:
    """Write builtins in signatures (``type[Struct]``, ``int``) as text, before resolution.

    Python's own names have no page here (no inventory offline), and the domain's lookup
    would otherwise match ``type`` to whichever documented attribute is called ``type``.
    """
    for xref in list(doctree.findall(addnodes.pending_xref)):
        if (
            xref.get("refdomain") == "py"
            and xref.get("reftarget") in vars(builtins)
            and _signature(xref) is not None
        ):
            xref.replace_self(xref.children)


def report(app: Sphinx, exception: Exception | None) -> None:
    if UNDOCUMENTED and exception is None:
        logger.info(
            "public_refs: private types named in public signatures (shown as text): %s",
            ", ".join(sorted(UNDOCUMENTED)),
        )


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-bases", process_bases)
    app.connect("missing-reference", missing_reference)
    app.connect("build-finished", report)
    app.connect("doctree-read", builtins_as_text)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
