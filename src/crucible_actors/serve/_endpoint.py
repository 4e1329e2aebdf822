"""Endpoints: a route of the service together with its OpenAPI operation.

A request handler declares its method, path and documentation with :func:`endpoint`;
the app builds its Starlette routes from the handlers' endpoints (``_routes``) and the
OpenAPI document builds its ``paths`` from the same list (``_openapi``), so a route
cannot be served undocumented, nor documented unserved. The path parameters of an
operation are derived from the ``{name}`` segments of its path; everything else (query
and header parameters, request body, responses) is written next to the handler with the
small builders below.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "STRING",
    "Endpoint",
    "answer",
    "endpoint",
    "endpoints_of",
    "failure",
    "param",
    "ref",
]

_ATTRIBUTE = "__crucible_endpoint__"
_PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

#: The JSON schema of a string.
STRING: Mapping[str, Any] = {"type": "string"}


@dataclass(frozen=True)
class Endpoint:
    """One route (``method``, ``path``) and the OpenAPI operation that documents it.

    ``public`` operations need no token even when the service has one (``security: []``).
    """

    method: str
    path: str
    operation_id: str
    responses: Mapping[str, Mapping[str, Any]]
    summary: str | None = None
    parameters: Sequence[Mapping[str, Any]] = ()
    request_body: Mapping[str, Any] | None = None
    public: bool = False
    path_parameters: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.method != self.method.upper():
            raise ValueError(
                f"{self.operation_id}: write the method upper-case, got {self.method!r}"
            )
        found = tuple(_PATH_PARAMETER.findall(self.path))
        object.__setattr__(self, "path_parameters", found)

    def operation(self) -> dict[str, Any]:
        """Return the OpenAPI operation object (a fresh copy: the caller may change it)."""
        op: dict[str, Any] = {"operationId": self.operation_id}
        if self.summary is not None:
            op["summary"] = self.summary
        if self.public:
            op["security"] = []
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": dict(STRING)}
            for name in self.path_parameters
        ] + [copy.deepcopy(dict(p)) for p in self.parameters]
        if parameters:
            op["parameters"] = parameters
        if self.request_body is not None:
            op["requestBody"] = copy.deepcopy(dict(self.request_body))
        op["responses"] = {code: copy.deepcopy(dict(r)) for code, r in self.responses.items()}
        return op


_Handler = TypeVar("_Handler", bound="Callable[..., Any]")


def endpoint(
    method: str,
    path: str,
    operation_id: str,
    *,
    responses: Mapping[str, Mapping[str, Any]],
    summary: str | None = None,
    parameters: Sequence[Mapping[str, Any]] = (),
    request_body: Mapping[str, Any] | None = None,
    public: bool = False,
) -> Callable[[_Handler], _Handler]:
    """Declare that the decorated handler serves ``method path``, documented as given.

    ``parameters`` are the query and header parameters; the path parameters come from
    ``path``. ``responses`` maps status codes to response objects (:func:`answer`,
    :func:`failure`).
    """
    spec = Endpoint(
        method=method,
        path=path,
        operation_id=operation_id,
        responses=responses,
        summary=summary,
        parameters=parameters,
        request_body=request_body,
        public=public,
    )

    def mark(handler: _Handler) -> _Handler:
        setattr(handler, _ATTRIBUTE, spec)
        return handler

    return mark


def endpoints_of(handlers: type) -> list[tuple[str, Endpoint]]:
    """Return ``(attribute name, endpoint)`` for every handler of the class, in order."""
    found = []
    for name, value in vars(handlers).items():
        spec = getattr(value, _ATTRIBUTE, None)
        if isinstance(spec, Endpoint):
            found.append((name, spec))
    return found


def ref(schema: str) -> dict[str, str]:
    """Return a reference to the component schema named ``schema``."""
    return {"$ref": f"#/components/schemas/{schema}"}


def answer(schema: str, description: str) -> dict[str, Any]:
    """Return a JSON response object whose body is the component ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}


def failure(description: str) -> dict[str, Any]:
    """Return an error response object (the ``Error`` body) described as given."""
    return answer("Error", description)


def param(
    name: str,
    where: str = "query",
    schema: Mapping[str, Any] = STRING,
    description: str | None = None,
    *,
    required: bool | None = None,
) -> dict[str, Any]:
    """Return a query (or ``where="header"``) parameter object."""
    out: dict[str, Any] = {"name": name, "in": where}
    if required is not None:
        out["required"] = required
    if description is not None:
        out["description"] = description
    out["schema"] = dict(schema)
    return out
