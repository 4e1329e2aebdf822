"""A run whose stages came from the result cache, as the service shows it: live and stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .test_events import parse_sse

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from .conftest import Served

CACHED = {"name": "echo", "options": {"value": 3}, "cache": True}


async def test_a_cached_stage_shows_as_a_cache_hit_live_and_from_the_store(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(store="sqlite") as first:
        computed = await first.run(CACHED, "echo")
        replayed = await first.run(CACHED, "echo")
        live = (await first.client.get(f"/api/runs/{replayed}")).json()
        live_events = parse_sse((await first.client.get(f"/api/runs/{replayed}/events")).text)
        miss = (await first.client.get(f"/api/runs/{computed}")).json()
    assert [[a["cache_hit"] for a in s["attempts"]] for s in miss["stages"]] == [[False], [False]]
    assert [(s["status"], [a["cache_hit"] for a in s["attempts"]]) for s in live["stages"]] == [
        ("completed", [True]),
        ("completed", [False]),
    ]
    assert live["metrics"] == {"value": 0}  # the second, uncached echo ran after the hit
    assert [(m["event"], m["data"]["stage"]) for m in live_events] == [
        ("run_started", None),
        ("stage_cached", "echo"),
        ("stage_started", "echo"),
        ("stage_completed", "echo"),
        ("run_completed", None),
    ]
    assert live_events[1]["data"]["data"]["source_run"] == computed
    async with serve(store="sqlite") as second:
        assert second.runtime.get(replayed) is None
        stored = (await second.client.get(f"/api/runs/{replayed}")).json()
        stored_events = parse_sse((await second.client.get(f"/api/runs/{replayed}/events")).text)
    assert stored == live
    assert [(m["id"], m["event"]) for m in stored_events] == [
        (m["id"], m["event"]) for m in live_events
    ]
