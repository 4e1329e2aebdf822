"""Supported test helpers for code that uses crucible-actors.

- :class:`MemoryStore`: the in-memory store (passes the same contract suite as SQLite
  and PostgreSQL), for ``open_runtime(store=MemoryStore())``;
- :class:`RecordingStage`: a stage that records every call and can fail on chosen
  attempts, for testing pipelines and restart policies;
- :func:`capture_spans`: an OpenTelemetry tracer provider with an in-memory exporter.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._core import Stage
from .store import MemoryStore as MemoryStore

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

    from ._core import Context

__all__ = ["MemoryStore", "RecordingStage", "SpanCapture", "capture_spans"]


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
