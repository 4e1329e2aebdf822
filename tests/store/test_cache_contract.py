"""The Store contract of the stage result cache, on memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, StageDef
from crucible_actors.store import CachedResult, Checkpoint, StageAttempt, open_store

from .test_contract import start

if TYPE_CHECKING:
    from crucible_actors.store import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def result(
    key: str, stage: str = "score", *, data: bytes = b"\x81\xa1x\x01", n: int = 0
) -> CachedResult:
    return CachedResult(
        key=key,
        stage=stage,
        version="2",
        result=data,
        size=len(data),
        run_id=f"run-{key}",
        created_at=T0 + timedelta(seconds=n),
    )


async def test_a_stored_result_reads_back_with_its_bytes(store: Store) -> None:
    assert await store.get_cached_result("k1") is None
    assert await store.put_cached_result(result("k1")) is True
    found = await store.get_cached_result("k1")
    assert found == result("k1")


async def test_a_megabyte_result_round_trips_byte_for_byte(store: Store) -> None:
    data = os.urandom(1 << 20)
    assert await store.put_cached_result(result("big", data=data))
    found = await store.get_cached_result("big")
    assert found is not None
    assert found.result == data
    assert found.size == 1 << 20


async def test_the_first_write_of_a_key_wins(store: Store) -> None:
    assert await store.put_cached_result(result("k1", data=b"\x80"))
    assert await store.put_cached_result(result("k1", "other", data=b"\x90")) is False
    found = await store.get_cached_result("k1")
    assert found is not None
    assert (found.stage, found.result) == ("score", b"\x80")


async def test_concurrent_writes_of_one_key_store_it_once_without_error(store: Store) -> None:
    outcomes: list[bool] = []

    async def put(i: int) -> None:
        outcomes.append(await store.put_cached_result(result("k", data=bytes([0x90 + i]))))

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(put, i)
    assert sorted(outcomes) == [False] * 7 + [True]
    assert [r.key for r in await store.list_cached_results()] == ["k"]


async def test_listing_is_newest_first_without_bytes_and_filters_by_stage(store: Store) -> None:
    for n, (key, stage) in enumerate([("a", "load"), ("b", "score"), ("c", "load")]):
        await store.put_cached_result(result(key, stage, n=n))
    listed = await store.list_cached_results()
    assert [r.key for r in listed] == ["c", "b", "a"]
    assert all(r.result == b"" and r.size == 4 for r in listed)
    assert listed[0].created_at == T0 + timedelta(seconds=2)
    assert listed[0].run_id == "run-c"
    assert listed[0].version == "2"
    assert [r.key for r in await store.list_cached_results(stage="load")] == ["c", "a"]
    assert [r.key for r in await store.list_cached_results(limit=1)] == ["c"]
    assert await store.list_cached_results(stage="nope") == []


async def test_clear_removes_one_stage_or_everything_and_counts(store: Store) -> None:
    for key, stage in [("a", "load"), ("b", "score"), ("c", "load")]:
        await store.put_cached_result(result(key, stage))
    assert await store.clear_cached_results(stage="load") == 2
    assert [r.key for r in await store.list_cached_results()] == ["b"]
    assert await store.get_cached_result("a") is None
    assert await store.clear_cached_results() == 1
    assert await store.clear_cached_results() == 0
    # A cleared key can be stored again.
    assert await store.put_cached_result(result("a"))


async def test_attempts_record_whether_they_were_cache_hits(store: Store) -> None:
    await start(store, "r1")

    def attempt(index: int, hit: bool) -> StageAttempt:
        return StageAttempt(
            run_id="r1",
            index=index,
            stage=f"s{index}",
            attempt=1,
            status="completed",
            started_at=T0,
            finished_at=T0,
            duration=0.0,
            cache_hit=hit,
        )

    cp = Checkpoint(run_id="r1", index=1, data=b"\x80", created_at=T0)
    await store.save_checkpoint(cp, attempts=[attempt(0, True)])
    await store.record_attempt(attempt(1, False))
    found = await store.list_attempts("r1")
    assert [(a.stage, a.cache_hit) for a in found] == [("s0", True), ("s1", False)]


async def test_two_runtimes_on_one_database_share_results_and_store_a_key_once(
    shared_store_url: str,
) -> None:
    """Each runtime has its own store object (its own connections), as two processes do."""
    inside = 0
    both_inside = anyio.Event()

    @ca.stage("model")
    async def model(ctx: Context, opts: Any) -> Context:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_inside.set()
        await both_inside.wait()  # both runs miss before either stores
        return ctx.add_output({"id": "q1", "score": 0.5}).put_metric("n", 1)

    reg = registry_with(model)
    exp = Experiment(id="shared", pipeline=[StageDef(name="model", cache=True)])
    async with (
        open_store(shared_store_url, migrate=True) as one,
        open_store(shared_store_url, migrate=True) as two,
        ca.open_runtime(registry=reg, store=one) as rt1,
        ca.open_runtime(registry=reg, store=two) as rt2,
    ):
        runs = [await rt1.submit(exp), await rt2.submit(exp)]
        results = [await r.result() for r in runs]
        assert [r.metrics for r in results] == [{"n": 1}, {"n": 1}]
        assert inside == 2
        stored = await one.list_cached_results()
        assert len(stored) == 1
        assert stored[0].run_id in {r.run_id for r in runs}
        # A third run on either runtime is a hit, from the other's result or its own.
        third = await rt2.submit(exp)
        ctx = await third.result()
        assert inside == 2
        assert ctx.outputs == [{"id": "q1", "score": 0.5}]
        assert [a.cache_hit for a in await two.list_attempts(third.run_id)] == [True]
