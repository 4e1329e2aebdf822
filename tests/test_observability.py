"""OpenTelemetry spans and the telemetry event API."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef, open_runtime, stage, telemetry

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def flaky_registry(failures: int) -> Registry:
    calls = Counter[str]()

    @stage("flaky")
    async def flaky(ctx: Context, opts: Any) -> Context:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise RuntimeError(f"failure {calls['n']}")
        return ctx

    @stage("hang")
    async def hang(ctx: Context, opts: Any) -> Context:
        await anyio.sleep_forever()
        return ctx

    return registry_with(flaky, hang)


async def test_run_stage_and_attempt_spans_with_restart_event(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    reg = flaky_registry(1)
    async with open_runtime(registry=reg, tracer_provider=provider) as rt:
        h = await rt.submit(
            Experiment(id="e", pipeline=[StageDef(name="flaky", restart="transient")]),
            run_id="r1",
        )
        await h.result()
    by_name: dict[str, list[Any]] = {}
    for s in exporter.get_finished_spans():
        by_name.setdefault(s.name, []).append(s)
    run_span = by_name["crucible.run"][0]
    stage_span = by_name["crucible.stage"][0]
    attempts = sorted(by_name["crucible.attempt"], key=lambda s: s.attributes["crucible.attempt"])
    assert run_span.attributes["crucible.run_id"] == "r1"
    assert run_span.attributes["crucible.experiment_id"] == "e"
    assert stage_span.parent.span_id == run_span.context.span_id
    assert [a.parent.span_id for a in attempts] == [stage_span.context.span_id] * 2
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert "failure 1" in (attempts[0].status.description or "")
    assert attempts[1].status.status_code is StatusCode.OK
    assert [e.name for e in stage_span.events] == ["stage.restart"]
    assert stage_span.attributes["crucible.stage"] == "flaky"


async def test_run_span_is_a_child_of_the_callers_current_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    reg = flaky_registry(0)
    tracer = provider.get_tracer("host")
    async with open_runtime(registry=reg, tracer_provider=provider) as rt:
        with tracer.start_as_current_span("http.request") as parent:
            h = await rt.submit(Experiment(id="e", pipeline=[StageDef(name="flaky")]))
        await h.result()
    run_span = next(s for s in exporter.get_finished_spans() if s.name == "crucible.run")
    assert run_span.parent.span_id == parent.get_span_context().span_id


async def test_exhausted_stage_marks_spans_as_errors(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    reg = flaky_registry(10)
    async with open_runtime(registry=reg, tracer_provider=provider) as rt:
        h = await rt.submit(
            Experiment(
                id="e", pipeline=[StageDef(name="flaky", restart="transient", max_restarts=1)]
            )
        )
        await h.wait()
    finished = exporter.get_finished_spans()
    stage_span = next(s for s in finished if s.name == "crucible.stage")
    run_span = next(s for s in finished if s.name == "crucible.run")
    assert [e.name for e in stage_span.events] == ["stage.restart", "stage.exhausted"]
    assert stage_span.status.status_code is StatusCode.ERROR
    assert run_span.status.status_code is StatusCode.ERROR


async def test_cancelled_attempt_is_recorded_in_its_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    reg = flaky_registry(0)
    async with open_runtime(registry=reg, tracer_provider=provider) as rt:
        h = await rt.submit(Experiment(id="e", pipeline=[StageDef(name="hang")]))
        while not h.attempts:
            await anyio.lowlevel.checkpoint()
        await h.cancel()
    attempt = next(s for s in exporter.get_finished_spans() if s.name == "crucible.attempt")
    assert [e.name for e in attempt.events] == ["stage.cancelled"]
    assert attempt.status.status_code is StatusCode.ERROR


async def test_no_tracer_provider_means_no_opentelemetry_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import crucible_actors._core._spans as tracing

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("OpenTelemetry was called with tracing off")

    monkeypatch.setattr(tracing.SpanRecorder, "start_run", boom)
    monkeypatch.setattr(tracing.trace, "set_span_in_context", boom)
    ctx = await ca.run_async(
        Experiment(id="e", pipeline=[StageDef(name="flaky")]), registry=flaky_registry(0)
    )
    assert ctx.completed_stages() == ["flaky"]


async def test_telemetry_handlers_receive_run_and_stage_events() -> None:
    seen: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = []
    telemetry.attach("t1", telemetry.EVENTS, lambda n, m, md: seen.append((n, m, md)))
    try:
        await ca.run_async(
            Experiment(id="e", pipeline=[StageDef(name="flaky", restart="transient")]),
            registry=flaky_registry(1),
            run_id="r9",
        )
    finally:
        assert telemetry.detach("t1") is True
    names = [n for n, _, _ in seen]
    assert names == [
        "crucible.pipeline.run.start",
        "crucible.pipeline.stage.start",
        "crucible.pipeline.stage.exception",
        "crucible.pipeline.stage.restart",
        "crucible.pipeline.stage.start",
        "crucible.pipeline.stage.stop",
        "crucible.pipeline.run.stop",
    ]
    stop = seen[5]
    assert stop[2]["stage"] == "flaky"
    assert stop[2]["attempt"] == 2
    assert stop[2]["run_id"] == "r9"
    assert stop[2]["experiment_id"] == "e"
    assert stop[1]["duration"] >= 0
    assert isinstance(stop[1]["system_time"], int)


async def test_raising_telemetry_handler_is_detached_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad(*_: Any) -> None:
        raise ValueError("handler bug")

    telemetry.attach("bad", ["crucible.pipeline.stage.start"], bad)
    ctx = await ca.run_async(
        Experiment(id="e", pipeline=[StageDef(name="flaky")]), registry=flaky_registry(0)
    )
    assert ctx.completed_stages() == ["flaky"]
    assert "bad" not in telemetry.list_handlers()
    assert "telemetry handler 'bad' raised" in caplog.text


def test_attaching_a_taken_handler_id_is_an_error() -> None:
    telemetry.attach("dup", ["x"], lambda *a: None)
    try:
        with pytest.raises(ValueError, match="already attached"):
            telemetry.attach("dup", ["x"], lambda *a: None)
    finally:
        telemetry.detach("dup")


async def test_spans_name_the_instrumentation_scope_with_its_version(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    from importlib.metadata import version

    provider, exporter = spans
    async with open_runtime(registry=flaky_registry(0), tracer_provider=provider) as rt:
        handle = await rt.submit(Experiment(id="e", pipeline=[StageDef(name="flaky")]))
        await handle.result()
    scopes = {
        (s.instrumentation_scope.name, s.instrumentation_scope.version)
        for s in exporter.get_finished_spans()
    }
    assert scopes == {("crucible_actors", version("crucible-actors"))}
