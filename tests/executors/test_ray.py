"""The Ray executor (``isolation="ray"``) against a real local Ray.

The stages are defined here, in the test module: Ray ships them to its workers. One local
Ray (2 CPUs) serves the module (``ray_local``); the on-demand test stops it first, to see
the runtime start and stop a Ray of its own.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest
from tests.helpers import missing_extra, registry_with

pytest.importorskip("ray", reason=missing_extra("ray"))

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef, StageFailed
from crucible_actors.errors import ExecutorError, InvalidExperiment

from . import pool_stages
from .conftest import pid_gone, wait_until
from .pool_stages import write_atomically

if TYPE_CHECKING:
    from crucible_actors.executors import RayExecutor

pytestmark = pytest.mark.slow


@ca.stage("where")
def where(ctx: Context, opts: Any) -> Context:
    return ctx.put_metric("pid", os.getpid()).put_metric("n", ctx.get_metric("n", 0) + 1)


@ca.stage("async_where")
async def async_where(ctx: Context, opts: Any) -> Context:
    await anyio.lowlevel.checkpoint()
    return ctx.put_metric("async_pid", os.getpid())


class Scorer(ca.Stage):
    """A stateful stage: an async ``setup`` loads 'weights' once per actor."""

    name = "scorer"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": "d", "required": [], "optional": [], "types": {}}

    async def setup(self) -> None:
        await anyio.lowlevel.checkpoint()
        self.weights = {"pid": os.getpid(), "token": uuid.uuid4().hex}

    def run(self, ctx: Context, opts: Any) -> Context:
        return (
            ctx.put_metric("loaded_by", self.weights["pid"])
            .put_metric("token", self.weights["token"])
            .put_metric("pid", os.getpid())
        )


class ExitingScorer(Scorer):
    """A stateful stage whose actor process dies during its first attempt."""

    name = "exiting_scorer"

    def run(self, ctx: Context, opts: Any) -> Context:
        if ctx.telemetry_context["attempt"] == 1:
            os._exit(1)
        return super().run(ctx, opts)


class HangingScorer(Scorer):
    """A stateful stage whose first attempt hangs (until its actor is killed)."""

    name = "hanging_scorer"

    def run(self, ctx: Context, opts: Any) -> Context:
        attempt = ctx.telemetry_context["attempt"]
        write_atomically(Path(opts["dir"], f"attempt{attempt}.pid"), str(os.getpid()))
        if attempt == 1:
            time.sleep(60)
        return super().run(ctx, opts)


class Unshippable(ca.Stage):
    """Holds a lock: Ray cannot serialize it."""

    name = "unshippable"

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": "d", "required": [], "optional": [], "types": {}}

    def run(self, ctx: Context, opts: Any) -> Context:
        return ctx


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (
    where,
    async_where,
    pool_stages.exit_once,
    pool_stages.hang_once,
    Scorer,
    ExitingScorer,
    HangingScorer,
    Unshippable(),
)


def _ray_executor(rt: ca.Runtime) -> RayExecutor:
    from crucible_actors.executors import RayExecutor

    executor = rt.executors["ray"]
    assert isinstance(executor, RayExecutor)
    return executor


def test_a_ray_stage_runs_on_a_local_ray_started_on_demand_and_stopped_after() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(name="where", isolation="ray", resources={"num_cpus": 1}),
            StageDef(name="async_where", isolation="ray", resources={"num_cpus": 1}),
        ],
    )
    ctx = ca.run(exp, registry=registry_with(*STAGES), assigns={"x": 1})
    assert ctx.get_metric("pid") != os.getpid()
    assert ctx.get_metric("async_pid") != os.getpid()
    assert ctx.completed_stages() == ["where", "async_where"]
    assert ctx.assigns["x"] == 1
    assert not ray.is_initialized()  # the runtime started it, so it stopped it


@pytest.mark.usefixtures("ray_local")
async def test_a_worker_that_exits_mid_task_is_a_crash_retried_once() -> None:
    exp = Experiment(
        id="e", pipeline=[StageDef(name="exit_once", isolation="ray", restart="transient")]
    )
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        handle = await rt.submit(exp)
        ctx = await handle.result()
        assert not _ray_executor(rt).statistics()["started_ray"]  # it used the session's
    assert [a.status for a in handle.attempts] == ["failed", "completed"]
    assert "WorkerCrashed" in (handle.attempts[0].error or "")
    assert [e.type async for e in handle.events()].count("stage_restarted") == 1
    assert ctx.get_metric("pid") != os.getpid()


async def test_a_timed_out_task_is_cancelled_and_the_retry_runs_in_a_fresh_worker(
    tmp_path: Path, ray_local: Any
) -> None:
    timeout = 3.0
    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(name="where", isolation="ray"),  # Ray's workers are up from here
            StageDef(
                name="hang_once",
                isolation="ray",
                timeout=timeout,
                restart="transient",
                options={"dir": str(tmp_path)},
            ),
        ],
    )
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        handle = await rt.submit(exp)
        ctx = await handle.result()
    timed_out = next(a for a in handle.attempts if a.stage == "hang_once")
    assert timed_out.status == "timeout"
    assert timed_out.finished is not None
    assert timed_out.finished - timed_out.started <= timeout + 1.0
    hung = int((tmp_path / "attempt1.pid").read_text())
    await wait_until(lambda: pid_gone(hung), within=10)  # ray.cancel(force=True) killed it
    assert ctx.get_metric("pid") == int((tmp_path / "attempt2.pid").read_text()) != hung


@pytest.mark.usefixtures("ray_local")
async def test_cancelling_a_run_on_ray_ends_it_cancelled_and_stops_the_task(
    tmp_path: Path,
) -> None:
    exp = Experiment(
        id="e",
        pipeline=[StageDef(name="hang_once", isolation="ray", options={"dir": str(tmp_path)})],
    )
    pid_file = tmp_path / "attempt1.pid"
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        handle = await rt.submit(exp)
        await wait_until(pid_file.exists)
        with anyio.fail_after(6.0):
            await handle.cancel(grace=5.0)
        assert handle.status is ca.RunStatus.CANCELLED
    pid = int(pid_file.read_text())
    await wait_until(lambda: pid_gone(pid), within=10)


@pytest.mark.usefixtures("ray_local")
async def test_a_stateful_stage_sets_up_at_most_pool_actors_and_every_attempt_sees_it() -> None:
    exp = Experiment(id="e", pipeline=[StageDef(name="scorer", isolation="ray", pool=2)])
    contexts = []
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        for _ in range(5):  # 5 rounds of 4 concurrent runs: 20 attempts
            handles = [await rt.submit(exp) for _ in range(4)]
            contexts += [await h.result() for h in handles]
        pools = _ray_executor(rt).statistics()["actor_pools"]
    tokens = {c.get_metric("token") for c in contexts}
    assert 1 <= len(tokens) <= 2
    assert all(c.get_metric("loaded_by") == c.get_metric("pid") for c in contexts)
    assert pools["Scorer"]["created"] == len(tokens)


@pytest.mark.usefixtures("ray_local")
async def test_an_actor_that_dies_mid_attempt_is_a_crash_and_a_fresh_actor_retries() -> None:
    exp = Experiment(
        id="e",
        pipeline=[StageDef(name="exiting_scorer", isolation="ray", restart="transient")],
    )
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        handle = await rt.submit(exp)
        ctx = await handle.result()
    assert [a.status for a in handle.attempts] == ["failed", "completed"]
    assert "WorkerCrashed" in (handle.attempts[0].error or "")
    assert ctx.get_metric("loaded_by") == ctx.get_metric("pid")


async def test_a_timed_out_actor_is_killed_and_a_fresh_actor_takes_the_retry(
    tmp_path: Path, ray_local: Any
) -> None:
    timeout = 4.0  # the fresh actor starts (and sets up) within it
    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(
                name="hanging_scorer",
                isolation="ray",
                timeout=timeout,
                restart="transient",
                options={"dir": str(tmp_path)},
            )
        ],
    )
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        handle = await rt.submit(exp)
        ctx = await handle.result()
        pools = _ray_executor(rt).statistics()["actor_pools"]
    first = handle.attempts[0]
    assert first.status == "timeout"
    assert first.finished is not None
    assert first.finished - first.started <= timeout + 1.0
    hung = int((tmp_path / "attempt1.pid").read_text())
    await wait_until(lambda: pid_gone(hung), within=10)  # the actor was killed
    assert ctx.get_metric("pid") != hung
    assert ctx.get_metric("loaded_by") == ctx.get_metric("pid")  # set up afresh
    assert pools["HangingScorer"]["created"] == 2


@pytest.mark.usefixtures("ray_local")
async def test_a_stage_ray_cannot_serialize_is_refused_before_the_run() -> None:
    exp = Experiment(id="e", pipeline=[StageDef(name="unshippable", isolation="ray")])
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        with pytest.raises(InvalidExperiment) as info:
            await rt.submit(exp)
        assert rt.statistics().submitted == 0
    message = str(info.value)
    assert "stage 'unshippable': stage: Ray cannot serialize Unshippable" in message
    assert "lock" in message


@pytest.mark.usefixtures("ray_local")
async def test_a_resource_request_the_cluster_cannot_meet_fails_saying_so() -> None:
    exp = Experiment(
        id="e", pipeline=[StageDef(name="where", isolation="ray", resources={"num_gpus": 1})]
    )
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        with pytest.raises(StageFailed) as info:
            await (await rt.submit(exp)).result()
    assert isinstance(info.value.reason, ExecutorError)
    assert "resources.num_gpus = 1, but the Ray cluster has 0 GPU" in str(info.value.reason)


@pytest.mark.usefixtures("ray_local")
async def test_custom_resources_and_memory_become_the_task_request() -> None:
    from crucible_actors.executors.ray import ray_request

    sd = StageDef(
        name="where",
        isolation="ray",
        resources={"num_cpus": 0.5, "memory": 1e6, "accelerator_x": 2},
    )
    assert ray_request(sd) == {
        "num_cpus": 0.5,
        "memory": 1000000,
        "resources": {"accelerator_x": 2.0},
    }
    fits = StageDef(name="where", isolation="ray", resources={"num_cpus": 0.5, "memory": 1e6})
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        ctx = await (await rt.submit(Experiment(id="e", pipeline=[fits]))).result()
    assert ctx.get_metric("pid") != os.getpid()


@pytest.mark.usefixtures("ray_local")
async def test_a_thousand_runs_of_three_ray_stages_all_complete_once_as_stored(
    tmp_path: Path,
) -> None:
    from crucible_actors.store import open_store

    exp = Experiment(id="many", pipeline=[StageDef(name="where", isolation="ray")] * 3)
    async with (
        open_store(f"sqlite:///{tmp_path / 'runs.db'}") as store,
        ca.open_runtime(registry=registry_with(*STAGES), store=store) as rt,
    ):
        handles = [await rt.submit(exp) for _ in range(1000)]
        with anyio.fail_after(300):
            contexts = [await h.result() for h in handles]
        await rt.wait_idle()
    assert len({h.run_id for h in handles}) == 1000
    assert all(c.get_metric("n") == 3 for c in contexts)
    assert all(len(h.attempts) == 3 for h in handles)
    async with open_store(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        stored = await store.list_runs(experiment_id="many", limit=2000)
        attempts = {r.id: await store.list_attempts(r.id) for r in stored}
    assert sorted(r.id for r in stored) == sorted(h.run_id for h in handles)
    assert {r.status for r in stored} == {"completed"}
    assert {r.metrics.get("n") for r in stored} == {3}
    assert {len(a) for a in attempts.values()} == {3}  # none lost, none run twice
    assert {x.status for a in attempts.values() for x in a} == {"completed"}


# -- large values (issue 22): a blob is put once per runtime, read zero-copy -------------


def _data_registry() -> Registry:
    from . import data_stages

    return registry_with(data_stages.make_array, data_stages.read_array, data_stages.ArrayReader)


@pytest.mark.usefixtures("ray_local")
async def test_an_array_reaches_ray_attempts_read_only_and_is_put_once(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy", reason=missing_extra("dev"))
    from . import data_stages

    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(name="make_array"),
            StageDef(name="read_array", isolation="ray"),
            StageDef(name="array_reader", isolation="ray"),
            StageDef(name="read_array", isolation="ray"),
        ],
    )
    expected = data_stages.big_array()
    async with ca.open_runtime(registry=_data_registry(), store=f"sqlite:///{tmp_path}/x.db") as rt:
        ctx = await (await rt.submit(exp)).result()
        stats = _ray_executor(rt).statistics()
        again = await (await rt.submit(exp)).result()  # same content: no new put
        stats_again = _ray_executor(rt).statistics()
    for got in (ctx, again):
        assert got.get_metric("sum") == float(expected.sum())
        assert got.get_metric("writeable") is False
        assert got.get_metric("wrote") is False
        assert got.get_metric("pid") != os.getpid()
        assert got.get_metric("actor_pid") != os.getpid()
        assert np.array_equal(got.assigns["X"], expected)
    # Three attempts over one blob, twice: one put, one blob held.
    assert (stats["blob_puts"], stats["blobs_held"]) == (1, 1)
    assert (stats_again["blob_puts"], stats_again["blobs_held"]) == (1, 1)


@pytest.mark.usefixtures("ray_local")
async def test_an_array_made_on_ray_comes_back_and_is_stored_by_the_driver(
    tmp_path: Path,
) -> None:
    np = pytest.importorskip("numpy", reason=missing_extra("dev"))
    from . import data_stages

    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(name="make_array", isolation="ray", options={"seed": 5}),
            StageDef(name="read_array"),
        ],
    )
    expected = data_stages.big_array(5)
    async with ca.open_runtime(registry=_data_registry(), store=f"sqlite:///{tmp_path}/x.db") as rt:
        ctx = await (await rt.submit(exp)).result()
        stats = _ray_executor(rt).statistics()
        blobs = [b.size for b in rt.store.blobs.list()]
    assert ctx.get_metric("made_in") != os.getpid()
    assert ctx.get_metric("sum") == float(expected.sum())
    assert ctx.get_metric("writeable") is False  # read in the driver, mapped from its store
    assert np.array_equal(ctx.assigns["X"], expected)
    assert stats["blob_puts"] == 0  # nothing went out
    assert len(blobs) == 1
    assert 40_000_000 < blobs[0] < 40_100_000


@pytest.mark.usefixtures("ray_local")
async def test_blobs_over_the_ray_cache_budget_are_dropped_and_put_again_when_needed() -> None:
    from crucible_actors.executors import RayExecutor

    from . import data_stages

    def exp(seed: int) -> Experiment:
        return Experiment(
            id="e",
            pipeline=[
                StageDef(name="make_array", options={"seed": seed}),
                StageDef(name="read_array", isolation="ray"),
                StageDef(name="read_array", isolation="ray"),
            ],
        )

    executor = RayExecutor(blob_cache_bytes=50_000_000)  # room for one 40 MB array
    async with ca.open_runtime(
        registry=_data_registry(), store="memory://", executors={"ray": executor}
    ) as rt:
        sums = [(await (await rt.submit(exp(s))).result()).get_metric("sum") for s in (0, 1, 0)]
        stats = _ray_executor(rt).statistics()
    assert sums == [float(data_stages.big_array(s).sum()) for s in (0, 1, 0)]
    # Seed 0, then seed 1 (seed 0 dropped), then seed 0 again: three puts, one held.
    assert (stats["blob_puts"], stats["blobs_held"]) == (3, 1)
    assert 40_000_000 < stats["blob_bytes_held"] < 50_000_000
