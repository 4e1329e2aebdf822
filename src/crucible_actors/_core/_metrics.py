"""Runtime metrics through the OpenTelemetry metrics API, built on the telemetry events.

Public as :mod:`crucible_actors.metrics`; :func:`~crucible_actors.open_runtime` takes
``meter_provider=`` to record the runs of one runtime only.

:func:`instrument` attaches a handler to the runtime's telemetry events
(:mod:`crucible_actors.telemetry`) that records OpenTelemetry instruments on a meter of the
given (or the global) ``MeterProvider``. Nothing is recorded, and the run loop builds no
event payloads, until something is instrumented: without it the cost is the runtime's
one dict lookup per event. The instruments (meter ``crucible_actors``):

========================================  ===============  =====================================
instrument                                kind             attributes
========================================  ===============  =====================================
``crucible.stage.duration`` (s)           histogram        ``stage``, ``outcome``: ``completed``,
                                                           ``failed`` or ``timeout``
``crucible.stage.attempts``               counter (*)      ``stage`` (one per attempt started)
``crucible.stage.restarts``               counter (*)      ``stage``
``crucible.stage.timeouts``               counter (*)      ``stage``
``crucible.runs.active``                  up-down (*)      (runs in flight)
``crucible.run.duration`` (s)             histogram        ``status``
``crucible.store.commit.duration`` (s)    histogram        ``store`` (``sqlite``, ``postgresql``)
========================================  ===============  =====================================

(*) observable: counted in plain dicts and read when the SDK collects, so the hot path
makes one OpenTelemetry call per stage attempt (the duration histogram).

In Prometheus these read ``crucible_stage_duration_seconds``, ``crucible_stage_restarts_total``
and so on. Attributes stay low-cardinality on purpose: no run ids, no experiment ids.

The store commit latency comes from the store's writer, which calls
:func:`observe_store_commit` around each transaction; it costs one truthiness check while
nothing is instrumented.

Under ``opentelemetry-instrument`` (extra ``otel``) the ``crucible_actors`` instrumentor
(:class:`crucible_actors.otel.CrucibleActorsInstrumentor`) calls :func:`instrument` with the
global provider that the OTel distro configured from the ``OTEL_*`` variables.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Observation

from . import _telemetry as tel
from ._spans import package_version

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from opentelemetry.metrics import MeterProvider

__all__ = [
    "DURATION_BUCKETS",
    "METER_NAME",
    "RuntimeMetrics",
    "instrument",
    "observe_store_commit",
]

METER_NAME: Final = "crucible_actors"
#: Histogram bucket bounds (seconds), advised to the SDK for the duration histograms.
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
#: Commit latencies are mostly milliseconds (an fsync), so the buckets start lower.
COMMIT_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

_OUTCOMES: Final = {
    tel.STAGE_STOP: "completed",
    tel.STAGE_EXCEPTION: "failed",
    tel.STAGE_TIMEOUT: "timeout",
}

# The RuntimeMetrics currently attached: the store writer reports commits to each.
_commit_observers: weakref.WeakSet[RuntimeMetrics] = weakref.WeakSet()


class RuntimeMetrics:
    """The runtime's instruments on one meter, fed by :meth:`on_event`.

    Made by :func:`instrument`; build one directly only to feed it from a handler of your
    own (e.g. one holding it weakly). ``accept(metadata)`` picks the runs counted (default:
    all runs in the process).
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        accept: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> None:
        provider = (
            meter_provider if meter_provider is not None else otel_metrics.get_meter_provider()
        )
        meter = provider.get_meter(METER_NAME, package_version())
        self.accept = accept
        self.handler_id: str | None = None
        # Runs counted into ``crucible.runs.active``: only their stop may count them out.
        self._active: set[str] = set()
        self.stage_duration = meter.create_histogram(
            "crucible.stage.duration",
            unit="s",
            description="Duration of stage attempts by outcome.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        # Counted in plain dicts and observed when collected: an SDK counter's add() costs
        # several microseconds per call, a dict increment a few dozen nanoseconds.
        self._counts: dict[str, dict[str, int]] = {
            tel.STAGE_START: {},
            tel.STAGE_RESTART: {},
            tel.STAGE_TIMEOUT: {},
        }
        for event, name, unit, description in (
            (
                tel.STAGE_START,
                "crucible.stage.attempts",
                "{attempt}",
                "Stage attempts started (a first attempt or a restart).",
            ),
            (
                tel.STAGE_RESTART,
                "crucible.stage.restarts",
                "{restart}",
                "Stage restarts (a new attempt after a failure).",
            ),
            (
                tel.STAGE_TIMEOUT,
                "crucible.stage.timeouts",
                "{timeout}",
                "Stage attempts abandoned at their timeout.",
            ),
        ):
            meter.create_observable_counter(
                name,
                [functools.partial(_observe_counts, self._counts[event])],
                unit=unit,
                description=description,
            )
        # Observed when collected rather than counted per run: two measurements fewer per
        # run on the hot path, and exact. After close() the count stays where it was, so a
        # final export still reports it.
        self.runs_active = meter.create_observable_up_down_counter(
            "crucible.runs.active",
            [self._observe_active],
            unit="{run}",
            description="Runs in flight: started and not yet ended.",
        )
        self.run_duration = meter.create_histogram(
            "crucible.run.duration",
            unit="s",
            description="Duration of runs by final status.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.commit_duration = meter.create_histogram(
            "crucible.store.commit.duration",
            unit="s",
            description="Duration of store write transactions, commit included.",
            explicit_bucket_boundaries_advisory=list(COMMIT_BUCKETS),
        )

    def on_event(
        self, name: str, measurements: Mapping[str, Any], metadata: Mapping[str, Any]
    ) -> None:
        """Record one telemetry event (a :data:`crucible_actors.telemetry` handler)."""
        run_id = str(metadata.get("run_id"))
        if name == tel.RUN_START:
            if self.accept is None or self.accept(metadata):
                self._active.add(run_id)
            return
        if name in (tel.RUN_STOP, tel.RUN_EXCEPTION):
            if run_id in self._active:
                self._active.discard(run_id)
                status = "completed" if name == tel.RUN_STOP else str(metadata.get("status"))
                duration = measurements.get("duration")
                if isinstance(duration, int | float):
                    self.run_duration.record(float(duration), {"status": status})
            return
        if self.accept is not None and run_id not in self._active and not self.accept(metadata):
            return
        stage = str(metadata.get("stage", ""))
        counts = self._counts.get(name)
        if counts is not None:
            counts[stage] = counts.get(stage, 0) + 1
        if name in _OUTCOMES:
            duration = measurements.get("duration")
            if isinstance(duration, int | float):
                self.stage_duration.record(
                    float(duration), {"stage": stage, "outcome": _OUTCOMES[name]}
                )

    def _observe_active(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(len(self._active))]

    def attach(self, *, weak: bool = False) -> RuntimeMetrics:
        """Start recording: attach :meth:`on_event` to every runtime event; return self.

        With ``weak`` the telemetry handler holds this object weakly and detaches itself
        once it is gone (for owners that may never call :meth:`close`, like an app).
        """
        if self.handler_id is not None:
            return self
        handler_id = f"crucible_actors.metrics.{uuid.uuid4().hex}"
        handler: tel.Handler = self.on_event
        if weak:
            ref = weakref.ref(self)

            def handler(
                name: str, measurements: Mapping[str, Any], metadata: Mapping[str, Any]
            ) -> None:
                target = ref()
                if target is None:
                    tel.detach(handler_id)
                    return
                target.on_event(name, measurements, metadata)

        tel.attach(handler_id, tel.EVENTS, handler)
        self.handler_id = handler_id
        _commit_observers.add(self)
        return self

    def close(self) -> None:
        """Stop recording (the instruments keep what they recorded)."""
        if self.handler_id is not None:
            tel.detach(self.handler_id)
            self.handler_id = None
        _commit_observers.discard(self)

    def __enter__(self) -> RuntimeMetrics:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _observe_counts(counts: dict[str, int], _: CallbackOptions) -> list[Observation]:
    return [Observation(n, {"stage": stage}) for stage, n in list(counts.items())]


def instrument(
    meter_provider: MeterProvider | None = None,
    *,
    accept: Callable[[Mapping[str, Any]], bool] | None = None,
) -> RuntimeMetrics:
    """Record the runtime's metrics on ``meter_provider`` (default: the global provider).

    Counts every run in the process (or those ``accept(metadata)`` approves, given the
    telemetry metadata of the run's start). Returns the attached :class:`RuntimeMetrics`;
    ``close()`` it, or use it as a context manager, to stop. Each call attaches a new one.

    Example::

        from opentelemetry.sdk.metrics import MeterProvider
        provider = MeterProvider(metric_readers=[reader])
        with crucible_actors.metrics.instrument(provider):
            crucible_actors.run(experiment)
    """
    return RuntimeMetrics(meter_provider, accept=accept).attach()


@contextlib.contextmanager
def observe_store_commit(store: str) -> Iterator[None]:
    """Time the store transaction run in the block as ``crucible.store.commit.duration``.

    Called by the store writer around each write transaction (in its worker thread);
    ``store`` is the store's URL, of which only the scheme is recorded. Failed
    transactions are not recorded. Costs one list check while nothing is instrumented.
    """
    if not _commit_observers:
        yield
        return
    # Wall-clock latency, measured in the writer's worker thread (no event loop there).
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    attrs = {"store": store.partition(":")[0] or store}
    for observer in list(_commit_observers):
        observer.commit_duration.record(elapsed, attrs)
