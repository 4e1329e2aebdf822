"""An app without a runtime opens its own in its lifespan, resuming orphaned runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx

from crucible_actors import Context, Experiment, StageDef
from crucible_actors._core import to_json_safe
from crucible_actors._core._encoding import encode_context
from crucible_actors.serve import create_app
from crucible_actors.store import Checkpoint, ExperimentRecord, RunRecord, open_store

from .conftest import make_registry, run_lifespan, serve_stages

if TYPE_CHECKING:
    from pathlib import Path


async def seed_orphan(url: str, run_id: str) -> None:
    """Store a run left ``running`` by an owner that no longer exists."""
    exp = Experiment(id="exp", pipeline=[StageDef(name="echo", options={"value": 5})])
    now = datetime.now(UTC)
    async with open_store(url) as store:
        await store.start_run(
            RunRecord(
                id=run_id, experiment_id="exp", status="running", started_at=now, owner_id="gone"
            ),
            experiment=ExperimentRecord(
                id="exp", definition=to_json_safe(exp, finite=True), created_at=now, updated_at=now
            ),
            checkpoint=Checkpoint(
                run_id=run_id,
                index=0,
                data=encode_context(Context.new(exp, run_id=run_id)),
                created_at=now,
            ),
        )


async def test_the_lifespan_opens_a_runtime_that_resumes_orphans(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    await seed_orphan(url, "orphan")
    app = create_app(registry=make_registry(serve_stages.Gate()), store=url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        before = await client.post("/api/runs", json={"id": "e", "pipeline": [{"name": "echo"}]})
        assert before.status_code == 503
        assert before.json()["error"]["type"] == "NotStarted"
        async with run_lifespan(app):
            service = app.state.service
            handle = service.runtime.get("orphan")
            assert handle is not None
            await handle.wait()
            detail = (await client.get("/api/runs/orphan")).json()
            assert detail["status"] == "completed"
            assert detail["metrics"] == {"value": 5}
            response = await client.post(
                "/api/runs", json={"id": "e", "pipeline": [{"name": "echo"}]}
            )
            assert response.status_code == 202
            await service.runtime.get(response.json()["run_id"]).wait()
            assert (await client.get("/readyz")).json()["runtime"] == "accepting"
        after = await client.get("/readyz")
        assert after.status_code == 503
    async with open_store(url) as store:
        assert (await store.get_run("orphan")).status == "completed"
        assert len(await store.list_runs()) == 2


async def test_the_app_mounts_under_a_prefix(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from crucible_actors import open_runtime

    async with open_runtime(
        registry=make_registry(serve_stages.Gate()), store=f"sqlite:///{tmp_path / 's.db'}"
    ) as rt:
        host = Starlette(routes=[Mount("/crucible", app=create_app(rt, token="t"))])
        transport = httpx.ASGITransport(app=host)
        auth = {"Authorization": "Bearer t"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/crucible/healthz")).json() == {"status": "ok"}
            assert (await client.get("/crucible/api/runs")).status_code == 401
            response = await client.post(
                "/crucible/api/runs",
                json={"id": "e", "pipeline": [{"name": "echo"}]},
                headers=auth,
            )
            assert response.status_code == 202
            run_id = response.json()["run_id"]
            assert response.json()["links"]["self"] == f"/crucible/api/runs/{run_id}"
            handle = rt.get(run_id)
            assert handle is not None
            await handle.wait()
            detail = await client.get(f"/crucible/api/runs/{run_id}", headers=auth)
            assert detail.json()["status"] == "completed"
