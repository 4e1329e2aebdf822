"""Functions and classes given directly as stage options from Python (issue #13, item 5).

In-process stages (inline, thread) get the live object; a process-isolated stage refuses
one before the run starts, asking for a ``"pkg.mod:attr"`` string; data values that do not
encode still fail with ``EncodeError``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest
from tests.helpers import needs_extra, registry_with

import crucible_actors
from crucible_actors import (
    Context,
    EncodeError,
    Experiment,
    InvalidExperiment,
    StageDef,
    stage,
)
from crucible_actors.stages import BenchStage, GuardrailsStage

if TYPE_CHECKING:
    from pathlib import Path

EXAMPLES = [{"input": "ok"}, {"input": "STOP SHOUTING"}]


def scores(ctx: Context) -> dict[str, list[float]]:
    return {"a": [1.0, 2.0, 3.0], "b": [2.0, 3.0, 5.0]}


class ShoutScanner:
    """A guardrail adapter class: flags inputs written in capitals."""

    def scan(self, examples: list[dict[str, Any]], opts: Any) -> list[dict[str, Any]]:
        return [
            {"example": i, "kind": "shouting"}
            for i, ex in enumerate(examples)
            if str(ex["input"]).isupper()
        ]


@stage("load")
def load(ctx: Context, opts: Any) -> Context:
    return ctx.assign("examples", list(EXAMPLES))


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (BenchStage, GuardrailsStage, load)


@pytest.mark.parametrize("isolation", ["inline", "thread"])
@needs_extra("bench", "scipy")
async def test_bench_data_source_function_given_directly(isolation: str) -> None:
    exp = Experiment(
        id="c",
        pipeline=[
            StageDef(name="load"),
            StageDef(name="bench", options={"data_source": scores}, isolation=isolation),  # type: ignore[arg-type]
        ],
    )
    ctx = await crucible_actors.run_async(exp, registry=registry_with(*STAGES))
    assert ctx.metrics["bench"]["results"]["sample_sizes"] == {"a": 3, "b": 3}


async def test_guardrail_adapter_class_given_directly() -> None:
    exp = Experiment(
        id="c",
        pipeline=[
            StageDef(name="load"),
            StageDef(name="guardrails", options={"adapter": ShoutScanner}),
        ],
    )
    ctx = await crucible_actors.run_async(exp, registry=registry_with(*STAGES))
    assert ctx.assigns["guardrail_violations"] == [{"example": 1, "kind": "shouting"}]


@needs_extra("bench", "scipy")
async def test_local_function_works_in_a_persisted_run(tmp_path: Path) -> None:
    def local_source(ctx: Context) -> dict[str, list[float]]:
        return {"only": [0.5, 0.7, 0.9]}

    exp = Experiment(
        id="c", pipeline=[StageDef(name="bench", options={"data_source": local_source})]
    )
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    ctx = await crucible_actors.run_async(exp, registry=registry_with(*STAGES), store=store)
    assert ctx.metrics["bench"]["results"]["n"] == 3


def test_process_isolated_stage_refuses_a_function_before_the_run() -> None:
    with pytest.raises(InvalidExperiment) as info:
        StageDef(name="bench", options={"data_source": scores}, isolation="process")
    message = str(info.value)
    assert "stage 'bench': options['data_source'] holds the Python object" in message
    assert "test_callable_options:scores" in message
    assert '"pkg.mod:attr" reference string' in message


def test_process_isolated_stage_refuses_a_nested_class() -> None:
    with pytest.raises(InvalidExperiment, match=r"options\['cfg'\]\['adapters'\]\[0\]"):
        StageDef(
            name="guardrails", options={"cfg": {"adapters": [ShoutScanner]}}, isolation="process"
        )


def test_process_isolated_stage_accepts_a_reference_string() -> None:
    ref = "crucible_actors.stages:PatternScanner"
    sd = StageDef(name="guardrails", options={"adapter": ref}, isolation="process")
    assert sd.options == {"adapter": ref}


async def test_an_unpicklable_object_in_assigns_still_fails_with_encode_error() -> None:
    # Picklable objects now travel (issue 22); a lock can be neither encoded nor pickled.
    exp = Experiment(id="c", pipeline=[StageDef(name="load")])
    with pytest.raises(EncodeError, match=r"assigns\['fn'\]"):
        await crucible_actors.run_async(
            exp, registry=registry_with(*STAGES), assigns={"fn": threading.Lock()}
        )
