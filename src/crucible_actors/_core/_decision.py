"""Data types of the decision trace carried in ``Context.trace``.

The helpers that create and query traces live in :mod:`crucible_actors.trace`; these
Structs are here so the Context can be encoded and decoded without importing them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import msgspec.structs

__all__ = ["TraceChain", "TraceEvent"]


class TraceEvent(msgspec.Struct, frozen=True):
    """One recorded decision or stage transition."""

    id: str
    timestamp: datetime
    type: str
    decision: str
    reasoning: str
    alternatives: list[str] = []
    confidence: float = 1.0
    code_section: str | None = None
    spec_reference: str | None = None
    metadata: dict[str, Any] = {}
    parent_id: str | None = None
    stage_id: str | None = None
    experiment_id: str | None = None


class TraceChain(msgspec.Struct, frozen=True):
    """An ordered chain of :class:`TraceEvent` for one run."""

    id: str
    name: str
    events: list[TraceEvent] = []
    created_at: datetime | None = None
    metadata: dict[str, Any] = {}


def new_chain(name: str, *, now: datetime | None = None) -> TraceChain:
    """Return an empty chain called ``name``."""
    import uuid
    from datetime import UTC

    return TraceChain(id=uuid.uuid4().hex, name=name, created_at=now or datetime.now(UTC))


def append_event(
    chain: TraceChain,
    type: str,
    decision: str,
    reasoning: str,
    *,
    alternatives: list[str] | None = None,
    confidence: float = 1.0,
    metadata: dict[str, Any] | None = None,
    code_section: str | None = None,
    spec_reference: str | None = None,
    stage_id: str | None = None,
    experiment_id: str | None = None,
    now: datetime | None = None,
) -> TraceChain:
    """Return ``chain`` with one more event; ``parent_id`` links to the previous event."""
    import uuid
    from datetime import UTC

    parent = chain.events[-1].id if chain.events else None
    event = TraceEvent(
        id=uuid.uuid4().hex,
        timestamp=now or datetime.now(UTC),
        type=type,
        decision=decision,
        reasoning=reasoning,
        alternatives=list(alternatives or ()),
        confidence=float(confidence),
        code_section=code_section,
        spec_reference=spec_reference,
        metadata=dict(metadata or {}),
        parent_id=parent,
        stage_id=stage_id,
        experiment_id=experiment_id,
    )
    return msgspec.structs.replace(chain, events=[*chain.events, event])
