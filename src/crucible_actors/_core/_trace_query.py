"""Trace queries: read the decision trace a Context carries without changing it.

The counterpart of :mod:`._trace_emit`: the emitters append to
``Context.trace`` (a :class:`~crucible_actors._core._trace_chain.TraceChain`), these
functions answer questions about it, and every one of them treats a Context without a
trace as an empty answer rather than an error. :func:`chain_confidence_stats` works on
a bare chain, so the exporters in :mod:`crucible_actors.trace` summarize traces loaded
from a store the same way; that package re-exports the Context-level functions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._context import Context
    from ._trace_chain import TraceChain, TraceEvent

__all__ = [
    "chain_confidence_stats",
    "confidence_stats",
    "event_count",
    "filter_events",
    "last_event",
    "tracing_enabled",
]


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
    return chain_confidence_stats(ctx.trace)


def chain_confidence_stats(chain: TraceChain) -> dict[str, Any]:
    """Summarize the confidences of ``chain``'s events, as :func:`confidence_stats` does.

    Returns:
        ``{"count": 0}`` for an empty chain, else ``{"count", "mean" (rounded to 4
        decimals), "min", "max"}``.
    """
    values = [event.confidence for event in chain.events]
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "mean": round(math.fsum(values) / len(values), 4),
        "min": min(values),
        "max": max(values),
    }
