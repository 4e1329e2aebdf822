"""Server-sent events: order, resume with Last-Event-ID, and history rebuilt from the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from trio.testing import MockClock

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from .conftest import Served


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Return the messages of an SSE body: ``{"id", "event", "data"}`` (comments dropped)."""
    messages = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            fields["data"] = msgspec.json.decode(fields["data"])
            messages.append(fields)
    return messages


FLAKY = {"name": "fail", "restart": "transient", "max_restarts": 1}
PIPELINE: list[Any] = ["echo", {"name": "echo", "enabled": False}, FLAKY]
EXPECTED = [
    "run_started",
    "stage_started",
    "stage_completed",
    "stage_skipped",
    "stage_started",
    "stage_restarted",
    "stage_started",
    "stage_failed",
    "run_failed",
]


async def test_events_arrive_in_order_and_end_with_the_terminal_event(served: Served) -> None:
    run_id = await served.run(*PIPELINE)
    response = await served.client.get(f"/api/runs/{run_id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    messages = parse_sse(response.text)
    assert [m["event"] for m in messages] == EXPECTED
    assert [int(m["id"]) for m in messages] == list(range(1, len(EXPECTED) + 1))
    for m in messages:
        data = m["data"]
        assert set(data) == {
            "seq",
            "type",
            "run_id",
            "time",
            "wall",
            "stage",
            "index",
            "attempt",
            "data",
        }
        assert data["seq"] == int(m["id"])
        assert data["type"] == m["event"]
        assert data["run_id"] == run_id
    assert messages[3]["data"]["stage"] == "echo"
    assert messages[3]["data"]["index"] == 1
    assert messages[-1]["data"]["data"]["status"] == "failed"


async def test_a_stream_opened_while_the_run_executes_follows_it_to_the_end(served: Served) -> None:
    response = await served.submit("gate", "echo")
    run_id = response.json()["run_id"]
    body: list[str] = []

    async def follow() -> None:
        body.append((await served.client.get(f"/api/runs/{run_id}/events")).text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        await served.gate.entered.wait()
        await anyio.wait_all_tasks_blocked()
        assert not body  # still streaming: the run is held at the gate
        served.gate.opened.set()
    types = [m["event"] for m in parse_sse(body[0])]
    assert types == [
        "run_started",
        "stage_started",
        "stage_completed",
        "stage_started",
        "stage_completed",
        "run_completed",
    ]


async def test_closing_the_streams_ends_them_before_the_run_ends(
    served: Served,
) -> None:
    # What `serve` does when it starts to stop: the graceful close need not wait for them.
    response = await served.submit("gate", "echo")
    run_id = response.json()["run_id"]
    body: list[str] = []

    async def follow() -> None:
        body.append((await served.client.get(f"/api/runs/{run_id}/events")).text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        await served.gate.entered.wait()
        await anyio.wait_all_tasks_blocked()
        app_service = served.app.state.service
        app_service.close_streams()
    cut = parse_sse(body[0])
    assert [m["event"] for m in cut] == ["run_started", "stage_started"]
    served.gate.opened.set()  # the run itself goes on
    await served.wait(run_id)
    assert (await served.client.get(f"/api/runs/{run_id}")).json()["status"] == "completed"


@pytest.mark.parametrize("how", ["header", "query"])
async def test_resume_after_a_sequence_number(served: Served, how: str) -> None:
    run_id = await served.run(*PIPELINE)
    if how == "header":
        response = await served.client.get(
            f"/api/runs/{run_id}/events", headers={"Last-Event-ID": "5"}
        )
    else:
        response = await served.client.get(f"/api/runs/{run_id}/events", params={"after": 5})
    messages = parse_sse(response.text)
    assert [int(m["id"]) for m in messages] == [6, 7, 8, 9]
    assert [m["event"] for m in messages] == EXPECTED[5:]
    everything = await served.client.get(
        f"/api/runs/{run_id}/events", headers={"Last-Event-ID": "9"}
    )
    assert everything.status_code == 200
    assert parse_sse(everything.text) == []


@pytest.mark.parametrize("value", ["-1", "x", "1.5"])
async def test_a_bad_last_event_id_is_422(served: Served, value: str) -> None:
    run_id = await served.run("echo")
    response = await served.client.get(
        f"/api/runs/{run_id}/events", headers={"Last-Event-ID": value}
    )
    assert response.status_code == 422


async def test_history_events_are_rebuilt_from_the_store_like_the_live_ones(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(store="sqlite") as first:
        failed = await first.run(*PIPELINE)
        completed = await first.run("echo", {"name": "echo", "timeout": 5})
        cancelled = (await first.submit("echo", "gate")).json()["run_id"]
        await first.gate.entered.wait()
        await first.client.post(f"/api/runs/{cancelled}/cancel")
        live = {
            rid: parse_sse((await first.client.get(f"/api/runs/{rid}/events")).text)
            for rid in (failed, completed, cancelled)
        }
    async with serve(store="sqlite") as second:
        for rid, messages in live.items():
            assert second.runtime.get(rid) is None
            stored = parse_sse((await second.client.get(f"/api/runs/{rid}/events")).text)
            assert [(m["id"], m["event"]) for m in stored] == [
                (m["id"], m["event"]) for m in messages
            ]
            assert [
                (m["data"]["stage"], m["data"]["index"], m["data"]["attempt"]) for m in stored
            ] == [(m["data"]["stage"], m["data"]["index"], m["data"]["attempt"]) for m in messages]
        resumed = await second.client.get(
            f"/api/runs/{failed}/events", headers={"Last-Event-ID": "7"}
        )
        assert [m["event"] for m in parse_sse(resumed.text)] == ["stage_failed", "run_failed"]


class TestVirtualTime:
    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        return ("trio", {"clock": MockClock(autojump_threshold=0)})

    async def test_keep_alive_comments_while_nothing_happens(self, served: Served) -> None:
        run_id = (await served.submit("gate")).json()["run_id"]
        body: list[str] = []

        async def follow() -> None:
            body.append((await served.client.get(f"/api/runs/{run_id}/events")).text)

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(40)  # virtual: two keep-alives at 15 s and 30 s
            served.gate.opened.set()
        assert body[0].count(": keep-alive\n\n") == 2
        assert [m["event"] for m in parse_sse(body[0])][-1] == "run_completed"
