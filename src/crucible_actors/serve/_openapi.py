"""The OpenAPI 3.1 document of the service, written by hand next to ``docs/http-api.md``.

``tests/serve/test_openapi.py`` keeps it honest: every route of the app appears here
with the same methods, and the answers of the implementation validate against the
schemas declared for them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_NNUM = {"type": ["number", "null"]}
_INT = {"type": "integer"}
_NINT = {"type": ["integer", "null"]}
_STATUS = {
    "type": "string",
    "enum": ["pending", "running", "completed", "failed", "cancelled", "interrupted"],
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


_SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        ["error"],
        error=_obj(["type", "message", "details"], type=_STR, message=_STR, details={}),
    ),
    "Links": _obj(
        ["self", "events", "cancel", "trace"], self=_STR, events=_STR, cancel=_STR, trace=_STR
    ),
    "Submission": {
        "type": "object",
        "description": "An experiment, either under `experiment` or inline, with the "
        "optional keys `assigns`, `run_id`, `validate_options` and `trace` alongside.",
        "properties": {
            "experiment": {"type": "object"},
            "assigns": {"type": ["object", "null"]},
            "run_id": _NSTR,
            "validate_options": {"enum": ["off", "warn", "error", None]},
            "trace": {"type": "boolean"},
            "id": _STR,
            "pipeline": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Accepted": _obj(
        ["run_id", "status", "links"], run_id=_STR, status=_STATUS, links=_ref("Links")
    ),
    "CancelAnswer": _obj(["run_id", "status"], run_id=_STR, status=_STATUS),
    "Failure": {
        "type": ["object", "null"],
        "properties": {
            "stage": _NSTR,
            "reason_type": _STR,
            "message": _STR,
            "attempts": _NINT,
        },
    },
    "RunSummary": _obj(
        ["id", "experiment_id", "status", "started_at", "finished_at", "duration", "failure"],
        id=_STR,
        experiment_id=_STR,
        status=_STATUS,
        started_at=_NSTR,
        finished_at=_NSTR,
        duration=_NNUM,
        failure=_ref("Failure"),
    ),
    "RunList": _obj(
        ["runs", "next"], runs={"type": "array", "items": _ref("RunSummary")}, next=_NSTR
    ),
    "Attempt": _obj(
        ["attempt", "status", "started_at", "finished_at", "duration", "error"],
        attempt=_INT,
        status={
            "type": "string",
            "enum": ["running", "completed", "failed", "timeout", "cancelled"],
        },
        started_at=_NSTR,
        finished_at=_NSTR,
        duration=_NNUM,
        error=_NSTR,
    ),
    "Stage": _obj(
        ["index", "name", "status", "attempts"],
        index=_INT,
        name=_NSTR,
        status={
            "type": "string",
            "enum": [
                "pending",
                "running",
                "completed",
                "failed",
                "timeout",
                "cancelled",
                "skipped",
                "not_run",
            ],
        },
        attempts={"type": "array", "items": _ref("Attempt")},
    ),
    "Artifact": _obj(
        ["name", "type", "format", "url"], name=_STR, type=_NSTR, format=_NSTR, url=_STR
    ),
    "RunDetail": {
        "allOf": [
            _ref("RunSummary"),
            _obj(
                ["stages", "metrics", "outputs", "artifacts", "has_trace", "experiment"],
                stages={"type": "array", "items": _ref("Stage")},
                metrics={"type": "object"},
                outputs={"type": "array"},
                artifacts={"type": "array", "items": _ref("Artifact")},
                has_trace={"type": "boolean"},
                experiment={"type": ["object", "null"]},
            ),
        ]
    },
    "RunEvent": _obj(
        ["seq", "type", "run_id", "time", "wall", "stage", "index", "attempt", "data"],
        seq=_INT,
        type={
            "type": "string",
            "enum": [
                "run_started",
                "stage_started",
                "stage_completed",
                "stage_failed",
                "stage_restarted",
                "stage_timeout",
                "stage_skipped",
                "run_completed",
                "run_failed",
                "run_cancelled",
                "run_interrupted",
            ],
        },
        run_id=_STR,
        time={"type": "number"},
        wall={"type": "number"},
        stage=_NSTR,
        index=_NINT,
        attempt=_NINT,
        data={"type": "object"},
    ),
    "StageList": _obj(
        ["stages"],
        stages={
            "type": "array",
            "items": _obj(
                ["name", "module", "schema"], name=_STR, module=_STR, schema={"type": "object"}
            ),
        },
    ),
    "Health": _obj(["status"], status={"const": "ok"}),
    "Ready": _obj(
        ["status", "store", "runtime"], status={"const": "ready"}, store=_STR, runtime=_STR
    ),
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _err(description: str) -> dict[str, Any]:
    return _json("Error", description)


_RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": _STR}


def _paths() -> dict[str, Any]:
    not_found = _err("unknown run")
    return {
        "/api/runs": {
            "post": {
                "operationId": "submitRun",
                "summary": "Submit a run (returns once admitted)",
                "parameters": [
                    {"name": "Idempotency-Key", "in": "header", "required": False, "schema": _STR}
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Submission")}},
                },
                "responses": {
                    "202": _json("Accepted", "admitted"),
                    "200": _json("Accepted", "a retried Idempotency-Key: the run it created"),
                    "409": _err("run_id already taken"),
                    "413": _err("body too large"),
                    "422": _err("invalid JSON, experiment, options, stage import path, key reuse"),
                    "429": _err("admission queue full; see Retry-After"),
                    "503": _err("the runtime is shutting down"),
                },
            },
            "get": {
                "operationId": "listRuns",
                "summary": "List runs, newest first",
                "parameters": [
                    {"name": "experiment_id", "in": "query", "schema": _STR},
                    {"name": "status", "in": "query", "schema": _STATUS},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                    {"name": "before", "in": "query", "schema": _STR},
                ],
                "responses": {
                    "200": _json("RunList", "a page of runs"),
                    "422": _err("bad parameter"),
                },
            },
        },
        "/api/runs/{run_id}": {
            "get": {
                "operationId": "getRun",
                "parameters": [_RUN_ID],
                "responses": {"200": _json("RunDetail", "the run"), "404": not_found},
            }
        },
        "/api/runs/{run_id}/cancel": {
            "post": {
                "operationId": "cancelRun",
                "parameters": [_RUN_ID],
                "responses": {
                    "202": _json("CancelAnswer", "cancelled, or cancelling"),
                    "404": not_found,
                    "409": _err("already finished, or executed by another process"),
                },
            }
        },
        "/api/runs/{run_id}/events": {
            "get": {
                "operationId": "runEvents",
                "parameters": [
                    _RUN_ID,
                    {"name": "Last-Event-ID", "in": "header", "schema": _STR},
                    {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {
                    "200": {
                        "description": "Server-sent events; `data` is a RunEvent",
                        "content": {"text/event-stream": {"schema": _ref("RunEvent")}},
                    },
                    "404": not_found,
                    "422": _err("bad Last-Event-ID or after"),
                },
            }
        },
        "/api/runs/{run_id}/trace": {
            "get": {
                "operationId": "runTrace",
                "parameters": [
                    _RUN_ID,
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "html"]}},
                ],
                "responses": {
                    "200": {
                        "description": "the decision trace",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/html": {"schema": _STR},
                        },
                    },
                    "404": _err("unknown run, or the run has no trace"),
                    "422": _err("bad format"),
                },
            }
        },
        "/api/runs/{run_id}/artifacts/{name}": {
            "get": {
                "operationId": "runArtifact",
                "parameters": [
                    _RUN_ID,
                    {"name": "name", "in": "path", "required": True, "schema": _STR},
                ],
                "responses": {
                    "200": {"description": "the file", "content": {"application/octet-stream": {}}},
                    "404": _err("unknown run or artifact, or not a local file"),
                },
            }
        },
        "/api/stages": {
            "get": {
                "operationId": "listStages",
                "responses": {"200": _json("StageList", "the registered stages")},
            }
        },
        "/api/compare": {
            "get": {
                "operationId": "compareRuns",
                "parameters": [
                    {"name": n, "in": "query", "schema": _STR}
                    for n in ("runs", "sweep", "metric", "pair_by", "correction", "alpha")
                ]
                + [
                    {"name": "lower_is_better", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "html"]}},
                ],
                "responses": {
                    "200": {
                        "description": "the comparison (crucible_actors.comparison.Comparison)",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/html": {"schema": _STR},
                        },
                    },
                    "404": _err("unknown run or sweep"),
                    "422": _err("bad parameters, or runs that cannot be compared"),
                    "503": _err("no store"),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "responses": {
                    "200": {
                        "description": "this document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "security": [],
                "responses": {"200": _json("Health", "the process is up")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "ready",
                "security": [],
                "responses": {
                    "200": _json("Ready", "ready"),
                    "503": _err("store unavailable or runtime closed"),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4",
                        "content": {"text/plain": {"schema": _STR}},
                    }
                },
            }
        },
        "/": {
            "get": {
                "operationId": "dashboard",
                "security": [],
                "responses": {
                    "200": {"description": "the dashboard", "content": {"text/html": {}}}
                },
            }
        },
        "/static/{path}": {
            "get": {
                "operationId": "static",
                "security": [],
                "parameters": [{"name": "path", "in": "path", "required": True, "schema": _STR}],
                "responses": {
                    "200": {"description": "a dashboard file"},
                    "404": _err("no such file"),
                },
            }
        },
    }


def openapi_document(*, version: str, token: bool) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document; with ``token`` the API declares bearer auth."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "crucible-actors serve",
            "version": version,
            "description": "Submit, follow and inspect experiment runs. See docs/http-api.md.",
        },
        "paths": _paths(),
        "components": {"schemas": _SCHEMAS},
    }
    if token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        for op in doc["paths"]["/api/runs"].values():
            op["responses"]["401"] = _err("missing token")
            op["responses"]["403"] = _err("wrong token")
    return doc
