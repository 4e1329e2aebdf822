"""``create_app``: the Starlette application of ``crucible-actors serve``.

The app is plain ASGI, so it can be served by Hypercorn (what the CLI does) or mounted
inside a host's own ASGI application. Given an open runtime it uses that runtime (and
its registry and store) and needs no lifespan; without one it opens its own in its
lifespan, with ``on_start="resume"`` and ``on_shutdown="interrupt"``, in the server's
event loop (trio or asyncio), never a second loop.

Middleware, outermost first: Starlette's ``ServerErrorMiddleware``, :class:`_CatchAll`
(turns any unexpected exception into the JSON 500 without a traceback, and logs it),
:class:`_BearerAuth` (``/api/*`` and ``/metrics`` need the token when one is set), then
Starlette's exception middleware and the routes.
"""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from .._core import CrucibleError
from ..trace import export_html_chain, export_json_chain
from ._compare import compare_endpoint
from ._errors import ApiError, api_error_from, error_response, json_response
from ._events import EventStream
from ._metrics import CONTENT_TYPE
from ._openapi import openapi_document
from ._results import MAX_SCAN, parse_columns_param, parse_filter, parse_sort
from ._service import Service
from ._submit import Limits, check_key, parse_submission, read_json_body

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .._core import Registry, Runtime

__all__ = ["STATIC_DIR", "create_app"]

log = logging.getLogger("crucible_actors.serve")

#: Where the dashboard's files live (``GET /`` serves ``index.html`` from here).
STATIC_DIR = Path(__file__).parent / "static"

_GUARDED = ("/api/", "/metrics")


def create_app(
    runtime: Runtime | None = None,
    registry: Registry | None = None,
    store: Any = None,
    token: str | None = None,
    *,
    max_body: int = 1 << 20,
    max_depth: int = 32,
    max_pipeline: int = 100,
    max_queue: int = 100,
    max_concurrent_runs: int | None = None,
    shutdown_grace: float = 10.0,
    on_shutdown: str = "interrupt",
    poll_interval: float = 1.0,
) -> Starlette:
    """Return the service as an ASGI (Starlette) application.

    With ``runtime`` the app serves that open runtime, its registry and its store (the
    runtime's owner closes it). Without one, the app's lifespan opens a runtime with
    ``registry`` (default :meth:`~crucible_actors.Registry.default`), ``store`` (a Store or
    URL; default
    :func:`~crucible_actors.store.default_store_url`), ``max_concurrent_runs`` and
    ``shutdown_grace``, resuming runs a dead process left running or a shutdown
    interrupted, and closes it on shutdown, ending the runs still going per
    ``on_shutdown`` (``"interrupt"``: resumed by the next start; ``"cancel"``). With
    ``token`` every ``/api`` and ``/metrics`` request needs
    ``Authorization: Bearer <token>``.

    Limits: request bodies over ``max_body`` bytes get 413; JSON nested deeper than
    ``max_depth`` and pipelines longer than ``max_pipeline`` get 422; a submission that
    would make more than ``max_queue`` wait for admission gets 429 with ``Retry-After``.
    ``poll_interval`` paces event streams of runs executed by another process.

    Raises:
        ValueError: a limit is out of range, ``token`` is empty, ``on_shutdown`` is
            unknown, or ``registry`` / ``store`` contradict the given runtime's.
    """
    if on_shutdown not in ("interrupt", "cancel"):
        raise ValueError(f"on_shutdown must be 'interrupt' or 'cancel'; got {on_shutdown!r}")
    if token is not None and not token:
        raise ValueError("token must be a non-empty string (or None for no auth)")
    for name, value in (
        ("max_body", max_body),
        ("max_depth", max_depth),
        ("max_pipeline", max_pipeline),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    if max_queue < 0:
        raise ValueError(f"max_queue must be >= 0, got {max_queue!r}")
    if runtime is not None:
        if registry is not None and registry is not runtime.registry:
            raise ValueError("registry differs from the runtime's; pass it to open_runtime")
        if store is not None and store is not getattr(runtime, "store", None):
            raise ValueError("store differs from the runtime's; pass it to open_runtime")
    limits = Limits(
        max_body=max_body, max_depth=max_depth, max_pipeline=max_pipeline, max_queue=max_queue
    )
    service = Service(
        runtime=runtime,
        registry=runtime.registry if runtime is not None else registry,
        store=getattr(runtime, "store", None) if runtime is not None else None,
        limits=limits,
        poll_interval=poll_interval,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if runtime is not None:
            yield
            return
        from .._core import Registry, open_runtime
        from ..store import default_store_url

        async with open_runtime(
            registry=registry if registry is not None else Registry.default(),
            store=store if store is not None else default_store_url(),
            max_concurrent_runs=max_concurrent_runs,
            shutdown_grace=shutdown_grace,
            on_start="resume",
            on_shutdown=on_shutdown,
        ) as rt:
            service.bind(rt)
            try:
                yield
            finally:
                service.bind(None)

    routes = _Routes(service, token is not None)
    app = Starlette(
        routes=[
            Route("/api/runs", routes.submit, methods=["POST"]),
            Route("/api/runs", routes.list_runs, methods=["GET"]),
            Route("/api/runs/{run_id}", routes.get_run, methods=["GET"]),
            Route("/api/runs/{run_id}", routes.delete_run, methods=["DELETE"]),
            Route("/api/runs/{run_id}/cancel", routes.cancel, methods=["POST"]),
            Route("/api/runs/{run_id}/events", routes.events, methods=["GET"]),
            Route("/api/runs/{run_id}/trace", routes.trace, methods=["GET"]),
            Route("/api/runs/{run_id}/artifacts/{name}", routes.artifact, methods=["GET"]),
            Route("/api/runs/{run_id}/outputs", routes.outputs, methods=["GET"]),
            Route("/api/columns", routes.columns, methods=["GET"]),
            Route("/api/sweeps/{sweep_id}", routes.sweep, methods=["GET"]),
            Route("/api/stages", routes.stages, methods=["GET"]),
            Route("/api/compare", compare_endpoint(service), methods=["GET"]),
            Route("/api/openapi.json", routes.openapi, methods=["GET"]),
            Route("/healthz", routes.healthz, methods=["GET"]),
            Route("/readyz", routes.readyz, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
            Route("/", routes.dashboard, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
        ],
        middleware=[Middleware(_CatchAll), Middleware(_BearerAuth, token=token)],
        exception_handlers={
            ApiError: _api_error,
            CrucibleError: _crucible_error,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
    )
    app.state.service = service
    return app


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


class _Routes:
    """The request handlers; each parses the request and asks the :class:`Service`."""

    def __init__(self, service: Service, guarded: bool) -> None:
        self.service = service
        self.guarded = guarded

    async def submit(self, request: Request) -> Response:
        service = self.service
        service.rt  # noqa: B018  (503 before reading a body the service cannot run)
        key = check_key(request.headers.get("idempotency-key"))
        data = await read_json_body(request, service.limits)
        sub = parse_submission(data, service.reg, service.limits)
        status, answer = await service.submit(sub, key, _base(request))
        headers = {"Location": answer["links"]["self"]}
        return json_response(answer, status, headers)

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

    async def outputs(self, request: Request) -> Response:
        q = request.query_params
        run_id = request.path_params["run_id"]
        offset = _int_param(q.get("offset"), "offset", default=0, low=0, high=2**62)
        limit = _int_param(q.get("limit"), "limit", default=50, low=1, high=500)
        query = q.get("q") or None
        return json_response(
            await self.service.outputs(run_id, offset=offset, limit=limit, query=query)
        )

    async def columns(self, request: Request) -> Response:
        q = request.query_params
        limit = _int_param(q.get("limit"), "limit", default=500, low=1, high=5000)
        return json_response(
            await self.service.columns(experiment_id=q.get("experiment_id") or None, limit=limit)
        )

    async def sweep(self, request: Request) -> Response:
        return json_response(await self.service.sweep(request.path_params["sweep_id"]))

    async def get_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return json_response(await self.service.detail(run_id, _base(request)))

    async def cancel(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return json_response(await self.service.cancel(run_id), 202)

    async def delete_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return json_response(await self.service.delete(run_id))

    async def events(self, request: Request) -> Response | EventStream:
        run_id = request.path_params["run_id"]
        after_text = request.query_params.get("after") or request.headers.get("last-event-id")
        after = _int_param(after_text, "after", default=0, low=0, high=2**62)
        source = await self.service.events(run_id, after)
        return EventStream(
            source, keepalive=self.service.keepalive, closing=self.service.wait_closing
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

    async def stages(self, request: Request) -> Response:
        return json_response({"stages": self.service.stages()})

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document(version=__version__, token=self.guarded))

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        return json_response(await self.service.ready())

    async def metrics(self, request: Request) -> Response:
        return Response(self.service.metrics.render(), media_type=CONTENT_TYPE)

    async def dashboard(self, request: Request) -> Response:
        index = STATIC_DIR / "index.html"
        return FileResponse(index, media_type="text/html")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _crucible_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CrucibleError)
    return api_error_from(exc).response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return ApiError(exc.status_code, str(exc.detail), headers=exc.headers).response()


class _BearerAuth:
    """Require ``Authorization: Bearer <token>`` on ``/api/*`` and ``/metrics``."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if not (path.startswith(_GUARDED[0]) or path == _GUARDED[1]):
            await self.app(scope, receive, send)
            return
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        scheme, _, given = header.partition(b" ")
        if not header or scheme.lower() != b"bearer" or not given.strip():
            response = error_response(
                401,
                "Unauthorized",
                "this endpoint needs Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="crucible-actors"'},
            )
        elif not hmac.compare_digest(given.strip(), self.token):
            response = error_response(403, "Forbidden", "the bearer token is not valid")
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


class _CatchAll:
    """Answer an unexpected exception with the JSON 500 (no traceback) and log it.

    A client that disconnects while its request is read is logged in one line, as such.

    Nothing is re-raised to the server, so the client sees the same answer under every
    server and in tests; the traceback goes to the ``crucible_actors.serve`` logger.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except ClientDisconnect:
            # The client went away before its request was read: nobody is left to
            # answer, and nothing went wrong here (issue 21: no traceback, no 500).
            log.info(
                "client disconnected before %s %s was read; request dropped",
                scope.get("method"),
                scope.get("path"),
            )
        except Exception:
            log.exception(
                "unexpected error answering %s %s", scope.get("method"), scope.get("path")
            )
            if not started:
                response = error_response(
                    500, "InternalError", "internal server error; the service log has details"
                )
                await response(scope, receive, send)
