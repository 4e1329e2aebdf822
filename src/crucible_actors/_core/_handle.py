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

from ._data import reset_codec, set_codec
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

    Everything a handle shows is read-only: the runtime that executes the run is the
    only writer, through the handle's own transitions (``_mark_running``,
    ``_record_event``, ``_finish``, ...), so what a reader sees is always a state the
    run went through.
    """

    __slots__ = (
        "__weakref__",
        "_attempts",
        "_cancel_requested",
        "_codec",
        "_context",
        "_done",
        "_error",
        "_events",
        "_experiment",
        "_final",
        "_finished",
        "_finished_at",
        "_grace_deadline",
        "_interrupt",
        "_new_event",
        "_resumed_from",
        "_run_id",
        "_scope",
        "_started_at",
        "_status",
    )

    def __init__(self, run_id: str, experiment: Experiment, *, resumed_from: int = 0) -> None:
        self._run_id = run_id
        self._experiment = experiment
        self._resumed_from = resumed_from
        # The blob codec the run encodes with: decoding the final Context later, from
        # the caller's task, reads its large values from the same blob store.
        self._codec: Any = None
        self._status = RunStatus.PENDING
        self._attempts: list[AttemptRecord] = []
        self._started_at: float | None = None
        self._finished_at: float | None = None
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
        #: True (or the error saying why) to end ``interrupted`` when cancelled.
        self._interrupt: bool | Exception = False
        self._grace_deadline: float = float("inf")

    def __repr__(self) -> str:
        return f"<RunHandle {self._run_id} {self._experiment.id!r} {self._status.value}>"

    # -- what the run is -------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id (the store's row id when the run persists)."""
        return self._run_id

    @property
    def experiment(self) -> Experiment:
        """The experiment this run executes, as submitted."""
        return self._experiment

    @property
    def experiment_id(self) -> str:
        """The id of the experiment this run executes."""
        return self._experiment.id

    @property
    def resumed_from(self) -> int:
        """The index of the stage the run started at; 0, or where a resume continued it
        (the stages before it completed in an earlier process)."""
        return self._resumed_from

    # -- where it is -----------------------------------------------------------------

    @property
    def status(self) -> RunStatus:
        """The run's status now; terminal once it ended (see :attr:`done`)."""
        return self._status

    @property
    def done(self) -> bool:
        """Whether the run has ended and its outcome has been recorded (with a store, in
        the store); :attr:`status` turns terminal just before."""
        return self._finished

    @property
    def started_at(self) -> float | None:
        """When the run's task started, on the runtime's clock (``anyio.current_time()``);
        None until then."""
        return self._started_at

    @property
    def finished_at(self) -> float | None:
        """When the run ended, on the runtime's clock; None until then."""
        return self._finished_at

    @property
    def attempts(self) -> tuple[AttemptRecord, ...]:
        """The attempts made so far, in order (an attempt still going is ``running``).

        Resumed runs list only the attempts made since the resume.
        """
        return tuple(self._attempts)

    @property
    def cancel_requested(self) -> bool:
        """Whether the run was asked to stop (:meth:`cancel`, the runtime's shutdown, or
        another runtime taking it over); it then ends cancelled or interrupted."""
        return self._cancel_requested

    @property
    def grace_deadline(self) -> float:
        """Until when (runtime clock) a :func:`cleanup_scope` may run once the run is
        stopped; infinite until a stop gives it a grace period."""
        return self._grace_deadline

    def events_nowait(self) -> tuple[RunEvent, ...]:
        """Return the events recorded so far, oldest first (:meth:`events` without
        waiting for the ones to come)."""
        return tuple(self._events)

    # -- how it ended ----------------------------------------------------------------

    @property
    def context(self) -> Context | None:
        """The final Context of a completed run (else the pre-stage Context of a failure)."""
        if self._context is None and self._final is not None:
            from ._encoding import decode_context_with

            # The snapshot carries the submitted Experiment unless a stage replaced it.
            token = set_codec(self._codec)
            try:
                self._context = decode_context_with(self._final, self._experiment)
            finally:
                reset_codec(token)
            self._final = None
        return self._context

    @property
    def error(self) -> BaseException | None:
        """The error a failed or cancelled run ended with."""
        return self._error

    @property
    def failure(self) -> dict[str, Any] | None:
        """Why the run did not complete, as the store records it (``RunRecord.failure``):
        ``stage``, ``reason_type``, ``message`` (and ``attempts`` for a failed stage);
        None for a run that completed or has not ended."""
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

    # -- waiting and cancelling --------------------------------------------------------

    async def _wait_done(self) -> None:
        if self._finished:
            return
        if self._done is None:
            self._done = anyio.Event()
        await self._done.wait()

    async def result(self) -> Context:
        """Wait for the run to end and return its final Context.

        Raises:
            StageFailed: the run failed.
            RunCancelled: the run was cancelled.
            RuntimeShutdown: the runtime shut down with ``on_shutdown="interrupt"``
                while the run was going (it is ``interrupted`` and can be resumed).
            OutcomeNotStored: the run ended but the store never took its outcome (the
                handle is ``interrupted``; the store still says ``running``).
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
        return self._status

    async def cancel(self, *, grace: float = 5.0) -> None:
        """Cancel the run and wait until it has ended.

        Stage cleanup that uses :func:`cleanup_scope` gets ``grace`` seconds. Cancelling a
        run that already ended does nothing. Other runs are never affected.
        """
        if self._finished:
            return
        self._interrupt = False  # asked for: cancelled, even while the runtime shuts down
        self._stop_task(anyio.current_time() + grace)
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

    # -- transitions: called by the runtime and the run supervisor only ----------------

    def _attach_task(self, task: anyio.TaskHandle[None]) -> None:
        """The run's task was spawned: :meth:`cancel` cancels it."""
        self._scope = task

    def _detach_task(self) -> None:
        """The run's task is ending: nothing is left to cancel."""
        self._scope = None

    def _mark_running(self, started_at: float, codec: Any) -> None:
        """The run's task started at ``started_at``, encoding with ``codec``."""
        self._codec = codec
        self._started_at = started_at
        self._status = RunStatus.RUNNING

    def _record_event(
        self,
        type_: str,
        time: float,
        wall: float,
        stage: str | None = None,
        index: int | None = None,
        attempt: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Append the next :class:`RunEvent` (``data``: a fresh dict the event takes
        over) and wake whoever follows :meth:`events`."""
        events = self._events
        events.append(
            RunEvent(
                len(events) + 1,
                type_,
                self._run_id,
                time,
                wall,
                stage,
                index,
                attempt,
                {} if data is None else data,
            )
        )
        waiter = self._new_event
        if waiter is not None:
            self._new_event = None
            waiter.set()

    def _record_attempt(self, record: AttemptRecord) -> None:
        """Attempt ``record`` began (or was served from the cache): list it.

        The record stays the run supervisor's to update until the attempt ends.
        """
        self._attempts.append(record)

    def _finish(
        self,
        status: RunStatus,
        finished_at: float,
        context: Context | None,
        error: BaseException | None,
        final: bytes | None = None,
    ) -> None:
        """The run ended at ``finished_at`` with ``status``, and ``context`` (or the
        encoded ``final`` Context, decoded when asked for) or ``error``.

        :attr:`status` is terminal from here, :attr:`done` only after
        :meth:`_mark_done` (once the outcome is recorded).
        """
        self._finished_at = finished_at
        self._status = status
        self._context = context
        self._final = final if context is None else None
        self._error = error

    def _replace_outcome(self, status: RunStatus, error: BaseException) -> None:
        """The store recorded another outcome than the run's (``status``, ``error``):
        the handle agrees with the store."""
        self._status = status
        self._context = None
        self._final = None
        self._error = error

    def _mark_done(self) -> None:
        """The outcome is recorded: wake :meth:`wait`, :meth:`result` and :meth:`events`."""
        self._finished = True
        if self._done is not None:
            self._done.set()
        waiter = self._new_event
        if waiter is not None:
            self._new_event = None
            waiter.set()

    def _shut_down(self, deadline: float, *, interrupt: bool) -> None:
        """Stop the run for the runtime's shutdown, its cleanup until ``deadline``.

        With ``interrupt`` it ends ``interrupted`` (resumable), unless it was already
        asked to stop: a run cancelled on request stays cancelled.
        """
        if self._finished:
            return
        if interrupt and not self._cancel_requested:
            self._interrupt = True
        self._stop_task(deadline)

    def _taken_over(self, reason: Exception, deadline: float) -> None:
        """Stop the run, which another runtime took over: it ends ``interrupted`` with
        ``reason``, its cleanup until ``deadline``."""
        if self._finished:
            return
        self._interrupt = reason
        self._stop_task(deadline)

    def _stop_reason(self) -> bool | Exception:
        """Why a cancelled run stops: False (cancelled), True (the runtime's shutdown
        interrupts it) or the error that interrupts it (another runtime took it over)."""
        return self._interrupt

    def _stop_task(self, deadline: float) -> None:
        self._cancel_requested = True
        self._grace_deadline = deadline
        if self._scope is not None:
            self._scope.cancel()
