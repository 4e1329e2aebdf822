"""Packaging metadata: one source for the version, and the index metadata users search by."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import crucible_actors

if TYPE_CHECKING:
    import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_version_is_written_only_in_the_package() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    source = PYPROJECT["tool"]["hatch"]["version"]["path"]
    text = (ROOT / source).read_text(encoding="utf-8")
    assert re.findall(r'^__version__ = "([^"]+)"$', text, re.M) == [crucible_actors.__version__]


def test_the_installed_distribution_reports_the_package_version() -> None:
    # The metadata hatchling wrote at install time; a mismatch means a stale install
    # (reinstall with `pip install -e .`).
    assert importlib.metadata.version("crucible-actors") == crucible_actors.__version__


def test_the_cli_prints_the_same_version(capsys: pytest.CaptureFixture[str]) -> None:
    from crucible_actors import cli

    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"crucible-actors {crucible_actors.__version__}"


def test_classifiers_match_the_supported_pythons_and_the_package_is_typed() -> None:
    meta = importlib.metadata.metadata("crucible-actors")
    classifiers = meta.get_all("Classifier") or []
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    versions = sorted(c.rsplit(" ", 1)[1] for c in classifiers if re.search(r":: 3\.\d+$", c))
    assert versions == ["3.11", "3.12", "3.13"]
    assert "Typing :: Typed" in classifiers
    assert (ROOT / "src" / "crucible_actors" / "py.typed").is_file()
    # A license expression (PEP 639) and a license classifier must not both be given.
    assert meta["License-Expression"] == "MIT"
    assert not [c for c in classifiers if c.startswith("License ::")]


def test_keywords_are_published() -> None:
    keywords = (importlib.metadata.metadata("crucible-actors")["Keywords"] or "").split(",")
    assert {"machine-learning", "experiments", "pipelines", "trio", "asyncio"} <= set(keywords)
