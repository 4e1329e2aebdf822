"""The OpenAPI document matches the app: same routes, and answers fit the declared schemas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Mount, Route

from .test_events import parse_sse

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    import httpx

    from .conftest import Served

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate(value: Any, schema: dict[str, Any], doc: dict[str, Any], at: str = "$") -> list[str]:
    """Check ``value`` against the JSON Schema subset the document uses; return problems."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return validate(value, doc["components"]["schemas"][name], doc, at)
    errors: list[str] = []
    for part in schema.get("allOf", []):
        errors += validate(value, part, doc, at)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[k](value) for k in kinds):
            return [*errors, f"{at}: expected {kinds}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{at}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{at}: expected {schema['const']!r}, got {value!r}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{at}: missing {key!r}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += validate(value[key], sub, doc, f"{at}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], doc, f"{at}[{i}]")
    return errors


def app_routes(app: Any) -> set[tuple[str, str]]:
    """Return ``(path, method)`` for every route of the app (HEAD left out)."""
    out = set()
    for route in app.routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    out.add((route.path, method.lower()))
        elif isinstance(route, Mount):
            out.add((f"{route.path}/{{path}}", "get"))
    return out


async def test_every_route_is_documented_and_every_documented_route_exists(served: Served) -> None:
    doc = (await served.client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == app_routes(served.app)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}


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
