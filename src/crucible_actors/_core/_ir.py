"""The experiment IR: frozen msgspec Structs describing what to run.

Field names follow the reference's ``crucible_ir``. An :class:`Experiment` lists
:class:`StageDef` entries in ``pipeline``; the runtime threads a Context through them.
The IR is pure data: it encodes to JSON/msgpack (a Python object given as
``StageDef.stage`` is encoded as its ``"module:qualname"`` reference) and loads from
TOML, JSON or YAML with :func:`load_experiment`.
"""

from __future__ import annotations

import inspect
import math
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
    "CacheConfig",
    "DatasetRef",
    "Experiment",
    "OutputSpec",
    "ReliabilityConfig",
    "StageDef",
    "StatsConfig",
    "Sweep",
    "load_experiment",
]

ExperimentType = Literal["evaluation", "training", "comparison", "ablation"]
RestartKind = Literal["temporary", "transient"]
Isolation = Literal["inline", "thread", "process", "ray"]
SweepMode = Literal["grid", "zip"]
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
    exception's class and its bases). ``isolation`` picks where the stage runs.

    Executors (see :mod:`crucible_actors.executors`): a stage class with ``setup()`` keeps
    ``pool`` set-up workers (process, Ray actors); ``resources`` (``num_cpus``,
    ``num_gpus``, ``memory`` in bytes, or custom names, each a number >= 0) is what a
    ``ray`` attempt asks the cluster for.

    ``cache`` turns the stage result cache on (True) or off (False) for this stage;
    None (the default) follows the experiment's ``[cache] default``. See
    :mod:`crucible_actors._core._cache` for the key and what a hit replays.
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
        if self.isolation == "process" and self.options:
            _check_no_plugin_objects(self.label, self.options, "")
        if self.pool != 1 or self.resources:
            _check_executor_fields(self)

    @property
    def label(self) -> str:
        """The name used in errors, events and records: ``name``, else the stage's own."""
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


class Sweep(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """A set of runs of one experiment over option values (the ``[sweep]`` table).

    ``parameters`` maps option paths (``"stage.option"``, the stage named by its label in
    the pipeline; ``"stage.a.b"`` sets ``options["a"]["b"]``) to the values to try.
    ``mode="grid"`` runs the product of all value lists, ``"zip"`` the i-th value of
    every list together (the lists must then be of equal length). Each point runs
    ``repeats`` times; repeat ``r`` of point ``i`` gets the seed
    ``seed + i * repeats + r`` in ``ctx.telemetry_context["seed"]``.

    In a file the parameters sit beside ``mode``/``repeats``/``seed``, as quoted dotted
    keys or nested tables::

        [sweep]
        mode = "grid"
        repeats = 3
        "call_model.temperature" = [0.0, 0.7]
        call_model.model = ["a", "b"]
    """

    parameters: dict[str, list[Any]]
    mode: SweepMode = "grid"
    repeats: int = 1
    seed: int = 0

    @property
    def size(self) -> int:
        """The number of points (runs without repeats): the grid's product or a list's length."""
        lengths = [len(v) for v in self.parameters.values()]
        if self.mode == "zip":
            return lengths[0] if lengths else 0
        return math.prod(lengths)


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


_SWEEP_SETTINGS = ("mode", "repeats", "seed")


def _flatten_paths(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten_paths(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def coerce_sweep(raw: Any) -> Sweep:
    """Build a :class:`Sweep` from its file form or from ``{"parameters": ...}``.

    Keys other than ``mode``/``repeats``/``seed`` (and ``parameters``) are option paths;
    nested tables are flattened into dotted paths.

    Raises:
        InvalidExperiment: the table is malformed; the message names the path under
            ``sweep``.
    """
    if isinstance(raw, Sweep):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidExperiment(f"sweep: expected a table/object, got {type(raw).__name__}")
    settings = {k: raw[k] for k in _SWEEP_SETTINGS if k in raw}
    params: dict[str, Any] = {}
    given = raw.get("parameters")
    if given is not None:
        if not isinstance(given, Mapping):
            raise InvalidExperiment(
                f"sweep.parameters: expected a table/object, got {type(given).__name__}"
            )
        _flatten_paths("", given, params)
    for key, value in raw.items():
        if key not in _SWEEP_SETTINGS and key != "parameters":
            _flatten_paths(str(key), value, params)
    wrong = [
        f"sweep.{path}: expected a list of values, got {type(v).__name__}"
        for path, v in params.items()
        if not isinstance(v, list | tuple)
    ]
    if wrong:
        raise InvalidExperiment(wrong)
    try:
        return msgspec.convert({**settings, "parameters": params}, Sweep, strict=False)
    except msgspec.ValidationError as exc:
        detail = describe_validation_error(exc, root="sweep")
        raise InvalidExperiment(detail.replace("sweep.parameters.", "sweep.")) from exc


def check_sweep(sweep: Sweep, pipeline: list[StageDef]) -> None:
    """Check a sweep against the pipeline it varies (the registry is checked at submit).

    Raises:
        InvalidExperiment: no parameters, an empty value list, a path naming no stage of
            the pipeline, zip lists of unequal length, or ``repeats < 1``.
    """
    errors: list[str] = []
    labels = [sd.label for sd in pipeline]
    if not sweep.parameters:
        errors.append(
            'sweep: no parameters; add option paths and values, e.g. "stage.option" = [1, 2]'
        )
    if sweep.repeats < 1:
        errors.append(f"sweep.repeats: must be >= 1, got {sweep.repeats!r}")
    for path, values in sweep.parameters.items():
        stage, _, option = path.partition(".")
        if not option:
            errors.append(
                f"sweep.{path}: an option path is 'stage.option'; got {path!r} with no option"
            )
        elif stage not in labels:
            hint = _closest(stage, labels)
            errors.append(
                f"sweep.{path}: no stage named {stage!r} in the pipeline"
                + (f"; did you mean {hint!r}?" if hint else f" (stages: {', '.join(labels)})")
            )
        if not values:
            errors.append(f"sweep.{path}: empty value list; give at least one value")
    if sweep.mode == "zip":
        lengths = {path: len(v) for path, v in sweep.parameters.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{p} has {n}" for p, n in lengths.items())
            errors.append(f"sweep: mode 'zip' needs value lists of equal length; {shown}")
    if errors:
        raise InvalidExperiment(errors)


def _closest(name: str, names: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, names, n=1)
    return found[0] if found else None


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


def is_plugin_object(value: object) -> bool:
    """Whether an option value is a Python function, class or callable object.

    Such options (a bench ``data_source``, a guardrails ``adapter``) work for stages in the
    driver process; they cross a process boundary only as ``"pkg.mod:attr"`` strings.
    """
    return isinstance(value, type) or callable(value)


def _check_no_plugin_objects(label: str, value: Any, path: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_no_plugin_objects(label, v, f"{path}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_no_plugin_objects(label, v, f"{path}[{i}]")
    elif is_plugin_object(value):
        raise InvalidExperiment(
            f"stage {label!r}: options{path} holds the "
            f"Python object {stage_ref(value)}, which cannot cross into the worker process of "
            'an isolation="process" stage; pass its "pkg.mod:attr" reference string instead '
            f"(e.g. {stage_ref(value)!r}), or run the stage inline or in a thread"
        )


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
    except RecursionError as exc:  # msgspec's JSON and tomllib recurse per nesting level
        raise InvalidExperiment(
            f"not valid {fmt.upper()}: nested too deeply to parse; flatten the structure",
            source=source,
        ) from exc
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
    if raw.get("sweep") is not None:
        try:
            raw = {**raw, "sweep": msgspec.to_builtins(coerce_sweep(raw["sweep"]))}
        except InvalidExperiment as exc:
            raise InvalidExperiment(exc.errors, source=source) from exc
    try:
        exp = msgspec.convert(raw, Experiment, strict=False)
    except InvalidExperiment as exc:
        raise InvalidExperiment(exc.errors, source=source) from exc
    except msgspec.ValidationError as exc:
        raise InvalidExperiment(describe_validation_error(exc), source=source) from exc
    except RecursionError as exc:
        raise InvalidExperiment(
            "nested too deeply to load; flatten the structure", source=source
        ) from exc
    bad = _find_wide_int(raw)
    if bad is not None:
        raise InvalidExperiment(bad, source=source)
    return exp


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _find_wide_int(raw: object) -> str | None:
    """Return ``"path: ..."`` for the first int that msgpack cannot carry, else None.

    A run's Context carries the experiment as msgpack, whose integers are 64-bit: such a
    file would load and then fail every run at submission. Iterative (files may nest deep).
    """
    stack: list[tuple[str, object]] = [("", raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not _INT_MIN <= value <= _INT_MAX
        ):
            shown = str(value) if len(str(value)) <= 30 else f"{str(value)[:27]}..."
            return (
                f"{path}: integer {shown} is out of range; integers must fit in 64 bits "
                "(-2**63 .. 2**64-1), write larger numbers as floats or strings"
            )
    return None


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
