"""Trace emitters: add events to the decision trace a Context carries.

The chain itself (:class:`~crucible_actors._core._trace_chain.TraceChain`, its events and
the accepted event types) is defined in :mod:`._decision`; this module is the
Context-level layer over it. ``crucible_actors.run(..., enable_trace=True)`` starts a
chain and the run supervisor appends ``stage_start``/``stage_complete``/``stage_failed``
events around every stage; inside a stage, :func:`emit_decision` and :func:`emit_event`
add the stage's own reasoning. Like every Context helper, the emitters return a NEW
Context; with no trace on the Context they return it unchanged, so stages can emit
unconditionally. Reading a trace back is :mod:`._trace_query`; rendering it is the
exporters' job in :mod:`crucible_actors.trace`, which re-exports these functions.

The stage events keep the wording of CrucibleFramework's ``Crucible.TraceIntegration``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import msgspec.structs

from ._encoding import to_json_safe
from ._trace_chain import append_event, check_event, new_chain

if TYPE_CHECKING:
    from datetime import datetime

    from ._context import Context

__all__ = [
    "emit_decision",
    "emit_event",
    "emit_stage_complete",
    "emit_stage_failed",
    "emit_stage_start",
    "init_trace",
]

_replace = msgspec.structs.replace


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
        # Plain JSON data (NaN as null), so the event round-trips through save and load.
        metadata=to_json_safe(metadata, finite=True) if metadata else {},
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


def _summarize(results: Any) -> Any:
    if results is None:
        return {}
    if isinstance(results, Mapping):
        return dict(list(results.items())[:10])
    if isinstance(results, list | tuple):
        return {"count": len(results), "sample": list(results[:3])}
    return results
