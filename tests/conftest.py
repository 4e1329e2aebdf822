"""Shared test set-up: every ``async def`` test runs on asyncio and on trio.

Modules (or classes) that need virtual time override ``anyio_backend`` with
``("trio", {"clock": MockClock(autojump_threshold=0)})``. Tests marked ``pytest.mark.trio``
are left to pytest-trio.

With ``CI`` set, a skip fails the run (``tests/ci_skips.py``): CI installs every extra.
"""

from __future__ import annotations

import inspect

import pytest
from tests.delivery import MODES, state

pytest_plugins = ["tests.ci_skips"]


def _wants_anyio(collector: pytest.Module | pytest.Class, obj: object) -> bool:
    inner = getattr(getattr(obj, "hypothesis", None), "inner_test", obj)
    if not inspect.iscoroutinefunction(inner):
        return False
    own_marks = getattr(obj, "pytestmark", ())
    return collector.get_closest_marker("trio") is None and not any(
        mark.name == "trio" for mark in own_marks
    )


# Marking at item creation, not in pytest_collection_modifyitems: by then the fixture
# closure is fixed, and anyio's late fallback re-creates the items, dropping any other
# parametrization and running tests that override anyio_backend once per default backend.
@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> None:
    if collector.istestfunction(obj, name) and _wants_anyio(collector, obj):
        pytest.mark.anyio(obj)
        pytest.mark.usefixtures("anyio_backend")(obj)


@pytest.fixture(params=[pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture(params=MODES)
def delivery(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with its stages untimed and timed (see tests/delivery.py)."""
    monkeypatch.setitem(state, "mode", request.param)
    return str(request.param)
