"""The experiment IR: frozen msgspec Structs describing what to run.

Field names follow CrucibleFramework's ``crucible_ir``. An :class:`Experiment` lists
:class:`StageDef` entries in ``pipeline``; the runtime threads a Context through them.
The IR is pure data: it encodes to JSON/msgpack (a Python object given as
``StageDef.stage`` is encoded as its ``"module:qualname"`` reference) and loads from
TOML, JSON or YAML by :func:`~._ir_load.load_experiment`. The sweep definition lives in
:mod:`._ir_sweep`, object references and validation messages in :mod:`._ir_refs`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
import msgspec.structs

from ._errors import InvalidExperiment
from ._ir_refs import check_no_plugin_objects, describe_validation_error
from ._ir_refs import is_plugin_object as is_plugin_object
from ._ir_refs import stage_ref as stage_ref
from ._ir_refs import stage_ref_name as stage_ref_name
from ._ir_sweep import Sweep as Sweep
from ._ir_sweep import check_sweep, coerce_sweep

ExperimentType = Literal["evaluation", "training", "comparison", "ablation"]
RestartKind = Literal["temporary", "transient"]
#: What an executor's name looks like: a letter or ``_``, then letters, digits, ``_``,
#: ``.`` or ``-``. Which names exist is the runtime's business (the built-ins ``inline``,
#: ``thread``, ``process``, ``ray``, plus any registered), checked when a run is submitted.
ISOLATION_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
# The pattern is checked by StageDef.__post_init__, whose message names the stage and
# the value; the schema only shows it (a Meta pattern would answer first, less clearly).
Isolation = Annotated[
    str,
    msgspec.Meta(
        description="the name of a registered executor: inline, thread, process, ray, "
        "or one registered with crucible_actors.executors.register()",
        extra_json_schema={"pattern": ISOLATION_PATTERN},
    ),
]
_BUILTIN_ISOLATIONS: Final = frozenset({"inline", "thread", "process", "ray"})
_ISOLATION_NAME: Final = re.compile(ISOLATION_PATTERN)
#: Resource names Ray knows itself; any other key of ``StageDef.resources`` is a custom one.
RAY_RESOURCES = ("num_cpus", "num_gpus", "memory")


class Backoff(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Exponential backoff between restarts of a stage.

    The n-th retry waits ``min(max, initial * multiplier ** (n - 1))`` seconds; with
    ``jitter`` the wait is drawn uniformly from ``[0.5, 1.0]`` times that value.
    """

    initial: float = 1.0
    max: float = 60.0
    multiplier: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        # ``not x >= 0`` also rejects NaN, which every comparison would let through.
        for field, value in (("initial", self.initial), ("max", self.max)):
            if not value >= 0:
                raise InvalidExperiment(f"{field} must be >= 0 seconds, got {value!r}")
        if not self.multiplier > 0:
            raise InvalidExperiment(f"multiplier must be > 0, got {self.multiplier!r}")

    def delay(self, retry: int, rand: float = 1.0) -> float:
        """Return the wait before retry number ``retry`` (1-based); ``rand`` in [0, 1]."""
        base = min(self.max, self.initial * self.multiplier ** max(0, retry - 1))
        if self.jitter:
            return base * (0.5 + 0.5 * rand)
        return base


class BackendRef(msgspec.Struct, frozen=True, omit_defaults=True):
    """Which model backend an experiment talks to (opaque to the runtime)."""

    id: str
    profile: str = "default"
    options: dict[str, Any] = {}
    model_version: str | None = None
    endpoint_url: str | None = None
    deployment_id: str | None = None
    fallback: Any = None


class DatasetRef(msgspec.Struct, frozen=True, omit_defaults=True):
    """Which dataset an experiment reads (opaque to the runtime)."""

    name: str
    provider: str | None = None
    split: str = "train"
    options: dict[str, Any] = {}
    version: str | None = None
    format: str | None = None
    schema: Any = None


class OutputSpec(msgspec.Struct, frozen=True, omit_defaults=True):
    """One report the ``report`` stage renders.

    ``formats`` are any of ``markdown json html csv``; ``sink`` is ``file`` or ``stdout``.
    They are plain strings here so a typo is reported by the ``validate`` stage with
    every other problem instead of failing the whole file load.
    """

    name: str
    formats: list[str] = msgspec.field(default_factory=lambda: ["markdown"])
    sink: str = "file"
    options: dict[str, Any] = {}


class StatsConfig(msgspec.Struct, frozen=True, omit_defaults=True):
    """Statistical-testing defaults that the ``bench`` stage falls back to."""

    tests: list[str] = msgspec.field(default_factory=lambda: ["ttest", "bootstrap"])
    alpha: float = 0.05
    confidence_level: float = 0.95
    effect_size_type: str = "cohens_d"
    multiple_testing_correction: str | None = None
    bootstrap_iterations: int = 10000
    options: dict[str, Any] | None = {}

    def __post_init__(self) -> None:
        if self.options is None:
            msgspec.structs.force_setattr(self, "options", {})


class ReliabilityConfig(msgspec.Struct, frozen=True, omit_defaults=True):
    """Reliability settings; only ``stats`` is interpreted by the built-in stages."""

    stats: StatsConfig | None = None
    guardrails: dict[str, Any] | None = None
    ensemble: dict[str, Any] | None = None
    hedging: dict[str, Any] | None = None
    fairness: dict[str, Any] | None = None
    monitoring: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    circuit_breaker: dict[str, Any] | None = None
    feedback: dict[str, Any] | None = None


class StageDef(msgspec.Struct, frozen=True, omit_defaults=True):
    """One step of a pipeline, with its options and supervision policy.

    ``name`` is looked up in the registry unless ``stage`` is set (a Stage class or
    object, or an importable ``"package.module:attr"`` string). A disabled stage is
    skipped and listed in ``assigns["skipped_stages"]``.

    Supervision (defaults: no timeout, no restart): ``timeout`` seconds per attempt;
    ``restart="transient"`` retries after an exception or a timeout, at most
    ``max_restarts`` times within ``max_seconds``, waiting ``backoff`` between tries;
    ``retry_on``/``fail_on`` filter by exception class name (matched against the
    exception's class and its bases). ``isolation`` picks where the stage runs: the name of
    an executor (``inline``, ``thread``, ``process``, ``ray`` or one registered with
    :func:`crucible_actors.executors.register`); an unknown name is refused when the run is
    submitted, naming the registered ones.

    Executors (see :mod:`crucible_actors.executors`): a stage class with ``setup()`` keeps
    ``pool`` set-up workers (process, Ray actors); ``resources`` (``num_cpus``,
    ``num_gpus``, ``memory`` in bytes, or custom names, each a number >= 0) is what a
    ``ray`` attempt asks the cluster for.

    ``cache`` turns the stage result cache on (True) or off (False) for this stage;
    None (the default) follows the experiment's ``[cache] default``. See
    :doc:`the stage result cache </sweeps>` for the key and what a hit replays.
    """

    name: str | None = None
    stage: Any = None
    options: dict[str, Any] | None = None
    enabled: bool = True
    timeout: float | None = None
    restart: RestartKind = "temporary"
    max_restarts: int = 3
    max_seconds: float = 60.0
    backoff: float | Backoff | None = None
    retry_on: list[str] = []
    fail_on: list[str] = []
    isolation: Isolation = "inline"
    pool: int = 1
    resources: dict[str, Any] = {}
    cache: bool | None = None

    def __post_init__(self) -> None:
        if self.options is None:
            msgspec.structs.force_setattr(self, "options", {})
        no_stage = self.stage is None or (isinstance(self.stage, str) and not self.stage)
        if not self.name and no_stage:
            raise InvalidExperiment(
                "a stage definition needs a name (a registered stage) or a stage "
                "(a Stage class or object, or a 'package.module:attr' reference)"
            )
        # ``not x > 0`` rather than ``x <= 0``: NaN must be rejected too.
        if self.timeout is not None and not self.timeout > 0:
            raise InvalidExperiment(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if self.max_restarts < 0:
            raise InvalidExperiment(f"max_restarts must be >= 0, got {self.max_restarts!r}")
        if not self.max_seconds > 0:
            raise InvalidExperiment(f"max_seconds must be > 0 seconds, got {self.max_seconds!r}")
        backoff = self.backoff
        if isinstance(backoff, int | float) and not backoff >= 0:
            raise InvalidExperiment(f"backoff must be >= 0 seconds, got {backoff!r}")
        iso = self.isolation
        if not is_isolation_name(iso):
            raise InvalidExperiment(
                f"stage {self.label!r}: isolation must be an executor's name (a letter or "
                f"'_', then letters, digits, '_', '.' or '-'), got {iso!r}"
            )
        if iso == "process" and self.options:
            check_no_plugin_objects(self.label, self.options, "")
        if self.pool != 1 or self.resources:
            _check_executor_fields(self)

    @property
    def label(self) -> str:
        """The name used in errors, events and records; ``name``, else the stage's own."""
        if self.name:
            return self.name
        return stage_ref_name(self.stage)


class CacheConfig(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """The stage result cache settings of an experiment (the ``[cache]`` table).

    ``default = true`` caches every stage whose ``StageDef.cache`` is not set (a stage
    sets ``cache = false`` to opt out); stages whose class says ``cacheable = False``
    are never cached.
    """

    default: bool = False


def is_isolation_name(value: object) -> bool:
    """Return whether ``value`` is a name an executor can be registered and asked for by."""
    if not isinstance(value, str):
        return False
    return value in _BUILTIN_ISOLATIONS or _ISOLATION_NAME.fullmatch(value) is not None


def _check_executor_fields(sd: StageDef) -> None:
    """Check ``pool`` and ``resources``; the message names the stage and the field."""
    where = f"stage {sd.label!r}"
    pool = sd.pool
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        raise InvalidExperiment(
            f"{where}: pool must be an int >= 1 (the number of set-up workers), got {pool!r}"
        )
    if not isinstance(sd.resources, Mapping):
        raise InvalidExperiment(
            f"{where}: resources must be a table of name = number, "
            f"got {type(sd.resources).__name__}"
        )
    for key, value in sd.resources.items():
        if not isinstance(key, str) or not key:
            raise InvalidExperiment(f"{where}: resources keys must be non-empty names, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidExperiment(
                f"{where}: resources.{key} must be a number, got {type(value).__name__} {value!r}"
            )
        if not value >= 0 or value == float("inf"):  # also rejects NaN
            raise InvalidExperiment(
                f"{where}: resources.{key} must be a finite number >= 0, got {value!r}"
            )


class Experiment(msgspec.Struct, frozen=True, omit_defaults=True):
    """A named pipeline of stages plus descriptive metadata.

    ``max_restarts``/``max_seconds`` form the run-wide restart budget counted across all
    stages (OTP counts restarts per supervisor); ``None`` means no run-wide cap.
    ``cache`` holds the stage result cache settings (:class:`CacheConfig`).
    """

    id: str
    pipeline: list[StageDef]
    name: str | None = None
    description: str | None = None
    owner: str | None = None
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    backend: BackendRef | None = None
    dataset: DatasetRef | None = None
    reliability: ReliabilityConfig | None = None
    outputs: list[OutputSpec] = []
    experiment_type: ExperimentType | None = None
    model_version: str | None = None
    baseline: Any = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    max_restarts: int | None = None
    max_seconds: float = 60.0
    sweep: Sweep | None = None
    cache: CacheConfig | None = None

    def __post_init__(self) -> None:
        if not self.pipeline:
            raise InvalidExperiment(
                f"experiment {self.id!r} has an empty pipeline; add at least one stage"
            )
        if self.max_restarts is not None and self.max_restarts < 0:
            raise InvalidExperiment(f"max_restarts must be >= 0, got {self.max_restarts!r}")
        if not self.max_seconds > 0:
            raise InvalidExperiment(f"max_seconds must be > 0 seconds, got {self.max_seconds!r}")
        if not all(type(s) is StageDef for s in self.pipeline):
            msgspec.structs.force_setattr(self, "pipeline", _coerce_pipeline(self.pipeline))
        if self.sweep is not None:
            if type(self.sweep) is not Sweep:  # a mapping given in Python
                msgspec.structs.force_setattr(self, "sweep", coerce_sweep(self.sweep))
            assert isinstance(self.sweep, Sweep)
            check_sweep(self.sweep, self.pipeline)
        if self.cache is not None and type(self.cache) is not CacheConfig:
            msgspec.structs.force_setattr(self, "cache", _coerce_cache(self.cache))


def _coerce_cache(raw: Any) -> CacheConfig:
    """Build a :class:`CacheConfig` from a mapping given in Python (``cache={"default": True}``).

    Raises:
        InvalidExperiment: not a table of known settings.
    """
    if not isinstance(raw, Mapping):
        raise InvalidExperiment(f"cache: expected a table/object, got {type(raw).__name__}")
    try:
        return msgspec.convert(dict(raw), CacheConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidExperiment(describe_validation_error(exc, root="cache")) from exc


def _coerce_pipeline(pipeline: list[Any]) -> list[StageDef]:
    """Accept mappings in a pipeline built in Python (``pipeline=[{"name": "a"}]``)."""
    out: list[StageDef] = []
    for i, entry in enumerate(pipeline):
        if isinstance(entry, StageDef):
            out.append(entry)
        elif isinstance(entry, Mapping):
            try:
                out.append(msgspec.convert(dict(entry), StageDef, strict=False))
            except msgspec.ValidationError as exc:  # also wraps StageDef.__post_init__ errors
                detail = describe_validation_error(exc, root=f"pipeline[{i}]")
                raise InvalidExperiment(detail) from exc
        else:
            raise InvalidExperiment(
                f"pipeline[{i}]: expected a StageDef or a mapping, got {type(entry).__name__}"
            )
    return out
