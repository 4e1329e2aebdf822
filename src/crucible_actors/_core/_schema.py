"""Stage schemas: the canonical ``describe()`` format, its normalizer and option validation.

A stage describes its options with a plain mapping (the reference's
``Crucible.Stage.Schema``)::

    {
        "__schema_version__": "1.0.0",
        "name": "my_stage",
        "description": "Processes data according to configuration",
        "required": ["input_path"],
        "optional": ["format", "batch_size"],
        "types": {
            "input_path": "string",
            "format": ("enum", ["json", "csv"]),
            "batch_size": "integer",
        },
        "defaults": {"format": "json", "batch_size": 100},
    }

:func:`validate_schema` checks that shape, :func:`normalize_schema` upgrades legacy
shapes to it, and :func:`validate_options` checks the options a pipeline passes to a
stage. :func:`schema_from_struct` derives the schema from a stage's msgspec ``Options``
Struct, so the schema and the conversion in ``run()`` cannot drift. The registry calls
:func:`validate_schema` at registration time and the runner calls
:func:`validate_options` before a stage runs; both turn the returned messages into
:class:`SchemaError` / :class:`InvalidOptions`. Every function here is pure.

Type specs, spelled in Python: the primitives ``"string" "integer" "float" "boolean"
"atom" "map" "list" "module" "any"`` and the composites ``("struct", cls)``,
``("enum", [values])``, ``("list", spec)``, ``("map", key_spec, value_spec)``,
``("function", arity)``, ``("union", [specs])`` and ``("tuple", [specs])``. A composite
may also be a list (``["list", "string"]``), because JSON has no tuples.

Messages keep the reference wording (tools match on it); Elixir's ``inspect`` becomes
``repr``, so ``[:input]`` reads ``['input']``. An "atom" is a ``str`` that is an
identifier. Where Python differs from the BEAM, the rules are deliberately:

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
  that is how a ``T | None = None`` Struct field is described.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any, Final, Literal, get_args, get_origin, get_type_hints

import msgspec

from ._errors import SchemaError

SCHEMA_VERSION: Final = "1.0.0"

PRIMITIVE_TYPES: Final = frozenset(
    {"string", "integer", "float", "boolean", "atom", "map", "list", "module", "any"}
)

CORE_KEYS: Final = (
    "__schema_version__",
    "name",
    "description",
    "required",
    "optional",
    "types",
    "defaults",
    "version",
    "__extensions__",
)

_MODULE_EXPECTATION: Final = "module (class, module or 'pkg.mod:attr' string)"

# The spec for "the value is None", used where a Struct field admits None without
# defaulting to it (the vocabulary has no null type, but an enum of one value is exact).
_NONE_SPEC: Final = ("enum", [None])


# --- schema shape -------------------------------------------------------------------------


def validate_schema(schema: object) -> list[str]:
    """Check a schema against the canonical format.

    Returns:
        Every problem found, in the reference's order (name, description, required,
        optional, types, overlap, required types, defaults, schema version); an empty
        list means the schema is valid. Legacy shapes should go through
        :func:`normalize_schema` first.
    """
    if not isinstance(schema, Mapping):
        return ["schema must be a map"]

    errors: list[str] = []
    name = schema.get("name")
    if not _is_atom(name):
        errors.append("name is required and must be an atom")

    description = schema.get("description")
    if not (isinstance(description, str) and description):
        errors.append("description is required and must be a non-empty string")

    required = schema.get("required")
    optional = schema.get("optional")
    for field, keys in (("required", required), ("optional", optional)):
        if not isinstance(keys, list):
            errors.append(f"{field} is required and must be a list")
        elif not all(_is_atom(key) for key in keys):
            errors.append(f"{field} must be a list of atoms")

    types_ = schema.get("types")
    if isinstance(types_, Mapping):
        invalid = [key for key, spec in types_.items() if not valid_type_spec(spec)]
        if invalid:
            errors.append(f"invalid type specs for keys: {invalid!r}")
    else:
        errors.append("types is required and must be a map")

    if isinstance(required, list) and isinstance(optional, list):
        overlap = _sorted_terms(_unique(key for key in required if key in optional))
        if overlap:
            errors.append(f"keys overlap between required and optional: {overlap!r}")

    if isinstance(required, list) and isinstance(types_, Mapping):
        missing = [key for key in required if not _has_key(types_, key)]
        if missing:
            errors.append(f"required keys missing from types: {missing!r}")

    if "defaults" in schema:
        defaults = schema["defaults"]
        if not isinstance(defaults, Mapping):
            errors.append("defaults must be a map")
        elif isinstance(optional, list):
            stray = [key for key in defaults if key not in optional]
            if stray:
                errors.append(f"defaults keys must be in optional: {stray!r}")

    if "__schema_version__" in schema and not isinstance(schema["__schema_version__"], str):
        errors.append("__schema_version__ must be a string (semver format)")

    return errors


def valid_type_spec(spec: object) -> bool:
    """Tell whether ``spec`` belongs to the type-spec vocabulary (see the module docstring).

    Composite specs are checked recursively; enum values and struct classes are not.
    """
    if isinstance(spec, str):
        return spec in PRIMITIVE_TYPES
    parts = _split_composite(spec)
    if parts is None:
        return False
    match parts:
        case ("struct", [cls]):
            return isinstance(cls, type)
        case ("enum", [values]):
            return isinstance(values, list)
        case ("list", [inner]):
            return valid_type_spec(inner)
        case ("map", [key_spec, value_spec]):
            return valid_type_spec(key_spec) and valid_type_spec(value_spec)
        case ("function", [arity]):
            return _is_arity(arity)
        case ("union" | "tuple", [specs]):
            return isinstance(specs, list) and all(valid_type_spec(s) for s in specs)
    return False


def normalize_schema(schema: Mapping[str, object]) -> dict[str, object]:
    """Upgrade a legacy ``describe()`` result to the canonical shape.

    A string ``stage`` key becomes ``name`` (replacing any ``name``, as the reference
    does); missing ``required``/``optional`` become ``[]`` and missing ``types`` ``{}``;
    every non-core key moves into ``__extensions__``, merged over an existing one. The
    ``__extensions__`` key is left out when there is nothing in it. The input is not
    mutated; applying the function twice gives the same result as once.

    Raises:
        TypeError: ``__extensions__`` is present but not a mapping.
    """
    work = dict(schema)
    if isinstance(work.get("stage"), str):
        work["name"] = work.pop("stage")
    work.setdefault("required", [])
    work.setdefault("optional", [])
    work.setdefault("types", {})

    core = {key: value for key, value in work.items() if key in CORE_KEYS}
    extras = {key: value for key, value in work.items() if key not in CORE_KEYS}
    existing = core.pop("__extensions__", {})
    if not isinstance(existing, Mapping):
        raise TypeError(f"__extensions__ must be a map, got {existing!r}")
    extensions = {**existing, **extras}
    if extensions:
        core["__extensions__"] = extensions
    return core


# --- option validation --------------------------------------------------------------------


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
            if not _has_key(options, key):
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

    match _split_composite(spec):
        case ("struct", [type() as cls]):
            if not isinstance(value, cls):
                errors.append(f"{path}: expected {_qualified_name(cls)} instance, got {value!r}")
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
        case ("function", [int() as arity]) if _is_arity(arity):
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

    Mirrors the reference: the value is checked under the path ``value``, the *last*
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
    "atom": lambda v: _is_atom(v),
    "map": lambda v: isinstance(v, Mapping),
    "list": lambda v: isinstance(v, list),
    "module": _is_module_like,
    "any": lambda v: True,
}


# --- display ------------------------------------------------------------------------------


def format_type_spec(spec: object) -> str:
    """Render a type spec compactly for the CLI, e.g. ``map[string, list[integer]]``.

    Anything outside the vocabulary is rendered with ``repr``.
    """
    if isinstance(spec, str):
        return spec
    match _split_composite(spec):
        case ("struct", [type() as cls]):
            return f"struct[{_qualified_name(cls)}]"
        case ("enum", [list() as values]):
            return "enum[" + ", ".join(repr(v) for v in values) + "]"
        case ("list", [inner]):
            return f"list[{format_type_spec(inner)}]"
        case ("map", [key_spec, value_spec]):
            return f"map[{format_type_spec(key_spec)}, {format_type_spec(value_spec)}]"
        case ("function", [int() as arity]) if _is_arity(arity):
            return f"function/{arity}"
        case ("union" | "tuple" as tag, [list() as specs]):
            return f"{tag}[" + ", ".join(format_type_spec(s) for s in specs) + "]"
    return repr(spec)


# --- derivation from a msgspec Struct -------------------------------------------------------


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


# --- small helpers ------------------------------------------------------------------------


def _is_atom(value: object) -> bool:
    return isinstance(value, str) and value.isidentifier()


def _is_arity(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _split_composite(spec: object) -> tuple[str, list[object]] | None:
    """Split ``("tag", *args)`` (tuple or list) into its tag and arguments."""
    if isinstance(spec, tuple | list) and spec and isinstance(spec[0], str):
        return spec[0], list(spec[1:])
    return None


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _has_key(mapping: Mapping[Any, object], key: object) -> bool:
    try:
        return key in mapping
    except TypeError:  # an unhashable key cannot be in a dict
        return False


def _unique(items: typing.Iterable[object]) -> list[object]:
    seen: list[object] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _sorted_terms(items: list[object]) -> list[object]:
    """Sort like the reference's MapSet; mixed, unorderable terms fall back to repr order."""
    try:
        return sorted(items)  # type: ignore[type-var]
    except TypeError:
        return sorted(items, key=repr)
