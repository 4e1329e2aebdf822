"""The ``opentelemetry-instrument`` hook: runtime metrics on the distro's meter provider.

Installed with the ``otel`` extra, which also brings the OTLP/HTTP exporter and the
OpenTelemetry distro. ``opentelemetry-instrument crucible-actors run experiment.toml``
configures global tracer and meter providers from the ``OTEL_*`` variables, then loads the
instrumentors registered under the ``opentelemetry_instrumentor`` entry point, ours among
them: it calls :func:`crucible_actors.metrics.instrument` on the global meter provider.
Spans need nothing more: the runtime uses a globally installed SDK tracer provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._core import MissingDependency
from .metrics import RuntimeMetrics, instrument

try:
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )
except ImportError as exc:  # pragma: no cover - the otel extra installs it
    raise MissingDependency("opentelemetry-instrumentation", feature="otel", extra="otel") from exc

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["CrucibleActorsInstrumentor"]


class CrucibleActorsInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instrument crucible-actors' runtime metrics (an OpenTelemetry instrumentor).

    ``CrucibleActorsInstrumentor().instrument(meter_provider=...)`` does by hand what
    ``opentelemetry-instrument`` does on start (with the global provider).
    """

    _metrics: RuntimeMetrics | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """Return the instrumented packages: none beyond crucible-actors itself."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        self._metrics = instrument(kwargs.get("meter_provider"))

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
