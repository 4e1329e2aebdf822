"""Server-sent events: a run's RunEvents as ``text/event-stream``, resumable by sequence.

Each event is written as ``id: <seq>``, ``event: <type>``, ``data: <RunEvent JSON>``; the
stream ends after the run's terminal event. A client that reconnects with
``Last-Event-ID`` (or ``?after=``) gets only the events after that sequence number.

For a run this process executes, events come from its handle, which keeps them all, so a
late subscriber replays from the first; a run this process resumed after another one died
continues that process's numbering (:func:`resumed_events`). For any other run they are
rebuilt from the store (:func:`~._views.synthesize_events`), and a run still going in
another process is polled until it ends. :class:`EventStream` writes the chunks, adds a
comment line as a keep-alive while nothing happens, and stops when the client goes away.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from ._views import TERMINAL

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from starlette.types import Receive, Scope, Send

    from .._core import RunHandle

__all__ = ["EventStream", "format_event", "live_events", "resumed_events"]

_encode = msgspec.json.Encoder().encode


def format_event(seq: int, type_: str, payload: Any) -> bytes:
    """Return one SSE message; ``payload`` is a RunEvent (Struct or dict)."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, type_.encode(), _encode(payload))


async def live_events(handle: RunHandle, after: int) -> AsyncIterator[bytes]:
    """Yield the handle's events with ``seq > after`` until the run has ended."""
    async for event in handle.events():
        if event.seq > after:
            yield format_event(event.seq, event.type, event)


async def resumed_events(
    handle: RunHandle, history: list[dict[str, Any]], after: int
) -> AsyncIterator[bytes]:
    """Yield a resumed run's events numbered as one stream across its processes.

    ``history`` is the run's start and the stages finished before the resume, rebuilt from
    the store (numbered from 1, as the process that ran them numbered them); the handle's
    own events follow, without its second ``run_started``, renumbered after ``history``.
    A client that followed the run before its process died reconnects with
    ``Last-Event-ID`` and gets what came next, the stage that was in flight restarting.
    """
    for earlier in history:
        if earlier["seq"] > after:
            yield format_event(earlier["seq"], earlier["type"], earlier)
    offset = len(history) - 1
    async for event in handle.events():
        if event.type == "run_started":
            continue
        seq = event.seq + offset
        if seq > after:
            yield format_event(seq, event.type, msgspec.structs.replace(event, seq=seq))


async def stored_events(
    fetch: Callable[[], Any], after: int, poll_interval: float
) -> AsyncIterator[bytes]:
    """Yield rebuilt events with ``seq > after``; poll ``fetch`` until the run has ended.

    ``fetch()`` returns ``(status, events)``: the stored status and the events so far.
    """
    last = after
    while True:
        status, events = await fetch()
        for event in events:
            if event["seq"] > last:
                last = event["seq"]
                yield format_event(event["seq"], event["type"], event)
        if status in TERMINAL:
            return
        await anyio.sleep(poll_interval)


class EventStream:
    """An ASGI response streaming SSE chunks from ``source`` with keep-alive comments."""

    def __init__(
        self,
        source: AsyncIterator[bytes],
        *,
        keepalive: float = 15.0,
        closing: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.source = source
        self.keepalive = keepalive
        #: Returns when the server stops: the stream then ends (cleanly) before the run.
        self.closing = closing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        lock = anyio.Lock()
        gone = False

        async def write(chunk: bytes) -> None:
            nonlocal gone
            async with lock:
                try:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except OSError:  # ASGI 2.4: the client went away
                    gone = True
                    tg.cancel_scope.cancel()

        async def pump() -> None:
            async with aclosing(self.source) as events:  # type: ignore[type-var]
                async for chunk in events:
                    await write(chunk)
            tg.cancel_scope.cancel()

        async def beat() -> None:
            while True:
                await anyio.sleep(self.keepalive)
                await write(b": keep-alive\n\n")

        async def watch() -> None:
            nonlocal gone
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone = True
                    tg.cancel_scope.cancel()
                    return

        async def close_on_stop(closing: Callable[[], Awaitable[None]]) -> None:
            await closing()
            tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            tg.start_soon(beat)
            tg.start_soon(watch)
            if self.closing is not None:
                tg.start_soon(close_on_stop, self.closing)
        if not gone:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
