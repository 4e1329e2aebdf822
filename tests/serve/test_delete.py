"""``DELETE /api/runs/{id}``: a finished run goes from the store and the service; 404, 409."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from crucible_actors.errors import RunNotFound

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from .conftest import Served


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_finished_run_is_deleted_with_its_records(
    serve: Callable[..., AbstractAsyncContextManager[Served]], store: str
) -> None:
    async with serve(store=store) as s:
        kept = await s.run("echo", "echo")
        run_id = await s.run("echo", {"name": "fail", "options": {"message": "nope"}})
        response = await s.client.delete(f"/api/runs/{run_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["run_id"] == run_id
        deleted = body["deleted"]
        assert deleted["attempts"] == 2
        assert deleted["checkpoints"] >= 2
        assert deleted["checkpoint_bytes"] > 0
        assert deleted["events"] > 0
        assert (deleted["artifacts"], deleted["sweep_points"], deleted["sweeps"]) == (0, 0, 0)

        assert (await s.client.get(f"/api/runs/{run_id}")).status_code == 404
        listed = (await s.client.get("/api/runs")).json()["runs"]
        assert [r["id"] for r in listed] == [kept]
        assert s.runtime.get(run_id) is None
        assert s.store is not None
        with pytest.raises(RunNotFound):
            await s.store.get_run(run_id)
        assert await s.store.list_attempts(run_id) == []

        again = await s.client.delete(f"/api/runs/{run_id}")
        assert again.status_code == 404
        assert again.json()["error"]["type"] == "RunNotFound"


async def test_a_running_run_is_409_and_deletable_once_it_ended(served: Served) -> None:
    response = await served.submit("gate")
    run_id = response.json()["run_id"]
    await served.gate.entered.wait()
    refused = await served.client.delete(f"/api/runs/{run_id}")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["type"] == "RunStillRunning"
    assert error["details"] == {"run_id": run_id, "status": "running"}
    assert f"run {run_id!r} is running" in error["message"]
    assert (await served.client.get(f"/api/runs/{run_id}")).json()["status"] == "running"

    served.gate.opened.set()
    await served.wait(run_id)
    assert (await served.client.delete(f"/api/runs/{run_id}")).status_code == 200
    assert (await served.client.get(f"/api/runs/{run_id}")).status_code == 404


async def test_an_unknown_run_is_404(served: Served) -> None:
    response = await served.client.delete("/api/runs/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "RunNotFound"


async def test_without_a_store_a_finished_run_is_forgotten(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(store=None) as s:
        run_id = await s.run("echo")
        response = await s.client.delete(f"/api/runs/{run_id}")
        assert response.status_code == 200
        assert response.json()["deleted"]["checkpoints"] == 0
        assert (await s.client.get(f"/api/runs/{run_id}")).status_code == 404
