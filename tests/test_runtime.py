"""Supervised runtime: restarts, budgets, isolation of attempts and runs (both backends)."""

from __future__ import annotations

import random
import threading
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
    Context,
    EncodeError,
    Experiment,
    RestartIntensityExceeded,
    RunCancelled,
    RunStatus,
    StageDef,
    StageFailed,
    open_runtime,
    stage,
)

pytestmark = pytest.mark.usefixtures("delivery")


class Boom(RuntimeError):
    """A stage failure used by the tests."""


class Fatal(ValueError):
    """A failure named in fail_on."""


def exp(*defs: StageDef, **kw: Any) -> Experiment:
    return Experiment(id="exp", pipeline=staged(defs), **kw)


def flaky(name: str, failures: int, calls: Counter[str], exc: type[Exception] = Boom) -> Any:
    @stage(name)
    async def run(ctx: Context, opts: Any) -> Context:
        calls[name] += 1
        if calls[name] <= failures:
            raise exc(f"{name} failure {calls[name]}")
        return ctx.put_metric(name, calls[name])

    return run


async def test_transient_stage_fails_once_then_succeeds() -> None:
    calls: Counter[str] = Counter()
    reg = registry_with(flaky("a", 1, calls))
    async with open_runtime(registry=reg) as rt:
        handle = await rt.submit(exp(StageDef(name="a", restart="transient")))
        ctx = await handle.result()
    assert calls["a"] == 2
    assert ctx.get_metric("a") == 2
    assert handle.status is RunStatus.COMPLETED
    assert [(r.attempt, r.status) for r in handle.attempts] == [(1, "failed"), (2, "completed")]
    types = [e.type for e in handle.events_nowait()]
    assert types == [
        "run_started",
        "stage_started",
        "stage_restarted",
        "stage_started",
        "stage_completed",
        "run_completed",
    ]


async def test_transient_stage_always_failing_gives_up_when_window_is_exceeded() -> None:
    calls: Counter[str] = Counter()
    reg = registry_with(flaky("a", 100, calls))
    with pytest.raises(StageFailed) as info:
        await ca.run_async(
            exp(StageDef(name="a", restart="transient", max_restarts=3)), registry=reg
        )
    assert calls["a"] == 4
    assert info.value.attempts == 4
    assert isinstance(info.value.reason, Boom)
    assert str(info.value.reason) == "a failure 4"
    assert "after 4 attempts" in str(info.value)


async def test_temporary_stage_is_never_retried() -> None:
    calls: Counter[str] = Counter()
    reg = registry_with(flaky("a", 1, calls))
    with pytest.raises(StageFailed) as info:
        await ca.run_async(exp(StageDef(name="a")), registry=reg)
    assert calls["a"] == 1
    assert info.value.attempts == 1


async def test_fail_on_exception_gets_one_attempt() -> None:
    calls: Counter[str] = Counter()
    reg = registry_with(flaky("a", 5, calls, exc=Fatal))
    with pytest.raises(StageFailed) as info:
        await ca.run_async(
            exp(StageDef(name="a", restart="transient", fail_on=["ValueError"])), registry=reg
        )
    assert calls["a"] == 1
    assert isinstance(info.value.reason, Fatal)


async def test_retry_on_retries_only_the_named_errors() -> None:
    calls: Counter[str] = Counter()
    reg = registry_with(flaky("a", 1, calls, exc=Fatal), flaky("b", 1, calls))
    ctx = await ca.run_async(
        exp(StageDef(name="a", restart="transient", retry_on=["Fatal"])), registry=reg
    )
    assert ctx.get_metric("a") == 2
    with pytest.raises(StageFailed):
        await ca.run_async(
            exp(StageDef(name="b", restart="transient", retry_on=["Fatal"])), registry=reg
        )
    assert calls["b"] == 1


async def test_run_wide_budget_exhausted_across_two_stages() -> None:
    calls: Counter[str] = Counter()
    reg = registry_with(flaky("a", 2, calls), flaky("b", 1, calls))
    experiment = exp(
        StageDef(name="a", restart="transient"),
        StageDef(name="b", restart="transient"),
        max_restarts=2,
        max_seconds=60.0,
    )
    with pytest.raises(StageFailed) as info:
        await ca.run_async(experiment, registry=reg)
    assert info.value.stage == "b"
    assert isinstance(info.value.reason, RestartIntensityExceeded)
    assert isinstance(info.value.reason.last_error, Boom)
    assert calls == {"a": 3, "b": 1}
    assert info.value.context is not None
    assert info.value.context.completed_stages() == ["a"]


async def test_restart_reruns_only_the_failed_stage_and_those_after_it() -> None:
    calls: Counter[str] = Counter()
    names = ["s1", "s2", "s3", "s4", "s5"]
    stages = [flaky(n, 1 if n == "s3" else 0, calls) for n in names]
    reg = registry_with(*stages)
    ctx = await ca.run_async(
        exp(*(StageDef(name=n, restart="transient") for n in names)), registry=reg
    )
    assert calls == {"s1": 1, "s2": 1, "s3": 2, "s4": 1, "s5": 1}
    assert ctx.completed_stages() == names


async def test_failed_attempt_mutations_are_invisible_to_the_retry() -> None:
    seen: list[Any] = []

    @stage("mutate")
    async def mutate(ctx: Context, opts: Any) -> Context:
        seen.append(list(ctx.assigns["items"]))
        ctx.assigns["items"].append("garbage")  # in-place mutation of a shared dict
        ctx.assigns["leak"] = True
        if len(seen) == 1:
            raise Boom("first attempt")
        return ctx

    reg = registry_with(mutate)
    ctx = await ca.run_async(
        exp(StageDef(name="mutate", restart="transient")), registry=reg, assigns={"items": [1]}
    )
    assert seen == [[1], [1]]
    assert ctx.assigns["items"] == [1, "garbage"]


async def test_failure_context_is_the_one_from_before_the_failing_stage() -> None:
    @stage("ok")
    async def ok(ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("ok", 1)

    @stage("bad")
    async def bad(ctx: Context, opts: Any) -> Context:
        ctx.metrics["dirty"] = True
        raise Boom("bad")

    reg = registry_with(ok, bad)
    with pytest.raises(StageFailed) as info:
        await ca.run_async(exp(StageDef(name="ok"), StageDef(name="bad")), registry=reg)
    assert info.value.context is not None
    assert info.value.context.metrics == {"ok": 1}
    assert info.value.context.completed_stages() == ["ok"]


async def test_non_encodable_value_fails_the_stage_naming_the_key() -> None:
    @stage("put_lock")
    async def put_lock(ctx: Context, opts: Any) -> Context:
        return ctx.assign("lock", threading.Lock())  # neither msgpack nor pickle

    reg = registry_with(put_lock)
    with pytest.raises(StageFailed) as info:
        await ca.run_async(exp(StageDef(name="put_lock")), registry=reg)
    assert isinstance(info.value.reason, EncodeError)
    assert info.value.reason.path == "assigns['lock']"
    assert "assigns['lock']" in str(info.value)


async def test_exception_group_from_a_stage_is_reported_with_all_leaves() -> None:
    @stage("group")
    async def group(ctx: Context, opts: Any) -> Context:
        async def fail(exc: Exception) -> None:
            raise exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(fail, Boom("left"))
            tg.start_soon(fail, Fatal("right"))
        return ctx

    reg = registry_with(group)
    with pytest.raises(StageFailed) as info:
        await ca.run_async(
            exp(StageDef(name="group", restart="transient", fail_on=["Fatal"])), registry=reg
        )
    reason = info.value.reason
    assert isinstance(reason, BaseExceptionGroup)
    leaves = {type(e).__name__ for e in reason.exceptions}
    assert leaves == {"Boom", "Fatal"}
    assert info.value.attempts == 1  # fail_on matched a leaf
    assert "Boom: left" in str(info.value) or "left" in repr(reason.exceptions)


_BAIL_SCRIPT = """
import sys
import crucible_actors as ca

calls = []

@ca.stage("bail")
async def bail(ctx, opts):
    calls.append(1)
    print("attempt", len(calls), flush=True)
    raise {exc}(3)

reg = ca.Registry()
reg.register(bail)
exp = ca.Experiment(
    id="e", pipeline=[ca.StageDef(name="bail", restart="transient", timeout={timeout})]
)
try:
    ca.run(exp, registry=reg, backend=sys.argv[1])
except ca.StageFailed:
    print("swallowed into StageFailed", flush=True)
    sys.exit(0)
print("returned normally", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["trio", "asyncio"])
@pytest.mark.parametrize(
    ("exc_name", "expected_code"), [("KeyboardInterrupt", None), ("SystemExit", 3)]
)
def test_keyboard_interrupt_and_system_exit_are_not_retried_or_swallowed(
    tmp_path: Any, backend: str, exc_name: str, expected_code: int | None, delivery: str
) -> None:
    import subprocess
    import sys

    script = tmp_path / "bail.py"
    timeout = "3600.0" if delivery == "timed" else "None"
    script.write_text(_BAIL_SCRIPT.replace("{exc}", exc_name).replace("{timeout}", timeout))
    proc = subprocess.run(
        [sys.executable, str(script), backend], capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.splitlines() == ["attempt 1"]
    if expected_code is None:
        assert proc.returncode != 0
        assert "KeyboardInterrupt" in proc.stderr
    else:
        assert proc.returncode == expected_code


async def test_cancelling_one_of_100_concurrent_runs_leaves_the_others_untouched() -> None:
    release = anyio.Event()
    started = Counter[str]()

    @stage("wait")
    async def wait(ctx: Context, opts: Any) -> Context:
        started["n"] += 1
        await release.wait()
        return ctx.put_metric("done", True)

    reg = registry_with(wait)
    async with open_runtime(registry=reg) as rt:
        handles = [await rt.submit(exp(StageDef(name="wait"))) for _ in range(100)]
        while started["n"] < 100:
            await anyio.lowlevel.checkpoint()
        victim = handles[37]
        await victim.cancel()
        assert victim.status is RunStatus.CANCELLED
        release.set()
        results = [await h.wait() for h in handles]
    assert results.count(RunStatus.COMPLETED) == 99
    assert results[37] is RunStatus.CANCELLED
    with pytest.raises(RunCancelled):
        await victim.result()
    assert [e.type for e in victim.events_nowait()][-1] == "run_cancelled"


async def test_failed_run_never_disturbs_sibling_runs() -> None:
    release = anyio.Event()

    @stage("slow")
    async def slow(ctx: Context, opts: Any) -> Context:
        await release.wait()
        return ctx

    @stage("crash")
    async def crash(ctx: Context, opts: Any) -> Context:
        raise Boom("crash")

    reg = registry_with(slow, crash)
    async with open_runtime(registry=reg) as rt:
        slow_handle = await rt.submit(exp(StageDef(name="slow")))
        crash_handle = await rt.submit(exp(StageDef(name="crash")))
        assert await crash_handle.wait() is RunStatus.FAILED
        assert slow_handle.status is RunStatus.RUNNING
        release.set()
        assert await slow_handle.wait() is RunStatus.COMPLETED


async def test_admission_waits_when_max_concurrent_runs_is_reached() -> None:
    gate = anyio.Event()
    running = Counter[str]()

    @stage("hold")
    async def hold(ctx: Context, opts: Any) -> Context:
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        await gate.wait()
        running["now"] -= 1
        return ctx

    reg = registry_with(hold)
    async with open_runtime(registry=reg, max_concurrent_runs=2) as rt:
        h1 = await rt.submit(exp(StageDef(name="hold")))
        h2 = await rt.submit(exp(StageDef(name="hold")))
        admitted = anyio.Event()
        handles: list[ca.RunHandle] = []

        async def third() -> None:
            handles.append(await rt.submit(exp(StageDef(name="hold"))))
            admitted.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(third)
            # If admission did not wait, the third submit would never show as waiting.
            with anyio.fail_after(5):
                while running["now"] < 2 or rt.statistics().waiting < 1:
                    await anyio.lowlevel.checkpoint()
            assert not admitted.is_set()
            assert rt.statistics().active == 2
            gate.set()
        await admitted.wait()
        for h in (h1, h2, handles[0]):
            assert await h.wait() is RunStatus.COMPLETED
    assert running["peak"] == 2


async def test_events_iterate_in_order_until_the_run_ends() -> None:
    reg = registry_with(flaky("a", 0, Counter()), flaky("b", 0, Counter()))
    async with open_runtime(registry=reg) as rt:
        handle = await rt.submit(exp(StageDef(name="a"), StageDef(name="b")))
        seen = [e async for e in handle.events()]
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert [(e.type, e.stage) for e in seen] == [
        ("run_started", None),
        ("stage_started", "a"),
        ("stage_completed", "a"),
        ("stage_started", "b"),
        ("stage_completed", "b"),
        ("run_completed", None),
    ]


async def test_stage_receives_an_idempotency_key_per_attempt() -> None:
    keys: list[str] = []

    @stage("key")
    async def key(ctx: Context, opts: Any) -> Context:
        keys.append(ctx.telemetry_context["idempotency_key"])
        if len(keys) == 1:
            raise Boom("again")
        return ctx

    reg = registry_with(key)
    await ca.run_async(exp(StageDef(name="key", restart="transient")), registry=reg, run_id="r1")
    assert keys == ["r1/key/1", "r1/key/2"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("anyio_backend", "stage_timeout"),
    [
        # Virtual time on trio: a hang ends exactly at its deadline, and no working
        # attempt can outlast one however loaded the machine is.
        pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), 1.0, id="trio"),
        # asyncio has no virtual clock: a deadline far above what a working attempt takes
        # even on a loaded machine, so only the seeded hangs reach it.
        pytest.param("asyncio", 5.0, id="asyncio"),
    ],
)
async def test_1000_concurrent_runs_with_seeded_failures_and_hangs_all_end(
    anyio_backend: object, stage_timeout: float
) -> None:
    never = anyio.Event()

    @stage("work")
    async def work(ctx: Context, opts: Any) -> Context:
        rng = random.Random(f"{ctx.run_id}/{ctx.telemetry_context['attempt']}")
        roll = rng.random()
        await anyio.lowlevel.checkpoint()
        if roll < 0.2:
            raise Boom("seeded failure")
        if roll < 0.3:
            await never.wait()  # hangs until the attempt's timeout
        return ctx.put_metric("roll", roll)

    reg = registry_with(work)
    experiment = exp(
        StageDef(name="work", restart="transient", max_restarts=2, timeout=stage_timeout),
        StageDef(name="work", timeout=stage_timeout),
    )
    async with open_runtime(registry=reg) as rt:
        handles = [await rt.submit(experiment, run_id=f"run-{i}") for i in range(1000)]
        statuses = [await h.wait() for h in handles]
    counts = Counter(s.value for s in statuses)
    assert set(counts) <= {"completed", "failed"}
    assert sum(counts.values()) == 1000
    # The outcome of every attempt is decided by the run id and attempt number, so the
    # counts are the same on trio and asyncio.
    expected = Counter[str]()
    for i in range(1000):
        ok = True
        for attempts_allowed in (3, 1):
            for attempt in range(1, attempts_allowed + 1):
                roll = random.Random(f"run-{i}/{attempt}").random()
                if roll >= 0.3:
                    break
            else:
                ok = False
            if not ok:
                break
        expected["completed" if ok else "failed"] += 1
    assert counts == expected


async def test_a_stage_that_replaces_the_experiment_is_seen_by_later_stages() -> None:
    import msgspec

    @stage("rename")
    async def rename(ctx: Context, opts: Any) -> Context:
        return msgspec.structs.replace(
            ctx, experiment=msgspec.structs.replace(ctx.experiment, name="renamed")
        )

    @stage("look")
    async def look(ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("name", ctx.experiment.name)

    reg = registry_with(rename, look)
    ctx = await ca.run_async(exp(StageDef(name="rename"), StageDef(name="look")), registry=reg)
    assert ctx.get_metric("name") == "renamed"
    assert ctx.experiment.name == "renamed"


async def test_stages_see_the_submitted_experiment_object() -> None:
    seen: list[Experiment] = []

    @stage("peek")
    async def peek(ctx: Context, opts: Any) -> Context:
        seen.append(ctx.experiment)
        return ctx

    reg = registry_with(peek)
    experiment = exp(StageDef(name="peek"), StageDef(name="peek"))
    ctx = await ca.run_async(experiment, registry=reg)
    assert seen == [experiment, experiment]
    assert ctx.experiment == experiment


@pytest.mark.parametrize("keep", [0, 2])
async def test_keep_finished_bounds_the_handles_remembered(keep: int) -> None:
    reg = registry_with(flaky("a", 0, Counter()))
    async with open_runtime(registry=reg, keep_finished=keep) as rt:
        handles = []
        for _ in range(5):
            handle = await rt.submit(exp(StageDef(name="a")))
            await handle.wait()
            handles.append(handle)
        await rt.wait_idle()
        assert rt.runs() == handles[len(handles) - keep :]
        for old in handles[: len(handles) - keep]:
            assert rt.get(old.run_id) is None
        for kept in handles[len(handles) - keep :]:
            assert rt.get(kept.run_id) is kept
        # A run id seen before may be used again once its run has ended.
        again = await rt.submit(exp(StageDef(name="a")), run_id=handles[0].run_id)
        assert rt.get(handles[0].run_id) is again
        assert await again.wait() is RunStatus.COMPLETED


async def test_stage_runs_in_the_run_task_timed_or_not(delivery: str) -> None:
    tasks: list[str] = []

    @stage("where")
    async def where(ctx: Context, opts: Any) -> Context:
        tasks.append(anyio.get_current_task().name)
        return ctx

    async with open_runtime(registry=registry_with(where)) as rt:
        handle = await rt.submit(exp(StageDef(name="where"), StageDef(name="where")))
        assert await handle.wait() is RunStatus.COMPLETED
    # No task per run beyond the run's own, also when a timeout guards each attempt.
    assert tasks == [f"run {handle.run_id}"] * 2


async def test_a_run_cancelled_before_it_starts_runs_no_stage() -> None:
    ran: list[int] = []

    @stage("quick")
    async def quick(ctx: Context, opts: Any) -> Context:
        ran.append(1)  # never awaits: nothing inside the stage could deliver a cancel
        return ctx

    async with open_runtime(registry=registry_with(quick)) as rt:
        handle = await rt.submit(exp(StageDef(name="quick"), StageDef(name="quick")))
        await handle.cancel()
        assert handle.status is RunStatus.CANCELLED
        with pytest.raises(RunCancelled):
            await handle.result()
    assert ran == []
