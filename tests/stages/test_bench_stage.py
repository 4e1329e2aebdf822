"""Tests for the ``bench`` stage (the statistics themselves: ``test_bench_stats.py``)."""

from __future__ import annotations

import logging
import statistics
import sys
import textwrap
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from tests.helpers import missing_extra, registry_with

pytest.importorskip("scipy", reason=missing_extra("bench"))

import scipy.stats  # noqa: F401  (imported at collection, so no test pays for it)

import crucible_actors
from crucible_actors import (
    Context,
    Experiment,
    InvalidOptions,
    MissingDependency,
    ReliabilityConfig,
    StageDef,
    StageFailed,
    StatsConfig,
    stage,
)
from crucible_actors.stages import BenchStage
from crucible_actors.stages.bench import MISSING_GROUP, BenchOptions
from crucible_actors.stats import analyze

if TYPE_CHECKING:
    from pathlib import Path

BASELINE = [0.70, 0.72, 0.69, 0.71, 0.70, 0.73]
CANDIDATE = [0.80, 0.79, 0.82, 0.81, 0.78, 0.80]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _ctx(
    *,
    outputs: list[Any] | None = None,
    metrics: dict[str, Any] | None = None,
    stats: StatsConfig | None = None,
) -> Context:
    exp = Experiment(
        id="b",
        pipeline=[StageDef(name="bench")],
        reliability=ReliabilityConfig(stats=stats) if stats is not None else None,
    )
    ctx = Context.new(exp, run_id="r")
    ctx = ctx.add_outputs(outputs or [])
    return ctx.merge_metrics(metrics or {})


async def _run(ctx: Context, **opts: Any) -> dict[str, Any]:
    result = await BenchStage(now=lambda: NOW).run(ctx, BenchOptions(**opts))
    bench: dict[str, Any] = result.metrics["bench"]
    return bench


def _metrics_ctx(**kw: Any) -> Context:
    return _ctx(metrics={"baseline": BASELINE, "candidate": CANDIDATE, "n": 3}, **kw)


# --- result shape -------------------------------------------------------------------------


async def test_result_holds_the_analysis_and_when_it_ran() -> None:
    bench = await _run(_metrics_ctx(), data_source="metrics")
    assert set(bench) == {"tests_run", "alpha", "correction", "results", "group_stats", "timestamp"}
    assert bench["tests_run"] == ["ttest"]
    assert bench["alpha"] == 0.05
    assert bench["correction"] == "none"
    assert bench["timestamp"] == "2025-03-01T12:00:00+00:00"
    assert bench["results"] == analyze({"baseline": BASELINE, "candidate": CANDIDATE})


async def test_group_stats_give_each_group_its_mean_and_interval() -> None:
    bench = await _run(_metrics_ctx(), data_source="metrics")
    stats = bench["group_stats"]
    assert list(stats) == ["baseline", "candidate"]
    assert stats["candidate"]["n"] == 6
    assert stats["candidate"]["mean"] == pytest.approx(sum(CANDIDATE) / 6)
    lo, hi = stats["candidate"]["confidence_interval"]
    assert lo < stats["candidate"]["mean"] < hi


async def test_no_groups_means_no_data() -> None:
    bench = await _run(_ctx())
    assert bench["results"] == {"no_data": True}
    assert bench["group_stats"] == {}


# --- data sources -------------------------------------------------------------------------


async def test_outputs_are_grouped_by_prompt_with_the_first_numeric_score() -> None:
    outputs = [
        {"prompt": "p1", "score": 0.5, "accuracy": 0.9},
        {"prompt": "p1", "accuracy": 0.7},
        {"prompt": "p1", "loss": 1.5},
        {"prompt": "p2", "score": True, "accuracy": 0.6},
        {"prompt": "p2", "score": 0.4},
        {"prompt": None, "score": 9.0},
        {"score": 8.0},
        {"prompt": "p2", "score": "high"},
        "not a dict",
    ]
    bench = await _run(_ctx(outputs=outputs))
    assert bench["results"]["sample_sizes"] == {"nil": 2, "p1": 3, "p2": 2}
    assert bench["group_stats"]["nil"]["mean"] == 8.5
    assert bench["group_stats"]["p1"]["mean"] == pytest.approx((0.5 + 0.7 + 1.5) / 3)
    assert bench["group_stats"]["p2"]["mean"] == pytest.approx((0.6 + 0.4) / 2)


async def test_unlabelled_scores_are_one_group_as_in_the_reference() -> None:
    scores = [0.5, 0.6, 0.7, 0.8, 0.9]
    bench = await _run(_ctx(outputs=[{"score": s} for s in scores]))
    results = bench["results"]
    assert results["group"] == MISSING_GROUP
    assert results["n"] == 5
    assert results["mean"] == pytest.approx(0.7)
    assert results["std"] == pytest.approx(statistics.stdev(scores))
    lo, hi = results["confidence_interval"]
    assert lo < 0.7 < hi
    assert results["tests_skipped"] == "Single group - no comparison tests possible"
    assert bench["group_stats"][MISSING_GROUP]["n"] == 5


async def test_items_without_a_number_are_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outputs = [{"prompt": "a", "score": 1.0}, {"prompt": "a", "score": 2.0}, {"prompt": "a"}]
    outputs += [{"prompt": "b", "text": "x"}, "not a dict"]
    with caplog.at_level(logging.WARNING, logger="crucible_actors"):
        bench = await _run(_ctx(outputs=outputs))
    assert bench["results"]["n"] == 2
    assert "skipped 3 of 5 output(s) with no numeric 'score' or 'accuracy' or 'loss'" in (
        caplog.text
    )


async def test_no_warning_when_every_item_has_a_number(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crucible_actors"):
        await _run(_ctx(outputs=[{"prompt": "a", "score": 1.0}, {"prompt": "a", "score": 2.0}]))
    assert "skipped" not in caplog.text


async def test_group_by_and_score_key_choose_the_fields() -> None:
    outputs = [
        {"model": "a", "latency": 1.0, "score": 0},
        {"model": "a", "latency": 2.0},
        {"model": "b", "latency": 3.0},
        {"model": "b", "latency": 5.0},
    ]
    bench = await _run(_ctx(outputs=outputs), group_by="model", score_key="latency")
    assert bench["group_stats"]["a"]["mean"] == 1.5
    assert bench["group_stats"]["b"]["mean"] == 4.0


async def test_metrics_source_uses_every_list_of_numbers_by_default() -> None:
    ctx = _ctx(
        metrics={"a": [1.0, 2.0, 3.0], "b": [2, 3, 4], "flags": [True, False], "empty": [], "x": 1}
    )
    bench = await _run(ctx, data_source="metrics")
    assert bench["results"]["groups"] == ["a", "b"]


async def test_metrics_source_takes_the_named_keys() -> None:
    ctx = _ctx(metrics={"a": [1.0, 2.0, 3.0], "b": [2.0, 3.0, 4.5], "c": [9.0, 9.5]})
    bench = await _run(ctx, data_source="metrics", keys=["a", "c"])
    assert bench["results"]["groups"] == ["a", "c"]


async def test_named_metric_that_is_absent_or_not_numbers_is_an_error() -> None:
    ctx = _ctx(metrics={"a": [1.0, 2.0], "label": "x"})
    with pytest.raises(ValueError, match=r"^metric 'b' not found; metrics present: a, label$"):
        await _run(ctx, data_source="metrics", keys=["b"])
    with pytest.raises(ValueError, match=r"^metric 'label' is not a list of numbers: 'x'$"):
        await _run(ctx, data_source="metrics", keys=["label"])


async def test_callable_data_source_sync_and_async() -> None:
    seen: list[Context] = []

    def groups(ctx: Context) -> dict[str, list[float]]:
        seen.append(ctx)
        return {"x": BASELINE, "y": CANDIDATE}

    async def agroups(ctx: Context) -> dict[str, list[float]]:
        return {"x": BASELINE, "y": CANDIDATE}

    ctx = _ctx()
    assert (await _run(ctx, data_source=groups))["results"]["groups"] == ["x", "y"]
    assert seen == [ctx]
    assert (await _run(ctx, data_source=agroups))["results"]["groups"] == ["x", "y"]


async def test_callable_data_source_must_return_a_mapping() -> None:
    def bad(ctx: Context) -> list[float]:
        return [1.0, 2.0]

    with pytest.raises(TypeError) as info:
        await _run(_ctx(), data_source=bad)
    assert str(info.value) == (
        f"bench data_source {__name__}:"
        "test_callable_data_source_must_return_a_mapping.<locals>.bad returned list, "
        "expected a mapping of group name to a list of numbers"
    )


async def test_groups_too_small_fail_with_the_analysis_message() -> None:
    with pytest.raises(ValueError, match=r"^group 'p1' has 1 value\(s\); each group needs"):
        await _run(_ctx(outputs=[{"prompt": "p1", "score": 1.0}]))


# --- precedence ---------------------------------------------------------------------------


async def test_defaults_apply_without_options_or_experiment_stats() -> None:
    bench = await _run(_metrics_ctx(), data_source="metrics")
    assert (bench["tests_run"], bench["alpha"], bench["correction"]) == (["ttest"], 0.05, "none")


async def test_experiment_stats_apply_without_options() -> None:
    stats = StatsConfig(
        tests=["mann_whitney", "bootstrap"],
        alpha=0.01,
        multiple_testing_correction="holm",
        bootstrap_iterations=500,
        options={"seed": 7},
    )
    bench = await _run(_metrics_ctx(stats=stats), data_source="metrics")
    assert (bench["tests_run"], bench["alpha"], bench["correction"]) == (
        ["mann_whitney", "bootstrap"],
        0.01,
        "holm",
    )
    assert bench["results"] == analyze(
        {"baseline": BASELINE, "candidate": CANDIDATE},
        tests=["mann_whitney", "bootstrap"],
        alpha=0.01,
        correction="holm",
        bootstrap_iterations=500,
        seed=7,
    )


async def test_stage_options_win_over_experiment_stats() -> None:
    stats = StatsConfig(tests=["mann_whitney"], alpha=0.01, multiple_testing_correction="holm")
    bench = await _run(
        _metrics_ctx(stats=stats),
        data_source="metrics",
        tests=["ttest", "paired_ttest", "wilcoxon"],
        alpha=0.1,
        correction="bonferroni",
        equal_var=True,
    )
    assert (bench["tests_run"], bench["alpha"], bench["correction"]) == (
        ["ttest", "paired_ttest", "wilcoxon"],
        0.1,
        "bonferroni",
    )
    assert bench["results"] == analyze(
        {"baseline": BASELINE, "candidate": CANDIDATE},
        tests=["ttest", "paired_ttest", "wilcoxon"],
        alpha=0.1,
        correction="bonferroni",
        equal_var=True,
    )


async def test_bootstrap_with_a_seed_is_reproducible() -> None:
    opts = {
        "data_source": "metrics",
        "tests": ["bootstrap"],
        "seed": 3,
        "bootstrap_iterations": 300,
    }
    first = await _run(_metrics_ctx(), **opts)
    second = await _run(_metrics_ctx(), **opts)
    assert first["results"] == second["results"]


# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tests": ["ttest", "nope"]}, "tests[1]: invalid enum value 'nope'"),
        ({"alpha": 1.5}, "alpha must be a number strictly between 0 and 1, got 1.5"),
        ({"correction": "sidak"}, "correction: invalid enum value 'sidak'"),
        (
            {"data_source": "database"},
            "data_source: expected 'outputs', 'metrics', a callable or a 'pkg.mod:attr' "
            "reference, got 'database'",
        ),
        ({"bootstrap_iterations": 0}, "bootstrap_iterations must be a positive int, got 0"),
    ],
)
async def test_bad_options_fail_the_stage_before_it_runs(
    options: dict[str, Any], message: str
) -> None:
    registry = registry_with(BenchStage)
    exp = Experiment(id="b", pipeline=[StageDef(name="bench", options=options)])
    with pytest.raises(StageFailed) as info:
        await crucible_actors.run_async(exp, registry=registry)
    assert isinstance(info.value.reason, InvalidOptions)
    assert info.value.reason.errors == [message]


# --- in a run -----------------------------------------------------------------------------


@stage("scores")
def scores(ctx: Context, opts: Any) -> Context:
    rows = [{"prompt": "base", "score": s} for s in BASELINE]
    rows += [{"prompt": "cand", "score": s} for s in CANDIDATE]
    return ctx.add_outputs(rows)


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (BenchStage, scores)


async def test_bench_runs_in_a_pipeline() -> None:
    exp = Experiment(
        id="b",
        pipeline=[StageDef(name="scores"), StageDef(name="bench", options={"tests": ["ttest"]})],
    )
    ctx = await crucible_actors.run_async(exp, registry=registry_with(*STAGES))
    bench = ctx.metrics["bench"]
    assert bench["results"]["groups"] == ["base", "cand"]
    assert bench["results"]["test_results"]["ttest"]["significant"] is True


async def test_data_source_reference_in_a_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bench_ref_groups.py").write_text(
        textwrap.dedent(
            """
            def groups(ctx):
                return {"left": [1.0, 2.0, 3.0], "right": [2.0, 3.0, 4.0]}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    exp = Experiment(
        id="b",
        pipeline=[StageDef(name="bench", options={"data_source": "bench_ref_groups:groups"})],
    )
    ctx = await crucible_actors.run_async(exp, registry=registry_with(*STAGES))
    assert ctx.metrics["bench"]["results"]["groups"] == ["left", "right"]


async def test_without_scipy_the_stage_fails_with_missing_dependency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    exp = Experiment(id="b", pipeline=[StageDef(name="scores"), StageDef(name="bench")])
    with pytest.raises(StageFailed) as info:
        await crucible_actors.run_async(exp, registry=registry_with(*STAGES))
    reason = info.value.reason
    assert isinstance(reason, MissingDependency)
    assert (reason.package, reason.feature, reason.extra) == ("scipy", "bench", "bench")
    assert str(reason) == (
        "bench needs the 'scipy' package, which is not installed; "
        "install it with: pip install 'crucible-actors[bench]'"
    )
