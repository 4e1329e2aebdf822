"""The stage contract: the :class:`Stage` base class and the :func:`stage` decorator.

A stage receives the Context and its options and returns a new Context; it fails by
raising. ``run`` may be ``async def`` (runs on the event loop) or plain ``def`` (runs in
a worker thread so it never blocks the loop). Options are either a plain dict described
by ``describe()``, or a msgspec Struct declared as ``Options``: then ``describe()`` is
derived from it and ``run`` receives a validated ``Options`` instance.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar, overload

import msgspec

from ._context import Context
from ._errors import InvalidOptions, SchemaError

__all__ = ["FunctionStage", "Stage", "StageInfo", "load_stage_ref", "stage", "stage_info"]

StageResult = Context | Awaitable[Context]


class Stage:
    """Base class of pipeline stages.

    Subclasses set ``name`` and ``description`` and implement ``run(self, ctx, opts)``
    (sync or async). They either implement ``describe()`` returning the canonical schema
    dict (``name``, ``description``, ``required``, ``optional``, ``types`` and optionally
    ``defaults``), or declare ``Options`` as a msgspec Struct, from which ``describe()``
    is derived and into which ``opts`` is converted before ``run`` is called.

    A stateful stage also defines ``setup(self)`` and optionally ``teardown(self)``
    (each sync or async): ``setup`` runs once per worker before its first attempt (load a
    model once, score thousands of examples), ``teardown`` when the runtime closes; see
    :mod:`crucible_actors.executors` and ``StageDef.pool``.

    Result cache (``StageDef.cache``): ``version`` is part of the cache key, so bump it
    when a change to ``run`` changes its results; ``cacheable = False`` keeps a stage
    with side effects (files written, a model trained, a message sent) out of the cache.
    """

    __crucible_stage__: ClassVar[bool] = True
    name: str = ""
    description: str = ""
    Options: type[msgspec.Struct] | None = None
    version: str = "1"
    cacheable: bool = True

    def describe(self) -> dict[str, Any]:
        """Return the canonical schema of this stage's options.

        Raises:
            SchemaError: the class neither overrides ``describe`` nor declares ``Options``.
        """
        if self.Options is None:
            raise SchemaError(
                self.name or type(self).__name__,
                f"{type(self).__qualname__} implements neither describe() nor an Options Struct",
            )
        from ._schema_struct import schema_from_struct

        name = self.name or type(self).__name__
        own_doc = inspect.cleandoc(type(self).__dict__.get("__doc__") or "")
        description = self.description or own_doc.split("\n")[0] or name
        return schema_from_struct(name, description, self.Options)

    def run(self, ctx: Context, opts: Any) -> StageResult:
        """Run the stage on ``ctx`` with ``opts`` and return the new Context."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement run()")


class FunctionStage(Stage):
    """A stage made from a function by :func:`stage`; calling it calls the function."""

    def __init__(
        self,
        fn: Callable[[Context, Any], StageResult],
        name: str,
        description: str,
        options: type[msgspec.Struct] | None,
        schema: Mapping[str, Any] | None,
        version: str = "1",
        cacheable: bool = True,
    ) -> None:
        self.__wrapped__ = fn
        self.__module__ = fn.__module__
        self.__qualname__ = fn.__qualname__
        self.__doc__ = fn.__doc__
        self.name = name
        self.description = description or (inspect.getdoc(fn) or name).split("\n")[0]
        self.Options = options
        self._schema = dict(schema) if schema is not None else None
        self._fn = fn
        self.version = version
        self.cacheable = cacheable

    def describe(self) -> dict[str, Any]:
        """Return the schema given to :func:`stage`, or the one derived from ``options``."""
        if self._schema is not None:
            return dict(self._schema)
        if self.Options is None:
            return {
                "name": self.name,
                "description": self.description,
                "required": [],
                "optional": [],
                "types": {},
            }
        return super().describe()

    def run(self, ctx: Context, opts: Any) -> StageResult:
        """Call the wrapped function."""
        return self._fn(ctx, opts)

    def __call__(self, ctx: Context, opts: Any) -> StageResult:
        return self._fn(ctx, opts)

    def __repr__(self) -> str:
        return f"<stage {self.name!r} from {self.__module__}:{self.__qualname__}>"


F = TypeVar("F", bound=Callable[..., Any])


@overload
def stage(
    name: str,
    *,
    description: str = "",
    options: type[msgspec.Struct] | None = None,
    schema: Mapping[str, Any] | None = None,
    version: str = "1",
    cacheable: bool = True,
) -> Callable[[Callable[[Context, Any], StageResult]], FunctionStage]: ...


@overload
def stage(
    name: Callable[[Context, Any], StageResult],
) -> FunctionStage: ...


def stage(
    name: str | Callable[[Context, Any], StageResult],
    *,
    description: str = "",
    options: type[msgspec.Struct] | None = None,
    schema: Mapping[str, Any] | None = None,
    version: str = "1",
    cacheable: bool = True,
) -> FunctionStage | Callable[[Callable[[Context, Any], StageResult]], FunctionStage]:
    """Turn a function ``(ctx, opts) -> Context`` (sync or async) into a stage.

    ``@stage("name", description=..., options=SomeStruct)``; bare ``@stage`` uses the
    function's name. ``schema`` gives a dict schema when ``options`` is not used.
    ``version`` and ``cacheable`` are the result cache's (see :class:`Stage`).
    """
    if callable(name):
        fn = name
        return FunctionStage(fn, fn.__name__, "", None, None)

    def wrap(fn: Callable[[Context, Any], StageResult]) -> FunctionStage:
        return FunctionStage(fn, name, description, options, schema, str(version), cacheable)

    return wrap


def load_stage_ref(ref: str) -> Stage:
    """Import ``"package.module:attr"`` and return a stage instance.

    A class is instantiated with no arguments; an instance is returned as is.

    Raises:
        ImportError: the module or attribute cannot be loaded.
        TypeError: the attribute is not a stage (no callable ``run``).
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ImportError(f"stage reference {ref!r} is not of the form 'package.module:attr'")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ImportError(f"module {module_name!r} has no attribute {attr!r}") from exc
    return coerce_stage(obj, where=ref)


def coerce_stage(obj: Any, *, where: str) -> Stage:
    """Return a stage instance for a Stage class, a stage object, or a ref string."""
    if isinstance(obj, str):
        return load_stage_ref(obj)
    if not callable(getattr(obj, "run", None)):
        raise TypeError(
            f"{where} is not a stage: it has no run() method; subclass "
            "crucible_actors.Stage or decorate a function with @crucible_actors.stage"
        )
    if isinstance(obj, type):
        obj = obj()
    return obj  # type: ignore[no-any-return]


class StageInfo:
    """What the runner needs to know about a stage, computed once per stage object."""

    __slots__ = ("has_setup", "is_async", "name", "options_type", "stage")

    def __init__(self, stage_obj: Stage) -> None:
        self.stage = stage_obj
        run = stage_obj.run
        fn = getattr(stage_obj, "_fn", None) if isinstance(stage_obj, FunctionStage) else run
        self.is_async = inspect.iscoroutinefunction(fn)
        options = getattr(stage_obj, "Options", None)
        self.options_type: type[msgspec.Struct] | None = (
            options if isinstance(options, type) and issubclass(options, msgspec.Struct) else None
        )
        self.name = getattr(stage_obj, "name", "") or type(stage_obj).__name__
        #: A stateful stage: ``setup()`` runs once per worker before its first attempt.
        self.has_setup = callable(getattr(stage_obj, "setup", None))

    def convert_options(self, label: str, opts: Mapping[str, Any]) -> Any:
        """Return ``opts`` converted into the stage's ``Options`` Struct (or unchanged).

        Raises:
            InvalidOptions: the options do not fit the Struct.
        """
        if self.options_type is None:
            return opts
        from ._ir_refs import describe_validation_error

        try:
            return msgspec.convert(dict(opts), self.options_type, strict=False)
        except msgspec.ValidationError as exc:
            raise InvalidOptions(label, [describe_validation_error(exc)]) from exc


_info_cache: dict[int, tuple[Stage, StageInfo]] = {}


def stage_info(stage_obj: Stage) -> StageInfo:
    """Return the cached :class:`StageInfo` for ``stage_obj``."""
    key = id(stage_obj)
    hit = _info_cache.get(key)
    if hit is not None and hit[0] is stage_obj:
        return hit[1]
    info = StageInfo(stage_obj)
    if len(_info_cache) > 4096:
        _info_cache.clear()
    _info_cache[key] = (stage_obj, info)
    return info
