"""Bearer-token auth: /api and /metrics need the token; health and dashboard stay open."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from .conftest import Served

TOKEN = "s3cret-token"
GUARDED = [
    ("GET", "/api/runs"),
    ("POST", "/api/runs"),
    ("GET", "/api/runs/x"),
    ("POST", "/api/runs/x/cancel"),
    ("GET", "/api/runs/x/events"),
    ("GET", "/api/runs/x/trace"),
    ("GET", "/api/runs/x/artifacts/a"),
    ("GET", "/api/stages"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/no-such-route"),
    ("GET", "/metrics"),
]


@pytest.fixture
async def guarded(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> AsyncIterator[Served]:
    async with serve(token=TOKEN) as s:
        yield s


@pytest.mark.parametrize(("method", "path"), GUARDED)
async def test_missing_token_is_401(guarded: Served, method: str, path: str) -> None:
    response = await guarded.client.request(method, path)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "Unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN}x".encode(),
        b"Bearer wrong",
        f"Bearer {TOKEN[:-1]}".encode(),
        b"Bearer \xc3\xa9",
    ],
)
async def test_wrong_token_is_403(guarded: Served, header: bytes) -> None:
    response = await guarded.client.get("/api/runs", headers={"Authorization": header})
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "Forbidden"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer ", TOKEN])
async def test_malformed_authorization_is_401(guarded: Served, header: str) -> None:
    response = await guarded.client.get("/api/runs", headers={"Authorization": header})
    assert response.status_code == 401


async def test_right_token_opens_the_api(guarded: Served) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await guarded.client.get("/api/runs", headers=auth)).status_code == 200
    assert (await guarded.client.get("/metrics", headers=auth)).status_code == 200
    lower = {"Authorization": f"bearer {TOKEN}"}
    assert (await guarded.client.get("/api/stages", headers=lower)).status_code == 200
    response = await guarded.submit("echo", headers=auth)
    assert response.status_code == 202
    doc = (await guarded.client.get("/api/openapi.json", headers=auth)).json()
    assert doc["security"] == [{"bearer": []}]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/", "/static/index.html"])
async def test_health_and_dashboard_need_no_token(guarded: Served, path: str) -> None:
    response = await guarded.client.get(path)
    assert response.status_code == 200


async def test_unauthorized_requests_do_not_reach_the_runtime(guarded: Served) -> None:
    response = await guarded.submit("echo", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 403
    assert guarded.runtime.statistics().submitted == 0


def test_an_empty_token_is_refused() -> None:
    from crucible_actors.serve import create_app

    with pytest.raises(ValueError, match="token"):
        create_app(token="")
