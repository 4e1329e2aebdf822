"""Stateful stages: ``setup()`` once per worker before the first attempt, ``teardown()`` last.

A stage class may define ``setup(self)`` and ``teardown(self)``, each sync or async. Every
executor honours the same contract for the worker it runs attempts on: the runtime's own
process (inline and thread: once per runtime), a warm pool worker (once per worker
process), a Ray actor (once per actor). A setup that raises fails the attempt; the next
attempt gets a fresh worker, which sets up again.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from .._core import ExecutorSettings, Stage

__all__ = ["LocalExecutor", "LocalSetups", "run_setup", "run_teardown"]

log = logging.getLogger("crucible_actors")


async def run_setup(stage_obj: Stage) -> None:
    """Call ``stage_obj.setup()`` (sync or async); its exception propagates."""
    result: Any = stage_obj.setup()  # type: ignore[attr-defined]
    if inspect.isawaitable(result):
        await result


async def run_teardown(stage_obj: Stage) -> None:
    """Call ``stage_obj.teardown()`` if it has one; log (never raise) what it raises."""
    teardown = getattr(stage_obj, "teardown", None)
    if not callable(teardown):
        return
    try:
        result: Any = teardown()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("teardown() of stage %r raised", type(stage_obj).__qualname__)


class LocalSetups:
    """The stages set up in this process for one runtime (the inline and thread executors).

    ``ensure`` sets a stage object up the first time it is seen; a failed setup is not
    remembered, so the next attempt tries again (in-process, the "fresh worker" is a
    fresh call). ``teardown_all`` runs at the runtime's exit, in reverse setup order.
    """

    __slots__ = ("_done", "_lock")

    def __init__(self) -> None:
        self._done: dict[int, Stage] = {}
        self._lock: anyio.Lock | None = None

    async def ensure(self, stage_obj: Stage) -> None:
        """Set ``stage_obj`` up unless this runtime already has (one setup at a time)."""
        key = id(stage_obj)
        if key in self._done:
            return
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if key not in self._done:
                await run_setup(stage_obj)
                self._done[key] = stage_obj

    async def teardown_all(self) -> None:
        """Tear down every stage set up here, most recent first."""
        done, self._done = self._done, {}
        for stage_obj in reversed(done.values()):
            await run_teardown(stage_obj)


class LocalExecutor:
    """What the in-process executors (inline, thread) share: stages set up once per runtime.

    A subclass defines ``run``. Each runtime gets its own instance (:meth:`for_runtime`),
    so set-up stages are torn down when that runtime closes.
    """

    __slots__ = ("_setups",)

    def __init__(self) -> None:
        self._setups = LocalSetups()

    def for_runtime(self, settings: ExecutorSettings) -> Self:
        """Return a new runtime's own executor of this kind (its own set-up stages)."""
        return type(self)()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._setups.teardown_all()
