"""Live views agree with the store; traces and artifacts are served from what runs recorded."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from .conftest import Served


async def test_the_live_and_the_stored_view_of_a_run_are_identical(
    serve: Callable[..., AbstractAsyncContextManager[Served]], tmp_path: Path
) -> None:
    pipelines: list[list[Any]] = [
        ["echo", {"name": "echo", "options": {"value": 7}}],
        [
            "echo",
            {"name": "echo", "enabled": False},
            {"name": "fail", "restart": "transient", "max_restarts": 1},
        ],
        [{"name": "write", "options": {"dir": str(tmp_path)}}],
    ]
    async with serve(store="sqlite") as first:
        ids = [await first.run(*p) for p in pipelines]
        cancelled = (await first.submit("gate")).json()["run_id"]
        await first.gate.entered.wait()
        await first.client.post(f"/api/runs/{cancelled}/cancel")
        ids.append(cancelled)
        live = {rid: (await first.client.get(f"/api/runs/{rid}")).json() for rid in ids}
        live_list = (await first.client.get("/api/runs")).json()
        assert all(first.runtime.get(rid) is not None for rid in ids)
    async with serve(store="sqlite") as second:
        for rid in ids:
            assert second.runtime.get(rid) is None
            stored = (await second.client.get(f"/api/runs/{rid}")).json()
            assert stored == live[rid]
            assert second.store is not None
            assert stored["status"] == (await second.store.get_run(rid)).status
        assert (await second.client.get("/api/runs")).json() == live_list
    statuses = [live[rid]["status"] for rid in ids]
    assert statuses == ["completed", "failed", "completed", "cancelled"]
    skipped = live[ids[1]]["stages"]
    assert [s["status"] for s in skipped] == ["completed", "skipped", "failed"]
    assert [a["status"] for a in skipped[2]["attempts"]] == ["failed", "failed"]


async def test_trace_as_json_and_as_a_self_contained_page(served: Served) -> None:
    run_id = await served.run("echo", {"name": "fail"})
    response = await served.client.get(f"/api/runs/{run_id}/trace")
    assert response.status_code == 200
    chain = response.json()
    assert [e["type"] for e in chain["events"]] == [
        "stage_start",
        "stage_complete",
        "stage_start",
        "stage_failed",
    ]
    page = await served.client.get(f"/api/runs/{run_id}/trace", params={"format": "html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    bad = await served.client.get(f"/api/runs/{run_id}/trace", params={"format": "xml"})
    assert bad.status_code == 422


async def test_trace_of_a_running_run_comes_from_its_last_checkpoint(served: Served) -> None:
    run_id = (await served.submit("echo", "gate")).json()["run_id"]
    await served.gate.entered.wait()
    chain = (await served.client.get(f"/api/runs/{run_id}/trace")).json()
    assert [e["type"] for e in chain["events"]] == ["stage_start", "stage_complete"]
    assert (await served.client.get(f"/api/runs/{run_id}")).json()["has_trace"] is True
    served.gate.opened.set()
    await served.wait(run_id)


async def test_artifacts_are_listed_and_served(served: Served, tmp_path: Path) -> None:
    run_id = await served.run({"name": "write", "options": {"dir": str(tmp_path), "text": "hi"}})
    detail = (await served.client.get(f"/api/runs/{run_id}")).json()
    assert detail["artifacts"] == [
        {
            "name": "out",
            "type": "text",
            "format": "txt",
            "url": f"/api/runs/{run_id}/artifacts/out",
        }
    ]
    response = await served.client.get(detail["artifacts"][0]["url"])
    assert response.status_code == 200
    assert response.content == b"hi"
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"


async def raw_get(app: Any, path: str) -> tuple[int, bytes]:
    """Send ``GET path`` straight to the ASGI app: no client normalizes the path first."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "server": ("test", 80),
        "client": ("127.0.0.1", 1234),
    }
    sent: list[dict[str, Any]] = []
    requested = False
    done = anyio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


TRAVERSALS = [
    "../serve.db",
    "..%2Fserve.db",
    "%2e%2e%2fserve.db",
    "..%252Fserve.db",
    "%2Fetc%2Fpasswd",
    "..",
    "out%00",
    "secret.txt",
    "..%5C..%5Csecret.txt",
    "../../../../etc/passwd",
    f"..%2F{'..%2F' * 8}etc%2Fpasswd",
]


async def test_artifact_path_traversal_is_404(served: Served, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("do not serve")
    run_id = await served.run({"name": "write", "options": {"dir": str(tmp_path)}})
    for name in TRAVERSALS:
        status, body = await raw_get(served.app, f"/api/runs/{run_id}/artifacts/{name}")
        assert status == 404, name
        assert b"do not serve" not in body
        assert b"root:" not in body
        # Through a real client too (it normalizes dot segments away first).
        response = await served.client.get(f"/api/runs/{run_id}/artifacts/{name}")
        assert b"do not serve" not in response.content
        assert response.status_code in (200, 404), name
        if response.status_code == 200:  # ``..`` was resolved by the client: the run itself
            assert response.json()["id"] == run_id
    status, body = await raw_get(served.app, f"/api/runs/{run_id}/artifacts/out")
    assert status == 200


async def test_an_artifact_whose_file_is_gone_is_404(served: Served, tmp_path: Path) -> None:
    run_id = await served.run({"name": "write", "options": {"dir": str(tmp_path)}})
    (tmp_path / f"{run_id}.txt").unlink()
    response = await served.client.get(f"/api/runs/{run_id}/artifacts/out")
    assert response.status_code == 404
    assert "no longer exists" in response.json()["error"]["message"]


async def test_a_non_file_artifact_location_is_404(served: Served) -> None:
    from crucible_actors.store import ArtifactRecord

    run_id = await served.run("echo")
    assert served.store is not None
    record = ArtifactRecord(run_id=run_id, name="remote", location="s3://bucket/key")
    served.store._artifacts[run_id] = [record]  # a location only another system can read
    response = await served.client.get(f"/api/runs/{run_id}/artifacts/remote")
    assert response.status_code == 404
    assert "not a local file" in response.json()["error"]["message"]
    assert json.loads(response.text)["error"]["type"] == "ArtifactNotFound"
