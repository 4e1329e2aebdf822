"""``isolation="process"``: each attempt runs in a new worker process (spawn per attempt).

The attempt runs in ``python -m crucible_actors.executors.process``: the request (stage
reference, options, Context bytes) goes in on stdin as msgpack, the reply comes back on
stdout; a cancelled or timed-out attempt kills the process. The stage must be importable
as ``"module:attr"`` in the worker (it inherits the parent's ``sys.path``). A stage's
exception is re-created in the parent when it pickles; otherwise the attempt fails with
:class:`WorkerError`. Large values travel as in the warm pool (:mod:`.pool`): the worker
opens the run's blob store from its location, or gets them inline from a memory store.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from .._core import (
    DEFAULT_BLOB_THRESHOLD,
    CrucibleError,
    current_codec,
    decode_context,
    encode_context,
    externalize,
    inline_blobs,
    to_json_safe,
    use_blob_store,
)

if TYPE_CHECKING:
    from .._core import AttemptIO, Context, PreparedStage
    from .._core import messages as msg

__all__ = ["ProcessExecutor", "WorkerError"]


class _Request(msgspec.Struct, frozen=True):
    stage: str
    label: str
    options: Any
    context: bytes
    blobs: str | None = None
    blob_threshold: int = DEFAULT_BLOB_THRESHOLD


class _Reply(msgspec.Struct, frozen=True):
    ok: bool
    context: bytes = b""
    error_type: str = ""
    message: str = ""
    error_pickle: bytes | None = None


class WorkerError(CrucibleError):
    """A worker process died or answered something unreadable."""


class ProcessExecutor:
    """Runs each attempt in a fresh worker process (see the module docstring)."""

    __slots__ = ()

    async def run(
        self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
    ) -> msg.AttemptDone | msg.AttemptFailed:
        """Run the attempt in a new worker process; return its reply."""
        try:
            ctx = io.begin(stage, command)
            result = await invoke_in_process(stage.ref, stage.label, ctx, stage.options)
            return io.done(stage, command, result)
        except Exception as exc:
            return io.failed(command, exc)


async def invoke_in_process(stage_ref: str, label: str, ctx: Context, opts: Any) -> Context:
    """Run one attempt in a new worker process; kill it if the attempt is cancelled.

    Raises:
        WorkerError: the worker died or its reply does not decode.
        Exception: the stage's own exception, re-created from the worker when it pickles.
    """
    codec = current_codec()
    store = codec.store if codec is not None else None
    threshold = codec.threshold if codec is not None else DEFAULT_BLOB_THRESHOLD
    location = store.location() if store is not None else None
    inline = store if location is None else None
    data = encode_context(ctx)
    if inline is not None:
        data = inline_blobs(data, inline)
    request = msgspec.msgpack.encode(
        _Request(stage_ref, label, to_json_safe(opts), data, location, threshold)
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    async with await anyio.open_process(
        [sys.executable, "-m", "crucible_actors.executors.process"], env=env
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        await proc.stdin.send(request)
        await proc.stdin.aclose()
        chunks = [chunk async for chunk in proc.stdout]
        code = await proc.wait()
    data = b"".join(chunks)
    try:
        reply = msgspec.msgpack.decode(data, type=_Reply)
    except msgspec.DecodeError as exc:
        raise WorkerError(
            f"stage {label!r}: the worker process exited with status {code} "
            f"without a readable reply ({len(data)} bytes)"
        ) from exc
    if reply.ok:
        if inline is not None:
            return decode_context(externalize(reply.context, inline, threshold))
        return decode_context(reply.context)
    if reply.error_pickle is not None:
        try:
            error = pickle.loads(reply.error_pickle)
        except Exception:
            error = None
        if isinstance(error, BaseException):
            raise error
    raise WorkerError(f"stage {label!r} failed in its worker: {reply.error_type}: {reply.message}")


def _serve_one() -> int:
    from .._core import invoke_stage, load_stage_ref, stage_info
    from ._wire import open_worker_blob_store

    request = msgspec.msgpack.decode(sys.stdin.buffer.read(), type=_Request)
    try:
        stage_obj = load_stage_ref(request.stage)
        info = stage_info(stage_obj)
        opts = info.convert_options(request.label, request.options or {})
        store = open_worker_blob_store(request.blobs) if request.blobs else None
        with use_blob_store(store, threshold=request.blob_threshold):
            ctx = decode_context(request.context)
            result = anyio.run(invoke_stage, info, request.label, ctx, opts, backend="trio")
            reply = _Reply(True, context=encode_context(result))
    except Exception as exc:
        try:
            blob: bytes | None = pickle.dumps(exc)
        except Exception:
            blob = None
        reply = _Reply(False, error_type=type(exc).__name__, message=str(exc), error_pickle=blob)
    sys.stdout.buffer.write(msgspec.msgpack.encode(reply))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve_one())
