"""Shared text forms of trace fields: what the HTML and Markdown exporters both print.

:mod:`._html` and :mod:`._markdown` render the same facts about a chain, so the
facts are spelled once here: an ISO 8601 timestamp, an event's offset from the first
event, the confidence class of a badge and the chain's duration. Escaping, the page
shell and the styles come from the rendering kit (:mod:`crucible_actors._render_kit`),
which the report stage and comparisons share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from .._core import TraceChain, TraceEvent

__all__ = ["confidence_class", "duration", "iso", "offset", "type_label"]


def iso(ts: datetime | None) -> str:
    """Return ``ts`` in ISO 8601, or ``""`` when the chain records no time."""
    return ts.isoformat() if ts is not None else ""


def offset(event: TraceEvent, start: datetime) -> str:
    """Return ``+S.SSS s``, the time from ``start`` to ``event`` (``""`` if incomparable)."""
    try:
        seconds = (event.timestamp - start).total_seconds()
    except TypeError:  # naive and aware timestamps mixed in a hand-built chain
        return ""
    return f"+{seconds:.3f} s"


def type_label(type: str) -> str:
    """Return an event type as a title: ``stage_start`` reads ``Stage Start``."""
    return " ".join(part.capitalize() for part in type.split("_"))


def confidence_class(confidence: float) -> str:
    """Return the badge class of a confidence: high (>= 0.8), medium (>= 0.5) or low."""
    if confidence >= 0.8:
        return "high"
    if confidence >= 0.5:
        return "medium"
    return "low"


def duration(chain: TraceChain) -> str:
    """Return the time from the first to the last event, ``0.000 s`` below two events."""
    if len(chain.events) < 2:
        return "0.000 s"
    return offset(chain.events[-1], chain.events[0].timestamp).lstrip("+")
