"""The supported test helpers in crucible_actors.testing."""

from __future__ import annotations

from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Experiment, StageDef
from crucible_actors.testing import MemoryStore, RecordingStage, capture_spans


async def test_recording_stage_fails_on_chosen_calls_and_records_attempts() -> None:
    rec = RecordingStage("rec", fail_on_calls=[1])
    reg = registry_with(rec)
    ctx = await ca.run_async(
        Experiment(id="e", pipeline=[StageDef(name="rec", restart="transient", options={"k": 1})]),
        registry=reg,
    )
    assert ctx.get_metric("rec") == 2
    assert [c["attempt"] for c in rec.calls] == [1, 2]
    assert rec.calls[0]["options"] == {"k": 1}


async def test_memory_store_and_capture_spans_plug_into_the_runtime() -> None:
    rec = RecordingStage("rec")
    reg = registry_with(rec)
    store = MemoryStore()
    with capture_spans() as capture:
        async with ca.open_runtime(
            registry=reg, store=store, tracer_provider=capture.provider
        ) as rt:
            handle = await rt.submit(Experiment(id="e", pipeline=[StageDef(name="rec")]))
            await handle.result()
        assert [s.name for s in capture.spans("crucible.run")] == ["crucible.run"]
    run = await store.get_run(handle.run_id)
    assert run.status == "completed"
