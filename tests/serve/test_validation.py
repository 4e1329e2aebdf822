"""What the service refuses before admitting a run: size, JSON, shape, imports, options."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import experiment

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from .conftest import Served


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message", "details"}
    assert "Traceback" not in response.text
    return body["error"]  # type: ignore[no-any-return]


async def post_raw(served: Served, content: bytes, **headers: str) -> Any:
    return await served.client.post(
        "/api/runs", content=content, headers={"content-type": "application/json", **headers}
    )


async def test_body_over_the_limit_is_413(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(max_body=200) as s:
        big = json.dumps({"experiment": experiment("echo"), "assigns": {"x": "y" * 300}})
        response = await post_raw(s, big.encode())
        assert response.status_code == 413
        assert error_of(response)["type"] == "ContentTooLarge"
        small = await s.submit("echo")
        assert small.status_code == 202


# The app stops reading at the limit, so httpx's in-process transport is left holding its
# unfinished request-body generator, which trio reports when it is collected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_streamed_body_over_the_limit_is_413_without_content_length(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 100

    async with serve(max_body=500) as s:
        response = await s.client.post("/api/runs", content=chunks())
        assert "content-length" not in response.request.headers
        assert response.status_code == 413


async def test_too_deep_json_is_422(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(max_depth=8) as s:
        nested: Any = 1
        for _ in range(10):
            nested = {"a": nested}
        response = await s.submit("echo", assigns=nested)
        assert response.status_code == 422
        assert error_of(response)["type"] == "TooDeep"
        # Deeper than the JSON decoder itself recurses: still a 422, never a 500.
        response = await post_raw(s, b"[" * 100_000 + b"]" * 100_000)
        assert response.status_code in (413, 422)
        response = await post_raw(s, b"[" * 5000 + b"]" * 5000)
        assert response.status_code == 422
        assert error_of(response)["type"] == "TooDeep"


async def test_pipeline_longer_than_the_limit_is_422(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve(max_pipeline=3) as s:
        response = await s.submit("echo", "echo", "echo", "echo")
        assert response.status_code == 422
        error = error_of(response)
        assert error["type"] == "PipelineTooLong"
        assert error["details"]["max_pipeline"] == 3
        assert (await s.submit("echo", "echo", "echo")).status_code == 202


@pytest.mark.parametrize(
    "stage",
    [
        {"name": "echo", "stage": "os:system"},
        {"stage": "serve_stages:Echo"},
        {"name": "x", "stage": {"module": "os"}},
        {"name": "x", "stage": ["os", "system"]},
    ],
)
async def test_stage_import_paths_are_refused(served: Served, stage: dict[str, Any]) -> None:
    response = await served.submit("echo", stage)
    assert response.status_code == 422
    error = error_of(response)
    assert error["type"] == "ImportPathRejected"
    assert "pipeline[1].stage" in error["message"]
    assert served.runtime.statistics().submitted == 0


async def test_import_path_under_the_stages_alias_is_refused(served: Served) -> None:
    body = {"id": "e", "stages": [{"name": "echo"}, {"stage": "os:system"}]}
    response = await served.client.post("/api/runs", json=body)
    assert response.status_code == 422
    assert "stages[1].stage" in error_of(response)["message"]


async def test_unknown_stage_is_422_with_a_suggestion(served: Served) -> None:
    response = await served.submit("echo", "ecoh")
    assert response.status_code == 422
    error = error_of(response)
    assert error["type"] == "InvalidExperiment"
    assert "no stage named 'ecoh'; did you mean 'echo'?" in error["message"]


async def test_every_option_error_is_reported_before_admission(served: Served) -> None:
    response = await served.submit(
        {"name": "need", "options": {"count": "many"}},
        {"name": "echo", "options": {"value": "x"}},
        {"name": "need", "options": {"input": "ok"}},
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["type"] == "InvalidOptions"
    messages = [(e["stage"], e["message"]) for e in error["details"]["errors"]]
    assert messages == [
        ("need", "stage 'need': missing required option: input"),
        ("need", "stage 'need': count: expected integer, got 'many'"),
        ("echo", "stage 'echo': value: expected integer, got 'x'"),
    ]
    assert served.runtime.statistics().submitted == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty"),
        (b"{", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got array"),
        (b'"text"', "expected a JSON object, got string"),
        (b'{"experiment": 3}', "experiment: expected object, got number"),
        (b'{"experiment": {"id": "e", "pipeline": [{"name": "echo"}]}, "x": 1}', "unknown field"),
        (b'{"id": "e", "pipeline": []}', "empty pipeline"),
        (b'{"id": "e"}', "missing required field"),
        (b'{"id": 5, "pipeline": [{"name": "echo"}]}', "id: expected str, got int"),
        (
            b'{"id": "e", "pipeline": [{"name": "echo"}], "assigns": [1]}',
            "assigns: expected object",
        ),
        (b'{"id": "e", "pipeline": [{"name": "echo"}], "run_id": "../x"}', "run_id"),
        (b'{"id": "e", "pipeline": [{"name": "echo"}], "run_id": 7}', "run_id"),
        (
            b'{"id": "e", "pipeline": [{"name": "echo"}], "validate_options": "loud"}',
            "validate_options",
        ),
        (b'{"id": "e", "pipeline": [{"name": "echo"}], "trace": "yes"}', "trace: expected boolean"),
        (b'{"id": "e", "pipeline": [{"name": "echo", "timeout": -1}]}', "timeout must be > 0"),
        (b'{"id": "e", "pipeline": [{"name": "echo", "restart": "always"}]}', "restart"),
        (b'{"id": "e", "pipeline": [{"name": "echo", "max_restarts": 1e400}]}', ""),
        (
            b'{"id": "e", "pipeline": [{"name": "echo"}], "max_restarts": 99999999999999999999999}',
            "",
        ),
    ],
)
async def test_malformed_bodies_are_422(served: Served, body: bytes, fragment: str) -> None:
    response = await post_raw(served, body)
    assert response.status_code == 422, response.text
    assert fragment in error_of(response)["message"]


async def test_unencodable_assigns_are_422(served: Served) -> None:
    response = await served.submit("echo", assigns={"big": 2**70})
    assert response.status_code == 422, response.text
    error_of(response)


# -- property-based: random bodies never make the service fail ------------------------

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
_json: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        _text,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=20,
)
_names = st.sampled_from(["echo", "need", "fail", "nope", ""]) | _text
_stage_defs = st.fixed_dictionaries(
    {"name": _names},
    optional={
        "options": st.dictionaries(
            st.sampled_from(["value", "input", "count", "x"]), _json, max_size=3
        )
        | _json,
        "enabled": st.booleans() | _json,
        "timeout": st.floats(allow_nan=False, allow_infinity=False) | _json,
        "restart": st.sampled_from(["temporary", "transient"]) | _json,
        "max_restarts": st.integers(-2, 3) | _json,
        "backoff": _json,
        "isolation": st.sampled_from(["inline", "thread"]) | _json,
        "stage": _json,
    },
)
_experiments = st.fixed_dictionaries(
    {"id": _text | _json, "pipeline": st.lists(_stage_defs, max_size=4) | _json},
    optional={
        "name": _text | _json,
        "tags": st.lists(_text) | _json,
        "metadata": _json,
        "created_at": st.sampled_from(["2024-01-01T00:00:00Z", "yesterday"]) | _json,
        "max_restarts": st.integers(-1, 3) | _json,
    },
)
_bodies = st.one_of(
    _experiments,
    st.fixed_dictionaries(
        {"experiment": _experiments | _json},
        optional={
            "assigns": st.dictionaries(_text, _json, max_size=3) | _json,
            "run_id": st.sampled_from(["r1", "r2"]) | _json,
            "validate_options": st.sampled_from(["off", "warn", "error"]) | _json,
            "trace": st.booleans() | _json,
        },
    ),
)

_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.slow
@_SETTINGS
@given(body=_json)
async def test_random_json_bodies_never_cause_a_server_error(served: Served, body: Any) -> None:
    response = await post_raw(served, json.dumps(body).encode())
    assert response.status_code in (202, 409, 422), response.text
    if response.status_code != 202:
        error_of(response)


@pytest.mark.slow
@_SETTINGS
@given(body=_bodies, key=st.none() | st.sampled_from(["k1", "k2"]))
async def test_random_experiment_bodies_never_cause_a_server_error(
    served: Served, body: Any, key: str | None
) -> None:
    headers = {"Idempotency-Key": key} if key else {}
    response = await post_raw(served, json.dumps(body).encode(), **headers)
    assert response.status_code in (200, 202, 409, 422), response.text
    if response.status_code >= 400:
        error_of(response)


@_SETTINGS
@given(raw=st.binary(max_size=64))
async def test_random_bytes_never_cause_a_server_error(served: Served, raw: bytes) -> None:
    response = await post_raw(served, raw)
    assert response.status_code in (202, 409, 422), response.text
