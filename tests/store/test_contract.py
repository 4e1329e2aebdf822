"""The Store contract: every store (memory, SQLite file and in-memory, PostgreSQL) passes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from crucible_actors.errors import RunNotFound, StoreError
from crucible_actors.store import (
    ArtifactRecord,
    Checkpoint,
    ExperimentRecord,
    OwnerRecord,
    RunRecord,
    StageAttempt,
    TraceEventRecord,
)

if TYPE_CHECKING:
    from crucible_actors.store import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def experiment(exp_id: str = "exp", *, seconds: float = 0, **definition: Any) -> ExperimentRecord:
    return ExperimentRecord(
        id=exp_id,
        definition={"id": exp_id, "pipeline": [{"name": "a"}], **definition},
        owner="ada",
        tags=["t1"],
        metadata={"k": [1, 2]},
        created_at=at(seconds),
        updated_at=at(seconds),
    )


def new_run(
    run_id: str, *, exp_id: str = "exp", owner: str = "o1", seconds: float = 0
) -> RunRecord:
    return RunRecord(
        id=run_id,
        experiment_id=exp_id,
        status="running",
        metadata={"resumed_from": 0},
        started_at=at(seconds),
        owner_id=owner,
    )


def checkpoint(run_id: str, index: int, data: bytes = b"\x81\xa1x\x01") -> Checkpoint:
    return Checkpoint(run_id=run_id, index=index, data=data, created_at=at(index))


async def start(store: Store, run_id: str, **kw: Any) -> RunRecord:
    run = new_run(run_id, **kw)
    await store.start_run(
        run, experiment=experiment(run.experiment_id), checkpoint=checkpoint(run_id, 0)
    )
    return run


async def test_started_run_reads_back_as_running(store: Store) -> None:
    await start(store, "r1")
    run = await store.get_run("r1")
    assert run.status == "running"
    assert run.experiment_id == "exp"
    assert run.owner_id == "o1"
    assert run.started_at == T0
    assert run.finished_at is None
    assert run.metrics == {}
    assert run.outputs == []
    assert run.metadata == {"resumed_from": 0}


async def test_get_unknown_run_raises_run_not_found(store: Store) -> None:
    with pytest.raises(RunNotFound) as info:
        await store.get_run("nope")
    assert info.value.run_id == "nope"
    assert info.value.store == store.name


async def test_starting_an_existing_run_id_fails_without_touching_it(store: Store) -> None:
    await start(store, "r1")
    with pytest.raises(StoreError, match="already exists"):
        await store.start_run(new_run("r1", owner="o2"), experiment=experiment())
    assert (await store.get_run("r1")).owner_id == "o1"


async def test_resumed_start_updates_status_and_owner_and_keeps_started_at(store: Store) -> None:
    await start(store, "r1")
    await store.finish_run(
        RunRecord(
            id="r1",
            experiment_id="exp",
            status="failed",
            failure={"stage": "a", "reason_type": "E", "message": "m", "attempts": 1},
            finished_at=at(5),
            owner_id="o1",
        ),
        artifacts=[],
        events=[],
    )
    resumed = RunRecord(
        id="r1",
        experiment_id="exp",
        status="running",
        metadata={"resumed_from": 2},
        started_at=at(9),
        owner_id="o2",
    )
    await store.start_run(resumed, experiment=experiment(), resume=True)
    run = await store.get_run("r1")
    assert (run.status, run.owner_id, run.started_at) == ("running", "o2", T0)
    assert run.failure is None
    assert run.finished_at is None
    assert run.metadata == {"resumed_from": 2}


async def test_resumed_start_without_a_checkpoint_keeps_the_stored_ones(store: Store) -> None:
    # Recovery resumes from the store's own checkpoint and does not write it again.
    await start(store, "r1")
    await store.save_checkpoint(checkpoint("r1", 2, b"\x81\xa1y\x02"))
    await store.start_run(
        new_run("r1", owner="o2"), experiment=experiment(), checkpoint=None, resume=True
    )
    assert await store.load_checkpoint("r1") == checkpoint("r1", 2, b"\x81\xa1y\x02")
    assert (await store.get_run("r1")).owner_id == "o2"


async def test_resumed_start_of_an_unknown_run_creates_it(store: Store) -> None:
    await store.start_run(new_run("r9"), experiment=experiment(), resume=True)
    assert (await store.get_run("r9")).status == "running"


async def test_experiment_upsert_keeps_created_at_and_replaces_definition(store: Store) -> None:
    assert await store.get_experiment("exp") is None
    await store.start_run(new_run("r1"), experiment=experiment(seconds=0, v=1))
    await store.start_run(new_run("r2"), experiment=experiment(seconds=60, v=2))
    exp = await store.get_experiment("exp")
    assert exp is not None
    assert exp.created_at == T0
    assert exp.updated_at == at(60)
    assert exp.definition["v"] == 2
    assert (exp.owner, exp.tags, exp.metadata) == ("ada", ["t1"], {"k": [1, 2]})
    await store.start_run(new_run("r3", exp_id="other"), experiment=experiment("other", seconds=90))
    assert [e.id for e in await store.list_experiments()] == ["other", "exp"]
    assert [e.id for e in await store.list_experiments(limit=1)] == ["other"]


async def test_latest_checkpoint_is_the_highest_index(store: Store) -> None:
    assert await store.load_checkpoint("r1") is None
    await start(store, "r1")
    await store.save_checkpoint(checkpoint("r1", 2, b"two"))
    await store.save_checkpoint(checkpoint("r1", 1, b"one"))
    latest = await store.load_checkpoint("r1")
    assert latest is not None
    assert (latest.index, latest.data, latest.run_id) == (2, b"two", "r1")
    await store.save_checkpoint(checkpoint("r1", 2, b"TWO"))
    latest = await store.load_checkpoint("r1")
    assert latest is not None
    assert latest.data == b"TWO"


async def test_attempts_are_ordered_by_stage_then_attempt_and_upserted(store: Store) -> None:
    await start(store, "r1")

    def attempt(index: int, n: int, status: str, error: str | None = None) -> StageAttempt:
        return StageAttempt(
            run_id="r1",
            index=index,
            stage=f"s{index}",
            attempt=n,
            status=status,
            started_at=at(index * 10 + n),
            finished_at=at(index * 10 + n + 1),
            duration=1.0,
            error=error,
        )

    await store.record_attempt(attempt(1, 1, "completed"))
    await store.record_attempt(attempt(0, 2, "completed"))
    await store.record_attempt(attempt(0, 1, "failed", "ValueError: x"))
    await store.record_attempt(attempt(0, 1, "timeout", "StageTimeout: y"))
    found = await store.list_attempts("r1")
    assert [(a.index, a.attempt, a.status) for a in found] == [
        (0, 1, "timeout"),
        (0, 2, "completed"),
        (1, 1, "completed"),
    ]
    assert found[0].error == "StageTimeout: y"
    assert found[0].started_at == at(1)
    assert found[0].duration == 1.0
    assert await store.list_attempts("other") == []


def outcome(run_id: str, status: str = "completed", owner: str = "o1") -> RunRecord:
    return RunRecord(
        id=run_id,
        experiment_id="exp",
        status=status,
        metrics={"acc": 0.5, "when": "2024-05-01T12:00:00+00:00", "pair": [1, 2]},
        outputs=[{"a": 1}, "x"],
        metadata={"resumed_from": 0, "completed_stages": ["a"]},
        finished_at=at(30),
        owner_id=owner,
    )


def artifact(run_id: str, key: str, fmt: str) -> ArtifactRecord:
    return ArtifactRecord(
        run_id=run_id,
        key=key,
        name="report",
        type="report",
        location=f"/out/report.{fmt}",
        format=fmt,
        metadata={"bytes": 10},
    )


def event(run_id: str, seq: int) -> TraceEventRecord:
    return TraceEventRecord(
        run_id=run_id,
        seq=seq,
        type="stage_start",
        stage_id="a",
        timestamp=at(seq),
        event={"id": f"e{seq}", "type": "stage_start", "decision": "d"},
    )


async def test_finished_run_stores_outcome_artifacts_and_events(store: Store) -> None:
    await start(store, "r1")
    await store.finish_run(
        outcome("r1"),
        artifacts=[artifact("r1", "md", "md"), artifact("r1", "json", "json")],
        events=[event("r1", 1), event("r1", 2), event("r1", 3)],
    )
    run = await store.get_run("r1")
    assert run.status == "completed"
    assert run.metrics == {"acc": 0.5, "when": "2024-05-01T12:00:00+00:00", "pair": [1, 2]}
    assert run.outputs == [{"a": 1}, "x"]
    assert run.metadata == {"resumed_from": 0, "completed_stages": ["a"]}
    assert run.started_at == T0
    assert run.finished_at == at(30)
    assert await store.list_artifacts("r1") == [
        artifact("r1", "md", "md"),
        artifact("r1", "json", "json"),
    ]
    assert [e.seq for e in await store.list_events("r1")] == [1, 2, 3]
    assert [e.seq for e in await store.list_events("r1", after=2)] == [3]
    first = (await store.list_events("r1"))[0]
    assert first == event("r1", 1)


async def test_finishing_again_replaces_artifacts_and_events(store: Store) -> None:
    await start(store, "r1")
    await store.finish_run(
        outcome("r1", "failed"), artifacts=[artifact("r1", "md", "md")], events=[event("r1", 1)]
    )
    await store.finish_run(outcome("r1"), artifacts=[], events=[event("r1", 1), event("r1", 2)])
    assert await store.list_artifacts("r1") == []
    assert len(await store.list_events("r1")) == 2


async def test_finish_by_a_former_owner_is_refused(store: Store) -> None:
    await start(store, "r1", owner="old")
    assert await store.claim_run("r1", status="running", owner_id="old", new_owner_id="new")
    with pytest.raises(StoreError, match="owned by runtime 'new'"):
        await store.finish_run(outcome("r1", owner="old"), artifacts=[], events=[])
    assert (await store.get_run("r1")).status == "running"


async def test_finish_of_an_unknown_run_raises_run_not_found(store: Store) -> None:
    with pytest.raises(RunNotFound):
        await store.finish_run(outcome("ghost"), artifacts=[], events=[])


async def test_runs_list_newest_first_with_filters(store: Store) -> None:
    for i in range(5):
        await start(store, f"r{i}", exp_id="a" if i % 2 else "b", seconds=i)
    await store.finish_run(outcome("r1"), artifacts=[], events=[])
    assert [r.id for r in await store.list_runs()] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r.id for r in await store.list_runs(experiment_id="a")] == ["r3", "r1"]
    assert [r.id for r in await store.list_runs(status="completed")] == ["r1"]
    assert [r.id for r in await store.list_runs(status="running", experiment_id="a")] == ["r3"]
    assert [r.id for r in await store.list_runs(limit=2)] == ["r4", "r3"]


async def test_runs_page_with_before_cursor(store: Store) -> None:
    for i in range(7):
        await start(store, f"r{i}")
    pages: list[list[str]] = []
    before = None
    while True:
        page = await store.list_runs(limit=3, before=before)
        if not page:
            break
        pages.append([r.id for r in page])
        before = page[-1].id
    assert pages == [["r6", "r5", "r4"], ["r3", "r2", "r1"], ["r0"]]
    assert [r.id for r in await store.list_runs(before="r4", status="running", limit=2)] == [
        "r3",
        "r2",
    ]
    with pytest.raises(RunNotFound):
        await store.list_runs(before="missing")


async def test_claim_is_conditional_on_status_and_owner(store: Store) -> None:
    await start(store, "r1", owner="dead")
    assert not await store.claim_run("r1", status="running", owner_id="other", new_owner_id="me")
    assert not await store.claim_run("r1", status="failed", owner_id="dead", new_owner_id="me")
    assert not await store.claim_run("ghost", status="running", owner_id=None, new_owner_id="me")
    assert await store.claim_run("r1", status="running", owner_id="dead", new_owner_id="me")
    assert not await store.claim_run("r1", status="running", owner_id="dead", new_owner_id="you")
    assert (await store.get_run("r1")).owner_id == "me"


async def test_claim_of_a_finished_run_makes_it_running(store: Store) -> None:
    await start(store, "r1")
    await store.finish_run(outcome("r1", "interrupted"), artifacts=[], events=[])
    assert await store.claim_run("r1", status="interrupted", owner_id="o1", new_owner_id="o2")
    run = await store.get_run("r1")
    assert (run.status, run.owner_id) == ("running", "o2")


async def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    await start(store, "r1", owner="dead")
    wins: list[str] = []

    async def claim(me: str) -> None:
        if await store.claim_run("r1", status="running", owner_id="dead", new_owner_id=me):
            wins.append(me)

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(claim, f"o{i}")
    assert len(wins) == 1
    assert (await store.get_run("r1")).owner_id == wins[0]


async def test_mark_interrupted_only_touches_running_runs_of_that_owner(store: Store) -> None:
    await start(store, "r1", owner="dead")
    failure = {"stage": None, "reason_type": "Interrupted", "message": "gone"}
    assert not await store.mark_interrupted("r1", owner_id="live", finished_at=at(9))
    assert await store.mark_interrupted("r1", owner_id="dead", finished_at=at(9), failure=failure)
    run = await store.get_run("r1")
    assert (run.status, run.finished_at, run.failure) == ("interrupted", at(9), failure)
    assert not await store.mark_interrupted("r1", owner_id="dead", finished_at=at(10))


async def test_owners_register_heartbeat_and_leave(store: Store) -> None:
    owner = OwnerRecord(id="o1", host="h", pid=42, started_at=T0, heartbeat_at=T0)
    await store.register_owner(owner)
    await store.register_owner(
        OwnerRecord(id="o0", host="h2", pid=7, started_at=T0, heartbeat_at=T0)
    )
    assert await store.heartbeat("o1", at(10))
    assert not await store.heartbeat("ghost", at(10))
    owners = {o.id: o for o in await store.list_owners()}
    assert owners["o1"] == OwnerRecord(
        id="o1", host="h", pid=42, started_at=T0, heartbeat_at=at(10)
    )
    assert owners["o0"].pid == 7
    await store.remove_owner("o1")
    await store.remove_owner("ghost")
    assert [o.id for o in await store.list_owners()] == ["o0"]


async def test_many_concurrent_writers_lose_nothing(store: Store) -> None:
    async def one(i: int) -> None:
        await start(store, f"r{i:03}")
        await store.save_checkpoint(checkpoint(f"r{i:03}", 1, bytes([i])))
        await store.finish_run(outcome(f"r{i:03}"), artifacts=[], events=[])

    async with anyio.create_task_group() as tg:
        for i in range(60):
            tg.start_soon(one, i)
    runs = []
    before = None
    while page := await store.list_runs(limit=25, before=before):
        runs.extend(page)
        before = page[-1].id
    assert sorted(r.id for r in runs) == [f"r{i:03}" for i in range(60)]
    assert {r.status for r in runs} == {"completed"}
    cp = await store.load_checkpoint("r042")
    assert cp is not None
    assert cp.data == bytes([42])


async def test_one_bad_write_fails_alone(store: Store) -> None:
    await start(store, "dup")
    results: dict[str, str] = {}

    async def one(run_id: str) -> None:
        try:
            await start(store, run_id)
            results[run_id] = "ok"
        except StoreError:
            results[run_id] = "error"

    async with anyio.create_task_group() as tg:
        for run_id in ("a", "dup", "b", "c"):
            tg.start_soon(one, run_id)
    assert results == {"a": "ok", "dup": "error", "b": "ok", "c": "ok"}
    assert len(await store.list_runs()) == 4


async def test_a_refused_finish_fails_alone_among_concurrent_finishes(store: Store) -> None:
    # Finished together, the outcomes share one batch where the store batches writes; the
    # fenced one must fail on its own and the others still be stored.
    await start(store, "fenced", owner="old")
    assert await store.claim_run("fenced", status="running", owner_id="old", new_owner_id="new")
    for i in range(3):
        await start(store, f"ok{i}")
    errors: dict[str, BaseException] = {}

    async def finish(run_id: str, owner: str | None = None) -> None:
        try:
            kw = {} if owner is None else {"owner": owner}
            await store.finish_run(outcome(run_id, **kw), artifacts=[], events=[])
        except StoreError as exc:
            errors[run_id] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(finish, "ok0")
        tg.start_soon(finish, "fenced", "old")
        tg.start_soon(finish, "ok1")
        tg.start_soon(finish, "ok2")
    assert list(errors) == ["fenced"]
    assert "owned by runtime 'new'" in str(errors["fenced"])
    assert (await store.get_run("fenced")).status == "running"
    for i in range(3):
        assert (await store.get_run(f"ok{i}")).status == "completed"


# -- combined writes: what one run's persistence commits at once ----------------------


def done(run_id: str, index: int) -> StageAttempt:
    return StageAttempt(
        run_id=run_id,
        index=index,
        stage=f"s{index}",
        attempt=1,
        status="completed",
        started_at=at(index),
        finished_at=at(index + 0.5),
        duration=0.5,
    )


async def test_a_checkpoint_commits_with_the_attempts_that_led_to_it(store: Store) -> None:
    await start(store, "r1")
    await store.save_checkpoint(checkpoint("r1", 1, b"after s0"), attempts=[done("r1", 0)])
    cp = await store.load_checkpoint("r1")
    assert cp is not None
    assert (cp.index, cp.data) == (1, b"after s0")
    assert [(a.index, a.status, a.duration) for a in await store.list_attempts("r1")] == [
        (0, "completed", 0.5)
    ]


async def test_a_finish_commits_the_last_attempt_and_the_final_context(store: Store) -> None:
    await start(store, "r1")
    await store.save_checkpoint(checkpoint("r1", 1), attempts=[done("r1", 0)])
    await store.finish_run(
        outcome("r1"),
        artifacts=[],
        events=[],
        attempts=[done("r1", 1)],
        checkpoint=checkpoint("r1", 2, b"final"),
    )
    assert (await store.get_run("r1")).status == "completed"
    assert [a.index for a in await store.list_attempts("r1")] == [0, 1]
    cp = await store.load_checkpoint("r1")
    assert cp is not None
    assert (cp.index, cp.data) == (2, b"final")


async def test_a_refused_finish_saves_neither_its_attempts_nor_its_final_context(
    store: Store,
) -> None:
    await start(store, "r1", owner="old")
    assert await store.claim_run("r1", status="running", owner_id="old", new_owner_id="new")
    with pytest.raises(StoreError, match="owned by runtime 'new'"):
        await store.finish_run(
            outcome("r1", owner="old"),
            artifacts=[],
            events=[],
            attempts=[done("r1", 0)],
            checkpoint=checkpoint("r1", 1, b"stale"),
        )
    assert await store.list_attempts("r1") == []
    cp = await store.load_checkpoint("r1")
    assert cp is not None
    assert cp.index == 0


async def test_a_refused_start_saves_no_checkpoint(store: Store) -> None:
    await start(store, "r1")
    with pytest.raises(StoreError, match="already exists"):
        await store.start_run(
            new_run("r1", owner="o2"), experiment=experiment(), checkpoint=checkpoint("r1", 3)
        )
    cp = await store.load_checkpoint("r1")
    assert cp is not None
    assert cp.index == 0


async def test_100_concurrent_runs_of_combined_writes_lose_nothing(store: Store) -> None:
    # The shape of a persisted 5-stage run: start with the first checkpoint, each later
    # checkpoint with the attempt before it, the finish with the last attempt and the
    # final Context; 100 runs at once, as group commit batches them.
    async def one(i: int) -> None:
        run_id = f"r{i:03}"
        await start(store, run_id)
        for k in range(1, 5):
            await store.save_checkpoint(checkpoint(run_id, k), attempts=[done(run_id, k - 1)])
        await store.finish_run(
            outcome(run_id),
            artifacts=[],
            events=[event(run_id, 1)],
            attempts=[done(run_id, 4)],
            checkpoint=checkpoint(run_id, 5, run_id.encode()),
        )

    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(one, i)
    runs = []
    before = None
    while page := await store.list_runs(limit=40, before=before):
        runs.extend(page)
        before = page[-1].id
    assert {r.status for r in runs} == {"completed"}
    assert len(runs) == 100
    for run_id in ("r000", "r057", "r099"):
        assert [a.index for a in await store.list_attempts(run_id)] == [0, 1, 2, 3, 4]
        cp = await store.load_checkpoint(run_id)
        assert cp is not None
        assert (cp.index, cp.data) == (5, run_id.encode())
        assert [e.seq for e in await store.list_events(run_id)] == [1]
