"""Runs with known per-example scores, written to a store as the runtime would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crucible_actors.store import ExperimentRecord, RunRecord

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crucible_actors.store import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


async def stored_run(
    store: Store,
    run_id: str,
    scores: Sequence[float],
    *,
    keys: Sequence[str] | None = None,
    status: str = "completed",
    field: str = "score",
    extra: dict[str, Any] | None = None,
) -> str:
    """Store a finished run whose outputs are ``{"id": key, field: score, **extra}``."""
    ids = list(keys) if keys is not None else [f"q{i:02d}" for i in range(len(scores))]
    run = RunRecord(id=run_id, experiment_id="exp", status="running", started_at=T0, owner_id="o")
    exp = ExperimentRecord(
        id="exp", definition={"id": "exp", "pipeline": []}, created_at=T0, updated_at=T0
    )
    await store.start_run(run, experiment=exp)
    outputs = [{"id": k, field: s, **(extra or {})} for k, s in zip(ids, scores, strict=True)]
    done = RunRecord(
        id=run_id,
        experiment_id="exp",
        status=status,
        outputs=outputs,
        metrics={"n": len(scores)},
        started_at=T0,
        finished_at=T0,
        owner_id="o",
    )
    await store.finish_run(done, artifacts=[], events=[])
    return run_id
