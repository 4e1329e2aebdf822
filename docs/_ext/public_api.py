"""``.. public-module:: NAME``: a public module's API page, each public name documented once.

A name several public modules export (``crucible_actors.Context`` and
``crucible_actors.abc.Stage``, re-exported elsewhere) is documented on the page of the
first module in :data:`PRIORITY` (then the rest, in alphabetical order) that exports
it; the other pages link there. Classes and functions come through ``automodule``;
constants and type aliases get an ``autodata`` each, since autodoc leaves out data a
module imports. So a name added to a module's ``__all__`` appears without editing any
page, and ``tests/test_docs.py`` checks the built reference against the public surface.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from typing import TYPE_CHECKING, Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

if TYPE_CHECKING:
    from sphinx.application import Sphinx

PACKAGE = "crucible_actors"

#: Where a name exported by several modules is documented, most preferred first.
PRIORITY = (
    "crucible_actors",
    "crucible_actors.errors",
    "crucible_actors.abc",
    "crucible_actors.ir",
    "crucible_actors.schema",
    "crucible_actors.stats",
    "crucible_actors.comparison",
    "crucible_actors.store",
    "crucible_actors.executors",
)


def _rank(name: str) -> tuple[int, str]:
    if name in PRIORITY:
        return (0, f"{PRIORITY.index(name):03d}")
    if name == "crucible_actors.stages":  # after the stage modules it re-exports
        return (2, name)
    if name == "crucible_actors.testing":  # its fakes are documented where they live
        return (3, name)
    if name.startswith("crucible_actors.executors."):
        return (4, name)
    return (1, name)


@cache
def public_modules() -> tuple[str, ...]:
    """Every module of the package with no part of its dotted path starting with ``_``."""
    package = importlib.import_module(PACKAGE)
    names = [PACKAGE]
    for info in pkgutil.walk_packages(package.__path__, PACKAGE + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return tuple(sorted(names, key=_rank))


def exported(module: Any) -> list[str]:
    """A module's public names: its ``__all__``, else what it binds without a ``_``."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [n for n, v in vars(module).items() if not n.startswith("_") and not inspect.ismodule(v)]


def is_data(value: object) -> bool:
    return not (inspect.isclass(value) or inspect.isroutine(value) or inspect.ismodule(value))


def _identity(value: object, name: str) -> object:
    # Constants are compared by value's identity AND name: two modules' ``0`` are not one.
    return (id(value), name) if is_data(value) else id(value)


@cache
def canonical() -> dict[object, str]:
    """Each exported object's documented name (``module.name``)."""
    found: dict[object, str] = {}
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in exported(module):
            found.setdefault(_identity(getattr(module, name), name), f"{module_name}.{name}")
    return found


def _role(value: object) -> str:
    if inspect.isclass(value):
        return "exc" if issubclass(value, BaseException) else "class"
    return "func" if inspect.isroutine(value) else "data"


def page_source(module_name: str) -> list[str]:
    """The reST that documents ``module_name``'s own names and links its re-exports."""
    module = importlib.import_module(module_name)
    excluded, data, links = [], [], []
    for name in exported(module):
        value = getattr(module, name)
        documented = canonical()[_identity(value, name)]
        if documented != f"{module_name}.{name}":
            excluded.append(name)
            links.append(f"- :py:{_role(value)}:`{documented}`")
        elif is_data(value):
            excluded.append(name)
            data.append(name)
    lines = [f".. automodule:: {module_name}"]
    if excluded:
        lines.append("   :exclude-members: " + ", ".join(excluded))
    for name in data:
        lines += ["", f".. autodata:: {module_name}.{name}"]
    if links:
        lines += ["", "Also exported by this module, each documented once, at its link:", ""]
        lines += links
    return lines


class PublicModule(SphinxDirective):
    """Document the public module named by the argument (see the module docstring)."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        if module_name not in public_modules():
            raise self.error(
                f"public-module: {module_name!r} is not a public module of {PACKAGE}; "
                f"expected one of {', '.join(public_modules())}"
            )
        container = nodes.section()
        container.document = self.state.document
        source = StringList(page_source(module_name), source=f"<public-module {module_name}>")
        nested_parse_with_titles(self.state, source, container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("public-module", PublicModule)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
