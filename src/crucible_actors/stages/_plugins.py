"""Plug-in points of the built-in stages: loading ``"pkg.mod:attr"`` references and calling
user callables that may be sync or async.

``data_checks`` (``checker``), ``guardrails`` (``adapter``) and ``bench`` (``data_source``)
accept a Python object or an importable reference; this module resolves both the same way
and calls them without blocking the event loop: an async callable is awaited, a sync one
runs in a worker thread.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

import anyio.to_thread

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["call_plugin", "check_ref_or_callable", "describe_plugin", "load_ref"]


def check_ref_or_callable(option: str, value: object, *, allow_objects: bool = False) -> None:
    """Raise ``TypeError`` unless ``value`` is None, a ``"pkg.mod:attr"`` string or a callable.

    With ``allow_objects`` any non-string object passes (adapters are objects with ``scan``).
    Used by the ``Options`` Structs' ``__post_init__``, so a bad value is reported as an
    option error, by the runtime and by the ``validate`` stage alike.
    """
    if value is None:
        return
    if isinstance(value, str):
        module, sep, attr = value.partition(":")
        parts = [*module.split("."), *attr.split(".")]
        if sep and all(part.isidentifier() for part in parts):
            return
        raise TypeError(f"{option}: expected a 'pkg.mod:attr' reference, got {value!r}")
    if allow_objects or callable(value):
        return
    raise TypeError(f"{option}: expected a callable or a 'pkg.mod:attr' reference, got {value!r}")


def load_ref(ref: str, *, option: str) -> Any:
    """Import ``"pkg.mod:attr"`` (``attr`` may be dotted) and return the object.

    Blocking (it imports); call it from a worker thread in async code.

    Raises:
        ImportError: the module or attribute cannot be loaded; the message names the option.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ImportError(f"{option}: {ref!r} is not of the form 'package.module:attr'")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # a plug-in may fail to import in any way
        raise ImportError(f"{option}: cannot import module {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ImportError(
                f"{option}: module {module_name!r} has no attribute {attr!r}"
            ) from exc
    return obj


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004  (callable instances with async __call__)
    return call is not None and inspect.iscoroutinefunction(call)


async def call_plugin(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)``: awaited when async, in a worker thread when sync.

    A sync callable that returns an awaitable has that awaitable awaited too.
    """
    if _is_async(fn):
        return await fn(*args)
    result = await anyio.to_thread.run_sync(fn, *args)
    if inspect.isawaitable(result):
        return await result
    return result


def describe_plugin(obj: object) -> str:
    """Return a readable name for a plug-in object, for error messages."""
    if isinstance(obj, str):
        return obj
    target = obj if inspect.isroutine(obj) or isinstance(obj, type) else type(obj)
    module = getattr(target, "__module__", "?")
    name = getattr(target, "__qualname__", repr(target))
    return f"{module}:{name}"
