"""HTTP errors of the service: one JSON shape, rendered from data, never from a traceback.

Every error answer is ``{"error": {"type", "message", "details"}}``. Handlers raise
:class:`ApiError`; :func:`api_error_from` maps the library's own errors (by class and
attributes, never by parsing their text) onto the HTTP error table of
``docs/http-api.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from starlette.responses import Response

from .._core import (
    CrucibleError,
    EncodeError,
    InvalidExperiment,
    InvalidOptions,
    RunNotFound,
    RunStillRunning,
    StoreError,
    UnknownStage,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ApiError", "api_error_from", "error_response", "json_response"]

_encode = msgspec.json.Encoder().encode

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "ContentTooLarge",
    422: "InvalidRequest",
    429: "TooManyRequests",
    500: "InternalError",
    503: "Unavailable",
}


class ApiError(Exception):
    """An error answer: ``status``, a stable ``type`` string, a message and details.

    Raised by handlers and turned into the JSON error body by the app's exception
    handler; ``headers`` (``Retry-After``, ``WWW-Authenticate``) go on the response.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type or _REASONS.get(status, "Error")
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def response(self) -> Response:
        """Return the JSON error response."""
        return error_response(self.status, self.type, self.message, self.details, self.headers)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Return ``data`` (JSON-safe builtins or msgspec Structs) as a JSON response."""
    return Response(
        _encode(data), status_code=status, headers=headers, media_type="application/json"
    )


def error_response(
    status: int,
    type: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Return the error body ``{"error": {"type", "message", "details"}}``."""
    body = {"error": {"type": type, "message": message, "details": details}}
    return json_response(body, status, headers)


def _entry(message: str, stage: str | None = None) -> dict[str, Any]:
    return {"stage": stage, "message": message}


def api_error_from(exc: CrucibleError) -> ApiError:
    """Map a library error onto its HTTP answer (422 for bad input, 404, 503 ...)."""
    if isinstance(exc, InvalidExperiment):
        return ApiError(
            422,
            str(exc),
            type="InvalidExperiment",
            details={"errors": [_entry(e) for e in exc.errors]},
        )
    if isinstance(exc, InvalidOptions):
        return ApiError(
            422,
            str(exc),
            type="InvalidOptions",
            details={"errors": [_entry(e, exc.stage) for e in exc.errors]},
        )
    if isinstance(exc, UnknownStage):
        return ApiError(
            422, str(exc), type="UnknownStage", details={"errors": [_entry(str(exc), exc.name)]}
        )
    if isinstance(exc, EncodeError):
        return ApiError(
            422,
            str(exc),
            type="EncodeError",
            details={"errors": [_entry(str(exc))], "path": exc.path},
        )
    if isinstance(exc, RunNotFound):
        return ApiError(404, str(exc), type="RunNotFound", details={"run_id": exc.run_id})
    if isinstance(exc, RunStillRunning):
        return ApiError(
            409,
            str(exc),
            type="RunStillRunning",
            details={"run_id": exc.run_id, "status": exc.status},
        )
    if isinstance(exc, StoreError):
        return ApiError(503, str(exc), type=type(exc).__name__, details={"store": exc.store})
    return ApiError(503, str(exc), type=type(exc).__name__)
