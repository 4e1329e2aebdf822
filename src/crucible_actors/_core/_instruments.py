"""The instruments of one run: every transition fanned out to events, telemetry, spans
and the observer in one call.

The run supervisor (``_run_supervisor.py``) reports what happens to a run, and only that: the run
started or finished, a stage was entered, left, skipped, checkpointed or served from the
result cache, an attempt
started, completed, failed, timed out or was cancelled, a stage restarted or gave up.
:class:`RunInstruments` turns each report into what the outside sees:

- a :class:`~crucible_actors.RunEvent` on the handle (what ``RunHandle.events()`` and
  ``serve`` stream);
- a ``crucible_actors.telemetry`` event, only when a handler is attached (the
  ``if _tel_handlers`` short-circuits keep a run without handlers free of it);
- OpenTelemetry spans (run, stage, attempt) through the runtime's
  :class:`~crucible_actors._core._spans.SpanRecorder`, when spans are on;
- the run's :class:`RunObserver` (the store), when the run persists.

A transition the store must record before the run goes on returns that write for the
supervisor to await (None when the run does not persist, so the hot path awaits
nothing). Observer errors propagate (the supervisor fails the run), except at
:meth:`RunInstruments.run_finished`, where the outcome is decided and a store that
cannot record it must not take the runtime down.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import anyio

from . import _telemetry as tel
from ._attempt_policy import describe_error
from ._handle import RunStatus
from ._telemetry import _by_event as _tel_handlers

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._handle import AttemptRecord, RunHandle
    from ._spans import SpanRecorder

__all__ = ["RunInstruments", "RunObserver"]

log = logging.getLogger("crucible_actors")

#: The terminal event of each status a run can end with.
_END_EVENTS = {
    RunStatus.COMPLETED: "run_completed",
    RunStatus.FAILED: "run_failed",
    RunStatus.CANCELLED: "run_cancelled",
    RunStatus.INTERRUPTED: "run_interrupted",
}


class RunObserver:
    """Hooks the store adapter implements to persist a run (all no-ops here)."""

    async def run_started(self, handle: RunHandle, snapshot: bytes) -> None:
        """The run was admitted; ``snapshot`` is the initial Context."""

    async def pending_started(self, handle: RunHandle, snapshot: bytes) -> None:
        """The run was admitted from a ``pending`` row its sweep recorded (the store has
        its row and ``snapshot`` already); by default, as :meth:`run_started`."""
        await self.run_started(handle, snapshot)

    async def checkpoint(self, handle: RunHandle, index: int, snapshot: bytes) -> None:
        """``snapshot`` is the Context before stage ``index`` (or after the last one)."""

    async def attempt_finished(self, handle: RunHandle, record: AttemptRecord) -> None:
        """One attempt ended (``record.status``: completed, failed, timeout, cancelled)."""

    async def run_finished(self, handle: RunHandle, final: bytes | None) -> None:
        """The run reached a terminal status (``final``: the last Context, if any)."""


class RunInstruments:
    """Fans one run's transitions out to events, telemetry, spans and the observer."""

    __slots__ = (
        "_attempt_span",
        "_stage_span",
        "handle",
        "now",
        "observer",
        "otel_parent",
        "recorder",
        "run_span",
        "wall",
    )

    def __init__(
        self,
        handle: RunHandle,
        observer: RunObserver | None,
        recorder: SpanRecorder | None,
        otel_parent: Any,
        wall: Callable[[], float],
    ) -> None:
        self.handle = handle
        self.observer = observer
        self.recorder = recorder
        self.otel_parent = otel_parent
        self.wall = wall
        #: The loop's clock (set by the supervisor once the run's loop is known).
        self.now: Callable[[], float] = anyio.current_time
        self.run_span: Any = None
        self._stage_span: Any = None
        self._attempt_span: Any = None

    # -- the fan-out -----------------------------------------------------------------

    def event(
        self,
        type_: str,
        stage: str | None = None,
        index: int | None = None,
        attempt: int | None = None,
        data: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> None:
        """Record a RunEvent on the handle; ``data`` is a fresh dict the event takes over."""
        self.handle._record_event(
            type_, self.now() if now is None else now, self.wall(), stage, index, attempt, data
        )

    def telemetry(
        self,
        name: str,
        stage: str | None,
        attempt: int | None,
        duration: float | None = None,
        **extra: Any,
    ) -> None:
        """Emit telemetry event ``name`` if any handler listens to it."""
        if not tel.handlers_for(name):
            return
        measurements: dict[str, Any] = {"system_time": time.time_ns()}
        if duration is not None:
            measurements["duration"] = duration
        metadata: dict[str, Any] = {
            "experiment_id": self.handle.experiment.id,
            "run_id": self.handle.run_id,
        }
        if stage is not None:
            metadata["stage"] = stage
            metadata["attempt"] = attempt
        metadata.update(extra)
        tel.emit(name, measurements, metadata)

    # -- the run -------------------------------------------------------------------

    async def run_started(self, t0: float, snapshot: bytes) -> None:
        """The run began at ``t0`` from ``snapshot``: span, event, telemetry, observer."""
        handle = self.handle
        exp = handle.experiment
        rec = self.recorder
        if rec is not None:
            self.run_span = rec.start_run(self.otel_parent, handle.run_id, exp.id)
        self.event("run_started", data={"experiment_id": exp.id}, now=t0)
        if _tel_handlers:  # any telemetry handler attached
            self.telemetry(tel.RUN_START, None, None)
        if self.observer is not None:
            # Shielded: a cancel arriving while the start is being written would leave
            # the row ``running`` with no outcome ever recorded (the observer only
            # finishes runs it started), and one requested before it would leave an
            # admitted run missing from the store.
            with anyio.CancelScope(shield=True):
                await self.observer.run_started(handle, snapshot)

    async def run_finished(
        self,
        status: RunStatus,
        error: BaseException | None,
        duration: float,
        event: str,
        final: bytes | None,
    ) -> None:
        """The run ended with ``status``: store first, then the terminal event.

        The store is written before the terminal event, so whoever reacts to it finds
        the run's final state in the store. Store errors are logged, not raised.
        """
        handle = self.handle
        try:
            if self.observer is not None:
                await self.observer.run_finished(handle, final)
                if handle.status is not status:
                    # The store could not take the outcome as it was (it stored the run
                    # failed, or not at all): report what the handle now says.
                    status, error = handle.status, handle.error
                    event = _END_EVENTS[status]
        except Exception:
            # The run's own outcome stands; a store that cannot record it must not
            # take the runtime (and every other run) down with it.
            log.exception("could not record the outcome of run %s", handle.run_id)
        finally:
            data: dict[str, Any] = {"status": status.value, "duration": duration}
            if error is not None:
                data["error"] = describe_error(error)
            self.event(event, data=data)
            if status is RunStatus.COMPLETED:
                if _tel_handlers:  # any telemetry handler attached
                    self.telemetry(tel.RUN_STOP, None, None, duration)
            else:
                self.telemetry(tel.RUN_EXCEPTION, None, None, duration, status=status.value)
            run_span, rec = self.run_span, self.recorder
            if run_span is not None and rec is not None:
                if status is RunStatus.COMPLETED:
                    rec.ok(run_span)
                else:
                    rec.fail(run_span, f"run {status.value}: {error}", None)
                rec.end(run_span)

    # -- stages --------------------------------------------------------------------

    async def checkpoint(self, index: int, snapshot: bytes) -> None:
        """``snapshot`` is the Context before stage ``index`` (or after the last one).

        The supervisor calls this only when the run persists (``observer`` is set).
        """
        if self.observer is not None:
            await self.observer.checkpoint(self.handle, index, snapshot)

    def stage_entered(self, label: str) -> None:
        """The stage ``label`` is about to be prepared and attempted (spans only)."""
        rec = self.recorder
        if rec is not None:
            handle = self.handle
            self._stage_span = rec.start_stage(
                self.run_span, handle.run_id, handle.experiment.id, label
            )

    def stage_left(self) -> None:
        """The stage entered last is done with, succeeded or gave up (spans only)."""
        if self._stage_span is not None and self.recorder is not None:
            self.recorder.end(self._stage_span)
        self._stage_span = None

    def stage_skipped(self, index: int, label: str) -> None:
        """The disabled stage ``label`` was skipped."""
        self.event("stage_skipped", label, index)

    def stage_cache_checked(self, key: str) -> None:
        """The stage entered last is cached under ``key`` and missed (spans only)."""
        if self._stage_span is not None and self.recorder is not None:
            self.recorder.attributes(
                self._stage_span, {"crucible.cache_hit": False, "crucible.cache_key": key}
            )

    def stage_cached(
        self, record: AttemptRecord, key: str, source_run: str
    ) -> Awaitable[None] | None:
        """The stage of ``record`` took its result from the cache (entry ``key``,
        computed by run ``source_run``) instead of running.

        Returns the store write to await, or None when the run does not persist.
        """
        label, index = record.stage, record.index
        self.handle._record_attempt(record)
        duration = (record.finished or record.started) - record.started
        data = {"key": key, "source_run": source_run, "duration": duration}
        self.event("stage_cached", label, index, record.attempt, data, record.finished)
        rec, span = self.recorder, self._stage_span
        if span is not None and rec is not None:
            rec.attributes(
                span,
                {
                    "crucible.cache_hit": True,
                    "crucible.cache_key": key,
                    "crucible.cache_source_run": source_run,
                },
            )
            rec.ok(span)
        if self.observer is not None:
            return self.observer.attempt_finished(self.handle, record)
        return None

    def stage_restarted(
        self, index: int, label: str, attempt: int, after: str, delay: float
    ) -> None:
        """Stage ``label`` runs again as attempt ``attempt`` after ``delay`` seconds."""
        self.event("stage_restarted", label, index, attempt, {"after": after, "delay": delay})
        self.telemetry(tel.STAGE_RESTART, label, attempt)
        if self._stage_span is not None and self.recorder is not None:
            self.recorder.event(
                self._stage_span,
                "stage.restart",
                {"crucible.attempt": attempt, "crucible.delay": delay},
            )

    def stage_gave_up(
        self,
        index: int,
        label: str,
        attempt: int,
        reason: BaseException,
        gave_up: str | None = None,
    ) -> None:
        """Stage ``label`` failed for good after ``attempt`` attempts with ``reason``."""
        data: dict[str, Any] = {"error": describe_error(reason)}
        if gave_up is not None:
            data["gave_up"] = gave_up
        self.event("stage_failed", label, index, attempt, data)
        if self._stage_span is not None and self.recorder is not None:
            self.recorder.event(self._stage_span, "stage.exhausted", {"crucible.attempt": attempt})
            self.recorder.fail(self._stage_span, describe_error(reason), None)

    # -- attempts ------------------------------------------------------------------

    def attempt_started(self, record: AttemptRecord) -> None:
        """The attempt ``record`` started at ``record.started``."""
        label, attempt = record.stage, record.attempt
        handle = self.handle
        handle._record_attempt(record)
        handle._record_event(
            "stage_started", record.started, self.wall(), label, record.index, attempt
        )
        if _tel_handlers:  # any telemetry handler attached
            self.telemetry(tel.STAGE_START, label, attempt)
        rec = self.recorder
        if rec is not None:
            self._attempt_span = rec.start_attempt(
                self._stage_span, handle.run_id, handle.experiment.id, label, attempt
            )

    def attempt_completed(self, record: AttemptRecord, now: float) -> Awaitable[None] | None:
        """The attempt ``record`` succeeded at ``now``.

        Returns the store write to await, or None when the run does not persist (the
        run's hot path then awaits nothing).
        """
        record.status, record.finished = "completed", now
        duration = now - record.started
        label, attempt = record.stage, record.attempt
        self.handle._record_event(
            "stage_completed",
            now,
            self.wall(),
            label,
            record.index,
            attempt,
            {"duration": duration},
        )
        if _tel_handlers:  # any telemetry handler attached
            self.telemetry(tel.STAGE_STOP, label, attempt, duration)
        span = self._attempt_span
        if span is not None and self.recorder is not None:
            self.recorder.ok(span)
            self.recorder.end(span)
        if self.observer is not None:
            return self.observer.attempt_finished(self.handle, record)
        return None

    async def attempt_failed(
        self,
        record: AttemptRecord,
        now: float,
        error: BaseException,
        error_type: str | None = None,
        timed_out_after: float | None = None,
    ) -> None:
        """The attempt ``record`` raised ``error`` (or timed out after ``timed_out_after`` s)."""
        rec, span = self.recorder, self._attempt_span
        label, index, attempt = record.stage, record.index, record.attempt
        record.finished = now
        duration = now - record.started
        if timed_out_after is not None:
            record.status = "timeout"
            self.event("stage_timeout", label, index, attempt, {"timeout": timed_out_after})
            self.telemetry(tel.STAGE_TIMEOUT, label, attempt, duration)
            if span is not None and rec is not None:
                rec.event(span, "stage.timeout", {"crucible.attempt": attempt})
        else:
            record.status = "failed"
            self.telemetry(tel.STAGE_EXCEPTION, label, attempt, duration, error_type=error_type)
        record.error = describe_error(error)
        if span is not None and rec is not None:
            rec.fail(span, record.error, error)
            rec.end(span)
        if self.observer is not None:
            await self.observer.attempt_finished(self.handle, record)

    async def attempt_cancelled(self, record: AttemptRecord) -> None:
        """The attempt ``record`` was cancelled with its run (recorded shielded)."""
        record.status, record.finished = "cancelled", self.now()
        rec, span = self.recorder, self._attempt_span
        if span is not None and rec is not None:
            rec.event(span, "stage.cancelled", {"crucible.attempt": record.attempt})
            rec.fail(span, f"stage {record.stage!r} attempt {record.attempt} cancelled")
            rec.end(span)
        with anyio.CancelScope(shield=True):
            if self.observer is not None:
                await self.observer.attempt_finished(self.handle, record)
