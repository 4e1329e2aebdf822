"""A runtime leaving with ``on_shutdown="interrupt"``: its runs are stored ``interrupted``
with their last checkpoint, and the next ``on_start="resume"`` continues them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest
from tests.helpers import registry_with

from crucible_actors import (
    Context,
    Experiment,
    RunCancelled,
    RunStatus,
    RuntimeShutdown,
    StageDef,
    cleanup_scope,
    open_runtime,
    stage,
)
from crucible_actors.store import MemoryStore, open_persistence, open_store

if TYPE_CHECKING:
    from crucible_actors import RunHandle
    from crucible_actors.store import Checkpoint, Store

EXP = Experiment(id="shut", pipeline=[StageDef(name="a"), StageDef(name="b"), StageDef(name="c")])


class Stages:
    """Stages a, b, c; ``b`` blocks while ``hold`` is set, until the run is stopped."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.hold = True
        self.entered = anyio.Event()
        self.in_b = 0
        self.registry = registry_with(*(self._make(name) for name in ("a", "b", "c")))

    def _make(self, name: str) -> Any:
        @stage(name)
        async def run(ctx: Context, opts: Any) -> Context:
            self.calls.append(f"{ctx.run_id}:{name}")
            if name == "b" and self.hold:
                self.in_b += 1
                self.entered.set()
                await anyio.sleep_forever()
            return ctx.put_metric(name, ctx.get_metric(name, 0) + 1)

        return run

    def of(self, run_id: str) -> list[str]:
        return [c.split(":")[1] for c in self.calls if c.startswith(f"{run_id}:")]


async def interrupt_in_b(store: Any, stages: Stages, *run_ids: str) -> list[RunHandle]:
    """Submit ``run_ids``, wait until each is blocked in stage b, leave the runtime."""
    async with open_runtime(store=store, registry=stages.registry, on_shutdown="interrupt") as rt:
        handles = [await rt.submit(EXP, run_id=r) for r in run_ids]
        while stages.in_b < len(run_ids):
            await stages.entered.wait()
            stages.entered = anyio.Event()
    return handles


async def test_an_interrupted_run_is_stored_interrupted_and_resumes_after_its_last_stage(
    store: Store,
) -> None:
    stages = Stages()
    [handle] = await interrupt_in_b(store, stages, "r1")
    assert handle.status is RunStatus.INTERRUPTED
    with pytest.raises(RuntimeShutdown) as info:
        await handle.result()
    assert (info.value.run_id, info.value.stage) == ("r1", "b")
    assert "runs resume r1" in str(info.value)
    assert [e.type for e in handle.events_nowait()][-1] == "run_interrupted"
    run = await store.get_run("r1")
    assert run.status == "interrupted"
    assert run.failure is not None
    assert (run.failure["reason_type"], run.failure["stage"]) == ("RuntimeShutdown", "b")
    checkpoint = await store.load_checkpoint("r1")
    assert checkpoint is not None
    assert checkpoint.index == 1
    attempts = [(a.index, a.attempt, a.status) for a in await store.list_attempts("r1")]
    assert attempts == [(0, 1, "completed"), (1, 1, "cancelled")]

    stages.hold = False
    async with (
        open_persistence(store) as p,
        open_runtime(store=p, registry=stages.registry, on_start="resume") as rt,
    ):
        assert p.last_recovery.resumed == ["r1"]
        resumed = rt.get("r1")
        assert resumed is not None
        assert resumed.resumed_from == 1
        ctx = await resumed.result()
    assert stages.of("r1") == ["a", "b", "b", "c"]  # a ran once; b again, from its start
    assert ctx.metrics == {"a": 1, "b": 1, "c": 1}
    run = await store.get_run("r1")
    assert (run.status, run.failure, run.metrics) == ("completed", None, ctx.metrics)
    assert run.metadata["resumed_from"] == 1


async def test_cancel_on_shutdown_stays_the_default_and_is_never_resumed(
    tmp_path: Any,
) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"
    stages = Stages()
    async with open_runtime(store=url, registry=stages.registry) as rt:
        handle = await rt.submit(EXP, run_id="r1")
        await stages.entered.wait()
    assert handle.status is RunStatus.CANCELLED
    with pytest.raises(RunCancelled):
        await handle.result()
    stages.hold = False
    async with (
        open_persistence(url) as p,
        open_runtime(store=p, registry=stages.registry, on_start="resume"),
    ):
        assert p.last_recovery.resumed == []
    async with open_store(url) as store:
        run = await store.get_run("r1")
    assert run.status == "cancelled"
    assert run.failure is not None
    assert run.failure["reason_type"] == "RunCancelled"
    assert stages.of("r1") == ["a", "b"]


async def test_mark_interrupted_and_ignore_leave_shutdown_interrupted_runs_for_a_later_resume(
    tmp_path: Any,
) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"
    stages = Stages()
    await interrupt_in_b(url, stages, "r1", "r2")
    stages.hold = False
    async with open_store(url) as store:
        before = await store.get_run("r1")
        for policy in ("mark_interrupted", "ignore"):
            async with (
                open_persistence(store) as p,
                open_runtime(store=p, registry=stages.registry, on_start=policy),
            ):
                assert (p.last_recovery.resumed, p.last_recovery.interrupted) == ([], [])
            assert await store.get_run("r1") == before
        async with (
            open_persistence(store) as p,
            open_runtime(store=p, registry=stages.registry, on_start="resume") as rt,
        ):
            assert sorted(p.last_recovery.resumed) == ["r1", "r2"]
            await rt.wait_idle()
        assert {r.status for r in await store.list_runs()} == {"completed"}
    assert stages.of("r1") == stages.of("r2") == ["a", "b", "b", "c"]


async def test_a_run_cancelled_on_request_stays_cancelled_when_the_runtime_interrupts(
    tmp_path: Any,
) -> None:
    stages = Stages()
    started = anyio.Event()
    cleaning = anyio.Event()
    release = anyio.Event()

    @stage("slow_cleanup")
    async def slow_cleanup(ctx: Context, opts: Any) -> Context:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            with cleanup_scope():
                cleaning.set()
                await release.wait()  # still cleaning up when the runtime shuts down
        return ctx

    @stage("frees")
    async def frees(ctx: Context, opts: Any) -> Context:
        stages.entered.set()
        try:
            await anyio.sleep_forever()
        finally:
            release.set()  # runs when the shutdown stops this run
        return ctx

    stages.registry.register(slow_cleanup)
    stages.registry.register(frees)
    url = f"sqlite:///{tmp_path}/runs.db"
    # The task group outlives the runtime: the cancel is still waiting when it closes.
    async with (
        anyio.create_task_group() as tg,
        open_runtime(store=url, registry=stages.registry, on_shutdown="interrupt") as rt,
    ):
        asked = await rt.submit(Experiment(id="x", pipeline=[StageDef(name="slow_cleanup")]))
        other = await rt.submit(Experiment(id="y", pipeline=[StageDef(name="frees")]))
        await stages.entered.wait()
        await started.wait()  # cancelled before its stage began, it would not clean up
        tg.start_soon(asked.cancel)
        await cleaning.wait()
        assert not asked.done
    assert asked.status is RunStatus.CANCELLED
    assert other.status is RunStatus.INTERRUPTED
    async with open_store(url) as store:
        assert (await store.get_run(asked.run_id)).status == "cancelled"
        assert (await store.get_run(other.run_id)).status == "interrupted"


class CheckpointCut(MemoryStore):
    """A store whose first checkpoint before stage 1 never returns (cut by the shutdown)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked = anyio.Event()
        self.starts: list[Checkpoint | None] = []

    async def save_checkpoint(self, checkpoint: Checkpoint, **kw: Any) -> None:
        if checkpoint.index == 1 and not self.blocked.is_set():
            self.blocked.set()
            await anyio.sleep_forever()
        await super().save_checkpoint(checkpoint, **kw)

    async def start_run(self, run: Any, *, checkpoint: Any = None, **kw: Any) -> None:
        self.starts.append(checkpoint)
        await super().start_run(run, checkpoint=checkpoint, **kw)


async def test_a_shutdown_between_stages_checkpoints_the_stage_that_completed() -> None:
    store = CheckpointCut()
    stages = Stages()
    async with open_runtime(store=store, registry=stages.registry, on_shutdown="interrupt") as rt:
        handle = await rt.submit(EXP, run_id="r1")
        await store.blocked.wait()  # a completed; its checkpoint write is in flight
    assert handle.status is RunStatus.INTERRUPTED
    assert isinstance(handle.error, RuntimeShutdown)
    assert handle.error.stage == "b"
    checkpoint = await store.load_checkpoint("r1")
    assert checkpoint is not None
    assert checkpoint.index == 1
    assert [(a.index, a.status) for a in await store.list_attempts("r1")] == [(0, "completed")]
    stages.hold = False
    async with open_runtime(store=store, registry=stages.registry, on_start="resume") as rt:
        resumed = rt.get("r1")
        assert resumed is not None
        await resumed.result()
    assert stages.of("r1") == ["a", "b", "c"]
    # The resume starts from the checkpoint the store holds: not written a second time.
    assert [c.index if c is not None else None for c in store.starts] == [0, None]


async def test_runtime_resume_with_its_own_snapshot_still_stores_it() -> None:
    store = CheckpointCut()
    store.blocked.set()  # no cut
    stages = Stages()
    stages.hold = False
    async with open_runtime(store=store, registry=stages.registry) as rt:
        done = await (await rt.submit(EXP, run_id="r1")).result()
        assert store.starts[0] is not None
        handle = await rt.resume(EXP, "r2", store.starts[0].data, 0)
        await handle.result()
    assert done.metrics == {"a": 1, "b": 1, "c": 1}
    assert [c is not None for c in store.starts] == [True, True]


@pytest.mark.postgres
async def test_two_runtimes_on_one_postgres_store_resume_each_interrupted_run_once(
    pg_url: str,
) -> None:
    stages = Stages()
    run_ids = [f"r{i}" for i in range(8)]
    async with open_store(pg_url, migrate=True) as one, open_store(pg_url) as two:
        await interrupt_in_b(one, stages, *run_ids)
        stages.hold = False
        resumed: list[list[str]] = []

        async def resume_on(store: Store) -> None:
            async with (
                open_persistence(store) as p,
                open_runtime(store=p, registry=stages.registry, on_start="resume") as rt,
            ):
                await rt.wait_idle()
            resumed.append(p.last_recovery.resumed)

        async with anyio.create_task_group() as tg:
            tg.start_soon(resume_on, one)  # two connection pools: the claim is the server's
            tg.start_soon(resume_on, two)
        assert sorted(resumed[0] + resumed[1]) == run_ids
        assert {r.status for r in await two.list_runs()} == {"completed"}
    for run_id in run_ids:
        assert stages.of(run_id) == ["a", "b", "b", "c"]
