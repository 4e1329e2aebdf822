"""The run supervisor: how one run executes, stage by stage.

The run supervisor walks the pipeline, acting ``rest_for_one`` over the ordered stages:
the Context is threaded, so restarting stage k re-runs k and whatever follows, and never
the stages before it. For each attempt it sends the run's stage actor (``_actor.py``) a
``RunStage`` message holding the encoded snapshot of the Context taken before the stage;
the stage's executor (``_executor.py``, chosen by ``StageDef.isolation`` from the
runtime's registry) runs the attempt, and the answer is ``StageDone`` (the new Context as
bytes) or ``StageFailed``. A failed attempt therefore leaves nothing behind, and the
snapshot is also what the store checkpoints, so restart and crash-resume are one
operation.

How a message reaches the actor depends on the run. When a stage has a timeout, the
actor runs in a task of its own fed over bounded memory streams, each timed attempt in
its own cancel scope: the supervisor records the timeout at the deadline and moves on,
and the abandoned attempt's late answer is dropped by its generation. When no stage has
one, nothing ever abandons an attempt from outside, so the supervisor awaits the
executor directly in the run's task (two task switches fewer per stage, and no task
group per run).

After a failed attempt the retry policy (``_retry.py``) decides between a delay and
giving up; every transition is reported in one call to the run's instruments
(``_instruments.py``: events, telemetry, spans, the store observer).

A cancelled run ends ``cancelled``; one the runtime stopped while closing with
``on_shutdown="interrupt"`` ends ``interrupted`` (:class:`RuntimeShutdown`), with the
snapshot it had reached checkpointed, so a resume continues where it stopped.

Why this is not built on :class:`crucible_actors.supervisor.Supervisor`: a run is not a
set of long-lived children but one threaded sequence of attempts whose restart state is
the Context snapshot; it needs ``rest_for_one`` over stages, per-stage windows and a
run-wide budget, and a run hot path of a few microseconds per stage. The supervision
tree of the runtime is Runtime (``_runtime.py``: a dynamic supervisor of temporary run
children) → RunSupervisor (this module) → stage actor; the generic ``Supervisor`` is a
user-level utility built on the same restart rules (``_restart.py``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import anyio.lowlevel

from . import _messages as msg
from ._actor import Mailbox, StageActor, enter_run, trace_event
from ._clock import loop_clock
from ._encoding import decode_context, encode_context
from ._errors import CrucibleError, RunCancelled, RuntimeShutdown, StageFailed, StageTimeout
from ._execute import ValidateMode, prepare_options, resolve_stage
from ._executor import PreparedStage
from ._handle import AttemptRecord, RunHandle, RunStatus
from ._instruments import RunInstruments, RunObserver
from ._retry import GiveUp, RunRestarts, describe_error
from ._stage import stage_info

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from typing import TypeAlias

    from ._context import Context
    from ._executor import ExecutorRegistry
    from ._ir import StageDef
    from ._registry import Registry
    from ._tracing import SpanRecorder

    #: How the supervisor hands a command to the stage actor and gets its reply
    #: (None: the attempt timed out).
    _Exchange: TypeAlias = Callable[[msg.RunStage, float | None], Awaitable[msg.Message | None]]

__all__ = ["RunObserver", "RunSupervisor", "unwrap_fatal"]

log = logging.getLogger("crucible_actors")


@contextlib.contextmanager
def unwrap_fatal() -> Iterator[None]:
    """Re-raise a KeyboardInterrupt or SystemExit found in an exception group bare.

    Task groups wrap whatever their tasks raise; an interrupt or exit requested by a stage
    must reach the caller as itself (never retried, never swallowed).
    """
    try:
        yield
    except BaseExceptionGroup as group:
        fatal, _ = group.split((KeyboardInterrupt, SystemExit))
        if fatal is None:
            raise
        leaf: BaseException = fatal
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise leaf from None


class RunSupervisor:
    """Executes one run: the ordered stages, their restarts, timeouts and checkpoints."""

    __slots__ = (
        "_at",
        "_current_stage",
        "_generation",
        "executors",
        "handle",
        "instruments",
        "on_exit",
        "registry",
        "restarts",
        "snapshot",
        "start_index",
        "validate_mode",
    )

    def __init__(
        self,
        handle: RunHandle,
        *,
        registry: Registry,
        executors: ExecutorRegistry,
        validate_mode: ValidateMode,
        snapshot: bytes,
        start_index: int = 0,
        observer: RunObserver | None = None,
        recorder: SpanRecorder | None = None,
        otel_parent: Any = None,
        wall: Callable[[], float] = time.time,
        on_exit: Callable[[RunHandle], None] | None = None,
    ) -> None:
        self.handle = handle
        self.registry = registry
        self.executors = executors
        self.validate_mode = validate_mode
        self.snapshot = snapshot
        self.start_index = start_index
        self.on_exit = on_exit
        self.instruments = RunInstruments(handle, observer, recorder, otel_parent, wall)
        self.restarts = RunRestarts(handle.experiment, f"run {handle.run_id}")
        self._generation = 0
        self._current_stage: str | None = None
        #: The index of the stage ``snapshot`` is the Context before (updated with it).
        self._at = start_index

    async def execute(self) -> None:
        """Run the pipeline and record the outcome on the handle; never raises Exception.

        The run's task handle (``handle._scope``) is what cancels it: cancellation
        propagates after the handle is marked cancelled.
        """
        handle = self.handle
        ins = self.instruments
        now = ins.now = loop_clock()
        t0 = now()
        handle.started_at = t0
        handle.status = RunStatus.RUNNING
        actor = StageActor(handle, self.registry)
        try:
            await ins.run_started(t0, self.snapshot)
            pipeline = handle.experiment.pipeline
            if any(pipeline[i].timeout is not None for i in range(self.start_index, len(pipeline))):
                final = await self._drive_actor_task(actor)
            else:
                # No stage can time out, so no attempt ever needs abandoning from outside:
                # the executor is awaited directly in this task, which spares every stage
                # two task switches and the run a task group.
                enter_run(handle, self.registry)
                final = await self._run_stages(actor, None)
        except StageFailed as exc:
            await self._end(RunStatus.FAILED, exc.context, exc, t0, "run_failed")
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                if handle._interrupt:  # the runtime shut down with on_shutdown="interrupt"
                    await self._interrupted(t0)
                else:
                    err = RunCancelled(handle.run_id, stage=self._current_stage)
                    await self._end(RunStatus.CANCELLED, None, err, t0, "run_cancelled")
            raise
        except Exception as exc:  # an internal or store error: the run fails, others go on
            failed = StageFailed(self._current_stage or "<run>", exc, None)
            await self._end(RunStatus.FAILED, None, failed, t0, "run_failed")
        else:
            # The handle decodes the final Context when asked, sharing the submitted
            # Experiment unless a stage replaced it.
            ctx = None if actor.experiment_intact else decode_context(final)
            await self._end(RunStatus.COMPLETED, ctx, None, t0, "run_completed", final)
        finally:
            handle._scope = None
            if self.on_exit is not None:
                self.on_exit(handle)

    async def _interrupted(self, t0: float) -> None:
        """End the run ``interrupted`` by the runtime's shutdown, resumable where it stopped.

        The latest snapshot is checkpointed first (a no-op unless a stage completed since
        the last checkpoint), so a resume runs no stage that completed here again.
        """
        ins = self.instruments
        pipeline = self.handle.experiment.pipeline
        if ins.observer is not None:  # the run persists
            try:
                await ins.checkpoint(self._at, self.snapshot)
            except Exception:  # the previous checkpoint stands: that stage runs again
                log.exception("could not checkpoint interrupted run %s", self.handle.run_id)
        at = pipeline[self._at].label if self._at < len(pipeline) else None
        err = RuntimeShutdown(self.handle.run_id, stage=at)
        await self._end(RunStatus.INTERRUPTED, None, err, t0, "run_interrupted")

    async def _end(
        self,
        status: RunStatus,
        ctx: Context | None,
        error: BaseException | None,
        t0: float,
        event: str,
        final: bytes | None = None,
    ) -> None:
        """Record the outcome on the handle, then report it; wake the waiters last."""
        handle = self.handle
        now = self.instruments.now()
        handle.finished_at = now
        handle._set_outcome(status, ctx, error, final)
        try:
            await self.instruments.run_finished(status, error, now - t0, event, final)
        finally:
            handle._mark_done()

    async def _run_stages(self, actor: StageActor, exchange: _Exchange | None) -> bytes:
        """Run the stages from ``start_index`` on; return the final snapshot.

        ``exchange`` delivers each command to the actor task; None awaits the executor
        directly.
        """
        handle = self.handle
        ins = self.instruments
        pipeline = handle.experiment.pipeline
        for index in range(self.start_index, len(pipeline)):
            if handle._cancel_requested:
                # Cancelled while it could not be interrupted (before the run's first
                # await, or in a shielded write): the run's cancelled scope raises here,
                # so a stage that never awaits does not run after a cancel.
                await anyio.lowlevel.checkpoint()
            stage_def = pipeline[index]
            self._current_stage = stage_def.label
            if ins.observer is not None:  # the run persists
                await ins.checkpoint(index, self.snapshot)
            if stage_def.enabled:
                await self._attempts(index, stage_def, actor, exchange)
            else:
                self._skip(index, stage_def.label)
        if ins.observer is not None:  # the run persists
            await ins.checkpoint(len(pipeline), self.snapshot)
        return self.snapshot

    async def _drive_actor_task(self, actor: StageActor) -> bytes:
        """Run the stages with the actor in a task of its own, fed over memory streams.

        A timed attempt is watched from the supervisor's side: at the deadline the
        supervisor records the timeout and moves on even if the stage is slow to unwind,
        and the abandoned attempt's late answer is dropped by its generation.
        """
        send_cmd, recv_cmd = anyio.create_memory_object_stream[msg.Message](1)
        send_reply, recv_reply = anyio.create_memory_object_stream[msg.Message](1)
        actor.replies = send_reply
        mailbox = Mailbox(send_cmd, recv_reply)
        failure: Exception | None = None
        final = b""
        try:
            with unwrap_fatal():
                # The body's errors are kept out of the task group: a task group would
                # wrap them in an ExceptionGroup, and a failed run must raise a plain
                # StageFailed.
                async with anyio.create_task_group() as tg:
                    tg.start_soon(actor.serve, recv_cmd)
                    try:
                        final = await self._run_stages(actor, mailbox.call)
                    except Exception as exc:
                        failure = exc
                    finally:
                        tg.cancel_scope.cancel()
        finally:
            for stream in (send_cmd, recv_cmd, send_reply, recv_reply):
                stream.close()
        if failure is not None:
            raise failure
        return final

    def _skip(self, index: int, label: str) -> None:
        ctx = decode_context(self.snapshot)
        skipped = [*ctx.assigns.get("skipped_stages", ()), label]
        self.snapshot = encode_context(ctx.assign("skipped_stages", skipped))
        self._at = index + 1
        self.instruments.stage_skipped(index, label)

    def _prepare(self, index: int, stage_def: StageDef) -> PreparedStage:
        """Resolve the stage, its options and its executor; a failure ends the run."""
        label = stage_def.label
        try:
            stage_obj = resolve_stage(stage_def, self.registry)
            opts = prepare_options(label, stage_obj, stage_def.options or {}, self.validate_mode)
            executor = self.executors.get(stage_def.isolation)
            if executor is None:
                executor = self.executors.lookup(stage_def.isolation, label)  # raises
        except Exception as exc:
            self._give_up(index, label, exc, 1)
        return PreparedStage(index, label, stage_def, stage_info(stage_obj), opts, executor)

    def _give_up(
        self,
        index: int,
        label: str,
        reason: BaseException,
        attempts: int,
        gave_up: str | None = None,
    ) -> NoReturn:
        """Report that stage ``label`` failed for good and fail the run (raise StageFailed)."""
        self.instruments.stage_gave_up(index, label, attempts, reason, gave_up)
        ctx = decode_context(self.snapshot)
        if ctx.trace is not None:
            ctx = trace_event(ctx, "stage_start", label, f"Starting stage: {label}")
            ctx = trace_event(
                ctx,
                "stage_failed",
                label,
                f"Failed stage: {label}",
                reasoning=f"Stage {label} failed with error: {reason!r}",
                confidence=0.0,
            )
        raise StageFailed(label, reason, ctx, attempts=attempts, run_id=self.handle.run_id) from (
            reason
        )

    async def _attempts(
        self, index: int, stage_def: StageDef, actor: StageActor, exchange: _Exchange | None
    ) -> None:
        """Run the stage's attempts until one succeeds or its policy gives up."""
        ins = self.instruments
        label = stage_def.label
        if ins.recorder is not None:  # spans are on
            ins.stage_entered(label)
        try:
            stage = actor.stage = self._prepare(index, stage_def)
            executor = stage.executor
            now_fn = ins.now
            attempt = 0
            while True:
                attempt += 1
                self._generation += 1
                gen = self._generation
                record = AttemptRecord(index, label, attempt, "running", now_fn())
                ins.attempt_started(record)
                reply: msg.Message | None
                try:
                    command = msg.RunStage(gen, index, self.snapshot, attempt)
                    if exchange is None:
                        reply = await executor.run(stage, command, actor)
                    else:
                        reply = await exchange(command, stage_def.timeout)
                except anyio.get_cancelled_exc_class():
                    actor.cancel_attempt(gen)
                    await ins.attempt_cancelled(record)
                    raise
                now = now_fn()
                if isinstance(reply, msg.StageDone):
                    self.snapshot = reply.context
                    self._at = index + 1
                    write = ins.attempt_completed(record, now)
                    if write is not None:
                        await write
                    return
                error: BaseException
                if reply is None:
                    assert stage_def.timeout is not None
                    actor.cancel_attempt(gen)
                    error = StageTimeout(label, stage_def.timeout, attempt=attempt)
                    await ins.attempt_failed(record, now, error, timed_out_after=stage_def.timeout)
                else:
                    assert isinstance(reply, msg.StageFailed)
                    error = (
                        reply.exception
                        if reply.exception is not None
                        else CrucibleError(f"{reply.error_type}: {reply.message}")
                    )
                    await ins.attempt_failed(record, now, error, reply.error_type)
                try:
                    delay = self.restarts.next_delay(index, stage_def, attempt, error, now)
                except GiveUp as stop:
                    self._give_up(index, label, stop.reason, attempt, stop.gave_up)
                ins.stage_restarted(index, label, attempt + 1, describe_error(error), delay)
                if delay > 0:
                    await anyio.sleep(delay)
        finally:
            if ins.recorder is not None:  # spans are on
                ins.stage_left()
