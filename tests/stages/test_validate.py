"""Tests for the ``validate`` stage."""

from __future__ import annotations

import contextlib
import contextvars
from typing import TYPE_CHECKING, Any

import msgspec
import msgspec.structs
import pytest
from tests.helpers import registry_with

import crucible_actors
from crucible_actors import (
    Context,
    Experiment,
    OutputSpec,
    Registry,
    ReliabilityConfig,
    StageDef,
    StageFailed,
    StatsConfig,
    stage,
)
from crucible_actors._core import _registry as registry_module
from crucible_actors._core._errors import ValidationFailed
from crucible_actors.stages import DataChecksStage, ReportStage, ValidateStage
from crucible_actors.stages.validate import ValidateOptions, _registry_for_run

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@stage("noop")
def noop(ctx: Context, opts: Any) -> Context:
    return ctx


@stage(
    "needs_input",
    schema={
        "name": "needs_input",
        "description": "Needs an input path",
        "required": ["input_path"],
        "optional": [],
        "types": {"input_path": "string"},
    },
)
def needs_input(ctx: Context, opts: Any) -> Context:
    return ctx


class NotAStage:
    """Has no run method."""


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (ValidateStage, DataChecksStage, ReportStage, noop, needs_input)


@contextlib.contextmanager
def run_registry(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Publish ``reg`` as the run's registry, as the runtime does.

    Until the runtime defines ``current_registry``, the test installs the variable itself.
    """
    var = getattr(registry_module, "current_registry", None)
    if var is None:
        var = contextvars.ContextVar[Registry | None]("current_registry", default=None)
        monkeypatch.setattr(registry_module, "current_registry", var, raising=False)
    token = var.set(reg)
    try:
        yield
    finally:
        var.reset(token)


def _validate(
    exp: Experiment, reg: Registry, monkeypatch: pytest.MonkeyPatch, **opts: Any
) -> Context:
    with run_registry(reg, monkeypatch):
        return ValidateStage().run(Context.new(exp), ValidateOptions(**opts))


def _warnings(exp: Experiment, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ctx = _validate(exp, registry_with(*STAGES), monkeypatch)
    result = ctx.metrics["validation"]
    assert result["status"] == "warnings"
    return list(result["warnings"])


def _exp(*stages: StageDef, **kw: Any) -> Experiment:
    return Experiment(id="v", pipeline=[StageDef(name="validate"), *stages], **kw)


# --- passing ------------------------------------------------------------------------------


def test_valid_experiment_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = _exp(
        StageDef(name="noop"),
        StageDef(name="needs_input", options={"input_path": "data.jsonl"}),
        StageDef(stage=noop),
        StageDef(name="report"),
        outputs=[OutputSpec(name="summary", formats=["markdown", "html"], sink="file")],
    )
    ctx = _validate(exp, registry_with(*STAGES), monkeypatch)
    assert ctx.metrics["validation"] == {"status": "passed"}


async def test_validate_passes_in_a_run_using_the_runs_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = registry_with(*STAGES)
    exp = _exp(StageDef(name="noop"))
    with run_registry(reg, monkeypatch):
        ctx = await crucible_actors.run_async(exp, registry=reg)
    assert ctx.metrics["validation"] == {"status": "passed"}
    assert ctx.completed_stages() == ["validate", "noop"]


# --- stage resolution ---------------------------------------------------------------------


def test_unregistered_name_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _warnings(_exp(StageDef(name="missing")), monkeypatch) == [
        "Stage 'missing' is not registered"
    ]


def test_explicit_stage_that_does_not_import_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exp = _exp(
        StageDef(stage="no_such_package_xyz.mod:Stage"),
        StageDef(stage="json:NoSuchAttribute"),
        StageDef(stage="json"),
    )
    assert _warnings(exp, monkeypatch) == [
        "Stage module no_such_package_xyz.mod:Stage cannot be loaded",
        "Stage module json:NoSuchAttribute cannot be loaded",
        "Stage module json cannot be loaded",
    ]


def test_explicit_stage_without_run_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = _exp(StageDef(stage=NotAStage), StageDef(stage="json:dumps"))
    assert _warnings(exp, monkeypatch) == [
        f"Stage module {NotAStage.__module__}:NotAStage does not implement run",
        "Stage module json:dumps does not implement run",
    ]


def test_stage_definition_without_name_or_stage_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # StageDef refuses this shape when built normally; a hand-edited object can still have it.
    broken = StageDef(name="noop")
    msgspec.structs.force_setattr(broken, "name", None)
    assert _warnings(_exp(broken), monkeypatch) == ["Stage definition missing both name and stage"]


# --- options ------------------------------------------------------------------------------


def test_options_are_checked_against_each_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = _exp(
        StageDef(name="needs_input"),
        StageDef(name="data_checks", options={"fail_fast": "yes", "required_fields": [1]}),
    )
    assert _warnings(exp, monkeypatch) == [
        "Stage 'needs_input': missing required option: input_path",
        "Stage 'data_checks': fail_fast: expected boolean, got 'yes'",
        "Stage 'data_checks': required_fields[0]: expected string, got 1",
    ]


def test_options_are_converted_into_the_options_struct(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = _exp(StageDef(name="data_checks", options={"checker": "not a reference"}))
    assert _warnings(exp, monkeypatch) == [
        "Stage 'data_checks': checker: expected a 'pkg.mod:attr' reference, got 'not a reference'"
    ]


def test_validate_checks_its_own_options(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = Experiment(id="v", pipeline=[StageDef(name="validate", options={"strict": "yes"})])
    assert _warnings(exp, monkeypatch) == ["Stage 'validate': strict: expected boolean, got 'yes'"]


# --- outputs and stats --------------------------------------------------------------------


def test_output_specs_need_known_formats_and_sinks(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = _exp(
        outputs=[
            OutputSpec(name="summary", formats=["markdown", "pdf"], sink="email"),
            OutputSpec(name="empty", formats=[]),
            OutputSpec(name="summary", formats=["json"], options={"dir": 3}),
        ]
    )
    assert _warnings(exp, monkeypatch) == [
        "Unknown format: pdf (output 'summary'; expected one of: markdown, json, html, csv)",
        "Unknown sink: email (output 'summary'; expected one of: file, stdout)",
        "Output 'empty' has no formats specified",
        "Duplicate output name: 'summary'; its reports would overwrite each other",
        "Output 'summary': option dir must be a string, got 3",
    ]


def test_unknown_statistical_tests_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    stats = StatsConfig(tests=["ttest", "welch"], multiple_testing_correction="sidak")
    exp = _exp(reliability=ReliabilityConfig(stats=stats))
    assert _warnings(exp, monkeypatch) == [
        "Unknown statistical tests: ['welch']",
        "Unknown multiple testing correction: 'sidak'; expected one of: "
        "none, holm, bonferroni, fdr_bh",
    ]


def test_every_problem_is_reported_in_pipeline_order(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = _exp(
        StageDef(name="ghost"),
        StageDef(name="needs_input"),
        StageDef(stage="json:dumps"),
        outputs=[OutputSpec(name="o", formats=["xml"])],
    )
    assert _warnings(exp, monkeypatch) == [
        "Stage 'ghost' is not registered",
        "Stage 'needs_input': missing required option: input_path",
        "Stage module json:dumps does not implement run",
        "Unknown format: xml (output 'o'; expected one of: markdown, json, html, csv)",
    ]


# --- strict -------------------------------------------------------------------------------


def test_strict_fails_with_every_message(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = _exp(StageDef(name="ghost"), StageDef(name="needs_input"))
    with pytest.raises(ValidationFailed) as info:
        _validate(exp, registry_with(*STAGES), monkeypatch, strict=True)
    assert info.value.messages == [
        "Stage 'ghost' is not registered",
        "Stage 'needs_input': missing required option: input_path",
    ]
    assert str(info.value) == (
        "validation failed: Stage 'ghost' is not registered; "
        "Stage 'needs_input': missing required option: input_path"
    )


def test_strict_passes_a_valid_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _validate(_exp(StageDef(name="noop")), registry_with(*STAGES), monkeypatch, strict=True)
    assert ctx.metrics["validation"] == {"status": "passed"}


async def test_strict_validation_stops_the_run_before_later_stages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = registry_with(*STAGES)
    exp = Experiment(
        id="v",
        pipeline=[
            StageDef(name="validate", options={"strict": True}),
            StageDef(name="noop"),
            StageDef(name="needs_input"),
        ],
    )
    with run_registry(reg, monkeypatch), pytest.raises(StageFailed) as info:
        await crucible_actors.run_async(exp, registry=reg)
    assert info.value.stage == "validate"
    assert isinstance(info.value.reason, ValidationFailed)
    assert info.value.reason.messages == [
        "Stage 'needs_input': missing required option: input_path"
    ]
    assert info.value.context is not None
    assert info.value.context.completed_stages() == []


# --- registry -----------------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["absent", "unset"])
def test_registry_for_run_falls_back_to_the_default_registry(
    hook: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if hook == "absent":
        monkeypatch.delattr(registry_module, "current_registry", raising=False)
    else:
        fresh = contextvars.ContextVar[Registry | None]("current_registry", default=None)
        monkeypatch.setattr(registry_module, "current_registry", fresh, raising=False)
    monkeypatch.chdir(tmp_path)
    names = set(_registry_for_run().names())
    assert {"validate", "data_checks", "guardrails", "bench", "report"} <= names


def test_registry_for_run_uses_the_published_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = registry_with(*STAGES)
    with run_registry(reg, monkeypatch):
        assert _registry_for_run() is reg


class BadSchema:
    """A stage whose describe() breaks the canonical format."""

    name = "bad_schema"

    def describe(self) -> dict[str, Any]:
        return {"name": "bad_schema", "description": "", "required": [], "optional": []}

    def run(self, ctx: Context, opts: Any) -> Context:
        return ctx


def test_explicit_stage_with_an_invalid_schema_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exp = _exp(StageDef(name="odd", stage=BadSchema))
    assert _warnings(exp, monkeypatch) == [
        "Stage 'odd' has an invalid describe() schema: "
        "description is required and must be a non-empty string"
    ]
