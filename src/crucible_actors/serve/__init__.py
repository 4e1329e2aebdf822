"""``crucible-actors serve``: the HTTP service and dashboard (extra ``serve``).

:func:`create_app` returns a Starlette (ASGI) application that accepts submissions,
runs them on the supervised runtime, reads history from the store, streams progress as
server-sent events and serves the dashboard from ``serve/static``. The API is
documented in :doc:`/http-api` and served as OpenAPI at ``/api/openapi.json``;
``crucible-actors serve`` runs the app on Hypercorn.
"""

from .._core import MissingDependency

try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependency("starlette", "crucible-actors serve", extra="serve") from exc

from ._app import create_app as create_app

__all__ = ["create_app"]
