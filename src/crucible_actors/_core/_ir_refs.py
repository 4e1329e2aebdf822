"""References to Python objects in the IR, and msgspec validation errors in our words.

Leaf helpers of the experiment IR (:mod:`._ir`): a stage or a plugin option given as a
Python object travels as its ``"module:qualname"`` reference, and a msgspec
``ValidationError`` becomes a message that names the field path first. The IR Structs,
the sweep definition (:mod:`._ir_sweep`) and the loader (:mod:`._ir_load`) use them.
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any

from ._errors import InvalidExperiment

if TYPE_CHECKING:
    import msgspec

__all__ = [
    "check_no_plugin_objects",
    "describe_validation_error",
    "is_plugin_object",
    "stage_ref",
    "stage_ref_name",
]


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


def check_no_plugin_objects(label: str, value: Any, path: str) -> None:
    """Refuse Python objects in the options of a process-isolated stage, naming the path.

    Raises:
        InvalidExperiment: ``value`` holds a function, class or callable object.
    """
    if isinstance(value, dict):
        for k, v in value.items():
            check_no_plugin_objects(label, v, f"{path}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_no_plugin_objects(label, v, f"{path}[{i}]")
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
