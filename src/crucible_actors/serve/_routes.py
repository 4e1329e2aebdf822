"""The request handlers of the service, each declaring its route and documentation.

Every handler of :class:`Handlers` carries an :func:`~._endpoint.endpoint`: its method,
path and OpenAPI operation. :func:`build_routes` turns them into the app's Starlette
routes and ``_openapi`` turns :data:`ENDPOINTS` into the document's ``paths``, so the
routes and their documentation are one list. A handler parses the request and asks the
:class:`~._service.Service`; the answers' schemas are the Structs of ``_openapi``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .._core import RunStatus
from ..trace import export_html_chain, export_json_chain
from ._check import MEDIA_TYPES, check_document
from ._compare import COMPARE_PARAMETERS, compare_answer
from ._endpoint import STRING, Endpoint, answer, endpoint, endpoints_of, failure, param, ref
from ._errors import ApiError, json_response
from ._events import EventStream
from ._metrics import CONTENT_TYPE
from ._results import MAX_SCAN, parse_columns_param, parse_filter, parse_sort
from ._submit import check_key, parse_submission, read_body, read_json_body

if TYPE_CHECKING:
    from starlette.requests import Request

    from ._service import Service

__all__ = ["ENDPOINTS", "STATIC_DIR", "Handlers", "build_routes"]

#: Where the dashboard's files live (``GET /`` serves ``index.html`` from here).
STATIC_DIR = Path(__file__).parent / "static"

_RUN = failure("unknown run")
_STATUS = {"enum": [status.value for status in RunStatus]}
_FORMAT = {"enum": ["json", "html"]}


def _integer(**bounds: int) -> dict[str, Any]:
    return {"type": "integer", **bounds}


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _int_param(value: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise ApiError(
            422,
            f"{name}: expected an integer from {low} to {high}, got {value!r}"[:300],
            type="InvalidParameter",
        )
    return number


def _page_or_html(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/html": {"schema": dict(STRING)},
        },
    }


class Handlers:
    """The request handlers; each parses the request and asks the :class:`Service`.

    ``document`` is the OpenAPI document ``GET /api/openapi.json`` answers.
    """

    def __init__(self, service: Service, document: dict[str, Any]) -> None:
        self.service = service
        self.document = document

    @endpoint(
        "POST",
        "/api/runs",
        "submitRun",
        summary="Submit a run (returns once admitted)",
        parameters=[param("Idempotency-Key", "header", required=False)],
        request_body={
            "required": True,
            "content": {"application/json": {"schema": ref("Submission")}},
        },
        responses={
            "202": answer("Accepted", "admitted"),
            "200": answer("Accepted", "a retried Idempotency-Key: the run it created"),
            "409": failure("run_id already taken"),
            "413": failure("body too large"),
            "422": failure("invalid JSON, experiment, options, stage import path, key reuse"),
            "429": failure("admission queue full; see Retry-After"),
            "503": failure("the runtime is shutting down"),
        },
    )
    async def submit(self, request: Request) -> Response:
        service = self.service
        service.rt  # noqa: B018  (503 before reading a body the service cannot run)
        key = check_key(request.headers.get("idempotency-key"))
        data = await read_json_body(request, service.limits)
        sub = parse_submission(data, service.reg, service.limits)
        status, accepted = await service.submit(sub, key, _base(request))
        headers = {"Location": accepted["links"]["self"]}
        return json_response(accepted, status, headers)

    @endpoint(
        "GET",
        "/api/runs",
        "listRuns",
        summary="List runs, newest first",
        parameters=[
            param("experiment_id"),
            param("status", schema=_STATUS),
            param("limit", schema=_integer(minimum=1, maximum=200, default=50)),
            param("before"),
            param(
                "columns",
                description="column paths, comma-separated or repeated: "
                "metrics.<name> (dots walk nested metrics), "
                "params.<stage label>.<option> (a sweep point's own value for swept "
                "options); each run gets them under `columns`",
            ),
            param(
                "sort",
                description="a column path or a RunSummary field (id, "
                "experiment_id, status, started_at, finished_at, duration); a leading "
                "`-` sorts descending; runs without the value come last",
            ),
            param(
                "filter",
                description="repeatable, all must hold: <column><op><value>, op "
                "one of = != > >= < <= ~ (contains); numbers compare as numbers, "
                "text case-insensitively",
            ),
            param(
                "offset",
                description="with sort or filter: runs to skip",
                schema=_integer(minimum=0, default=0),
            ),
        ],
        responses={
            "200": answer("RunList", "a page of runs"),
            "422": failure("bad parameter (a malformed column path, sort or filter)"),
        },
    )
    async def list_runs(self, request: Request) -> Response:
        q = request.query_params
        limit = _int_param(q.get("limit"), "limit", default=50, low=1, high=200)
        offset = _int_param(q.get("offset"), "offset", default=0, low=0, high=MAX_SCAN)
        columns = parse_columns_param(q.getlist("columns"))
        sort, descending = parse_sort(q.get("sort"))
        filters = [parse_filter(f) for f in q.getlist("filter") if f.strip()]
        page = await self.service.list_runs(
            experiment_id=q.get("experiment_id") or None,
            status=q.get("status") or None,
            limit=limit,
            before=q.get("before") or None,
            columns=columns,
            sort=sort,
            descending=descending,
            filters=filters,
            offset=offset,
        )
        return json_response(page)

    @endpoint(
        "GET",
        "/api/runs/{run_id}",
        "getRun",
        responses={"200": answer("RunDetail", "the run"), "404": _RUN},
    )
    async def get_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return json_response(await self.service.detail(run_id, _base(request)))

    @endpoint(
        "DELETE",
        "/api/runs/{run_id}",
        "deleteRun",
        summary="Delete a finished run with its attempts, checkpoints, events, "
        "artifacts records and sweep points",
        responses={
            "200": answer("DeleteAnswer", "deleted; what went with it"),
            "404": _RUN,
            "409": failure("the run is running or pending"),
        },
    )
    async def delete_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return json_response(await self.service.delete(run_id))

    @endpoint(
        "POST",
        "/api/runs/{run_id}/cancel",
        "cancelRun",
        responses={
            "202": answer("CancelAnswer", "cancelled, or cancelling"),
            "404": _RUN,
            "409": failure("already finished, or executed by another process"),
        },
    )
    async def cancel(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return json_response(await self.service.cancel(run_id), 202)

    @endpoint(
        "GET",
        "/api/runs/{run_id}/events",
        "runEvents",
        parameters=[
            param("Last-Event-ID", "header"),
            param("after", schema=_integer(minimum=0)),
        ],
        responses={
            "200": {
                "description": "Server-sent events; `data` is a RunEvent",
                "content": {"text/event-stream": {"schema": ref("RunEvent")}},
            },
            "404": _RUN,
            "422": failure("bad Last-Event-ID or after"),
        },
    )
    async def events(self, request: Request) -> Response | EventStream:
        run_id = request.path_params["run_id"]
        after_text = request.query_params.get("after") or request.headers.get("last-event-id")
        after = _int_param(after_text, "after", default=0, low=0, high=2**62)
        source = await self.service.events(run_id, after)
        return EventStream(
            source, keepalive=self.service.keepalive, closing=self.service.wait_closing
        )

    @endpoint(
        "GET",
        "/api/runs/{run_id}/trace",
        "runTrace",
        parameters=[param("format", schema=_FORMAT)],
        responses={
            "200": _page_or_html("the decision trace"),
            "404": failure("unknown run, or the run has no trace"),
            "422": failure("bad format"),
        },
    )
    async def trace(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "html"):
            raise ApiError(
                422,
                f"format: expected 'json' or 'html', got {fmt!r}"[:300],
                type="InvalidParameter",
            )
        chain = await self.service.trace(run_id)
        if chain is None:
            raise ApiError(404, f"run {run_id!r} has no trace", type="NoTrace")
        if fmt == "html":
            return HTMLResponse(
                export_html_chain(chain),
                headers={
                    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"
                },
            )
        return Response(export_json_chain(chain), media_type="application/json")

    @endpoint(
        "GET",
        "/api/runs/{run_id}/artifacts/{name}",
        "runArtifact",
        responses={
            "200": {"description": "the file", "content": {"application/octet-stream": {}}},
            "404": failure("unknown run or artifact, or not a local file"),
        },
    )
    async def artifact(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        path, _record = await self.service.artifact(run_id, request.path_params["name"])
        return FileResponse(
            path,
            filename=path.name,
            content_disposition_type="inline",
            headers={
                # The file is whatever the run wrote: never let it script this origin.
                "Content-Security-Policy": "sandbox",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @endpoint(
        "GET",
        "/api/runs/{run_id}/outputs",
        "runOutputs",
        summary="A page of a run's outputs, optionally searched",
        parameters=[
            param("offset", schema=_integer(minimum=0)),
            param("limit", schema=_integer(minimum=1, maximum=500, default=50)),
            param(
                "q",
                description="keep the outputs whose JSON contains this text (case-insensitive)",
            ),
        ],
        responses={
            "200": answer("OutputPage", "a page of outputs"),
            "404": _RUN,
            "422": failure("bad offset or limit"),
        },
    )
    async def outputs(self, request: Request) -> Response:
        q = request.query_params
        run_id = request.path_params["run_id"]
        offset = _int_param(q.get("offset"), "offset", default=0, low=0, high=2**62)
        limit = _int_param(q.get("limit"), "limit", default=50, low=1, high=500)
        query = q.get("q") or None
        return json_response(
            await self.service.outputs(run_id, offset=offset, limit=limit, query=query)
        )

    @endpoint(
        "POST",
        "/api/experiments/check",
        "checkExperiment",
        summary="Parse an experiment file with the loader of `crucible-actors run` "
        "(nothing runs); answers the body of POST /api/runs that runs it",
        request_body={
            "required": True,
            "description": "An experiment file. Its format comes from the media type; any "
            "other type is read as JSON when the text starts with `{` or `[`, else as TOML. "
            "A JSON document may also be a whole POST /api/runs body.",
            "content": {
                **{
                    media: {"schema": dict(STRING)}
                    for media in MEDIA_TYPES
                    if media != "application/json"
                },
                "application/json": {"schema": ref("Submission")},
                "text/plain": {"schema": dict(STRING)},
            },
        },
        responses={
            "200": answer("CheckedExperiment", "the experiment, as a submission"),
            "413": failure("body too large"),
            "415": failure("YAML, and the server has no PyYAML"),
            "422": failure(
                "the document does not parse or does not match the experiment schema: "
                "`details.errors` gives each problem with its field path"
            ),
        },
    )
    async def check_experiment(self, request: Request) -> Response:
        limits = self.service.limits
        body = await read_body(request, limits)
        return json_response(check_document(body, request.headers.get("content-type"), limits))

    @endpoint(
        "GET",
        "/api/columns",
        "listColumns",
        summary="The metric and parameter column paths of the newest runs",
        parameters=[
            param("experiment_id"),
            param(
                "limit",
                description="how many of the newest runs to look at",
                schema=_integer(minimum=1, maximum=5000, default=500),
            ),
        ],
        responses={
            "200": answer("ColumnList", "the column paths"),
            "422": failure("bad limit"),
        },
    )
    async def columns(self, request: Request) -> Response:
        q = request.query_params
        limit = _int_param(q.get("limit"), "limit", default=500, low=1, high=5000)
        return json_response(
            await self.service.columns(experiment_id=q.get("experiment_id") or None, limit=limit)
        )

    @endpoint(
        "GET",
        "/api/sweeps/{sweep_id}",
        "getSweep",
        summary="A sweep's points, their runs' metrics, repeats summarised",
        responses={
            "200": answer("SweepDetail", "the sweep"),
            "404": failure("unknown sweep"),
            "503": failure("no store"),
        },
    )
    async def sweep(self, request: Request) -> Response:
        return json_response(await self.service.sweep(request.path_params["sweep_id"]))

    @endpoint(
        "GET",
        "/api/stages",
        "listStages",
        responses={"200": answer("StageList", "the registered stages")},
    )
    async def stages(self, request: Request) -> Response:
        return json_response({"stages": self.service.stages()})

    @endpoint(
        "GET",
        "/api/compare",
        "compareRuns",
        parameters=COMPARE_PARAMETERS,
        responses={
            "200": _page_or_html("the comparison (crucible_actors.comparison.Comparison)"),
            "404": failure("unknown run or sweep"),
            "422": failure("bad parameters, or runs that cannot be compared"),
            "503": failure("no store"),
        },
    )
    async def compare(self, request: Request) -> Response:
        return await compare_answer(self.service, request.query_params)

    @endpoint(
        "GET",
        "/api/openapi.json",
        "openapi",
        responses={
            "200": {
                "description": "this document",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def openapi(self, request: Request) -> Response:
        return json_response(self.document)

    @endpoint(
        "GET",
        "/healthz",
        "health",
        public=True,
        responses={"200": answer("Health", "the process is up")},
    )
    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    @endpoint(
        "GET",
        "/readyz",
        "ready",
        public=True,
        responses={
            "200": answer("Ready", "ready"),
            "503": failure("store unavailable or runtime closed"),
        },
    )
    async def readyz(self, request: Request) -> Response:
        return json_response(await self.service.ready())

    @endpoint(
        "GET",
        "/metrics",
        "metrics",
        responses={
            "200": {
                "description": "Prometheus text format 0.0.4",
                "content": {"text/plain": {"schema": dict(STRING)}},
            }
        },
    )
    async def metrics(self, request: Request) -> Response:
        return Response(self.service.metrics.render(), media_type=CONTENT_TYPE)

    @endpoint(
        "GET",
        "/",
        "dashboard",
        public=True,
        responses={"200": {"description": "the dashboard", "content": {"text/html": {}}}},
    )
    async def dashboard(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


_HANDLERS = endpoints_of(Handlers)

#: The dashboard's files, served by a Mount rather than a handler.
STATIC = Endpoint(
    "GET",
    "/static/{path}",
    "static",
    public=True,
    responses={"200": {"description": "a dashboard file"}, "404": failure("no such file")},
)

#: Every route of the service, documented: the handlers' endpoints, then the static files.
ENDPOINTS: tuple[Endpoint, ...] = (*(spec for _, spec in _HANDLERS), STATIC)


def build_routes(handlers: Handlers) -> list[BaseRoute]:
    """Return the Starlette routes of :data:`ENDPOINTS`, served by ``handlers``."""
    routes: list[BaseRoute] = [
        Route(spec.path, getattr(handlers, name), methods=[spec.method], name=spec.operation_id)
        for name, spec in _HANDLERS
    ]
    static = StaticFiles(directory=STATIC_DIR, check_dir=False)
    routes.append(Mount(STATIC.path.removesuffix("/{path}"), static, name=STATIC.operation_id))
    return routes
