"""``open_runtime(on_shutdown=...)``: how the runs still going end when the runtime closes.

Store-backed behaviour (the checkpoint kept, the resume) is in ``tests/store/test_shutdown.py``.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from tests.helpers import registry_with
from trio.testing import MockClock

from crucible_actors import (
    Context,
    Experiment,
    Registry,
    RunCancelled,
    RunStatus,
    RuntimeShutdown,
    StageDef,
    cleanup_scope,
    open_runtime,
    stage,
)

VIRTUAL = pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mock")


def blocking_registry(entered: anyio.Event) -> Registry:
    @stage("blocks")
    async def blocks(ctx: Context, opts: Any) -> Context:
        entered.set()
        await anyio.sleep_forever()
        return ctx

    return registry_with(blocks)


async def test_interrupt_without_a_store_ends_the_run_interrupted() -> None:
    entered = anyio.Event()
    exp = Experiment(id="e", pipeline=[StageDef(name="blocks")])
    async with open_runtime(registry=blocking_registry(entered), on_shutdown="interrupt") as rt:
        handle = await rt.submit(exp)
        await entered.wait()
    assert handle.done
    assert handle.status is RunStatus.INTERRUPTED
    assert await handle.wait() is RunStatus.INTERRUPTED
    with pytest.raises(RuntimeShutdown, match="because its runtime shut down") as info:
        await handle.result()
    assert info.value.stage == "blocks"
    assert not isinstance(info.value, RunCancelled)
    last = handle.events_nowait()[-1]
    assert (last.type, last.data["status"]) == ("run_interrupted", "interrupted")
    assert rt.statistics().by_status == {"interrupted": 1}
    assert handle.failure == {
        "stage": "blocks",
        "reason_type": "RuntimeShutdown",
        "message": str(info.value),
    }


async def test_an_unknown_on_shutdown_is_refused() -> None:
    with pytest.raises(ValueError, match="on_shutdown must be 'cancel' or 'interrupt'; got 'stop'"):
        async with open_runtime(on_shutdown="stop"):
            pass


@pytest.mark.parametrize("anyio_backend", [VIRTUAL])
@pytest.mark.parametrize(
    ("on_shutdown", "status"),
    [("cancel", RunStatus.CANCELLED), ("interrupt", RunStatus.INTERRUPTED)],
)
@pytest.mark.parametrize(("cleanup_seconds", "took"), [(3.0, 3.0), (30.0, 10.0)])
async def test_interrupting_stops_runs_as_fast_as_cancelling_with_the_same_cleanup_grace(
    anyio_backend: object,
    on_shutdown: str,
    status: RunStatus,
    cleanup_seconds: float,
    took: float,
) -> None:
    entered = anyio.Event()
    cleaned: list[float] = []

    @stage("holds")
    async def holds(ctx: Context, opts: Any) -> Context:
        try:
            entered.set()
            await anyio.sleep_forever()
        finally:
            with cleanup_scope():
                await anyio.sleep(cleanup_seconds)
                cleaned.append(anyio.current_time())
        return ctx

    reg = blocking_registry(anyio.Event())
    reg.register(holds)
    async with open_runtime(registry=reg, shutdown_grace=10.0, on_shutdown=on_shutdown) as rt:
        h1 = await rt.submit(Experiment(id="h", pipeline=[StageDef(name="holds")]))
        h2 = await rt.submit(Experiment(id="b", pipeline=[StageDef(name="blocks")]))
        await entered.wait()
        t_shutdown = anyio.current_time()
    assert anyio.current_time() - t_shutdown == pytest.approx(took)
    assert len(cleaned) == (1 if cleanup_seconds < 10.0 else 0)
    assert (h1.status, h2.status) == (status, status)


@pytest.mark.parametrize("anyio_backend", [VIRTUAL])
async def test_a_cancel_requested_during_the_shutdown_grace_wins(anyio_backend: object) -> None:
    entered = anyio.Event()

    @stage("slow")
    async def slow(ctx: Context, opts: Any) -> Context:
        try:
            entered.set()
            await anyio.sleep_forever()
        finally:
            with cleanup_scope():
                await anyio.sleep(5.0)
        return ctx

    reg = registry_with(slow)
    async with (
        anyio.create_task_group() as tg,
        open_runtime(registry=reg, on_shutdown="interrupt") as rt,
    ):
        handle = await rt.submit(Experiment(id="s", pipeline=[StageDef(name="slow")]))
        await entered.wait()

        async def cancel_during_grace() -> None:
            await anyio.sleep(1.0)  # virtual: the shutdown began, cleanup runs
            assert not rt.accepting
            await handle.cancel()

        tg.start_soon(cancel_during_grace)
    assert handle.status is RunStatus.CANCELLED
