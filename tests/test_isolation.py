"""Thread and process isolation of stage attempts (real worker processes)."""

from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest
from tests.delivery import staged
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Experiment, Registry, StageDef, StageFailed, StageTimeout

if TYPE_CHECKING:
    from pathlib import Path

STAGES = textwrap.dedent(
    """
    import os, time
    import crucible_actors as ca

    @ca.stage("pid")
    async def pid(ctx, opts):
        return ctx.put_metric("pid", os.getpid()).put_metric("seen", ctx.get_metric("n"))

    @ca.stage("crash")
    def crash(ctx, opts):
        raise KeyError("missing thing")

    @ca.stage("block")
    async def block(ctx, opts):
        time.sleep(opts.get("seconds", 60))  # blocks its loop without awaiting
        return ctx.put_metric("blocked", True)
    """
)


@pytest.fixture
def stage_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    (tmp_path / "iso_stages.py").write_text(STAGES)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("iso_stages", None)
    import iso_stages  # type: ignore[import-not-found]

    return registry_with(iso_stages.pid, iso_stages.crash, iso_stages.block)


@pytest.mark.slow
@pytest.mark.usefixtures("delivery")
async def test_process_isolated_stage_runs_in_another_process(stage_module: Registry) -> None:
    import os

    exp = Experiment(id="iso", pipeline=staged([StageDef(name="pid", isolation="process")]))
    ctx = await ca.run_async(exp, registry=stage_module, assigns={"x": 1})
    assert ctx.get_metric("pid") != os.getpid()
    assert ctx.completed_stages() == ["pid"]
    assert ctx.assigns["x"] == 1


@pytest.mark.slow
@pytest.mark.usefixtures("delivery")
async def test_process_isolated_stage_error_is_reported_as_the_original_type(
    stage_module: Registry,
) -> None:
    exp = Experiment(id="iso", pipeline=staged([StageDef(name="crash", isolation="process")]))
    with pytest.raises(StageFailed) as info:
        await ca.run_async(exp, registry=stage_module)
    assert isinstance(info.value.reason, KeyError)
    assert "missing thing" in str(info.value.reason)


@pytest.mark.slow
async def test_timed_out_process_attempt_is_killed(stage_module: Registry) -> None:
    exp = Experiment(
        id="iso",
        pipeline=[
            StageDef(name="block", isolation="process", timeout=1.0, options={"seconds": 60})
        ],
    )
    with pytest.raises(StageFailed) as info, ca_fail_after(30):
        await ca.run_async(exp, registry=stage_module)
    assert isinstance(info.value.reason, StageTimeout)


@pytest.mark.slow
async def test_thread_isolation_lets_a_blocking_async_stage_time_out(
    stage_module: Registry,
) -> None:
    exp = Experiment(
        id="iso",
        pipeline=[StageDef(name="block", isolation="thread", timeout=0.5, options={"seconds": 2})],
    )
    with pytest.raises(StageFailed) as info:
        await ca.run_async(exp, registry=stage_module)
    assert isinstance(info.value.reason, StageTimeout)


def ca_fail_after(seconds: float) -> Any:
    import anyio

    return anyio.fail_after(seconds)
