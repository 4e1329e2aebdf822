"""Tests for the canonical stage schema, its normalizer and option validation."""

from __future__ import annotations

import copy
import enum
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crucible_actors._core._errors import SchemaError
from crucible_actors._core._schema import (
    CORE_KEYS,
    PRIMITIVE_TYPES,
    format_type_spec,
    normalize_schema,
    valid_type_spec,
    validate_schema,
)
from crucible_actors._core._schema_options import validate_options
from crucible_actors._core._schema_struct import schema_from_struct


class Point(msgspec.Struct):
    x: int = 0
    y: int = 0


class Color(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


POINT = f"{Point.__module__}.Point"


def _schema(**types_: object) -> dict[str, object]:
    """A valid schema whose options are all optional and typed as given."""
    return {
        "name": "t",
        "description": "test stage",
        "required": [],
        "optional": list(types_),
        "types": dict(types_),
    }


def _errors(spec: object, value: object, key: str = "x") -> list[str]:
    return validate_options({key: value}, _schema(**{key: spec}))


# --- valid_type_spec ----------------------------------------------------------------------

VALID_SPECS: list[object] = [
    *sorted(PRIMITIVE_TYPES),
    ("struct", Point),
    ["struct", int],
    ("enum", []),
    ("enum", [1, "a", None]),
    ("list", "string"),
    ["list", "string"],
    ("list", ("list", "integer")),
    ("map", "string", "any"),
    ["map", "atom", ["list", "float"]],
    ("function", 0),
    ("function", 3),
    ("union", []),
    ("union", ["string", ("list", "integer")]),
    ("tuple", []),
    ("tuple", ["string", "integer"]),
    ["tuple", [["list", "string"]]],
]

INVALID_SPECS: list[object] = [
    "bogus",
    "String",
    None,
    1,
    (),
    [],
    {"list": "string"},
    ("string",),
    ("nope", "string"),
    ("struct", "Point"),
    ("struct", Point, 1),
    ("enum", ("a", "b")),
    ("enum", "ab"),
    ("list",),
    ("list", "bogus"),
    ("list", "string", "integer"),
    ("map", "string"),
    ("map", "string", "bogus"),
    ("function", -1),
    ("function", True),
    ("function", 1.0),
    ("union", ("string",)),
    ("union", ["string", "bogus"]),
    ("tuple", "string"),
    ("tuple", [("list", "bogus")]),
]


@pytest.mark.parametrize("spec", VALID_SPECS, ids=repr)
def test_valid_type_spec_accepts_vocabulary(spec: object) -> None:
    assert valid_type_spec(spec) is True


@pytest.mark.parametrize("spec", INVALID_SPECS, ids=repr)
def test_valid_type_spec_rejects_everything_else(spec: object) -> None:
    assert valid_type_spec(spec) is False


# --- validate_schema ----------------------------------------------------------------------


def test_validate_schema_accepts_minimal_schema() -> None:
    assert validate_schema(_schema()) == []


def test_validate_schema_rejects_non_mapping() -> None:
    assert validate_schema([("name", "t")]) == ["schema must be a map"]


def test_validate_schema_reports_empty_schema_in_reference_order() -> None:
    assert validate_schema({}) == [
        "name is required and must be an atom",
        "description is required and must be a non-empty string",
        "required is required and must be a list",
        "optional is required and must be a list",
        "types is required and must be a map",
    ]


def test_validate_schema_reports_content_problems_in_reference_order() -> None:
    schema = {
        "name": "not an atom",
        "description": "",
        "required": ["input", 3],
        "optional": ["mode", "input"],
        "types": {"a": "bogus", "mode": "string", "b": ("list", "nope")},
        "defaults": {"unknown_key": 1, "mode": "x"},
        "__schema_version__": 1,
    }
    assert validate_schema(schema) == [
        "name is required and must be an atom",
        "description is required and must be a non-empty string",
        "required must be a list of atoms",
        "invalid type specs for keys: ['a', 'b']",
        "keys overlap between required and optional: ['input']",
        "required keys missing from types: ['input', 3]",
        "defaults keys must be in optional: ['unknown_key']",
        "__schema_version__ must be a string (semver format)",
    ]


def test_validate_schema_reports_wrong_container_types() -> None:
    schema = {
        "name": 5,
        "description": 5,
        "required": "input",
        "optional": [1],
        "types": [],
        "defaults": [],
    }
    assert validate_schema(schema) == [
        "name is required and must be an atom",
        "description is required and must be a non-empty string",
        "required is required and must be a list",
        "optional must be a list of atoms",
        "types is required and must be a map",
        "defaults must be a map",
    ]


def test_validate_schema_sorts_overlapping_keys() -> None:
    schema = _schema(a="string", b="string") | {"required": ["b", "a"]}
    assert validate_schema(schema) == ["keys overlap between required and optional: ['a', 'b']"]


def test_validate_schema_rejects_none_defaults() -> None:
    assert validate_schema(_schema() | {"defaults": None}) == ["defaults must be a map"]


def test_validate_schema_skips_defaults_keys_when_optional_is_not_a_list() -> None:
    schema = _schema() | {"optional": None, "defaults": {"k": 1}}
    assert validate_schema(schema) == ["optional is required and must be a list"]


def test_validate_schema_accepts_full_schema_with_extensions() -> None:
    schema = _schema(mode=("enum", ["a", "b"])) | {
        "__schema_version__": "1.0.0",
        "required": ["input"],
        "types": {"input": "string", "mode": ("enum", ["a", "b"])},
        "defaults": {"mode": "a"},
        "version": "0.2.0",
        "__extensions__": {"anything": [1, 2]},
    }
    assert validate_schema(schema) == []


# --- normalize_schema ---------------------------------------------------------------------


def test_normalize_turns_stage_into_name_and_fills_in_fields() -> None:
    assert normalize_schema({"stage": "my_stage", "description": "My stage"}) == {
        "name": "my_stage",
        "description": "My stage",
        "required": [],
        "optional": [],
        "types": {},
    }


def test_normalize_lets_stage_win_over_name() -> None:
    result = normalize_schema({"name": "old", "stage": "new", "description": "d"})
    assert result["name"] == "new"
    assert "stage" not in result


def test_normalize_keeps_non_string_stage_as_extension() -> None:
    result = normalize_schema({"name": "n", "stage": 3})
    assert result["name"] == "n"
    assert result["__extensions__"] == {"stage": 3}


def test_normalize_keeps_existing_core_fields() -> None:
    schema = {
        "__schema_version__": "1.0.0",
        "name": "n",
        "description": "d",
        "required": ["a"],
        "optional": ["b"],
        "types": {"a": "string", "b": "integer"},
        "defaults": {"b": 1},
        "version": "2.0.0",
    }
    assert normalize_schema(schema) == schema


def test_normalize_moves_extras_into_extensions_with_extras_winning() -> None:
    schema = {"name": "n", "__extensions__": {"a": 1, "b": 2}, "b": 3, "strategies": ["x"]}
    assert normalize_schema(schema)["__extensions__"] == {"a": 1, "b": 3, "strategies": ["x"]}


def test_normalize_drops_empty_extensions() -> None:
    assert "__extensions__" not in normalize_schema({"name": "n", "__extensions__": {}})


def test_normalize_does_not_mutate_input() -> None:
    schema = {"stage": "s", "extra": {"k": [1]}, "__extensions__": {"a": 1}}
    before = copy.deepcopy(schema)
    result = normalize_schema(schema)
    assert schema == before
    assert result is not schema
    assert result["__extensions__"] is not schema["__extensions__"]


def test_normalize_rejects_non_mapping_extensions() -> None:
    with pytest.raises(TypeError, match=r"^__extensions__ must be a map, got \[1\]$"):
        normalize_schema({"name": "n", "__extensions__": [1]})


# --- validate_options: presence and order -------------------------------------------------


def test_validate_options_reports_missing_required_in_schema_order_then_type_errors() -> None:
    schema = {
        "name": "t",
        "description": "d",
        "required": ["c", "a", "b"],
        "optional": [],
        "types": {"a": "integer", "b": "integer", "c": "integer", "d": "string"},
    }
    opts = {"d": 1, "unknown": object(), "b": "x"}
    assert validate_options(opts, schema) == [
        "missing required option: c",
        "missing required option: a",
        "d: expected string, got 1",
        "b: expected integer, got 'x'",
    ]


def test_validate_options_accepts_none_and_pairs() -> None:
    schema = _schema(a="integer") | {
        "required": ["input"],
        "types": {"input": "string", "a": "integer"},
    }
    assert validate_options(None, schema) == ["missing required option: input"]
    assert validate_options([("input", "x"), ("a", "y")], schema) == [
        "a: expected integer, got 'y'"
    ]


def test_validate_options_normalizes_legacy_schema() -> None:
    legacy = {"stage": "s", "description": "d", "types": {"a": "integer"}, "extra": 1}
    assert validate_options({"a": "x"}, legacy) == ["a: expected integer, got 'x'"]
    assert validate_options({}, legacy) == []


def test_validate_options_rejects_unsupported_options_shape() -> None:
    with pytest.raises(TypeError, match=r"got str$"):
        validate_options("input=x", _schema())  # type: ignore[arg-type]


# --- validate_options: primitives ---------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        ("string", "s", None),
        ("string", 1, "x: expected string, got 1"),
        ("string", b"s", "x: expected string, got b's'"),
        ("integer", 1, None),
        ("integer", True, "x: expected integer, got True"),
        ("integer", 1.0, "x: expected integer, got 1.0"),
        ("float", 1.5, None),
        ("float", 1, None),
        ("float", False, "x: expected float, got False"),
        ("float", "x", "x: expected float, got 'x'"),
        ("boolean", True, None),
        ("boolean", 1, "x: expected boolean, got 1"),
        ("atom", "snake_case", None),
        ("atom", "not an atom", "x: expected atom, got 'not an atom'"),
        ("atom", None, "x: expected atom, got None"),
        ("map", {"a": 1}, None),
        ("map", types.MappingProxyType({}), None),
        ("map", [("a", 1)], "x: expected map, got [('a', 1)]"),
        ("list", [1, "a"], None),
        ("list", (1,), "x: expected list, got (1,)"),
        ("any", object, None),
        ("any", None, None),
    ],
)
def test_primitive_types_follow_python_rules(spec: str, value: object, message: str | None) -> None:
    assert _errors(spec, value) == ([] if message is None else [message])


@pytest.mark.parametrize(
    "value", [types, Point, "pkg.mod:attr", "pkg.mod", "pkg", "pkg.mod:Cls.method"], ids=repr
)
def test_module_accepts_modules_classes_and_import_strings(value: object) -> None:
    assert _errors("module", value) == []


@pytest.mark.parametrize(
    "value", ["pkg.mod:", ":attr", "1pkg", "pkg..mod", "a:b:c", "pkg mod", "", 42], ids=repr
)
def test_module_rejects_other_values(value: object) -> None:
    assert _errors("module", value) == [
        f"x: expected module (class, module or 'pkg.mod:attr' string), got {value!r}"
    ]


def test_unknown_type_spec_is_reported() -> None:
    assert _errors("bogus", 1) == ["x: unknown type spec 'bogus'"]
    assert _errors(("enum", "ab"), "a") == ["x: unknown type spec ('enum', 'ab')"]
    assert _errors(("function", -1), len) == ["x: unknown type spec ('function', -1)"]
    assert _errors(["nope"], 1) == ["x: unknown type spec ['nope']"]


# --- validate_options: composites ---------------------------------------------------------


def test_struct_checks_isinstance() -> None:
    assert _errors(("struct", Point), Point(1, 2)) == []
    assert _errors(("struct", Point), {"x": 1}) == [f"x: expected {POINT} instance, got {{'x': 1}}"]


def test_enum_checks_membership_without_bool_int_confusion() -> None:
    assert _errors(("enum", ["a", "b", "c"]), "b") == []
    assert _errors(("enum", ["a", "b", "c"]), "d") == [
        "x: expected one of ['a', 'b', 'c'], got 'd'"
    ]
    assert _errors(("enum", [1, 2]), True) == ["x: expected one of [1, 2], got True"]
    assert _errors(("enum", [True]), 1) == ["x: expected one of [True], got 1"]
    assert _errors(("enum", [0.0]), False) == ["x: expected one of [0.0], got False"]
    assert _errors(("enum", [1, True]), True) == []
    assert _errors(("enum", ["red"]), Color.RED) == []


def test_typed_list_reports_each_bad_item() -> None:
    assert _errors(("list", "integer"), [1, "two", 3, None], key="items") == [
        "items[1]: expected integer, got 'two'",
        "items[3]: expected integer, got None",
    ]
    assert _errors(["list", "integer"], (1, 2), key="items") == ["items: expected list, got (1, 2)"]


def test_nested_values_keep_the_references_last_error_and_value_prefix() -> None:
    nested = ("list", ("list", "integer"))
    assert _errors(nested, [[1, "x", "y"], [2]], key="items") == [
        "items[0]: value[2]: expected integer, got 'y'"
    ]
    assert _errors(("list", ("map", "string", "integer")), [{"a": "x"}], key="items") == [
        "items[0]: value['a']: expected integer, got 'x'"
    ]
    assert _errors(("list", ("union", ["integer"])), ["x"], key="items") == [
        "items[0]: value 'x' doesn't match any type in union ['integer']"
    ]
    assert _errors(("list", ("tuple", ["integer"])), [5], key="items") == [
        "items[0]: expected tuple of size 1, got 5"
    ]
    assert _errors(("list", "bogus"), [1], key="items") == ["items[0]: unknown type spec 'bogus'"]


def test_typed_map_reports_keys_then_values_per_entry() -> None:
    spec = ("map", "string", "integer")
    assert _errors(spec, {1: "x", "ok": 2, "b": "y"}, key="m") == [
        "m key: expected string, got 1",
        "m[1]: expected integer, got 'x'",
        "m['b']: expected integer, got 'y'",
    ]
    assert _errors(spec, [1], key="m") == ["m: expected map, got [1]"]
    assert _errors(spec, types.MappingProxyType({"a": 1}), key="m") == []


def test_function_checks_positional_arity() -> None:
    def two_with_default(a: object, b: object = None) -> None: ...

    def keyword_required(a: object, *, key: object) -> None: ...

    class Handler:
        def handle(self, event: object) -> None: ...

    spec = ("function", 1)
    assert _errors(spec, lambda a: a, key="cb") == []
    assert _errors(spec, two_with_default, key="cb") == []
    assert _errors(("function", 2), two_with_default, key="cb") == []
    assert _errors(("function", 3), two_with_default, key="cb") == [
        "cb: expected function with arity 3, got arity 1"
    ]
    assert _errors(("function", 3), lambda *args: args, key="cb") == []
    assert _errors(("function", 0), lambda a, *args: a, key="cb") == [
        "cb: expected function with arity 0, got arity 1"
    ]
    assert _errors(spec, keyword_required, key="cb") == [
        "cb: expected function with arity 1, got arity 1"
    ]
    assert _errors(spec, Handler().handle, key="cb") == []
    assert _errors(spec, lambda a, b: a, key="cb") == [
        "cb: expected function with arity 1, got arity 2"
    ]
    assert _errors(spec, "x", key="cb") == ["cb: expected function with arity 1, got 'x'"]


def test_function_without_inspectable_signature_is_accepted() -> None:
    assert _errors(("function", 5), max, key="cb") == []


def test_union_accepts_any_member_and_reports_whole_union() -> None:
    spec = ("union", ["string", "integer"])
    assert _errors(spec, "s", key="v") == []
    assert _errors(spec, 3, key="v") == []
    assert _errors(spec, 3.14, key="v") == [
        "v: value 3.14 doesn't match any type in union ['string', 'integer']"
    ]
    nested = ("union", [("list", "integer"), "string"])
    assert _errors(nested, [1], key="v") == []
    assert _errors(nested, [1, "x"], key="v") == [
        "v: value [1, 'x'] doesn't match any type in union [('list', 'integer'), 'string']"
    ]
    assert _errors(("union", []), 1, key="v") == ["v: value 1 doesn't match any type in union []"]


def test_tuple_checks_size_then_each_element() -> None:
    spec = ("tuple", ["string", "integer"])
    assert _errors(spec, ("a", 1), key="pair") == []
    assert _errors(spec, ["a", 1], key="pair") == []
    assert _errors(spec, ("a",), key="pair") == ["pair: expected tuple of size 2, got size 1"]
    assert _errors(spec, 5, key="pair") == ["pair: expected tuple of size 2, got 5"]
    assert _errors(spec, (1, "a"), key="pair") == [
        "pair[0]: expected string, got 1",
        "pair[1]: expected integer, got 'a'",
    ]


# --- validate_options: None for optional fields -------------------------------------------


def test_none_passes_for_optional_key_whose_default_is_none() -> None:
    schema = _schema(limit="integer") | {"defaults": {"limit": None}}
    assert validate_options({"limit": None}, schema) == []
    assert validate_options({"limit": "x"}, schema) == ["limit: expected integer, got 'x'"]


def test_none_fails_when_default_is_not_none_or_key_is_required() -> None:
    schema = {
        "name": "t",
        "description": "d",
        "required": ["count"],
        "optional": ["limit", "depth"],
        "types": {"count": "integer", "limit": "integer", "depth": "integer"},
        "defaults": {"limit": 1},
    }
    assert validate_options({"count": None, "limit": None, "depth": None}, schema) == [
        "count: expected integer, got None",
        "limit: expected integer, got None",
        "depth: expected integer, got None",
    ]


# --- format_type_spec ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("string", "string"),
        (("list", "string"), "list[string]"),
        (["list", "string"], "list[string]"),
        (("enum", ["a", "b"]), "enum['a', 'b']"),
        (("map", "string", "integer"), "map[string, integer]"),
        (("union", ["string", "integer"]), "union[string, integer]"),
        (("tuple", ["string", ("list", "float")]), "tuple[string, list[float]]"),
        (("function", 1), "function/1"),
        (("struct", Point), f"struct[{POINT}]"),
        (
            ("map", "atom", ("union", [("enum", [None]), "any"])),
            "map[atom, union[enum[None], any]]",
        ),
        (("nope",), "('nope',)"),
        (("function", -1), "('function', -1)"),
    ],
)
def test_format_type_spec_renders_compactly(spec: object, text: str) -> None:
    assert format_type_spec(spec) == text


# --- schema_from_struct -------------------------------------------------------------------


class EveryKind(msgspec.Struct):
    path: str
    count: int
    ratio: float
    flag: bool
    callback: Callable[[int, str], bool]
    label: str | None
    mode: Literal["fast", "slow"] = "fast"
    tags: list[str] = msgspec.field(default_factory=list)
    seq: Sequence[int] = (1, 2)
    scores: dict[str, float] = msgspec.field(default_factory=dict)
    meta: Mapping[str, Any] = msgspec.field(default_factory=dict)
    raw: dict = msgspec.field(default_factory=dict)  # type: ignore[type-arg]
    items: list = msgspec.field(default_factory=list)  # type: ignore[type-arg]
    pair: tuple[str, int] = ("a", 1)
    window: tuple[int, ...] = ()
    choice: int | str = 0
    anything: Any = None
    blob: object = "x"
    hook: Callable[..., None] | None = None
    factory: type[Point] = Point
    origin: Point = msgspec.field(default_factory=Point)
    color: Color = Color.RED
    limit: int | None = None
    level: int | None = 3
    nested: list[tuple[str, Color]] = msgspec.field(default_factory=lambda: [("a", Color.BLUE)])


EXPECTED_TYPES: dict[str, object] = {
    "path": "string",
    "count": "integer",
    "ratio": "float",
    "flag": "boolean",
    "callback": ("function", 2),
    "label": ("union", ["string", ("enum", [None])]),
    "mode": ("enum", ["fast", "slow"]),
    "tags": ("list", "string"),
    "seq": ("list", "integer"),
    "scores": ("map", "string", "float"),
    "meta": ("map", "string", "any"),
    "raw": "map",
    "items": "list",
    "pair": ("tuple", ["string", "integer"]),
    "window": ("list", "integer"),
    "choice": ("union", ["integer", "string"]),
    "anything": "any",
    "blob": "any",
    "hook": "any",
    "factory": "module",
    "origin": ("struct", Point),
    "color": ("enum", ["red", "blue"]),
    "limit": "integer",
    "level": ("union", ["integer", ("enum", [None])]),
    "nested": ("list", ("tuple", ["string", ("enum", ["red", "blue"])])),
}


def _every_kind_schema() -> dict[str, object]:
    return schema_from_struct("every_kind", "Covers every annotation kind", EveryKind)


def test_schema_from_struct_maps_every_annotation_kind() -> None:
    schema = _every_kind_schema()
    assert schema["__schema_version__"] == "1.0.0"
    assert schema["name"] == "every_kind"
    assert schema["description"] == "Covers every annotation kind"
    assert schema["required"] == ["path", "count", "ratio", "flag", "callback", "label"]
    assert schema["optional"] == list(EXPECTED_TYPES)[6:]
    assert schema["types"] == EXPECTED_TYPES


def test_schema_from_struct_collects_json_friendly_defaults() -> None:
    assert _every_kind_schema()["defaults"] == {
        "mode": "fast",
        "tags": [],
        "seq": [1, 2],
        "scores": {},
        "meta": {},
        "raw": {},
        "items": [],
        "pair": ["a", 1],
        "window": [],
        "choice": 0,
        "anything": None,
        "blob": "x",
        "hook": None,
        "factory": Point,
        "origin": Point(),
        "color": "red",
        "limit": None,
        "level": 3,
        "nested": [["a", "blue"]],
    }


def test_schema_from_struct_result_is_valid() -> None:
    assert validate_schema(_every_kind_schema()) == []


def test_schema_from_struct_defaults_validate_against_it() -> None:
    schema = _every_kind_schema()
    defaults = schema["defaults"]
    assert isinstance(defaults, dict)
    required_values = {
        "path": "p",
        "count": 1,
        "ratio": 0.5,
        "flag": True,
        "callback": lambda n, s: True,
        "label": None,
    }
    assert validate_options(required_values | defaults, schema) == []
    assert validate_options(defaults, schema) == [
        "missing required option: path",
        "missing required option: count",
        "missing required option: ratio",
        "missing required option: flag",
        "missing required option: callback",
        "missing required option: label",
    ]


def test_schema_from_struct_uses_encoded_field_names() -> None:
    class Renamed(msgspec.Struct, rename="camel"):
        batch_size: int
        max_items: int = 3

    schema = schema_from_struct("renamed", "d", Renamed)
    assert schema["required"] == ["batchSize"]
    assert schema["optional"] == ["maxItems"]
    assert schema["types"] == {"batchSize": "integer", "maxItems": "integer"}
    assert schema["defaults"] == {"maxItems": 3}


class Unsupported(msgspec.Struct):
    ids: set[int]


def test_schema_from_struct_rejects_annotation_without_type_spec() -> None:
    with pytest.raises(SchemaError) as info:
        schema_from_struct("bad", "d", Unsupported)
    assert info.value.stage == "bad"
    assert info.value.errors == ["field 'ids': no type spec for the annotation set[int]"]


def test_schema_from_struct_rejects_non_struct() -> None:
    with pytest.raises(TypeError, match=r"^options must be a msgspec\.Struct subclass"):
        schema_from_struct("bad", "d", dict)  # type: ignore[arg-type]


# --- properties ---------------------------------------------------------------------------

atoms = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=4)
enum_values = st.lists(scalars, min_size=1, max_size=4)
struct_classes = st.sampled_from([Point, int])
hashable_specs = st.sampled_from(["string", "integer", "boolean", "atom"]) | enum_values.map(
    lambda values: ("enum", values)
)


def _either_container(parts: tuple[object, ...], as_list: bool) -> object:
    """Composite specs may come as tuples or, after a JSON round trip, as lists."""
    return list(parts) if as_list else parts


def _composite(parts: st.SearchStrategy[tuple[object, ...]]) -> st.SearchStrategy[object]:
    return st.builds(_either_container, parts, st.booleans())


leaf_specs: st.SearchStrategy[object] = (
    st.sampled_from(sorted(PRIMITIVE_TYPES))
    | _composite(st.tuples(st.just("struct"), struct_classes))
    | _composite(st.tuples(st.just("enum"), enum_values))
    | _composite(st.tuples(st.just("function"), st.integers(0, 3)))
)

type_specs: st.SearchStrategy[object] = st.recursive(
    leaf_specs,
    lambda children: (
        _composite(st.tuples(st.just("list"), children))
        | _composite(st.tuples(st.just("map"), hashable_specs, children))
        | _composite(st.tuples(st.just("union"), st.lists(children, min_size=1, max_size=3)))
        | _composite(st.tuples(st.just("tuple"), st.lists(children, max_size=3)))
    ),
    max_leaves=8,
)

FUNCTIONS: dict[int, Callable[..., None]] = {
    0: lambda: None,
    1: lambda a: None,
    2: lambda a, b: None,
    3: lambda a, b, c: None,
}

PRIMITIVE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=5),
    "integer": st.integers(),
    "float": st.floats() | st.integers(),
    "boolean": st.booleans(),
    "atom": atoms,
    "map": st.dictionaries(st.text(max_size=3), scalars, max_size=3),
    "list": st.lists(scalars, max_size=3),
    "module": st.sampled_from([types, Point, "pkg.mod:attr", "pkg.mod", "os"]),
    "any": scalars,
}


def values_for(spec: object) -> st.SearchStrategy[Any]:
    """Generate values that conform to a spec drawn from ``type_specs``."""
    if isinstance(spec, str):
        return PRIMITIVE_VALUES[spec]
    assert isinstance(spec, tuple | list)
    tag, *args = spec
    if tag == "struct":
        return st.builds(Point, st.integers(), st.integers()) if args[0] is Point else st.integers()
    if tag == "enum":
        return st.sampled_from(args[0])
    if tag == "function":
        return st.just(FUNCTIONS[args[0]])
    if tag == "list":
        return st.lists(values_for(args[0]), max_size=3)
    if tag == "map":
        return st.dictionaries(values_for(args[0]), values_for(args[1]), max_size=3)
    if tag == "union":
        return st.one_of([values_for(member) for member in args[0]])
    assert tag == "tuple"
    elements = st.tuples(*[values_for(member) for member in args[0]])
    return elements | elements.map(list)


@st.composite
def valid_schemas(draw: st.DrawFn) -> dict[str, object]:
    keys = draw(st.lists(atoms, unique=True, max_size=6))
    split = draw(st.integers(0, len(keys)))
    required, optional = keys[:split], keys[split:]
    typed = required + [key for key in optional if draw(st.booleans())]
    schema: dict[str, object] = {
        "name": draw(atoms),
        "description": draw(st.text(min_size=1, max_size=10)),
        "required": required,
        "optional": optional,
        "types": {key: draw(leaf_specs) for key in typed},
    }
    if draw(st.booleans()):
        schema["defaults"] = {key: draw(scalars) for key in optional if draw(st.booleans())}
    if draw(st.booleans()):
        schema["__schema_version__"] = "1.0.0"
    if draw(st.booleans()):
        schema["version"] = "0.1.0"
    if draw(st.booleans()):
        schema["__extensions__"] = draw(st.dictionaries(atoms, scalars, max_size=2))
    return schema


@st.composite
def legacy_schemas(draw: st.DrawFn) -> dict[str, object]:
    schema = draw(valid_schemas())
    for key in ("required", "optional", "types"):
        if not schema[key] and draw(st.booleans()):
            del schema[key]  # only when empty, so the normalized schema stays valid
    if draw(st.booleans()):
        schema["stage"] = schema.pop("name")
    extra_keys = atoms.filter(lambda key: key not in CORE_KEYS and key != "stage")
    schema.update(draw(st.dictionaries(extra_keys, scalars, max_size=3)))
    return schema


@pytest.mark.slow
@given(valid_schemas())
def test_generated_valid_schemas_have_no_errors(schema: dict[str, object]) -> None:
    assert validate_schema(schema) == []
    assert validate_schema(normalize_schema(schema)) == []


@pytest.mark.slow
@given(legacy_schemas())
def test_normalizing_is_idempotent_and_pure(schema: dict[str, object]) -> None:
    before = copy.deepcopy(schema)
    once = normalize_schema(schema)
    assert normalize_schema(once) == once
    assert schema == before
    assert validate_schema(once) == []


@pytest.mark.slow
@given(type_specs)
def test_generated_type_specs_are_valid_and_formattable(spec: object) -> None:
    assert valid_type_spec(spec)
    assert not format_type_spec(spec).startswith(("(", "["))


@pytest.mark.slow
@given(st.data())
def test_generated_values_of_a_spec_validate_without_errors(data: st.DataObject) -> None:
    spec = data.draw(type_specs, label="spec")
    value = data.draw(values_for(spec), label="value")
    schema = {
        "name": "s",
        "description": "d",
        "required": ["opt"],
        "optional": [],
        "types": {"opt": spec},
    }
    assert validate_options({"opt": value}, schema) == []
