"""A client that disconnects mid-request: one log line saying so, no traceback, no 500."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from .conftest import Served


async def test_a_client_disconnecting_mid_body_is_logged_as_such_without_a_traceback(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    incoming = [
        {"type": "http.request", "body": b'{"id": "half', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/runs",
        "raw_path": b"/api/runs",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    with caplog.at_level(logging.INFO, logger="crucible_actors.serve"):
        await served.app(scope, receive, send)
    assert sent == []  # nobody to answer
    records = [r for r in caplog.records if r.name == "crucible_actors.serve"]
    assert [r.getMessage() for r in records] == [
        "client disconnected before POST /api/runs was read; request dropped"
    ]
    assert records[0].exc_info is None
    assert records[0].levelno == logging.INFO
