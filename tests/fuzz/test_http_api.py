"""Fuzzing every route of the service's OpenAPI document, in-process.

Schemathesis generates requests from ``/api/openapi.json`` (bodies, path and query
parameters, headers), both conforming (positive) and violating (negative) the schemas;
raw bodies add bytes no schema describes (non-UTF-8, truncated JSON, deep nesting, wrong
content types). Each request goes through ``httpx.ASGITransport`` to an app over a memory
store. The service must never answer 500, never let an exception escape, and never log
an unexpected error (``crucible_actors.serve`` logs the traceback behind each 500).
Budget: ``tests/fuzz/_budget.py``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from tests.fuzz._budget import fuzz_settings
from tests.helpers import missing_extra
from tests.strategies import edits, mutate

pytest.importorskip("starlette", reason=missing_extra("serve"))

from tests.serve.conftest import serve as serve  # the fixtures this module's tests use
from tests.serve.conftest import served as served

from crucible_actors import __version__
from crucible_actors.serve._openapi import openapi_document

if TYPE_CHECKING:
    from tests.serve.conftest import Served

DOCUMENT = openapi_document(version=__version__, token=False)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)


def _violable(op: dict[str, Any]) -> bool:
    """Whether a request can break the schema: a body or a typed query/header parameter.

    Any string is a valid path segment, so a route with only path parameters has no
    negative case (those parameters still get arbitrary strings in positive mode).
    """
    params = op.get("parameters", [])
    return "requestBody" in op or any(p["in"] != "path" for p in params)


#: (path, method, mode) for every route; negative requests where there is something to violate
OPERATIONS = [
    (path, method.upper(), mode)
    for path, ops in sorted(DOCUMENT["paths"].items())
    for method, op in sorted(ops.items())
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or _violable(op)
]
#: the experiment body every run below is built on (stages of tests/serve/serve_stages.py)
VALID_BODY = {
    "experiment": {"id": "fuzz", "pipeline": [{"name": "echo", "options": {"key": "a"}}]},
    "assigns": {"examples": [{"input": "x"}]},
}


def _unexpected(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("crucible_actors.serve") and r.levelno >= logging.ERROR
    ]


def _request_kwargs(case: Any) -> dict[str, Any]:
    kwargs = case.as_transport_kwargs(base_url="http://test")
    out: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "params": kwargs.get("params") or None,
        "headers": {k: v for k, v in kwargs.get("headers", {}).items() if k != "Connection"},
    }
    if "json" in kwargs:
        out["content"] = json.dumps(kwargs["json"]).encode("utf-8", "surrogatepass")
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        out["content"] = data if isinstance(data, bytes) else str(data).encode()
    return out


def _route_test(path: str, method: str, mode: GenerationMode) -> Any:
    """Build the test of one route and mode (the case is drawn by ``given``, not in the
    test body: a draw that overruns raises a BaseException that would stop the asyncio
    test runner)."""

    @fuzz_settings(8)
    @given(case=SCHEMA[path][method].as_strategy(generation_mode=mode))
    async def test(served: Served, caplog: pytest.LogCaptureFixture, case: Any) -> None:
        kwargs = _request_kwargs(case)
        with caplog.at_level(logging.ERROR, logger="crucible_actors.serve"):
            response = await served.client.request(**kwargs)
        assert response.status_code < 500, (kwargs, response.status_code, response.text)
        assert not _unexpected(caplog), _unexpected(caplog)

    test.__doc__ = f"{method} {path} ({mode.value}) never answers 500 nor logs an error."
    return test


for _path, _method, _mode in OPERATIONS:
    _slug = "".join(c if c.isalnum() else "_" for c in _path).strip("_") or "root"
    _name = f"test_no_500_{_method.lower()}_{_slug}_{_mode.value}"
    globals()[_name] = _route_test(_path, _method, _mode)


_raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(
        mutate,
        st.just(json.dumps(VALID_BODY).encode()),
        edits(max_at=500, max_chunk=3, specials=[b"\xff", b"{", b"]", b'"']),
    ),
    st.integers(1, 3000).map(lambda n: b'{"experiment": ' + b"[" * n + b"]" * n + b"}"),
    st.sampled_from(
        [
            b'{"experiment": {"id": "x", "pipeline": [{"name": "echo", "timeout": NaN}]}}',
            b'{"experiment": {"id": "x", "pipeline": [{"name": "echo", "max_restarts": 1e400}]}}',
            b'{"experiment": {"id": "x", "pipeline": [{"name": "echo", '
            b'"options": {"n": 123456789012345678901234567890}}]}}',
            b'{"experiment": {"id": "x", "pipeline": [{"name": "echo", '
            b'"max_restarts": 123456789012345678901234567890}]}}',
            b'{"experiment": {"id": "\\ud800", "pipeline": [{"name": "echo"}]}}',
            b'{"experiment": "id = \\"x\\"\\n[[pipeline]]\\nname = \\"echo\\"\\ntimeout = nan"}',
            b'{"experiment": {"id": "x", "pipeline": [{"name": "echo"}]}, "run_id": ""}',
            b'{"experiment": {"id": "x", "pipeline": [{"name": "echo"}]}, "run_id": "../x"}',
            b'{"experiment": {"id": "x", "pipeline": [{"name": "echo"}]}, "assigns": []}',
            b'{"experiment": {"id": "x", "pipeline": [{"name": "echo"}]}, "trace": "yes"}',
        ]
    ),
)
_content_types = st.sampled_from(
    ["application/json", "application/toml", "text/plain", "application/x-yaml", "", "a/b; x"]
)


@fuzz_settings(60)
@given(body=_raw_bodies, content_type=_content_types, key=st.none() | st.text(max_size=300))
async def test_raw_submission_bodies_never_answer_500(
    served: Served,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
    key: str | None,
) -> None:
    headers: dict[str, bytes] = {"Content-Type": content_type.encode()} if content_type else {}
    if key is not None:
        headers["Idempotency-Key"] = key.encode("utf-8", "surrogatepass")
    with caplog.at_level(logging.ERROR, logger="crucible_actors.serve"):
        response = await served.client.post("/api/runs", content=body, headers=headers)
    assert response.status_code < 500, (body[:200], response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert not _unexpected(caplog), _unexpected(caplog)
