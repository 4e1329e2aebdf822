"""Struct-to-schema: derive a stage's schema from its msgspec ``Options`` Struct.

Built-in stages declare their options once, as a Struct; ``Stage.describe()``
(:mod:`._stage`) calls :func:`schema_from_struct` to produce the canonical schema of
:mod:`._schema`, and ``run()`` converts the options into the same Struct, so the schema
and the conversion cannot drift. Each annotation maps onto the type-spec vocabulary
that :mod:`._schema_options` checks values against; one that has none is a
:class:`SchemaError` naming the field. Pure, apart from calling default factories.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any, Final, Literal, get_args, get_origin, get_type_hints

import msgspec

from ._errors import SchemaError
from ._schema import SCHEMA_VERSION

__all__ = ["schema_from_struct"]

# The spec for "the value is None", used where a Struct field admits None without
# defaulting to it (the vocabulary has no null type, but an enum of one value is exact).
_NONE_SPEC: Final = ("enum", [None])


class _UnsupportedAnnotation(Exception):
    pass


def schema_from_struct(
    name: str, description: str, options: type[msgspec.Struct]
) -> dict[str, object]:
    """Derive a canonical schema from a stage's ``Options`` Struct.

    Fields without a default are ``required`` and the others ``optional``, both in
    declaration order and under their encoded names (the names ``msgspec.convert``
    expects). ``defaults`` holds the optional fields' defaults (factories are called)
    with tuples turned into lists and enum members into their values, so the schema
    survives a JSON round trip. A ``T | None`` field whose default is ``None`` is typed
    as ``T``; other fields admitting ``None`` get ``("enum", [None])`` in a union.
    Annotations written as strings are resolved with :func:`typing.get_type_hints`.

    Raises:
        TypeError: ``options`` is not a msgspec Struct class.
        SchemaError: a field's annotation has no equivalent in the type-spec vocabulary.
    """
    if not (isinstance(options, type) and issubclass(options, msgspec.Struct)):
        raise TypeError(f"options must be a msgspec.Struct subclass, got {options!r}")
    hints = get_type_hints(options)
    required: list[str] = []
    optional: list[str] = []
    types_: dict[str, object] = {}
    defaults: dict[str, object] = {}
    for field in msgspec.structs.fields(options):
        key = field.encode_name
        if field.default is not msgspec.NODEFAULT:
            default: object = field.default
        elif field.default_factory is not msgspec.NODEFAULT:
            default = field.default_factory()
        else:
            default = msgspec.NODEFAULT
        has_default = default is not msgspec.NODEFAULT
        try:
            types_[key] = _spec_from_annotation(
                hints[field.name], none_is_default=has_default and default is None
            )
        except _UnsupportedAnnotation as exc:
            raise SchemaError(name, f"field {field.name!r}: {exc}") from None
        if has_default:
            optional.append(key)
            defaults[key] = _json_friendly(default)
        else:
            required.append(key)
    return {
        "__schema_version__": SCHEMA_VERSION,
        "name": name,
        "description": description,
        "required": required,
        "optional": optional,
        "types": types_,
        "defaults": defaults,
    }


_SEQUENCE_ORIGINS: Final = (list, Sequence, MutableSequence)
_MAPPING_ORIGINS: Final = (dict, Mapping, MutableMapping)


def _spec_from_annotation(tp: object, *, none_is_default: bool = False) -> object:
    if tp is Any or tp is object:
        return "any"
    if tp is types.NoneType:
        return _NONE_SPEC
    primitive = _PRIMITIVE_ANNOTATIONS.get(tp) if isinstance(tp, type) else None
    if primitive is not None:
        return primitive

    origin, args = get_origin(tp), get_args(tp)
    if origin is typing.Annotated:
        return _spec_from_annotation(args[0], none_is_default=none_is_default)
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in args if arg is not types.NoneType]
        specs = [_spec_from_annotation(member) for member in members]
        if len(members) < len(args) and not none_is_default:
            specs.append(_NONE_SPEC)
        return specs[0] if len(specs) == 1 else ("union", specs)
    if origin is Literal:
        return ("enum", list(args))
    if origin in _SEQUENCE_ORIGINS:
        return ("list", _spec_from_annotation(args[0])) if args else "list"
    if origin is tuple:
        if not args:
            return "list"
        if len(args) == 2 and args[1] is Ellipsis:
            return ("list", _spec_from_annotation(args[0]))
        return ("tuple", [_spec_from_annotation(arg) for arg in args])
    if origin in _MAPPING_ORIGINS:
        if not args:
            return "map"
        return ("map", _spec_from_annotation(args[0]), _spec_from_annotation(args[1]))
    if origin is Callable:
        if not args or args[0] is Ellipsis:
            return "any"
        return ("function", len(args[0]))
    if origin is type:
        return "module"
    if origin is not None:
        raise _UnsupportedAnnotation(f"no type spec for the annotation {tp!r}")

    if isinstance(tp, typing.NewType):
        return _spec_from_annotation(tp.__supertype__, none_is_default=none_is_default)
    if tp in _SEQUENCE_ORIGINS or tp is tuple:
        return "list"
    if tp in _MAPPING_ORIGINS:
        return "map"
    if tp is Callable:
        return "any"
    if tp is type:
        return "module"
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return ("enum", [member.value for member in tp])
        # Struct subclasses and any other class: the value must be an instance.
        return ("struct", tp)
    raise _UnsupportedAnnotation(f"no type spec for the annotation {tp!r}")


_PRIMITIVE_ANNOTATIONS: Final[dict[type, str]] = {
    str: "string",
    int: "integer",
    float: "float",
    bool: "boolean",
}


def _json_friendly(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_json_friendly(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_friendly(item) for key, item in value.items()}
    return value
