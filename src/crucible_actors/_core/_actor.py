"""The stage actor and its mailbox: how a ``RunStage`` reaches an executor and back.

One actor per run. It holds the stage being run (a
:class:`~crucible_actors._core._executor.PreparedStage`, set by the run supervisor before
the stage's first attempt) and is the run's
:class:`~crucible_actors._core._executor.AttemptIO`: it decodes each attempt's Context
from the ``RunStage`` snapshot and builds the ``StageDone``/``StageFailed`` reply, while
the stage's executor decides where the body runs.

A message reaches the actor in one of two ways, chosen per run by the supervisor
(``_run.py``). When no stage has a timeout, nothing abandons an attempt from outside, so
the supervisor awaits the executor directly in the run's task (no task, no stream).
Otherwise the actor :meth:`~_StageActor.serve` s in a task of its own, fed over bounded
memory streams through a :class:`Mailbox`; each timed attempt runs in its own cancel
scope, and the late answer of an abandoned attempt is dropped by its generation.

Also here: the run's context variable (:func:`current_run`) and :func:`cleanup_scope`,
which stages use from inside an attempt.
"""

from __future__ import annotations

import contextvars
import math
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import msgspec.structs

from . import _messages as msg
from ._decision import append_event
from ._encoding import decode_context, decode_context_with, encode_context
from ._registry import current_registry

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._context import Context
    from ._executor import PreparedStage
    from ._handle import RunHandle
    from ._registry import Registry

__all__ = ["Mailbox", "StageActor", "cleanup_scope", "current_run", "trace_event"]

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
    """Runs stage attempts for one run, one at a time, each in its own cancel scope."""

    __slots__ = (
        "_cancelled_upto",
        "_gen",
        "_handle",
        "_registry",
        "_scope",
        "experiment_intact",
        "replies",
        "stage",
    )

    def __init__(self, handle: RunHandle, registry: Registry) -> None:
        self._handle = handle
        self._registry = registry
        # True while every snapshot carries the submitted Experiment unchanged, so
        # decoding can reuse that object (a stage may replace ctx.experiment).
        self.experiment_intact = True
        #: Where :meth:`serve` sends replies (set when the actor runs in its own task).
        self.replies: MemoryObjectSendStream[msg.Message] | None = None
        self._scope: anyio.CancelScope | None = None
        self._gen = 0
        self._cancelled_upto = 0
        #: The stage being run, set by the supervisor before its first attempt.
        self.stage: PreparedStage | None = None

    @property
    def handle(self) -> RunHandle:
        """The run this actor serves."""
        return self._handle

    # -- AttemptIO -----------------------------------------------------------------

    def begin(self, stage: PreparedStage, command: msg.RunStage) -> Context:
        """Decode the attempt's Context from ``command`` (telemetry context, trace start)."""
        handle = self._handle
        label = stage.label
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
        if ctx.trace is not None:
            ctx = trace_event(ctx, "stage_start", label, f"Starting stage: {label}")
        return ctx

    def done(self, stage: PreparedStage, command: msg.RunStage, result: Context) -> msg.StageDone:
        """Return the reply for an attempt whose stage returned ``result``."""
        label = stage.label
        if result.experiment is not self._handle.experiment:
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
        return msg.StageDone(command.generation, command.index, encode_context(result))

    def failed(self, command: msg.RunStage, error: Exception) -> msg.StageFailed:
        """Return the reply for an attempt that raised ``error``."""
        return msg.StageFailed(
            command.generation, command.index, type(error).__name__, str(error), exception=error
        )

    # -- the actor task ------------------------------------------------------------

    def cancel_attempt(self, generation: int) -> None:
        """Abandon attempt ``generation`` (also if the actor has not picked it up yet)."""
        self._cancelled_upto = max(self._cancelled_upto, generation)
        if self._gen == generation and self._scope is not None:
            self._scope.cancel()

    async def serve(self, commands: MemoryObjectReceiveStream[msg.Message]) -> None:
        """Run the attempts received on ``commands`` until the stream ends."""
        enter_run(self._handle, self._registry)
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
                stage = self.stage
                assert stage is not None
                assert stage.index == command.index
                if stage.definition.timeout is None:
                    # No timeout: nothing abandons this attempt but the run's own
                    # cancellation, so no per-attempt cancel scope is needed.
                    reply = await stage.executor.run(stage, command, self)
                else:
                    with anyio.CancelScope() as scope:
                        self._scope, self._gen = scope, command.generation
                        reply = await stage.executor.run(stage, command, self)
                    self._scope = None
                    if scope.cancelled_caught:
                        continue
                assert self.replies is not None
                try:
                    self.replies.send_nowait(reply)
                    continue
                except anyio.WouldBlock:
                    pass
                await self.replies.send(reply)


class Mailbox:
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
