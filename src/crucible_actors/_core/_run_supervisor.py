"""The run supervisor: how one run executes, stage by stage.

The run supervisor walks the pipeline, acting ``rest_for_one`` over the ordered stages:
the Context is threaded, so restarting stage k re-runs k and whatever follows, and never
the stages before it. For each attempt it sends the run's stage actor (``_actor.py``) a
``RunStage`` message holding the encoded snapshot of the Context taken before the stage;
the stage's executor (``_executor.py``, chosen by ``StageDef.isolation`` from the
runtime's registry) runs the attempt, and the answer is ``AttemptDone`` (the new Context as
bytes) or ``AttemptFailed``. A failed attempt therefore leaves nothing behind, and the
snapshot is also what the store checkpoints, so restart and crash-resume are one
operation.

The supervisor awaits the executor directly in the run's task (no task, no stream per
run). A stage with a ``timeout`` adds one cancel scope whose deadline is the attempt's
start plus the timeout: the deadline is enforced where the attempt runs, the timeout is
recorded once the attempt has unwound (at the deadline, unless the stage resists
cancellation: see ``_actor.py`` for why no actor task watches it instead), and an answer
given after the deadline fired is dropped as late. Generations still number the attempts
(the idempotency key, an executor's bookkeeping).

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
from ._actor import StageActor, enter_run, trace_event
from ._attempt_policy import GiveUp, RunRestarts, describe_error
from ._clock import deadline_scope_type, loop_clock
from ._data import set_codec
from ._encoding import decode_context, decode_context_with, encode_context
from ._errors import CrucibleError, RunCancelled, RuntimeShutdown, StageFailed, StageTimeout
from ._executor import PreparedStage
from ._handle import AttemptRecord, RunHandle, RunStatus
from ._instruments import RunInstruments, RunObserver
from ._invoke import ValidateMode, prepare_options, resolve_stage
from ._lag import LAG_THRESHOLD, inline_ended, inline_started, note_long_attempt
from ._stage import stage_info

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ._cache import CacheProbe, RunCache
    from ._clock import DeadlineScope
    from ._context import Context
    from ._data import BlobCodec
    from ._executor import ExecutorRegistry
    from ._ir import StageDef
    from ._registry import Registry
    from ._spans import SpanRecorder

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
    """Executes one run: the ordered stages, their restarts, timeouts and checkpoints.

    It owns the run's :class:`StageActor` (``actor``: the :class:`~._executor.AttemptIO`
    its executors answer through) and tells it the stage before the stage's first
    attempt.
    """

    __slots__ = (
        "_at",
        "_current_stage",
        "_generation",
        "_scope_type",
        "actor",
        "cache",
        "codec",
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
        cache: RunCache | None = None,
        codec: BlobCodec | None = None,
    ) -> None:
        #: The run this supervisor executes (its transitions go through the handle's methods).
        self.handle = handle
        #: The run's side of every attempt (decode the snapshot, build the reply).
        self.actor = StageActor(handle)
        #: Where the run's large values go (the store's blobs); entered for the run's task.
        self.codec = codec
        self.registry = registry
        self.executors = executors
        self.validate_mode = validate_mode
        self.snapshot = snapshot
        self.start_index = start_index
        self.on_exit = on_exit
        #: The stage result cache of this run; None unless one of its stages is cached.
        self.cache = cache
        self.instruments = RunInstruments(handle, observer, recorder, otel_parent, wall)
        # Created at the first failed attempt: most runs never need one.
        self.restarts: RunRestarts | None = None
        self._generation = 0
        self._current_stage: str | None = None
        # The cancel scope class of timed attempts (looked up at the first one).
        self._scope_type: Callable[..., DeadlineScope] | None = None
        #: The index of the stage ``snapshot`` is the Context before (updated with it).
        self._at = start_index

    async def execute(self) -> None:
        """Run the pipeline and record the outcome on the handle; never raises Exception.

        The run's task (attached to the handle by the runtime) is what cancels it:
        cancellation propagates after the handle is marked cancelled.
        """
        handle = self.handle
        # The run's task encodes and decodes with its runtime's blob codec; the task has
        # a context of its own, so the setting ends with it.
        set_codec(self.codec)
        ins = self.instruments
        now = ins.now = loop_clock()
        t0 = now()
        handle._mark_running(t0, self.codec)
        try:
            await ins.run_started(t0, self.snapshot)
            enter_run(handle, self.registry)
            final = await self._run_stages()
        except StageFailed as exc:
            await self._end(RunStatus.FAILED, exc.context, exc, t0, "run_failed")
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                if handle._stop_reason():  # on_shutdown="interrupt", or taken over
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
            ctx = None if self.actor.experiment_intact else decode_context(final)
            await self._end(RunStatus.COMPLETED, ctx, None, t0, "run_completed", final)
        finally:
            handle._detach_task()
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
        # An error says why if not a shutdown (OwnershipLost: another runtime took the
        # run over).
        reason = self.handle._stop_reason()
        err = (
            reason
            if isinstance(reason, Exception)
            else RuntimeShutdown(self.handle.run_id, stage=at)
        )
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
        handle._finish(status, now, ctx, error, final)
        try:
            await self.instruments.run_finished(status, error, now - t0, event, final)
        finally:
            handle._mark_done()

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

    async def _run_stages(self) -> bytes:
        """Run the stages from ``start_index`` on, each until an attempt succeeds or its
        policy gives up; return the final snapshot.

        One coroutine for all stages and attempts: at 10,000 runs in flight, a coroutine
        per stage is an object per stage that outlives a whole round of the event loop,
        which the cyclic GC then traverses and promotes.
        """
        handle = self.handle
        ins = self.instruments
        now_fn = ins.now
        pipeline = handle.experiment.pipeline
        cache = self.cache
        actor = self.actor
        run_id = actor.run_id
        for index in range(self.start_index, len(pipeline)):
            if handle.cancel_requested:
                # Cancelled while it could not be interrupted (before the run's first
                # await, or in a shielded write): the run's cancelled scope raises here,
                # so a stage that never awaits does not run after a cancel.
                await anyio.lowlevel.checkpoint()
            stage_def = pipeline[index]
            label = self._current_stage = stage_def.label
            if ins.observer is not None:  # the run persists
                await ins.checkpoint(index, self.snapshot)
            if not stage_def.enabled:
                self._skip(index, label)
                continue
            if ins.recorder is not None:  # spans are on
                ins.stage_entered(label)
            try:
                stage = actor.stage = self._prepare(index, stage_def)
                probe: CacheProbe | None = None
                if cache is not None and cache.flags[index]:
                    # The lookup is here, in the driver, whatever executor the stage
                    # runs on: every isolation shares one cache.
                    started = now_fn()
                    probe = await cache.lookup(stage, self.snapshot)
                    if probe is not None:
                        if probe.snapshot is not None:
                            await self._cache_hit(index, label, probe, started)
                            continue
                        ins.stage_cache_checked(probe.key)
                executor = stage.executor
                timeout = stage_def.timeout
                if timeout is not None and self._scope_type is None:
                    self._scope_type = deadline_scope_type()
                scope_type = self._scope_type
                attempt = 0
                while True:
                    attempt += 1
                    self._generation += 1
                    gen = self._generation
                    started = now_fn()
                    record = AttemptRecord(index, label, attempt, "running", started)
                    ins.attempt_started(record)
                    reply: msg.Message | None
                    late = False
                    inline = stage_def.isolation == "inline"
                    if inline:  # the lag monitor names the inline stages executing now
                        inline_started(self, label, run_id, started)
                    try:
                        command = msg.RunStage(gen, index, self.snapshot, attempt)
                        if timeout is None:
                            reply = await executor.run(stage, command, actor)
                        else:
                            assert scope_type is not None
                            with scope_type(deadline=started + timeout) as scope:
                                reply = await executor.run(stage, command, actor)
                            if scope.cancel_called:
                                # The deadline fired: the attempt timed out, and an answer
                                # it gave anyway (it swallowed the cancellation) is late.
                                reply = None
                            elif now_fn() >= started + timeout:
                                # Past the deadline, yet the scope never fired: the attempt
                                # did not await, so nothing could stop it (issue 21). It
                                # timed out all the same, late.
                                reply, late = None, True
                    except anyio.get_cancelled_exc_class():
                        await ins.attempt_cancelled(record)
                        raise
                    finally:
                        if inline:
                            inline_ended(self)
                    if reply is not None and reply.generation != gen:
                        raise CrucibleError(
                            f"stage {label!r}: executor {type(executor).__name__} answered "
                            f"attempt {reply.generation} while attempt {gen} was awaited "
                            "(an executor must answer the RunStage it was given)"
                        )
                    now = now_fn()
                    if inline and now - started >= LAG_THRESHOLD:
                        note_long_attempt(label, run_id, started, now)
                    if isinstance(reply, msg.AttemptDone):
                        self.snapshot = reply.context
                        self._at = index + 1
                        write = ins.attempt_completed(record, now)
                        if write is not None:
                            await write
                        if probe is not None:
                            assert cache is not None
                            await cache.save(stage, probe, reply.context, run_id)
                        break
                    await self._attempt_failed(
                        index, stage_def, record, reply, attempt, now, late=late
                    )
            finally:
                if ins.recorder is not None:  # spans are on
                    ins.stage_left()
        final = self.snapshot
        if ins.observer is not None:  # the run persists
            await ins.checkpoint(len(pipeline), final)
        return final

    async def _cache_hit(self, index: int, label: str, probe: CacheProbe, started: float) -> None:
        """Apply a cached result of stage ``label`` instead of running it, and report it."""
        snapshot = probe.snapshot
        hit = probe.hit
        assert snapshot is not None
        assert hit is not None
        if "trace" in probe.before:  # the run records a decision trace: mark the stage
            if self.actor.experiment_intact:
                ctx = decode_context_with(snapshot, self.handle.experiment)
            else:
                ctx = decode_context(snapshot)
            ctx = trace_event(ctx, "stage_start", label, f"Starting stage: {label}")
            ctx = trace_event(
                ctx,
                "stage_complete",
                label,
                f"Completed stage: {label}",
                reasoning=f"Stage {label} result taken from the cache (computed by run "
                f"{hit.run_id})",
            )
            snapshot = encode_context(ctx)
        self.snapshot = snapshot
        self._at = index + 1
        record = AttemptRecord(
            index, label, 1, "completed", started, self.instruments.now(), cache_hit=True
        )
        write = self.instruments.stage_cached(record, probe.key, hit.run_id)
        if write is not None:
            await write

    async def _attempt_failed(
        self,
        index: int,
        stage_def: StageDef,
        record: AttemptRecord,
        reply: msg.AttemptFailed | None,
        attempt: int,
        now: float,
        *,
        late: bool = False,
    ) -> None:
        """Report a failed attempt (``reply`` None: it timed out; ``late``: it returned
        only after its deadline, never having awaited), then wait out the delay before
        the next one; raise StageFailed when the policy gives up."""
        ins = self.instruments
        label = stage_def.label
        timeout = stage_def.timeout
        error: BaseException
        if reply is None:
            assert timeout is not None
            ran = now - record.started if late else None
            error = StageTimeout(label, timeout, attempt=attempt, ran=ran)
            if late:
                log.warning("%s", error)
            await ins.attempt_failed(record, now, error, timed_out_after=timeout)
        else:
            error = (
                reply.exception
                if reply.exception is not None
                else CrucibleError(f"{reply.error_type}: {reply.message}")
            )
            await ins.attempt_failed(record, now, error, reply.error_type)
        restarts = self.restarts
        if restarts is None:
            run = self.handle
            restarts = self.restarts = RunRestarts(run.experiment, f"run {run.run_id}")
        try:
            delay = restarts.next_delay(index, stage_def, attempt, error, now)
        except GiveUp as stop:
            self._give_up(index, label, stop.reason, attempt, stop.gave_up)
        ins.stage_restarted(index, label, attempt + 1, describe_error(error), delay)
        if delay > 0:
            await anyio.sleep(delay)
