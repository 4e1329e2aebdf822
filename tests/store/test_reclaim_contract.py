"""The Store contract of ``delete_runs`` and ``gc``, on memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import msgspec
import pytest

from crucible_actors.errors import RunNotFound, RunStillRunning
from crucible_actors.store import CachedResult, SweepPointRecord, SweepRecord

from .test_contract import T0, artifact, at, checkpoint, done, event, outcome, start

if TYPE_CHECKING:
    from crucible_actors.store import Store


async def finished(store: Store, run_id: str, status: str = "completed", **kw: object) -> None:
    """A run with 2 attempts, 3 checkpoints, 2 events and 1 artifact, ended as ``status``."""
    await start(store, run_id, **kw)
    await store.save_checkpoint(checkpoint(run_id, 1, b"x" * 100), attempts=[done(run_id, 0)])
    await store.finish_run(
        outcome(run_id, status),
        artifacts=[artifact(run_id, "report_md", "md")],
        events=[event(run_id, 1), event(run_id, 2)],
        attempts=[done(run_id, 1)],
        checkpoint=checkpoint(run_id, 2),
    )


async def gone(store: Store, run_id: str) -> bool:
    """Whether nothing of ``run_id`` is left."""
    try:
        await store.get_run(run_id)
    except RunNotFound:
        pass
    else:
        return False
    return (
        await store.list_attempts(run_id) == []
        and await store.load_checkpoint(run_id) is None
        and await store.list_events(run_id) == []
        and await store.list_artifacts(run_id) == []
    )


async def test_deleting_a_run_removes_it_with_every_record_of_it(store: Store) -> None:
    await finished(store, "r1")
    await finished(store, "r2")
    deleted = await store.delete_runs(["r1"])
    assert deleted.run_ids == ["r1"]
    assert deleted.skipped == []
    assert (deleted.attempts, deleted.checkpoints, deleted.events, deleted.artifacts) == (
        2,
        3,
        2,
        1,
    )
    assert deleted.checkpoint_bytes == 100 + 2 * len(checkpoint("r1", 0).data)
    assert await gone(store, "r1")
    assert (await store.get_run("r2")).status == "completed"
    assert len(await store.list_attempts("r2")) == 2
    assert [r.id for r in await store.list_runs()] == ["r2"]


async def test_a_running_run_is_refused_and_nothing_is_deleted(store: Store) -> None:
    await finished(store, "r1")
    await start(store, "live")
    with pytest.raises(RunStillRunning, match="run 'live' is running") as caught:
        await store.delete_runs(["r1", "live"])
    assert (caught.value.run_id, caught.value.status) == ("live", "running")
    assert (await store.get_run("r1")).status == "completed"
    assert (await store.get_run("live")).status == "running"


async def test_an_unknown_run_id_is_refused_and_nothing_is_deleted(store: Store) -> None:
    await finished(store, "r1")
    with pytest.raises(RunNotFound, match="no run with id 'ghost'"):
        await store.delete_runs(["r1", "ghost"])
    assert (await store.get_run("r1")).status == "completed"


async def test_older_than_and_status_select_finished_runs_and_skip_live_ones(
    store: Store,
) -> None:
    await finished(store, "old-ok")  # finished at T0 + 30 s
    await finished(store, "old-failed", "failed")
    await start(store, "old-live")  # started at T0, still running
    await start(store, "recent")
    await store.finish_run(
        msgspec.structs.replace(outcome("recent"), finished_at=at(30) + timedelta(days=7.5)),
        artifacts=[],
        events=[],
    )
    # Nothing finished more than 7 days before T0 + 30 s.
    deleted = await store.delete_runs(older_than=timedelta(days=7), now=at(30))
    assert (deleted.run_ids, deleted.skipped) == ([], [])

    now = at(30) + timedelta(days=8)
    deleted = await store.delete_runs(older_than=timedelta(days=7), status="failed", now=now)
    assert deleted.run_ids == ["old-failed"]
    deleted = await store.delete_runs(older_than=timedelta(days=7), now=now)
    assert deleted.run_ids == ["old-ok"]
    assert deleted.skipped == ["old-live"]
    assert [r.id for r in await store.list_runs()] == ["recent", "old-live"]


async def test_a_dry_run_counts_without_deleting(store: Store) -> None:
    await finished(store, "r1")
    deleted = await store.delete_runs(["r1"], dry_run=True)
    assert (deleted.run_ids, deleted.attempts, deleted.checkpoints) == (["r1"], 2, 3)
    assert (await store.get_run("r1")).status == "completed"
    assert len(await store.list_attempts("r1")) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs run ids, or older_than and/or status"),
        ({"run_ids": ["r1"], "status": "failed"}, "either run ids or a selection"),
        ({"status": "running"}, "runs that are running are never deleted"),
        ({"status": "bogus"}, "unknown run status 'bogus'"),
        ({"older_than": timedelta(days=-1)}, "must not be negative"),
        ({"run_ids": "r1"}, "not the string 'r1'"),
    ],
)
async def test_bad_selections_are_refused(
    store: Store, kwargs: dict[str, object], message: str
) -> None:
    await finished(store, "r1")
    with pytest.raises(ValueError, match=message):
        await store.delete_runs(**kwargs)  # type: ignore[arg-type]
    assert (await store.get_run("r1")).status == "completed"


def sweep_of(sweep_id: str, run_ids: list[str]) -> tuple[SweepRecord, list[SweepPointRecord]]:
    record = SweepRecord(
        id=sweep_id, experiment_id="exp", sweep={"mode": "grid"}, runs=len(run_ids), created_at=T0
    )
    points = [
        SweepPointRecord(
            sweep_id=sweep_id, index=i, point=i, repeat=0, run_id=r, parameters={}, seed=i
        )
        for i, r in enumerate(run_ids)
    ]
    return record, points


async def test_a_sweep_loses_the_points_of_deleted_runs_and_goes_with_its_last(
    store: Store,
) -> None:
    for run_id in ("p0", "p1"):
        await finished(store, run_id)
    record, points = sweep_of("s1", ["p0", "p1"])
    await store.record_sweep(record, points=points)

    deleted = await store.delete_runs(["p0"])
    assert (deleted.sweep_points, deleted.sweeps) == (1, 0)
    assert [p.run_id for p in await store.list_sweep_points("s1")] == ["p1"]
    assert await store.get_sweep("s1") is not None

    deleted = await store.delete_runs(["p1"])
    assert (deleted.sweep_points, deleted.sweeps) == (1, 1)
    assert await store.get_sweep("s1") is None
    assert await store.list_sweep_points("s1") == []


def cached(key: str, run_id: str, data: bytes = b"\x81\xa1x\x01") -> CachedResult:
    return CachedResult(
        key=key,
        stage="s",
        version="1",
        result=data,
        size=len(data),
        run_id=run_id,
        created_at=T0,
    )


async def test_gc_deletes_the_cached_results_of_deleted_runs_only(store: Store) -> None:
    await finished(store, "kept")
    await finished(store, "dropped")
    assert await store.put_cached_result(cached("k1", "kept"))
    assert await store.put_cached_result(cached("k2", "dropped", b"\x80" * 10))
    await store.delete_runs(["dropped"])
    assert await store.get_cached_result("k2") is not None  # delete_runs leaves them to gc

    result = await store.gc()
    assert (result.cached_results, result.cached_bytes) == (1, 10)
    assert (result.blobs, result.blob_bytes, result.blobs_kept) == (0, 0, 0)
    assert await store.get_cached_result("k2") is None
    assert await store.get_cached_result("k1") is not None
    assert (await store.gc()).cached_results == 0


async def test_gc_of_an_empty_store_deletes_nothing(store: Store) -> None:
    result = await store.gc()
    assert (result.cached_results, result.blobs, result.blobs_kept) == (0, 0, 0)
    assert result.freed >= 0
