"""Encoding Contexts to bytes: lossless round trips, stage references, and clear errors."""

from __future__ import annotations

import dataclasses
import decimal
import enum
import json
import math
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given
from tests.strategies import contexts

from crucible_actors import Context, CrucibleError, EncodeError, Experiment, Stage, StageDef, stage
from crucible_actors._core import to_json_safe
from crucible_actors._core._encoding import (
    context_to_json,
    decode_context,
    enc_hook,
    encode_context,
)
from crucible_actors._core._errors import MessageError
from crucible_actors._core._stage import load_stage_ref

EXP = Experiment(id="e", pipeline=[StageDef(name="s")])


class SubclassStage(Stage):
    """A Stage subclass."""

    name = "subclass_stage"
    description = "passes the context through"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description}

    def run(self, ctx: Context, opts: Any) -> Context:
        return ctx


class ProtocolStage:
    """A stage that follows the protocol without importing crucible_actors.Stage."""

    name = "protocol_stage"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": "protocol only"}

    def run(self, ctx: Context, opts: Any) -> Context:
        return ctx


@stage("function_stage", description="a function stage")
def function_stage(ctx: Context, opts: Any) -> Context:
    return ctx


class Opaque:
    """A value msgspec cannot encode."""


# --- round trips --------------------------------------------------------------------------


@pytest.mark.slow
@given(contexts())
def test_context_round_trips_through_encode_context(ctx: Context) -> None:
    assert decode_context(encode_context(ctx)) == ctx


@pytest.mark.slow
@given(contexts())
def test_context_round_trips_through_msgspec_msgpack(ctx: Context) -> None:
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(ctx), type=Context) == ctx


@pytest.mark.slow
@given(contexts())
def test_context_round_trips_through_msgspec_json(ctx: Context) -> None:
    assert msgspec.json.decode(msgspec.json.encode(ctx), type=Context) == ctx


class _Point(msgspec.Struct):
    x: int
    y: int


def test_round_trip_keeps_tuples_sets_and_structs() -> None:
    ctx = Context.new(EXP).assign(pair=(1, 2), tags={"a"}, point=_Point(1, 2))
    back = decode_context(encode_context(ctx)).assigns
    assert back == {"pair": (1, 2), "tags": {"a"}, "point": _Point(1, 2)}
    assert type(back["pair"]) is tuple


def test_a_struct_defined_in_a_function_falls_back_to_a_dict() -> None:
    # pickle cannot find a local class again; msgspec's lossy form still carries it.
    class Point(msgspec.Struct):
        x: int
        y: int

    ctx = Context.new(EXP).assign(point=Point(1, 2))
    assert decode_context(encode_context(ctx)).assigns == {"point": {"x": 1, "y": 2}}


# --- stage objects in StageDef.stage ------------------------------------------------------

STAGE_OBJECTS = {
    "subclass-class": (SubclassStage, "SubclassStage"),
    "subclass-instance": (SubclassStage(), "SubclassStage"),
    "protocol-class": (ProtocolStage, "ProtocolStage"),
    "protocol-instance": (ProtocolStage(), "ProtocolStage"),
    "function": (function_stage, "function_stage"),
}


@pytest.mark.parametrize(("obj", "qualname"), list(STAGE_OBJECTS.values()), ids=list(STAGE_OBJECTS))
def test_context_carrying_a_stage_object_encodes_it_as_its_reference(
    obj: object, qualname: str
) -> None:
    exp = Experiment(id="e", pipeline=[StageDef(stage=obj)])
    ctx = Context.new(exp)
    ref = f"{__name__}:{qualname}"
    assert decode_context(encode_context(ctx)).experiment.pipeline[0].stage == ref
    as_json = msgspec.json.decode(msgspec.json.encode(ctx, enc_hook=enc_hook), type=Context)
    assert as_json.experiment.pipeline[0].stage == ref


@pytest.mark.parametrize(("obj", "qualname"), list(STAGE_OBJECTS.values()), ids=list(STAGE_OBJECTS))
def test_encoded_stage_reference_loads_the_same_stage_back(obj: object, qualname: str) -> None:
    exp = Experiment(id="e", pipeline=[StageDef(stage=obj)])
    ref = decode_context(encode_context(Context.new(exp))).experiment.pipeline[0].stage
    loaded = load_stage_ref(ref)
    if qualname == "function_stage":
        assert loaded is function_stage
    else:
        assert type(loaded).__qualname__ == qualname


def test_any_object_given_as_stage_def_stage_encodes_as_its_reference() -> None:
    def not_a_stage(ctx: Context, opts: Any) -> Context:
        return ctx

    exp = Experiment(id="e", pipeline=[StageDef(name="s", stage=not_a_stage)])
    decoded = decode_context(encode_context(Context.new(exp)))
    assert decoded.experiment.pipeline[0].stage == f"{__name__}:{not_a_stage.__qualname__}"


# --- errors -------------------------------------------------------------------------------


def test_unencodable_assign_raises_encode_error_naming_the_key() -> None:
    ctx = Context.new(EXP).assign("model", threading.Lock())
    with pytest.raises(EncodeError) as info:
        encode_context(ctx)
    err = info.value
    assert err.path == "assigns['model']"
    assert err.value_type == "lock"
    assert str(err).startswith("cannot encode assigns['model']: value of type lock")
    assert isinstance(err, MessageError)
    assert isinstance(err, CrucibleError)


def test_encode_error_names_the_innermost_bad_value() -> None:
    ctx = Context.new(EXP).put_metric("curve", {"points": [1, 2, threading.Lock()]})
    with pytest.raises(EncodeError) as info:
        encode_context(ctx)
    assert info.value.path == "metrics['curve']['points'][2]"


@pytest.mark.parametrize(
    ("ctx", "path"),
    [
        (Context.new(EXP).add_output(threading.Lock()), "outputs[0]"),
        (Context.new(EXP).put_artifact("a", threading.Lock()), "artifacts['a']"),
        (
            Context.new(
                Experiment(id="e", pipeline=[StageDef(name="s", options={"fn": Opaque()})])
            ),
            "experiment.pipeline[0].options['fn']",
        ),
    ],
    ids=["outputs", "artifacts", "stage-options"],
)
def test_encode_error_path_covers_every_field(ctx: Context, path: str) -> None:
    with pytest.raises(EncodeError) as info:
        encode_context(ctx)
    assert info.value.path == path


def test_a_non_stage_object_is_not_silently_turned_into_a_reference() -> None:
    with pytest.raises(EncodeError, match=r"assigns\['thing'\]"):
        encode_context(Context.new(EXP).assign(thing=lambda: 1))


def test_decoding_garbage_raises_message_error() -> None:
    with pytest.raises(MessageError, match="cannot decode a Context from 3 bytes"):
        decode_context(b"\x01\x02\x03")


def test_context_to_json_never_fails_and_writes_unknown_values_as_repr() -> None:
    ctx = Context.new(EXP, run_id="r").assign(thing=Opaque(), n=1)
    data = msgspec.json.decode(context_to_json(ctx))
    assert data["run_id"] == "r"
    assert data["assigns"]["n"] == 1
    assert data["assigns"]["thing"].startswith("<")
    assert "Opaque" in data["assigns"]["thing"]


def test_to_json_safe_turns_nested_tuples_into_lists() -> None:
    assert to_json_safe({"a": (1, (2, 3)), "b": [(1, 2)], "c": {"d": ((),)}}) == {
        "a": [1, [2, 3]],
        "b": [[1, 2]],
        "c": {"d": [[]]},
    }
    assert type(to_json_safe((1,))) is list
    assert sorted(to_json_safe({1, 2})) == [1, 2]
    assert to_json_safe(frozenset({"x"})) == ["x"]


class _Color(enum.Enum):
    RED = "red"


class _Pair(enum.Enum):
    ONE_TWO = (1, 2)


@dataclasses.dataclass
class _Row:
    name: str
    at: datetime


def test_to_json_safe_spells_every_key_as_a_string() -> None:
    value = {
        (1, 2): "t",
        None: "n",
        True: "b",
        3: "i",
        2.5: "f",
        _Color.RED: "e",
        _Pair.ONE_TWO: "p",
    }
    assert to_json_safe(value) == {
        "(1, 2)": "t",
        "None": "n",
        "True": "b",
        "3": "i",
        "2.5": "f",
        "red": "e",
        "_Pair.ONE_TWO": "p",
    }


def test_to_json_safe_writes_scalars_as_json_values() -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    got = to_json_safe(
        {
            "when": when,
            "day": date(2025, 1, 2),
            "took": timedelta(seconds=3),
            "blob": b"hi",
            "color": _Color.RED,
            "id": uuid.UUID(int=1),
            "amount": decimal.Decimal("1.5"),
            "row": _Row("a", when),
            "point": _Point(1, 2),
            "thing": Opaque(),
        }
    )
    assert got["when"] == "2025-01-02T03:04:05Z"
    assert got["day"] == "2025-01-02"
    assert got["took"] == "PT3S"
    assert got["blob"] == "aGk="
    assert got["color"] == "red"
    assert got["id"] == "00000000-0000-0000-0000-000000000001"
    assert got["amount"] == "1.5"
    assert got["row"] == {"name": "a", "at": "2025-01-02T03:04:05Z"}
    assert got["point"] == {"x": 1, "y": 2}
    assert got["thing"].startswith("<")
    assert "Opaque" in got["thing"]


def test_to_json_safe_keeps_non_finite_floats_unless_asked_for_finite_values() -> None:
    value = {"nan": math.nan, "inf": [math.inf, -math.inf], "ok": 1.5}
    kept = to_json_safe(value)
    assert math.isnan(kept["nan"])
    assert kept["inf"] == [math.inf, -math.inf]
    stored = to_json_safe(value, finite=True)
    assert stored == {"nan": None, "inf": [None, None], "ok": 1.5}
    assert json.loads(json.dumps(stored, allow_nan=False)) == stored
    assert to_json_safe(math.nan, finite=True) is None
    assert to_json_safe((), finite=True) == []
    assert to_json_safe({}, finite=True) == {}


def test_to_json_safe_never_fails_even_on_odd_keys_inside_a_struct() -> None:
    class Holder(msgspec.Struct):
        table: dict[Any, Any]

    assert to_json_safe(Holder({(1, "a"): {frozenset({2}): 3}})) == {
        "table": {"(1, 'a')": {"frozenset({2})": 3}}
    }
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    assert to_json_safe({"loop": cyclic}) == repr({"loop": cyclic})


def test_to_json_safe_returns_a_copy() -> None:
    value = {"a": [1, 2], "b": {"c": [3]}}
    got = to_json_safe(value, finite=False)
    got["a"].append(9)
    got["b"]["c"].append(9)
    assert value == {"a": [1, 2], "b": {"c": [3]}}
