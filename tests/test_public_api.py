"""The curated public surface of ``crucible_actors``: complete, sorted, documented and light."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import pytest

import crucible_actors

HEAVY_MODULES = [
    "opentelemetry.sdk",
    "psycopg",
    "scipy",
    "numpy",
    "pandas",
    "pyarrow",
    "starlette",
    "ray",
    "yaml",
    "rich",
    "mlflow",
    "prometheus_client",
]


def test_all_is_sorted_without_duplicates() -> None:
    assert crucible_actors.__all__ == sorted(set(crucible_actors.__all__))


@pytest.mark.parametrize("name", crucible_actors.__all__)
def test_every_name_in_all_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from crucible_actors import {name}", namespace)
    assert namespace[name] is getattr(crucible_actors, name)


def test_every_public_class_and_function_is_listed_in_all() -> None:
    public = {
        name
        for name, value in vars(crucible_actors).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isroutine(value))
    }
    assert sorted(public - set(crucible_actors.__all__)) == []


@pytest.mark.parametrize("name", crucible_actors.__all__)
def test_every_name_in_all_has_a_docstring(name: str) -> None:
    obj = getattr(crucible_actors, name)
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert isinstance(doc, str)
    assert doc.strip(), f"{name} has no docstring"


def test_every_exported_exception_derives_from_crucible_error() -> None:
    exceptions = [
        getattr(crucible_actors, name)
        for name in crucible_actors.__all__
        if inspect.isclass(getattr(crucible_actors, name))
        and issubclass(getattr(crucible_actors, name), BaseException)
    ]
    assert crucible_actors.CrucibleError in exceptions
    assert [
        e.__name__ for e in exceptions if not issubclass(e, crucible_actors.CrucibleError)
    ] == []


def test_package_declares_its_version() -> None:
    assert isinstance(crucible_actors.__version__, str)
    assert crucible_actors.__version__


@pytest.mark.slow
def test_import_does_not_load_heavy_optional_dependencies() -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import crucible_actors
        heavy = {HEAVY_MODULES!r}
        loaded = sorted(
            m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy)
        )
        print(",".join(loaded))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == ""
