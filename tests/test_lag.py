"""The event-loop lag monitor and late timeouts, on trio's virtual clock.

A stage "blocks the loop" for N virtual seconds by jumping the MockClock without
awaiting: time passes and no other task runs, exactly as during a blocking call.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from crucible_actors import (
    Context,
    Experiment,
    Registry,
    RunStatus,
    StageDef,
    StageFailed,
    StageTimeout,
    open_runtime,
    stage,
)
from crucible_actors._core._lag import InlineAttempt, LongAttempt, describe_lag


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


HOGGED: list[int] = []


@stage("hog")
async def hog(ctx: Context, opts: Any) -> Context:
    """Hold the loop for ``seconds`` (on the first ``times`` attempts), then return."""
    HOGGED.append(1)
    if len(HOGGED) <= opts.get("times", 1):
        trio.lowlevel.current_clock().jump(opts["seconds"])  # type: ignore[attr-defined]
    if opts.get("then_sleep"):
        await trio.sleep(opts["then_sleep"])
    return ctx.put_metric("hogged", True)


@pytest.fixture(autouse=True)
def _reset() -> None:
    HOGGED.clear()


def lag_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "event loop was blocked" in r.getMessage()]


async def test_a_stage_blocking_the_loop_is_named_by_the_lag_monitor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exp = Experiment(id="hog", pipeline=[StageDef(stage=hog, options={"seconds": 5.0})])
    async with open_runtime(registry=Registry()) as rt:
        await trio.sleep(0.1)  # the monitor is asleep, due in 0.4 s
        handle = await rt.submit(exp, run_id="r1")
        assert await handle.wait() is RunStatus.COMPLETED
        await trio.sleep(1)
        assert rt.lag_monitor.lags == 1
        assert rt.lag_monitor.worst == pytest.approx(4.6)
    assert lag_warnings(caplog) == [
        "the event loop was blocked for 4.6 s by stage 'hog' of run r1, which ran 5.0 s "
        "inline without awaiting; every other run waited (give it isolation='thread' or "
        "'process', or make it await)"
    ]


async def test_a_stage_still_running_after_the_block_is_named_as_executing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The stage blocks for 3 s, then awaits (still running when the monitor wakes):
    it is named as the inline stage executing then."""
    opts = {"seconds": 3.0, "then_sleep": 2.0}
    exp = Experiment(id="hog", pipeline=[StageDef(stage=hog, options=opts)])
    async with open_runtime(registry=Registry()) as rt:
        await trio.sleep(0.1)  # the monitor is asleep, due in 0.4 s
        handle = await rt.submit(exp, run_id="r1")
        assert await handle.wait() is RunStatus.COMPLETED
    assert lag_warnings(caplog) == [
        "the event loop was blocked for 2.6 s by stage 'hog' of run r1, executing inline "
        "for 3.0 s so far without awaiting in time; every other run waited (give it "
        "isolation='thread' or 'process', or make it await)"
    ]


@stage("waiter")
async def waiter(ctx: Context, opts: Any) -> Context:
    await trio.sleep(opts["seconds"])
    return ctx


async def test_every_inline_stage_executing_during_the_block_is_listed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A well-behaved stage awaits while another blocks then awaits: the monitor cannot
    tell which one held the loop, so it names both, and neither once they ended."""
    blocker = Experiment(
        id="hog", pipeline=[StageDef(stage=hog, options={"seconds": 3.0, "then_sleep": 2.0})]
    )
    calm = Experiment(id="calm", pipeline=[StageDef(stage=waiter, options={"seconds": 10.0})])
    async with open_runtime(registry=Registry()) as rt:
        quiet = await rt.submit(calm, run_id="calm1")
        await trio.sleep(0.1)  # the monitor is asleep, due in 0.4 s
        noisy = await rt.submit(blocker, run_id="hog1")
        assert await noisy.wait() is RunStatus.COMPLETED
        assert await quiet.wait() is RunStatus.COMPLETED
        trio.lowlevel.current_clock().jump(2.0)  # type: ignore[attr-defined]
        await trio.sleep(1)
    first, second = lag_warnings(caplog)
    assert first == (
        "the event loop was blocked for 2.6 s by one of the stages executing inline: "
        "'waiter' of run calm1, 'hog' of run hog1; every other run waited (give it "
        "isolation='thread' or 'process', or make it await)"
    )
    # A block outside any stage (here the test's own jump) names no stage.
    assert "no inline stage was executing" in second


@pytest.mark.slow
async def test_a_loop_that_is_never_blocked_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_runtime(registry=Registry()) as rt:
        await trio.sleep(3600)  # 7,200 wake-ups of the monitor, all on time
        assert rt.lag_monitor.lags == 0
        assert rt.lag_monitor.worst == 0.0
    assert lag_warnings(caplog) == []


async def test_an_inline_attempt_that_overran_its_timeout_is_a_late_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exp = Experiment(
        id="late", pipeline=[StageDef(stage=hog, timeout=1.0, options={"seconds": 5.0})]
    )
    async with open_runtime(registry=Registry()) as rt:
        handle = await rt.submit(exp, run_id="r1")
        assert await handle.wait() is RunStatus.FAILED  # not completed: it was 5x late
    err = handle.error
    assert isinstance(err, StageFailed)
    assert isinstance(err.reason, StageTimeout)
    assert err.reason.ran == 5.0
    assert "returned late, after 5 s, without awaiting" in str(err.reason)
    assert [(a.status, a.finished) for a in handle.attempts] == [("timeout", 5.0)]
    assert any("returned late" in r.getMessage() for r in caplog.records)


async def test_a_late_timeout_is_retried_like_any_timeout() -> None:
    opts = {"seconds": 5.0, "times": 1}
    exp = Experiment(
        id="late",
        pipeline=[
            StageDef(stage=hog, timeout=1.0, restart="transient", max_restarts=2, options=opts)
        ],
    )
    async with open_runtime(registry=Registry()) as rt:
        handle = await rt.submit(exp, run_id="r1")
        assert await handle.wait() is RunStatus.COMPLETED
    assert [a.status for a in handle.attempts] == ["timeout", "completed"]
    assert len(HOGGED) == 2


async def test_an_attempt_within_its_timeout_completes() -> None:
    exp = Experiment(
        id="ok", pipeline=[StageDef(stage=hog, timeout=10.0, options={"seconds": 5.0})]
    )
    async with open_runtime(registry=Registry()) as rt:
        handle = await rt.submit(exp, run_id="r1")
        assert await handle.wait() is RunStatus.COMPLETED


@stage("sleeper")
async def sleeper(ctx: Context, opts: Any) -> Context:
    time.sleep(opts["seconds"])  # noqa: ASYNC251 - blocking the loop is the fault under test
    return ctx


@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_late_timeout_on_asyncio_too() -> None:
    exp = Experiment(
        id="late", pipeline=[StageDef(stage=sleeper, timeout=0.05, options={"seconds": 0.3})]
    )
    async with open_runtime(registry=Registry()) as rt:
        handle = await rt.submit(exp, run_id="r1")
        assert await handle.wait() is RunStatus.FAILED
    assert isinstance(handle.error, StageFailed)
    assert isinstance(handle.error.reason, StageTimeout)
    assert handle.error.reason.ran is not None
    assert handle.error.reason.ran >= 0.3


def test_describe_lag_names_an_attempt_only_if_it_ran_during_the_block() -> None:
    during = LongAttempt("hog", "r1", 10.0, 16.0, None)
    before = LongAttempt("hog", "r1", 1.0, 9.0, None)
    assert "by stage 'hog' of run r1, which ran 6.0 s" in describe_lag(10.5, 16.0, during)
    assert "no inline stage was executing" in describe_lag(10.5, 16.0, before)
    assert describe_lag(10.5, 16.0, None).startswith("the event loop was blocked for 5.5 s:")
    running = InlineAttempt("slow", "r2", 9.0, None)
    later = InlineAttempt("late", "r3", 16.5, None)  # began after the monitor woke
    assert "by stage 'slow' of run r2, executing inline for 7.0 s" in describe_lag(
        10.5, 16.0, before, [running, later]
    )
    # An attempt that finished during the block is the cause, whatever else executes.
    assert "by stage 'hog' of run r1, which ran" in describe_lag(10.5, 16.0, during, [running])
