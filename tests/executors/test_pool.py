"""The warm process pool (``isolation="process"``): reuse, crashes, timeouts, stateful stages.

Real worker processes throughout; the stages live in ``pool_stages.py``.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

import anyio
import pytest
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Experiment, StageDef, StageFailed, StageTimeout
from crucible_actors.errors import WorkerCrashed
from crucible_actors.executors import PoolExecutor

from . import pool_stages
from .conftest import pid_gone, wait_until

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (
    pool_stages.exit_once,
    pool_stages.hang_once,
    pool_stages.pid,
    pool_stages.Model,
    pool_stages.FlakySetup,
)


def _pool(rt: ca.Runtime) -> PoolExecutor:
    executor = rt.executors["process"]
    assert isinstance(executor, PoolExecutor)
    return executor


async def test_workers_are_reused_across_attempts_and_runs() -> None:
    exp = Experiment(id="e", pipeline=[StageDef(name="pid", isolation="process")] * 3)
    async with ca.open_runtime(registry=registry_with(*STAGES), process_workers=1) as rt:
        pids = set()
        for _ in range(3):
            ctx = await (await rt.submit(exp)).result()
            pids.add(ctx.get_metric("pid"))
        stats = _pool(rt).statistics()
    assert len(pids) == 1
    assert pids != {os.getpid()}
    assert stats.started == 1
    assert stats.workers == 1
    assert pid_gone(pids.pop())  # the runtime's exit stopped its pool


async def test_pool_size_defaults_to_the_cpu_count() -> None:
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        assert _pool(rt).workers == (os.cpu_count() or 1)


async def test_a_worker_that_exits_mid_attempt_is_a_crash_retried_once() -> None:
    exp = Experiment(
        id="e",
        pipeline=[StageDef(name="exit_once", isolation="process", restart="transient")],
    )
    async with ca.open_runtime(registry=registry_with(*STAGES), process_workers=1) as rt:
        handle = await rt.submit(exp)
        ctx = await handle.result()
    assert [a.status for a in handle.attempts] == ["failed", "completed"]
    assert "WorkerCrashed" in (handle.attempts[0].error or "")
    assert "exit status 1" in (handle.attempts[0].error or "")
    assert [e.type async for e in handle.events()].count("stage_restarted") == 1
    assert ctx.get_metric("pid") != os.getpid()


async def test_worker_crash_is_matched_by_retry_on_and_reported_when_not_retried() -> None:
    retried = Experiment(
        id="e",
        pipeline=[
            StageDef(
                name="exit_once",
                isolation="process",
                restart="transient",
                retry_on=["WorkerCrashed"],
            )
        ],
    )
    not_retried = Experiment(
        id="e",
        pipeline=[StageDef(name="exit_once", isolation="process", restart="temporary")],
    )
    async with ca.open_runtime(registry=registry_with(*STAGES), process_workers=1) as rt:
        await (await rt.submit(retried)).result()
        with pytest.raises(StageFailed) as info:
            await (await rt.submit(not_retried)).result()
    assert isinstance(info.value.reason, WorkerCrashed)
    assert info.value.reason.stage == "exit_once"
    assert info.value.reason.cause == "exit status 1"


async def test_a_timed_out_attempt_kills_its_worker_and_the_retry_gets_a_fresh_one(
    tmp_path: Path,
) -> None:
    timeout = 3.0  # the retry's fresh worker must start within it, on a loaded machine
    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(name="pid", isolation="process"),  # the pool is warm from here
            StageDef(
                name="hang_once",
                isolation="process",
                timeout=timeout,
                restart="transient",
                options={"dir": str(tmp_path)},
            ),
        ],
    )
    async with ca.open_runtime(registry=registry_with(*STAGES), process_workers=1) as rt:
        handle = await rt.submit(exp)
        ctx = await handle.result()
    first, second = handle.attempts[1:]
    assert (first.status, second.status) == ("timeout", "completed")
    assert first.finished is not None
    assert first.finished - first.started <= timeout + 1.0
    hung = int((tmp_path / "attempt1.pid").read_text())
    assert pid_gone(hung)
    assert ctx.get_metric("pid") == int((tmp_path / "attempt2.pid").read_text()) != hung


async def test_a_timeout_without_retry_fails_the_run_with_stage_timeout(tmp_path: Path) -> None:
    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(name="pid", isolation="process"),  # starts the worker: warm from here
            StageDef(
                name="hang_once", isolation="process", timeout=0.5, options={"dir": str(tmp_path)}
            ),
        ],
    )
    with anyio.fail_after(20):
        async with ca.open_runtime(registry=registry_with(*STAGES), process_workers=1) as rt:
            with pytest.raises(StageFailed) as info:
                await (await rt.submit(exp)).result()
    assert isinstance(info.value.reason, StageTimeout)
    assert pid_gone(int((tmp_path / "attempt1.pid").read_text()))


async def test_cancelling_a_run_kills_the_worker_within_the_grace_period(tmp_path: Path) -> None:
    exp = Experiment(
        id="e",
        pipeline=[StageDef(name="hang_once", isolation="process", options={"dir": str(tmp_path)})],
    )
    pid_file = tmp_path / "attempt1.pid"
    async with ca.open_runtime(registry=registry_with(*STAGES), process_workers=1) as rt:
        handle = await rt.submit(exp)
        await wait_until(pid_file.exists)  # the stage has started in its worker
        with anyio.fail_after(2.0):
            await handle.cancel(grace=1.0)
        assert handle.status is ca.RunStatus.CANCELLED
        pid = int(pid_file.read_text())
        assert pid_gone(pid)
        assert pid not in _pool(rt).statistics().alive  # (a replacement may be starting)


async def test_a_dead_idle_worker_is_never_handed_out() -> None:
    exp = Experiment(id="e", pipeline=[StageDef(name="pid", isolation="process")])
    async with ca.open_runtime(registry=registry_with(*STAGES), process_workers=1) as rt:
        first = (await (await rt.submit(exp)).result()).get_metric("pid")
        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: pid_gone(first))
        handle = await rt.submit(exp)
        ctx = await handle.result()
    assert [a.status for a in handle.attempts] == ["completed"]
    assert ctx.get_metric("pid") != first


async def test_a_killed_worker_reports_the_signal(tmp_path: Path) -> None:
    exp = Experiment(
        id="e",
        pipeline=[StageDef(name="hang_once", isolation="process", options={"dir": str(tmp_path)})],
    )
    pid_file = tmp_path / "attempt1.pid"
    async with ca.open_runtime(registry=registry_with(*STAGES), process_workers=1) as rt:
        handle = await rt.submit(exp)
        await wait_until(pid_file.exists)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)  # what the OOM killer does
        with pytest.raises(StageFailed) as info:
            await handle.result()
    assert isinstance(info.value.reason, WorkerCrashed)
    assert "killed by SIGKILL" in str(info.value.reason)


async def test_a_stateful_stage_sets_up_at_most_pool_times_and_every_attempt_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_TEST_DIR", str(tmp_path))
    exp = Experiment(
        id="e",
        pipeline=[StageDef(name="model", isolation="process", pool=2, options={"dir": "x"})],
    )
    contexts = []
    async with ca.open_runtime(registry=registry_with(*STAGES), process_workers=1) as rt:
        for _ in range(5):  # 5 rounds of 4 concurrent runs: 20 attempts
            handles = [await rt.submit(exp) for _ in range(4)]
            contexts += [await h.result() for h in handles]
        stats = _pool(rt).statistics()
    log = (tmp_path / "lifecycle.log").read_text().splitlines()
    setups = [line for line in log if line.startswith("setup")]
    assert 1 <= len(setups) <= 2
    assert len({c.get_metric("token") for c in contexts}) == len(setups)
    assert all(c.get_metric("loaded_by") == c.get_metric("pid") for c in contexts)
    assert len(stats.stage_pools[f"{pool_stages.__name__}:Model"]) == len(setups)
    # teardown ran once per set-up worker when the runtime closed
    assert sorted(line.split()[1] for line in log if line.startswith("teardown")) == sorted(
        line.split()[1] for line in setups
    )


async def test_a_failed_setup_fails_the_attempt_and_the_retry_sets_up_a_fresh_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_TEST_DIR", str(tmp_path))
    exp = Experiment(
        id="e",
        pipeline=[StageDef(name="flaky_setup", isolation="process", restart="transient")],
    )
    async with ca.open_runtime(registry=registry_with(*STAGES), process_workers=1) as rt:
        handle = await rt.submit(exp)
        ctx = await handle.result()
    assert [a.status for a in handle.attempts] == ["failed", "completed"]
    assert "could not load the model" in (handle.attempts[0].error or "")
    failed_in = int((tmp_path / "setup_failed_once").read_text())
    assert ctx.get_metric("ready_in") != failed_in
    assert pid_gone(failed_in)


async def test_inline_stateful_stage_sets_up_once_per_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_TEST_DIR", str(tmp_path))
    exp = Experiment(id="e", pipeline=[StageDef(name="model", options={"dir": "x"})] * 2)
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        contexts = [await (await rt.submit(exp)).result() for _ in range(3)]
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        contexts.append(await (await rt.submit(exp)).result())
    log = (tmp_path / "lifecycle.log").read_text().splitlines()
    assert log == [f"setup {os.getpid()}", f"teardown {os.getpid()}"] * 2
    assert all(c.get_metric("loaded_by") == os.getpid() for c in contexts)
    assert contexts[-1].get_metric("scored") == 2
