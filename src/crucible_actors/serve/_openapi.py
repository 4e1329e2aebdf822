"""The OpenAPI 3.1 document of the service, next to ``docs/http-api.md``.

The paths are written here; the schemas are generated with
``msgspec.json.schema_components``: the request from the IR Structs the service decodes
(:class:`Experiment`, :class:`StageDef`, :class:`Backoff`, ...), so a submitted
experiment is described field by field with the same types and defaults the decoder
applies, and the answers from the response Structs below (and the runtime's own
:class:`RunEvent`). The response Structs document the JSON the views build; they are
not used to encode it.

``tests/serve/test_openapi.py`` keeps it honest: every route of the app appears here
with the same methods, the document is valid OpenAPI 3.1, and the answers of the
implementation validate against the schemas declared for them.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, get_args

import msgspec

from .._core._handle import RunEvent
from .._core._ir import Experiment

__all__ = ["openapi_document", "schema_components"]

Status = Literal["pending", "running", "completed", "failed", "cancelled", "interrupted"]
AttemptStatus = Literal["running", "completed", "failed", "timeout", "cancelled"]
StageStatus = Literal[
    "pending", "running", "completed", "failed", "timeout", "cancelled", "skipped", "not_run"
]
#: ``RunEvent.type`` values, plus ``run_interrupted`` for runs read back from the store.
EVENT_TYPES = [
    "run_started",
    "stage_started",
    "stage_completed",
    "stage_failed",
    "stage_restarted",
    "stage_timeout",
    "stage_skipped",
    "stage_cached",
    "run_completed",
    "run_failed",
    "run_cancelled",
    "run_interrupted",
]


class SubmissionOptions(msgspec.Struct, kw_only=True):
    """How to run a submitted experiment (the envelope keys of ``POST /api/runs``)."""

    assigns: dict[str, Any] | None = None
    run_id: str | None = None
    validate_options: Literal["off", "warn", "error"] | None = None
    trace: bool = True


class SubmissionEnvelope(SubmissionOptions, kw_only=True, forbid_unknown_fields=True):
    """A submission with the experiment under ``experiment`` and the envelope beside it."""

    experiment: Experiment


class ErrorBody(msgspec.Struct):
    """What went wrong: a stable ``type``, a message, and structured ``details`` (or null).

    ``details.errors`` lists ``{"stage", "message"}`` for invalid submissions.
    """

    type: str
    message: str
    details: dict[str, Any] | None


class Error(msgspec.Struct):
    """Every error answer."""

    error: ErrorBody


class Links(msgspec.Struct):
    """Where to follow, cancel and trace a run."""

    self_: str = msgspec.field(name="self")
    events: str
    cancel: str
    trace: str


class Accepted(msgspec.Struct):
    """A submission the service admitted."""

    run_id: str
    status: Status
    links: Links


class CancelAnswer(msgspec.Struct):
    """The state of a run after a cancel request."""

    run_id: str
    status: Status


class DeletedCounts(msgspec.Struct):
    """The records deleted with a run (its blobs and cached results wait for ``gc``)."""

    attempts: int
    checkpoints: int
    checkpoint_bytes: int
    events: int
    artifacts: int
    sweep_points: int
    sweeps: int


class DeleteAnswer(msgspec.Struct):
    """A run deleted from the store, with what went with it."""

    run_id: str
    deleted: DeletedCounts


class Failure(msgspec.Struct):
    """Why a run did not complete; ``attempts`` is set when a stage gave up."""

    stage: str | None
    reason_type: str
    message: str
    attempts: int | None = None


class RunSummary(msgspec.Struct):
    """One run in a list; times are ISO 8601 (UTC), ``duration`` seconds."""

    id: str
    experiment_id: str
    status: Status
    started_at: str | None
    finished_at: str | None
    duration: float | None
    failure: Failure | None


class RunList(msgspec.Struct):
    """A page of runs, newest first; pass ``next`` as ``before`` for the next page."""

    runs: list[RunSummary]
    next: str | None


class Attempt(msgspec.Struct):
    """One attempt at a stage; ``cache_hit``: its result came from the stage result cache."""

    attempt: int
    status: AttemptStatus
    started_at: str | None
    finished_at: str | None
    duration: float | None
    error: str | None
    cache_hit: bool = False


class Stage(msgspec.Struct):
    """One stage of a run, with its attempts."""

    index: int
    name: str | None
    status: StageStatus
    attempts: list[Attempt]


class Artifact(msgspec.Struct):
    """A file the run recorded, served at ``url``."""

    name: str
    type: str | None
    format: str | None
    url: str


class RunDetail(RunSummary):
    """One run: the summary plus its stages, results, artifacts and definition."""

    stages: list[Stage]
    metrics: dict[str, Any]
    outputs: list[Any]
    artifacts: list[Artifact]
    has_trace: bool
    experiment: Experiment | None


class StageEntry(msgspec.Struct):
    """A registered stage and its option schema (``crucible-actors stages --json``)."""

    name: str
    module: str
    schema: dict[str, Any]


class StageList(msgspec.Struct):
    """The stages the service runs; a submission may name only these."""

    stages: list[StageEntry]


class Health(msgspec.Struct):
    """The process is up."""

    status: Literal["ok"]


class Ready(msgspec.Struct):
    """The store answers and the runtime accepts runs.

    ``unrecovered`` (only when there are some): the runs start-up recovery could not
    settle, by id, with the reason; the service runs anyway.
    """

    status: Literal["ready"]
    store: str
    runtime: str
    unrecovered: dict[str, str] = {}


_RESPONSES = (
    Error,
    Accepted,
    CancelAnswer,
    DeleteAnswer,
    RunList,
    RunDetail,
    RunEvent,
    StageList,
    Health,
    Ready,
)


@functools.cache
def schema_components() -> dict[str, Any]:
    """Return ``components.schemas``: the request and response schemas, generated once.

    The dict is shared between calls: encode it, do not change it.

    ``Submission`` (the request body) is either a :class:`SubmissionEnvelope` or an
    :class:`Experiment` with the :class:`SubmissionOptions` keys alongside.
    """
    _, components = msgspec.json.schema_components(
        (SubmissionEnvelope, SubmissionOptions, Experiment, *_RESPONSES),
        ref_template="#/components/schemas/{name}",
    )
    # What the Structs cannot say about the service.
    stage = components["StageDef"]["properties"]["stage"]
    stage["description"] = (
        "A Stage object or 'package.module:attr' reference, for Python callers. The HTTP "
        "service refuses a non-empty value (422 ImportPathRejected): name a registered "
        "stage (GET /api/stages) in `name` instead."
    )
    components["Experiment"]["properties"]["pipeline"]["description"] = (
        "The stages, in order; `stages` is accepted as an alias."
    )
    components["RunEvent"]["properties"]["type"]["enum"] = EVENT_TYPES
    components["RunDetail"]["properties"]["experiment"]["description"] = (
        "The definition the run executes, as stored."
    )
    components["Submission"] = {
        "description": "An experiment, either under `experiment` or inline, with the "
        "optional keys `assigns`, `run_id`, `validate_options` and `trace` alongside.",
        "oneOf": [
            {"$ref": "#/components/schemas/SubmissionEnvelope"},
            {
                "allOf": [
                    {"$ref": "#/components/schemas/Experiment"},
                    {"$ref": "#/components/schemas/SubmissionOptions"},
                ],
                "not": {"required": ["experiment"]},
            },
        ],
    }
    return components


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_STR = {"type": "string"}
_STATUS = {"enum": list(get_args(Status))}


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
            },
            "delete": {
                "operationId": "deleteRun",
                "summary": "Delete a finished run with its attempts, checkpoints, events, "
                "artifacts records and sweep points",
                "parameters": [_RUN_ID],
                "responses": {
                    "200": _json("DeleteAnswer", "deleted; what went with it"),
                    "404": not_found,
                    "409": _err("the run is running or pending"),
                },
            },
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
                    for n in (
                        "runs",
                        "sweep",
                        "metric",
                        "pair_by",
                        "cluster_by",
                        "cv_ratio",
                        "correction",
                        "alpha",
                    )
                ]
                + [
                    {"name": "lower_is_better", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "unpaired", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "repeats", "in": "query", "schema": {"enum": ["seeds", "samples"]}},
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
        "components": {"schemas": schema_components()},
    }
    if token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        for op in doc["paths"]["/api/runs"].values():
            op["responses"]["401"] = _err("missing token")
            op["responses"]["403"] = _err("wrong token")
    return doc
