"""Runtime metrics through the OpenTelemetry metrics API (``crucible_actors.metrics``)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tests.helpers import registry_with
from trio.testing import MockClock

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef, metrics, open_runtime, stage
from crucible_actors._core import _metrics
from crucible_actors._core import _telemetry as tel

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with metrics.instrument(provider):
        yield reader
    provider.shutdown()


def points(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    """Return the data points of instrument ``name`` keyed by their sorted attributes."""
    data = reader.get_metrics_data()
    found: dict[tuple[tuple[str, Any], ...], Any] = {}
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        found[tuple(sorted(point.attributes.items()))] = point
    return found


def value(reader: InMemoryMetricReader, name: str, **attrs: str) -> Any:
    point = points(reader, name).get(tuple(sorted(attrs.items())))
    if point is None:
        return None
    return point.count if hasattr(point, "bucket_counts") else point.value


def registry(failures: int = 0) -> tuple[Registry, anyio.Event, anyio.Event]:
    calls = Counter[str]()
    entered, opened = anyio.Event(), anyio.Event()

    @stage("ok")
    async def ok(ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("score", 1.0)

    @stage("flaky")
    async def flaky(ctx: Context, opts: Any) -> Context:
        calls["flaky"] += 1
        if calls["flaky"] <= failures:
            raise RuntimeError(f"failure {calls['flaky']}")
        return ctx

    @stage("gate")
    async def gate(ctx: Context, opts: Any) -> Context:
        entered.set()
        await opened.wait()
        return ctx

    @stage("hang")
    async def hang(ctx: Context, opts: Any) -> Context:
        await anyio.sleep_forever()
        return ctx

    reg = registry_with(ok, flaky, gate, hang)
    return reg, entered, opened


def test_instrumenting_attaches_one_handler_and_closing_removes_it() -> None:
    # Other tests' apps may still hold weak handlers; compare with what was there.
    before, observers = set(tel.list_handlers()), set(_metrics._commit_observers)
    with metrics.instrument(MeterProvider()) as recorder:
        [added] = set(tel.list_handlers()) - before
        assert added == recorder.handler_id
        assert added.startswith("crucible_actors.metrics.")
        assert set(_metrics._commit_observers) == observers | {recorder}
    assert set(tel.list_handlers()) == before
    assert set(_metrics._commit_observers) == observers


@pytest.mark.slow
def test_a_fresh_process_listens_to_nothing() -> None:
    code = (
        "import crucible_actors, crucible_actors._core._metrics as m, crucible_actors.store\n"
        "from crucible_actors._core import _telemetry as tel\n"
        "assert not tel.list_handlers() and not m._commit_observers\n"
        "import sys; assert not [n for n in sys.modules if n.startswith('opentelemetry.sdk')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


async def test_stage_durations_attempts_and_restarts_are_recorded(
    reader: InMemoryMetricReader,
) -> None:
    reg, _, _ = registry(failures=2)
    exp = Experiment(
        id="m",
        pipeline=[StageDef(name="ok"), StageDef(name="flaky", restart="transient")],
    )
    await ca.run_async(exp, registry=reg)
    duration = "crucible.stage.duration"
    assert value(reader, duration, stage="ok", outcome="completed") == 1
    assert value(reader, duration, stage="flaky", outcome="failed") == 2
    assert value(reader, duration, stage="flaky", outcome="completed") == 1
    assert value(reader, "crucible.stage.attempts", stage="flaky") == 3
    assert value(reader, "crucible.stage.attempts", stage="ok") == 1
    assert value(reader, "crucible.stage.restarts", stage="flaky") == 2
    assert value(reader, "crucible.run.duration", status="completed") == 1
    assert value(reader, "crucible.runs.active") == 0
    point = points(reader, duration)[(("outcome", "completed"), ("stage", "ok"))]
    assert list(point.explicit_bounds) == list(metrics.DURATION_BUCKETS)


async def test_a_failed_run_is_recorded_with_its_status(reader: InMemoryMetricReader) -> None:
    reg, _, _ = registry(failures=5)
    exp = Experiment(id="m", pipeline=[StageDef(name="flaky")])
    with pytest.raises(ca.StageFailed):
        await ca.run_async(exp, registry=reg)
    assert value(reader, "crucible.run.duration", status="failed") == 1
    assert value(reader, "crucible.stage.restarts", stage="flaky") is None


async def test_runs_in_flight_go_up_and_down(reader: InMemoryMetricReader) -> None:
    reg, entered, opened = registry()
    exp = Experiment(id="m", pipeline=[StageDef(name="gate")])
    async with open_runtime(registry=reg) as rt:
        handle = await rt.submit(exp)
        await entered.wait()
        assert value(reader, "crucible.runs.active") == 1
        opened.set()
        await handle.result()
    assert value(reader, "crucible.runs.active") == 0


async def test_accept_counts_only_the_chosen_runs() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    reg, _, _ = registry()
    with metrics.instrument(provider, accept=lambda md: md["run_id"] == "mine"):
        await ca.run_async(Experiment(id="m", pipeline=[StageDef(name="ok")]), registry=reg)
        await ca.run_async(
            Experiment(id="m", pipeline=[StageDef(name="ok")]), registry=reg, run_id="mine"
        )
    assert value(reader, "crucible.stage.attempts", stage="ok") == 1
    assert value(reader, "crucible.run.duration", status="completed") == 1


async def test_closed_instrumentation_records_nothing_more() -> None:
    reader = InMemoryMetricReader()
    reg, _, _ = registry()
    exp = Experiment(id="m", pipeline=[StageDef(name="ok")])
    with metrics.instrument(MeterProvider(metric_readers=[reader])):
        await ca.run_async(exp, registry=reg)
    await ca.run_async(exp, registry=reg)
    assert value(reader, "crucible.stage.attempts", stage="ok") == 1


async def test_store_commits_are_timed_per_backend(
    reader: InMemoryMetricReader, tmp_path: Any
) -> None:
    reg, _, _ = registry()
    exp = Experiment(id="m", pipeline=[StageDef(name="ok")])
    await ca.run_async(exp, registry=reg, store=f"sqlite:///{tmp_path / 'runs.db'}")
    commits = points(reader, "crucible.store.commit.duration")
    assert list(commits) == [(("store", "sqlite"),)]
    point = commits[(("store", "sqlite"),)]
    assert point.count >= 2  # the run, its stage attempt and checkpoints
    assert 0 < point.sum < 10
    assert list(point.explicit_bounds) == list(_metrics.COMMIT_BUCKETS)


def test_a_failed_transaction_is_not_timed() -> None:
    reader = InMemoryMetricReader()
    with metrics.instrument(MeterProvider(metric_readers=[reader])):
        with pytest.raises(RuntimeError), metrics.observe_store_commit("sqlite:///x.db"):
            raise RuntimeError("rolled back")
        with metrics.observe_store_commit("postgresql://u@h/db"):
            pass
    assert list(points(reader, "crucible.store.commit.duration")) == [(("store", "postgresql"),)]


class TestVirtualTime:
    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        return ("trio", {"clock": MockClock(autojump_threshold=0)})

    async def test_timeouts_are_counted_and_timed(self, reader: InMemoryMetricReader) -> None:
        reg, _, _ = registry()
        exp = Experiment(
            id="m",
            pipeline=[StageDef(name="hang", timeout=5, restart="transient", max_restarts=1)],
        )
        with pytest.raises(ca.StageFailed):
            await ca.run_async(exp, registry=reg)
        assert value(reader, "crucible.stage.timeouts", stage="hang") == 2
        point = points(reader, "crucible.stage.duration")[
            (("outcome", "timeout"), ("stage", "hang"))
        ]
        assert point.count == 2
        assert point.sum == pytest.approx(10.0)  # two attempts of exactly 5 virtual seconds
        assert value(reader, "crucible.stage.restarts", stage="hang") == 1


async def test_open_runtime_meter_provider_counts_only_that_runtimes_runs() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    reg, _, _ = registry()
    exp = Experiment(id="m", pipeline=[StageDef(name="ok")])
    before = set(tel.list_handlers())
    try:
        async with open_runtime(registry=reg) as other:
            async with open_runtime(registry=reg, meter_provider=provider) as rt:
                for i in range(3):
                    await (await rt.submit(exp, run_id=f"ours-{i}")).wait()
                await (await other.submit(exp, run_id="theirs")).wait()
                assert value(reader, "crucible.stage.attempts", stage="ok") == 3
                done = value(reader, "crucible.stage.duration", stage="ok", outcome="completed")
                assert done == 3
            # Closed with its runtime: runs after that are not recorded.
            await (await other.submit(exp, run_id="later")).wait()
        assert value(reader, "crucible.stage.attempts", stage="ok") == 3
        assert set(tel.list_handlers()) == before
    finally:
        provider.shutdown()
