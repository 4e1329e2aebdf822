"""The stage actor: the run's side of every attempt, and how a ``RunStage`` reaches it.

One actor per run. It holds the stage being run (a
:class:`~crucible_actors._core._executor.PreparedStage`, set by the run supervisor before
the stage's first attempt) and is the run's
:class:`~crucible_actors._core._executor.AttemptIO`: it decodes each attempt's Context
from the ``RunStage`` snapshot and builds the ``AttemptDone``/``AttemptFailed`` reply, while
the stage's executor decides where the body runs.

A message reaches the actor by a direct call in the run's task, timed or not: the run
supervisor (``_run_supervisor.py``) awaits the executor, and a stage with a ``timeout`` adds one
cancel scope with the attempt's deadline around that await. So the deadline is enforced
where the attempt runs, and an answer the attempt gives once its deadline has fired (a
stage that swallowed the cancellation) is dropped as late.

The timeout of an attempt that resists cancellation (a shielded cleanup) is recorded
once it has unwound, and the next attempt starts with its whole timeout. Why a direct call
and not an actor task of its own behind memory streams, with the figures:
``docs/design/0002-timed-attempts-direct-call.md``.

Also here: the run's context variable (:func:`current_run`) and :func:`cleanup_scope`,
which stages use from inside an attempt.
"""

from __future__ import annotations

import contextvars
import math
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import msgspec
import msgspec.structs

from . import _messages as msg
from ._encoding import decode_context, decode_context_with, encode_context, encode_light
from ._registry import current_registry
from ._trace_chain import append_event

if TYPE_CHECKING:
    from ._context import Context
    from ._executor import PreparedStage
    from ._handle import RunHandle
    from ._registry import Registry

__all__ = ["StageActor", "cleanup_scope", "current_run", "enter_run", "trace_event"]

_current_run: contextvars.ContextVar[RunHandle | None] = contextvars.ContextVar(
    "crucible_current_run", default=None
)


def current_run() -> RunHandle | None:
    """Return the handle of the run whose stage is executing, if any."""
    return _current_run.get()


def enter_run(handle: RunHandle, registry: Registry) -> None:
    """Make ``handle`` and ``registry`` the current task's run and registry."""
    _current_run.set(handle)
    current_registry.set(registry)


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


def trace_event(ctx: Context, kind: str, stage: str, decision: str, **kw: Any) -> Context:
    """Return ``ctx`` with a decision event appended to its trace (which must be on)."""
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


class StageActor:
    """The run's side of its stage attempts (decode the snapshot, build the reply).

    Owned by the run's supervisor, which sets :attr:`stage` before each stage's first
    attempt and gives the actor to the stage's executor.
    """

    __slots__ = ("experiment", "experiment_intact", "handle", "run_id", "stage")

    def __init__(self, handle: RunHandle) -> None:
        #: The run this actor serves.
        self.handle = handle
        # Read on every attempt: kept here rather than looked up through the handle.
        self.run_id = handle.run_id
        self.experiment = handle.experiment
        # True while every snapshot carries the submitted Experiment unchanged, so
        # decoding can reuse that object (a stage may replace ctx.experiment).
        self.experiment_intact = True
        #: The stage being run, set by the supervisor before its first attempt.
        self.stage: PreparedStage | None = None

    # -- AttemptIO -----------------------------------------------------------------

    def begin(self, stage: PreparedStage, command: msg.RunStage) -> Context:
        """Decode the attempt's Context from ``command`` (telemetry context, trace start)."""
        label = stage.label
        telemetry = {
            "stage": label,
            "attempt": command.attempt,
            "idempotency_key": f"{self.run_id}/{label}/{command.generation}",
        }
        if self.experiment_intact:
            ctx = decode_context_with(command.context, self.experiment, telemetry)
        else:
            ctx = decode_context(command.context)
            ctx = msgspec.structs.replace(
                ctx, telemetry_context={**ctx.telemetry_context, **telemetry}
            )
        if ctx.trace is not None:
            ctx = trace_event(ctx, "stage_start", label, f"Starting stage: {label}")
        return ctx

    def done(self, stage: PreparedStage, command: msg.RunStage, result: Context) -> msg.AttemptDone:
        """Return the reply for an attempt whose stage returned ``result``."""
        result = self._completed(stage, result)
        return msg.AttemptDone(command.generation, command.index, encode_context(result))

    async def finish(
        self, stage: PreparedStage, command: msg.RunStage, result: Context
    ) -> msg.AttemptDone:
        """:meth:`done`, encoding in a worker thread unless that is cheap (``encode_light``).

        Pickling, hashing and writing a large new value (about 1 s per GB) would stall
        every other run on the loop. The thread gets this task's contextvars (the blob
        codec); if the attempt is cancelled meanwhile, the thread is abandoned (a blob
        it writes is named by nothing, and a collection frees it).
        """
        result = self._completed(stage, result)
        data = encode_light(result)
        if data is None:
            data = await anyio.to_thread.run_sync(encode_context, result, abandon_on_cancel=True)
        return msg.AttemptDone(command.generation, command.index, data)

    def _completed(self, stage: PreparedStage, result: Context) -> Context:
        label = stage.label
        if result.experiment is not self.experiment:
            self.experiment_intact = False
        result = result.mark_stage_complete(label)
        if result.trace is not None:
            result = trace_event(
                result,
                "stage_complete",
                label,
                f"Completed stage: {label}",
                reasoning=f"Stage {label} completed successfully",
            )
        return result

    def failed(self, command: msg.RunStage, error: Exception) -> msg.AttemptFailed:
        """Return the reply for an attempt that raised ``error``."""
        return msg.AttemptFailed(
            command.generation, command.index, type(error).__name__, str(error), exception=error
        )
