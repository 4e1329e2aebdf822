"""Recovery on start: orphaned runs are resumed from their checkpoint or marked interrupted."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from tests.helpers import registry_with

from crucible_actors import Context, Experiment, Registry, StageDef, open_runtime, stage
from crucible_actors._core._encoding import encode_context
from crucible_actors._core.persistence._persistence import owner_is_dead
from crucible_actors.errors import CheckpointDecodeError, RunNotFound, StoreError
from crucible_actors.store import (
    Checkpoint,
    ExperimentRecord,
    OwnerRecord,
    RunRecord,
    open_persistence,
)

if TYPE_CHECKING:
    from crucible_actors.store import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
HOST = socket.gethostname()
DEAD_PID = 999_999_999


def later(seconds: float) -> Any:
    return lambda: T0 + timedelta(seconds=seconds)


def owner(owner_id: str, *, host: str = "elsewhere", pid: int = 1, beat: float = 0) -> OwnerRecord:
    return OwnerRecord(
        id=owner_id, host=host, pid=pid, started_at=T0, heartbeat_at=T0 + timedelta(seconds=beat)
    )


# -- the orphan rule -------------------------------------------------------------------


def test_missing_owner_is_dead() -> None:
    assert owner_is_dead(None, now=T0, stale_after=60, host=HOST, local=True)


def test_fresh_owner_on_another_host_is_alive() -> None:
    assert not owner_is_dead(
        owner("o", beat=0), now=later(60)(), stale_after=60, host=HOST, local=True
    )


def test_stale_heartbeat_is_dead_everywhere() -> None:
    o = owner("o", beat=0)
    for local in (True, False):
        assert owner_is_dead(o, now=later(60.5)(), stale_after=60, host=HOST, local=local)


def test_dead_pid_on_this_host_counts_only_for_local_stores() -> None:
    o = owner("o", host=HOST, pid=DEAD_PID)
    assert owner_is_dead(o, now=T0, stale_after=60, host=HOST, local=True)
    assert not owner_is_dead(o, now=T0, stale_after=60, host=HOST, local=False)
    assert not owner_is_dead(
        o, now=T0, stale_after=60, host=HOST, local=True, pid_alive=lambda pid: True
    )


def test_live_pid_on_this_host_is_alive() -> None:
    o = owner("o", host=HOST, pid=os.getpid())
    assert not owner_is_dead(o, now=T0, stale_after=60, host=HOST, local=True)


# -- recovery through open_runtime -------------------------------------------------------

CALLS: list[str] = []


def counting(name: str) -> Any:
    @stage(name)
    async def run(ctx: Context, opts: Any) -> Context:
        CALLS.append(f"{ctx.run_id}:{name}")
        return ctx.put_metric(name, ctx.get_metric(name, 0) + 1)

    return run


@pytest.fixture
def registry() -> Registry:
    CALLS.clear()
    return registry_with(*(counting(name) for name in ("a", "b", "c")))


EXP = Experiment(id="rec", pipeline=[StageDef(name="a"), StageDef(name="b"), StageDef(name="c")])


async def seed(
    store: Store,
    run_id: str,
    *,
    index: int,
    owner_row: OwnerRecord | None,
    owner_id: str = "dead",
    data: bytes | None = None,
) -> None:
    """Store a run left ``running`` by ``owner_id`` with a checkpoint before ``index``."""
    ctx = Context.new(EXP, run_id=run_id)
    for name in ("a", "b", "c")[:index]:
        ctx = ctx.put_metric(name, 1).mark_stage_complete(name)
    if owner_row is not None:
        await store.register_owner(owner_row)
    await store.start_run(
        RunRecord(
            id=run_id, experiment_id=EXP.id, status="running", started_at=T0, owner_id=owner_id
        ),
        experiment=ExperimentRecord(
            id=EXP.id, definition={"id": EXP.id}, created_at=T0, updated_at=T0
        ),
        checkpoint=Checkpoint(
            run_id=run_id,
            index=index,
            data=data if data is not None else encode_context(ctx),
            created_at=T0,
        ),
    )


async def test_default_marks_runs_of_a_stale_owner_interrupted(
    store: Store, registry: Registry
) -> None:
    await seed(store, "r1", index=1, owner_row=owner("dead", beat=0))
    async with (
        open_persistence(store, now=later(3600)) as p,
        open_runtime(store=p, registry=registry),
    ):
        assert p.last_recovery.interrupted == ["r1"]
    run = await store.get_run("r1")
    assert run.status == "interrupted"
    assert run.finished_at == T0 + timedelta(seconds=3600)
    assert run.failure is not None
    assert run.failure["reason_type"] == "Interrupted"
    assert "pid 1 on elsewhere" in run.failure["message"]
    assert CALLS == []
    assert [o.id for o in await store.list_owners()] == []  # the dead owner is cleaned up


async def test_runs_of_a_live_owner_are_left_alone(store: Store, registry: Registry) -> None:
    await seed(store, "r1", index=1, owner_row=owner("live", beat=0), owner_id="live")
    for policy in ("mark_interrupted", "resume"):
        async with (
            open_persistence(store, now=later(30), pid_alive=lambda pid: True) as p,
            open_runtime(store=p, registry=registry, on_start=policy),
        ):
            pass
        assert p.last_recovery.resumed == []
        assert p.last_recovery.interrupted == []
    run = await store.get_run("r1")
    assert (run.status, run.owner_id) == ("running", "live")
    assert "live" in [o.id for o in await store.list_owners()]


async def test_ignore_leaves_orphans_running(store: Store, registry: Registry) -> None:
    await seed(store, "r1", index=1, owner_row=None)
    async with open_runtime(store=store, registry=registry, on_start="ignore"):
        pass
    assert (await store.get_run("r1")).status == "running"


async def test_a_dead_pid_on_this_host_orphans_runs_only_on_a_local_store(
    store: Store, registry: Registry
) -> None:
    await seed(store, "r1", index=1, owner_row=owner("dead", host=HOST, pid=DEAD_PID, beat=0))
    async with (
        open_persistence(store, now=later(1), pid_alive=lambda pid: pid != DEAD_PID) as p,
        open_runtime(store=p, registry=registry),
    ):
        pass
    # A shared (PostgreSQL) store only trusts heartbeats: host names repeat across
    # containers, and the heartbeat here is one second old.
    expected = "interrupted" if store.local else "running"
    assert (await store.get_run("r1")).status == expected


async def test_resume_continues_from_the_checkpoint_without_rerunning_stages(
    store: Store, registry: Registry
) -> None:
    await seed(store, "r1", index=2, owner_row=None)
    async with (
        open_persistence(store, now=later(10)) as p,
        open_runtime(store=p, registry=registry, on_start="resume") as rt,
    ):
        assert p.last_recovery.resumed == ["r1"]
        handle = rt.get("r1")
        assert handle is not None
        ctx = await handle.result()
    assert CALLS == ["r1:c"]
    assert ctx.metrics == {"a": 1, "b": 1, "c": 1}
    run = await store.get_run("r1")
    assert run.status == "completed"
    assert run.started_at == T0  # the original start is kept
    assert run.metadata["resumed_from"] == 2
    assert run.metrics == {"a": 1, "b": 1, "c": 1}
    assert [(a.index, a.stage) for a in await store.list_attempts("r1")] == [(2, "c")]
    assert len(await store.list_runs()) == 1


async def test_resume_from_the_first_stage_reuses_the_run_row(
    store: Store, registry: Registry
) -> None:
    await seed(store, "r0", index=0, owner_row=None)
    async with open_runtime(store=store, registry=registry, on_start="resume") as rt:
        handle = rt.get("r0")
        assert handle is not None
        await handle.result()
    assert CALLS == ["r0:a", "r0:b", "r0:c"]
    assert (await store.get_run("r0")).status == "completed"


async def test_resume_after_the_final_checkpoint_only_records_the_outcome(
    store: Store, registry: Registry
) -> None:
    await seed(store, "r3", index=3, owner_row=None)
    async with open_runtime(store=store, registry=registry, on_start="resume") as rt:
        handle = rt.get("r3")
        assert handle is not None
        await handle.result()
    assert CALLS == []
    run = await store.get_run("r3")
    assert (run.status, run.metrics) == ("completed", {"a": 1, "b": 1, "c": 1})


async def test_an_undecodable_checkpoint_marks_the_run_interrupted_with_the_reason(
    store: Store, registry: Registry
) -> None:
    await seed(store, "old", index=1, owner_row=None, data=b"\x93\x01\x02\x03")
    async with (
        open_persistence(store) as p,
        open_runtime(store=p, registry=registry, on_start="resume"),
    ):
        assert p.last_recovery.interrupted == ["old"]
    run = await store.get_run("old")
    assert run.status == "interrupted"
    assert run.failure is not None
    assert run.failure["reason_type"] == "CheckpointDecodeError"
    assert "incompatible version" in run.failure["message"]
    assert store.name in run.failure["message"]


async def test_resume_run_raises_checkpoint_decode_error_naming_the_store(
    store: Store, registry: Registry
) -> None:
    await seed(store, "old", index=1, owner_row=None, data=b"not msgpack at all")
    async with (
        open_persistence(store) as p,
        open_runtime(store=p, registry=registry, on_start="ignore") as rt,
    ):
        with pytest.raises(CheckpointDecodeError) as info:
            await p.resume_run(rt, "old")
    assert info.value.store == store.name
    assert "'old'" in str(info.value)
    assert (await store.get_run("old")).status == "interrupted"


async def test_resume_run_reruns_only_the_stage_that_failed(
    store: Store, registry: Registry
) -> None:
    flaky = {"fail": True}

    @stage("b")
    async def b(ctx: Context, opts: Any) -> Context:
        CALLS.append(f"{ctx.run_id}:b")
        if flaky["fail"]:
            raise RuntimeError("not yet")
        return ctx.put_metric("b", 1)

    registry.register(b, replace=True)
    async with open_runtime(store=store, registry=registry) as rt:
        handle = await rt.submit(EXP, run_id="f1")
        await handle.wait()
    assert (await store.get_run("f1")).status == "failed"
    flaky["fail"] = False
    async with (
        open_persistence(store) as p,
        open_runtime(store=p, registry=registry, on_start="ignore") as rt,
    ):
        handle = await p.resume_run(rt, "f1")
        ctx = await handle.result()
    assert CALLS == ["f1:a", "f1:b", "f1:b", "f1:c"]
    assert ctx.metrics == {"a": 1, "b": 1, "c": 1}
    run = await store.get_run("f1")
    assert (run.status, run.failure) == ("completed", None)
    assert [(a.index, a.attempt, a.status) for a in await store.list_attempts("f1")] == [
        (0, 1, "completed"),
        (1, 1, "completed"),
        (2, 1, "completed"),
    ]


async def test_resume_run_refuses_completed_live_and_unknown_runs(
    store: Store, registry: Registry
) -> None:
    async with open_runtime(store=store, registry=registry) as rt:
        await (await rt.submit(EXP, run_id="done")).result()
    await seed(store, "busy", index=1, owner_row=owner("live", beat=0), owner_id="live")
    async with (
        open_persistence(store, now=later(1)) as p,
        open_runtime(store=p, registry=registry, on_start="ignore") as rt,
    ):
        with pytest.raises(StoreError, match="already completed"):
            await p.resume_run(rt, "done")
        with pytest.raises(StoreError, match="still running in process 1 on elsewhere"):
            await p.resume_run(rt, "busy")
        with pytest.raises(RunNotFound):
            await p.resume_run(rt, "ghost")


async def test_two_runtimes_recovering_at_once_resume_each_orphan_once(
    store: Store, registry: Registry
) -> None:
    for i in range(6):
        await seed(store, f"o{i}", index=1, owner_row=None)
    resumed: list[str] = []

    async def recover() -> None:
        async with (
            open_persistence(store) as p,
            open_runtime(store=p, registry=registry, on_start="resume") as rt,
        ):
            await rt.wait_idle()
        resumed.extend(p.last_recovery.resumed)

    async with anyio.create_task_group() as tg:
        tg.start_soon(recover)
        tg.start_soon(recover)
    assert sorted(resumed) == [f"o{i}" for i in range(6)]
    assert sorted(CALLS) == sorted(f"o{i}:{s}" for i in range(6) for s in ("b", "c"))
    assert {r.status for r in await store.list_runs()} == {"completed"}
