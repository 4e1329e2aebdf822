"""``/metrics``: the app's OpenTelemetry metrics in the Prometheus text format.

Each app owns an SDK ``MeterProvider`` whose only reader is the OpenTelemetry Prometheus
exporter on a private ``prometheus_client`` registry, so two apps in one process never mix
their figures. On it:

- the runtime's instruments (:mod:`crucible_actors.metrics`: stage durations, attempts,
  restarts, timeouts, runs in flight, run durations), counting only runs of this app's
  runtime, and the commit latency of the process's stores;
- the service's own: ``crucible.runs`` by status, ``crucible.admission.queue.depth``,
  ``crucible.runs.submitted`` and ``crucible.max_concurrent_runs`` (observed from
  :meth:`Runtime.statistics` when scraped) and ``crucible.submissions.rejected``.

The telemetry handler holds the recorder weakly and detaches itself once the app is gone,
so apps that are never shut down (mounted without a lifespan, tests) leave nothing behind.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource

from .. import metrics as runtime_metrics
from .._core import MissingDependency

try:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
except ImportError as exc:  # pragma: no cover - the serve extra installs both
    raise MissingDependency(
        "opentelemetry-exporter-prometheus", feature="serve", extra="serve"
    ) from exc

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .._core import Runtime

__all__ = ["BUCKETS", "CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: Histogram bucket bounds (seconds) for stage attempt durations.
BUCKETS = runtime_metrics.DURATION_BUCKETS

_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "interrupted")


class Metrics:
    """The metrics of one app; :meth:`attach` starts collecting for a runtime."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        reader = PrometheusMetricReader(disable_target_info=True, registry=self.registry)
        self.provider = MeterProvider(
            metric_readers=[reader],
            resource=Resource.create({"service.name": "crucible-actors"}),
            shutdown_on_exit=False,
        )
        meter = self.provider.get_meter("crucible_actors.serve")
        self._rejected = meter.create_counter(
            "crucible.submissions.rejected",
            unit="{submission}",
            description="Submissions refused by admission control.",
        )
        meter.create_observable_gauge(
            "crucible.runs",
            [self._observe_runs],
            unit="{run}",
            description="Runs by status: pending (waiting for admission) and running now; the "
            "terminal statuses count runs that ended in this process.",
        )
        meter.create_observable_gauge(
            "crucible.admission.queue.depth",
            [lambda _: [Observation(self._stat("waiting"))]],
            unit="{submission}",
            description="Submissions waiting for admission.",
        )
        meter.create_observable_counter(
            "crucible.runs.submitted",
            [lambda _: [Observation(self._stat("submitted"))]],
            unit="{run}",
            description="Runs admitted by this process.",
        )
        meter.create_observable_gauge(
            "crucible.max_concurrent_runs",
            [lambda _: [Observation(self._stat("max_concurrent_runs"))]],
            unit="{run}",
            description="The admission limit (0: none).",
        )
        self._recorder: runtime_metrics.RuntimeMetrics | None = None

    def _stat(self, name: str) -> int:
        rt = self.runtime
        return int(getattr(rt.statistics(), name) or 0) if rt is not None else 0

    def _observe_runs(self, _: CallbackOptions) -> Iterable[Observation]:
        counts = dict.fromkeys(_STATUSES, 0)
        rt = self.runtime
        if rt is not None:
            stats = rt.statistics()
            for status, n in stats.by_status.items():
                counts[status] = counts.get(status, 0) + n
            counts["pending"] = stats.waiting
            counts["running"] = stats.active
        return [Observation(n, {"status": s}) for s, n in counts.items()]

    def attach(self, runtime: Runtime) -> None:
        """Collect the runtime metrics of ``runtime``'s runs (replacing any earlier one)."""
        self.detach()
        self.runtime = runtime
        rt_ref = weakref.ref(runtime)

        def ours(metadata: Mapping[str, Any]) -> bool:
            rt = rt_ref()
            return rt is not None and rt.get(str(metadata.get("run_id"))) is not None

        self._recorder = runtime_metrics.RuntimeMetrics(self.provider, accept=ours)
        self._recorder.attach(weak=True)

    def detach(self) -> None:
        """Stop collecting telemetry."""
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None

    def reject(self, reason: str) -> None:
        """Count a submission refused for ``reason`` (``queue_full``)."""
        self._rejected.add(1, {"reason": reason})

    def render(self) -> str:
        """Return the exposition text."""
        return generate_latest(self.registry).decode()
