"""Helpers shared by the test modules: registries of test stages and the CLI's JSON output.

Hypothesis strategies live in ``tests/strategies.py``; store fault seeding in
``tests/store_faults.py``; the TCP proxy that cuts a server off is the public
:class:`crucible_actors.testing.TcpProxy`.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

from crucible_actors import Registry

__all__ = ["cli_json", "missing_extra", "needs_extra", "registry_with"]


def missing_extra(extra: str) -> str:
    """Return the reason a test skips when ``extra`` is not installed, with the install command.

    For ``pytest.importorskip(module, reason=missing_extra("serve"))``. With ``CI`` set the
    skip fails the run (``tests/ci_skips.py``): CI installs every extra.
    """
    return f"needs the {extra!r} extra: pip install -e '.[{extra}]'"


def needs_extra(extra: str, module: str) -> pytest.MarkDecorator:
    """Return a mark that skips a test when ``module`` of ``extra`` is not installed.

    For the tests of a module that need an extra the others do not; where every test
    of a module needs it, ``pytest.importorskip`` at the top says so once.
    """
    try:
        missing = importlib.util.find_spec(module) is None
    except ImportError:  # a parent package is missing
        missing = True
    return pytest.mark.skipif(missing, reason=missing_extra(extra))


def registry_with(*stages: Any, default: bool = False) -> Registry:
    """Return a fresh registry holding ``stages`` (classes, instances or ``@stage`` functions).

    ``default=True`` starts from :meth:`Registry.default` (the built-ins and the
    entry points) instead of an empty registry.
    """
    reg = Registry.default() if default else Registry()
    for obj in stages:
        reg.register(obj)
    return reg


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """Run ``crucible-actors *argv`` in-process, check it exits 0, and parse what it printed.

    Output captured before the call is dropped first; ``argv`` must ask for JSON itself
    (``--json``, or ``--format json`` for ``compare``).
    """
    from crucible_actors.cli import main  # the CLI's imports only where a test runs it

    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, f"crucible-actors {' '.join(argv)} exited {code}: {captured.err}"
    return json.loads(captured.out)
