"""The executor port: executors registered by isolation name run the attempts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec.structs
import pytest
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, StageDef, StageFailed
from crucible_actors.executors import (
    ExecutorRegistry,
    InlineExecutor,
    PreparedStage,
    UnknownIsolation,
    default_executors,
)

if TYPE_CHECKING:
    from crucible_actors._core import _messages as msg
    from crucible_actors.executors import AttemptIO


@ca.stage("inc")
async def inc(ctx: Context, opts: Any) -> Context:
    return ctx.put_metric("n", ctx.get_metric("n", 0) + 1)


class Recording:
    """An executor that delegates to inline and records what it was given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int, str]] = []
        self.entered = self.exited = False

    async def __aenter__(self) -> Recording:
        self.entered = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.exited = True

    async def run(
        self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
    ) -> msg.AttemptDone | msg.AttemptFailed:
        self.seen.append((stage.label, command.index, command.attempt, stage.ref))
        return await InlineExecutor().run(stage, command, io)


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (inc,)


async def test_the_executor_of_an_isolation_runs_every_attempt_and_is_entered() -> None:
    rec = Recording()
    exp = Experiment(id="e", pipeline=(StageDef(name="inc"), StageDef(name="inc")))
    async with ca.open_runtime(registry=registry_with(*STAGES), executors={"inline": rec}) as rt:
        assert rec.entered
        handle = await rt.submit(exp)
        ctx = await handle.result()
    assert rec.exited
    assert ctx.get_metric("n") == 2
    assert rec.seen == [
        ("inc", 0, 1, f"{__name__}:inc"),
        ("inc", 1, 1, f"{__name__}:inc"),
    ]
    # The override is per runtime: the process-wide executor is still the inline one.
    assert isinstance(default_executors["inline"], InlineExecutor)


async def test_a_timed_stage_reaches_its_executor_too() -> None:
    rec = Recording()
    exp = Experiment(id="e", pipeline=(StageDef(name="inc", timeout=5.0),))
    async with ca.open_runtime(registry=registry_with(*STAGES), executors={"inline": rec}) as rt:
        ctx = await (await rt.submit(exp)).result()
    assert ctx.get_metric("n") == 1
    assert [s[:3] for s in rec.seen] == [("inc", 0, 1)]


async def test_a_stage_whose_isolation_has_no_executor_is_refused_before_the_run() -> None:
    empty = ExecutorRegistry()
    exp = Experiment(id="e", pipeline=(StageDef(name="inc"),))
    async with ca.open_runtime(registry=registry_with(*STAGES)) as rt:
        rt.executors = empty
        with pytest.raises(UnknownIsolation, match="no executor is registered") as info:
            await rt.submit(exp)
        assert rt.statistics().submitted == 0
    assert "stage 'inc' asks for isolation 'inline'" in str(info.value)


def test_registering_checks_the_executor_and_refuses_to_replace_silently() -> None:
    reg = ExecutorRegistry()
    with pytest.raises(TypeError, match="async run"):
        reg.register("x", object())  # type: ignore[arg-type]
    reg.register("x", InlineExecutor())
    with pytest.raises(ValueError, match="replace=True"):
        reg.register("x", InlineExecutor())
    reg.register("x", InlineExecutor(), replace=True)
    assert list(reg) == ["x"]
    for bad in ("", "a gpu", "2x"):  # names no StageDef(isolation=...) could give
        with pytest.raises(ValueError, match="an executor's name must be a letter"):
            reg.register(bad, InlineExecutor())
    reg.register("gpu-2.a_b", InlineExecutor())


async def test_an_executor_is_abandoned_by_cancelling_its_await() -> None:
    started = anyio.Event()
    cancelled = []

    class Hanging:
        async def run(
            self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
        ) -> msg.AttemptDone | msg.AttemptFailed:
            started.set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(command.generation)
                raise
            raise AssertionError("unreachable")

    exp = Experiment(id="e", pipeline=(StageDef(name="inc"),))
    async with ca.open_runtime(
        registry=registry_with(*STAGES), executors={"inline": Hanging()}
    ) as rt:
        handle = await rt.submit(exp)
        await started.wait()
        await handle.cancel()
    assert handle.status is ca.RunStatus.CANCELLED
    assert cancelled == [1]


def test_run_passes_its_executors_to_its_private_runtime() -> None:
    rec = Recording()
    exp = Experiment(id="e", pipeline=(StageDef(name="inc"),))
    ctx = ca.run(exp, registry=registry_with(*STAGES), executors={"inline": rec})
    assert ctx.get_metric("n") == 1
    assert rec.entered
    assert rec.exited
    assert [s[:3] for s in rec.seen] == [("inc", 0, 1)]


async def test_an_executor_answering_another_attempt_fails_the_run_saying_so() -> None:
    class Stale:
        async def run(
            self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
        ) -> msg.AttemptDone | msg.AttemptFailed:
            reply = await InlineExecutor().run(stage, command, io)
            return msgspec.structs.replace(reply, generation=command.generation + 7)

    exp = Experiment(id="e", pipeline=(StageDef(name="inc", timeout=5.0),))
    async with ca.open_runtime(
        registry=registry_with(*STAGES), executors={"inline": Stale()}
    ) as rt:
        handle = await rt.submit(exp)
        with pytest.raises(StageFailed) as info:
            await handle.result()
    assert "answered attempt 8 while attempt 1 was awaited" in str(info.value.reason)
    assert "Stale" in str(info.value.reason)
