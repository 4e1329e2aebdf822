"""Decision traces: record what a run decided and why, and export the record.

A trace is a :class:`~crucible_actors._core._decision.TraceChain` carried in
``Context.trace``. ``crucible_actors.run(..., enable_trace=True)`` starts one and the run
supervisor adds ``stage_start``/``stage_complete``/``stage_failed`` events around every
stage; inside a stage, :func:`emit_decision` and :func:`emit_event` add the stage's own
reasoning. Like every Context helper, the emitters return a NEW Context; with no trace on
the Context they return it unchanged, so stages can emit unconditionally.

The exporters render a chain as JSON (the format :func:`save_trace`/:func:`load_trace`
round-trip), as one self-contained HTML page (no external scripts, styles or fonts) and
as Markdown. The ``*_chain`` variants take a bare chain, for traces loaded from a store.

This module mirrors the reference's ``Crucible.TraceIntegration`` (wording of the stage
events included) and is pure Python: it needs no extra.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import msgspec.structs

from ._core._decision import (
    EVENT_TYPES,
    TraceChain,
    TraceEvent,
    append_event,
    check_event,
    new_chain,
)
from ._core._encoding import sanitize

if TYPE_CHECKING:
    from datetime import datetime

    from ._core._context import Context

__all__ = [
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

_replace = msgspec.structs.replace


# --- building ------------------------------------------------------------------------------


def init_trace(ctx: Context, name: str, *, now: datetime | None = None) -> Context:
    """Return ``ctx`` with a new, empty trace called ``name`` (replacing any trace).

    The chain's metadata records the Context's ``experiment_id`` and ``run_id``.
    """
    chain = _replace(
        new_chain(name, now=now),
        metadata={"experiment_id": ctx.experiment_id, "run_id": ctx.run_id},
    )
    return _replace(ctx, trace=chain)


def emit_event(
    ctx: Context,
    type: str,
    decision: str,
    reasoning: str,
    *,
    alternatives: Iterable[str] = (),
    confidence: float = 1.0,
    metadata: Mapping[str, Any] | None = None,
    code_section: str | None = None,
    spec_reference: str | None = None,
    stage_id: str | None = None,
    now: datetime | None = None,
) -> Context:
    """Return ``ctx`` with one more trace event (``ctx`` itself when tracing is off).

    ``stage_id`` defaults to the stage the runtime is executing (``telemetry_context``);
    ``metadata`` is stored JSON-safe (tuples become lists, odd objects their ``repr``), so
    the Context stays encodable.

    Raises:
        ValueError: ``type`` is not one of :data:`EVENT_TYPES`, or ``confidence`` is not a
            number in [0, 1]. Checked even when tracing is off, so a typo never hides.
    """
    conf = check_event(type, confidence)
    if ctx.trace is None:
        return ctx
    alts = [alternatives] if isinstance(alternatives, str) else [str(a) for a in alternatives]
    stage = stage_id if stage_id is not None else ctx.telemetry_context.get("stage")
    chain = append_event(
        ctx.trace,
        type,
        decision,
        reasoning,
        alternatives=alts,
        confidence=conf,
        metadata=_json_safe(metadata) if metadata else {},
        code_section=code_section,
        spec_reference=spec_reference,
        stage_id=str(stage) if stage is not None else None,
        experiment_id=ctx.experiment_id,
        now=now,
    )
    return _replace(ctx, trace=chain)


def emit_stage_start(ctx: Context, stage: str, options: Mapping[str, Any] | None = None) -> Context:
    """Record that pipeline stage ``stage`` starts, with its ``options`` in the metadata."""
    return emit_event(
        ctx,
        "stage_start",
        f"Starting stage: {stage}",
        f"Pipeline executing stage {stage}",
        metadata={"stage": stage, "options": dict(options or {})},
        stage_id=stage,
    )


def emit_stage_complete(ctx: Context, stage: str, results: Any = None) -> Context:
    """Record that ``stage`` completed; ``results`` is summarized (10 keys, 3 list items)."""
    return emit_event(
        ctx,
        "stage_complete",
        f"Completed stage: {stage}",
        f"Stage {stage} completed successfully",
        metadata={"stage": stage, "results": _summarize(results)},
        stage_id=stage,
    )


def emit_stage_failed(ctx: Context, stage: str, error: object) -> Context:
    """Record that ``stage`` failed with ``error`` (confidence 0.0)."""
    return emit_event(
        ctx,
        "stage_failed",
        f"Failed stage: {stage}",
        f"Stage {stage} failed with error: {error!r}",
        metadata={"stage": stage, "error": repr(error)},
        confidence=0.0,
        stage_id=stage,
    )


def emit_decision(
    ctx: Context,
    decision: str,
    reasoning: str,
    alternatives: Iterable[str] = (),
    confidence: float = 1.0,
) -> Context:
    """Record a ``decision_made`` event with the ``alternatives`` that were considered."""
    return emit_event(
        ctx,
        "decision_made",
        decision,
        reasoning,
        alternatives=alternatives,
        confidence=confidence,
    )


def _json_safe(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``metadata`` as plain JSON data, so it round-trips through save and load."""
    data = msgspec.json.decode(msgspec.json.encode(sanitize(_str_keys(metadata))))
    return data if isinstance(data, dict) else {}


def _str_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _str_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_str_keys(v) for v in value]
    return value


def _summarize(results: Any) -> Any:
    if results is None:
        return {}
    if isinstance(results, Mapping):
        return dict(list(results.items())[:10])
    if isinstance(results, list | tuple):
        return {"count": len(results), "sample": list(results[:3])}
    return results


# --- querying ------------------------------------------------------------------------------


def tracing_enabled(ctx: Context) -> bool:
    """Return whether ``ctx`` carries a trace."""
    return ctx.trace is not None


def event_count(ctx: Context) -> int:
    """Return the number of events in the trace (0 without one)."""
    return len(ctx.trace.events) if ctx.trace is not None else 0


def filter_events(ctx: Context, type: str) -> list[TraceEvent]:
    """Return the events of ``type``, in order (``[]`` without a trace)."""
    if ctx.trace is None:
        return []
    return [event for event in ctx.trace.events if event.type == type]


def last_event(ctx: Context) -> TraceEvent | None:
    """Return the most recent event, or None."""
    if ctx.trace is None or not ctx.trace.events:
        return None
    return ctx.trace.events[-1]


def confidence_stats(ctx: Context) -> dict[str, Any]:
    """Summarize the events' confidences.

    Returns:
        ``{}`` without a trace, ``{"count": 0}`` for an empty one, else ``{"count",
        "mean" (rounded to 4 decimals), "min", "max"}``.
    """
    if ctx.trace is None:
        return {}
    return _confidence_stats(ctx.trace)


def _confidence_stats(chain: TraceChain) -> dict[str, Any]:
    values = [event.confidence for event in chain.events]
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "mean": round(math.fsum(values) / len(values), 4),
        "min": min(values),
        "max": max(values),
    }


# --- persistence ---------------------------------------------------------------------------


async def save_trace(ctx: Context, path: str | Path) -> Path:
    """Write the trace as JSON to ``path`` (parent directories are created); return the path.

    Raises:
        ValueError: ``ctx`` carries no trace.
        OSError: the file cannot be written.
    """
    if ctx.trace is None:
        raise ValueError(
            "cannot save the trace: this Context has no trace; run with enable_trace=True "
            "or call init_trace(ctx, name) first"
        )
    target = anyio.Path(path)
    await target.parent.mkdir(parents=True, exist_ok=True)
    await target.write_text(export_json_chain(ctx.trace), encoding="utf-8")
    return Path(path)


async def load_trace(path: str | Path) -> TraceChain:
    """Read a trace written by :func:`save_trace` (or :func:`export_json_chain`).

    Raises:
        ValueError: the file does not hold a trace.
        OSError: the file cannot be read.
    """
    data = await anyio.Path(path).read_bytes()
    try:
        return msgspec.json.decode(data, type=TraceChain)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ValueError(f"{path} does not hold a saved trace: {exc}") from exc


# --- export --------------------------------------------------------------------------------


def export_json(ctx: Context) -> str | None:
    """Return the trace as indented JSON, or None without a trace."""
    return export_json_chain(ctx.trace) if ctx.trace is not None else None


def export_html(ctx: Context) -> str | None:
    """Return the trace as a self-contained HTML page, or None without a trace."""
    return export_html_chain(ctx.trace) if ctx.trace is not None else None


def export_markdown(ctx: Context) -> str | None:
    """Return the trace as Markdown, or None without a trace."""
    return export_markdown_chain(ctx.trace) if ctx.trace is not None else None


def export_json_chain(chain: TraceChain) -> str:
    """Return ``chain`` as indented JSON (timestamps in ISO 8601); never fails on odd values."""
    return msgspec.json.format(msgspec.json.encode(sanitize(chain)), indent=2).decode()


def _iso(ts: datetime | None) -> str:
    return ts.isoformat() if ts is not None else ""


def _offset(event: TraceEvent, start: datetime) -> str:
    try:
        seconds = (event.timestamp - start).total_seconds()
    except TypeError:  # naive and aware timestamps mixed in a hand-built chain
        return ""
    return f"+{seconds:.3f} s"


def _type_label(type: str) -> str:
    return " ".join(part.capitalize() for part in type.split("_"))


def _confidence_class(confidence: float) -> str:
    """Return the badge class of a confidence: high (>= 0.8), medium (>= 0.5) or low."""
    if confidence >= 0.8:
        return "high"
    if confidence >= 0.5:
        return "medium"
    return "low"


def _duration(chain: TraceChain) -> str:
    if len(chain.events) < 2:
        return "0.000 s"
    return _offset(chain.events[-1], chain.events[0].timestamp).lstrip("+")


_CSS = """
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  margin: 0; background: #f5f5f5; color: #333; line-height: 1.5; }
.container { max-width: 1100px; margin: 0 auto; padding: 20px; }
header, section { background: #fff; border-radius: 8px; padding: 20px 24px;
  margin-bottom: 18px; box-shadow: 0 1px 3px rgba(0,0,0,.1); }
h1 { margin: 0 0 8px; color: #2c3e50; }
h2 { margin: 0 0 12px; color: #34495e; border-bottom: 2px solid #3498db; padding-bottom: 6px; }
.metadata { display: flex; gap: 18px; flex-wrap: wrap; color: #7f8c8d; font-size: .9em; }
.stats-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr));
  gap: 12px; }
.stat-item { background: #f8f9fa; border-left: 4px solid #3498db; padding: 10px 12px;
  border-radius: 4px; }
.stat-label { color: #7f8c8d; font-size: .85em; }
.stat-value { font-size: 1.5em; font-weight: bold; color: #2c3e50; }
ol.timeline { list-style: none; margin: 0; padding: 0 0 0 18px; border-left: 3px solid #3498db; }
ol.timeline li { position: relative; padding: 4px 0 10px 12px; }
ol.timeline li::before { content: ""; position: absolute; left: -26px; top: 10px; width: 12px;
  height: 12px; border-radius: 50%; background: #3498db; border: 2px solid #fff; }
ol.timeline li.stage_failed::before { background: #c62828; }
.offset { font-family: Menlo, Consolas, monospace; color: #7f8c8d; font-size: .85em;
  margin-right: 8px; }
.event { border-left: 4px solid #3498db; background: #f8f9fa; border-radius: 4px;
  padding: 14px 16px; margin-bottom: 14px; }
.event-header { display: flex; justify-content: space-between; align-items: center;
  margin-bottom: 8px; }
.event-type { display: inline-block; padding: 2px 10px; border-radius: 12px; font-size: .8em;
  font-weight: 600; text-transform: uppercase; letter-spacing: .5px; background: #e3f2fd;
  color: #1565c0; }
.confidence-badge { padding: 2px 10px; border-radius: 12px; font-size: .85em;
  font-weight: 600; }
.confidence-high { background: #c8e6c9; color: #2e7d32; }
.confidence-medium { background: #fff9c4; color: #f57f17; }
.confidence-low { background: #ffcdd2; color: #c62828; }
.decision { font-weight: 600; color: #2c3e50; margin-bottom: 4px; }
.reasoning { color: #555; margin-bottom: 8px; }
.alternatives { background: #fff; border-radius: 4px; padding: 8px 12px; margin-bottom: 8px; }
.alternatives-label { font-weight: 600; color: #7f8c8d; font-size: .9em; }
.alternatives ul { margin: 4px 0 0; padding-left: 20px; }
.event-meta { display: flex; gap: 14px; flex-wrap: wrap; color: #7f8c8d; font-size: .85em;
  border-top: 1px solid #ddd; padding-top: 8px; }
code { font-family: Menlo, Consolas, monospace; background: #2c3e50; color: #ecf0f1;
  padding: 1px 5px; border-radius: 3px; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _badge(confidence: float) -> str:
    cls = _confidence_class(confidence)
    return f'<span class="confidence-badge confidence-{cls}">{confidence:.2f}</span>'


def export_html_chain(chain: TraceChain) -> str:
    """Return ``chain`` as one self-contained HTML page titled ``<name> - Trace``.

    The page holds a summary, statistics (counts per type, mean confidence), a timeline
    and one card per event with its reasoning, alternatives and confidence badge (high
    >= 0.8, medium >= 0.5, else low). Every value is HTML-escaped; nothing is loaded from
    elsewhere.
    """
    stats = _confidence_stats(chain)
    counts: dict[str, int] = {}
    for event in chain.events:
        counts[event.type] = counts.get(event.type, 0) + 1
    start = chain.events[0].timestamp if chain.events else None

    stat_items = [
        ("Total Events", str(len(chain.events))),
        ("Average Confidence", f"{stats['mean']:.2f}" if "mean" in stats else "-"),
        ("Duration", _duration(chain)),
        *((_type_label(t), str(n)) for t, n in counts.items()),
    ]
    stats_html = "\n".join(
        f'<div class="stat-item"><div class="stat-label">{_e(label)}</div>'
        f'<div class="stat-value">{_e(value)}</div></div>'
        for label, value in stat_items
    )

    timeline_items = []
    cards = []
    for index, event in enumerate(chain.events, 1):
        offset = _offset(event, start) if start is not None else ""
        timeline_items.append(
            f'<li class="{_e(event.type)}"><span class="offset">{_e(offset)}</span>'
            f"<strong>{_e(_type_label(event.type))}</strong> &mdash; {_e(event.decision)} "
            f"{_badge(event.confidence)}</li>"
        )
        alternatives = ""
        if event.alternatives:
            items = "".join(f"<li>{_e(alt)}</li>" for alt in event.alternatives)
            alternatives = (
                '<div class="alternatives"><div class="alternatives-label">'
                f"Alternatives Considered:</div><ul>{items}</ul></div>"
            )
        meta = [f"<span>{_e(_iso(event.timestamp))}</span>"]
        if event.stage_id:
            meta.append(f"<span>Stage: {_e(event.stage_id)}</span>")
        if event.code_section:
            meta.append(f"<span>Code: <code>{_e(event.code_section)}</code></span>")
        if event.spec_reference:
            meta.append(f"<span>Spec: {_e(event.spec_reference)}</span>")
        if event.metadata:
            encoded = msgspec.json.encode(sanitize(event.metadata)).decode()
            meta.append(f"<span>Metadata: <code>{_e(encoded)}</code></span>")
        cards.append(
            f'<div class="event" id="event-{_e(event.id)}" data-type="{_e(event.type)}">'
            f'<div class="event-header"><span class="event-type">{_e(_type_label(event.type))}'
            f"</span>{_badge(event.confidence)}</div>"
            f'<div class="decision">{index}. {_e(event.decision)}</div>'
            f'<div class="reasoning">{_e(event.reasoning)}</div>'
            f'{alternatives}<div class="event-meta">{"".join(meta)}</div></div>'
        )

    timeline = (
        f'<ol class="timeline">{"".join(timeline_items)}</ol>'
        if timeline_items
        else "<p>No events recorded.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(chain.name)} - Trace</title>
<style>{_CSS}</style>
</head>
<body>
<div class="container">
<header>
<h1>{_e(chain.name)} - Trace</h1>
<div class="metadata"><span>Chain ID: {_e(chain.id)}</span>
<span>Created: {_e(_iso(chain.created_at))}</span>
<span>Events: {len(chain.events)}</span></div>
</header>
<section class="statistics"><h2>Statistics</h2><div class="stats-grid">
{stats_html}
</div></section>
<section class="timeline-section"><h2>Timeline</h2>
{timeline}
</section>
<section class="events"><h2>Events</h2>
{"".join(cards)}
</section>
</div>
</body>
</html>
"""


def _md(value: object) -> str:
    """Return ``value`` as text safe inside a Markdown table cell."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def export_markdown_chain(chain: TraceChain) -> str:
    """Return ``chain`` as Markdown: a summary, an event table and one section per event."""
    stats = _confidence_stats(chain)
    lines = [
        f"# {_md(chain.name)} - Trace",
        "",
        f"- Chain ID: `{chain.id}`",
        f"- Created: {_iso(chain.created_at)}",
        f"- Events: {len(chain.events)}",
    ]
    if "mean" in stats:
        lines.append(f"- Confidence: mean {stats['mean']}, min {stats['min']}, max {stats['max']}")
    if not chain.events:
        return "\n".join([*lines, "", "No events recorded.", ""])
    start = chain.events[0].timestamp
    lines += [
        "",
        "| # | Offset | Type | Stage | Decision | Confidence |",
        "|---:|---|---|---|---|---:|",
    ]
    for index, event in enumerate(chain.events, 1):
        lines.append(
            f"| {index} | {_offset(event, start)} | {_md(event.type)} | {_md(event.stage_id)} "
            f"| {_md(event.decision)} | {event.confidence:.2f} |"
        )
    lines += ["", "## Events"]
    for index, event in enumerate(chain.events, 1):
        lines += [
            "",
            f"### {index}. {_md(event.decision)}",
            "",
            f"- Type: {event.type}",
            f"- Time: {_iso(event.timestamp)}",
            f"- Confidence: {event.confidence:.2f} ({_confidence_class(event.confidence)})",
            f"- Reasoning: {_md(event.reasoning)}",
        ]
        if event.stage_id:
            lines.append(f"- Stage: {_md(event.stage_id)}")
        if event.alternatives:
            lines.append("- Alternatives considered:")
            lines += [f"  - {_md(alt)}" for alt in event.alternatives]
        if event.code_section:
            lines.append(f"- Code: `{event.code_section}`")
        if event.spec_reference:
            lines.append(f"- Spec: {_md(event.spec_reference)}")
    lines.append("")
    return "\n".join(lines)
