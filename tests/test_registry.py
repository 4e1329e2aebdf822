"""The stage registry: explicit registration, lookup, schemas, and the default sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from crucible_actors import (
    Context,
    DuplicateStage,
    Registry,
    SchemaError,
    Stage,
    UnknownStage,
    stage,
)
from crucible_actors._core._registry import BUILTIN_STAGES, ENTRY_POINT_GROUP
from crucible_actors._core._schema import validate_schema

FIXTURES = Path(__file__).parent / "fixtures"
PLUGIN_REF = "crucible_demo_plugin:Echo"


class BenchOptions(msgspec.Struct):
    alpha: float = 0.05


class Bench(Stage):
    name = "bench"
    description = "Runs the statistical tests"
    Options = BenchOptions

    def run(self, ctx: Context, opts: Any) -> Context:
        return ctx


@stage("report", description="Renders the report")
def report(ctx: Context, opts: Any) -> Context:
    return ctx


@stage("validate", description="Validates the experiment")
def validate(ctx: Context, opts: Any) -> Context:
    return ctx


@pytest.fixture
def plugin_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the fixture plug-in package importable."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    return FIXTURES


@pytest.fixture
def installed_plugin(plugin_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the fixture plug-in: a dist-info advertising ``demo_echo`` on sys.path."""
    site = tmp_path / "site"
    dist_info = site / "crucible_demo_plugin-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: crucible-demo-plugin\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ndemo_echo = {PLUGIN_REF}\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(site))
    return site


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no crucible.toml unless a test writes one)."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


# --- explicit registration ----------------------------------------------------------------


def test_new_registry_is_empty() -> None:
    reg = Registry()
    assert reg.names() == []
    assert len(reg) == 0
    assert reg.schemas() == []


def test_register_accepts_classes_instances_and_function_stages() -> None:
    reg = Registry()
    bench = reg.register(Bench)
    reg.register(report)
    assert isinstance(bench, Bench)
    assert reg.resolve("bench") is bench
    assert reg.resolve("report") is report
    assert "bench" in reg
    assert "missing" not in reg


def test_register_under_an_explicit_name() -> None:
    reg = Registry()
    reg.register(Bench(), name="bench_v2")
    assert reg.names() == ["bench_v2"]
    assert isinstance(reg.resolve("bench_v2"), Bench)


def test_names_are_sorted() -> None:
    reg = Registry()
    for s in (validate, report, Bench):
        reg.register(s)
    assert reg.names() == ["bench", "report", "validate"]
    assert list(reg) == ["bench", "report", "validate"]


def test_registering_a_taken_name_raises_duplicate_stage() -> None:
    reg = Registry()
    reg.register(report)
    with pytest.raises(DuplicateStage, match="pass replace=True") as info:
        reg.register(validate, name="report")
    assert info.value.name == "report"
    assert reg.resolve("report") is report


def test_replace_true_replaces_a_registered_stage() -> None:
    reg = Registry()
    reg.register(report)
    reg.register(validate, name="report", replace=True)
    assert reg.resolve("report") is validate


def test_register_accepts_an_import_reference(plugin_path: Path) -> None:
    from crucible_demo_plugin import Echo

    reg = Registry()
    reg.register(PLUGIN_REF)
    assert isinstance(reg.resolve("echo"), Echo)


def test_register_reports_an_unimportable_reference_as_schema_error() -> None:
    with pytest.raises(SchemaError, match="no_such_module_xyz"):
        Registry().register("no_such_module_xyz:Thing", name="thing")


def test_copy_is_independent() -> None:
    reg = Registry()
    reg.register(report)
    clone = reg.copy()
    clone.register(validate)
    assert reg.names() == ["report"]
    assert clone.names() == ["report", "validate"]


# --- lookup -------------------------------------------------------------------------------


def test_resolve_unknown_name_suggests_the_closest_one() -> None:
    reg = Registry()
    reg.register(Bench)
    reg.register(report)
    with pytest.raises(UnknownStage) as info:
        reg.resolve("benhc")
    assert str(info.value) == "no stage named 'benhc'; did you mean 'bench'?"
    assert info.value.name == "benhc"
    assert info.value.known == ["bench", "report"]


def test_resolve_unknown_name_lists_the_stages_when_none_is_close() -> None:
    reg = Registry()
    reg.register(report)
    with pytest.raises(UnknownStage, match="registered stages: report"):
        reg.resolve("zzz")


def test_resolve_in_an_empty_registry_says_how_to_fix_it() -> None:
    with pytest.raises(UnknownStage, match=r"register it or set StageDef\.stage"):
        Registry().resolve("bench")


# --- schemas ------------------------------------------------------------------------------


def test_schema_returns_the_normalized_schema() -> None:
    reg = Registry()
    reg.register(Bench)
    schema = reg.schema("bench")
    assert validate_schema(schema) == []
    assert schema["name"] == "bench"
    assert schema["optional"] == ["alpha"]
    assert schema["defaults"] == {"alpha": 0.05}


def test_schema_normalizes_a_legacy_describe() -> None:
    class Legacy(Stage):
        name = "legacy"

        def describe(self) -> dict[str, Any]:
            return {"stage": "legacy", "description": "old shape", "owner": "ml"}

        def run(self, ctx: Context, opts: Any) -> Context:
            return ctx

    reg = Registry()
    reg.register(Legacy)
    assert reg.schema("legacy") == {
        "name": "legacy",
        "description": "old shape",
        "required": [],
        "optional": [],
        "types": {},
        "__extensions__": {"owner": "ml"},
    }


def test_schema_of_unknown_stage_raises_unknown_stage() -> None:
    with pytest.raises(UnknownStage):
        Registry().schema("bench")


def test_schemas_lists_name_stage_and_schema_sorted_by_name() -> None:
    reg = Registry()
    for s in (validate, Bench, report):
        reg.register(s)
    triples = reg.schemas()
    assert [name for name, _, _ in triples] == ["bench", "report", "validate"]
    for name, stage_obj, schema in triples:
        assert stage_obj is reg.resolve(name)
        assert schema == reg.schema(name)


# --- Registry.default ---------------------------------------------------------------------


def test_default_registry_holds_the_builtin_stages(workdir: Path) -> None:
    assert set(BUILTIN_STAGES) <= set(Registry.default().names())


def test_every_builtin_stage_resolves_with_a_valid_schema(workdir: Path) -> None:
    reg = Registry.default()
    for name in BUILTIN_STAGES:
        assert callable(reg.resolve(name).run), name
        assert validate_schema(reg.schema(name)) == [], name


def test_default_registry_loads_entry_point_stages(installed_plugin: Path, workdir: Path) -> None:
    from crucible_demo_plugin import Echo

    reg = Registry.default()
    assert "demo_echo" in reg.names()
    assert isinstance(reg.resolve("demo_echo"), Echo)
    assert reg.schema("demo_echo")["defaults"] == {"message": "hello"}


def test_entry_point_names_are_taken_for_register(installed_plugin: Path, workdir: Path) -> None:
    with pytest.raises(DuplicateStage):
        Registry.default().register(report, name="demo_echo")


def test_default_registry_reads_the_stages_table_of_crucible_toml(
    plugin_path: Path, workdir: Path
) -> None:
    from crucible_demo_plugin import Echo

    (workdir / "crucible.toml").write_text(
        f'[stages]\nlocal_echo = "{PLUGIN_REF}"\n', encoding="utf-8"
    )
    reg = Registry.default()
    assert "local_echo" in reg.names()
    assert isinstance(reg.resolve("local_echo"), Echo)


def test_default_registry_takes_crucible_toml_from_an_explicit_cwd(
    plugin_path: Path, tmp_path: Path, workdir: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "crucible.toml").write_text(
        f'[stages]\nlocal_echo = "{PLUGIN_REF}"\n', encoding="utf-8"
    )
    assert "local_echo" not in Registry.default()
    assert "local_echo" in Registry.default(cwd=elsewhere)


def test_crucible_toml_without_stages_table_adds_nothing(workdir: Path) -> None:
    (workdir / "crucible.toml").write_text('[other]\nkey = "value"\n', encoding="utf-8")
    assert Registry.default().names() == Registry.default(cwd=workdir.parent).names()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[stages\n", "cannot read"),
        ('stages = "echo"\n', r"\[stages\] must be a table"),
        ("[stages]\necho = 3\n", "must be a 'pkg.mod:attr' string"),
    ],
    ids=["not-toml", "not-a-table", "not-a-string"],
)
def test_malformed_crucible_toml_raises_schema_error_naming_the_file(
    workdir: Path, text: str, message: str
) -> None:
    (workdir / "crucible.toml").write_text(text, encoding="utf-8")
    with pytest.raises(SchemaError, match=message) as info:
        Registry.default()
    assert str(workdir / "crucible.toml") in str(info.value)


def test_broken_reference_fails_only_when_resolved(plugin_path: Path, workdir: Path) -> None:
    (workdir / "crucible.toml").write_text(
        '[stages]\nbroken = "no_such_module_xyz:Thing"\n'
        'not_a_stage = "crucible_demo_plugin:NotAStage"\n',
        encoding="utf-8",
    )
    reg = Registry.default()
    assert {"broken", "not_a_stage"} <= set(reg.names())
    with pytest.raises(ImportError, match="stage 'broken' is registered as 'no_such_module_xyz"):
        reg.resolve("broken")
    with pytest.raises(TypeError, match="is not a stage"):
        reg.resolve("not_a_stage")
