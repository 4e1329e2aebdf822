"""Executing one stage: resolve it, check its options, call it, check what it returned.

Shared by every runner: the stage actor of the supervised runtime and worker processes
call :func:`invoke_stage`; the run supervisor calls :func:`resolve_stage` once per stage.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from ._context import Context
from ._errors import InvalidOptions
from ._ir import stage_ref
from ._stage import Stage, StageInfo, coerce_stage, stage_info

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._ir import StageDef
    from ._registry import Registry

__all__ = [
    "ValidateMode",
    "check_validate_mode",
    "checked_result",
    "invoke_stage",
    "resolve_stage",
]

log = logging.getLogger("crucible_actors")

ValidateMode = Literal["off", "warn", "error"]
_MODES = ("off", "warn", "error")


def check_validate_mode(mode: object) -> ValidateMode:
    """Return ``mode`` if it is ``"off"``, ``"warn"`` or ``"error"``.

    Raises:
        ValueError: any other value.
    """
    if mode not in _MODES:
        raise ValueError(f"validate_options must be one of 'off', 'warn', 'error'; got {mode!r}")
    return mode  # type: ignore[return-value]


def resolve_stage(stage_def: StageDef, registry: Registry) -> Stage:
    """Return the stage a StageDef names: ``stage`` if set, else the registry entry.

    Raises:
        UnknownStage: the name is not registered.
        ImportError, TypeError: an explicit ``stage`` reference does not load or is not a stage.
    """
    if stage_def.stage is not None and stage_def.stage != "":
        where = stage_def.stage if isinstance(stage_def.stage, str) else stage_ref(stage_def.stage)
        return coerce_stage(stage_def.stage, where=where)
    assert stage_def.name is not None  # StageDef guarantees name or stage
    return registry.resolve(stage_def.name)


def prepare_options(
    label: str, stage_obj: Stage, options: Mapping[str, Any], mode: ValidateMode
) -> Any:
    """Validate ``options`` per ``mode`` and convert them for the stage.

    Raises:
        InvalidOptions: ``mode == "error"`` and the options do not match the schema, or
            the stage declares an ``Options`` Struct the options cannot be converted into.
    """
    info = stage_info(stage_obj)
    if mode != "off":
        from ._schema_options import validate_options

        errors = validate_options(options, stage_obj.describe())
        if errors:
            if mode == "error":
                raise InvalidOptions(label, errors)
            log.warning("stage %r: invalid options: %s", label, "; ".join(errors))
    return info.convert_options(label, options)


async def invoke_stage(info: StageInfo, label: str, ctx: Context, opts: Any) -> Context:
    """Call the stage and return its Context.

    A sync ``run`` runs in a worker thread (abandoned, not waited for, when the attempt is
    cancelled); an async one runs on the current loop.

    Raises:
        TypeError: the stage returned something other than a Context.
        Exception: whatever the stage raised.
    """
    result: object
    if info.is_async:
        result = await info.stage.run(ctx, opts)  # type: ignore[misc]
    else:
        # Boxed: trio refuses a thread function whose result is a coroutine, but a plain
        # ``def run`` may hand back an awaitable (``return self._arun(...)``, an async
        # callable object); that is finished here, on the loop.
        (result,) = await anyio.to_thread.run_sync(
            _call_boxed, info.stage.run, ctx, opts, abandon_on_cancel=True
        )
        if inspect.isawaitable(result):
            result = await result
    return checked_result(label, result)


def checked_result(label: str, result: object) -> Context:
    """Return ``result`` if it is a Context.

    Raises:
        TypeError: a stage returned something else.
    """
    if not isinstance(result, Context):
        raise TypeError(
            f"stage {label!r} returned {type(result).__name__}, expected a Context; "
            "return the (new) Context from run()"
        )
    return result


def _call_boxed(fn: Callable[[Context, Any], object], ctx: Context, opts: Any) -> tuple[object]:
    return (fn(ctx, opts),)
