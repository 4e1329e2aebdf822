"""The stage registry: names to stages, an explicit object rather than global state.

:meth:`Registry.default` holds the built-in stages, stages advertised under the
entry-point group ``crucible_actors.stages``, and the ``[stages]`` table of the project
configuration (``crucible.toml`` or ``[tool.crucible]`` in ``pyproject.toml``, the nearest
at or above the working directory; see :mod:`._config`). Stages given as reference
strings are imported on first use, so a broken plug-in only fails when it is asked for.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ._config import ConfigFileError, find_config
from ._errors import DuplicateStage, SchemaError, UnknownStage
from ._stage import Stage, coerce_stage

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["BUILTIN_STAGES", "ENTRY_POINT_GROUP", "Registry"]

log = logging.getLogger("crucible_actors")

ENTRY_POINT_GROUP = "crucible_actors.stages"

#: The registry of the run whose stage is executing (set by the stage actor), so stages
#: such as ``validate`` check names against the registry the run actually uses.
current_registry: contextvars.ContextVar[Registry | None] = contextvars.ContextVar(
    "crucible_current_registry", default=None
)

#: Built-in stages, by name, as import references (filled in as they are implemented).
BUILTIN_STAGES: dict[str, str] = {
    "validate": "crucible_actors.stages.validate:ValidateStage",
    "data_checks": "crucible_actors.stages.data_checks:DataChecksStage",
    "guardrails": "crucible_actors.stages.guardrails:GuardrailsStage",
    "bench": "crucible_actors.stages.bench:BenchStage",
    "report": "crucible_actors.stages.report:ReportStage",
    "mlflow_log": "crucible_actors.stages.mlflow_log:MlflowLogStage",
}


def _check_stage(stage_obj: Any, name: str) -> dict[str, Any]:
    """Validate a stage's contract and return its normalized schema."""
    from ._schema import normalize_schema, validate_schema

    if not callable(getattr(stage_obj, "run", None)):
        raise SchemaError(name, f"{type(stage_obj).__qualname__} does not implement run()")
    describe = getattr(stage_obj, "describe", None)
    if not callable(describe):
        raise SchemaError(name, f"{type(stage_obj).__qualname__} does not implement describe()")
    try:
        schema = describe()
    except SchemaError:
        raise
    except Exception as exc:
        raise SchemaError(name, f"describe() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(schema, Mapping):
        raise SchemaError(name, f"describe() returned {type(schema).__name__}, expected dict")
    try:
        normalized = normalize_schema(schema)
    except TypeError as exc:
        raise SchemaError(name, str(exc)) from exc
    errors = validate_schema(normalized)
    if errors:
        raise SchemaError(name, errors)
    return normalized


class Registry:
    """Maps stage names to stages.

    ``Registry()`` is empty; :meth:`default` is pre-filled. Registering a taken name raises
    :class:`DuplicateStage` unless ``replace=True``.
    """

    def __init__(self) -> None:
        self._entries: dict[str, Stage | str] = {}
        self._schemas: dict[str, dict[str, Any]] = {}

    @classmethod
    def default(cls, *, cwd: str | Path | None = None) -> Registry:
        """Return a registry with the built-ins, entry-point stages and the project config.

        The config is the nearest ``crucible.toml`` or ``pyproject.toml`` with a
        ``[tool.crucible]`` table at or above ``cwd`` (default: the working directory);
        its ``stages`` table maps names to ``"pkg.mod:attr"`` references.

        Raises:
            SchemaError: the config file is unreadable or its stages table is malformed.
        """
        reg = cls()
        for name, ref in BUILTIN_STAGES.items():
            reg._entries[name] = ref
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            reg._entries[ep.name] = ep.value
        try:
            config = find_config(cwd)
            stages = config.table("stages") if config is not None else {}
        except ConfigFileError as exc:
            raise SchemaError(exc.path.name, str(exc)) from exc
        for name, ref in stages.items():
            if not isinstance(ref, str):
                assert config is not None
                raise SchemaError(
                    name,
                    f"{config.path}: {config.table_name('stages')} {name} must be a "
                    "'pkg.mod:attr' string",
                )
            reg._entries[name] = ref
        return reg

    def register(self, stage: Any, name: str | None = None, *, replace: bool = False) -> Stage:
        """Register ``stage`` (class, instance, ``@stage`` function or ref string).

        The name defaults to the stage's ``name`` attribute, else its schema's name.
        The stage is checked now: it must implement ``run`` and a valid ``describe()``.

        Raises:
            DuplicateStage: the name is taken and ``replace`` is false.
            SchemaError: the stage's contract or schema is invalid.
        """
        where = stage if isinstance(stage, str) else getattr(stage, "__qualname__", repr(stage))
        try:
            obj = coerce_stage(stage, where=str(where))
        except (ImportError, TypeError) as exc:
            raise SchemaError(name or str(where), str(exc)) from exc
        label = name or getattr(obj, "name", "") or ""
        schema = _check_stage(obj, label or str(where))
        label = label or str(schema["name"])
        if label in self._entries and not replace:
            raise DuplicateStage(label)
        self._entries[label] = obj
        self._schemas[label] = schema
        return obj

    def resolve(self, name: str) -> Stage:
        """Return the stage registered as ``name``, importing it on first use.

        Raises:
            UnknownStage: nothing is registered under ``name``.
            ImportError, TypeError: a registered reference does not load.
        """
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownStage(name, known=self.names())
        if isinstance(entry, str):
            try:
                obj = coerce_stage(entry, where=entry)
            except ImportError as exc:
                raise ImportError(
                    f"stage {name!r} is registered as {entry!r}, which cannot be imported: "
                    f"{exc}; install the plug-in or fix the reference"
                ) from exc
            self._entries[name] = obj
            return obj
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._entries)

    def schema(self, name: str) -> dict[str, Any]:
        """Return the normalized schema of stage ``name``.

        Raises:
            UnknownStage: nothing is registered under ``name``.
            SchemaError: the stage's ``describe()`` is invalid.
        """
        cached = self._schemas.get(name)
        if cached is not None:
            return cached
        schema = _check_stage(self.resolve(name), name)
        self._schemas[name] = schema
        return schema

    def schemas(self) -> list[tuple[str, Stage, dict[str, Any]]]:
        """Return ``(name, stage, normalized_schema)`` for every stage, sorted by name."""
        return [(n, self.resolve(n), self.schema(n)) for n in self.names()]

    def copy(self) -> Registry:
        """Return an independent registry with the same entries."""
        new = Registry()
        new._entries = dict(self._entries)
        new._schemas = dict(self._schemas)
        return new
