"""Project configuration: ``crucible.toml`` or ``[tool.crucible]``, found searching upward."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers import registry_with

import crucible_actors
from crucible_actors import Experiment, Registry, SchemaError, StageDef
from crucible_actors._core._config import ConfigFileError, find_config
from crucible_actors.errors import InvalidOptions
from crucible_actors.stages import GuardrailsStage

FIXTURES = Path(__file__).parent / "fixtures"
PLUGIN_REF = "crucible_demo_plugin:Echo"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root with a nested working directory ``src/pkg/deep`` as the cwd."""
    root = tmp_path / "project"
    deep = root / "src" / "pkg" / "deep"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    monkeypatch.syspath_prepend(str(FIXTURES))
    return root


def test_no_config_anywhere_is_none(project: Path) -> None:
    assert find_config() is None


def test_crucible_toml_is_found_from_a_subdirectory(project: Path) -> None:
    (project / "crucible.toml").write_text(f'[stages]\nlocal_echo = "{PLUGIN_REF}"\n')
    config = find_config()
    assert config is not None
    assert config.path == project / "crucible.toml"
    assert config.table("stages") == {"local_echo": PLUGIN_REF}
    assert config.table_name("stages") == "[stages]"
    assert "local_echo" in Registry.default()


def test_tool_crucible_in_pyproject_is_found_from_a_subdirectory(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "demo"\n\n[tool.crucible.stages]\nlocal_echo = "{PLUGIN_REF}"\n'
    )
    config = find_config()
    assert config is not None
    assert config.path == project / "pyproject.toml"
    assert config.table_name("stages") == "[tool.crucible.stages]"
    reg = Registry.default()
    assert "local_echo" in reg
    assert type(reg.resolve("local_echo")).__name__ == "Echo"


def test_crucible_toml_wins_over_pyproject_in_the_same_directory(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.crucible.stages]\nfrom_pyproject = "a:b"\n')
    (project / "crucible.toml").write_text('[stages]\nfrom_crucible = "a:b"\n')
    reg = Registry.default()
    assert "from_crucible" in reg
    assert "from_pyproject" not in reg


def test_the_nearest_file_wins_whole_without_merging(project: Path) -> None:
    (project / "crucible.toml").write_text('[stages]\nouter = "a:b"\n')
    (project / "src" / "pyproject.toml").write_text('[tool.crucible.stages]\ninner = "a:b"\n')
    reg = Registry.default()
    assert "inner" in reg
    assert "outer" not in reg


def test_a_pyproject_without_tool_crucible_does_not_stop_the_search(project: Path) -> None:
    (project / "src" / "pyproject.toml").write_text('[project]\nname = "inner"\n')
    (project / "crucible.toml").write_text('[stages]\nouter = "a:b"\n')
    config = find_config()
    assert config is not None
    assert config.path == project / "crucible.toml"


def test_an_explicit_start_directory_is_searched_upward(project: Path, tmp_path: Path) -> None:
    (project / "crucible.toml").write_text('[stages]\nouter = "a:b"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "outer" not in Registry.default(cwd=elsewhere)
    assert "outer" in Registry.default(cwd=project / "src")
    relative = find_config(Path("..") / "..")  # from src/pkg/deep: src
    assert relative is not None
    assert relative.path == project / "crucible.toml"


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ("[tool.crucible\n", "cannot read", "pyproject.toml"),
        ('[tool]\ncrucible = "x"\n', r"\[tool.crucible\] must be a table", "pyproject.toml"),
        (
            '[tool.crucible]\nstages = "x"\n',
            r"\[tool.crucible.stages\] must be a table",
            "pyproject.toml",
        ),
        ("[tool.crucible.stages]\necho = 3\n", r"\[tool.crucible.stages\] echo must be a", "echo"),
    ],
    ids=["not-toml", "tool-crucible-not-a-table", "stages-not-a-table", "not-a-string"],
)
def test_a_malformed_pyproject_is_reported_naming_the_file_and_table(
    project: Path, text: str, message: str, where: str
) -> None:
    (project / "pyproject.toml").write_text(text)
    with pytest.raises(SchemaError, match=message) as info:
        Registry.default()
    assert str(project / "pyproject.toml") in str(info.value)
    assert info.value.stage == where


def test_a_broken_nearer_file_is_reported_not_skipped(project: Path) -> None:
    (project / "crucible.toml").write_text('[stages]\nouter = "a:b"\n')
    (project / "src" / "crucible.toml").write_text("not toml [\n")
    with pytest.raises(ConfigFileError, match=r"cannot read .*src/crucible\.toml"):
        find_config()


def _guarded() -> tuple[Experiment, Registry]:
    exp = Experiment(id="g", pipeline=[StageDef(name="guardrails")])
    reg = registry_with(GuardrailsStage)
    return exp, reg


async def test_guardrails_adapter_comes_from_tool_crucible_above_the_cwd(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.crucible.guardrails]\nadapter = "crucible_actors.stages:PatternScanner"\n'
    )
    exp, reg = _guarded()
    examples = [{"input": "mail me at a@b.example", "output": "ok"}, {"input": "hi"}]
    ctx = await crucible_actors.run_async(exp, registry=reg, assigns={"examples": examples})
    assert ctx.metrics["guardrails"] == {"total": 2, "violations": 1}


async def test_guardrails_bad_adapter_in_pyproject_names_the_table(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.crucible.guardrails]\nadapter = 3\n")
    exp, reg = _guarded()
    with pytest.raises(crucible_actors.StageFailed) as info:
        await crucible_actors.run_async(exp, registry=reg, assigns={"examples": [{"input": "x"}]})
    assert isinstance(info.value.reason, InvalidOptions)
    assert str(info.value.reason) == (
        "invalid options for stage 'guardrails': "
        f"{project / 'pyproject.toml'}: [tool.crucible.guardrails] adapter must be a "
        "'pkg.mod:attr' string"
    )


def test_cli_run_finds_tool_crucible_above_the_experiment_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crucible_actors.cli import main

    (project / "pyproject.toml").write_text(
        f'[project]\nname = "demo"\n\n[tool.crucible.stages]\nlocal_echo = "{PLUGIN_REF}"\n'
    )
    experiments = project / "experiments" / "nested"
    experiments.mkdir(parents=True)
    exp = experiments / "exp.toml"
    exp.write_text('id = "cfg"\n[[pipeline]]\nname = "local_echo"\n')
    assert main(["run", str(exp), "--no-persist", "--run-id", "cfg1"]) == 0
    assert "run cfg1  experiment cfg  completed" in capsys.readouterr().out
