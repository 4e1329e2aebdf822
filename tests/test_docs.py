"""The docs site's API reference lists every public name of every public module.

The site is built once (Sphinx, a builder that writes nothing) from ``docs/``, and its
Python domain, which holds what the pages actually document, is checked against the
public surface: every module whose dotted path has no part starting with ``_``, and each
name in its ``__all__`` (or, without one, each name it binds that does not start with
``_``). A name passes when the module documents it, or when another public module
documents the same object under a public name (a re-export links there). The pages are
generated from ``__all__`` at build time, but autodoc silently leaves out what it cannot
import or see (a constant a package imports, a module missing its page), so only the
built reference can say what is missing.
"""

from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
import warnings
from pathlib import Path
from typing import Any

import pytest

import crucible_actors

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _public_modules() -> list[str]:
    names = [crucible_actors.__name__]
    for info in pkgutil.walk_packages(crucible_actors.__path__, "crucible_actors."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _public_names(module: Any) -> list[str]:
    exported = getattr(module, "__all__", None)
    if exported is not None:
        return list(exported)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    ]


def _is_data(value: object) -> bool:
    return not (inspect.isclass(value) or inspect.isroutine(value) or inspect.ismodule(value))


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    for module in ("sphinx", "myst_parser"):
        pytest.importorskip(module, reason=f"{module} missing: install the docs extra, '.[docs]'")
    from sphinx import deprecation
    from sphinx.application import Sphinx

    out = tmp_path_factory.mktemp("docs")
    messages = io.StringIO()
    app = Sphinx(
        srcdir=str(DOCS),
        confdir=str(DOCS),
        outdir=str(out / "out"),
        doctreedir=str(out / "doctrees"),
        buildername="dummy",
        status=None,
        warning=messages,
        freshenv=True,
    )
    with warnings.catch_warnings():
        # Sphinx deprecates APIs that myst-parser (``env.app``) and Sphinx's own napoleon
        # (autodoc options as a mapping) still use: not ours, and not about the docs.
        for name in dir(deprecation):
            if name.startswith("RemovedInSphinx"):
                warnings.simplefilter("ignore", getattr(deprecation, name))
        app.build()
    domain: Any = app.env.get_domain("py")
    objects = {name for name, entry in domain.objects.items() if not entry.aliased}
    return objects, set(domain.modules)


@pytest.mark.slow
def test_every_public_module_has_a_reference_page(documented: tuple[set[str], set[str]]) -> None:
    _, modules = documented
    missing = [name for name in _public_modules() if name not in modules]
    assert not missing, (
        f"public modules without an API page: {missing}; add docs/reference/api/<module>.rst "
        "holding '.. public-module:: <module>' under a title, and list it in "
        "docs/reference/api/index.md"
    )


@pytest.mark.slow
def test_every_public_name_is_in_the_api_reference(documented: tuple[set[str], set[str]]) -> None:
    objects, _ = documented
    modules = {name: importlib.import_module(name) for name in _public_modules()}
    missing = []
    for module_name, module in modules.items():
        for name in _public_names(module):
            if f"{module_name}.{name}" in objects:
                continue
            value = getattr(module, name)
            elsewhere = [
                f"{other_name}.{other}"
                for other_name, other_module in modules.items()
                for other in _public_names(other_module)
                if getattr(other_module, other, None) is value
                and (other == name or not _is_data(value))
                and f"{other_name}.{other}" in objects
            ]
            if not elsewhere:
                missing.append(f"{module_name}.{name}")
    assert not missing, (
        f"public names the API reference does not document: {missing}; each module page's "
        "'.. public-module::' documents its names (docs/_ext/public_api.py): is the page "
        "there, and can autodoc import the module and see the name?"
    )
