"""A sweep run on every store (memory, SQLite, PostgreSQL), then compared point by point."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from tests.helpers import needs_extra, registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, StageDef
from crucible_actors.comparison import ComparisonError

if TYPE_CHECKING:
    from crucible_actors.store import Store


class Opts(msgspec.Struct):
    quality: float = 0.5
    broken: bool = False


@ca.stage("answer", options=Opts)
async def answer(ctx: Context, opts: Opts) -> Context:
    if opts.broken:
        raise RuntimeError("this point is broken")
    rng = random.Random(ctx.telemetry_context["seed"])
    scores = [{"id": f"q{i}", "score": opts.quality + rng.gauss(0, 0.05)} for i in range(20)]
    return ctx.add_outputs(scores)


def experiment(**sweep: Any) -> Experiment:
    return Experiment(id="cmp", pipeline=[StageDef(name="answer")], sweep=sweep)


async def run_sweep(store: Store, exp: Experiment) -> str:
    reg = registry_with(answer)
    async with ca.open_runtime(registry=reg, store=store) as rt:
        handle = await rt.submit_sweep(exp, max_concurrent=4)
        await handle.wait()
    return handle.sweep_id


@needs_extra("bench", "scipy")
async def test_sweep_points_are_ranked_and_tested_against_the_best(store: Store) -> None:
    sweep_id = await run_sweep(store, experiment(**{"answer.quality": [0.5, 0.8, 0.52]}, repeats=2))
    result = await ca.compare_sweep(store, sweep_id, pair_by="id")
    assert result.sweep_id == sweep_id
    assert result.ranking[0] == "quality=0.8"
    assert [g.label for g in result.groups] == ["quality=0.5", "quality=0.8", "quality=0.52"]
    assert all(len(g.run_ids) == 2 for g in result.groups)
    assert {c.baseline for c in result.comparisons} == {"quality=0.8"}
    assert [c.candidate for c in result.comparisons] == result.ranking[1:]
    assert all(c.better == "quality=0.8" for c in result.comparisons)
    assert result.verdict == (
        f"Best: quality=0.8 (mean {result.groups[1].mean:.4g}). It is significantly better than"
        " every other point."
    )
    assert result.groups[1].parameters == {"answer.quality": 0.8}


@needs_extra("bench", "scipy")
async def test_points_with_a_failed_run_are_left_out(store: Store) -> None:
    exp = experiment(
        **{"answer.quality": [0.5, 0.6, 0.7], "answer.broken": [False, True, False]}, mode="zip"
    )
    sweep_id = await run_sweep(store, exp)
    result = await ca.compare_sweep(store, sweep_id)
    assert [g.label for g in result.groups] == [
        "quality=0.5 broken=False",
        "quality=0.7 broken=False",
    ]
    assert result.dropped == {"incomplete points": 1}


async def test_unknown_sweep_is_an_error(store: Store) -> None:
    with pytest.raises(ComparisonError, match="no sweep 'nope'"):
        await ca.compare_sweep(store, "nope")
