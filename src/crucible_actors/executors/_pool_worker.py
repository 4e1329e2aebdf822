"""The loop of one warm pool worker: ``python -m crucible_actors.executors._pool_worker``.

The parent (:mod:`crucible_actors.executors._worker_pool`) writes frames on the worker's stdin
and reads frames from its stdout; each frame is a 4-byte big-endian length and a msgpack
body. An :class:`Attempt` names the stage (``"module:attr"``), its label and options and
carries the attempt's ``RunStage`` (the Context as msgpack bytes, its large values as
references into the blob store the attempt names, which the worker opens once and keeps);
the worker answers one
frame whose first byte is :data:`KEEP` or :data:`RETIRE` followed by an encoded
``AttemptDone`` / ``AttemptFailed`` (:mod:`crucible_actors.abc`). ``RETIRE`` means
the worker exits after this reply (its stage's ``setup()`` failed), so the parent never
hands it out again. A :class:`Shutdown` frame (or the end of stdin) tears down every
stateful stage this worker set up, then exits.

Stage objects are loaded once per worker and kept, so a stage with ``setup()`` keeps what
it loaded for every later attempt. The attempts run one at a time on one trio loop that
lives as long as the worker, so async state made in ``setup()`` stays usable. Whatever
the stage prints goes to stderr: stdout carries only frames.
"""

from __future__ import annotations

import inspect
import os
import pickle
import sys
from typing import Any

from .._core import messages as msg
from ._pool_protocol import HEADER, KEEP, RETIRE, Shutdown, frame, request_decoder

__all__ = ["main"]


async def _serve(in_fd: int, out_fd: int) -> None:
    import trio

    from .._core import checked_result, load_stage_ref, stage_info, use_blob_store
    from ._lifecycle import run_setup, run_teardown
    from ._wire import WorkerBlobStores, WorkerContexts

    # Blocking reads and writes on the loop's own thread: the worker does one thing at a
    # time, and a blocking read is cheaper than a trip through the loop's poller.
    buffer = bytearray()
    loaded: dict[str, tuple[Any, Any]] = {}
    set_up: list[Any] = []
    contexts = WorkerContexts()
    blob_stores = WorkerBlobStores()

    def read_exactly(n: int) -> bytes | None:
        while len(buffer) < n:
            chunk = os.read(in_fd, max(65536, n - len(buffer)))
            if not chunk:
                return None
            buffer.extend(chunk)
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    def write_all(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(out_fd, view) :]

    try:
        while True:
            header = read_exactly(HEADER.size)
            if header is None:
                break
            body = read_exactly(HEADER.unpack(header)[0])
            if body is None:
                break
            request = request_decoder.decode(body)
            if isinstance(request, Shutdown):
                break
            command = request.command
            flag, kept = KEEP, b"\x00"
            reply: msg.Message
            try:
                entry = loaded.get(request.stage)
                if entry is None:
                    stage_obj = load_stage_ref(request.stage)
                    entry = loaded[request.stage] = (stage_obj, stage_info(stage_obj))
                    if request.setup:
                        try:
                            await run_setup(stage_obj)
                        except BaseException:
                            flag = RETIRE
                            del loaded[request.stage]
                            raise
                        set_up.append(stage_obj)
                stage_obj, info = entry
                opts = info.convert_options(request.label, request.options or {})
                # Large values are mapped from the run's blob store as the Context
                # decodes, and large results written to it as it encodes.
                store = blob_stores.get(request.blobs)
                with use_blob_store(store, threshold=request.blob_threshold):
                    ctx = contexts.decode(command.context, request.telemetry)
                    result: Any = stage_obj.run(ctx, opts)
                    if inspect.isawaitable(result):
                        result = await result
                    result = checked_result(request.label, result)
                    data, same = contexts.encode(ctx, result)
                kept = b"\x01" if same else b"\x00"
                reply = msg.AttemptDone(command.generation, command.index, data)
            except Exception as exc:
                try:
                    blob: bytes | None = pickle.dumps(exc)
                except Exception:
                    blob = None
                reply = msg.AttemptFailed(
                    command.generation,
                    command.index,
                    type(exc).__name__,
                    str(exc),
                    error_pickle=blob,
                )
            write_all(frame(flag + kept + msg.encode_message(reply)))
            if flag == RETIRE:
                return
    finally:
        with trio.CancelScope(shield=True):
            for stage_obj in reversed(set_up):
                await run_teardown(stage_obj)


def main() -> int:
    """Serve attempts on stdin/stdout until told to stop; return the exit status."""
    import trio

    # Frames go out on a private copy of stdout; the stage's own prints (fd 1 and
    # sys.stdout) go to stderr so they can never corrupt a frame.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    in_fd = os.dup(0)
    trio.run(_serve, in_fd, out_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
