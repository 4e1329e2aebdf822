"""``isolation="process"``: attempts run in a warm pool of long-lived worker processes.

One :class:`PoolExecutor` per runtime (``open_runtime(process_workers=N)``, default the
CPU count). Workers start on first use, with the parent's ``sys.path``, and are reused by
later attempts and runs, so an attempt costs two pipe messages instead of an interpreter
start. The stage must be importable as ``"module:attr"`` in the worker.

A stateful stage (a class with ``setup()``) gets workers of its own: ``StageDef.pool``
of them (default 1), each calling ``setup()`` once before its first attempt and
``teardown()`` when the runtime closes; every later attempt on that worker sees what
``setup()`` loaded. A ``setup()`` that raises fails the attempt and retires the worker,
so a retry sets up on a fresh one.

Failure semantics: a timed-out or cancelled attempt kills its worker at once; a worker
that dies mid-attempt (``os._exit``, a segfault, the OOM killer) fails the attempt with
:class:`~crucible_actors.errors.WorkerCrashed`, which restart policies match like any
exception. A stage's own exception is re-created in the parent when it pickles.

Large values: the attempt names the run's blob store (``BlobStore.location()``); the
worker opens it once, maps the blobs the Context refers to (an array arrives read-only,
never through the pipe) and writes its large results there, so both frames stay small
whatever the data. A ``memory://`` store cannot be opened by another process: the driver
then sends the values inline and moves the reply's large values into its store.
:meth:`PoolExecutor.statistics` counts the bytes each way.
"""

from __future__ import annotations

import os
import pickle
from typing import TYPE_CHECKING

import msgspec

from .._core import (
    DEFAULT_BLOB_THRESHOLD,
    ExecutorError,
    current_codec,
    encode_context,
    externalize,
    inline_blobs,
    to_json_safe,
)
from .._core import messages as msg
from ._pool_protocol import Attempt
from ._wire import decode_result
from ._worker_pool import WorkerPool

if TYPE_CHECKING:
    from types import TracebackType

    from .._core import AttemptIO, BlobStore, Context, ExecutorSettings, PreparedStage

__all__ = ["PoolExecutor", "PoolStatistics"]

_encode = msgspec.msgpack.Encoder().encode


class PoolStatistics(msgspec.Struct, frozen=True):
    """A snapshot of a :class:`PoolExecutor`'s workers.

    Attributes:
        workers: The shared pool's size (``process_workers``).
        alive: Process ids of the live workers, shared pool and stage pools.
        started: How many worker processes were started so far (replacements included).
        stage_pools: Live worker pids per stateful stage reference.
        bytes_sent: Request bytes written to workers' pipes so far.
        bytes_received: Reply bytes read from workers' pipes so far.
    """

    workers: int
    alive: list[int]
    started: int
    stage_pools: dict[str, list[int]]
    bytes_sent: int = 0
    bytes_received: int = 0


class PoolExecutor:
    """Runs attempts on warm worker processes (see the module docstring)."""

    __slots__ = ("_received", "_sent", "_shared", "_stage_pools", "workers")

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"process_workers must be >= 1, got {workers!r}")
        self.workers = workers or os.cpu_count() or 1
        self._shared: WorkerPool | None = None
        self._stage_pools: dict[str, WorkerPool] = {}
        self._sent = 0
        self._received = 0

    def for_runtime(self, settings: ExecutorSettings) -> PoolExecutor:
        """Return the pool of a new runtime (sized by ``settings.process_workers``)."""
        return PoolExecutor(settings.process_workers)

    async def __aenter__(self) -> PoolExecutor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every worker (stateful stages tear down first); the pool can be reused."""
        pools = [p for p in (self._shared, *self._stage_pools.values()) if p is not None]
        self._shared, self._stage_pools = None, {}
        for pool in pools:
            await pool.aclose()

    def statistics(self) -> PoolStatistics:
        """Return which workers are alive and how many were started."""
        shared = self._shared
        pools = [p for p in (shared, *self._stage_pools.values()) if p is not None]
        return PoolStatistics(
            workers=self.workers,
            alive=sorted(w.pid for p in pools for w in p.all if w.alive()),
            started=sum(p.started for p in pools),
            stage_pools={
                ref: sorted(w.pid for w in p.all if w.alive())
                for ref, p in self._stage_pools.items()
            },
            bytes_sent=self._sent,
            bytes_received=self._received,
        )

    def _pool_for(self, stage: PreparedStage) -> WorkerPool:
        if stage.info.has_setup:
            ref = stage.ref
            pool = self._stage_pools.get(ref)
            if pool is None:
                pool = WorkerPool(stage.definition.pool, name=f"stage {stage.label!r}")
                self._stage_pools[ref] = pool
            return pool
        if self._shared is None:
            self._shared = WorkerPool(self.workers)
        return self._shared

    async def run(
        self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
    ) -> msg.AttemptDone | msg.AttemptFailed:
        """Run the attempt on a pool worker; return its reply."""
        try:
            ctx = io.begin(stage, command)
            codec = current_codec()
            store = codec.store if codec is not None else None
            threshold = codec.threshold if codec is not None else DEFAULT_BLOB_THRESHOLD
            location = store.location() if store is not None else None
            inline = store if location is None else None
            request = _encode(
                attempt_request(
                    stage, command, ctx, blobs=location, threshold=threshold, inline=inline
                )
            )
            pool = self._pool_for(stage)
            worker = await pool.acquire()
            self._sent += len(request) + 4
            try:
                retire, kept, body = await worker.call(stage.label, request)
            except BaseException:
                # Crashed, or the attempt was abandoned (timeout, cancel): the worker may
                # still be running the stage, so it goes.
                await pool.discard(worker)
                raise
            self._received += len(body) + 6
            if retire:
                await pool.discard(worker)
            else:
                pool.release(worker)
            reply = msg.decode_message(body)
            if isinstance(reply, msg.AttemptDone):
                data = reply.context
                if inline is not None:  # the worker could not store its large values
                    data = externalize(data, inline, threshold)
                return io.done(stage, command, decode_result(data, kept, ctx))
            assert isinstance(reply, msg.AttemptFailed)
            return io.failed(command, error_of(stage.label, reply))
        except Exception as exc:
            return io.failed(command, exc)


def attempt_request(
    stage: PreparedStage,
    command: msg.RunStage,
    ctx: Context,
    *,
    blobs: str | None = None,
    threshold: int = DEFAULT_BLOB_THRESHOLD,
    inline: BlobStore | None = None,
) -> Attempt:
    """Return what a worker needs for the attempt: the snapshot as it is, when it can be.

    ``blobs`` is the blob store location the worker opens; ``inline`` a store it cannot
    open, whose blobs are then copied into the Context sent.
    """
    if ctx.trace is None:
        # The attempt's Context is the snapshot plus its telemetry: send the run's bytes.
        run, telemetry = command, ctx.telemetry_context
    else:  # the trace gained its stage_start event: encode the Context itself
        run = msg.RunStage(command.generation, command.index, encode_context(ctx), command.attempt)
        telemetry = None
    if inline is not None:
        data = inline_blobs(run.context, inline)
        if data is not run.context:
            run = msg.RunStage(run.generation, run.index, data, run.attempt)
    return Attempt(
        stage.ref,
        stage.label,
        to_json_safe(stage.options),
        run,
        setup=stage.info.has_setup,
        telemetry=telemetry,
        blobs=blobs,
        blob_threshold=threshold,
    )


def error_of(label: str, reply: msg.AttemptFailed) -> Exception:
    """Re-create the stage's exception from the worker's reply (when it unpickles)."""
    if reply.error_pickle is not None:
        try:
            error = pickle.loads(reply.error_pickle)
        except Exception:
            error = None
        if isinstance(error, Exception):
            return error
    return ExecutorError(
        f"stage {label!r} failed in its worker: {reply.error_type}: {reply.message}",
        stage=label,
    )
