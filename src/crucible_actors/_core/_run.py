"""The run supervisor and its stage actor: how one run executes.

The run supervisor walks the pipeline, acting ``rest_for_one`` over the ordered stages:
the Context is threaded, so restarting stage k re-runs k and whatever follows, and never
the stages before it. For each attempt it sends the stage actor a ``RunStage`` message
holding the encoded snapshot of the Context taken before the stage; the actor decodes a
fresh Context, runs the stage and answers ``StageDone`` (the new Context as bytes) or
``StageFailed``. A failed attempt therefore leaves nothing behind, and the snapshot is
also what the store checkpoints, so restart and crash-resume are one operation.

How a message reaches the actor depends on the run. When a stage has a timeout, the
actor runs in a task of its own fed over bounded memory streams, each timed attempt in
its own cancel scope: the supervisor records the timeout at the deadline and moves on,
and the abandoned attempt's late answer is dropped by its generation. When no stage has
one, nothing ever abandons an attempt from outside, so the supervisor hands the same
message to the actor by a direct call in the run's task (two task switches fewer per
stage, and no task group per run).

Restarts follow OTP: a ``transient`` stage is retried after an exception or a timeout
within its own window (``max_restarts`` in ``max_seconds``) and within the run-wide
budget (``Experiment.max_restarts``); a ``temporary`` stage never is.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import random
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import msgspec
import msgspec.structs

from . import _messages as msg
from . import _telemetry as tel
from ._decision import append_event
from ._encoding import decode_context, decode_context_with, encode_context
from ._errors import (
    CrucibleError,
    RestartIntensityExceeded,
    RunCancelled,
    StageFailed,
    StageTimeout,
)
from ._execute import (
    ValidateMode,
    checked_result,
    invoke_stage,
    prepare_options,
    resolve_stage,
)
from ._handle import AttemptRecord, RunEvent, RunHandle, RunStatus
from ._ir import Backoff, StageDef, stage_ref
from ._registry import current_registry
from ._restart import RestartIntensity
from ._stage import StageInfo, stage_info
from ._telemetry import _by_event as _tel_handlers
from ._worker import invoke_in_process, invoke_in_thread

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from typing import TypeAlias

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._context import Context
    from ._registry import Registry
    from ._tracing import SpanRecorder

    #: How the supervisor hands a command to the stage actor and gets its reply
    #: (None: the attempt timed out).
    _Exchange: TypeAlias = Callable[[msg.RunStage, float | None], Awaitable[msg.Message | None]]

log = logging.getLogger("crucible_actors")

__all__ = ["RunObserver", "RunSupervisor", "cleanup_scope", "current_run"]

_current_run: contextvars.ContextVar[RunHandle | None] = contextvars.ContextVar(
    "crucible_current_run", default=None
)


def current_run() -> RunHandle | None:
    """Return the handle of the run whose stage is executing, if any."""
    return _current_run.get()


def cleanup_scope() -> anyio.CancelScope:
    """Return a shielded cancel scope for a stage's cleanup after cancellation.

    The scope shields the cleanup from the run's cancellation but ends at the run's grace
    deadline (set by ``RunHandle.cancel(grace=...)`` or the runtime's shutdown grace), so a
    slow cleanup cannot hold up a shutdown. A bare ``CancelScope(shield=True)`` cannot be
    interrupted at all.
    """
    handle = _current_run.get()
    deadline = handle.grace_deadline if handle is not None else math.inf
    return anyio.CancelScope(shield=True, deadline=deadline)


class RunObserver:
    """Hooks the store adapter implements to persist a run (all no-ops here)."""

    async def run_started(self, handle: RunHandle, snapshot: bytes) -> None:
        """The run was admitted; ``snapshot`` is the initial Context."""

    async def checkpoint(self, handle: RunHandle, index: int, snapshot: bytes) -> None:
        """``snapshot`` is the Context before stage ``index`` (or after the last one)."""

    async def attempt_finished(self, handle: RunHandle, record: AttemptRecord) -> None:
        """One attempt ended (``record.status``: completed, failed, timeout, cancelled)."""

    async def run_finished(self, handle: RunHandle, final: bytes | None) -> None:
        """The run reached a terminal status (``final``: the last Context, if any)."""


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


def _loop_clock() -> Callable[[], float]:
    """Return the running loop's clock: what ``anyio.current_time()`` reads, minus its
    per-call backend lookup (the run supervisor reads the clock several times a stage).
    """
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # not asyncio: anyio's other backend
        import trio

        return trio.current_time


def _class_names(exc: BaseException) -> set[str]:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, BaseExceptionGroup):
        for leaf in exc.exceptions:
            names |= _class_names(leaf)
    return names


def should_retry(stage_def: StageDef, error: BaseException) -> bool:
    """Return whether the stage's policy allows retrying after ``error``.

    Only ``transient`` stages retry; ``fail_on`` names never retry, and with ``retry_on``
    set only those names do. Names match the exception's class and its bases, and every
    leaf of an exception group.
    """
    if stage_def.restart != "transient":
        return False
    if not stage_def.fail_on and not stage_def.retry_on:
        return True
    names = _class_names(error)
    if stage_def.fail_on and names.intersection(stage_def.fail_on):
        return False
    return not stage_def.retry_on or bool(names.intersection(stage_def.retry_on))


def _backoff_delay(backoff: float | Backoff | None, retry: int) -> float:
    if backoff is None:
        return 0.0
    if isinstance(backoff, Backoff):
        return backoff.delay(retry, random.random())
    return float(backoff)


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        leaves = "; ".join(_describe_error(e) for e in exc.exceptions)
        return f"{type(exc).__name__}: {exc.message} [{leaves}]"
    return f"{type(exc).__name__}: {exc}"


class _StageActor:
    """Runs stage attempts for one run, one at a time, each in its own cancel scope."""

    __slots__ = (
        "_cancelled_upto",
        "_gen",
        "_handle",
        "_registry",
        "_replies",
        "_scope",
        "experiment_intact",
        "stage",
    )

    def __init__(
        self,
        handle: RunHandle,
        registry: Registry,
        replies: MemoryObjectSendStream[msg.Message] | None = None,
    ) -> None:
        self._handle = handle
        self._registry = registry
        # True while every snapshot carries the submitted Experiment unchanged, so
        # decoding can reuse that object (a stage may replace ctx.experiment).
        self.experiment_intact = True
        self._replies = replies
        self._scope: anyio.CancelScope | None = None
        self._gen = 0
        self._cancelled_upto = 0
        #: The stage being run: (index, info, converted options, label, definition).
        self.stage: tuple[int, StageInfo, Any, str, StageDef] | None = None

    def cancel_attempt(self, generation: int) -> None:
        """Abandon attempt ``generation`` (also if the actor has not picked it up yet)."""
        self._cancelled_upto = max(self._cancelled_upto, generation)
        if self._gen == generation and self._scope is not None:
            self._scope.cancel()

    async def serve(self, commands: MemoryObjectReceiveStream[msg.Message]) -> None:
        _current_run.set(self._handle)
        current_registry.set(self._registry)
        with commands:
            while True:
                # Fast path: take a queued command without the extra checkpoint that
                # ``receive()`` always performs; block only when the queue is empty.
                # (The await is kept out of the ``except`` clause: inside it, the
                # WouldBlock and its traceback would stay alive while the actor waits.)
                try:
                    command = commands.receive_nowait()
                except anyio.WouldBlock:
                    command = None
                except anyio.EndOfStream:
                    return
                if command is None:
                    try:
                        command = await commands.receive()
                    except anyio.EndOfStream:
                        return
                if not isinstance(command, msg.RunStage):
                    continue
                if command.generation <= self._cancelled_upto:
                    continue
                assert self.stage is not None
                assert self.stage[0] == command.index
                if self.stage[4].timeout is None:
                    # No timeout: nothing abandons this attempt but the run's own
                    # cancellation, so no per-attempt cancel scope is needed.
                    reply = await self.call(command)
                else:
                    with anyio.CancelScope() as scope:
                        self._scope, self._gen = scope, command.generation
                        reply = await self.call(command)
                    self._scope = None
                    if scope.cancelled_caught:
                        continue
                assert self._replies is not None
                try:
                    self._replies.send_nowait(reply)
                    continue
                except anyio.WouldBlock:
                    pass
                await self._replies.send(reply)

    async def call(self, command: msg.RunStage) -> msg.Message:
        """Run the attempt ``command`` describes, in the caller's task; return the reply.

        The actor task calls this for each command it receives. When no stage of the run
        has a timeout, the run supervisor calls it directly instead: nothing then has to
        watch an attempt from outside, so the message is handed over without a task
        switch (the same ``RunStage`` in, ``StageDone``/``StageFailed`` out, the Context
        as bytes either way).
        """
        assert self.stage is not None
        assert self.stage[0] == command.index
        _, info, opts, label, stage_def = self.stage
        handle = self._handle
        try:
            telemetry = {
                "stage": label,
                "attempt": command.attempt,
                "idempotency_key": f"{handle.run_id}/{label}/{command.generation}",
            }
            if self.experiment_intact:
                ctx = decode_context_with(command.context, handle.experiment, telemetry)
            else:
                ctx = decode_context(command.context)
                ctx = msgspec.structs.replace(
                    ctx, telemetry_context={**ctx.telemetry_context, **telemetry}
                )
            given = ctx.experiment
            if ctx.trace is not None:
                ctx = _trace(ctx, "stage_start", label, f"Starting stage: {label}")
            if info.is_async and stage_def.isolation == "inline":
                result = checked_result(label, await info.stage.run(ctx, opts))  # type: ignore[misc]
            elif stage_def.isolation == "inline" or (
                stage_def.isolation == "thread" and not info.is_async
            ):
                result = await invoke_stage(info, label, ctx, opts)
            elif stage_def.isolation == "thread":
                result = await invoke_in_thread(info.stage, label, ctx, opts)
            else:
                result = await invoke_in_process(stage_ref(info.stage), label, ctx, opts)
            if result.experiment is not given:
                self.experiment_intact = False
            result = result.mark_stage_complete(label)
            if result.trace is not None:
                result = _trace(
                    result,
                    "stage_complete",
                    label,
                    f"Completed stage: {label}",
                    reasoning=f"Stage {label} completed successfully",
                )
            return msg.StageDone(command.generation, command.index, encode_context(result))
        except Exception as exc:
            return msg.StageFailed(
                command.generation,
                command.index,
                type(exc).__name__,
                str(exc),
                exception=exc,
            )


def _trace(ctx: Context, kind: str, stage: str, decision: str, **kw: Any) -> Context:
    assert ctx.trace is not None
    chain = append_event(
        ctx.trace,
        kind,
        decision,
        kw.pop("reasoning", f"Pipeline executing stage {stage}"),
        stage_id=stage,
        experiment_id=ctx.experiment_id,
        **kw,
    )
    return msgspec.structs.replace(ctx, trace=chain)


class RunSupervisor:
    """Executes one run: the ordered stages, their restarts, timeouts and checkpoints."""

    __slots__ = (
        "_current_stage",
        "_generation",
        "_now",
        "_run_window",
        "_seq",
        "_windows",
        "handle",
        "observer",
        "on_exit",
        "otel_parent",
        "recorder",
        "registry",
        "snapshot",
        "start_index",
        "validate_mode",
        "wall",
    )

    def __init__(
        self,
        handle: RunHandle,
        *,
        registry: Registry,
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
        self.validate_mode = validate_mode
        self.snapshot = snapshot
        self.start_index = start_index
        self.observer = observer
        self.recorder = recorder
        self.otel_parent = otel_parent
        self.wall = wall
        self.on_exit = on_exit
        self._now: Callable[[], float] = anyio.current_time
        self._seq = 0
        self._generation = 0
        self._run_window: RestartIntensity | None = None
        self._windows: dict[int, RestartIntensity] | None = None
        self._current_stage: str | None = None
        exp = handle.experiment
        if exp.max_restarts is not None:
            self._run_window = RestartIntensity(exp.max_restarts, exp.max_seconds)

    # -- events ------------------------------------------------------------------

    def _event(
        self,
        type_: str,
        stage: str | None = None,
        index: int | None = None,
        attempt: int | None = None,
        data: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> None:
        """Record a RunEvent; ``data`` is a fresh dict the event takes over."""
        self._seq += 1
        handle = self.handle
        handle._events.append(
            RunEvent(
                self._seq,
                type_,
                handle.run_id,
                self._now() if now is None else now,
                self.wall(),
                stage,
                index,
                attempt,
                {} if data is None else data,
            )
        )
        if handle._new_event is not None:
            handle._wake_subscribers()

    def _telemetry(
        self,
        name: str,
        stage: str | None,
        attempt: int | None,
        duration: float | None = None,
        **extra: Any,
    ) -> None:
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

    async def execute(self) -> None:
        """Run the pipeline and record the outcome on the handle; never raises Exception.

        The run's task handle (``handle._scope``) is what cancels it: cancellation
        propagates after the handle is marked cancelled.
        """
        handle = self.handle
        exp = handle.experiment
        rec = self.recorder
        self._now = _loop_clock()
        run_span = rec.start_run(self.otel_parent, handle.run_id, exp.id) if rec else None
        t0 = self._now()
        handle.started_at = t0
        handle.status = RunStatus.RUNNING
        self._event("run_started", data={"experiment_id": exp.id}, now=t0)
        if _tel_handlers:  # any telemetry handler attached
            self._telemetry(tel.RUN_START, None, None)
        actor = _StageActor(handle, self.registry)
        try:
            if self.observer is not None:
                # Shielded: a cancel arriving while the start is being written would
                # leave the row ``running`` with no outcome ever recorded (the observer
                # only finishes runs it started), and one requested before it would
                # leave an admitted run missing from the store.
                with anyio.CancelScope(shield=True):
                    await self.observer.run_started(handle, self.snapshot)
            pipeline = exp.pipeline
            if any(pipeline[i].timeout is not None for i in range(self.start_index, len(pipeline))):
                final = await self._drive_actor_task(actor, run_span)
            else:
                # No stage can time out, so no attempt ever needs abandoning from outside:
                # the actor's messages are delivered by a direct call in this task, which
                # spares every stage two task switches and the run a task group.
                _current_run.set(handle)
                current_registry.set(self.registry)
                final = await self._run_stages(actor, None, run_span)
        except StageFailed as exc:
            await self._end(RunStatus.FAILED, exc.context, exc, t0, run_span, "run_failed")
        except anyio.get_cancelled_exc_class():
            err = RunCancelled(handle.run_id, stage=self._current_stage)
            with anyio.CancelScope(shield=True):
                await self._end(RunStatus.CANCELLED, None, err, t0, run_span, "run_cancelled")
            raise
        except Exception as exc:  # an internal or store error: the run fails, others go on
            failed = StageFailed(self._current_stage or "<run>", exc, None)
            await self._end(RunStatus.FAILED, None, failed, t0, run_span, "run_failed")
        else:
            # The handle decodes the final Context when asked, sharing the submitted
            # Experiment unless a stage replaced it.
            ctx = None if actor.experiment_intact else decode_context(final)
            await self._end(RunStatus.COMPLETED, ctx, None, t0, run_span, "run_completed", final)
        finally:
            handle._scope = None
            if self.on_exit is not None:
                self.on_exit(handle)

    async def _end(
        self,
        status: RunStatus,
        ctx: Context | None,
        error: BaseException | None,
        t0: float,
        run_span: Any,
        event: str,
        final: bytes | None = None,
    ) -> None:
        """Record the outcome: store first, then the terminal event and waiters.

        The store is written before ``result()`` returns and before the terminal event,
        so whoever reacts to either finds the run's final state in the store.
        """
        handle = self.handle
        now = self._now()
        handle.finished_at = now
        handle._set_outcome(status, ctx, error, final)
        try:
            if self.observer is not None:
                await self.observer.run_finished(handle, final)
        except Exception:
            # The run's own outcome stands; a store that cannot record it must not
            # take the runtime (and every other run) down with it.
            log.exception("could not record the outcome of run %s", handle.run_id)
        finally:
            data: dict[str, Any] = {"status": status.value, "duration": now - t0}
            if error is not None:
                data["error"] = _describe_error(error)
            self._event(event, data=data)
            if status is RunStatus.COMPLETED:
                if _tel_handlers:  # any telemetry handler attached
                    self._telemetry(tel.RUN_STOP, None, None, now - t0)
            else:
                self._telemetry(tel.RUN_EXCEPTION, None, None, now - t0, status=status.value)
            if run_span is not None and self.recorder is not None:
                if status is RunStatus.COMPLETED:
                    self.recorder.ok(run_span)
                else:
                    self.recorder.fail(run_span, f"run {status.value}: {error}", None)
                self.recorder.end(run_span)
            handle._mark_done()

    async def _run_stages(
        self, actor: _StageActor, exchange: _Exchange | None, run_span: Any
    ) -> bytes:
        """Run the stages from ``start_index`` on; return the final snapshot.

        ``exchange`` delivers each command to the actor task; None calls the actor
        directly.
        """
        handle = self.handle
        pipeline = handle.experiment.pipeline
        for index in range(self.start_index, len(pipeline)):
            if handle._cancel_requested:
                # Cancelled while it could not be interrupted (before the run's first
                # await, or in a shielded write): the run's cancelled scope raises here,
                # so a stage that never awaits does not run after a cancel.
                await anyio.lowlevel.checkpoint()
            stage_def = pipeline[index]
            self._current_stage = stage_def.label
            if self.observer is not None:
                await self.observer.checkpoint(handle, index, self.snapshot)
            if stage_def.enabled:
                await self._attempts(index, stage_def, actor, exchange, run_span)
            else:
                self._skip(index, stage_def.label)
        if self.observer is not None:
            await self.observer.checkpoint(handle, len(pipeline), self.snapshot)
        return self.snapshot

    async def _drive_actor_task(self, actor: _StageActor, run_span: Any) -> bytes:
        """Run the stages with the actor in a task of its own, fed over memory streams.

        A timed attempt is watched from the supervisor's side: at the deadline the
        supervisor records the timeout and moves on even if the stage is slow to unwind,
        and the abandoned attempt's late answer is dropped by its generation.
        """
        send_cmd, recv_cmd = anyio.create_memory_object_stream[msg.Message](1)
        send_reply, recv_reply = anyio.create_memory_object_stream[msg.Message](1)
        actor._replies = send_reply
        mailbox = _Mailbox(send_cmd, recv_reply)
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
                        final = await self._run_stages(actor, mailbox.call, run_span)
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
        self._event("stage_skipped", label, index)

    def _prepare(
        self, index: int, stage_def: StageDef, actor: _StageActor, stage_span: Any
    ) -> None:
        """Resolve the stage and its options for the actor; a failure ends the run."""
        label = stage_def.label
        try:
            stage_obj = resolve_stage(stage_def, self.registry)
            opts = prepare_options(label, stage_obj, stage_def.options or {}, self.validate_mode)
        except Exception as exc:
            self._event("stage_failed", label, index, 1, {"error": _describe_error(exc)})
            self._give_up(label, exc, 1, stage_span, "stage.exhausted")
        actor.stage = (index, stage_info(stage_obj), opts, label, stage_def)

    def _give_up(
        self, label: str, reason: BaseException, attempts: int, stage_span: Any, span_event: str
    ) -> None:
        ctx = decode_context(self.snapshot)
        if ctx.trace is not None:
            ctx = _trace(ctx, "stage_start", label, f"Starting stage: {label}")
            ctx = _trace(
                ctx,
                "stage_failed",
                label,
                f"Failed stage: {label}",
                reasoning=f"Stage {label} failed with error: {reason!r}",
                confidence=0.0,
            )
        if stage_span is not None and self.recorder is not None:
            self.recorder.event(stage_span, span_event, {"crucible.attempt": attempts})
            self.recorder.fail(stage_span, _describe_error(reason), None)
        raise StageFailed(label, reason, ctx, attempts=attempts, run_id=self.handle.run_id) from (
            reason
        )

    async def _attempts(
        self,
        index: int,
        stage_def: StageDef,
        actor: _StageActor,
        exchange: _Exchange | None,
        run_span: Any,
    ) -> None:
        """Run the stage's attempts until one succeeds or its policy gives up."""
        handle = self.handle
        rec = self.recorder
        label = stage_def.label
        stage_span: Any = (
            rec.start_stage(run_span, handle.run_id, handle.experiment.id, label) if rec else None
        )
        try:
            self._prepare(index, stage_def, actor, stage_span)
            now_fn = self._now
            attempt = 0
            while True:
                attempt += 1
                self._generation += 1
                gen = self._generation
                started = now_fn()
                record = AttemptRecord(index, label, attempt, "running", started)
                handle.attempts.append(record)
                self._event("stage_started", label, index, attempt, now=started)
                if _tel_handlers:  # any telemetry handler attached
                    self._telemetry(tel.STAGE_START, label, attempt)
                attempt_span = (
                    rec.start_attempt(
                        stage_span, handle.run_id, handle.experiment.id, label, attempt
                    )
                    if rec
                    else None
                )
                reply: msg.Message | None = None
                try:
                    command = msg.RunStage(gen, index, self.snapshot, attempt)
                    if exchange is None:
                        reply = await actor.call(command)
                    else:
                        reply = await exchange(command, stage_def.timeout)
                except anyio.get_cancelled_exc_class():
                    actor.cancel_attempt(gen)
                    record.status, record.finished = "cancelled", now_fn()
                    if attempt_span is not None and rec is not None:
                        rec.event(attempt_span, "stage.cancelled", {"crucible.attempt": attempt})
                        rec.fail(attempt_span, f"stage {label!r} attempt {attempt} cancelled")
                        rec.end(attempt_span)
                    with anyio.CancelScope(shield=True):
                        if self.observer is not None:
                            await self.observer.attempt_finished(handle, record)
                    raise
                now = now_fn()
                record.finished = now
                if isinstance(reply, msg.StageDone):
                    self.snapshot = reply.context
                    record.status = "completed"
                    self._event(
                        "stage_completed",
                        label,
                        index,
                        attempt,
                        {"duration": now - started},
                        now=now,
                    )
                    if _tel_handlers:  # any telemetry handler attached
                        self._telemetry(tel.STAGE_STOP, label, attempt, now - started)
                    if attempt_span is not None and rec is not None:
                        rec.ok(attempt_span)
                        rec.end(attempt_span)
                    if self.observer is not None:
                        await self.observer.attempt_finished(handle, record)
                    return
                error = self._record_failure(
                    reply, record, stage_def, actor, gen, now - started, attempt_span
                )
                if self.observer is not None:
                    await self.observer.attempt_finished(handle, record)
                delay = self._retry_delay(index, stage_def, attempt, error, now, stage_span)
                if delay > 0:
                    await anyio.sleep(delay)
        finally:
            if stage_span is not None and rec is not None:
                rec.end(stage_span)

    def _record_failure(
        self,
        reply: msg.Message | None,
        record: AttemptRecord,
        stage_def: StageDef,
        actor: _StageActor,
        generation: int,
        duration: float,
        attempt_span: Any,
    ) -> BaseException:
        """Record a failed or timed-out attempt (``reply`` None) and return its error."""
        rec = self.recorder
        label, index, attempt = record.stage, record.index, record.attempt
        error: BaseException
        if reply is None:
            assert stage_def.timeout is not None
            actor.cancel_attempt(generation)
            error = StageTimeout(label, stage_def.timeout, attempt=attempt)
            record.status = "timeout"
            self._event("stage_timeout", label, index, attempt, {"timeout": stage_def.timeout})
            self._telemetry(tel.STAGE_TIMEOUT, label, attempt, duration)
            if attempt_span is not None and rec is not None:
                rec.event(attempt_span, "stage.timeout", {"crucible.attempt": attempt})
        else:
            assert isinstance(reply, msg.StageFailed)
            error = (
                reply.exception
                if reply.exception is not None
                else CrucibleError(f"{reply.error_type}: {reply.message}")
            )
            record.status = "failed"
            self._telemetry(
                tel.STAGE_EXCEPTION, label, attempt, duration, error_type=reply.error_type
            )
        record.error = _describe_error(error)
        if attempt_span is not None and rec is not None:
            rec.fail(attempt_span, record.error, error)
            rec.end(attempt_span)
        return error

    def _retry_delay(
        self,
        index: int,
        stage_def: StageDef,
        attempt: int,
        error: BaseException,
        now: float,
        stage_span: Any,
    ) -> float:
        """Return the delay before the next attempt, or give up (raise StageFailed).

        Applies the stage's policy, its restart window and the run-wide budget.
        """
        handle = self.handle
        label = stage_def.label
        described = _describe_error(error)
        if not should_retry(stage_def, error):
            self._event("stage_failed", label, index, attempt, {"error": described})
            self._give_up(label, error, attempt, stage_span, "stage.exhausted")
        if self._windows is None:
            self._windows = {}
        window = self._windows.get(index)
        if window is None:
            window = self._windows[index] = RestartIntensity(
                stage_def.max_restarts, stage_def.max_seconds
            )
        if not window.record(now):
            self._event(
                "stage_failed",
                label,
                index,
                attempt,
                {"error": described, "gave_up": "stage restart window"},
            )
            self._give_up(label, error, attempt, stage_span, "stage.exhausted")
        if self._run_window is not None and not self._run_window.record(now):
            exp = handle.experiment
            assert exp.max_restarts is not None
            budget = RestartIntensityExceeded(
                exp.max_restarts,
                exp.max_seconds,
                supervisor=f"run {handle.run_id}",
                last_error=error,
            )
            self._event(
                "stage_failed",
                label,
                index,
                attempt,
                {"error": _describe_error(budget), "gave_up": "run restart budget"},
            )
            self._give_up(label, budget, attempt, stage_span, "stage.exhausted")
        delay = _backoff_delay(stage_def.backoff, attempt)
        self._event(
            "stage_restarted", label, index, attempt + 1, {"after": described, "delay": delay}
        )
        self._telemetry(tel.STAGE_RESTART, label, attempt + 1)
        if stage_span is not None and self.recorder is not None:
            self.recorder.event(
                stage_span,
                "stage.restart",
                {"crucible.attempt": attempt + 1, "crucible.delay": delay},
            )
        return delay


class _Mailbox:
    """The supervisor's end of the streams to an actor task."""

    __slots__ = ("recv_reply", "send_cmd")

    def __init__(
        self,
        send_cmd: MemoryObjectSendStream[msg.Message],
        recv_reply: MemoryObjectReceiveStream[msg.Message],
    ) -> None:
        self.send_cmd = send_cmd
        self.recv_reply = recv_reply

    async def call(self, command: msg.RunStage, limit: float | None) -> msg.Message | None:
        """Send ``command`` to the actor and wait for its reply; None after ``limit`` seconds."""
        gen = command.generation
        if limit is None:
            await _send(self.send_cmd, command)
            return await _receive_generation(self.recv_reply, gen)
        with anyio.move_on_after(limit):
            await _send(self.send_cmd, command)
            return await _receive_generation(self.recv_reply, gen)
        return None


async def _send(stream: MemoryObjectSendStream[msg.Message], message: msg.Message) -> None:
    try:
        stream.send_nowait(message)
        return
    except anyio.WouldBlock:
        pass
    await stream.send(message)


async def _receive_generation(
    stream: MemoryObjectReceiveStream[msg.Message], generation: int
) -> msg.Message:
    """Return the next reply for ``generation``, dropping late replies of older attempts."""
    while True:
        try:
            reply: msg.Message | None = stream.receive_nowait()
        except anyio.WouldBlock:
            reply = None
        if reply is None:
            reply = await stream.receive()
        if getattr(reply, "generation", None) == generation:
            return reply
