"""Stateful stages: ``setup()`` once per worker before the first attempt, ``teardown()`` last.

A stage class may define ``setup(self)`` and ``teardown(self)``, each sync or async. Every
executor honours the same contract for the worker it runs attempts on: the runtime's own
process (inline and thread: once per runtime), a warm pool worker (once per worker
process), a Ray actor (once per actor). A setup that raises fails the attempt; the next
attempt gets a fresh worker, which sets up again.
"""

from __future__ import annotations

import abc
import inspect
import logging
from typing import TYPE_CHECKING, Any

import anyio

from .._core import invoke_stage

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from .._core import AttemptIO, Context, ExecutorSettings, PreparedStage, Stage
    from .._core import messages as msg

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


class LocalExecutor(abc.ABC):
    """What the in-process executors (inline, thread) share: the attempt and set-up stages.

    A subclass says where an async stage's ``run`` goes (:meth:`_run_async`); a plain
    ``def run`` always goes to a worker thread. Each runtime gets its own instance
    (:meth:`for_runtime`), so set-up stages are torn down when that runtime closes.
    """

    __slots__ = ("_setups",)

    def __init__(self) -> None:
        self._setups = LocalSetups()

    async def run(
        self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
    ) -> msg.AttemptDone | msg.AttemptFailed:
        """Run the attempt in this process (see the subclass); return its reply."""
        try:
            ctx = io.begin(stage, command)
            info = stage.info
            if info.has_setup:  # set up in the runtime's process, once per runtime
                await self._setups.ensure(info.stage)
            if info.is_async:
                result = await self._run_async(stage, ctx)
            else:
                result = await invoke_stage(info, stage.label, ctx, stage.options)
            return await io.finish(stage, command, result)
        except Exception as exc:
            return io.failed(command, exc)

    @abc.abstractmethod
    async def _run_async(self, stage: PreparedStage, ctx: Context) -> Context:
        """Run an async stage's ``run`` on ``ctx``; return its checked result."""

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
