"""``/metrics``: the service's counters in the Prometheus text format (version 0.0.4).

Stage durations and restarts are collected from the runtime's telemetry events
(:mod:`crucible_actors.telemetry`), keeping only runs of this app's runtime; run counts
and the admission queue come from :meth:`Runtime.statistics` when scraped. The telemetry
handler holds the collector weakly and detaches itself once the app is gone, so apps
that are never shut down (mounted without a lifespan, tests) leave nothing behind.
"""

from __future__ import annotations

import bisect
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from .._core import _telemetry as tel

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._core._runtime import Runtime

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Histogram bucket bounds (seconds) for stage attempt durations.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

_OUTCOMES = {
    tel.STAGE_STOP: "completed",
    tel.STAGE_EXCEPTION: "failed",
    tel.STAGE_TIMEOUT: "timeout",
}
_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "interrupted")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class _Histogram:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(BUCKETS)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(BUCKETS, value)
        if i < len(self.buckets):
            self.buckets[i] += 1
        self.count += 1
        self.total += value


class Metrics:
    """Counters of one app; :meth:`attach` starts collecting for a runtime."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.durations: dict[tuple[str, str], _Histogram] = {}
        self.restarts: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self._handler_id: str | None = None

    def attach(self, runtime: Runtime) -> None:
        """Collect stage telemetry for the runs of ``runtime`` (replacing any earlier one)."""
        self.detach()
        self.runtime = runtime
        handler_id = f"crucible_actors.serve.metrics.{uuid.uuid4().hex}"
        ref = weakref.ref(self)

        def handler(
            name: str, measurements: Mapping[str, Any], metadata: Mapping[str, Any]
        ) -> None:
            metrics = ref()
            if metrics is None:
                tel.detach(handler_id)
                return
            metrics._on_event(name, measurements, metadata)

        tel.attach(handler_id, (*_OUTCOMES, tel.STAGE_RESTART), handler)
        self._handler_id = handler_id

    def detach(self) -> None:
        """Stop collecting telemetry."""
        if self._handler_id is not None:
            tel.detach(self._handler_id)
            self._handler_id = None

    def reject(self, reason: str) -> None:
        """Count a submission refused for ``reason`` (``queue_full``)."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def _on_event(
        self, name: str, measurements: Mapping[str, Any], metadata: Mapping[str, Any]
    ) -> None:
        rt = self.runtime
        if rt is None or rt.get(str(metadata.get("run_id"))) is None:
            return  # a run of another runtime in this process
        stage = str(metadata.get("stage", ""))
        if name == tel.STAGE_RESTART:
            self.restarts[stage] = self.restarts.get(stage, 0) + 1
            return
        duration = measurements.get("duration")
        if isinstance(duration, int | float):
            key = (stage, _OUTCOMES[name])
            hist = self.durations.get(key)
            if hist is None:
                hist = self.durations[key] = _Histogram()
            hist.observe(float(duration))

    def render(self) -> str:
        """Return the exposition text."""
        lines: list[str] = []
        rt = self.runtime
        stats = rt.statistics() if rt is not None else None
        counts = dict.fromkeys(_STATUSES, 0)
        if stats is not None:
            for status, n in stats.by_status.items():
                counts[status] = counts.get(status, 0) + n
            counts["pending"] = stats.waiting
            counts["running"] = stats.active
        lines += [
            "# HELP crucible_runs Runs by status: pending (waiting for admission) and running"
            " now; the terminal statuses count runs that ended in this process.",
            "# TYPE crucible_runs gauge",
        ]
        lines += [f'crucible_runs{{status="{_label(s)}"}} {n}' for s, n in counts.items()]
        lines += [
            "# HELP crucible_admission_queue_depth Submissions waiting for admission.",
            "# TYPE crucible_admission_queue_depth gauge",
            f"crucible_admission_queue_depth {stats.waiting if stats else 0}",
            "# HELP crucible_runs_submitted_total Runs admitted by this process.",
            "# TYPE crucible_runs_submitted_total counter",
            f"crucible_runs_submitted_total {stats.submitted if stats else 0}",
            "# HELP crucible_max_concurrent_runs The admission limit (0: none).",
            "# TYPE crucible_max_concurrent_runs gauge",
            f"crucible_max_concurrent_runs {(stats.max_concurrent_runs or 0) if stats else 0}",
            "# HELP crucible_stage_duration_seconds Duration of stage attempts by outcome.",
            "# TYPE crucible_stage_duration_seconds histogram",
        ]
        for (stage, outcome), hist in sorted(self.durations.items()):
            labels = f'stage="{_label(stage)}",outcome="{outcome}"'
            cumulative = 0
            for bound, n in zip(BUCKETS, hist.buckets, strict=True):
                cumulative += n
                lines.append(
                    f'crucible_stage_duration_seconds_bucket{{{labels},le="{bound}"}} {cumulative}'
                )
            lines.append(
                f'crucible_stage_duration_seconds_bucket{{{labels},le="+Inf"}} {hist.count}'
            )
            lines.append(f"crucible_stage_duration_seconds_sum{{{labels}}} {_num(hist.total)}")
            lines.append(f"crucible_stage_duration_seconds_count{{{labels}}} {hist.count}")
        lines += [
            "# HELP crucible_stage_restarts_total Stage restarts (a new attempt after a failure).",
            "# TYPE crucible_stage_restarts_total counter",
        ]
        lines += [
            f'crucible_stage_restarts_total{{stage="{_label(s)}"}} {n}'
            for s, n in sorted(self.restarts.items())
        ]
        lines += [
            "# HELP crucible_submissions_rejected_total Submissions refused by admission control.",
            "# TYPE crucible_submissions_rejected_total counter",
        ]
        lines += [
            f'crucible_submissions_rejected_total{{reason="{_label(r)}"}} {n}'
            for r, n in sorted(self.rejected.items())
        ]
        return "\n".join(lines) + "\n"
