"""``list_runs_without_outputs`` (SQLite, PostgreSQL): ``list_runs`` without the outputs.

The dashboard sorts every run by a metric through it, so it must return the same runs,
in the same order, with the same filters and cursor, only leaving ``outputs`` empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import pytest
from tests.compare_helpers import stored_run

from crucible_actors.errors import RunNotFound

if TYPE_CHECKING:
    from crucible_actors.store import Store


async def test_listing_without_outputs_matches_list_runs_but_the_outputs(store: Store) -> None:
    lister = getattr(store, "list_runs_without_outputs", None)
    if store.name.startswith("memory"):
        assert lister is None  # nothing to save in memory: callers fall back to list_runs
        return
    assert lister is not None
    for i in range(5):
        await stored_run(store, f"r{i}", [0.1 * i, 0.2], status="failed" if i == 2 else "completed")
    for query in (
        {},
        {"limit": 2},
        {"limit": 2, "before": "r3"},
        {"status": "completed"},
        {"experiment_id": "exp", "status": "failed"},
        {"experiment_id": "other"},
    ):
        full = await store.list_runs(**query)
        light = await lister(**query)
        assert [r.id for r in light] == [r.id for r in full], query
        assert [r.outputs for r in light] == [[] for _ in full]
        assert light == [msgspec.structs.replace(r, outputs=[]) for r in full]
        assert any(r.outputs for r in full) or not full
    with pytest.raises(RunNotFound):
        await lister(before="nope")
