"""``create_app``: the Starlette application of ``crucible-actors serve``.

The app is plain ASGI, so it can be served by Hypercorn (what the CLI does) or mounted
inside a host's own ASGI application. Given an open runtime it uses that runtime (and
its registry and store) and needs no lifespan; without one it opens its own in its
lifespan, with ``on_start="resume"`` and ``on_shutdown="interrupt"``, in the server's
event loop (trio or asyncio), never a second loop.

Middleware, outermost first: Starlette's ``ServerErrorMiddleware``, :class:`_CatchAll`
(turns any unexpected exception into the JSON 500 without a traceback, and logs it),
:class:`_BearerAuth` (``/api/*`` and ``/metrics`` need the token when one is set), then
Starlette's exception middleware and the routes (``_routes``: the handlers, each with
its OpenAPI operation).
"""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, get_args

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect

from .. import __version__
from .._core import CrucibleError, ShutdownMode
from ._errors import ApiError, api_error_from, error_response
from ._openapi import openapi_document
from ._routes import Handlers, build_routes
from ._service import Service
from ._submit import Limits

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .._core import Registry, Runtime, Store

__all__ = ["create_app"]

log = logging.getLogger("crucible_actors.serve")

_GUARDED = ("/api/", "/metrics")


def create_app(
    runtime: Runtime | None = None,
    registry: Registry | None = None,
    store: Store | str | None = None,
    token: str | None = None,
    *,
    max_body: int = 1 << 20,
    max_depth: int = 32,
    max_pipeline: int = 100,
    max_queue: int = 100,
    max_concurrent_runs: int | None = None,
    shutdown_grace: float = 10.0,
    on_shutdown: ShutdownMode = "interrupt",
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
    if on_shutdown not in get_args(ShutdownMode):
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

    document = openapi_document(version=__version__, token=token is not None)
    app = Starlette(
        routes=build_routes(Handlers(service, document)),
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
