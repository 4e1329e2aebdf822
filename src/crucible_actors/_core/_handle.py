"""RunHandle and RunEvent: how callers follow, await and cancel one run.

A handle is created by :meth:`Runtime.submit`; the run supervisor fills it in. Events
are kept on the handle in order (``seq`` from 1) so :meth:`RunHandle.events` can replay
them to late subscribers.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from ._errors import RunCancelled, RuntimeShutdown, StageFailed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._context import Context
    from ._ir import Experiment

__all__ = ["AttemptRecord", "RunEvent", "RunHandle", "RunStatus"]


class RunStatus(enum.StrEnum):
    """Lifecycle of a run; the last four are terminal."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        """Whether the run has ended."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED}
)


class RunEvent(msgspec.Struct, frozen=True, gc=False):
    """One thing that happened in a run.

    ``type`` is one of ``run_started``, ``stage_started``, ``stage_completed``,
    ``stage_failed``, ``stage_restarted``, ``stage_timeout``, ``stage_skipped``,
    ``stage_cached`` (the stage's result came from the result cache, instead of
    ``stage_started``/``stage_completed``; ``data`` holds ``key``, ``source_run`` and
    ``duration``), ``run_completed``, ``run_failed``, ``run_cancelled``,
    ``run_interrupted`` (the runtime shut down with ``on_shutdown="interrupt"``).
    ``time`` is seconds on the runtime's clock (``anyio.current_time()``); ``wall`` is Unix time.
    """

    seq: int
    type: str
    run_id: str
    time: float
    wall: float
    stage: str | None = None
    index: int | None = None
    attempt: int | None = None
    data: dict[str, Any] = {}


class AttemptRecord(msgspec.Struct, gc=False):
    """One attempt at one stage (mutable while the attempt runs).

    ``cache_hit``: the attempt completed with the stage's cached result, without running.
    """

    index: int
    stage: str
    attempt: int
    status: str
    started: float
    finished: float | None = None
    error: str | None = None
    cache_hit: bool = False


class RunHandle:
    """Follow, await or cancel one submitted run.

    ``status`` is a :class:`RunStatus`; ``await result()`` returns the final Context or
    raises :class:`StageFailed` / :class:`RunCancelled` / :class:`RuntimeShutdown`;
    ``await cancel()`` ends the run as
    cancelled; ``events()`` iterates the run's :class:`RunEvent` from the first one.
    """

    __slots__ = (
        "__weakref__",
        "_cancel_requested",
        "_codec",
        "_context",
        "_done",
        "_error",
        "_events",
        "_final",
        "_finished",
        "_interrupt",
        "_new_event",
        "_scope",
        "attempts",
        "experiment",
        "finished_at",
        "grace_deadline",
        "resumed_from",
        "run_id",
        "started_at",
        "status",
    )

    def __init__(self, run_id: str, experiment: Experiment, *, resumed_from: int = 0) -> None:
        self.run_id = run_id
        # The blob codec the run encodes with: decoding the final Context later, from
        # the caller's task, reads its large values from the same blob store.
        self._codec: Any = None
        self.experiment = experiment
        self.status = RunStatus.PENDING
        self.attempts: list[AttemptRecord] = []
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.resumed_from = resumed_from
        self._events: list[RunEvent] = []
        self._new_event: anyio.Event | None = None
        # Created only when somebody waits: most handles are never awaited before the
        # run ends, and an event per run is memory and GC work at 10k concurrent runs.
        self._done: anyio.Event | None = None
        self._finished = False
        self._context: Context | None = None
        # A completed run keeps its final Context as the encoded snapshot until somebody
        # asks for it (``context``/``result()``), then the decoded one.
        self._final: bytes | None = None
        self._error: BaseException | None = None
        # The run's task (``cancel()``); None before it is spawned and once it ended.
        self._scope: anyio.TaskHandle[None] | None = None
        self._cancel_requested = False
        # Set by the runtime's shutdown with on_shutdown="interrupt": the cancellation
        # that follows ends the run interrupted (resumable), not cancelled.
        self._interrupt = False
        self.grace_deadline: float = float("inf")

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id} {self.experiment.id!r} {self.status.value}>"

    @property
    def experiment_id(self) -> str:
        """The id of the experiment this run executes."""
        return self.experiment.id

    @property
    def done(self) -> bool:
        """Whether the run has reached a terminal status."""
        return self._finished

    @property
    def context(self) -> Context | None:
        """The final Context of a completed run (else the pre-stage Context of a failure)."""
        if self._context is None and self._final is not None:
            from ._data import reset_codec, set_codec
            from ._encoding import decode_context_with

            # The snapshot carries the submitted Experiment unless a stage replaced it.
            token = set_codec(self._codec)
            try:
                self._context = decode_context_with(self._final, self.experiment)
            finally:
                reset_codec(token)
            self._final = None
        return self._context

    async def _wait_done(self) -> None:
        if self._finished:
            return
        if self._done is None:
            self._done = anyio.Event()
        await self._done.wait()

    @property
    def error(self) -> BaseException | None:
        """The error a failed or cancelled run ended with."""
        return self._error

    async def result(self) -> Context:
        """Wait for the run to end and return its final Context.

        Raises:
            StageFailed: the run failed.
            RunCancelled: the run was cancelled.
            RuntimeShutdown: the runtime shut down with ``on_shutdown="interrupt"``
                while the run was going (it is ``interrupted`` and can be resumed).
        """
        await self._wait_done()
        if self._error is not None:
            raise self._error
        ctx = self.context
        assert ctx is not None
        return ctx

    async def wait(self) -> RunStatus:
        """Wait for the run to end and return its terminal status (never raises)."""
        await self._wait_done()
        return self.status

    async def cancel(self, *, grace: float = 5.0) -> None:
        """Cancel the run and wait until it has ended.

        Stage cleanup that uses :func:`cleanup_scope` gets ``grace`` seconds. Cancelling a
        run that already ended does nothing. Other runs are never affected.
        """
        if self._finished:
            return
        self._cancel_requested = True
        self._interrupt = False  # asked for: cancelled, even while the runtime shuts down
        self.grace_deadline = anyio.current_time() + grace
        if self._scope is not None:
            self._scope.cancel()
        await self._wait_done()

    async def events(self) -> AsyncIterator[RunEvent]:
        """Yield every event of the run, from the first, until the run has ended."""
        i = 0
        while True:
            while i < len(self._events):
                yield self._events[i]
                i += 1
            if self._finished:
                return
            if self._new_event is None:
                self._new_event = anyio.Event()
            await self._new_event.wait()

    # -- used by the run supervisor --------------------------------------------

    def _wake_subscribers(self) -> None:
        waiter = self._new_event
        if waiter is not None:
            self._new_event = None
            waiter.set()

    def _set_outcome(
        self,
        status: RunStatus,
        context: Context | None,
        error: BaseException | None,
        final: bytes | None = None,
    ) -> None:
        self.status = status
        self._context = context
        self._final = final if context is None else None
        self._error = error

    def _mark_done(self) -> None:
        self._finished = True
        if self._done is not None:
            self._done.set()
        self._wake_subscribers()

    def _failure_summary(self) -> dict[str, Any] | None:
        err = self._error
        if isinstance(err, StageFailed):
            return {
                "stage": err.stage,
                "reason_type": type(err.reason).__name__,
                "message": str(err.reason),
                "attempts": err.attempts,
            }
        if isinstance(err, RunCancelled):
            return {"stage": err.stage, "reason_type": "RunCancelled", "message": str(err)}
        if isinstance(err, RuntimeShutdown):
            return {"stage": err.stage, "reason_type": "RuntimeShutdown", "message": str(err)}
        return None
