"""Tests for the ``data_checks`` stage."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import pytest
from tests.helpers import registry_with

import crucible_actors
from crucible_actors import Context, Experiment, StageDef, StageFailed, stage
from crucible_actors._core._errors import DataChecksFailed, InvalidOptions
from crucible_actors.stages import DataChecksStage
from crucible_actors.stages.data_checks import DataChecksOptions

if TYPE_CHECKING:
    from pathlib import Path

EXAMPLES = [
    {"input": "2+2", "output": "4"},
    {"input": "", "output": "5"},
    {"input": "3+3"},
    {"input": None, "output": None},
    {"input": "4+4", "output": "8", "extra": ""},
]


def _ctx(examples: Any = EXAMPLES, **assigns: Any) -> Context:
    exp = Experiment(id="dc", pipeline=[StageDef(name="data_checks")])
    return Context.new(exp, run_id="r", assigns={"examples": examples, **assigns})


async def _run(ctx: Context, **opts: Any) -> Context:
    return await DataChecksStage().run(ctx, DataChecksOptions(**opts))


@stage("load")
def load(ctx: Context, opts: Any) -> Context:
    return ctx.assign("examples", list(EXAMPLES))


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (DataChecksStage, load)


# --- no data ------------------------------------------------------------------------------


@pytest.mark.parametrize("examples", [None, "not a list", {"input": "x"}], ids=repr)
async def test_context_comes_back_unchanged_without_a_list_of_examples(examples: Any) -> None:
    ctx = _ctx(examples)
    assert await _run(ctx) is ctx


async def test_absent_examples_leave_no_metric_in_a_run() -> None:
    exp = Experiment(id="dc", pipeline=[StageDef(name="data_checks")])
    ctx = await crucible_actors.run_async(exp, registry=registry_with(*STAGES))
    assert "data_checks" not in ctx.metrics
    assert "data_issues" not in ctx.assigns


# --- the built-in check -------------------------------------------------------------------


async def test_examples_missing_required_fields_are_reported_in_order() -> None:
    ctx = await _run(_ctx())
    assert ctx.assigns["data_issues"] == [
        {"example": {"input": "", "output": "5"}, "missing": ["input"]},
        {"example": {"input": "3+3"}, "missing": ["output"]},
        {"example": {"input": None, "output": None}, "missing": ["input", "output"]},
    ]
    assert ctx.metrics["data_checks"] == {
        "total": 5,
        "missing_required": 3,
        "required_fields": ["input", "output"],
    }


async def test_required_fields_option_changes_what_is_checked() -> None:
    ctx = await _run(_ctx(), required_fields=["extra"])
    assert [issue["missing"] for issue in ctx.assigns["data_issues"]] == [["extra"]] * 5
    assert ctx.metrics["data_checks"]["required_fields"] == ["extra"]


async def test_an_example_that_is_not_a_mapping_misses_every_field() -> None:
    ctx = await _run(_ctx(["just text", {"input": "a", "output": "b"}]))
    assert ctx.assigns["data_issues"] == [{"example": "just text", "missing": ["input", "output"]}]


async def test_clean_examples_give_no_issues() -> None:
    ctx = await _run(_ctx([{"input": "a", "output": "b"}]), fail_fast=True)
    assert ctx.assigns["data_issues"] == []
    assert ctx.metrics["data_checks"]["missing_required"] == 0


async def test_fail_fast_fails_with_the_issues() -> None:
    with pytest.raises(DataChecksFailed) as info:
        await _run(_ctx(), fail_fast=True)
    assert str(info.value) == "data checks failed: 3 example(s) missing required fields"
    assert [issue["missing"] for issue in info.value.issues] == [
        ["input"],
        ["output"],
        ["input", "output"],
    ]


async def test_checks_run_in_a_pipeline() -> None:
    exp = Experiment(
        id="dc",
        pipeline=[
            StageDef(name="load"),
            StageDef(name="data_checks", options={"fail_fast": False}),
        ],
    )
    ctx = await crucible_actors.run_async(exp, registry=registry_with(*STAGES))
    assert ctx.metrics["data_checks"]["missing_required"] == 3
    assert len(ctx.assigns["data_issues"]) == 3


async def test_fail_fast_stops_the_run() -> None:
    exp = Experiment(
        id="dc",
        pipeline=[StageDef(name="load"), StageDef(name="data_checks", options={"fail_fast": True})],
    )
    with pytest.raises(StageFailed) as info:
        await crucible_actors.run_async(exp, registry=registry_with(*STAGES))
    assert info.value.stage == "data_checks"
    assert isinstance(info.value.reason, DataChecksFailed)
    assert len(info.value.reason.issues) == 3


# --- custom checker -----------------------------------------------------------------------


async def test_sync_checker_replaces_the_built_in_check() -> None:
    seen: dict[str, Any] = {}

    def checker(examples: list[Any], opts: dict[str, Any]) -> list[dict[str, Any]]:
        seen["examples"], seen["opts"] = examples, opts
        return [{"example": examples[0], "reason": "too easy"}]

    ctx = await _run(_ctx(), checker=checker, required_fields=["input"])
    assert ctx.assigns["data_issues"] == [{"example": EXAMPLES[0], "reason": "too easy"}]
    assert ctx.metrics["data_checks"]["missing_required"] == 1
    assert seen["examples"] == EXAMPLES
    assert seen["opts"] == {"required_fields": ["input"], "fail_fast": False, "checker": checker}


async def test_async_checker_is_awaited() -> None:
    async def checker(examples: list[Any], opts: dict[str, Any]) -> list[dict[str, Any]]:
        return []

    ctx = await _run(_ctx(), checker=checker)
    assert ctx.assigns["data_issues"] == []
    assert ctx.metrics["data_checks"]["missing_required"] == 0


async def test_checker_issues_trigger_fail_fast() -> None:
    def checker(examples: list[Any], opts: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"example": 1}, {"example": 2}]

    with pytest.raises(DataChecksFailed, match=r"^data checks failed: 2 example\(s\)"):
        await _run(_ctx(), checker=checker, fail_fast=True)


async def test_checker_returning_something_else_is_a_type_error() -> None:
    def checker(examples: list[Any], opts: dict[str, Any]) -> int:
        return 3

    with pytest.raises(TypeError) as info:
        await _run(_ctx(), checker=checker)
    assert str(info.value) == (
        f"data_checks checker {__name__}:"
        "test_checker_returning_something_else_is_a_type_error.<locals>.checker "
        "returned int, expected a list of issue dicts"
    )


async def test_checker_given_as_a_reference_runs_in_a_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dc_ref_checker.py").write_text(
        textwrap.dedent(
            """
            def long_inputs(examples, opts):
                return [{"example": e, "reason": "long"} for e in examples
                        if len(e.get("input") or "") > 2]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    exp = Experiment(
        id="dc",
        pipeline=[
            StageDef(name="load"),
            StageDef(name="data_checks", options={"checker": "dc_ref_checker:long_inputs"}),
        ],
    )
    ctx = await crucible_actors.run_async(exp, registry=registry_with(*STAGES))
    assert ctx.assigns["data_issues"] == [
        {"example": {"input": "2+2", "output": "4"}, "reason": "long"},
        {"example": {"input": "3+3"}, "reason": "long"},
        {"example": {"input": "4+4", "output": "8", "extra": ""}, "reason": "long"},
    ]


async def test_checker_reference_that_does_not_load_fails_the_stage() -> None:
    with pytest.raises(ImportError) as info:
        await _run(_ctx(), checker="no_such_module_dc:fn")
    assert str(info.value) == (
        "checker: cannot import module 'no_such_module_dc': No module named 'no_such_module_dc'"
    )


async def test_checker_option_of_the_wrong_kind_is_an_invalid_option() -> None:
    exp = Experiment(
        id="dc",
        pipeline=[StageDef(name="load"), StageDef(name="data_checks", options={"checker": 5})],
    )
    with pytest.raises(StageFailed) as info:
        await crucible_actors.run_async(exp, registry=registry_with(*STAGES))
    assert isinstance(info.value.reason, InvalidOptions)
    assert str(info.value.reason) == (
        "invalid options for stage 'data_checks': "
        "checker: expected a callable or a 'pkg.mod:attr' reference, got 5"
    )
