"""The service's run API in-process: submit, read, list, cancel, idempotency, errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest
from tests.prometheus import family_type, sample

from crucible_actors import RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from .conftest import Served

TERMINAL = {"completed", "failed", "cancelled", "interrupted"}


async def test_submit_answers_202_with_links_and_the_run_completes(served: Served) -> None:
    response = await served.submit("echo", {"name": "echo", "options": {"value": 3}})
    assert response.status_code == 202
    body = response.json()
    run_id = body["run_id"]
    assert body["status"] in ("pending", "running")
    assert body["links"] == {
        "self": f"/api/runs/{run_id}",
        "events": f"/api/runs/{run_id}/events",
        "cancel": f"/api/runs/{run_id}/cancel",
        "trace": f"/api/runs/{run_id}/trace",
    }
    assert response.headers["location"] == f"/api/runs/{run_id}"
    await served.wait(run_id)
    detail = (await served.client.get(f"/api/runs/{run_id}")).json()
    assert detail["status"] == "completed"
    assert detail["experiment_id"] == "exp"
    assert detail["metrics"] == {"value": 3}
    assert [(s["index"], s["name"], s["status"]) for s in detail["stages"]] == [
        (0, "echo", "completed"),
        (1, "echo", "completed"),
    ]
    assert detail["stages"][0]["attempts"][0]["attempt"] == 1
    assert detail["has_trace"] is True
    assert detail["experiment"]["pipeline"][1]["options"] == {"value": 3}
    assert detail["duration"] is not None
    assert detail["failure"] is None


async def test_inline_experiment_with_envelope_keys_alongside(served: Served) -> None:
    body = {
        "id": "inline",
        "stages": [{"name": "need", "options": {"input": "x"}}],
        "run_id": "run-inline",
        "assigns": {"seed": 1},
        "validate_options": "error",
        "trace": False,
    }
    response = await served.client.post("/api/runs", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["run_id"] == "run-inline"
    await served.wait("run-inline")
    detail = (await served.client.get("/api/runs/run-inline")).json()
    assert detail["status"] == "completed"
    assert detail["experiment_id"] == "inline"
    assert detail["has_trace"] is False
    trace = await served.client.get("/api/runs/run-inline/trace")
    assert trace.status_code == 404
    assert trace.json()["error"]["type"] == "NoTrace"


async def test_failed_run_reports_the_failure(served: Served) -> None:
    run_id = await served.run("echo", {"name": "fail", "options": {"message": "nope"}}, "echo")
    detail = (await served.client.get(f"/api/runs/{run_id}")).json()
    assert detail["status"] == "failed"
    assert detail["failure"]["stage"] == "fail"
    assert detail["failure"]["reason_type"] == "Boom"
    assert detail["failure"]["message"] == "nope"
    assert [s["status"] for s in detail["stages"]] == ["completed", "failed", "not_run"]
    assert "Boom: nope" in detail["stages"][1]["attempts"][0]["error"]


async def test_unknown_run_is_404_everywhere(served: Served) -> None:
    for method, path in [
        ("GET", "/api/runs/nope"),
        ("POST", "/api/runs/nope/cancel"),
        ("GET", "/api/runs/nope/events"),
        ("GET", "/api/runs/nope/trace"),
        ("GET", "/api/runs/nope/artifacts/out"),
    ]:
        response = await served.client.request(method, path)
        assert response.status_code == 404, path
        error = response.json()["error"]
        assert error["type"] == "RunNotFound"
        assert "nope" in error["message"]


async def test_unknown_route_and_wrong_method_answer_json_errors(served: Served) -> None:
    response = await served.client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "NotFound"
    response = await served.client.delete("/api/runs")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "MethodNotAllowed"


async def test_cancel_a_running_run_then_409_once_finished(served: Served) -> None:
    response = await served.submit("gate", "echo")
    run_id = response.json()["run_id"]
    await served.gate.entered.wait()
    summary = (await served.client.get(f"/api/runs/{run_id}")).json()
    assert summary["status"] == "running"
    assert summary["stages"][0]["status"] == "running"
    response = await served.client.post(f"/api/runs/{run_id}/cancel")
    assert response.status_code == 202
    assert response.json() == {"run_id": run_id, "status": "cancelled"}
    detail = (await served.client.get(f"/api/runs/{run_id}")).json()
    assert detail["status"] == "cancelled"
    assert detail["failure"]["reason_type"] == "RunCancelled"
    assert served.store is not None
    assert (await served.store.get_run(run_id)).status == "cancelled"
    again = await served.client.post(f"/api/runs/{run_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "AlreadyFinished"


async def test_cancel_right_after_admission_is_recorded_in_the_store(served: Served) -> None:
    # Cancelled before the run's first store write: the run must still be stored.
    response = await served.submit("gate")
    run_id = response.json()["run_id"]
    cancel = await served.client.post(f"/api/runs/{run_id}/cancel")
    assert cancel.status_code == 202
    assert cancel.json()["status"] == "cancelled"
    assert served.store is not None
    assert (await served.store.get_run(run_id)).status == "cancelled"


async def test_idempotency_key_returns_the_same_run(served: Served) -> None:
    headers = {"Idempotency-Key": "key-1"}
    first = await served.submit("echo", headers=headers)
    assert first.status_code == 202
    again = await served.submit("echo", headers=headers)
    assert again.status_code == 200
    assert again.json()["run_id"] == first.json()["run_id"]
    other = await served.submit("echo", headers={"Idempotency-Key": "key-2"})
    assert other.status_code == 202
    assert other.json()["run_id"] != first.json()["run_id"]
    await served.wait(first.json()["run_id"])
    await served.wait(other.json()["run_id"])
    runs = (await served.client.get("/api/runs")).json()["runs"]
    assert len(runs) == 2


async def test_idempotency_key_reused_with_another_body_is_422(served: Served) -> None:
    headers = {"Idempotency-Key": "key-1"}
    assert (await served.submit("echo", headers=headers)).status_code == 202
    response = await served.submit("echo", "echo", headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "IdempotencyKeyReused"


async def test_concurrent_retries_with_one_key_create_one_run(served: Served) -> None:
    answers: list[Any] = []

    async def post() -> None:
        answers.append(await served.submit("echo", headers={"Idempotency-Key": "same"}))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(post)
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 202]
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert served.runtime.statistics().submitted == 1


async def test_idempotency_key_survives_a_restart_of_the_service(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    headers = {"Idempotency-Key": "durable"}
    async with serve(store="sqlite") as first:
        response = await first.submit("echo", headers=headers)
        run_id = response.json()["run_id"]
        await first.wait(run_id)
    async with serve(store="sqlite") as second:
        again = await second.submit("echo", headers=headers)
        assert again.status_code == 200
        assert again.json() == {**response.json(), "status": "completed"}
        assert second.runtime.statistics().submitted == 0


async def test_bad_idempotency_key_is_422(served: Served) -> None:
    response = await served.submit("echo", headers={"Idempotency-Key": "has space"})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "InvalidIdempotencyKey"


async def test_taken_run_id_is_409(served: Served) -> None:
    await served.run("echo", run_id="mine")
    response = await served.submit("echo", run_id="mine")
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "RunExists"


async def test_list_runs_newest_first_with_cursor_pagination(served: Served) -> None:
    ids = [await served.run("echo", run_id=f"r{i}", id="a" if i % 2 else "b") for i in range(5)]
    page = (await served.client.get("/api/runs", params={"limit": 2})).json()
    assert [r["id"] for r in page["runs"]] == ["r4", "r3"]
    assert page["next"] == "r3"
    page = (await served.client.get("/api/runs", params={"limit": 2, "before": "r3"})).json()
    assert [r["id"] for r in page["runs"]] == ["r2", "r1"]
    page = (await served.client.get("/api/runs", params={"limit": 2, "before": "r1"})).json()
    assert [r["id"] for r in page["runs"]] == ["r0"]
    assert page["next"] is None
    only_a = (await served.client.get("/api/runs", params={"experiment_id": "a"})).json()
    assert [r["id"] for r in only_a["runs"]] == ["r3", "r1"]
    completed = (await served.client.get("/api/runs", params={"status": "completed"})).json()
    assert {r["id"] for r in completed["runs"]} == set(ids)
    failed = (await served.client.get("/api/runs", params={"status": "failed"})).json()
    assert failed == {"runs": [], "next": None}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "x"},
        {"status": "done"},
        {"before": "no-such-run"},
    ],
)
async def test_list_runs_rejects_bad_parameters(served: Served, params: dict[str, str]) -> None:
    response = await served.client.get("/api/runs", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "InvalidParameter"


async def test_runtime_without_store_serves_runs_from_handles(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(store=None) as s:
        first = await s.run("echo", run_id="one")
        second = await s.run({"name": "fail"}, run_id="two")
        page = (await s.client.get("/api/runs")).json()
        assert [r["id"] for r in page["runs"]] == [second, first]
        assert [r["status"] for r in page["runs"]] == ["failed", "completed"]
        detail = (await s.client.get("/api/runs/one")).json()
        assert detail["status"] == "completed"
        assert detail["stages"][0]["status"] == "completed"
        assert detail["started_at"] is not None
        paged = (await s.client.get("/api/runs", params={"limit": 1})).json()
        assert paged["next"] == "two"


async def test_stages_lists_the_registry_with_json_schemas(served: Served) -> None:
    stages = (await served.client.get("/api/stages")).json()["stages"]
    by_name = {s["name"]: s for s in stages}
    assert sorted(by_name) == ["echo", "fail", "gate", "need", "sleep", "write"]
    assert by_name["need"]["module"] == "serve_stages:Need"
    assert by_name["need"]["schema"]["required"] == ["input"]
    assert by_name["need"]["schema"]["types"] == {"input": "string", "count": "integer"}


async def test_health_ready_and_dashboard_are_served(served: Served) -> None:
    assert (await served.client.get("/healthz")).json() == {"status": "ok"}
    ready = await served.client.get("/readyz")
    assert ready.json() == {"status": "ready", "store": "ok", "runtime": "accepting"}
    page = await served.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    missing = await served.client.get("/static/no-such-file.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "NotFound"
    escape = await served.client.get("/static/%2e%2e/_app.py")
    assert escape.status_code == 404


async def test_an_unexpected_error_is_a_json_500_without_traceback(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(run_id: str) -> Any:
        raise RuntimeError("secret internals")

    assert served.store is not None
    monkeypatch.setattr(served.store, "get_run", broken)
    response = await served.client.get("/api/runs/x")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "InternalError"
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_store_unavailable_is_503(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    from crucible_actors.errors import StoreUnavailable

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("connection refused", store="memory://")

    assert served.store is not None
    monkeypatch.setattr(served.store, "list_runs", down)
    response = await served.client.get("/api/runs")
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "StoreUnavailable"
    ready = await served.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["details"]["store"].startswith("unavailable")


async def test_live_status_never_runs_ahead_of_the_store(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert served.store is not None
    finish_run = served.store.finish_run
    storing, stored = anyio.Event(), anyio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        storing.set()
        await stored.wait()
        return await finish_run(*args, **kwargs)

    monkeypatch.setattr(served.store, "finish_run", held)
    response = await served.submit("gate")
    run_id = response.json()["run_id"]
    handle = served.runtime.get(run_id)
    assert handle is not None
    served.gate.opened.set()
    await storing.wait()
    # The handle turns terminal before the store has the outcome; the API waits for both.
    assert handle.status is RunStatus.COMPLETED
    assert not handle.done
    assert (await served.client.get(f"/api/runs/{run_id}")).json()["status"] == "running"
    stored.set()
    await served.wait(run_id)
    assert (await served.client.get(f"/api/runs/{run_id}")).json()["status"] == "completed"


async def test_metrics_expose_runs_durations_restarts_and_queue(served: Served) -> None:
    await served.run("echo")
    await served.run("echo", {"name": "fail", "restart": "transient", "max_restarts": 2})
    await served.runtime.wait_idle()
    response = await served.client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert sample(text, "crucible_runs", status="completed") == 1
    assert sample(text, "crucible_runs", status="failed") == 1
    assert sample(text, "crucible_admission_queue_depth") == 0
    assert sample(text, "crucible_runs_submitted_total") == 2
    count = "crucible_stage_duration_seconds_count"
    assert sample(text, count, stage="echo", outcome="completed") == 2
    assert sample(text, count, stage="fail", outcome="failed") == 3
    bucket = "crucible_stage_duration_seconds_bucket"
    assert sample(text, bucket, stage="echo", outcome="completed", le="+Inf") == 2
    assert sample(text, bucket, stage="echo", outcome="completed", le="300.0") == 2
    assert sample(text, "crucible_stage_restarts_total", stage="fail") == 2
    assert sample(text, "crucible_stage_attempts_total", stage="fail") == 3
    assert sample(text, "crucible_runs_active") == 0
    assert sample(text, "crucible_run_duration_seconds_count", status="failed") == 1
    assert family_type(text, "crucible_stage_duration_seconds") == "histogram"


async def test_metrics_time_the_commits_of_the_apps_store(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(store="sqlite") as s:
        await s.run("echo")
        text = (await s.client.get("/metrics")).text
    commits = sample(text, "crucible_store_commit_duration_seconds_count", store="sqlite")
    assert commits is not None
    assert commits >= 2  # the run's row, its attempt and checkpoints
    total = sample(text, "crucible_store_commit_duration_seconds_sum", store="sqlite")
    assert total is not None
    assert 0 < total < 10


async def test_a_stored_run_detail_has_its_provenance(served: Served) -> None:
    response = await served.submit("echo", {"name": "echo", "options": {"value": 3}})
    run_id = response.json()["run_id"]
    await served.wait(run_id)
    detail = (await served.client.get(f"/api/runs/{run_id}")).json()
    prov = detail["provenance"]
    assert set(prov) == {
        "environment",
        "definition",
        "python",
        "crucible_actors",
        "platform",
        "host",
        "packages",
        "git",
        "stages",
        "inputs",
    }
    assert set(prov["stages"]) == {"echo"}
    assert len(prov["stages"]["echo"]) == 32
    assert prov["python"]
    assert "crucible-actors" in prov["packages"]
    assert prov["inputs"] == {}
