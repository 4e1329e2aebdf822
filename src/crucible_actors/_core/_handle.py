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

from ._errors import RunCancelled, StageFailed

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
    ``run_completed``, ``run_failed``, ``run_cancelled``. ``time`` is seconds on the
    runtime's clock (``anyio.current_time()``); ``wall`` is Unix time.
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
    """One attempt at one stage (mutable while the attempt runs)."""

    index: int
    stage: str
    attempt: int
    status: str
    started: float
    finished: float | None = None
    error: str | None = None


class RunHandle:
    """Follow, await or cancel one submitted run.

    ``status`` is a :class:`RunStatus`; ``await result()`` returns the final Context or
    raises :class:`StageFailed` / :class:`RunCancelled`; ``await cancel()`` ends the run as
    cancelled; ``events()`` iterates the run's :class:`RunEvent` from the first one.
    """

    def __init__(self, run_id: str, experiment: Experiment, *, resumed_from: int = 0) -> None:
        self.run_id = run_id
        self.experiment = experiment
        self.status = RunStatus.PENDING
        self.attempts: list[AttemptRecord] = []
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.resumed_from = resumed_from
        self._events: list[RunEvent] = []
        self._new_event: anyio.Event | None = None
        self._done = anyio.Event()
        self._context: Context | None = None
        self._error: BaseException | None = None
        self._scope: anyio.CancelScope | None = None
        self._cancel_requested = False
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
        return self._done.is_set()

    @property
    def context(self) -> Context | None:
        """The final Context of a completed run (else the pre-stage Context of a failure)."""
        return self._context

    @property
    def error(self) -> BaseException | None:
        """The error a failed or cancelled run ended with."""
        return self._error

    async def result(self) -> Context:
        """Wait for the run to end and return its final Context.

        Raises:
            StageFailed: the run failed.
            RunCancelled: the run was cancelled.
        """
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._context is not None
        return self._context

    async def wait(self) -> RunStatus:
        """Wait for the run to end and return its terminal status (never raises)."""
        await self._done.wait()
        return self.status

    async def cancel(self, *, grace: float = 5.0) -> None:
        """Cancel the run and wait until it has ended.

        Stage cleanup that uses :func:`cleanup_scope` gets ``grace`` seconds. Cancelling a
        run that already ended does nothing. Other runs are never affected.
        """
        if self._done.is_set():
            return
        self._cancel_requested = True
        self.grace_deadline = anyio.current_time() + grace
        if self._scope is not None:
            self._scope.cancel()
        await self._done.wait()

    async def events(self) -> AsyncIterator[RunEvent]:
        """Yield every event of the run, from the first, until the run has ended."""
        i = 0
        while True:
            while i < len(self._events):
                yield self._events[i]
                i += 1
            if self._done.is_set():
                return
            if self._new_event is None:
                self._new_event = anyio.Event()
            await self._new_event.wait()

    # -- used by the run supervisor --------------------------------------------

    def _emit(self, event: RunEvent) -> None:
        self._events.append(event)
        waiter = self._new_event
        if waiter is not None:
            self._new_event = None
            waiter.set()

    def _set_outcome(
        self, status: RunStatus, context: Context | None, error: BaseException | None
    ) -> None:
        self.status = status
        self._context = context
        self._error = error

    def _mark_done(self) -> None:
        self._done.set()
        waiter = self._new_event
        if waiter is not None:
            self._new_event = None
            waiter.set()

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
        return None
