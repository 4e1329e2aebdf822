"""The OpenAPI document matches the app: same routes, and answers fit the declared schemas."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from starlette.routing import Mount, Route

from crucible_actors.serve import create_app
from crucible_actors.serve._endpoint import endpoints_of
from crucible_actors.serve._openapi import openapi_document
from crucible_actors.serve._routes import ENDPOINTS, Handlers

from .test_events import parse_sse

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    import httpx

    from .conftest import Served


def validate(value: Any, schema: dict[str, Any], doc: dict[str, Any], at: str = "$") -> list[str]:
    """Check ``value`` against ``schema`` (JSON Schema 2020-12, OpenAPI 3.1's dialect).

    ``$ref`` s point into ``doc``'s components; returns the problems found, by path.
    """
    root = {**schema, "components": doc["components"]}
    validator = jsonschema.Draft202012Validator(root)
    return [
        f"{at}{''.join(f'[{p!r}]' for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(value)
    ]


def app_routes(routes: list[Any]) -> dict[tuple[str, str], set[str]]:
    """Return ``{(path, method): path parameter names}`` for the routes (HEAD left out)."""
    out = {}
    for route in routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    out[(route.path, method.lower())] = set(route.param_convertors)
        elif isinstance(route, Mount):
            out[(f"{route.path}/{{path}}", "get")] = {"path"}
    return out


def documented_routes(doc: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """Return ``{(path, method): declared path parameter names}`` for the document."""
    return {
        (path, method): {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }


def route_problems(routes: list[Any], doc: dict[str, Any]) -> list[str]:
    """Return what the routes and the document disagree on, one line per problem."""
    served, documented = app_routes(routes), documented_routes(doc)
    problems = [
        f"{m.upper()} {p}: a route without documentation"
        for p, m in served.keys() - documented.keys()
    ]
    problems += [
        f"{m.upper()} {p}: documented, but no route" for p, m in documented.keys() - served.keys()
    ]
    problems += [
        f"{m.upper()} {p}: path parameters {sorted(documented[p, m])}, route has {sorted(params)}"
        for (p, m), params in served.items()
        if (p, m) in documented and documented[p, m] != params
    ]
    return sorted(problems)


async def test_every_route_is_documented_and_every_documented_route_exists(served: Served) -> None:
    doc = (await served.client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert route_problems(served.app.routes, doc) == []
    assert len(documented_routes(doc)) == len(ENDPOINTS)


def test_a_route_added_without_documentation_or_the_reverse_is_found() -> None:
    async def handler(request: Any) -> Any:
        raise AssertionError("never called")

    doc = openapi_document(version="x", token=False)
    app = create_app()
    extra = Route("/api/extra/{thing}", handler, methods=["PUT"])
    assert route_problems([*app.routes, extra], doc) == [
        "PUT /api/extra/{thing}: a route without documentation"
    ]
    del doc["paths"]["/api/stages"]
    doc["paths"]["/api/runs/{run_id}"]["get"]["parameters"][0]["name"] = "id"
    assert route_problems(app.routes, doc) == [
        "GET /api/runs/{run_id}: path parameters ['id'], route has ['run_id']",
        "GET /api/stages: a route without documentation",
    ]
    doc["paths"]["/api/nothing"] = {"get": {"responses": {}}}
    assert "GET /api/nothing: documented, but no route" in route_problems(app.routes, doc)


def test_every_handler_method_is_an_endpoint() -> None:
    handlers = {
        name
        for name, value in vars(Handlers).items()
        if inspect.iscoroutinefunction(value) and not name.startswith("_")
    }
    assert handlers == {name for name, _ in endpoints_of(Handlers)}
    ids = [spec.operation_id for spec in ENDPOINTS]
    assert len(ids) == len(set(ids)), ids


class Checker:
    """Validates answers against the operation they belong to."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, path: str, method: str, response: httpx.Response) -> Any:
        op = self.doc["paths"][path][method]
        status = str(response.status_code)
        assert status in op["responses"], f"{method} {path}: {status} is not declared"
        self.seen.add((path, method, status))
        content = op["responses"][status].get("content", {})
        media = response.headers.get("content-type", "").split(";")[0]
        if media == "application/json":
            assert "application/json" in content, f"{method} {path} {status}: JSON not declared"
            body = response.json()
            problems = validate(body, content["application/json"].get("schema", {}), self.doc)
            assert not problems, f"{method} {path} {status}: {problems}"
            return body
        if media == "text/event-stream":
            schema = content["text/event-stream"]["schema"]
            for message in parse_sse(response.text):
                problems = validate(message["data"], schema, self.doc)
                assert not problems, f"SSE: {problems}"
        return None


async def test_answers_validate_against_the_declared_schemas(
    serve: Callable[..., AbstractAsyncContextManager[Served]], tmp_path: Path
) -> None:
    async with serve(max_concurrent_runs=1, max_queue=0, max_body=4096) as s:
        c = s.client
        doc = (await c.get("/api/openapi.json")).json()
        check = Checker(doc).check
        ok = check(
            "/api/runs",
            "post",
            await s.submit("echo", {"name": "write", "options": {"dir": str(tmp_path)}}),
        )
        await s.wait(ok["run_id"])
        failed = check(
            "/api/runs",
            "post",
            await s.submit("echo", {"name": "fail"}, headers={"Idempotency-Key": "k"}),
        )
        await s.wait(failed["run_id"])
        check(
            "/api/runs",
            "post",
            await s.submit("echo", {"name": "fail"}, headers={"Idempotency-Key": "k"}),
        )
        check("/api/runs", "post", await s.submit("nope"))
        check("/api/runs", "post", await s.submit("echo", run_id=ok["run_id"]))
        check("/api/runs", "post", await c.post("/api/runs", content=b"x" * 5000))
        held = check("/api/runs", "post", await s.submit("gate"))
        await s.gate.entered.wait()
        check("/api/runs", "post", await s.submit("echo"))  # 429
        check("/api/runs/{run_id}", "get", await c.get(f"/api/runs/{held['run_id']}"))
        check("/api/runs/{run_id}", "delete", await c.delete(f"/api/runs/{held['run_id']}"))
        check(
            "/api/runs/{run_id}/cancel", "post", await c.post(f"/api/runs/{held['run_id']}/cancel")
        )
        await s.runtime.wait_idle()
        for run_id in (ok["run_id"], failed["run_id"], held["run_id"], "nope"):
            check("/api/runs/{run_id}", "get", await c.get(f"/api/runs/{run_id}"))
            check("/api/runs/{run_id}/events", "get", await c.get(f"/api/runs/{run_id}/events"))
            check("/api/runs/{run_id}/trace", "get", await c.get(f"/api/runs/{run_id}/trace"))
            check("/api/runs/{run_id}/cancel", "post", await c.post(f"/api/runs/{run_id}/cancel"))
        check(
            "/api/runs/{run_id}/events",
            "get",
            await c.get(f"/api/runs/{ok['run_id']}/events?after=x"),
        )
        check(
            "/api/runs/{run_id}/trace",
            "get",
            await c.get(f"/api/runs/{ok['run_id']}/trace?format=html"),
        )
        check(
            "/api/runs/{run_id}/trace",
            "get",
            await c.get(f"/api/runs/{ok['run_id']}/trace?format=pdf"),
        )
        check(
            "/api/runs/{run_id}/artifacts/{name}",
            "get",
            await c.get(f"/api/runs/{ok['run_id']}/artifacts/out"),
        )
        check(
            "/api/runs/{run_id}/artifacts/{name}",
            "get",
            await c.get(f"/api/runs/{ok['run_id']}/artifacts/x"),
        )
        page = check("/api/runs", "get", await c.get("/api/runs", params={"limit": 1}))
        assert page["next"] is not None
        check("/api/runs", "get", await c.get("/api/runs", params={"limit": 1000}))
        columns = {"columns": "metrics.value,params.echo.value", "sort": "-metrics.value"}
        listed = check("/api/runs", "get", await c.get("/api/runs", params=columns))
        assert listed["columns"] == ["metrics.value", "params.echo.value"]
        check("/api/runs", "get", await c.get("/api/runs", params={"columns": "value"}))
        outputs = f"/api/runs/{ok['run_id']}/outputs"
        check("/api/runs/{run_id}/outputs", "get", await c.get(outputs, params={"q": "x"}))
        check("/api/runs/{run_id}/outputs", "get", await c.get(outputs, params={"limit": 0}))
        check("/api/runs/{run_id}/outputs", "get", await c.get("/api/runs/nope/outputs"))
        check("/api/columns", "get", await c.get("/api/columns"))
        check("/api/columns", "get", await c.get("/api/columns", params={"limit": 0}))
        sweep = await s.runtime.submit_sweep(
            {"id": "sw", "pipeline": [{"name": "echo"}], "sweep": {"echo.value": [1, 2]}}
        )
        await sweep.wait()
        swept = check("/api/sweeps/{sweep_id}", "get", await c.get(f"/api/sweeps/{sweep.sweep_id}"))
        assert [p["summary"]["value"]["mean"] for p in swept["points"]] == [1, 2]
        check("/api/sweeps/{sweep_id}", "get", await c.get("/api/sweeps/nope"))
        check("/api/stages", "get", await c.get("/api/stages"))
        check("/api/compare", "get", await c.get("/api/compare"))
        check("/api/compare", "get", await c.get("/api/compare?runs=nope,nada"))
        runs = f"{ok['run_id']},{failed['run_id']}"
        check("/api/compare", "get", await c.get(f"/api/compare?runs={runs}"))
        check("/api/openapi.json", "get", await c.get("/api/openapi.json"))
        check("/healthz", "get", await c.get("/healthz"))
        check("/readyz", "get", await c.get("/readyz"))
        check("/metrics", "get", await c.get("/metrics"))
        check("/", "get", await c.get("/"))
        check("/static/{path}", "get", await c.get("/static/index.html"))
        check("/static/{path}", "get", await c.get("/static/none.css"))
        check("/api/runs/{run_id}", "delete", await c.delete(f"/api/runs/{failed['run_id']}"))
        check("/api/runs/{run_id}", "delete", await c.delete("/api/runs/nope"))
        experiments = "/api/experiments/check"
        toml = {"Content-Type": "application/toml"}
        good = 'id = "t"\n[[pipeline]]\nname = "echo"\n'
        checked = check(experiments, "post", await c.post(experiments, content=good, headers=toml))
        assert checked["submission"]["experiment"]["id"] == "t"
        check(experiments, "post", await c.post(experiments, content="id = ", headers=toml))
        check(experiments, "post", await c.post(experiments, content=b"#" * 5000, headers=toml))
        yaml = {"Content-Type": "application/yaml"}
        check(experiments, "post", await c.post(experiments, content="id: y\n", headers=yaml))
        envelope = {"experiment": {"id": "j", "pipeline": [{"name": "echo"}]}, "trace": False}
        checked = check(experiments, "post", await c.post(experiments, json=envelope))
        assert checked["submission"]["trace"] is False
        checker = check.__self__  # type: ignore[attr-defined]
        operations = {(p, m) for p, ops in doc["paths"].items() for m in ops}
        assert operations == {(p, m) for p, m, _ in checker.seen}


async def test_the_document_declares_bearer_auth_only_with_a_token(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> None:
    async with serve() as s:
        doc = (await s.client.get("/api/openapi.json")).json()
        assert "security" not in doc
    async with serve(token="t") as s:
        response = await s.client.get("/api/openapi.json", headers={"Authorization": "Bearer t"})
        doc = response.json()
        assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert doc["paths"]["/healthz"]["get"]["security"] == []
        check = Checker(doc).check
        check("/api/runs", "get", await s.client.get("/api/runs"))
        check(
            "/api/runs",
            "get",
            await s.client.get("/api/runs", headers={"Authorization": "Bearer x"}),
        )


@pytest.mark.slow
@pytest.mark.parametrize("token", [False, True])
def test_the_document_is_valid_openapi_3_1(token: bool) -> None:
    validate_openapi(openapi_document(version="1.2.3", token=token))


def test_the_request_body_describes_the_experiment_field_by_field() -> None:
    import msgspec

    from crucible_actors import Backoff, Experiment, StageDef

    schemas = openapi_document(version="x", token=False)["components"]["schemas"]
    body = schemas["Submission"]
    assert {"$ref": "#/components/schemas/SubmissionEnvelope"} in body["oneOf"]
    envelope = schemas["SubmissionEnvelope"]
    assert envelope["required"] == ["experiment"]
    assert envelope["properties"]["experiment"] == {"$ref": "#/components/schemas/Experiment"}
    assert envelope["properties"]["validate_options"]["anyOf"][0]["enum"] == [
        "error",
        "off",
        "warn",
    ]
    # Every field of the IR Structs is there, under its encoded name, with its default.
    for struct in (Experiment, StageDef, Backoff):
        component = schemas[struct.__name__]
        fields = msgspec.structs.fields(struct)
        assert list(component["properties"]) == [f.encode_name for f in fields]
        assert component.get("required", []) == [f.encode_name for f in fields if f.required]
    stage = schemas["StageDef"]["properties"]
    assert stage["restart"] == {"enum": ["temporary", "transient"], "default": "temporary"}
    assert stage["max_restarts"] == {"type": "integer", "default": 3}
    assert schemas["Experiment"]["properties"]["pipeline"]["items"] == {
        "$ref": "#/components/schemas/StageDef"
    }
    assert "refuses a non-empty value" in stage["stage"]["description"]


_GOOD = {"id": "doc-ok", "pipeline": [{"name": "echo", "restart": "transient", "timeout": 5}]}


@pytest.mark.parametrize(
    ("body", "admitted"),
    [
        ({"experiment": _GOOD}, True),
        ({"experiment": _GOOD, "assigns": {"x": 1}, "validate_options": "warn"}, True),
        ({**_GOOD, "trace": False}, True),
        ({"experiment": _GOOD, "bogus": 1}, False),
        ({"experiment": {**_GOOD, "pipeline": [{"name": "echo", "restart": "sometimes"}]}}, False),
        ({"experiment": {**_GOOD, "pipeline": [{"name": "echo", "backoff": "slow"}]}}, False),
        ({"experiment": {"pipeline": [{"name": "echo"}]}}, False),
        ({"experiment": _GOOD, "validate_options": "loud"}, False),
        ({"experiment": _GOOD, "trace": "yes"}, False),
    ],
    ids=[
        "envelope",
        "envelope-options",
        "inline",
        "unknown-envelope-key",
        "bad-restart",
        "bad-backoff",
        "no-id",
        "bad-mode",
        "bad-trace",
    ],
)
async def test_the_request_schema_and_the_service_agree(
    served: Served, body: dict[str, Any], admitted: bool
) -> None:
    doc = (await served.client.get("/api/openapi.json")).json()
    problems = validate(body, doc["components"]["schemas"]["Submission"], doc)
    response = await served.client.post("/api/runs", json=body)
    assert (response.status_code == 202) is admitted, response.text
    assert (not problems) is admitted, problems
    if admitted:
        await served.wait(response.json()["run_id"])
