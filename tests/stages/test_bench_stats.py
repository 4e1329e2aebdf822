"""Tests for the statistics behind the ``bench`` stage (``crucible_actors.stats``).

Every figure is checked against scipy called directly. Reference values from R are written
next to their datasets; R reports group1 - group2 where we report group2 - group1, so the
signs of t statistics and intervals are flipped.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import missing_extra

pytest.importorskip("scipy", reason=missing_extra("bench"))

from scipy import stats

import crucible_actors.stats as stats_pkg
from crucible_actors._core._errors import MissingDependency
from crucible_actors.stats import _groups as _stats
from crucible_actors.stats._groups import (
    TESTS,
    adjust_pvalues,
    analyze,
    cohens_d,
    hedges_g,
    interpret_effect,
    interpret_p,
    require_scipy,
)

# R's `sleep` data: extra hours of sleep for 10 patients under drug 1 and drug 2.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
SLEEP = {"drug1": SLEEP_1, "drug2": SLEEP_2}

# R's `PlantGrowth` data: dried plant weight for a control and two treatments.
PLANT = {
    "ctrl": [4.17, 5.58, 5.18, 6.11, 4.50, 4.61, 5.17, 4.53, 5.33, 5.14],
    "trt1": [4.81, 4.17, 4.41, 3.59, 5.87, 3.83, 6.03, 4.89, 4.32, 4.69],
    "trt2": [6.31, 5.12, 5.54, 5.50, 5.37, 5.29, 4.92, 6.15, 5.80, 5.26],
}

# The examples of R's ?wilcox.test (Hollander & Wolfe): depression scores before (x) and
# after (y) therapy, paired; and a two-sample comparison.
DEPRESSION_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
DEPRESSION_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
PERMEABILITY_X = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
PERMEABILITY_Y = [1.15, 0.88, 0.90, 0.74, 1.21]


def _assert_json_safe(value: object, where: str = "$") -> None:
    """Fail unless value is built from dict/list/str/int/float/bool/None, floats finite."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, f"{where}: key {key!r}"
            _assert_json_safe(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_json_safe(item, f"{where}[{i}]")
    elif type(value) is float:
        assert math.isfinite(value), f"{where}: {value!r}"
    else:
        assert value is None or type(value) in (str, int, bool), f"{where}: {type(value)}"


def _two(groups: dict[str, list[float]], test: str, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = analyze(groups, tests=[test], **kwargs)["test_results"][test]
    return result


# --------------------------------------------------------------------------- interpret_p


@pytest.mark.parametrize(
    ("p", "alpha", "expected"),
    [
        (0.0005, 0.05, "Extremely significant (p < 0.001)"),
        (0.0, 0.05, "Extremely significant (p < 0.001)"),
        (0.005, 0.05, "Highly significant (p < 0.01)"),
        (0.03, 0.05, "Significant (p < 0.05)"),
        (0.07, 0.1, "Significant (p < 0.1)"),
        (0.05, 0.05, "Not significant (p = 0.05)"),
        (0.07939414, 0.05, "Not significant (p = 0.0794)"),
        (0.12344, 0.05, "Not significant (p = 0.1234)"),
        (1.0, 0.05, "Not significant (p = 1.0)"),
        (0.005, 0.001, "Not significant (p = 0.005)"),
        (None, 0.05, "Not computable (p undefined)"),
        (math.nan, 0.05, "Not computable (p undefined)"),
    ],
)
def test_interpret_p_uses_reference_wording(p: float | None, alpha: float, expected: str) -> None:
    assert interpret_p(p, alpha) == expected


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (0.0, "negligible"),
        (0.19, "negligible"),
        (0.2, "small"),
        (-0.49, "small"),
        (0.5, "medium"),
        (-0.79, "medium"),
        (0.8, "large"),
        (-2.5, "large"),
        (None, "undefined"),
        (math.nan, "undefined"),
    ],
)
def test_interpret_effect_uses_cohen_thresholds(d: float | None, expected: str) -> None:
    assert interpret_effect(d) == expected


# --------------------------------------------------------------------------- effect sizes


def test_cohens_d_is_group2_minus_group1_over_df_weighted_pooled_sd() -> None:
    a = [1.0, 2.0, 3.0, 4.5]
    b = [2.5, 3.0, 4.0, 5.0, 6.5, 7.0]
    n1, n2 = len(a), len(b)
    pooled = math.sqrt(
        ((n1 - 1) * np.var(a, ddof=1) + (n2 - 1) * np.var(b, ddof=1)) / (n1 + n2 - 2)
    )
    expected = (np.mean(b) - np.mean(a)) / pooled
    assert cohens_d(a, b) == pytest.approx(expected, rel=1e-12)
    assert cohens_d(b, a) == pytest.approx(-expected, rel=1e-12)
    assert hedges_g(a, b) == pytest.approx(expected * (1 - 3 / (4 * (n1 + n2) - 9)), rel=1e-12)


def test_cohens_d_equals_crucible_bench_formula_for_equal_sizes() -> None:
    expected = (np.mean(SLEEP_2) - np.mean(SLEEP_1)) / math.sqrt(
        (np.var(SLEEP_1, ddof=1) + np.var(SLEEP_2, ddof=1)) / 2
    )
    assert cohens_d(SLEEP_1, SLEEP_2) == pytest.approx(expected, rel=1e-12)
    assert cohens_d(SLEEP_1, SLEEP_2) == pytest.approx(0.8322, abs=1e-4)


def test_cohens_d_is_nan_when_both_groups_are_constant() -> None:
    assert math.isnan(cohens_d([1.0, 1.0], [2.0, 2.0]))


def test_cohens_d_rejects_a_sample_with_one_value() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        cohens_d([1.0], [1.0, 2.0])


# --------------------------------------------------------------------------- adjust_pvalues


def _holm_by_hand(ps: list[float]) -> list[float]:
    m = len(ps)
    ranked = sorted(range(m), key=lambda i: ps[i])
    out = [0.0] * m
    for k, i in enumerate(ranked):
        out[i] = min(1.0, max((m - j) * ps[ranked[j]] for j in range(k + 1)))
    return out


def test_adjust_pvalues_matches_crucible_bench_examples() -> None:
    ps = [0.01, 0.03, 0.04, 0.20]
    assert adjust_pvalues(ps, "bonferroni") == pytest.approx([0.04, 0.12, 0.16, 0.80])
    assert adjust_pvalues(ps, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert adjust_pvalues(ps, "fdr_bh") == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.20])
    assert adjust_pvalues(ps, "none") == ps


def test_adjust_pvalues_keeps_input_order_and_caps_at_one() -> None:
    ps = [0.5, 0.001, 0.3]
    assert adjust_pvalues(ps, "bonferroni") == pytest.approx([1.0, 0.003, 0.9])
    assert adjust_pvalues(ps, "holm") == pytest.approx([0.6, 0.003, 0.6])
    assert adjust_pvalues([], "holm") == []


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30))
def test_fdr_bh_matches_scipy_false_discovery_control(ps: list[float]) -> None:
    expected = stats.false_discovery_control(ps, method="bh")
    assert adjust_pvalues(ps, "fdr_bh") == pytest.approx(expected.tolist(), rel=1e-9, abs=1e-300)


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30))
def test_holm_matches_hand_computation(ps: list[float]) -> None:
    assert adjust_pvalues(ps, "holm") == pytest.approx(_holm_by_hand(ps), rel=1e-12)


def test_adjust_pvalues_rejects_unknown_method_and_bad_p() -> None:
    with pytest.raises(ValueError, match="none, holm, bonferroni, fdr_bh"):
        adjust_pvalues([0.1], "sidak")
    with pytest.raises(ValueError, match="index 1"):
        adjust_pvalues([0.1, 1.5], "holm")
    with pytest.raises(ValueError, match="index 0"):
        adjust_pvalues([math.nan], "bonferroni")


# --------------------------------------------------------------------------- shapes


def test_no_groups_give_no_data() -> None:
    assert analyze({}) == {"no_data": True}


def test_single_group_gives_descriptives_and_t_interval() -> None:
    xs = [5.0, 5.2, 4.8, 5.1, 4.9, 5.3]
    result = analyze({"only": xs}, tests=["ttest", "bootstrap"], confidence_level=0.9)
    assert set(result) == {"group", "n", "mean", "std", "confidence_interval", "tests_skipped"}
    assert result["group"] == "only"
    assert result["n"] == 6
    assert result["mean"] == pytest.approx(np.mean(xs), rel=1e-12)
    assert result["std"] == pytest.approx(np.std(xs, ddof=1), rel=1e-12)
    lo, hi = stats.t.interval(0.9, len(xs) - 1, loc=np.mean(xs), scale=stats.sem(xs))
    assert result["confidence_interval"] == pytest.approx([lo, hi], rel=1e-12)
    assert result["tests_skipped"] == "Single group - no comparison tests possible"


def test_two_groups_are_ordered_by_sorted_name() -> None:
    result = analyze({"b": [3.0, 4.0, 5.0], "a": [1.0, 2.0, 2.5, 3.0]})
    assert set(result) == {
        "groups",
        "sample_sizes",
        "test_results",
        "effect_size",
        "alpha",
        "correction",
    }
    assert result["groups"] == ["a", "b"]
    assert result["sample_sizes"] == {"a": 4, "b": 3}
    assert result["alpha"] == 0.05
    assert list(result["test_results"]) == ["ttest"]
    entry = result["test_results"]["ttest"]
    assert {
        "test",
        "statistic",
        "p_value",
        "significant",
        "confidence_interval",
        "effect_size",
        "interpretation",
    } <= set(entry)
    assert entry["statistic"] > 0
    assert result["effect_size"]["cohens_d"] > 0


def test_two_group_effect_size_matches_helpers() -> None:
    effect = analyze(SLEEP)["effect_size"]
    assert effect == {
        "cohens_d": pytest.approx(cohens_d(SLEEP_1, SLEEP_2)),
        "hedges_g": pytest.approx(hedges_g(SLEEP_1, SLEEP_2)),
        "interpretation": "large",
    }


def test_three_groups_skip_two_group_tests_with_reference_wording() -> None:
    result = analyze(PLANT, tests=["ttest", "anova", "mann_whitney", "kruskal_wallis"])
    assert result["groups"] == ["ctrl", "trt1", "trt2"]
    assert result["sample_sizes"] == {"ctrl": 10, "trt1": 10, "trt2": 10}
    assert "effect_size" not in result
    tests = result["test_results"]
    assert list(tests) == ["ttest", "anova", "mann_whitney", "kruskal_wallis"]
    assert tests["ttest"] == {
        "test": "ttest",
        "skipped": "Test ttest not applicable for multiple groups",
    }
    assert (
        tests["mann_whitney"]["skipped"] == "Test mann_whitney not applicable for multiple groups"
    )
    assert tests["anova"]["significant"] is True


@pytest.mark.parametrize(
    "groups",
    [
        {"only": [1.0, 2.0, 4.0]},
        SLEEP,
        {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]},
        {"a": [3.0, 3.0], "b": [3.0, 3.0]},
        PLANT,
        {"a": [1.0, 1.0], "b": [1.0, 1.0], "c": [1.0, 1.0]},
    ],
)
def test_results_hold_only_plain_json_values(groups: dict[str, list[float]]) -> None:
    result = analyze(groups, tests=list(TESTS), seed=0, bootstrap_iterations=200, correction="holm")
    _assert_json_safe(result)
    json.dumps(result, allow_nan=False)


# --------------------------------------------------------------------------- t-tests


def test_welch_ttest_matches_scipy() -> None:
    a, b = [1.0, 2.0, 3.0, 4.5, 2.2], [2.5, 3.0, 4.0, 5.0, 6.5, 7.0, 3.3]
    entry = _two({"a": a, "b": b}, "ttest", confidence_level=0.9)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert entry["statistic"] == pytest.approx(ref.statistic, rel=1e-10)
    assert entry["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert entry["df"] == pytest.approx(ref.df, rel=1e-10)
    assert entry["confidence_interval"] == pytest.approx(list(ref.confidence_interval(0.9)))
    assert entry["equal_var"] is False


def test_student_ttest_matches_scipy() -> None:
    a, b = [1.0, 2.0, 3.0, 4.5, 2.2], [2.5, 3.0, 4.0, 5.0, 6.5, 7.0, 3.3]
    entry = _two({"a": a, "b": b}, "ttest", equal_var=True)
    ref = stats.ttest_ind(b, a, equal_var=True)
    assert entry["statistic"] == pytest.approx(ref.statistic, rel=1e-10)
    assert entry["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert entry["df"] == ref.df
    assert entry["confidence_interval"] == pytest.approx(list(ref.confidence_interval()))


def test_welch_ttest_matches_r_on_sleep() -> None:
    # R: t.test(extra ~ group, data = sleep)
    #   t = -1.8608, df = 17.776, p-value = 0.07939
    #   95 percent confidence interval: -3.3654832  0.2054832
    entry = _two(SLEEP, "ttest")
    assert entry["statistic"] == pytest.approx(1.8608, abs=1e-4)
    assert entry["df"] == pytest.approx(17.776, abs=1e-3)
    assert entry["p_value"] == pytest.approx(0.07939, abs=1e-5)
    assert entry["confidence_interval"] == pytest.approx([-0.2054832, 3.3654832], abs=1e-7)
    assert entry["mean_difference"] == pytest.approx(1.58)
    assert entry["significant"] is False
    assert entry["interpretation"] == "Not significant (p = 0.0794)"


def test_student_ttest_matches_r_on_sleep() -> None:
    # R: t.test(extra ~ group, data = sleep, var.equal = TRUE)
    #   t = -1.8608, df = 18, p-value = 0.07919
    #   95 percent confidence interval: -3.363874  0.203874
    entry = _two(SLEEP, "ttest", equal_var=True)
    assert entry["statistic"] == pytest.approx(1.8608, abs=1e-4)
    assert entry["df"] == 18
    assert entry["p_value"] == pytest.approx(0.07919, abs=1e-5)
    assert entry["confidence_interval"] == pytest.approx([-0.203874, 3.363874], abs=1e-6)


def test_paired_ttest_matches_r_on_sleep() -> None:
    # R: t.test(SLEEP_1, SLEEP_2, paired = TRUE)
    #   t = -4.0621, df = 9, p-value = 0.002833
    #   95 percent confidence interval: -2.4598858 -0.7001142
    entry = _two(SLEEP, "paired_ttest")
    assert entry["statistic"] == pytest.approx(4.0621, abs=1e-4)
    assert entry["df"] == 9
    assert entry["p_value"] == pytest.approx(0.002833, abs=1e-6)
    assert entry["confidence_interval"] == pytest.approx([0.7001142, 2.4598858], abs=1e-7)
    assert entry["significant"] is True
    assert entry["interpretation"] == "Highly significant (p < 0.01)"


def test_paired_ttest_matches_scipy_and_reports_dz() -> None:
    a, b = [2.0, 3.5, 1.0, 4.0, 5.5, 3.0], [2.5, 3.0, 2.0, 5.0, 6.5, 3.4]
    entry = _two({"a": a, "b": b}, "paired_ttest", confidence_level=0.99)
    ref = stats.ttest_rel(b, a)
    assert entry["statistic"] == pytest.approx(ref.statistic, rel=1e-10)
    assert entry["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert entry["confidence_interval"] == pytest.approx(list(ref.confidence_interval(0.99)))
    diffs = np.subtract(b, a)
    dz = diffs.mean() / diffs.std(ddof=1)
    assert entry["effect_size"] == {
        "cohens_dz": pytest.approx(dz),
        "interpretation": interpret_effect(dz),
    }


def test_ttest_on_constant_groups_is_not_computable() -> None:
    entry = _two({"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}, "ttest")
    assert entry["statistic"] is None
    assert entry["p_value"] is None
    assert entry["confidence_interval"] is None
    assert entry["significant"] is False
    assert entry["interpretation"] == "Not computable (p undefined)"


def test_welch_ttest_with_one_constant_group_matches_formula() -> None:
    a, b = [2.0, 2.0, 2.0], [1.0, 2.0, 4.0, 5.0]
    entry = _two({"a": a, "b": b}, "ttest")
    se = math.sqrt(np.var(b, ddof=1) / len(b))
    t = (np.mean(b) - 2.0) / se
    assert entry["statistic"] == pytest.approx(t)
    assert entry["df"] == pytest.approx(len(b) - 1)
    assert entry["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), len(b) - 1))


# --------------------------------------------------------------------------- rank tests


def test_wilcoxon_matches_scipy_and_r_example() -> None:
    # R: wilcox.test(x, y, paired = TRUE, alternative = "greater") on ?wilcox.test's data
    #   V = 40, p-value = 0.01953 (exact, no ties); the two-sided p is twice that.
    groups = {"after": DEPRESSION_Y, "before": DEPRESSION_X}
    entry = _two(groups, "wilcoxon")
    assert entry["statistic"] == 40
    assert entry["p_value"] == pytest.approx(2 * 0.01953, abs=1e-5)
    assert entry["p_value"] == pytest.approx(stats.wilcoxon(DEPRESSION_X, DEPRESSION_Y).pvalue)
    w_plus = stats.wilcoxon(DEPRESSION_X, DEPRESSION_Y, alternative="greater").statistic
    assert entry["statistic"] == w_plus
    # matched-pairs rank-biserial: (W+ - W-) / (n(n+1)/2) with n = 9
    assert entry["effect_size"]["rank_biserial"] == pytest.approx((40 - 5) / 45)
    assert entry["confidence_interval"] is None


@pytest.mark.slow  # scipy runs a permutation test when there are zeros or ties
def test_wilcoxon_with_zero_differences_matches_scipy() -> None:
    entry = _two(SLEEP, "wilcoxon")
    assert entry["p_value"] == pytest.approx(stats.wilcoxon(SLEEP_2, SLEEP_1).pvalue)
    assert entry["statistic"] == stats.wilcoxon(SLEEP_2, SLEEP_1, alternative="greater").statistic
    assert entry["n_nonzero"] == 9
    assert entry["effect_size"] == {"rank_biserial": 1.0, "interpretation": "large"}


def test_wilcoxon_on_identical_pairs_is_not_computable() -> None:
    entry = _two({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]}, "wilcoxon")
    assert entry["statistic"] == 0.0
    assert entry["p_value"] is None
    assert entry["significant"] is False


def test_mann_whitney_matches_scipy_and_r_example() -> None:
    # R: wilcox.test(x, y, alternative = "greater") on ?wilcox.test's data
    #   W = 35, p-value = 0.1272 (exact); the two-sided p is twice that.
    groups = {"control": PERMEABILITY_Y, "treatment": PERMEABILITY_X}
    entry = _two(groups, "mann_whitney")
    ref = stats.mannwhitneyu(PERMEABILITY_X, PERMEABILITY_Y, alternative="two-sided")
    assert entry["statistic"] == 35 == ref.statistic
    assert entry["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert entry["p_value"] == pytest.approx(2 * 0.1272, abs=1e-4)
    assert entry["effect_size"]["rank_biserial"] == pytest.approx(2 * 35 / 50 - 1)
    assert entry["effect_size"]["interpretation"] == "medium"


def test_mann_whitney_with_ties_matches_scipy() -> None:
    entry = _two(SLEEP, "mann_whitney")
    ref = stats.mannwhitneyu(SLEEP_2, SLEEP_1, alternative="two-sided")
    assert entry["statistic"] == ref.statistic
    assert entry["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)


# --------------------------------------------------------------------------- bootstrap
# The bootstrap entry is scipy's: a BCa interval (scipy.stats.bootstrap) and a permutation
# p-value (scipy.stats.permutation_test). Until #15 it was a percentile interval with a
# p-value inverting it; the figures changed with the method, and are checked below against
# scipy called directly and, at small n, against exact permutation p-values by enumeration.


def _diff(x: Any, y: Any, axis: int = -1) -> Any:
    return np.mean(y, axis=axis) - np.mean(x, axis=axis)


def _exact_permutation_p(a: list[float], b: list[float]) -> float:
    """Two-sided p of mean(b) - mean(a) over every split of the pooled values."""
    pooled = a + b
    observed = np.mean(b) - np.mean(a)
    diffs = []
    for idx in itertools.combinations(range(len(pooled)), len(b)):
        chosen = set(idx)
        bb = [pooled[i] for i in idx]
        aa = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        diffs.append(np.mean(bb) - np.mean(aa))
    d = np.asarray(diffs)
    eps = 1e-12 * max(1.0, abs(observed))
    less = np.mean(d <= observed + eps)
    greater = np.mean(d >= observed - eps)
    return float(min(1.0, 2 * min(less, greater)))


def test_bootstrap_is_reproducible_and_records_its_seed() -> None:
    first = _two(SLEEP, "bootstrap", seed=7, bootstrap_iterations=2000)
    again = _two(SLEEP, "bootstrap", seed=7, bootstrap_iterations=2000)
    other = _two(SLEEP, "bootstrap", seed=8, bootstrap_iterations=2000)
    assert first == again
    assert first["confidence_interval"] != other["confidence_interval"]
    assert (first["seed"], other["seed"]) == (7, 8)
    assert first["iterations"] == 2000
    assert (first["method"], first["p_value_method"]) == ("BCa", "permutation")
    assert first["statistic"] == pytest.approx(1.58)


def test_bootstrap_without_a_seed_uses_the_recorded_default() -> None:
    unseeded = _two(SLEEP, "bootstrap", bootstrap_iterations=1000)
    assert unseeded["seed"] == _stats.DEFAULT_SEED
    assert unseeded == _two(SLEEP, "bootstrap", bootstrap_iterations=1000, seed=_stats.DEFAULT_SEED)


def test_bootstrap_interval_is_scipys_bca_interval() -> None:
    entry = _two(SLEEP, "bootstrap", seed=1, confidence_level=0.9)
    ref = stats.bootstrap(
        (SLEEP_1, SLEEP_2),
        _diff,
        method="BCa",
        confidence_level=0.9,
        n_resamples=10_000,
        rng=np.random.default_rng(1),
    )
    ci = ref.confidence_interval
    assert entry["confidence_interval"] == pytest.approx([ci.low, ci.high], rel=1e-12)
    assert entry["standard_error"] == pytest.approx(ref.standard_error, rel=1e-12)
    g1 = stats.bootstrap(
        (SLEEP_1,), np.mean, confidence_level=0.9, n_resamples=10_000, rng=np.random.default_rng(1)
    )
    assert entry["group1_ci"] == pytest.approx(list(g1.confidence_interval), rel=1e-12)
    lo2, hi2 = entry["group2_ci"]
    assert lo2 < np.mean(SLEEP_2) < hi2


def test_bca_interval_differs_from_percentile_on_skewed_data() -> None:
    # Skewed samples (a long right tail): BCa shifts the interval relative to the percentile
    # one, which is why it is the default at small n.
    a = [0.1, 0.2, 0.15, 0.3, 0.12, 0.18, 0.22, 0.11]
    b = [0.2, 0.25, 0.3, 0.22, 2.5, 0.28, 0.21, 3.1]
    bca = _stats.mean_difference_interval(a, b, seed=5)
    pct = _stats.mean_difference_interval(a, b, seed=5, method="percentile")
    assert (bca["method"], pct["method"]) == ("BCa", "percentile")
    assert bca["confidence_interval"] != pytest.approx(pct["confidence_interval"], rel=1e-3)
    ref = stats.bootstrap(
        (a, b), _diff, method="percentile", n_resamples=10_000, rng=np.random.default_rng(5)
    )
    assert pct["confidence_interval"] == pytest.approx(list(ref.confidence_interval), rel=1e-12)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0], [1.5, 2.5, 2.0, 4.5, 4.0]),
        ([1.0, 1.2, 0.9, 1.1, 1.0], [3.0, 3.1, 2.9, 3.2, 3.0]),
        ([0.70, 0.72, 0.69, 0.71], [0.80, 0.79, 0.70, 0.81, 0.78]),
    ],
)
def test_bootstrap_p_is_the_exact_permutation_p_at_small_n(a: list[float], b: list[float]) -> None:
    entry = _two({"a": a, "b": b}, "bootstrap", seed=3)
    assert entry["permutation_exact"] is True
    assert entry["p_value"] == pytest.approx(_exact_permutation_p(a, b), rel=1e-9)


def test_bootstrap_p_matches_scipy_permutation_test_when_randomized() -> None:
    entry = _two(SLEEP, "bootstrap", seed=11, bootstrap_iterations=5000)
    assert entry["permutation_exact"] is False  # C(20, 10) = 184756 splits > 5000
    ref = stats.permutation_test(
        (SLEEP_1, SLEEP_2), _diff, n_resamples=5000, rng=np.random.default_rng(11)
    )
    assert entry["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert 0.05 < entry["p_value"] < 0.12  # Welch's p is 0.079 on the same data


def _hedges_g_along(x: Any, y: Any, axis: int = -1) -> Any:
    # the BCa jackknife leaves one value out, so the sizes come from the arrays
    n1, n2 = x.shape[axis], y.shape[axis]
    v1, v2 = np.var(x, axis=axis, ddof=1), np.var(y, axis=axis, ddof=1)
    pooled = np.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / (n1 + n2 - 2))
    d = (np.mean(y, axis=axis) - np.mean(x, axis=axis)) / pooled
    return d * (1 - 3 / (4 * (n1 + n2) - 9))


def test_bootstrap_effect_size_has_a_bca_interval_of_hedges_g() -> None:
    entry = _two(SLEEP, "bootstrap", seed=2)
    effect = entry["effect_size"]
    assert effect["hedges_g"] == pytest.approx(hedges_g(SLEEP_1, SLEEP_2))
    lo, hi = effect["hedges_g_ci"]
    assert lo < effect["hedges_g"] < hi
    ref = stats.bootstrap(
        (SLEEP_1, SLEEP_2), _hedges_g_along, n_resamples=10_000, rng=np.random.default_rng(2)
    )
    assert [lo, hi] == pytest.approx(list(ref.confidence_interval), rel=1e-12)


def test_bootstrap_on_constant_groups_has_no_interval() -> None:
    entry = _two({"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}, "bootstrap", seed=0)
    assert entry["confidence_interval"] is None
    assert entry["group1_ci"] is None
    assert entry["effect_size"]["hedges_g_ci"] is None
    # every split of {1, 1, 1, 2, 2, 2} is at most as extreme as the observed one
    assert entry["p_value"] == pytest.approx(2 / 20)
    same = _two({"a": [3.0, 3.0], "b": [3.0, 3.0]}, "bootstrap", seed=0)
    assert same["p_value"] == 1.0
    assert same["significant"] is False


# --------------------------------------------------------------------------- multi-group


def test_anova_matches_scipy_and_r_on_plant_growth() -> None:
    # R: summary(aov(weight ~ group, data = PlantGrowth))
    #   group      Df Sum Sq Mean Sq F value Pr(>F)
    #   group       2  3.766  1.8832   4.846 0.0159
    #   Residuals  27 10.492  0.3886
    entry = analyze(PLANT, tests=["anova"])["test_results"]["anova"]
    ref = stats.f_oneway(*PLANT.values())
    assert entry["statistic"] == pytest.approx(ref.statistic, rel=1e-10)
    assert entry["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert entry["statistic"] == pytest.approx(4.846, abs=1e-3)
    assert entry["p_value"] == pytest.approx(0.0159, abs=1e-4)
    assert (entry["df_between"], entry["df_within"]) == (2, 27)
    assert entry["effect_size"]["eta_squared"] == pytest.approx(3.766 / (3.766 + 10.492), abs=1e-4)
    assert entry["effect_size"]["interpretation"] == "large"
    assert entry["interpretation"] == "Significant (p < 0.05)"


def test_kruskal_wallis_matches_scipy_and_r_on_plant_growth() -> None:
    # R: kruskal.test(weight ~ group, data = PlantGrowth)
    #   Kruskal-Wallis chi-squared = 7.9882, df = 2, p-value = 0.01842
    entry = analyze(PLANT, tests=["kruskal_wallis"])["test_results"]["kruskal_wallis"]
    ref = stats.kruskal(*PLANT.values())
    assert entry["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert entry["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert entry["statistic"] == pytest.approx(7.9882, abs=1e-4)
    assert entry["p_value"] == pytest.approx(0.01842, abs=1e-5)
    assert entry["df"] == 2
    assert entry["effect_size"]["epsilon_squared"] == pytest.approx(ref.statistic / 29)


def test_two_group_anova_equals_student_t_squared() -> None:
    result = analyze(SLEEP, tests=["anova", "ttest"], equal_var=True)["test_results"]
    assert result["anova"]["statistic"] == pytest.approx(result["ttest"]["statistic"] ** 2)
    assert result["anova"]["p_value"] == pytest.approx(result["ttest"]["p_value"])


def test_anova_with_no_within_group_variance_is_not_computable() -> None:
    tests = analyze({"a": [1.0, 1.0], "b": [2.0, 2.0], "c": [3.0, 3.0]}, tests=["anova"])
    entry = tests["test_results"]["anova"]
    assert entry["statistic"] is None
    assert entry["p_value"] is None
    assert entry["effect_size"]["eta_squared"] == 1.0


def test_kruskal_wallis_on_identical_values_is_not_computable() -> None:
    groups = {"a": [1.0, 1.0], "b": [1.0, 1.0], "c": [1.0, 1.0]}
    entry = analyze(groups, tests=["kruskal_wallis"])["test_results"]["kruskal_wallis"]
    assert (entry["statistic"], entry["p_value"], entry["significant"]) == (None, None, False)


# --------------------------------------------------------------------------- corrections


@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh"])
def test_correction_adjusts_the_family_of_tests_on_the_pair(method: str) -> None:
    groups = {"after": DEPRESSION_Y, "before": DEPRESSION_X}
    tests = ["ttest", "paired_ttest", "wilcoxon", "mann_whitney"]
    raw = analyze(groups, tests=tests)["test_results"]
    corrected = analyze(groups, tests=tests, correction=method)
    assert corrected["correction"] == method
    expected = adjust_pvalues([raw[t]["p_value"] for t in tests], method)
    for test, p_adj in zip(tests, expected, strict=True):
        entry = corrected["test_results"][test]
        assert entry["p_value"] == raw[test]["p_value"]
        assert entry["p_value_adjusted"] == pytest.approx(p_adj)
        assert entry["significant"] is (p_adj < 0.05)
        assert entry["interpretation"] == interpret_p(p_adj, 0.05)


def test_correction_can_turn_a_significant_test_insignificant() -> None:
    raw = analyze(PLANT, tests=["anova", "kruskal_wallis"], alpha=0.03)["test_results"]
    assert raw["anova"]["significant"] is True
    corrected = analyze(PLANT, tests=["anova", "kruskal_wallis"], alpha=0.03, correction="holm")
    entry = corrected["test_results"]["anova"]
    # Holm: the smaller p (ANOVA, 0.0159) is doubled to 0.0318 > alpha.
    assert entry["p_value_adjusted"] == pytest.approx(2 * raw["anova"]["p_value"])
    assert entry["significant"] is False
    assert entry["interpretation"].startswith("Not significant")


def test_without_correction_there_is_no_adjusted_p() -> None:
    entry = _two(SLEEP, "ttest")
    assert "p_value_adjusted" not in entry


def test_undefined_p_values_stay_out_of_the_family() -> None:
    groups = {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}
    result = analyze(groups, tests=["ttest", "mann_whitney"], correction="bonferroni")
    tests = result["test_results"]
    assert tests["ttest"]["p_value_adjusted"] is None
    # a family of one: the Mann-Whitney p is not multiplied
    assert tests["mann_whitney"]["p_value_adjusted"] == tests["mann_whitney"]["p_value"]


# --------------------------------------------------------------------------- errors


def test_unknown_test_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'t_test'") as info:
        analyze(SLEEP, tests=["t_test"])
    for name in TESTS:
        assert name in str(info.value)


def test_tests_given_as_a_string_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\['ttest'\]"):
        analyze(SLEEP, tests="ttest")


@pytest.mark.parametrize("test", ["paired_ttest", "wilcoxon"])
def test_paired_tests_need_equal_sizes(test: str) -> None:
    groups = {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0, 4.0]}
    message = (
        rf"{test} needs paired groups of equal size; group 'a' has 3 values and group 'b' has 4"
    )
    with pytest.raises(ValueError, match=message):
        analyze(groups, tests=["ttest", test])


@pytest.mark.parametrize("values", [[], [1.0]])
def test_a_group_with_fewer_than_two_values_is_rejected(values: list[float]) -> None:
    with pytest.raises(ValueError, match=rf"group 'b' has {len(values)} value\(s\)"):
        analyze({"a": [1.0, 2.0], "b": values})


def test_a_non_finite_value_is_rejected() -> None:
    with pytest.raises(ValueError, match="group 'a' holds nan at index 1"):
        analyze({"a": [1.0, math.nan, 2.0]})


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("alpha", 0.0, "alpha must be"),
        ("alpha", 1.5, "alpha must be"),
        ("confidence_level", 1.0, "confidence_level must be"),
        ("correction", "sidak", "unknown correction 'sidak'"),
        ("bootstrap_iterations", 0, "bootstrap_iterations must be"),
        ("seed", -1, "seed must be"),
        ("seed", 1.5, "seed must be"),
    ],
)
def test_options_out_of_range_are_rejected(option: str, value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        analyze(SLEEP, **{option: value})


# --------------------------------------------------------------------------- missing scipy


@pytest.fixture
def no_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import scipy`` (and ``import scipy.stats``) fail for the test's duration."""
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)


@pytest.mark.usefixtures("no_scipy")
def test_require_scipy_names_the_bench_extra() -> None:
    with pytest.raises(MissingDependency) as info:
        require_scipy()
    assert info.value.package == "scipy"
    assert info.value.feature == "bench"
    assert "pip install 'crucible-actors[bench]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


@pytest.mark.usefixtures("no_scipy")
def test_analyze_without_scipy_raises_missing_dependency_only_when_there_is_data() -> None:
    assert analyze({}) == {"no_data": True}
    with pytest.raises(MissingDependency):
        analyze(SLEEP)


@pytest.mark.usefixtures("no_scipy")
def test_module_imports_and_helpers_work_without_numpy_or_scipy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)
    monkeypatch.delitem(sys.modules, _stats.__name__)
    monkeypatch.setattr(stats_pkg, "_groups", _stats)
    fresh = importlib.import_module(_stats.__name__)
    assert fresh is not _stats
    assert fresh.cohens_d(SLEEP_1, SLEEP_2) == pytest.approx(cohens_d(SLEEP_1, SLEEP_2))
    assert fresh.adjust_pvalues([0.01, 0.04], "holm") == pytest.approx([0.02, 0.04])
    assert fresh.interpret_p(0.2, 0.05) == "Not significant (p = 0.2)"
    with pytest.raises(MissingDependency):
        fresh.require_scipy()
