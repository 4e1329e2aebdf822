"""Tests for the decision trace API (``crucible_actors.trace``)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import msgspec
import pytest
from tests.helpers import registry_with

import crucible_actors
from crucible_actors import Context, Experiment, StageDef, stage
from crucible_actors import trace as tr
from crucible_actors._core._trace_chain import TraceChain, TraceEvent

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _ctx() -> Context:
    exp = Experiment(id="exp-1", name="Trace demo", pipeline=[StageDef(name="noop")])
    return Context.new(exp, run_id="run-1")


def _traced() -> Context:
    return tr.init_trace(_ctx(), "Trace demo", now=T0)


# --- building -----------------------------------------------------------------------------


def test_init_trace_starts_an_empty_chain_recording_the_run() -> None:
    ctx = _traced()
    assert ctx.trace is not None
    assert ctx.trace.name == "Trace demo"
    assert ctx.trace.events == []
    assert ctx.trace.created_at == T0
    assert ctx.trace.metadata == {"experiment_id": "exp-1", "run_id": "run-1"}
    assert re.fullmatch(r"[0-9a-f]{32}", ctx.trace.id)


def test_emit_event_records_every_field_and_links_to_the_previous_event() -> None:
    ctx = tr.emit_event(
        _traced(),
        "hypothesis_formed",
        "Use ensemble for improved accuracy",
        "Multiple models can provide better consensus",
        alternatives=["Single model", "Sequential cascade"],
        confidence=0.85,
        metadata={"models": ("a", "b")},
        code_section="pipeline.py:12",
        spec_reference="SPEC-4",
        now=T0,
    )
    ctx = tr.emit_event(ctx, "pattern_applied", "Retry", "Flaky backend", now=T0)
    assert ctx.trace is not None
    first, second = ctx.trace.events
    assert re.fullmatch(r"[0-9a-f]{32}", first.id)
    assert first.timestamp == T0
    assert first.type == "hypothesis_formed"
    assert first.decision == "Use ensemble for improved accuracy"
    assert first.reasoning == "Multiple models can provide better consensus"
    assert first.alternatives == ["Single model", "Sequential cascade"]
    assert first.confidence == 0.85
    assert first.code_section == "pipeline.py:12"
    assert first.spec_reference == "SPEC-4"
    assert first.metadata == {"models": ["a", "b"]}
    assert first.parent_id is None
    assert first.experiment_id == "exp-1"
    assert first.stage_id is None
    assert second.parent_id == first.id
    assert second.alternatives == []
    assert second.confidence == 1.0


def test_emit_event_keeps_the_original_context_untouched() -> None:
    before = _traced()
    after = tr.emit_event(before, "decision_made", "d", "r")
    assert tr.event_count(before) == 0
    assert tr.event_count(after) == 1


def test_emit_event_takes_the_stage_from_the_running_stage() -> None:
    ctx = msgspec.structs.replace(_traced(), telemetry_context={"stage": "bench"})
    ctx = tr.emit_decision(ctx, "Use Welch", "Unequal variances", ["Student"], 0.9)
    event = tr.last_event(ctx)
    assert event is not None
    assert event.stage_id == "bench"


@pytest.mark.parametrize(
    "emit",
    [
        lambda c: tr.emit_event(c, "decision_made", "d", "r"),
        lambda c: tr.emit_stage_start(c, "s", {"a": 1}),
        lambda c: tr.emit_stage_complete(c, "s", {"n": 1}),
        lambda c: tr.emit_stage_failed(c, "s", RuntimeError("boom")),
        lambda c: tr.emit_decision(c, "d", "r", ["x"], 0.5),
    ],
    ids=["event", "start", "complete", "failed", "decision"],
)
def test_every_emit_returns_the_context_unchanged_without_a_trace(emit: object) -> None:
    ctx = _ctx()
    assert emit(ctx) is ctx  # type: ignore[operator]


def test_unknown_event_type_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^unknown trace event type 'decided'; expected one of: "):
        tr.emit_event(_traced(), "decided", "d", "r")


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), True])
def test_confidence_outside_zero_to_one_is_a_value_error_naming_it(bad: float) -> None:
    with pytest.raises(ValueError, match=r"^confidence must be") as info:
        tr.emit_event(_traced(), "decision_made", "d", "r", confidence=bad)
    assert str(info.value) == f"confidence must be a number between 0.0 and 1.0, got {bad!r}"


def test_bad_events_are_rejected_even_when_tracing_is_off() -> None:
    with pytest.raises(ValueError, match="unknown trace event type 'oops'"):
        tr.emit_event(_ctx(), "oops", "d", "r")


def test_event_types_cover_the_reference_and_the_runtime() -> None:
    expected = {
        "hypothesis_formed",
        "alternative_rejected",
        "constraint_evaluated",
        "pattern_applied",
        "ambiguity_flagged",
        "confidence_updated",
        "alternative_considered",
        "decision_made",
        "stage_start",
        "stage_complete",
        "stage_failed",
        "stage_restart",
        "stage_timeout",
        "stage_started",
        "stage_completed",
    }
    assert expected <= tr.EVENT_TYPES


def test_stage_events_use_the_reference_wording() -> None:
    ctx = tr.emit_stage_start(_traced(), "bench", {"alpha": 0.01})
    ctx = tr.emit_stage_complete(ctx, "bench", {f"k{i}": i for i in range(12)})
    ctx = tr.emit_stage_failed(ctx, "report", RuntimeError("disk full"))
    assert ctx.trace is not None
    start, complete, failed = ctx.trace.events
    assert (start.type, start.decision, start.reasoning) == (
        "stage_start",
        "Starting stage: bench",
        "Pipeline executing stage bench",
    )
    assert start.metadata == {"stage": "bench", "options": {"alpha": 0.01}}
    assert start.stage_id == "bench"
    assert (complete.type, complete.decision, complete.reasoning) == (
        "stage_complete",
        "Completed stage: bench",
        "Stage bench completed successfully",
    )
    assert complete.metadata["results"] == {f"k{i}": i for i in range(10)}
    assert (failed.type, failed.decision, failed.reasoning) == (
        "stage_failed",
        "Failed stage: report",
        "Stage report failed with error: RuntimeError('disk full')",
    )
    assert failed.confidence == 0.0
    assert failed.metadata == {"stage": "report", "error": "RuntimeError('disk full')"}


def test_stage_complete_summarizes_list_results() -> None:
    ctx = tr.emit_stage_complete(_traced(), "load", [1, 2, 3, 4, 5])
    event = tr.last_event(ctx)
    assert event is not None
    assert event.metadata["results"] == {"count": 5, "sample": [1, 2, 3]}


def test_emit_decision_records_a_decision_made_event_with_alternatives() -> None:
    ctx = tr.emit_decision(_traced(), "Pick B", "Lower loss", ["A", "C"], 0.75)
    event = tr.last_event(ctx)
    assert event is not None
    assert (event.type, event.decision, event.reasoning) == (
        "decision_made",
        "Pick B",
        "Lower loss",
    )
    assert event.alternatives == ["A", "C"]
    assert event.confidence == 0.75


# --- querying -----------------------------------------------------------------------------


def test_queries_without_a_trace() -> None:
    ctx = _ctx()
    assert tr.tracing_enabled(ctx) is False
    assert tr.event_count(ctx) == 0
    assert tr.filter_events(ctx, "decision_made") == []
    assert tr.last_event(ctx) is None
    assert tr.confidence_stats(ctx) == {}
    assert tr.export_json(ctx) is None
    assert tr.export_html(ctx) is None
    assert tr.export_markdown(ctx) is None


def test_queries_on_a_trace() -> None:
    ctx = _traced()
    assert tr.tracing_enabled(ctx) is True
    assert tr.confidence_stats(ctx) == {"count": 0}
    ctx = tr.emit_decision(ctx, "a", "r", [], 0.9)
    ctx = tr.emit_event(ctx, "pattern_applied", "b", "r", confidence=0.55555)
    ctx = tr.emit_decision(ctx, "c", "r", [], 0.2)
    assert tr.event_count(ctx) == 3
    assert [e.decision for e in tr.filter_events(ctx, "decision_made")] == ["a", "c"]
    last = tr.last_event(ctx)
    assert last is not None
    assert last.decision == "c"
    assert tr.confidence_stats(ctx) == {"count": 3, "mean": 0.5519, "min": 0.2, "max": 0.9}


# --- export -------------------------------------------------------------------------------


def _rich() -> Context:
    ctx = _traced()
    ctx = tr.emit_decision(ctx, "Use <script>alert(1)</script>", "because & so", ["A <b>"], 0.9)
    ctx = tr.emit_event(ctx, "hypothesis_formed", "maybe", "unsure", confidence=0.6)
    return tr.emit_event(ctx, "ambiguity_flagged", "unclear", "spec is vague", confidence=0.1)


def test_export_json_holds_the_chain() -> None:
    ctx = _rich()
    text = tr.export_json(ctx)
    assert text is not None
    data = json.loads(text)
    assert data["name"] == "Trace demo"
    assert [e["type"] for e in data["events"]] == [
        "decision_made",
        "hypothesis_formed",
        "ambiguity_flagged",
    ]
    assert data["events"][0]["alternatives"] == ["A <b>"]
    assert data["created_at"] == "2025-01-02T03:04:05Z"
    assert text == tr.export_json_chain(ctx.trace)  # type: ignore[arg-type]


def test_export_html_is_a_self_contained_escaped_timeline() -> None:
    ctx = _rich()
    page = tr.export_html(ctx)
    assert page is not None
    assert "<title>Trace demo - Trace</title>" in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "A &lt;b&gt;" in page
    assert not re.search(r"(src|href)\s*=", page)
    assert "http://" not in page
    assert "https://" not in page
    assert 'class="confidence-badge confidence-high">0.90<' in page
    assert 'class="confidence-badge confidence-medium">0.60<' in page
    assert 'class="confidence-badge confidence-low">0.10<' in page
    assert page == tr.export_html_chain(ctx.trace)  # type: ignore[arg-type]


def test_export_html_badge_thresholds_are_inclusive() -> None:
    ctx = tr.emit_decision(_traced(), "edge-high", "r", [], 0.8)
    ctx = tr.emit_decision(ctx, "edge-medium", "r", [], 0.5)
    page = tr.export_html(ctx)
    assert page is not None
    assert 'confidence-high">0.80<' in page
    assert 'confidence-medium">0.50<' in page


def test_export_markdown_lists_events_in_a_table() -> None:
    ctx = _rich()
    text = tr.export_markdown(ctx)
    assert text is not None
    assert text.startswith("# Trace demo - Trace\n")
    assert "| # | Offset | Type | Stage | Decision | Confidence |" in text
    assert "| 1 | +0.000 s | decision_made |  | Use <script>alert(1)</script> | 0.90 |" in text
    assert "  - A <b>" in text
    assert text == tr.export_markdown_chain(ctx.trace)  # type: ignore[arg-type]


def test_exports_of_an_empty_chain_say_so() -> None:
    ctx = _traced()
    assert "No events recorded." in (tr.export_html(ctx) or "")
    assert "No events recorded." in (tr.export_markdown(ctx) or "")


def test_offsets_are_relative_to_the_first_event() -> None:
    chain = TraceChain(
        id="c" * 32,
        name="timed",
        created_at=T0,
        events=[
            TraceEvent(id="a" * 32, timestamp=T0, type="stage_start", decision="s", reasoning="r"),
            TraceEvent(
                id="b" * 32,
                timestamp=T0 + timedelta(seconds=1.5),
                type="stage_complete",
                decision="c",
                reasoning="r",
            ),
        ],
    )
    assert "+1.500 s" in tr.export_markdown_chain(chain)
    assert "+1.500 s" in tr.export_html_chain(chain)


# --- persistence --------------------------------------------------------------------------


async def test_save_and_load_round_trip(tmp_path: Path) -> None:
    ctx = _rich()
    path = await tr.save_trace(ctx, tmp_path / "nested" / "trace.json")
    assert path == tmp_path / "nested" / "trace.json"
    loaded = await tr.load_trace(path)
    assert loaded == ctx.trace


async def test_save_without_a_trace_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^cannot save the trace") as info:
        await tr.save_trace(_ctx(), tmp_path / "t.json")
    assert str(info.value) == (
        "cannot save the trace: this Context has no trace; run with enable_trace=True "
        "or call init_trace(ctx, name) first"
    )
    assert not (tmp_path / "t.json").exists()


async def test_load_of_a_file_that_is_not_a_trace_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match=r"bad\.json does not hold a saved trace: "):
        await tr.load_trace(path)


# --- through the runtime ------------------------------------------------------------------


@stage("prepare")
def _prepare(ctx: Context, opts: object) -> Context:
    return ctx.put_metric("prepared", True)


@stage("choose")
async def _choose(ctx: Context, opts: object) -> Context:
    return tr.emit_decision(
        ctx, "Use model B", "Higher validation accuracy", ["Model A", "Model C"], 0.8
    )


@stage("finish")
def _finish(ctx: Context, opts: object) -> Context:
    return ctx.put_metric("finished", True)


async def test_three_stage_run_with_one_decision_records_seven_events() -> None:
    registry = registry_with(_prepare, _choose, _finish)
    exp = Experiment(
        id="traced",
        pipeline=[StageDef(name="prepare"), StageDef(name="choose"), StageDef(name="finish")],
    )
    ctx = await crucible_actors.run_async(exp, registry=registry, enable_trace=True)
    assert tr.event_count(ctx) == 7
    assert ctx.trace is not None
    assert [(e.type, e.stage_id) for e in ctx.trace.events] == [
        ("stage_start", "prepare"),
        ("stage_complete", "prepare"),
        ("stage_start", "choose"),
        ("decision_made", "choose"),
        ("stage_complete", "choose"),
        ("stage_start", "finish"),
        ("stage_complete", "finish"),
    ]
    decision = tr.filter_events(ctx, "decision_made")[0]
    assert decision.alternatives == ["Model A", "Model C"]
    assert decision.experiment_id == "traced"
    events = ctx.trace.events
    assert [e.parent_id for e in events] == [None, *(e.id for e in events[:-1])]


async def test_run_without_trace_ignores_emitted_decisions() -> None:
    registry = registry_with(_choose)
    exp = Experiment(id="untraced", pipeline=[StageDef(name="choose")])
    ctx = await crucible_actors.run_async(exp, registry=registry)
    assert ctx.trace is None
    assert tr.event_count(ctx) == 0


# --- the public surface --------------------------------------------------------------------


TRACE_API = [
    "EVENT_TYPES",
    "TraceChain",
    "TraceEvent",
    "confidence_stats",
    "emit_decision",
    "emit_event",
    "emit_stage_complete",
    "emit_stage_failed",
    "emit_stage_start",
    "event_count",
    "export_html",
    "export_html_chain",
    "export_json",
    "export_json_chain",
    "export_markdown",
    "export_markdown_chain",
    "filter_events",
    "init_trace",
    "last_event",
    "load_trace",
    "save_trace",
    "tracing_enabled",
]


def test_trace_package_exports_the_documented_names() -> None:
    assert tr.__all__ == TRACE_API
    namespace: dict[str, object] = {}
    exec(f"from crucible_actors.trace import {', '.join(TRACE_API)}", namespace)
    assert all(namespace[name] is getattr(tr, name) for name in TRACE_API)


@pytest.mark.parametrize("name", [n for n in TRACE_API if n != "EVENT_TYPES"])
def test_every_trace_function_is_documented_and_defined_outside_the_package_init(
    name: str,
) -> None:
    obj = getattr(tr, name)
    assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
    # The package only re-exports: the logic lives in _core and the exporter modules.
    assert obj.__module__ != "crucible_actors.trace"
    assert obj.__module__.startswith(("crucible_actors._core.", "crucible_actors.trace._"))
