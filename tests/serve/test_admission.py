"""Admission control: a full queue answers 429 with Retry-After; the queue shows in /metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from tests.prometheus import sample

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from .conftest import Served


async def test_a_submission_beyond_the_queue_is_429_with_retry_after(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(max_concurrent_runs=1, max_queue=1) as s:
        first = await s.submit("gate")
        assert first.status_code == 202
        await s.gate.entered.wait()
        waiting: list[Any] = []

        async def second() -> None:
            waiting.append(await s.submit("echo"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            assert not waiting  # the submission waits for admission
            metrics = (await s.client.get("/metrics")).text
            assert sample(metrics, "crucible_admission_queue_depth") == 1
            assert sample(metrics, "crucible_runs", status="pending") == 1
            assert sample(metrics, "crucible_runs", status="running") == 1
            third = await s.submit("echo")
            assert third.status_code == 429
            assert third.headers["retry-after"] == "1"
            error = third.json()["error"]
            assert error["type"] == "QueueFull"
            assert error["details"] == {"waiting": 1, "max_queue": 1}
            s.gate.opened.set()
        assert waiting[0].status_code == 202
        await s.wait(waiting[0].json()["run_id"])
        metrics = (await s.client.get("/metrics")).text
        assert sample(metrics, "crucible_submissions_rejected_total", reason="queue_full") == 1
        assert sample(metrics, "crucible_admission_queue_depth") == 0
        assert (await s.submit("echo")).status_code == 202


async def test_with_no_queue_a_busy_service_refuses_at_once(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(max_concurrent_runs=1, max_queue=0) as s:
        assert (await s.submit("gate")).status_code == 202
        await s.gate.entered.wait()
        assert (await s.submit("echo")).status_code == 429
        s.gate.opened.set()


async def test_a_refused_submission_frees_its_idempotency_key(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(max_concurrent_runs=1, max_queue=0) as s:
        held = (await s.submit("gate")).json()["run_id"]
        await s.gate.entered.wait()
        headers = {"Idempotency-Key": "retry-me"}
        assert (await s.submit("echo", headers=headers)).status_code == 429
        s.gate.opened.set()
        await s.wait(held)
        await s.runtime.wait_idle()
        retried = await s.submit("echo", headers=headers)
        assert retried.status_code == 202
