"""The sweep part of the Store contract, on every store (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from crucible_actors.errors import StoreError
from crucible_actors.store import SweepPointRecord, SweepRecord

if TYPE_CHECKING:
    from crucible_actors.store import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def sweep(sweep_id: str, *, exp_id: str = "exp", runs: int = 4) -> SweepRecord:
    return SweepRecord(
        id=sweep_id,
        experiment_id=exp_id,
        sweep={"parameters": {"m.t": [0.0, 0.5]}, "mode": "grid", "repeats": 2, "seed": 7},
        runs=runs,
        created_at=T0,
    )


def points(sweep_id: str, n: int = 4) -> list[SweepPointRecord]:
    return [
        SweepPointRecord(
            sweep_id=sweep_id,
            index=i,
            point=i // 2,
            repeat=i % 2,
            run_id=f"{sweep_id}-run{i}",
            parameters={"m.t": [0.0, 0.5][i // 2], "m.name": "x"},
            seed=7 + i,
        )
        for i in range(n)
    ]


async def test_recorded_sweep_and_points_read_back(store: Store) -> None:
    # Points given out of order come back ordered by index.
    await store.record_sweep(sweep("s1"), points=list(reversed(points("s1"))))
    got = await store.get_sweep("s1")
    assert got == sweep("s1")
    assert got is not None
    assert got.status == "running"
    assert got.finished_at is None
    assert await store.list_sweep_points("s1") == points("s1")


async def test_finished_sweep_has_its_status_and_time(store: Store) -> None:
    await store.record_sweep(sweep("s1"), points=points("s1"))
    await store.finish_sweep("s1", status="failed", finished_at=T0 + timedelta(seconds=3))
    got = await store.get_sweep("s1")
    assert got is not None
    assert (got.status, got.finished_at) == ("failed", T0 + timedelta(seconds=3))


async def test_sweep_ids_are_unique(store: Store) -> None:
    await store.record_sweep(sweep("s1"), points=points("s1"))
    with pytest.raises(StoreError, match="a sweep with id 's1' already exists"):
        await store.record_sweep(sweep("s1"), points=[])
    assert len(await store.list_sweep_points("s1")) == 4


async def test_finishing_an_unknown_sweep_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no sweep with id 'nope'"):
        await store.finish_sweep("nope", status="completed", finished_at=T0)


async def test_unknown_sweep_reads_as_none_and_no_points(store: Store) -> None:
    assert await store.get_sweep("nope") is None
    assert await store.list_sweep_points("nope") == []


async def test_sweeps_list_newest_first_filtered_and_limited(store: Store) -> None:
    for i, exp in enumerate(["a", "b", "a"]):
        await store.record_sweep(sweep(f"s{i}", exp_id=exp, runs=0), points=[])
    assert [s.id for s in await store.list_sweeps()] == ["s2", "s1", "s0"]
    assert [s.id for s in await store.list_sweeps(experiment_id="a")] == ["s2", "s0"]
    assert [s.id for s in await store.list_sweeps(limit=1)] == ["s2"]


async def test_large_sweep_points_are_stored_in_one_write(store: Store) -> None:
    many = [
        SweepPointRecord(
            sweep_id="big",
            index=i,
            point=i,
            repeat=0,
            run_id=f"r{i}",
            parameters={"m.t": i / 10},
            seed=i,
        )
        for i in range(1500)
    ]
    await store.record_sweep(sweep("big", runs=1500), points=many)
    assert await store.list_sweep_points("big") == many
