"""Supported test helpers for code that uses crucible-actors.

- :class:`MemoryStore`: the in-memory store (passes the same contract suite as SQLite
  and PostgreSQL), for ``open_runtime(store=MemoryStore())``;
- :class:`RecordingStage`: a stage that records every call and can fail on chosen
  attempts, for testing pipelines and restart policies;
- :func:`capture_spans`: an OpenTelemetry tracer provider with an in-memory exporter;
- :class:`TcpProxy`: a TCP proxy whose :meth:`~TcpProxy.cut` makes a server (PostgreSQL,
  say) unreachable to its clients, for testing what a runtime or service does in an outage.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._core import Stage
from .store import MemoryStore as MemoryStore

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

    from ._core import Context

__all__ = ["MemoryStore", "RecordingStage", "SpanCapture", "TcpProxy", "capture_spans"]


class RecordingStage(Stage):
    """A stage that records each call's options and attempt, then returns the Context.

    ``fail_on_calls`` lists 1-based call numbers that raise ``error`` instead (e.g.
    ``[1]`` to fail once and succeed on the retry). ``metric`` (default: the stage's
    name) is set to the number of calls so far on success.
    """

    description = "Records its calls (test helper)"

    def __init__(
        self,
        name: str = "recording",
        *,
        fail_on_calls: Sequence[int] = (),
        error: BaseException | None = None,
        metric: str | None = None,
    ) -> None:
        self.name = name
        self.fail_on_calls = set(fail_on_calls)
        self.error = error if error is not None else RuntimeError(f"{name} failed on purpose")
        self.metric = metric or name
        self.calls: list[dict[str, Any]] = []

    def describe(self) -> dict[str, Any]:
        """Accept any options."""
        return {
            "name": self.name,
            "description": self.description,
            "required": [],
            "optional": [],
            "types": {},
        }

    async def run(self, ctx: Context, opts: Any) -> Context:
        """Record the call; raise on the configured call numbers."""
        self.calls.append(
            {
                "options": dict(opts),
                "attempt": ctx.telemetry_context.get("attempt"),
                "run_id": ctx.run_id,
            }
        )
        if len(self.calls) in self.fail_on_calls:
            raise self.error
        return ctx.put_metric(self.metric, len(self.calls))


class SpanCapture:
    """What :func:`capture_spans` yields: the provider to pass and the finished spans."""

    def __init__(self, provider: TracerProvider, exporter: Any) -> None:
        self.provider = provider
        self._exporter = exporter

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Return the finished spans, optionally only those called ``name``."""
        found = list(self._exporter.get_finished_spans())
        return [s for s in found if name is None or s.name == name]


@contextmanager
def capture_spans() -> Iterator[SpanCapture]:
    """Yield a :class:`SpanCapture`; pass ``capture.provider`` as ``tracer_provider``."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield SpanCapture(provider, exporter)
    finally:
        provider.shutdown()


class TcpProxy:
    """A TCP proxy on a free port of 127.0.0.1 to ``target``, whose outages are real to clients.

    Point the client at ``127.0.0.1:{proxy.port}`` instead of the server. :meth:`cut`
    closes every proxied connection and the listening socket, so connecting gets
    ``Connection refused`` as from a stopped server, until :meth:`restore`. The proxy
    runs on daemon threads, not on an event loop, so it serves clients on any loop (or
    none) and keeps working while the code under test blocks its own loop.
    """

    def __init__(self, target: tuple[str, int], *, backlog: int = 256) -> None:
        self.target = target
        self.backlog = backlog
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port: int = self._listen(0)

    def restore(self) -> None:
        """Accept connections again after :meth:`cut` (on the same port); no-op if open."""
        if self._listener is None:
            self._listen(self.port)

    def cut(self) -> None:
        """Close every proxied connection and stop listening; no-op if already cut."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            # shutdown, not only close: on Linux a close leaves the socket listening while
            # the accepting thread is blocked in accept(), and the next client got through.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self) -> None:
        """Release the port and every connection (the same as :meth:`cut`)."""
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _listen(self, port: int) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(self.backlog)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        bound: int = listener.getsockname()[1]
        return bound

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                if self._listener is not listener:
                    return  # cut: the listener was closed
                continue  # a client that gave up before it was accepted
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()  # the server itself is down: refuse this client too
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile: this one goes too
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
