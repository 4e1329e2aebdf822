"""What runs on the Ray workers: one attempt (``_run_attempt``), as a task or on an actor.

Ray ships ``_task_for``'s closure and ``_StageActorImpl`` to its workers, which
import this module by reference: it must stay importable without ``ray`` and light.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any

import msgspec

from ..._core import (
    BlobInfo,
    check_digest,
    use_blob_store,
)
from ..._core import messages as msg
from .._pool_protocol import Attempt
from .._wire import WorkerContexts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from ..._core import Stage


_contexts: WorkerContexts | None = None
_loop: Any = None


def _on_worker_loop(awaitable: Any) -> Any:
    """Finish ``awaitable`` on this Ray worker's own event loop (made once, kept).

    One asyncio loop per worker process (anyio code runs on it): starting a loop per
    attempt would cost more than a no-op attempt, and an actor's async ``setup()`` may
    leave loop-bound state (a client session) that its attempts go on using.
    """
    global _loop
    import asyncio

    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()

    async def finish() -> Any:
        return await awaitable

    return _loop.run_until_complete(finish())


_attempt_decoder = msgspec.msgpack.Decoder(Attempt)

#: Blobs this worker process checked against their digest (each is checked once).
_verified: set[str] = set()


class _AttemptBlobs:
    """The blob store a Ray attempt sees: the blobs it was handed, plus the ones it makes.

    ``given`` maps digests to the object store's buffers (read-only shared memory);
    blobs the result needs that were not given are kept in ``made`` and go back to the
    driver beside the reply.
    """

    def __init__(self, given: dict[str, Any]) -> None:
        self.given = given
        self.made: dict[str, bytes] = {}

    def exists(self, digest: str) -> bool:
        return digest in self.given or digest in self.made

    def put(self, digest: str, chunks: Sequence[bytes | memoryview], size: int) -> bool:
        if self.exists(digest):
            return False
        self.made[digest] = b"".join(chunks)
        return True

    def open(self, digest: str) -> memoryview:
        from ..._core import BlobMissing

        if digest in self.made:
            return memoryview(self.made[digest])
        found = self.given.get(digest)
        if found is None:
            raise BlobMissing(digest, detail="the attempt was not handed this blob")
        view = memoryview(found).cast("B")
        if digest not in _verified:
            check_digest(digest, view, store="ray object store")
            _verified.add(digest)
        return view

    def location(self) -> str | None:
        return None

    def list(self) -> Iterator[BlobInfo]:
        for digest in (*self.given, *self.made):
            yield BlobInfo(digest, len(self.open(digest)), 0.0)

    def delete(self, digest: str) -> int:
        return 0

    def touch(self, digest: str) -> bool:
        return self.exists(digest)


def _run_attempt(stage_obj: Stage, request: bytes, digests: Sequence[str], buffers: Any) -> Any:
    """Run one attempt on a Ray worker; return ``kept`` + the encoded AttemptDone/AttemptFailed.

    ``buffers`` are the blobs named by ``digests`` (Ray resolved their ObjectRefs). When
    the result has large values of its own, returns ``(reply, {digest: bytes})``.
    """
    global _contexts
    from ..._core import checked_result, stage_info

    if _contexts is None:
        _contexts = WorkerContexts()
    attempt = _attempt_decoder.decode(request)
    run = attempt.command
    blobs = _AttemptBlobs(dict(zip(digests, buffers, strict=True)))
    try:
        info = stage_info(stage_obj)
        opts = info.convert_options(attempt.label, attempt.options or {})
        with use_blob_store(blobs, threshold=attempt.blob_threshold):
            ctx = _contexts.decode(run.context, attempt.telemetry)
            result: Any = stage_obj.run(ctx, opts)
            if inspect.isawaitable(result):
                result = _on_worker_loop(result)
            data, kept = _contexts.encode(ctx, checked_result(attempt.label, result))
        reply = (b"\x01" if kept else b"\x00") + msg.encode_message(
            msg.AttemptDone(run.generation, run.index, data)
        )
        return (reply, blobs.made) if blobs.made else reply
    except Exception as exc:
        return b"\x00" + msg.encode_message(_failure(run, exc))


def _task_for(stage_obj: Stage) -> Callable[..., Any]:
    """Return the function one stage's Ray tasks run (the stage object in its closure)."""

    def crucible_attempt(request: bytes, digests: list[str], *buffers: Any) -> Any:
        return _run_attempt(stage_obj, request, digests, buffers)

    return crucible_attempt


def _failure(run: msg.RunStage, exc: Exception) -> msg.AttemptFailed:
    import pickle

    try:
        blob: bytes | None = pickle.dumps(exc)
    except Exception:
        blob = None
    return msg.AttemptFailed(run.generation, run.index, type(exc).__name__, str(exc), blob)


class _StageActorImpl:
    """A Ray actor holding one set-up stage object (a stateful stage's pool member)."""

    def __init__(self, stage_obj: Stage) -> None:
        self.stage = stage_obj
        self.ready = False

    def pid(self) -> int:
        return os.getpid()

    def attempt(self, request: bytes, digests: list[str], *buffers: Any) -> Any:
        """Set up on first use, then run the attempt; ``retire + kept + reply``.

        Plain bytes (flags as prefix bytes): Ray passes bytes through without pickling.
        A result with large values of its own comes as ``(bytes, {digest: bytes})``.
        """
        if not self.ready:
            from .._lifecycle import run_setup

            try:
                _on_worker_loop(run_setup(self.stage))
            except Exception as exc:
                run = _attempt_decoder.decode(request).command
                return b"\x01\x00" + msg.encode_message(_failure(run, exc))
            self.ready = True
        answer = _run_attempt(self.stage, request, digests, buffers)
        if isinstance(answer, tuple):
            return (b"\x00" + answer[0], answer[1])
        return b"\x00" + answer

    def teardown(self) -> None:
        if self.ready:
            from .._lifecycle import run_teardown

            _on_worker_loop(run_teardown(self.stage))
            self.ready = False
