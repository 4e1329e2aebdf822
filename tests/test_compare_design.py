"""``compare`` picks the test that fits the data and says which and why (issue 18)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from tests.compare_helpers import stored_run
from tests.helpers import missing_extra

pytest.importorskip("scipy", reason=missing_extra("bench"))

from scipy import stats as sps

import crucible_actors as ca
from crucible_actors import stats
from crucible_actors.comparison import CompareOptions, ComparisonError, render
from crucible_actors.comparison._analysis import RunGroup
from crucible_actors.comparison._analysis import build as _build
from crucible_actors.store import RunRecord, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from crucible_actors.store import Store

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path}/d.db") as opened:
        yield opened


def binary_pair(n: int, b: int, c: int, both: int) -> tuple[list[int], list[int]]:
    base = [1] * b + [0] * c + [1] * both + [0] * (n - b - c - both)
    cand = [0] * b + [1] * c + [1] * both + [0] * (n - b - c - both)
    return base, cand


def record(run_id: str, scores: Sequence[float], **fields: Sequence[Any]) -> RunRecord:
    outputs = [
        {"id": f"q{i:04d}", "score": s, **{k: v[i] for k, v in fields.items()}}
        for i, s in enumerate(scores)
    ]
    return RunRecord(
        id=run_id, experiment_id="e", status="completed", outputs=outputs, started_at=T0
    )


def build(
    sides: list[RunGroup],
    *,
    reference: int | None = None,
    sweep_id: str | None = "s",
    **options: Any,
) -> ca.Comparison:
    opts = CompareOptions(**{"bootstrap_iterations": 500, **options})
    return _build(sides, opts, reference=reference, sweep_id=sweep_id)


async def test_0_1_scores_get_mcnemar_with_b_and_c_and_wilson_intervals(store: Store) -> None:
    base, cand = binary_pair(50, 0, 4, both=30)
    await stored_run(store, "a", base)
    await stored_run(store, "b", cand)
    result = await ca.compare(store, ["a", "b"])
    assert result.paired
    assert result.binary
    assert result.design.startswith(
        "paired by id (50 examples) (automatically: every output has a unique id"
    )
    (c,) = result.comparisons
    assert (c.test, c.discordant) == ("mcnemar", [0, 4])
    assert c.p_value == pytest.approx(0.125)
    assert not c.significant
    assert "by McNemar's exact test (b = 0, c = 4)" in c.verdict
    assert "+8.0 points" in c.verdict
    assert "could not detect differences under" in c.verdict
    assert c.verdict.endswith(" points.")
    assert c.effect_size["name"] == "cohens_h"
    assert c.effect_size["value"] == pytest.approx(stats.cohens_h(30 / 50, 34 / 50))
    assert result.groups[1].interval == "Wilson"
    assert result.groups[1].confidence_interval == pytest.approx(
        list(stats.proportion_interval(34, 50))
    )
    table = render(result, "table")
    assert "mcnemar b=0 c=4" in table
    assert "+8.0 pt" in table


async def test_mcnemar_figure_on_the_digits_scale(store: Store) -> None:
    base, cand = binary_pair(1797, 18, 34, both=1700)
    await stored_run(store, "a", base, keys=[f"d{i}" for i in range(1797)])
    await stored_run(store, "b", cand, keys=[f"d{i}" for i in range(1797)])
    (c,) = (await ca.compare(store, ["a", "b"])).comparisons
    assert c.p_value == pytest.approx(0.03648, abs=5e-6)
    assert c.significant
    assert c.minimum_detectable_effect is None  # significant: no power note


async def test_unpaired_opts_out_and_outputs_without_unique_ids_stay_unpaired(
    store: Store,
) -> None:
    await stored_run(store, "a", [0.1, 0.2, 0.3, 0.4])
    await stored_run(store, "b", [0.2, 0.3, 0.5, 0.5])
    await stored_run(store, "c", [0.2, 0.3, 0.5, 0.5], keys=["x", "x", "y", "z"])
    out = await ca.compare(store, ["a", "b"], unpaired=True)
    assert (out.paired, out.comparisons[0].test) == (False, "ttest")
    dup = await ca.compare(store, ["a", "c"])
    assert not dup.paired
    assert dup.design.startswith("unpaired (not every output has a unique id")
    with pytest.raises(ComparisonError, match="pair_by and unpaired contradict"):
        await ca.compare(store, ["a", "b"], unpaired=True, pair_by="id")


def test_cluster_by_uses_cluster_robust_errors() -> None:
    rng = random.Random(4)
    passages = [i // 4 for i in range(200)]
    effects = [rng.gauss(0, 0.3) for _ in range(50)]
    a = [0.5 + effects[g] + rng.gauss(0, 0.2) for g in passages]
    b = [x + 0.03 + effects[g] * 0.5 + rng.gauss(0, 0.2) for x, g in zip(a, passages, strict=True)]
    sides = [
        RunGroup("a", [record("ra", a, passage=passages)]),
        RunGroup("b", [record("rb", b, passage=passages)]),
    ]
    result = build(sides, cluster_by="passage", reference=0, sweep_id=None)
    (c,) = result.comparisons
    ref = stats.clustered_ttest(a, b, passages)
    assert c.test == "clustered_ttest"
    assert c.tests["clustered_ttest"]["df"] == 49
    assert c.p_value == pytest.approx(ref.p_value)
    assert c.mean_difference_ci == pytest.approx(list(ref.confidence_interval or ()))
    naive = sps.ttest_rel(b, a)
    assert c.tests["clustered_ttest"]["standard_error"] > np.std(np.subtract(b, a), ddof=1) / (
        200**0.5
    )
    assert naive.pvalue < c.p_value
    assert "clustered by passage (50 clusters)" in result.design
    assert result.groups[0].interval == "cluster-robust t"


def _seed_runs(label: str, accuracies: Sequence[float]) -> RunGroup:
    runs = []
    for r, acc in enumerate(accuracies):
        right = round(acc * 1000)
        runs.append(record(f"{label}{r}", [1.0] * right + [0.0] * (1000 - right)))
    return RunGroup(label, runs)


def test_sweep_repeats_are_seeds_by_default() -> None:
    # The deterministic case: 70/72/74% against 73/75/77% on 1,000 questions.
    sides = [_seed_runs("A", [0.70, 0.72, 0.74]), _seed_runs("B", [0.73, 0.75, 0.77])]
    seeds = build(sides)
    (c,) = seeds.comparisons
    assert c.test == "variance_components_ttest"
    assert c.p_value == pytest.approx(sps.ttest_ind([0.73, 0.75, 0.77], [0.7, 0.72, 0.74]).pvalue)
    assert c.p_value == pytest.approx(0.14, abs=0.01)
    assert not c.significant
    assert [g.seed_sd for g in seeds.groups] == pytest.approx([0.02, 0.02])
    assert "(seed SD 0.02; 3+3 runs)" in c.verdict
    assert "repeated runs are seeds" in seeds.design
    assert "SEED SD" in render(seeds, "table")
    samples = build(sides, repeats="samples")
    assert samples.comparisons[0].test == "paired_ttest"
    assert samples.comparisons[0].p_value < 1e-10
    assert "treated as eval-time samples" in samples.notes[0]
    with pytest.raises(ValueError, match="repeats must be 'seeds' or 'samples'"):
        build(sides, repeats="seed")


def test_sweep_corrects_over_all_pairs_and_picks_the_omnibus_for_the_design() -> None:
    rng = random.Random(8)
    base = [rng.random() for _ in range(60)]
    shifts = (0.0, 0.01, 0.03, 0.05)
    values = [[x + s + rng.gauss(0, 0.05) for x in base] for s in shifts]
    sides = [RunGroup(f"p{i}", [record(f"r{i}", v)]) for i, v in enumerate(values)]
    result = build(sides)
    assert result.family == "all_pairs"
    assert "over all 6 pairs of points" in result.design
    raw = {}
    for i in range(4):
        for j in range(i + 1, 4):
            raw[(i, j)] = sps.ttest_rel(values[j], values[i]).pvalue
    adjusted = dict(zip(raw, stats.adjust_pvalues(list(raw.values()), "holm"), strict=True))
    best = 3
    for c in result.comparisons:
        j = int(c.candidate[1:])
        assert c.p_value == pytest.approx(adjusted[tuple(sorted((j, best)))])  # type: ignore[index]
    assert result.omnibus is not None
    assert set(result.omnibus) == {"friedman", "rm_anova", "verdict"}
    assert result.omnibus["friedman"]["p_value"] == pytest.approx(
        sps.friedmanchisquare(*values).pvalue
    )
    binary = [[float(rng.random() < p) for _ in range(80)] for p in (0.5, 0.6, 0.8)]
    sides = [RunGroup(f"b{i}", [record(f"s{i}", v)]) for i, v in enumerate(binary)]
    q = build(sides).omnibus
    assert q is not None
    assert set(q) == {"cochrans_q", "verdict"}
    assert "by Cochran's Q" in q["verdict"]


async def test_cross_validation_folds_get_the_corrected_test(store: Store) -> None:
    diffs = [0.01, 0.02, 0, 0.015, 0.005, 0.01, 0.02, 0, 0.01, 0.01]
    folds = [0.90, 0.91, 0.89, 0.92, 0.90, 0.93, 0.88, 0.91, 0.90, 0.92]
    await stored_run(store, "lr", folds, field="fold_accuracy")
    await stored_run(
        store, "rf", [f + d for f, d in zip(folds, diffs, strict=True)], field="fold_accuracy"
    )
    result = await ca.compare(store, ["lr", "rf"], test_train_ratio=1 / 9)
    (c,) = result.comparisons
    assert c.test == "corrected_resampled_ttest"
    assert set(c.tests) == {"corrected_resampled_ttest"}  # never the naive test beside it
    assert c.tests[c.test]["statistic"] == pytest.approx(3.078, abs=5e-4)
    assert c.p_value == pytest.approx(0.01318, abs=5e-6)
    assert "corrected resampled t-test (Nadeau & Bengio)" in result.design
    with pytest.raises(ValueError, match="test_train_ratio must be n_test / n_train"):
        await ca.compare(store, ["lr", "rf"], test_train_ratio=0)


def test_large_comparisons_use_the_normal_interval_of_the_effect_size() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(0.5, 0.1, 2_501)
    b = a + rng.normal(0.01, 0.1, a.size)
    sides = [RunGroup("a", [record("ra", a.tolist())]), RunGroup("b", [record("rb", b.tolist())])]
    (c,) = build(sides, reference=0, sweep_id=None).comparisons
    d = b - a
    dz = d.mean() / d.std(ddof=1)
    se = np.sqrt(1 / d.size + dz**2 / (2 * d.size))
    assert c.effect_size["interval"] == "normal"
    assert c.effect_size["value"] == pytest.approx(dz)
    assert c.effect_size["ci"] == pytest.approx([dz - 1.959964 * se, dz + 1.959964 * se])
