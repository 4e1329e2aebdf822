"""The OpenAPI 3.1 document of the service, next to ``docs/http-api.md``.

The paths are generated from the routes: each request handler declares its method, path
and operation (``_routes``, with the builders of ``_endpoint``), and the same list makes
the app's routes, so neither can go without the other. The schemas are generated with
``msgspec.json.schema_components``: the request from the IR Structs the service decodes
(:class:`Experiment`, :class:`StageDef`, :class:`Backoff`, ...), so a submitted
experiment is described field by field with the same types and defaults the decoder
applies, and the answers from the response Structs below (and the runtime's own
:class:`RunEvent`). The response Structs document the JSON the views build; they are
not used to encode it.

``tests/serve/test_openapi.py`` keeps it honest: every route of the app appears here
with the same methods and path parameters, and the reverse; the document is valid
OpenAPI 3.1; and the answers of the implementation validate against the schemas declared
for them.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import msgspec

from .._core import Experiment, RunEvent
from ._endpoint import failure
from ._routes import ENDPOINTS

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


class CheckedExperiment(msgspec.Struct):
    """An experiment file read by the loader of ``crucible-actors run``.

    ``format``: how the file was read; ``submission``: the body of ``POST /api/runs``
    that runs it (the envelope keys of a JSON submission body kept beside
    ``experiment``).
    """

    format: Literal["toml", "json", "yaml"]
    submission: SubmissionEnvelope


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
    CheckedExperiment,
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


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for spec in ENDPOINTS:
        paths.setdefault(spec.path, {})[spec.method.lower()] = spec.operation()
    return paths


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
            op["responses"]["401"] = failure("missing token")
            op["responses"]["403"] = failure("wrong token")
    return doc
