"""Stage attempts in another thread's loop or in a worker process (``StageDef.isolation``).

``isolation="thread"`` runs an async stage on a fresh event loop in a worker thread, so a
stage that blocks without awaiting cannot stall the runtime (and is abandoned on
timeout). ``isolation="process"`` runs the attempt in ``python -m
crucible_actors._core._worker``: the request (stage reference, options, Context bytes)
goes in on stdin as msgpack, the reply comes back on stdout; a cancelled or timed-out
attempt kills the process. The stage must be importable as ``"module:attr"`` in the
worker (it inherits the parent's ``sys.path``).
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import msgspec

from ._encoding import decode_context, encode_context, sanitize
from ._errors import CrucibleError

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["invoke_in_process", "invoke_in_thread"]


class _Request(msgspec.Struct, frozen=True):
    stage: str
    label: str
    options: Any
    context: bytes


class _Reply(msgspec.Struct, frozen=True):
    ok: bool
    context: bytes = b""
    error_type: str = ""
    message: str = ""
    error_pickle: bytes | None = None


class WorkerError(CrucibleError):
    """A worker process died or answered something unreadable."""


async def invoke_in_thread(stage_obj: Any, label: str, ctx: Context, opts: Any) -> Context:
    """Run an async stage on its own event loop in a worker thread."""
    from ._execute import invoke_stage
    from ._stage import stage_info

    info = stage_info(stage_obj)

    def run_in_thread() -> Context:
        return anyio.run(invoke_stage, info, label, ctx, opts, backend="trio")

    return await anyio.to_thread.run_sync(run_in_thread, abandon_on_cancel=True)


async def invoke_in_process(stage_ref: str, label: str, ctx: Context, opts: Any) -> Context:
    """Run one attempt in a new worker process; kill it if the attempt is cancelled.

    Raises:
        WorkerError: the worker died or its reply does not decode.
        Exception: the stage's own exception, re-created from the worker when it pickles.
    """
    request = msgspec.msgpack.encode(
        _Request(stage_ref, label, sanitize(opts), encode_context(ctx))
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    async with await anyio.open_process(
        [sys.executable, "-m", "crucible_actors._core._worker"], env=env
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
    from ._execute import invoke_stage
    from ._stage import load_stage_ref, stage_info

    request = msgspec.msgpack.decode(sys.stdin.buffer.read(), type=_Request)
    try:
        stage_obj = load_stage_ref(request.stage)
        info = stage_info(stage_obj)
        opts = info.convert_options(request.label, request.options or {})
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
