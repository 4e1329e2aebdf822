"""Timeouts, backoff, restart windows and shutdown grace, on trio's virtual clock."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from tests.delivery import staged
from tests.helpers import registry_with
from trio.testing import MockClock

import crucible_actors as ca
from crucible_actors import (
    Backoff,
    Context,
    Experiment,
    RunStatus,
    StageDef,
    StageFailed,
    StageTimeout,
    cleanup_scope,
    open_runtime,
    stage,
)

pytestmark = pytest.mark.usefixtures("delivery")


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


class Boom(RuntimeError):
    """A stage failure used by the tests."""


def exp(*defs: StageDef, **kw: Any) -> Experiment:
    return Experiment(id="exp", pipeline=staged(defs), **kw)


async def test_hanging_attempt_times_out_and_the_restart_succeeds() -> None:
    calls = Counter[str]()

    @stage("hang_once")
    async def hang_once(ctx: Context, opts: Any) -> Context:
        calls["n"] += 1
        if calls["n"] == 1:
            await anyio.sleep_forever()
        return ctx.put_metric("attempt", calls["n"])

    reg = registry_with(hang_once)
    t0 = anyio.current_time()
    async with open_runtime(registry=reg) as rt:
        handle = await rt.submit(exp(StageDef(name="hang_once", timeout=5.0, restart="transient")))
        ctx = await handle.result()
    assert ctx.get_metric("attempt") == 2
    assert anyio.current_time() - t0 == pytest.approx(5.0)
    assert [(r.attempt, r.status) for r in handle.attempts] == [(1, "timeout"), (2, "completed")]
    assert "stage_timeout" in [e.type for e in handle.events_nowait()]


async def test_always_hanging_stage_fails_with_stage_timeout() -> None:
    @stage("hang")
    async def hang(ctx: Context, opts: Any) -> Context:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    reg = registry_with(hang)
    t0 = anyio.current_time()
    with pytest.raises(StageFailed) as info:
        await ca.run_async(
            exp(StageDef(name="hang", timeout=2.0, restart="transient", max_restarts=2)),
            registry=reg,
        )
    assert isinstance(info.value.reason, StageTimeout)
    assert info.value.reason.timeout == 2.0
    assert info.value.attempts == 3
    assert anyio.current_time() - t0 == pytest.approx(6.0)


async def test_timeout_is_measured_per_attempt_from_attempt_start() -> None:
    calls = Counter[str]()

    @stage("slowish")
    async def slowish(ctx: Context, opts: Any) -> Context:
        calls["n"] += 1
        await anyio.sleep(3.0 if calls["n"] == 1 else 1.0)
        if calls["n"] == 1:
            raise Boom("first")
        return ctx

    reg = registry_with(slowish)
    t0 = anyio.current_time()
    await ca.run_async(
        exp(StageDef(name="slowish", timeout=4.0, restart="transient")), registry=reg
    )
    # 3 s (fails) + 1 s: neither attempt alone reaches 4 s, though together they exceed it.
    assert anyio.current_time() - t0 == pytest.approx(4.0)
    assert calls["n"] == 2


async def test_failures_spread_beyond_the_window_never_give_up() -> None:
    calls = Counter[str]()

    @stage("sometimes")
    async def sometimes(ctx: Context, opts: Any) -> Context:
        calls["n"] += 1
        if calls["n"] <= 6:
            raise Boom(f"failure {calls['n']}")
        return ctx

    reg = registry_with(sometimes)
    t0 = anyio.current_time()
    ctx = await ca.run_async(
        exp(
            StageDef(
                name="sometimes",
                restart="transient",
                max_restarts=1,
                max_seconds=5.0,
                backoff=6.0,
            )
        ),
        registry=reg,
    )
    assert calls["n"] == 7
    assert ctx.completed_stages() == ["sometimes"]
    assert anyio.current_time() - t0 == pytest.approx(36.0)


async def test_failures_within_the_window_give_up() -> None:
    calls = Counter[str]()

    @stage("often")
    async def often(ctx: Context, opts: Any) -> Context:
        calls["n"] += 1
        raise Boom(f"failure {calls['n']}")

    reg = registry_with(often)
    with pytest.raises(StageFailed) as info:
        await ca.run_async(
            exp(
                StageDef(
                    name="often",
                    restart="transient",
                    max_restarts=1,
                    max_seconds=5.0,
                    backoff=1.0,
                )
            ),
            registry=reg,
        )
    assert calls["n"] == 2
    assert info.value.attempts == 2


async def test_exponential_backoff_waits_follow_the_virtual_clock() -> None:
    calls = Counter[str]()
    times: list[float] = []

    @stage("flaky")
    async def flaky(ctx: Context, opts: Any) -> Context:
        calls["n"] += 1
        times.append(anyio.current_time())
        if calls["n"] <= 3:
            raise Boom("again")
        return ctx

    reg = registry_with(flaky)
    await ca.run_async(
        exp(
            StageDef(
                name="flaky",
                restart="transient",
                max_restarts=5,
                max_seconds=1000.0,
                backoff=Backoff(initial=1.0, multiplier=3.0, max=5.0, jitter=False),
            )
        ),
        registry=reg,
    )
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [1.0, 3.0, 5.0]


async def test_cancel_during_backoff_ends_the_run_as_cancelled() -> None:
    calls = Counter[str]()

    @stage("fails")
    async def fails(ctx: Context, opts: Any) -> Context:
        calls["n"] += 1
        raise Boom("fail")

    reg = registry_with(fails)
    async with open_runtime(registry=reg) as rt:
        handle = await rt.submit(exp(StageDef(name="fails", restart="transient", backoff=100.0)))
        while not any(e.type == "stage_restarted" for e in handle.events_nowait()):
            await anyio.lowlevel.checkpoint()
        t_cancel = anyio.current_time()
        await handle.cancel()
        assert anyio.current_time() == t_cancel  # did not wait out the 100 s backoff
    assert handle.status is RunStatus.CANCELLED
    assert calls["n"] == 1
    with pytest.raises(ca.RunCancelled):
        await handle.result()


@pytest.mark.parametrize(("cleanup_seconds", "finished"), [(3.0, True), (30.0, False)])
async def test_shutdown_gives_shielded_cleanup_the_grace_period(
    cleanup_seconds: float, finished: bool
) -> None:
    entered = anyio.Event()
    log: list[str] = []

    @stage("holds")
    async def holds(ctx: Context, opts: Any) -> Context:
        try:
            entered.set()
            await anyio.sleep_forever()
        finally:
            with cleanup_scope():
                await anyio.sleep(cleanup_seconds)
                log.append("cleanup finished")
        return ctx

    @stage("quick")
    async def quick(ctx: Context, opts: Any) -> Context:
        await anyio.sleep_forever()
        return ctx

    reg = registry_with(holds, quick)
    async with open_runtime(registry=reg, shutdown_grace=10.0) as rt:
        h1 = await rt.submit(exp(StageDef(name="holds")))
        h2 = await rt.submit(exp(StageDef(name="quick")))
        await entered.wait()
        t_shutdown = anyio.current_time()
    elapsed = anyio.current_time() - t_shutdown
    assert elapsed == pytest.approx(cleanup_seconds if finished else 10.0)
    assert log == (["cleanup finished"] if finished else [])
    assert h1.status is RunStatus.CANCELLED
    assert h2.status is RunStatus.CANCELLED


async def test_late_result_of_an_abandoned_attempt_is_dropped() -> None:
    calls = Counter[str]()

    @stage("late")
    async def late(ctx: Context, opts: Any) -> Context:
        calls["n"] += 1
        if calls["n"] == 1:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                # Misbehaving stage: swallows its cancellation and answers anyway.
                return ctx.put_metric("late", True)
        return ctx.put_metric("ok", calls["n"])

    reg = registry_with(late)
    ctx = await ca.run_async(
        exp(StageDef(name="late", timeout=1.0, restart="transient")), registry=reg
    )
    assert ctx.get_metric("ok") == 2
    assert not ctx.has_metric("late")


async def test_a_timed_out_attempt_that_unwinds_slowly_leaves_the_next_its_full_timeout() -> None:
    calls = Counter[str]()

    @stage("slow_unwind")
    async def slow_unwind(ctx: Context, opts: Any) -> Context:
        calls["n"] += 1
        if calls["n"] == 1:
            try:
                await anyio.sleep_forever()
            finally:
                with cleanup_scope():  # resists the timeout's cancellation for 3 s
                    await anyio.sleep(3.0)
        await anyio.sleep(4.0)
        return ctx.put_metric("attempt", calls["n"])

    reg = registry_with(slow_unwind)
    t0 = anyio.current_time()
    async with open_runtime(registry=reg) as rt:
        handle = await rt.submit(
            exp(StageDef(name="slow_unwind", timeout=5.0, restart="transient"))
        )
        ctx = await handle.result()
    # The deadline fires at 5 s; the attempt occupies its stage until its cleanup is done
    # at 8 s, and only then does the next attempt start, with all of its 5 s: it needs 4.
    assert ctx.get_metric("attempt") == 2
    assert [
        (r.attempt, r.status, r.started - t0, (r.finished or 0.0) - t0) for r in handle.attempts
    ] == [(1, "timeout", 0.0, 8.0), (2, "completed", 8.0, 12.0)]
    timeouts = [e for e in handle.events_nowait() if e.type == "stage_timeout"]
    assert [e.time - t0 for e in timeouts] == [8.0]
