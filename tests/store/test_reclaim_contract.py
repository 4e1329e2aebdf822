"""The Store contract of ``delete_runs`` and ``gc``, on memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import msgspec
import pytest
from tests.helpers import missing_extra

from crucible_actors._core._data import EXT_BLOB, BlobRef
from crucible_actors._core.persistence._blobs import digest_of
from crucible_actors.errors import RunNotFound, RunStillRunning
from crucible_actors.store import (
    CachedResult,
    OwnerRecord,
    SweepPointRecord,
    SweepRecord,
    open_store,
)
from crucible_actors.store._reclaim import SLACK, cutoff

from .test_contract import T0, artifact, at, checkpoint, done, event, outcome, start

if TYPE_CHECKING:
    from crucible_actors._core.persistence._blobs import BlobStore
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


# -- blobs ----------------------------------------------------------------------------


def blobs_of(store: Store) -> BlobStore:
    blobs = getattr(store, "blobs", None)
    assert blobs is not None, f"{type(store).__name__} has no blob store (every store has one)"
    return blobs  # type: ignore[no-any-return]


def put_blob(blobs: BlobStore, content: bytes) -> bytes:
    """Store ``content`` as a blob; return msgpack Context bytes referring to it."""
    digest = digest_of([content])
    blobs.put(digest, [content], len(content))
    ref = msgspec.msgpack.encode(BlobRef(digest, len(content), "msgpack", "bytes"))
    return msgspec.msgpack.encode({"assigns": {"X": msgspec.msgpack.Ext(EXT_BLOB, ref)}})


def digests(blobs: BlobStore) -> set[str]:
    return {info.digest for info in blobs.list()}


def blob_digest(content: bytes) -> str:
    return digest_of([content])


async def test_gc_deletes_the_blobs_nothing_names_and_keeps_the_others(store: Store) -> None:
    blobs = blobs_of(store)
    a, b, c, d = (bytes([i]) * 70_000 for i in range(4))
    await finished(store, "kept")
    await store.save_checkpoint(checkpoint("kept", 5, put_blob(blobs, a)))
    await store.put_cached_result(cached("k", "kept", put_blob(blobs, b)))
    put_blob(blobs, c)  # named by nothing
    await finished(store, "dropped")
    await store.save_checkpoint(checkpoint("dropped", 5, put_blob(blobs, d)))
    await store.delete_runs(["dropped"])

    result = await store.gc()
    assert (result.blobs, result.blob_bytes, result.blobs_kept) == (2, 140_000, 0)
    assert digests(blobs) == {blob_digest(a), blob_digest(b)}
    if store.local:  # a server's plain VACUUM keeps the space for its own reuse
        assert result.freed >= 140_000
    assert bytes(blobs.open(blob_digest(a))) == a
    again = await store.gc()
    assert (again.blobs, again.blobs_kept) == (0, 0)
    assert digests(blobs) == {blob_digest(a), blob_digest(b)}


async def test_gc_spares_blobs_written_since_the_oldest_live_run_started(store: Store) -> None:
    blobs = blobs_of(store)
    now = datetime.now(UTC)
    await start(store, "live", seconds=(now - T0).total_seconds() - 3600)  # an hour ago
    fresh = b"f" * 70_000
    put_blob(blobs, fresh)  # a checkpoint of "live" may be about to name it
    result = await store.gc()
    assert (result.blobs, result.blobs_kept) == (0, 1)
    assert digests(blobs) == {blob_digest(fresh)}

    await store.finish_run(outcome("live"), artifacts=[], events=[])
    result = await store.gc()
    assert (result.blobs, result.blob_bytes, result.blobs_kept) == (1, 70_000, 0)
    assert digests(blobs) == set()


async def test_while_a_runtime_is_registered_the_blobs_of_the_last_seconds_wait(
    store: Store,
) -> None:
    blobs = blobs_of(store)
    now = datetime.now(UTC)
    owner = OwnerRecord(id="rt", host="h", pid=1, started_at=now, heartbeat_at=now)
    await store.register_owner(owner)
    put_blob(blobs, b"s" * 70_000)  # a run being submitted writes before its row exists
    result = await store.gc()
    assert (result.blobs, result.blobs_kept) == (0, 1)
    await store.remove_owner("rt")
    result = await store.gc()
    assert (result.blobs, result.blobs_kept) == (1, 0)


def test_the_cutoff_is_the_oldest_live_start_or_now_less_a_slack_while_runtimes_are_up() -> None:
    slack = timedelta(seconds=SLACK)
    now, start_ = at(100), at(40)
    assert cutoff(now, None, 0) == now
    assert cutoff(now, None, 1) == now - slack
    assert cutoff(now, start_, 0) == start_ - slack
    assert cutoff(now, at(200), 1) == now - slack  # a start "in the future": now bounds it


async def test_gc_keeps_blobs_written_after_it_started_when_nothing_runs(store: Store) -> None:
    blobs = blobs_of(store)
    put_blob(blobs, b"n" * 70_000)
    result = await store.gc(now=datetime.now(UTC) - timedelta(minutes=1))
    assert (result.blobs, result.blobs_kept) == (0, 1)


async def test_while_a_run_is_live_the_blobs_of_dropped_cached_results_wait(
    store: Store,
) -> None:
    blobs = blobs_of(store)
    content = b"c" * 70_000
    await finished(store, "dropped")
    await store.put_cached_result(cached("k", "dropped", put_blob(blobs, content)))
    await store.delete_runs(["dropped"])
    # A live run that started an hour after the blob was written (the clock of gc is an
    # hour and a half on): only the cache rule spares it (the run may have taken the
    # cached result and not committed its checkpoint yet).
    now = datetime.now(UTC)
    await start(store, "live", seconds=(now + timedelta(hours=1) - T0).total_seconds())
    later = now + timedelta(hours=1.5)
    result = await store.gc(now=later)
    assert (result.cached_results, result.blobs, result.blobs_kept) == (1, 0, 0)
    assert digests(blobs) == {blob_digest(content)}

    await store.finish_run(outcome("live"), artifacts=[], events=[])
    result = await store.gc(now=later)
    assert (result.cached_results, result.blobs) == (0, 1)
    assert digests(blobs) == set()


async def test_a_damaged_row_still_keeps_the_blob_it_names(store: Store) -> None:
    blobs = blobs_of(store)
    content = b"r" * 70_000
    await finished(store, "odd")
    # Truncated msgpack that still holds a reference: the digest is found by a scan.
    damaged = put_blob(blobs, content)[:-3]
    await store.save_checkpoint(checkpoint("odd", 5, damaged))
    result = await store.gc()
    assert result.blobs == 0
    assert digests(blobs) == {blob_digest(content)}


@pytest.mark.postgres
async def test_a_resume_that_claims_a_run_during_its_deletion_wins_on_postgres(
    pg_url: str,
) -> None:
    """The claim commits while the delete waits on its row lock: the delete is refused."""
    psycopg = pytest.importorskip("psycopg", reason=missing_extra("postgres"))
    async with open_store(pg_url, migrate=True) as store:
        await finished(store, "r1")
        claimer = await anyio.to_thread.run_sync(lambda: psycopg.connect(pg_url, autocommit=False))
        try:
            await anyio.to_thread.run_sync(
                claimer.execute, "UPDATE runs SET status = 'running' WHERE id = 'r1'"
            )
            outcome_: list[BaseException | None] = []

            async def delete() -> None:
                try:
                    await store.delete_runs(["r1"])
                except RunStillRunning as exc:
                    outcome_.append(exc)
                else:
                    outcome_.append(None)

            async with anyio.create_task_group() as tg:
                tg.start_soon(delete)
                await wait_for_lock_wait(pg_url)
                await anyio.to_thread.run_sync(claimer.commit)
        finally:
            await anyio.to_thread.run_sync(claimer.close)
        assert len(outcome_) == 1
        assert isinstance(outcome_[0], RunStillRunning)
        assert (await store.get_run("r1")).status == "running"
        assert len(await store.list_attempts("r1")) == 2


async def wait_for_lock_wait(pg_url: str) -> None:
    """Return once a session of this database waits on a row lock (the delete)."""
    import psycopg

    def waiting() -> bool:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            ).fetchone()
            return bool(row and row[0])

    with anyio.fail_after(10):
        while not await anyio.to_thread.run_sync(waiting):  # noqa: ASYNC110 (server state)
            await anyio.sleep(0.01)  # polls the server's state; no ordering relies on it
