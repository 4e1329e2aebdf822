"""The experiment IR: frozen msgspec Structs describing what to run.

Field names follow the reference's ``crucible_ir``. An :class:`Experiment` lists
:class:`StageDef` entries in ``pipeline``; the runtime threads a Context through them.
The IR is pure data: it encodes to JSON/msgpack (a Python object given as
``StageDef.stage`` is encoded as its ``"module:qualname"`` reference) and loads from
TOML, JSON or YAML with :func:`load_experiment`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
import msgspec.structs

from ._errors import InvalidExperiment, MissingDependency

__all__ = [
    "BackendRef",
    "Backoff",
    "DatasetRef",
    "Experiment",
    "OutputSpec",
    "ReliabilityConfig",
    "StageDef",
    "StatsConfig",
    "load_experiment",
]

ExperimentType = Literal["evaluation", "training", "comparison", "ablation"]
RestartKind = Literal["temporary", "transient"]
Isolation = Literal["inline", "thread", "process", "ray"]
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
    exception's class and its bases). ``isolation`` picks where the stage runs.

    Executors (see :mod:`crucible_actors.executors`): a stage class with ``setup()`` keeps
    ``pool`` set-up workers (process, Ray actors); ``resources`` (``num_cpus``,
    ``num_gpus``, ``memory`` in bytes, or custom names, each a number >= 0) is what a
    ``ray`` attempt asks the cluster for.
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

    def __post_init__(self) -> None:
        if self.options is None:
            msgspec.structs.force_setattr(self, "options", {})
        no_stage = self.stage is None or (isinstance(self.stage, str) and not self.stage)
        if not self.name and no_stage:
            raise InvalidExperiment(
                "a stage definition needs a name (a registered stage) or a stage "
                "(a Stage class or object, or a 'package.module:attr' reference)"
            )
        if self.timeout is not None and self.timeout <= 0:
            raise InvalidExperiment(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if self.max_restarts < 0:
            raise InvalidExperiment(f"max_restarts must be >= 0, got {self.max_restarts!r}")
        if self.pool != 1 or self.resources:
            _check_executor_fields(self)

    @property
    def label(self) -> str:
        """The name used in errors, events and records: ``name``, else the stage's own."""
        if self.name:
            return self.name
        return stage_ref_name(self.stage)


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

    def __post_init__(self) -> None:
        if not self.pipeline:
            raise InvalidExperiment(
                f"experiment {self.id!r} has an empty pipeline; add at least one stage"
            )
        if not all(type(s) is StageDef for s in self.pipeline):
            msgspec.structs.force_setattr(self, "pipeline", _coerce_pipeline(self.pipeline))


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


def stage_ref_name(obj: object) -> str:
    """Return a readable name for a stage given as an object, class or reference string."""
    if isinstance(obj, str):
        return obj
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    return stage_ref(obj)


def stage_ref(obj: object) -> str:
    """Return the importable ``"module:qualname"`` reference of a stage class or object."""
    if isinstance(obj, str):
        return obj
    target: Any = getattr(obj, "__wrapped__", obj)
    if not isinstance(target, type) and not inspect.isroutine(target):
        target = type(target)
    return f"{target.__module__}:{target.__qualname__}"


_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_EXPECTED = re.compile(r"^Expected `(?P<exp>[^`]+)`, got `(?P<got>[^`]+)`$")


def describe_validation_error(exc: msgspec.ValidationError, *, root: str = "") -> str:
    """Turn msgspec's message into ours, naming the field path first.

    ``Expected `int`, got `str` - at `$.a[0]` `` becomes ``a[0]: expected int, got str``;
    ``root`` is prefixed to the path (``root="pipeline[1]"`` gives ``pipeline[1].a[0]``).
    """
    m = _MSGSPEC_PATH.match(str(exc))
    assert m is not None  # the pattern matches any string
    msg, path = m.group("msg"), m.group("path") or ""
    path = root + path if root else path.lstrip(".")
    msg = msg.removeprefix("invalid experiment: ")
    e = _EXPECTED.match(msg)
    if e:
        expected = e.group("exp").removesuffix(" | null")
        msg = f"expected {expected}, got {e.group('got')}"
    elif msg.startswith("Object missing required field "):
        msg = "missing required field " + msg.removeprefix("Object missing required field ")
    elif msg and msg[0].isupper() and not msg[1:2].isupper():
        msg = msg[0].lower() + msg[1:]
    return f"{path}: {msg}" if path else msg


_SUFFIXES = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def _detect_format(name: str | None, data: bytes) -> str:
    if name:
        fmt = _SUFFIXES.get(Path(name).suffix.lower())
        if fmt is not None:
            return fmt
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"["):
        return "json"
    return "toml"


def _parse(data: bytes, fmt: str, source: str, *, guessed: bool = False) -> object:
    try:
        if fmt == "json":
            return msgspec.json.decode(data)
        if fmt == "toml":
            return msgspec.toml.decode(data)
        if fmt == "yaml":
            try:
                import yaml  # noqa: F401  (msgspec.yaml needs PyYAML)
            except ImportError as exc:
                raise MissingDependency("pyyaml", "YAML experiment files", extra="yaml") from exc
            return msgspec.yaml.decode(data)
    except msgspec.DecodeError as exc:
        hint = " (format guessed from the content; pass format= to name it)" if guessed else ""
        raise InvalidExperiment(f"not valid {fmt.upper()}{hint}: {exc}", source=source) from exc
    raise InvalidExperiment(
        f"unknown format {fmt!r}; expected one of 'toml', 'json', 'yaml'", source=source
    )


def experiment_from_mapping(raw: object, *, source: str = "<experiment>") -> Experiment:
    """Build an :class:`Experiment` from decoded JSON-like data (``stages`` is an alias)."""
    if not isinstance(raw, dict):
        raise InvalidExperiment(
            f"expected a table/object at the top level, got {type(raw).__name__}", source=source
        )
    if "stages" in raw and "pipeline" not in raw:
        raw = {("pipeline" if k == "stages" else k): v for k, v in raw.items()}
    try:
        return msgspec.convert(raw, Experiment, strict=False)
    except InvalidExperiment as exc:
        raise InvalidExperiment(exc.errors, source=source) from exc
    except msgspec.ValidationError as exc:
        raise InvalidExperiment(describe_validation_error(exc), source=source) from exc


def load_experiment(path_or_bytes: str | Path | bytes, format: str | None = None) -> Experiment:
    """Load an :class:`Experiment` from a TOML, JSON or YAML file, or from bytes.

    The format comes from ``format`` or the file suffix (bytes starting with ``{`` are JSON,
    otherwise TOML). ``stages`` is accepted as an alias of ``pipeline``.

    Raises:
        InvalidExperiment: the file is missing or unreadable, does not parse, or does not
            match the schema; the message names the file and the field path, e.g.
            ``pipeline[2].options: expected object, got array``.
        MissingDependency: a YAML file was given and PyYAML is not installed.
    """
    if isinstance(path_or_bytes, bytes):
        source, data = "<bytes>", path_or_bytes
    else:
        source = str(path_or_bytes)
        try:
            data = Path(path_or_bytes).read_bytes()
        except OSError as exc:
            raise InvalidExperiment(f"cannot read file: {exc.strerror}", source=source) from exc
    name = None if isinstance(path_or_bytes, bytes) else source
    fmt = format.lower() if format else _detect_format(name, data)
    guessed = format is None and (name is None or Path(name).suffix.lower() not in _SUFFIXES)
    return experiment_from_mapping(_parse(data, fmt, source, guessed=guessed), source=source)
