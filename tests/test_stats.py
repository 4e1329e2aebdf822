"""``crucible_actors.stats``: the contract figures, and agreement with scipy/statsmodels."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from tests.helpers import missing_extra

pytest.importorskip("scipy", reason=missing_extra("bench"))

from scipy import stats as sps

from crucible_actors import stats


def pairs(n: int, b: int, c: int, both: int = 0) -> tuple[list[int], list[int]]:
    """0/1 scores of n examples: b only the baseline right, c only the candidate, both right."""
    base = [1] * b + [0] * c + [1] * both + [0] * (n - b - c - both)
    cand = [0] * b + [1] * c + [1] * both + [0] * (n - b - c - both)
    return base, cand


def test_mcnemar_exact_figures_of_the_contract() -> None:
    result = stats.mcnemar(*pairs(1797, 18, 34, both=1600))
    assert result.discordant == (18, 34)
    assert result.p_value == pytest.approx(0.03648, abs=5e-6)
    assert result.statistic == 18
    assert result.estimate == pytest.approx(16 / 1797)
    small = stats.mcnemar(*pairs(50, 0, 4, both=40))
    assert (small.discordant, small.p_value) == ((0, 4), pytest.approx(0.125))
    assert not small.p_value < 0.05


@pytest.mark.slow  # imports statsmodels
@pytest.mark.parametrize(("b", "c"), [(18, 34), (0, 4), (7, 7), (3, 20), (0, 0)])
def test_mcnemar_matches_statsmodels(b: int, c: int) -> None:
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    table = [[10, b], [c, 30]]
    base, cand = pairs(40 + b + c, b, c, both=10)
    if b + c == 0:  # statsmodels warns (0/0) and answers NaN for the chi-square form
        assert stats.mcnemar(base, cand).p_value == 1.0
        return
    exact = sm_mcnemar(table, exact=True)
    chi2 = sm_mcnemar(table, exact=False, correction=True)
    assert stats.mcnemar(base, cand).p_value == pytest.approx(exact.pvalue, rel=1e-12)
    if b + c:
        got = stats.mcnemar(base, cand, method="chi2")
        assert (got.statistic, got.p_value) == (
            pytest.approx(chi2.statistic),
            pytest.approx(chi2.pvalue, rel=1e-12),
        )
        midp = stats.mcnemar(base, cand, method="midp").p_value
        assert midp == pytest.approx(exact.pvalue - sps.binom.pmf(min(b, c), b + c, 0.5))


def test_mcnemar_interval_is_agresti_min_and_refuses_non_binary_scores() -> None:
    result = stats.mcnemar(*pairs(100, 5, 15, both=60))
    # Agresti & Min (2005): add 1/2 to every cell, then the Wald interval.
    n, pb, pc = 102, 5.5 / 102, 15.5 / 102
    half = 1.959963984540054 * math.sqrt((pb + pc - (pc - pb) ** 2) / n)
    assert result.confidence_interval == pytest.approx((pc - pb - half, pc - pb + half))
    with pytest.raises(ValueError, match=r"candidate\[1\] is 0.5; McNemar's test needs 0/1"):
        stats.mcnemar([1, 0], [1, 0.5])
    with pytest.raises(ValueError, match="unknown McNemar method 'fisher'"):
        stats.mcnemar([1, 0], [0, 1], method="fisher")


def test_clustered_se_figure() -> None:
    assert stats.clustered_se([1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 0]) == pytest.approx(1 / 6)


@pytest.mark.slow  # imports statsmodels
def test_clustered_se_matches_statsmodels() -> None:
    import statsmodels.api as sm

    rng = random.Random(3)
    clusters = [i // 4 for i in range(200)]
    effects = [rng.gauss(0, 1) for _ in range(50)]
    y = [effects[g] + rng.gauss(0, 1) for g in clusters]
    fit = sm.OLS(y, np.ones(len(y))).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    assert stats.clustered_se(y, clusters) == pytest.approx(float(fit.bse[0]), rel=1e-10)
    base = [rng.gauss(0, 1) for _ in y]
    diffs = [v - u for u, v in zip(base, y, strict=True)]
    fit_d = sm.OLS(diffs, np.ones(len(y))).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    assert stats.clustered_se(y, clusters, baseline=base) == pytest.approx(float(fit_d.bse[0]))
    with pytest.raises(ValueError, match="at least 2 clusters, got 1"):
        stats.clustered_se([1.0, 2.0], ["a", "a"])


def test_clustered_ttest_uses_g_minus_1_degrees_of_freedom() -> None:
    rng = random.Random(5)
    clusters = [i // 5 for i in range(60)]
    base = [rng.random() for _ in clusters]
    cand = [x + 0.1 + rng.gauss(0, 0.2) for x in base]
    result = stats.clustered_ttest(base, cand, clusters)
    se = stats.clustered_se(cand, clusters, baseline=base)
    mean = float(np.mean(np.subtract(cand, base)))
    assert (result.estimate, result.standard_error, result.df) == (
        pytest.approx(mean),
        pytest.approx(se),
        11.0,
    )
    assert result.p_value == pytest.approx(2 * sps.t.sf(abs(mean / se), 11))
    lo, hi = result.confidence_interval or (0.0, 0.0)
    assert (lo > 0 or hi < 0) == (result.p_value is not None and result.p_value < 0.05)


def test_corrected_resampled_ttest_figure() -> None:
    diffs = [0.01, 0.02, 0, 0.015, 0.005, 0.01, 0.02, 0, 0.01, 0.01]
    result = stats.corrected_resampled_ttest(diffs, test_train_ratio=1 / 9)
    assert result.statistic == pytest.approx(3.078, abs=5e-4)
    assert result.p_value == pytest.approx(0.01318, abs=5e-6)
    naive = sps.ttest_1samp(diffs, 0)
    zero = stats.corrected_resampled_ttest(diffs, test_train_ratio=0)
    assert zero.p_value == pytest.approx(naive.pvalue, rel=1e-10)
    with pytest.raises(ValueError, match="test_train_ratio must be"):
        stats.corrected_resampled_ttest(diffs, test_train_ratio=-1)


def test_five_by_two_cv_ttest_is_dietterichs_formula() -> None:
    d = [[0.02, 0.01], [0.03, 0.00], [0.01, 0.02], [0.02, 0.02], [0.00, 0.03]]
    s2 = [(a - (a + b) / 2) ** 2 + (b - (a + b) / 2) ** 2 for a, b in d]
    t = 0.02 / math.sqrt(sum(s2) / 5)
    result = stats.five_by_two_cv_ttest(d)
    assert (result.statistic, result.df) == (pytest.approx(t), 5.0)
    assert result.p_value == pytest.approx(2 * sps.t.sf(t, 5))


def test_wilson_interval_figure() -> None:
    assert stats.proportion_interval(19, 20) == pytest.approx((0.76387, 0.99112), abs=5e-6)


@pytest.mark.slow  # imports statsmodels
def test_proportion_intervals_match_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    for method, sm_name in (
        ("wilson", "wilson"),
        ("agresti_coull", "agresti_coull"),
        ("clopper_pearson", "beta"),
        ("jeffreys", "jeffreys"),
    ):
        for k, n in ((0, 10), (3, 10), (19, 20), (20, 20), (412, 1000)):
            got = stats.proportion_interval(k, n, confidence_level=0.9, method=method)
            ref = proportion_confint(k, n, alpha=0.1, method=sm_name)
            if method == "jeffreys" and k in (0, n):
                # Brown, Cai & DasGupta (2001): the bound at 0 (or n) successes is 0 (or 1);
                # statsmodels keeps the Beta quantile there.
                ref = (0.0, ref[1]) if k == 0 else (ref[0], 1.0)
            assert got == pytest.approx(tuple(float(v) for v in ref), abs=1e-9), (method, k, n)
            assert 0 <= got[0] <= k / n <= got[1] <= 1
    with pytest.raises(ValueError, match=r"successes must be an int in \[0, n=5\], got 6"):
        stats.proportion_interval(6, 5)


def test_power_figures_and_inverse() -> None:
    mde = stats.minimum_detectable_effect(n=1797, sd=0.16992)
    assert mde == pytest.approx(0.01123, abs=5e-6)
    unpaired = stats.minimum_detectable_effect(n=1797, sd=0.16992, paired=False)
    assert unpaired == pytest.approx(mde * math.sqrt(2))
    n = stats.sample_size(effect=0.01123, sd=0.16992)
    assert n in (1797, 1798)
    assert stats.sample_size(effect=0.05, sd=0.5, paired=False) == math.ceil(
        2 * (2.8015852 * 0.5 / 0.05) ** 2
    )


@pytest.mark.slow  # imports statsmodels
def test_sample_size_matches_statsmodels() -> None:
    from statsmodels.stats.power import NormalIndPower

    ref = NormalIndPower().solve_power(effect_size=0.3, alpha=0.05, power=0.8, ratio=1.0)
    assert stats.sample_size(effect=0.3, sd=1.0, paired=False) == math.ceil(ref)


@pytest.mark.slow  # imports statsmodels and pandas
def test_cochrans_q_friedman_and_rm_anova_match_references() -> None:
    import pandas as pd
    from statsmodels.stats.anova import AnovaRM
    from statsmodels.stats.contingency_tables import cochrans_q

    rng = random.Random(9)
    binary = [[int(rng.random() < p) for _ in range(80)] for p in (0.5, 0.6, 0.75)]
    ref = cochrans_q(np.asarray(binary).T)
    got = stats.cochrans_q(binary)
    assert (got.statistic, got.p_value) == (
        pytest.approx(ref.statistic, rel=1e-12),
        pytest.approx(ref.pvalue, rel=1e-12),
    )
    scores = [[rng.gauss(m, 1) for _ in range(30)] for m in (0.0, 0.2, 0.5)]
    fr = sps.friedmanchisquare(*scores)
    assert stats.friedman(scores).p_value == pytest.approx(fr.pvalue, rel=1e-12)
    rounded = [[round(v) for v in s] for s in scores]  # ties
    assert stats.friedman(rounded).p_value == pytest.approx(
        sps.friedmanchisquare(*rounded).pvalue, rel=1e-12
    )
    frame = pd.DataFrame(
        [(i, j, v) for j, s in enumerate(scores) for i, v in enumerate(s)],
        columns=["subject", "system", "score"],
    )
    table = AnovaRM(frame, "score", "subject", within=["system"]).fit().anova_table
    got = stats.rm_anova(scores)
    assert got.statistic == pytest.approx(float(table["F Value"].iloc[0]), rel=1e-10)
    assert got.p_value == pytest.approx(float(table["Pr > F"].iloc[0]), rel=1e-10)


def test_seed_test_counts_run_to_run_variance() -> None:
    # The deterministic case: A at 70/72/74%, B at 73/75/77%, 1,000 questions.
    def runs(accuracies: list[float]) -> list[list[float]]:
        return [[1.0] * round(a * 1000) + [0.0] * round((1 - a) * 1000) for a in accuracies]

    a, b = runs([0.70, 0.72, 0.74]), runs([0.73, 0.75, 0.77])
    result = stats.seed_ttest(a, b, paired=False)
    welch = sps.ttest_ind([0.73, 0.75, 0.77], [0.70, 0.72, 0.74])
    assert result.test == "run_level_ttest"
    assert result.details["decided_by"] == "seeds"
    assert result.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    assert result.p_value == pytest.approx(0.14, abs=0.01)
    assert result.details["seed_sd"] == pytest.approx(0.02)
    # No seed variance at all: the per-example paired test decides.
    same = [[float(i % 3 == 0) for i in range(300)]] * 3
    better = [[float(i % 3 == 0 or i % 7 == 0) for i in range(300)]] * 3
    paired = stats.seed_ttest(same, better, paired=True)
    assert paired.test == "variance_components_ttest"
    assert paired.details["decided_by"] == "examples"
    ref = sps.ttest_rel(better[0], same[0])
    assert paired.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    with pytest.raises(ValueError, match="needs a side with at least 2 runs"):
        stats.seed_ttest([[1.0, 0.0]], [[0.0, 1.0]], paired=True)


def test_cohens_h_and_the_public_surface() -> None:
    assert stats.cohens_h(0.5, 0.62) == pytest.approx(
        2 * math.asin(math.sqrt(0.62)) - 2 * math.asin(math.sqrt(0.5))
    )
    assert stats.interpret_effect(stats.cohens_h(0.5, 0.62)) == "small"
    public = {n for n in vars(stats) if not n.startswith("_")}
    assert set(stats.__all__) == public - {"annotations"}
    assert all(getattr(stats, name).__doc__ for name in stats.__all__ if name[0].islower())


def test_paired_effect_interval_is_scipys_bca_over_the_pairs() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(0.5, 0.1, 40)
    b = a + rng.normal(0.03, 0.05, 40)
    got = stats.effect_size(a, b, paired=True, n_resamples=2000, seed=3)["cohens_dz_ci"]

    def dz(x: Any, y: Any, axis: int = -1) -> Any:
        d = y - x
        return d.mean(axis=axis) / d.std(axis=axis, ddof=1)

    ref = sps.bootstrap(
        (a, b), dz, paired=True, n_resamples=2000, method="BCa", rng=np.random.default_rng(3)
    )
    assert got == pytest.approx(list(ref.confidence_interval), rel=1e-10)
