"""SSE of a run resumed after its process stopped: one numbering across both processes.

Found by ``bench/chaos.py`` (serve killed by SIGKILL, restarted): the resumed run's events
started again at 1, so a client reconnecting with ``Last-Event-ID`` got nothing (its id was
past the new stream's end) and never saw the run complete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crucible_actors import Experiment, StageDef, open_runtime
from crucible_actors.store import open_store

from .conftest import make_registry, serve_stages
from .test_events import parse_sse

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from .conftest import Served

EXP = Experiment(
    id="exp",
    pipeline=[
        StageDef(name="echo"),
        StageDef(name="echo", options={"value": 2}),
        StageDef(name="gate"),
    ],
)
EXPECTED = [
    ("run_started", None),
    ("stage_started", 0),
    ("stage_completed", 0),
    ("stage_started", 1),
    ("stage_completed", 1),
    ("stage_started", 2),
    ("stage_completed", 2),
    ("run_completed", None),
]


async def _stopped_at_the_gate(url: str) -> bytes:
    """Run EXP until it waits in its third stage, then close the runtime under it."""
    gate = serve_stages.Gate()
    async with open_runtime(registry=make_registry(gate), store=url) as rt:
        await rt.submit(EXP, run_id="r1")
        await gate.entered.wait()
    async with open_store(url) as store:
        checkpoint = await store.load_checkpoint("r1")
    assert checkpoint is not None
    assert checkpoint.index == 2
    return checkpoint.data


async def test_resumed_run_continues_the_event_numbering_of_its_first_process(
    serve: Callable[..., AbstractAsyncContextManager[Served]], tmp_path: Path
) -> None:
    snapshot = await _stopped_at_the_gate(f"sqlite:///{tmp_path / 'serve.db'}")
    async with serve(store="sqlite") as served:
        served.gate.opened.set()
        handle = await served.runtime.resume(EXP, "r1", snapshot, 2)
        await handle.wait()

        full = parse_sse((await served.client.get("/api/runs/r1/events")).text)
        assert [(m["event"], m["data"]["index"]) for m in full] == EXPECTED
        assert [int(m["id"]) for m in full] == list(range(1, 9))
        assert all(m["data"]["seq"] == int(m["id"]) for m in full)

        # a client of the first process saw up to the gate's stage_started (id 6)
        headers = {"Last-Event-ID": "6"}
        rest = parse_sse((await served.client.get("/api/runs/r1/events", headers=headers)).text)
        assert [(int(m["id"]), m["event"]) for m in rest] == [
            (7, "stage_completed"),
            (8, "run_completed"),
        ]
