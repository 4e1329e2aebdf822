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

from .._core import Experiment, RunEvent

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
    """One run in a list; times are ISO 8601 (UTC), ``duration`` seconds.

    ``sweep_id``: the sweep the run is a point of, or null.
    """

    id: str
    experiment_id: str
    status: Status
    started_at: str | None
    finished_at: str | None
    duration: float | None
    failure: Failure | None
    sweep_id: str | None


class RunRow(RunSummary):
    """A run in the runs list; ``columns`` (only with ``?columns=``) maps each requested
    column path to the run's value, null where it has none."""

    columns: dict[str, Any] = {}


class RunList(msgspec.Struct, kw_only=True):
    """A page of runs.

    Newest first by default: pass ``next`` as ``before`` for the next page. With
    ``sort`` or ``filter`` the page is ``offset``-based: ``total`` runs passed the
    filters, ``next_offset`` (null on the last page) fetches the next page, and
    ``truncated`` says the newest 50,000 runs only were read. ``columns`` echoes the
    requested column paths.
    """

    runs: list[RunRow]
    next: str | None
    columns: list[str] = []
    total: int | None = None
    offset: int | None = None
    next_offset: int | None = None
    truncated: bool = False


class ColumnList(msgspec.Struct):
    """Column paths the runs have: numeric metrics, options set by definitions, swept
    options (``params.<sweep path>``), each sorted."""

    metrics: list[str]
    params: list[str]
    sweep: list[str]


class OutputEntry(msgspec.Struct):
    """One output; ``index`` is its position among all the run's outputs."""

    index: int
    value: Any


class OutputPage(msgspec.Struct):
    """A page of a run's outputs: ``total`` outputs, ``matched`` containing ``query``;
    ``fields`` lists the keys of the mapping outputs on the page."""

    run_id: str
    total: int
    matched: int
    offset: int
    limit: int
    query: str
    fields: list[str]
    outputs: list[OutputEntry]


class MetricSummary(msgspec.Struct):
    """A metric over a point's completed repeats: mean, sample SD (null for one), n."""

    mean: float
    sd: float | None
    n: int
    min: float
    max: float


class SweepRun(msgspec.Struct):
    """One repeat of a sweep point; ``status`` is ``deleted`` once the run is gone."""

    run_id: str
    repeat: int
    seed: int
    status: str
    metrics: dict[str, Any]


class SweepPointView(msgspec.Struct):
    """One point of a sweep: its parameters, its runs and each metric summarised."""

    point: int
    parameters: dict[str, Any]
    runs: list[SweepRun]
    summary: dict[str, MetricSummary | None]


class SweepDetail(msgspec.Struct):
    """A sweep: what it varies (``parameters``: option path -> values), its points, and
    the numeric metrics (dotted paths) its runs recorded."""

    id: str
    experiment_id: str
    status: str
    runs: int
    created_at: str | None
    finished_at: str | None
    mode: str
    repeats: int
    parameters: dict[str, list[Any]]
    metrics: list[str]
    points: list[SweepPointView]


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


class GitState(msgspec.Struct):
    """The git work tree holding the stages' source: its ``HEAD`` and whether a tracked
    file differs from it."""

    commit: str
    dirty: bool


class Provenance(msgspec.Struct):
    """What produced a run, recorded when it started (see docs/provenance.md).

    ``environment`` is the id of the environment record (versions, packages, platform,
    host, git), stored once and shared by the runs that have the same one; its fields
    are null (``packages`` empty) if that record is missing. ``packages`` maps
    distribution name to version; ``git`` is null outside a git work tree; ``stages``
    maps stage label to its code fingerprint (the one the result cache keys on);
    ``inputs`` maps a key of the run's initial Context (``assigns['X']``) to the
    content digest of that large value. ``definition`` is the id of the experiment
    definition the run executed, stored once by content (null for runs recorded
    without it); its options are the run's ``params.*`` columns.
    """

    environment: str | None
    definition: str | None
    python: str | None
    crucible_actors: str | None
    platform: str | None
    host: str | None
    packages: dict[str, str]
    git: GitState | None
    stages: dict[str, str]
    inputs: dict[str, str]


class RunDetail(RunSummary):
    """One run: the summary plus its stages, results, artifacts, definition, provenance.

    ``provenance`` is null for a run not stored (no store) or stored without it.
    """

    stages: list[Stage]
    metrics: dict[str, Any]
    outputs: list[Any]
    artifacts: list[Artifact]
    has_trace: bool
    experiment: Experiment | None
    provenance: Provenance | None = None


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
    ColumnList,
    OutputPage,
    SweepDetail,
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
                    {
                        "name": "columns",
                        "in": "query",
                        "description": "column paths, comma-separated or repeated: "
                        "metrics.<name> (dots walk nested metrics), "
                        "params.<stage label>.<option> (a sweep point's own value for swept "
                        "options); each run gets them under `columns`",
                        "schema": _STR,
                    },
                    {
                        "name": "sort",
                        "in": "query",
                        "description": "a column path or a RunSummary field (id, "
                        "experiment_id, status, started_at, finished_at, duration); a leading "
                        "`-` sorts descending; runs without the value come last",
                        "schema": _STR,
                    },
                    {
                        "name": "filter",
                        "in": "query",
                        "description": "repeatable, all must hold: <column><op><value>, op "
                        "one of = != > >= < <= ~ (contains); numbers compare as numbers, "
                        "text case-insensitively",
                        "schema": _STR,
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "description": "with sort or filter: runs to skip",
                        "schema": {"type": "integer", "minimum": 0, "default": 0},
                    },
                ],
                "responses": {
                    "200": _json("RunList", "a page of runs"),
                    "422": _err("bad parameter (a malformed column path, sort or filter)"),
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
        "/api/runs/{run_id}/outputs": {
            "get": {
                "operationId": "runOutputs",
                "summary": "A page of a run's outputs, optionally searched",
                "parameters": [
                    _RUN_ID,
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    },
                    {
                        "name": "q",
                        "in": "query",
                        "description": "keep the outputs whose JSON contains this text "
                        "(case-insensitive)",
                        "schema": _STR,
                    },
                ],
                "responses": {
                    "200": _json("OutputPage", "a page of outputs"),
                    "404": not_found,
                    "422": _err("bad offset or limit"),
                },
            }
        },
        "/api/columns": {
            "get": {
                "operationId": "listColumns",
                "summary": "The metric and parameter column paths of the newest runs",
                "parameters": [
                    {"name": "experiment_id", "in": "query", "schema": _STR},
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "how many of the newest runs to look at",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 5000,
                            "default": 500,
                        },
                    },
                ],
                "responses": {
                    "200": _json("ColumnList", "the column paths"),
                    "422": _err("bad limit"),
                },
            }
        },
        "/api/sweeps/{sweep_id}": {
            "get": {
                "operationId": "getSweep",
                "summary": "A sweep's points, their runs' metrics, repeats summarised",
                "parameters": [
                    {"name": "sweep_id", "in": "path", "required": True, "schema": _STR}
                ],
                "responses": {
                    "200": _json("SweepDetail", "the sweep"),
                    "404": _err("unknown sweep"),
                    "503": _err("no store"),
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
