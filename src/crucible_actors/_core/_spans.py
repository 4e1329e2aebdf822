"""OpenTelemetry spans for runs, stages and attempts — the only module touching OpenTelemetry.

A :class:`SpanRecorder` exists only when tracing is on (a tracer provider was given to
the runtime, or an SDK provider is installed globally); otherwise the runtime holds
``None`` and its hot path never calls the OpenTelemetry API.

Spans: ``crucible.run`` (child of the submitter's current span), ``crucible.stage`` per
stage, ``crucible.attempt`` per attempt; span events ``stage.restart``, ``stage.timeout``,
``stage.cancelled``, ``stage.exhausted``. Failures, timeouts and cancellations set ERROR
status with a description explicitly (the SDK does not record cancellations).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer, TracerProvider

__all__ = ["SpanRecorder", "capture_parent", "make_recorder"]

RUN_SPAN = "crucible.run"
STAGE_SPAN = "crucible.stage"
ATTEMPT_SPAN = "crucible.attempt"


def make_recorder(tracer_provider: TracerProvider | None) -> SpanRecorder | None:
    """Return a recorder for ``tracer_provider``, the global SDK provider, or ``None``."""
    provider = tracer_provider
    if provider is None:
        glob = trace.get_tracer_provider()
        # The API's default is a proxy/no-op provider: that means "not configured".
        if type(glob).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
            return None
        provider = glob
    return SpanRecorder(provider.get_tracer("crucible_actors", package_version()))


def package_version() -> str | None:
    """Return the installed crucible-actors version (the tracer's instrumentation scope)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crucible-actors")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return None


def capture_parent() -> Any:
    """Return the caller's current OpenTelemetry context (to parent a run span)."""
    return otel_context.get_current()


class SpanRecorder:
    """Creates and finishes the runtime's spans."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def start_run(self, parent: Any, run_id: str, experiment_id: str) -> Span:
        """Start the ``crucible.run`` span under ``parent`` (an OTel context)."""
        return self._tracer.start_span(
            RUN_SPAN,
            context=parent,
            attributes={"crucible.run_id": run_id, "crucible.experiment_id": experiment_id},
        )

    def start_stage(self, run_span: Span, run_id: str, experiment_id: str, stage: str) -> Span:
        """Start a ``crucible.stage`` span under the run span."""
        return self._tracer.start_span(
            STAGE_SPAN,
            context=trace.set_span_in_context(run_span),
            attributes={
                "crucible.run_id": run_id,
                "crucible.experiment_id": experiment_id,
                "crucible.stage": stage,
            },
        )

    def start_attempt(
        self, stage_span: Span, run_id: str, experiment_id: str, stage: str, attempt: int
    ) -> Span:
        """Start a ``crucible.attempt`` span under the stage span."""
        return self._tracer.start_span(
            ATTEMPT_SPAN,
            context=trace.set_span_in_context(stage_span),
            attributes={
                "crucible.run_id": run_id,
                "crucible.experiment_id": experiment_id,
                "crucible.stage": stage,
                "crucible.attempt": attempt,
            },
        )

    @staticmethod
    def event(span: Span, name: str, attributes: dict[str, Any]) -> None:
        """Add span event ``name`` (e.g. ``stage.restart``)."""
        span.add_event(name, attributes=attributes)

    @staticmethod
    def fail(span: Span, description: str, exc: BaseException | None = None) -> None:
        """Mark ``span`` as failed with ``description`` (and record ``exc``)."""
        if exc is not None:
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, description))

    @staticmethod
    def attributes(span: Span, attributes: dict[str, Any]) -> None:
        """Set ``attributes`` on ``span`` (e.g. ``crucible.cache_hit``)."""
        span.set_attributes(attributes)

    @staticmethod
    def ok(span: Span) -> None:
        """Mark ``span`` as successful."""
        span.set_status(Status(StatusCode.OK))

    @staticmethod
    def end(span: Span) -> None:
        """End ``span``."""
        span.end()
