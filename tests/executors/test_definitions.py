"""Bad executor input is refused before a run starts, naming the stage and the field."""

from __future__ import annotations

import json
import pickle
import re
import sys
from typing import TYPE_CHECKING, Any

import pytest
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, StageDef
from crucible_actors._core import ConfigFileError
from crucible_actors.errors import InvalidExperiment, MissingDependency
from crucible_actors.executors import InlineExecutor, UnknownIsolation
from crucible_actors.executors.ray import ray_address

if TYPE_CHECKING:
    from pathlib import Path

    from crucible_actors._core import messages as msg
    from crucible_actors.executors import AttemptIO, PreparedStage


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


def test_stage_defs_keep_pool_and_resources_and_round_trip() -> None:
    sd = StageDef(name="s", isolation="ray", pool=3, resources={"num_gpus": 1, "tpu": 0.5})
    exp = ca.load_experiment(
        b'id = "x"\n[[pipeline]]\nname = "s"\nisolation = "ray"\npool = 3\n'
        b"resources = {num_gpus = 1, tpu = 0.5}\n"
    )
    assert exp.pipeline[0] == sd
    assert StageDef(name="s").pool == 1
    assert StageDef(name="s").resources == {}


GPU_FILE = b'id = "x"\n[[pipeline]]\nname = "noop"\nisolation = "gpu"\n'


class Recording:
    """An executor registered under a name of its own: runs inline, records the labels."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def run(
        self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
    ) -> msg.AttemptDone | msg.AttemptFailed:
        self.seen.append(stage.label)
        return await InlineExecutor().run(stage, command, io)


def test_a_file_may_name_any_executor_but_only_a_name() -> None:
    exp = ca.load_experiment(GPU_FILE)
    assert exp.pipeline[0].isolation == "gpu"
    assert StageDef(name="s", isolation="my-gpu.v2").isolation == "my-gpu.v2"
    assert StageDef(name="s").isolation == "inline"
    with pytest.raises(InvalidExperiment) as info:
        ca.load_experiment(b'id = "x"\n[[pipeline]]\nname = "s"\nisolation = "a gpu"\n')
    assert str(info.value) == (
        "<bytes>: invalid experiment: pipeline[0]: stage 's': isolation must be an executor's name "
        "(a letter or '_', then letters, digits, '_', '.' or '-'), got 'a gpu'"
    )
    for bad in ("", "gpu\n", "2gpu", 5):
        with pytest.raises(InvalidExperiment, match="stage 's': isolation must be an executor"):
            StageDef(name="s", isolation=bad)  # type: ignore[arg-type]


async def test_an_unknown_isolation_is_refused_at_submit_naming_the_stage_and_executors() -> None:
    reg = registry_with(noop)
    exp = ca.load_experiment(GPU_FILE)
    async with ca.open_runtime(registry=reg) as rt:
        with pytest.raises(UnknownIsolation) as info:
            await rt.submit(exp)
        assert rt.statistics().submitted == 0
    assert "stage 'noop' asks for isolation 'gpu'" in str(info.value)
    assert "(registered: inline, process, ray, thread)" in str(info.value)
    assert (info.value.stage, info.value.isolation) == ("noop", "gpu")
    assert info.value.registered == ["inline", "process", "ray", "thread"]
    assert isinstance(info.value, InvalidExperiment)  # bad input: HTTP 422, CLI exit 2
    again = pickle.loads(pickle.dumps(info.value))
    assert (str(again), again.registered) == (str(info.value), info.value.registered)


async def test_a_file_naming_an_executor_given_to_the_runtime_runs_on_it() -> None:
    reg = registry_with(noop)
    gpu = Recording()
    async with ca.open_runtime(registry=reg, executors={"gpu": gpu}) as rt:
        await (await rt.submit(ca.load_experiment(GPU_FILE))).result()
    assert gpu.seen == ["noop"]


def test_the_cli_runs_a_file_on_a_registered_executor_and_refuses_an_unknown_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crucible_actors.cli import main
    from crucible_actors.executors import default_executors, register

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI adds the file's directory
    monkeypatch.delitem(sys.modules, "gpu_cli_stages", raising=False)
    (tmp_path / "gpu_cli_stages.py").write_text(
        "import crucible_actors as ca\n\n"
        "@ca.stage('tick')\n"
        "def tick(ctx, opts):\n"
        "    return ctx.put_metric('ticked', 1)\n"
    )
    path = tmp_path / "exp.toml"
    path.write_text('id = "g"\n[[pipeline]]\nstage = "gpu_cli_stages:tick"\nisolation = "gpu"\n')
    assert main(["run", str(path), "--no-persist", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: invalid experiment: stage 'gpu_cli_stages:tick' asks for isolation 'gpu'"
    )
    assert "(registered: inline, process, ray, thread)" in err
    assert "Traceback" not in err
    gpu = Recording()
    register("gpu", gpu)
    try:
        assert main(["run", str(path), "--no-persist", "--json"]) == 0
    finally:
        del default_executors["gpu"]
    assert gpu.seen == ["gpu_cli_stages:tick"]
    assert json.loads(capsys.readouterr().out)["metrics"]["ticked"] == 1


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


def test_the_ray_address_is_found_in_pyproject_from_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.crucible.ray]\naddress = "ray://head:10001"\n'
    )
    assert ray_address(None, cwd=deep) == "ray://head:10001"
    monkeypatch.chdir(deep)
    assert ray_address() == "ray://head:10001"  # default: from the working directory
    (tmp_path / "pyproject.toml").write_text("[tool.crucible.ray]\naddress = 5\n")
    with pytest.raises(
        InvalidExperiment, match=r"\[tool\.crucible\.ray\] address must be a string"
    ) as info:
        ray_address()
    assert info.value.source == str(tmp_path / "pyproject.toml")


def test_a_malformed_config_file_is_reported_with_its_path_not_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    path = tmp_path / "crucible.toml"
    path.write_text('[ray]\naddress = "ray://head:10001\n')  # unterminated string
    with pytest.raises(ConfigFileError, match=f"cannot read {re.escape(str(path))}") as info:
        ray_address(None, cwd=tmp_path)
    assert info.value.path == path
    path.write_text('ray = "head:6379"\n')  # not a table
    with pytest.raises(ConfigFileError, match=r"\[ray\] must be a table"):
        ray_address(None, cwd=tmp_path)
    assert ray_address("auto", cwd=tmp_path) == "auto"  # an explicit address reads no file
