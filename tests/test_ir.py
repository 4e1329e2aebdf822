"""The experiment IR: defaults, validation, and loading TOML, JSON and YAML files."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from hypothesis import given
from tests.strategies import experiments

from crucible_actors import (
    Backoff,
    Context,
    Experiment,
    InvalidExperiment,
    MissingDependency,
    Stage,
    StageDef,
    load_experiment,
)
from crucible_actors._core._encoding import enc_hook

if TYPE_CHECKING:
    from pathlib import Path

TOML = b"""
id = "exp-1"
name = "demo"
tags = ["nightly"]

[[pipeline]]
name = "load"
options = { path = "data.csv" }

[[pipeline]]
name = "train"
enabled = false
timeout = 30.0
restart = "transient"
backoff = { initial = 0.5, max = 4.0, multiplier = 2.0, jitter = false }
retry_on = ["ConnectionError"]
"""

JSON = b"""
{
  "id": "exp-1",
  "name": "demo",
  "tags": ["nightly"],
  "pipeline": [
    {"name": "load", "options": {"path": "data.csv"}},
    {"name": "train", "enabled": false, "timeout": 30.0, "restart": "transient",
     "backoff": {"initial": 0.5, "max": 4.0, "multiplier": 2.0, "jitter": false},
     "retry_on": ["ConnectionError"]}
  ]
}
"""

YAML = b"""
id: exp-1
name: demo
tags: [nightly]
pipeline:
  - name: load
    options: {path: data.csv}
  - name: train
    enabled: false
    timeout: 30.0
    restart: transient
    backoff: {initial: 0.5, max: 4.0, multiplier: 2.0, jitter: false}
    retry_on: [ConnectionError]
"""

EXPECTED = Experiment(
    id="exp-1",
    name="demo",
    tags=["nightly"],
    pipeline=[
        StageDef(name="load", options={"path": "data.csv"}),
        StageDef(
            name="train",
            enabled=False,
            timeout=30.0,
            restart="transient",
            backoff=Backoff(initial=0.5, max=4.0, multiplier=2.0, jitter=False),
            retry_on=["ConnectionError"],
        ),
    ],
)


class ObjectStage(Stage):
    """A stage given to StageDef.stage as a Python object."""

    name = "object_stage"
    description = "passes the context through"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description}

    def run(self, ctx: Context, opts: Any) -> Context:
        return ctx


# --- defaults -----------------------------------------------------------------------------


def test_stage_def_supervision_defaults_match_the_contract() -> None:
    sd = StageDef(name="s")
    assert sd.options == {}
    assert sd.enabled is True
    assert sd.timeout is None
    assert sd.restart == "temporary"
    assert sd.max_restarts == 3
    assert sd.max_seconds == 60.0
    assert sd.backoff is None
    assert sd.retry_on == []
    assert sd.fail_on == []
    assert sd.isolation == "inline"
    assert sd.stage is None


def test_stage_def_options_none_becomes_empty_dict() -> None:
    assert StageDef(name="s", options=None).options == {}
    loaded = load_experiment(b'{"id": "e", "pipeline": [{"name": "s", "options": null}]}')
    assert loaded.pipeline[0].options == {}


def test_stage_def_mutable_defaults_are_not_shared() -> None:
    a, b = StageDef(name="a"), StageDef(name="b")
    assert a.options is not b.options
    assert a.retry_on is not b.retry_on


def test_experiment_restart_budget_defaults_to_no_cap_within_sixty_seconds() -> None:
    exp = Experiment(id="e", pipeline=[StageDef(name="s")])
    assert exp.max_restarts is None
    assert exp.max_seconds == 60.0


def test_ir_structs_are_frozen() -> None:
    exp = Experiment(id="e", pipeline=[StageDef(name="s")])
    with pytest.raises(AttributeError):
        exp.id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        exp.pipeline[0].name = "other"  # type: ignore[misc]


def test_stage_def_label_prefers_name_then_the_stage_objects_name() -> None:
    assert StageDef(name="alias", stage=ObjectStage).label == "alias"
    assert StageDef(stage=ObjectStage).label == "object_stage"
    assert StageDef(stage="pkg.mod:thing").label == "pkg.mod:thing"


def test_backoff_grows_exponentially_up_to_its_max() -> None:
    b = Backoff(initial=1.0, max=5.0, multiplier=2.0, jitter=False)
    assert [b.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_jitter_draws_between_half_and_full_delay() -> None:
    b = Backoff(initial=4.0, max=60.0, multiplier=2.0, jitter=True)
    assert b.delay(1, rand=0.0) == 2.0
    assert b.delay(1, rand=1.0) == 4.0


# --- validation in the constructors ---------------------------------------------------------


def test_experiment_with_empty_pipeline_is_invalid() -> None:
    with pytest.raises(InvalidExperiment, match="empty pipeline; add at least one stage"):
        Experiment(id="e", pipeline=[])


def test_stage_def_without_name_or_stage_is_invalid() -> None:
    with pytest.raises(InvalidExperiment, match="needs a name"):
        StageDef()


def test_stage_def_with_empty_name_and_no_stage_is_invalid() -> None:
    with pytest.raises(InvalidExperiment, match="needs a name"):
        StageDef(name="")


def test_pipeline_built_in_python_accepts_mappings() -> None:
    entry: Any = {"name": "b", "options": {"k": 1}}
    exp = Experiment(id="e", pipeline=[StageDef(name="a"), entry])
    assert exp.pipeline == [StageDef(name="a"), StageDef(name="b", options={"k": 1})]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("b", "pipeline[1]: expected a StageDef or a mapping, got str"),
        ({"name": "b", "options": [1]}, "pipeline[1].options: expected object, got array"),
        ({"options": {}}, "pipeline[1]: a stage definition needs a name"),
    ],
    ids=["not-a-mapping", "bad-field", "no-name"],
)
def test_bad_pipeline_entry_built_in_python_is_invalid(entry: Any, message: str) -> None:
    with pytest.raises(InvalidExperiment) as info:
        Experiment(id="e", pipeline=[StageDef(name="a"), entry])
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0.0}, "timeout must be > 0 seconds, got 0.0"),
        ({"timeout": -1.0}, "timeout must be > 0 seconds"),
        ({"max_restarts": -1}, "max_restarts must be >= 0, got -1"),
    ],
)
def test_stage_def_rejects_impossible_supervision_values(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidExperiment, match=message):
        StageDef(name="s", **kwargs)


def test_invalid_experiment_is_a_crucible_error_and_a_value_error() -> None:
    from crucible_actors import CrucibleError

    with pytest.raises(InvalidExperiment) as info:
        Experiment(id="e", pipeline=[])
    assert isinstance(info.value, CrucibleError)
    assert isinstance(info.value, ValueError)


# --- load_experiment ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "data"),
    [("exp.toml", TOML), ("exp.json", JSON), ("exp.yaml", YAML), ("exp.yml", YAML)],
)
def test_load_experiment_reads_each_format_by_suffix(
    tmp_path: Path, filename: str, data: bytes
) -> None:
    path = tmp_path / filename
    path.write_bytes(data)
    assert load_experiment(path) == EXPECTED
    assert load_experiment(str(path)) == EXPECTED


@pytest.mark.parametrize(("fmt", "data"), [("toml", TOML), ("json", JSON), ("yaml", YAML)])
def test_load_experiment_reads_bytes_in_the_named_format(fmt: str, data: bytes) -> None:
    assert load_experiment(data, format=fmt) == EXPECTED
    assert load_experiment(data, format=fmt.upper()) == EXPECTED


@pytest.mark.parametrize("data", [TOML, JSON])
def test_load_experiment_guesses_json_or_toml_from_bytes(data: bytes) -> None:
    assert load_experiment(data) == EXPECTED


def test_format_argument_overrides_the_file_suffix(tmp_path: Path) -> None:
    path = tmp_path / "experiment.txt"
    path.write_bytes(YAML)
    assert load_experiment(path, format="yaml") == EXPECTED


def test_stages_is_accepted_as_an_alias_of_pipeline() -> None:
    exp = load_experiment(b'{"id": "e", "stages": [{"name": "a"}, {"name": "b"}]}')
    assert [s.name for s in exp.pipeline] == ["a", "b"]
    encoded = msgspec.json.decode(msgspec.json.encode(exp))
    assert "pipeline" in encoded
    assert "stages" not in encoded


def test_load_error_names_file_field_path_and_expectation(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(
        b'{"id": "e", "pipeline": [{"name": "a"}, {"name": "b"}, {"name": "c", "options": [1]}]}'
    )
    with pytest.raises(InvalidExperiment) as info:
        load_experiment(path)
    message = str(info.value)
    assert str(path) in message
    assert "pipeline[2].options: expected object, got array" in message
    assert info.value.source == str(path)
    assert info.value.errors == ["pipeline[2].options: expected object, got array"]


def test_load_error_in_toml_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'id = "e"\n[[pipeline]]\nname = "a"\nmax_restarts = "many"\n')
    with pytest.raises(InvalidExperiment, match=r"pipeline\[0\]\.max_restarts: expected int"):
        load_experiment(path)


def test_load_error_names_a_missing_required_field() -> None:
    with pytest.raises(InvalidExperiment, match="missing required field `id`"):
        load_experiment(b'{"pipeline": [{"name": "a"}]}')


def test_load_error_names_an_unknown_literal_value() -> None:
    with pytest.raises(InvalidExperiment, match=r"pipeline\[0\]\.restart: invalid enum value"):
        load_experiment(b'{"id": "e", "pipeline": [{"name": "a", "restart": "permanent"}]}')


def test_loading_an_empty_pipeline_raises_invalid_experiment(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_bytes(b'id = "e"\npipeline = []\n')
    with pytest.raises(InvalidExperiment, match="empty pipeline") as info:
        load_experiment(path)
    assert info.value.source == str(path)


def test_loading_a_stage_without_name_or_stage_raises_invalid_experiment() -> None:
    data = b'{"id": "e", "pipeline": [{"name": "a"}, {"options": {"x": 1}}]}'
    with pytest.raises(InvalidExperiment, match=r"pipeline\[1\]: a stage definition needs a name"):
        load_experiment(data)


def test_loading_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(InvalidExperiment, match="cannot read file") as info:
        load_experiment(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("filename", "data", "fmt"),
    [
        ("bad.toml", b'id = "e\n', "TOML"),
        ("bad.json", b'{"id": ', "JSON"),
        ("bad.yaml", b"id: e\npipeline: [\n", "YAML"),
    ],
)
def test_unparsable_file_raises_invalid_experiment_naming_format_and_file(
    tmp_path: Path, filename: str, data: bytes, fmt: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(data)
    with pytest.raises(InvalidExperiment, match=f"not valid {fmt}") as info:
        load_experiment(path)
    assert str(path) in str(info.value)


def test_guessed_format_failure_says_how_to_name_the_format() -> None:
    with pytest.raises(InvalidExperiment, match="pass format="):
        load_experiment(YAML)


def test_top_level_that_is_not_a_table_is_invalid() -> None:
    with pytest.raises(InvalidExperiment, match="expected a table/object at the top level"):
        load_experiment(b"[1, 2]")


def test_unknown_format_is_invalid() -> None:
    with pytest.raises(InvalidExperiment, match="unknown format 'xml'"):
        load_experiment(b"<experiment/>", format="xml")


def test_yaml_without_pyyaml_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` fail
    with pytest.raises(MissingDependency, match=r"pip install 'crucible-actors\[yaml\]'"):
        load_experiment(YAML, format="yaml")


# --- encoding -----------------------------------------------------------------------------


@pytest.mark.slow
@given(experiments())
def test_experiment_round_trips_through_json(exp: Experiment) -> None:
    assert msgspec.json.decode(msgspec.json.encode(exp), type=Experiment) == exp


@pytest.mark.slow
@given(experiments())
def test_experiment_round_trips_through_msgpack(exp: Experiment) -> None:
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(exp), type=Experiment) == exp


@pytest.mark.slow
@given(experiments())
def test_load_experiment_accepts_what_msgspec_json_encodes(exp: Experiment) -> None:
    assert load_experiment(msgspec.json.encode(exp)) == exp


@pytest.mark.parametrize("obj", [ObjectStage, ObjectStage()], ids=["class", "instance"])
def test_stage_object_in_stage_def_encodes_as_its_reference(obj: object) -> None:
    exp = Experiment(id="e", pipeline=[StageDef(stage=obj)])
    decoded = msgspec.json.decode(msgspec.json.encode(exp, enc_hook=enc_hook), type=Experiment)
    assert decoded.pipeline[0].stage == f"{ObjectStage.__module__}:ObjectStage"
    assert exp.pipeline[0].stage is obj  # the Experiment itself keeps the object
