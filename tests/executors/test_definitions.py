"""Bad executor input is refused before a run starts, naming the stage and the field."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pytest
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, StageDef
from crucible_actors.errors import InvalidExperiment, MissingDependency
from crucible_actors.executors import UnknownIsolation
from crucible_actors.executors.ray import ray_address

if TYPE_CHECKING:
    from pathlib import Path


@ca.stage("noop")
def noop(ctx: Context, opts: Any) -> Context:
    return ctx


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"resources": {"num_cpus": -1}},
            "stage 's': resources.num_cpus must be a finite number >= 0, got -1",
        ),
        (
            {"resources": {"num_gpus": "two"}},
            "stage 's': resources.num_gpus must be a number, got str 'two'",
        ),
        (
            {"resources": {"memory": float("nan")}},
            "stage 's': resources.memory must be a finite number >= 0",
        ),
        (
            {"resources": {"num_cpus": True}},
            "stage 's': resources.num_cpus must be a number, got bool",
        ),
        ({"pool": 0}, "stage 's': pool must be an int >= 1"),
        ({"pool": 2.5}, "stage 's': pool must be an int >= 1"),
    ],
)
def test_bad_pool_or_resources_are_refused_naming_stage_and_field(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidExperiment, match="invalid experiment") as info:
        StageDef(name="s", isolation="ray", **fields)
    assert message in str(info.value)


def test_bad_fields_in_a_file_name_the_stage_path_and_field() -> None:
    toml = b'id = "x"\n[[pipeline]]\nname = "s"\nisolation = "ray"\nresources = {num_cpus = "a"}\n'
    with pytest.raises(InvalidExperiment) as info:
        ca.load_experiment(toml)
    assert "pipeline[0]: stage 's': resources.num_cpus must be a number, got str 'a'" in str(
        info.value
    )
    with pytest.raises(
        InvalidExperiment, match=r"pipeline\[0\].isolation: invalid enum value 'gpu'"
    ):
        ca.load_experiment(b'id = "x"\n[[pipeline]]\nname = "s"\nisolation = "gpu"\n')


def test_stage_defs_keep_pool_and_resources_and_round_trip() -> None:
    sd = StageDef(name="s", isolation="ray", pool=3, resources={"num_gpus": 1, "tpu": 0.5})
    exp = ca.load_experiment(
        b'id = "x"\n[[pipeline]]\nname = "s"\nisolation = "ray"\npool = 3\n'
        b"resources = {num_gpus = 1, tpu = 0.5}\n"
    )
    assert exp.pipeline[0] == sd
    assert StageDef(name="s").pool == 1
    assert StageDef(name="s").resources == {}


async def test_an_unknown_isolation_is_refused_at_submit_naming_the_stage() -> None:
    reg = registry_with(noop)
    exp = Experiment(id="e", pipeline=[StageDef(name="noop", isolation="gpu")])  # type: ignore[arg-type]
    async with ca.open_runtime(registry=reg) as rt:
        with pytest.raises(UnknownIsolation, match="stage 'noop' asks for isolation 'gpu'"):
            await rt.submit(exp)
        assert rt.statistics().submitted == 0


async def test_without_the_ray_extra_a_ray_run_fails_before_any_stage_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without ray sees
    ran = []

    @ca.stage("first")
    def first(ctx: Context, opts: Any) -> Context:
        ran.append(1)
        return ctx

    reg = registry_with(first, noop)
    exp = Experiment(
        id="e", pipeline=[StageDef(name="first"), StageDef(name="noop", isolation="ray")]
    )
    async with ca.open_runtime(registry=reg) as rt:
        with pytest.raises(MissingDependency) as info:
            await rt.submit(exp)
    assert "pip install 'crucible-actors[ray]'" in str(info.value)
    assert ran == []


async def test_process_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="process_workers must be >= 1, got 0"):
        async with ca.open_runtime(process_workers=0):
            pass


def test_the_ray_address_comes_from_the_argument_then_env_then_crucible_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(None, cwd=tmp_path) is None  # nothing set: a local Ray
    (tmp_path / "crucible.toml").write_text('[ray]\naddress = "ray://head:10001"\n')
    assert ray_address(None, cwd=tmp_path) == "ray://head:10001"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ray_address(None, cwd=tmp_path) == "10.0.0.1:6379"
    assert ray_address("auto", cwd=tmp_path) == "auto"
    (tmp_path / "crucible.toml").write_text("[ray]\naddress = 5\n")
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(InvalidExperiment, match=r"\[ray\] address must be a string"):
        ray_address(None, cwd=tmp_path)
