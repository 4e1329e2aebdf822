"""Option validation: check the options a pipeline passes to a stage against its schema.

The schema is the format of :mod:`._schema` (normalized with its
:func:`~._schema.normalize_schema` first); :func:`validate_options` walks the given
options against its type specs and returns messages. The runner calls it before a
stage runs and turns the messages into :class:`InvalidOptions`; the ``validate`` stage
and the ``serve`` submission check report the same messages. Every function here is
pure.

Messages keep CrucibleFramework's ``Stage.Validator`` wording word for word (tools match
on it); Elixir's ``inspect`` becomes ``repr``. Where Python differs from the BEAM, the
rules are deliberately:

- ``"integer"`` accepts ``int`` but not ``bool``; ``"float"`` accepts ``float`` and
  ``int`` (the numeric tower) but not ``bool``; ``"boolean"`` accepts only ``bool``.
- ``"map"`` accepts any ``Mapping``; ``"list"`` and ``("list", spec)`` only a ``list``.
- ``"module"`` accepts a module object, a class, or an importable-looking string
  ``"pkg.mod"`` / ``"pkg.mod:attr"``; the string is checked by syntax only, never
  imported.
- ``("struct", cls)`` is an ``isinstance`` check against any class.
- ``("enum", values)`` compares with ``==``, except that a ``bool`` never equals a
  non-``bool`` (``True`` is not ``1``).
- ``("function", n)`` accepts a callable that can be called with exactly ``n``
  positional arguments (``*args`` absorbs any surplus, defaults cover a shortfall); the
  reported arity is the number of positional parameters without a default. A callable
  whose signature cannot be inspected (some builtins) is accepted.
- ``("tuple", specs)`` accepts a ``tuple`` or a ``list`` of the right size.
- ``None`` passes for a key listed in ``optional`` whose ``defaults`` entry is ``None``:
  that is how a ``T | None = None`` Struct field is described (see :mod:`._schema_struct`).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from ._schema import (
    PRIMITIVE_TYPES,
    has_key,
    is_arity,
    is_atom,
    normalize_schema,
    qualified_name,
    split_composite,
)

__all__ = ["validate_options"]

_MODULE_EXPECTATION: Final = "module (class, module or 'pkg.mod:attr' string)"


def validate_options(
    opts: Mapping[str, object] | Sequence[tuple[str, object]] | None,
    schema: Mapping[str, object],
) -> list[str]:
    """Check the options given to a stage against its schema.

    The schema is normalized first and assumed to be valid (malformed ``required`` or
    ``types`` entries are skipped rather than reported; that is
    :func:`validate_schema`'s job). Options may be a mapping, a list of ``(key, value)``
    pairs or ``None``. Keys the schema does not mention are allowed.

    Returns:
        ``missing required option: KEY`` for each absent required key in schema order,
        then the type errors of the given options in their order; empty when valid.

    Raises:
        TypeError: ``opts`` is none of the accepted shapes, or ``__extensions__`` is not
            a mapping.
    """
    canonical = normalize_schema(schema)
    options = _options_as_mapping(opts)
    required = canonical["required"]
    optional = canonical["optional"]
    types_ = canonical["types"]
    defaults = canonical.get("defaults")

    errors: list[str] = []
    if isinstance(required, list):
        for key in required:
            if not has_key(options, key):
                errors.append(f"missing required option: {key}")

    if not isinstance(types_, Mapping):
        return errors
    for key, value in options.items():
        spec = types_.get(key)
        if spec is None:
            continue
        if (
            value is None
            and isinstance(optional, list)
            and key in optional
            and isinstance(defaults, Mapping)
            and key in defaults
            and defaults[key] is None
        ):
            continue
        _check(str(key), value, spec, errors)
    return errors


def _options_as_mapping(
    opts: Mapping[str, object] | Sequence[tuple[str, object]] | None,
) -> Mapping[str, object]:
    if opts is None:
        return {}
    if isinstance(opts, Mapping):
        return opts
    if isinstance(opts, Sequence) and not isinstance(opts, str | bytes):
        return dict(opts)
    raise TypeError(
        f"options must be a mapping, a list of (key, value) pairs or None, "
        f"got {type(opts).__name__}"
    )


def _check(path: str, value: object, spec: object, errors: list[str]) -> None:
    """Append the errors of ``value`` against ``spec`` to ``errors``, located at ``path``."""
    if isinstance(spec, str):
        if spec not in PRIMITIVE_TYPES:
            errors.append(f"{path}: unknown type spec {spec!r}")
        elif not _PRIMITIVE_CHECKS[spec](value):
            expected = _MODULE_EXPECTATION if spec == "module" else spec
            errors.append(f"{path}: expected {expected}, got {value!r}")
        return

    match split_composite(spec):
        case ("struct", [type() as cls]):
            if not isinstance(value, cls):
                errors.append(f"{path}: expected {qualified_name(cls)} instance, got {value!r}")
        case ("enum", [list() as values]):
            if not _enum_contains(values, value):
                errors.append(f"{path}: expected one of {values!r}, got {value!r}")
        case ("list", [inner]):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if (message := _single_error(item, inner)) is not None:
                        errors.append(f"{path}[{index}]: {message}")
            else:
                errors.append(f"{path}: expected list, got {value!r}")
        case ("map", [key_spec, value_spec]):
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if (message := _single_error(key, key_spec)) is not None:
                        errors.append(f"{path} key: {message}")
                    if (message := _single_error(item, value_spec)) is not None:
                        errors.append(f"{path}[{key!r}]: {message}")
            else:
                errors.append(f"{path}: expected map, got {value!r}")
        case ("function", [int() as arity]) if is_arity(arity):
            _check_function(path, value, arity, errors)
        case ("union", [list() as specs]):
            if all(_single_error(value, s) is not None for s in specs):
                errors.append(f"{path}: value {value!r} doesn't match any type in union {specs!r}")
        case ("tuple", [list() as specs]):
            if not isinstance(value, tuple | list):
                errors.append(f"{path}: expected tuple of size {len(specs)}, got {value!r}")
            elif len(value) != len(specs):
                errors.append(f"{path}: expected tuple of size {len(specs)}, got size {len(value)}")
            else:
                for index, (item, item_spec) in enumerate(zip(value, specs, strict=True)):
                    if (message := _single_error(item, item_spec)) is not None:
                        errors.append(f"{path}[{index}]: {message}")
        case _:
            errors.append(f"{path}: unknown type spec {spec!r}")


def _single_error(value: object, spec: object) -> str | None:
    """Return the message for a nested value, or None when it conforms.

    Mirrors CrucibleFramework: the value is checked under the path ``value``, the *last*
    error wins and every ``value: `` is stripped, so a doubly nested list reads
    ``items[0]: value[1]: expected integer, got 'x'``.
    """
    errors: list[str] = []
    _check("value", value, spec, errors)
    if not errors:
        return None
    return errors[-1].replace("value: ", "")


def _check_function(path: str, value: object, arity: int, errors: list[str]) -> None:
    if not callable(value):
        errors.append(f"{path}: expected function with arity {arity}, got {value!r}")
        return
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return  # No introspectable signature (some builtins): give it the benefit of doubt.
    minimum = maximum = 0
    unbounded = keyword_required = False
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            maximum += 1
            if parameter.default is parameter.empty:
                minimum += 1
        elif parameter.kind is parameter.VAR_POSITIONAL:
            unbounded = True
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            keyword_required = True
    fits = minimum <= arity and (unbounded or arity <= maximum) and not keyword_required
    if not fits:
        errors.append(f"{path}: expected function with arity {arity}, got arity {minimum}")


def _is_module_like(value: object) -> bool:
    if isinstance(value, types.ModuleType | type):
        return True
    if not isinstance(value, str):
        return False
    module, colon, attribute = value.partition(":")
    parts = [module, attribute] if colon else [module]
    return all(name.isidentifier() for part in parts for name in part.split("."))


def _enum_contains(values: list[object], value: object) -> bool:
    is_bool = isinstance(value, bool)
    return any(isinstance(c, bool) is is_bool and c == value for c in values)


_PRIMITIVE_CHECKS: Final[dict[str, Callable[[object], bool]]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, float | int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "atom": lambda v: is_atom(v),
    "map": lambda v: isinstance(v, Mapping),
    "list": lambda v: isinstance(v, list),
    "module": _is_module_like,
    "any": lambda v: True,
}
