"""Executor test set-up: stage modules importable by worker processes, one Ray per module.

Worker processes (the warm pool's, Ray's) import stages by their module: the repository
root goes on ``sys.path`` (the pool hands its ``sys.path`` to the workers it starts) and on
the ``PYTHONPATH`` of the tests' local Ray, so ``tests.executors.*`` modules import there.
The Ray tests of a module share one local Ray (2 CPUs), started on first use and stopped
after the module; a test that needs Ray stopped (the on-demand start) or a cluster of its
own (node loss) shuts it down, and the next test that asks for ``ray_local`` starts it
again.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let worker processes import ``tests.executors.*``."""
    monkeypatch.syspath_prepend(str(ROOT))


def start_local_ray(ray: Any) -> None:
    """Start the tests' local Ray (2 CPUs, no dashboard), workers seeing the repository."""
    path = os.pathsep.join([str(ROOT), *(p for p in sys.path if p)])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )


@pytest.fixture(scope="module")
def _ray_session() -> Iterator[Any]:
    # Module-scoped: an idle Ray still costs CPU, which the rest of the suite (real-time
    # tests among them) should not share on a small machine.
    import ray

    yield ray
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def ray_local(_ray_session: Any) -> Any:
    """Return the ``ray`` module connected to the session's local Ray (started if needed)."""
    ray = _ray_session
    if not ray.is_initialized():
        start_local_ray(ray)
    return ray


def pid_gone(pid: int) -> bool:
    """Return whether process ``pid`` has ended (gone, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


async def wait_until(condition: Callable[[], bool], *, within: float = 20.0) -> None:
    """Poll ``condition`` until it holds: for outside events (a worker process started or
    ended, a file another process wrote) that offer nothing to wait on.

    Raises:
        TimeoutError: it did not hold within ``within`` seconds.
    """
    with anyio.fail_after(within):
        for _ in itertools.count():
            if condition():
                return
            await anyio.sleep(0.02)
