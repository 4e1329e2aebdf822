"""The stage schema format: the canonical ``describe()`` shape and its type specs.

A stage describes its options with a plain mapping (CrucibleFramework's
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
shapes to it, :func:`valid_type_spec` tells a type spec from anything else and
:func:`format_type_spec` renders one for the CLI. The registry calls
:func:`validate_schema` at registration time and turns its messages into
:class:`SchemaError`. Two neighbours build on this module: :mod:`._schema_options`
checks the options a pipeline passes against a schema, and :mod:`._schema_struct`
derives a schema from a stage's msgspec ``Options`` Struct. The small predicates on
specs (:func:`split_composite`, :func:`is_atom`, :func:`is_arity`, ...) are shared
with both. Every function here is pure.

Type specs, spelled in Python: the primitives ``"string" "integer" "float" "boolean"
"atom" "map" "list" "module" "any"`` and the composites ``("struct", cls)``,
``("enum", [values])``, ``("list", spec)``, ``("map", key_spec, value_spec)``,
``("function", arity)``, ``("union", [specs])`` and ``("tuple", [specs])``. A composite
may also be a list (``["list", "string"]``), because JSON has no tuples. What each spec
accepts is :mod:`._schema_options`'s business.

Messages keep CrucibleFramework's wording (tools match on it); Elixir's ``inspect`` becomes
``repr``, so ``[:input]`` reads ``['input']``. An "atom" is a ``str`` that is an
identifier.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, Final

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


# --- schema shape -------------------------------------------------------------------------


def validate_schema(schema: object) -> list[str]:
    """Check a schema against the canonical format.

    Returns:
        Every problem found, in CrucibleFramework's order (name, description, required,
        optional, types, overlap, required types, defaults, schema version); an empty
        list means the schema is valid. Legacy shapes should go through
        :func:`normalize_schema` first.
    """
    if not isinstance(schema, Mapping):
        return ["schema must be a map"]

    errors: list[str] = []
    name = schema.get("name")
    if not is_atom(name):
        errors.append("name is required and must be an atom")

    description = schema.get("description")
    if not (isinstance(description, str) and description):
        errors.append("description is required and must be a non-empty string")

    required = schema.get("required")
    optional = schema.get("optional")
    for field, keys in (("required", required), ("optional", optional)):
        if not isinstance(keys, list):
            errors.append(f"{field} is required and must be a list")
        elif not all(is_atom(key) for key in keys):
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
        missing = [key for key in required if not has_key(types_, key)]
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
    parts = split_composite(spec)
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
            return is_arity(arity)
        case ("union" | "tuple", [specs]):
            return isinstance(specs, list) and all(valid_type_spec(s) for s in specs)
    return False


def normalize_schema(schema: Mapping[str, object]) -> dict[str, object]:
    """Upgrade a legacy ``describe()`` result to the canonical shape.

    A string ``stage`` key becomes ``name`` (replacing any ``name``, as CrucibleFramework
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


def _unique(items: typing.Iterable[object]) -> list[object]:
    seen: list[object] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _sorted_terms(items: list[object]) -> list[object]:
    """Sort like CrucibleFramework's MapSet; mixed, unorderable terms fall back to repr order."""
    try:
        return sorted(items)  # type: ignore[type-var]
    except TypeError:
        return sorted(items, key=repr)


# --- display ------------------------------------------------------------------------------


def format_type_spec(spec: object) -> str:
    """Render a type spec compactly for the CLI, e.g. ``map[string, list[integer]]``.

    Anything outside the vocabulary is rendered with ``repr``.
    """
    if isinstance(spec, str):
        return spec
    match split_composite(spec):
        case ("struct", [type() as cls]):
            return f"struct[{qualified_name(cls)}]"
        case ("enum", [list() as values]):
            return "enum[" + ", ".join(repr(v) for v in values) + "]"
        case ("list", [inner]):
            return f"list[{format_type_spec(inner)}]"
        case ("map", [key_spec, value_spec]):
            return f"map[{format_type_spec(key_spec)}, {format_type_spec(value_spec)}]"
        case ("function", [int() as arity]) if is_arity(arity):
            return f"function/{arity}"
        case ("union" | "tuple" as tag, [list() as specs]):
            return f"{tag}[" + ", ".join(format_type_spec(s) for s in specs) + "]"
    return repr(spec)


# --- predicates shared with _schema_options -------------------------------------------------


def is_atom(value: object) -> bool:
    """Tell whether ``value`` is an "atom": a ``str`` that is an identifier."""
    return isinstance(value, str) and value.isidentifier()


def is_arity(value: object) -> bool:
    """Tell whether ``value`` is a function arity: an ``int`` >= 0 that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def split_composite(spec: object) -> tuple[str, list[object]] | None:
    """Split ``("tag", *args)`` (tuple or list) into its tag and arguments."""
    if isinstance(spec, tuple | list) and spec and isinstance(spec[0], str):
        return spec[0], list(spec[1:])
    return None


def qualified_name(cls: type) -> str:
    """Return ``module.QualName``, the way messages and the CLI name a struct class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def has_key(mapping: Mapping[Any, object], key: object) -> bool:
    """Tell whether ``key`` is in ``mapping``, False for an unhashable key."""
    try:
        return key in mapping
    except TypeError:  # an unhashable key cannot be in a dict
        return False
