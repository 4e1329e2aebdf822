"""Data types of the decision trace carried in ``Context.trace``.

A :class:`TraceChain` of :class:`TraceEvent` values, the event types a trace accepts
and the two pure operations on a chain (:func:`new_chain`, :func:`append_event`). The
Context (:mod:`._context`) and the encoder (:mod:`._encoding`) need only these types;
the Context-level emitters build on them in :mod:`._trace_emit`, the queries read them
in :mod:`._trace_query`, and :mod:`crucible_actors.trace` re-exports all of it beside
the JSON, HTML and Markdown exporters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import msgspec.structs

__all__ = ["EVENT_TYPES", "TraceChain", "TraceEvent", "append_event", "check_event", "new_chain"]


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


#: The event types a trace accepts: crucible_trace's reasoning, training, metrics,
#: checkpoint, deployment, feedback and stage events, the framework's pipeline events
#: (``stage_start``, ``stage_complete``, ``stage_failed``, ``alternative_considered``,
#: ``decision_made``) and the supervised runtime's ``stage_restart`` and ``stage_timeout``.
EVENT_TYPES: frozenset[str] = frozenset(
    {
        # reasoning (crucible_trace)
        "hypothesis_formed",
        "alternative_rejected",
        "constraint_evaluated",
        "pattern_applied",
        "ambiguity_flagged",
        "confidence_updated",
        # training lifecycle
        "training_started",
        "training_completed",
        "epoch_started",
        "epoch_completed",
        "batch_processed",
        # metrics
        "loss_computed",
        "metric_recorded",
        "gradient_computed",
        # checkpoints
        "checkpoint_saved",
        "checkpoint_loaded",
        "early_stopped",
        # deployment
        "deployment_started",
        "model_loaded",
        "inference_completed",
        "deployment_completed",
        # RL / feedback
        "reward_received",
        "policy_updated",
        "experience_sampled",
        # stage events (crucible_trace spelling)
        "stage_started",
        "stage_completed",
        # pipeline events (the framework's trace integration)
        "stage_start",
        "stage_complete",
        "stage_failed",
        "alternative_considered",
        "decision_made",
        # supervision
        "stage_restart",
        "stage_timeout",
    }
)


def check_event(type: str, confidence: float) -> float:
    """Return ``confidence`` as a float after checking ``type`` and ``confidence``.

    Raises:
        ValueError: ``type`` is not in :data:`EVENT_TYPES`, or ``confidence`` is not a
            number in [0, 1] (NaN and booleans included); the message names the value.
    """
    if type not in EVENT_TYPES:
        raise ValueError(
            f"unknown trace event type {type!r}; expected one of: {', '.join(sorted(EVENT_TYPES))}"
        )
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0.0 <= confidence <= 1.0
    ):
        raise ValueError(f"confidence must be a number between 0.0 and 1.0, got {confidence!r}")
    return float(confidence)
