"""The ``bench`` statistics against reference implementations, and the function-level API.

Effect sizes are checked against ``pingouin`` and the corrections against ``statsmodels``
(test-only dependencies in ``dev``); where neither computes a figure the published formula
is cited. The function-level API (``two_sample``, ``paired``, ``k_sample``, the resampling
functions) is what a cross-run comparison calls; its figures must equal ``analyze``'s.
"""

from __future__ import annotations

import itertools
import math
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers import missing_extra

pytest.importorskip("scipy", reason=missing_extra("bench"))

import pingouin as pg
from scipy import stats
from statsmodels.stats.multitest import multipletests

from crucible_actors.stats import _groups as _stats
from crucible_actors.stats._groups import (
    adjust_pvalues,
    analyze,
    cohens_d,
    effect_size,
    hedges_g,
    k_sample,
    mean_difference_interval,
    paired,
    permutation_pvalue,
    two_sample,
)

SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
DEPRESSION_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
DEPRESSION_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
PLANT = {
    "ctrl": [4.17, 5.58, 5.18, 6.11, 4.50, 4.61, 5.17, 4.53, 5.33, 5.14],
    "trt1": [4.81, 4.17, 4.41, 3.59, 5.87, 3.83, 6.03, 4.89, 4.32, 4.69],
    "trt2": [6.31, 5.12, 5.54, 5.50, 5.37, 5.29, 4.92, 6.15, 5.80, 5.26],
}

samples = st.lists(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False),
    min_size=3,
    max_size=30,
).filter(lambda xs: np.ptp(xs) > 1e-6)
pvalues = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=40)


# --------------------------------------------------------------------------- corrections


@pytest.mark.slow
@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh"])
@given(ps=pvalues)
def test_corrections_match_statsmodels_multipletests(method: str, ps: list[float]) -> None:
    # statsmodels' holm branch calls gc.collect() on every call (~0.2 s in this suite).
    with mock.patch("gc.collect"):
        _, expected, _, _ = multipletests(ps, method=method)
    assert adjust_pvalues(ps, method) == pytest.approx(expected.tolist(), rel=1e-9, abs=1e-300)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh"])
def test_corrections_reject_what_statsmodels_rejects(method: str) -> None:
    ps = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    reject, _, _, _ = multipletests(ps, alpha=0.05, method=method)
    assert [p < 0.05 for p in adjust_pvalues(ps, method)] == reject.tolist()


# --------------------------------------------------------------------------- effect sizes


@settings(max_examples=60)
@given(a=samples, b=samples)
def test_cohens_d_and_hedges_g_match_pingouin(a: list[float], b: list[float]) -> None:
    assert cohens_d(a, b) == pytest.approx(pg.compute_effsize(b, a, eftype="cohen"), rel=1e-9)
    assert hedges_g(a, b) == pytest.approx(pg.compute_effsize(b, a, eftype="hedges"), rel=1e-9)


def test_mann_whitney_rank_biserial_matches_pingouin() -> None:
    for a, b in ((SLEEP_1, SLEEP_2), (DEPRESSION_Y, SLEEP_1), (PLANT["trt2"], PLANT["ctrl"])):
        entry = two_sample(a, b, tests=["mann_whitney"])["test_results"]["mann_whitney"]
        ref = pg.mwu(b, a, alternative="two-sided")
        assert entry["effect_size"]["rank_biserial"] == pytest.approx(ref["RBC"].item())
        assert entry["p_value"] == pytest.approx(ref["p_val"].item())


def test_wilcoxon_rank_biserial_matches_pingouin() -> None:
    entry = paired(DEPRESSION_Y, DEPRESSION_X, tests=["wilcoxon"])["test_results"]["wilcoxon"]
    ref = pg.wilcoxon(DEPRESSION_X, DEPRESSION_Y)
    assert entry["effect_size"]["rank_biserial"] == pytest.approx(ref["RBC"].item())
    assert entry["p_value"] == pytest.approx(ref["p_val"].item())


def _plant_frame() -> pd.DataFrame:
    rows = [(group, value) for group, values in PLANT.items() for value in values]
    return pd.DataFrame(rows, columns=["group", "weight"])


# pingouin 0.7 calls DataFrame.dropna(inplace=True), which pandas 3.1 deprecates.
@pytest.mark.filterwarnings("ignore:The inplace keyword:pandas.errors.Pandas4Warning")
def test_anova_eta_squared_matches_pingouin() -> None:
    entry = k_sample(list(PLANT.values()), tests=["anova"])["test_results"]["anova"]
    ref = pg.anova(data=_plant_frame(), dv="weight", between="group", detailed=True)
    # one-way: partial eta-squared is eta-squared
    assert entry["effect_size"]["eta_squared"] == pytest.approx(ref["np2"].iloc[0], rel=1e-9)
    assert entry["statistic"] == pytest.approx(ref["F"].iloc[0], rel=1e-9)


@pytest.mark.filterwarnings("ignore:The inplace keyword:pandas.errors.Pandas4Warning")
def test_kruskal_wallis_epsilon_squared_follows_the_published_formula() -> None:
    # Tomczak & Tomczak (2014), eq. 9: E^2_R = H / ((n^2 - 1) / (n + 1)) = H / (n - 1).
    entry = k_sample(list(PLANT.values()), tests=["kruskal_wallis"])
    result = entry["test_results"]["kruskal_wallis"]
    ref = pg.kruskal(data=_plant_frame(), dv="weight", between="group")
    h, n = ref["H"].item(), 30
    assert result["statistic"] == pytest.approx(h, rel=1e-12)
    assert result["effect_size"]["epsilon_squared"] == pytest.approx(h / ((n**2 - 1) / (n + 1)))


def test_effect_size_interval_contains_the_estimate_and_matches_scipy() -> None:
    def g(x: Any, y: Any, axis: int = -1) -> Any:
        n1, n2 = x.shape[axis], y.shape[axis]
        sp = np.sqrt(
            ((n1 - 1) * np.var(x, axis=axis, ddof=1) + (n2 - 1) * np.var(y, axis=axis, ddof=1))
            / (n1 + n2 - 2)
        )
        return (np.mean(y, axis=axis) - np.mean(x, axis=axis)) / sp * (1 - 3 / (4 * (n1 + n2) - 9))

    result = effect_size(SLEEP_1, SLEEP_2, seed=4, n_resamples=3000)
    assert result["hedges_g"] == pytest.approx(
        pg.compute_effsize(SLEEP_2, SLEEP_1, eftype="hedges")
    )
    ref = stats.bootstrap((SLEEP_1, SLEEP_2), g, n_resamples=3000, rng=np.random.default_rng(4))
    assert result["hedges_g_ci"] == pytest.approx(list(ref.confidence_interval), rel=1e-12)
    assert result["hedges_g_ci"][0] < result["hedges_g"] < result["hedges_g_ci"][1]
    assert (result["seed"], result["n_resamples"]) == (4, 3000)


def test_paired_effect_size_is_dz_with_an_interval() -> None:
    result = effect_size(SLEEP_1, SLEEP_2, paired=True, seed=0)
    d = np.subtract(SLEEP_2, SLEEP_1)
    assert result["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    lo, hi = result["cohens_dz_ci"]
    assert lo < result["cohens_dz"] < hi
    assert result["interpretation"] == "large"


# --------------------------------------------------------------------------- function API


def test_two_sample_equals_analyze_on_named_groups() -> None:
    tests = ["ttest", "mann_whitney", "bootstrap"]
    options: dict[str, Any] = {"tests": tests, "correction": "holm", "seed": 9}
    direct = two_sample(PLANT["ctrl"], PLANT["trt2"], bootstrap_iterations=2000, **options)
    via = analyze({"a": PLANT["ctrl"], "b": PLANT["trt2"]}, bootstrap_iterations=2000, **options)
    assert direct["test_results"] == via["test_results"]
    assert direct["effect_size"] == via["effect_size"]
    assert direct["sample_sizes"] == [10, 10]


def test_paired_bootstrap_resamples_pairs_and_permutes_within_them() -> None:
    entry = paired(DEPRESSION_Y, DEPRESSION_X, tests=["bootstrap"], seed=1)
    result = entry["test_results"]["bootstrap"]
    assert result["paired"] is True
    assert result["permutation_exact"] is True  # 2**9 sign patterns <= 10 000
    # exact sign-flip p by enumeration
    d = np.subtract(DEPRESSION_X, DEPRESSION_Y)
    null = [np.mean(d * s) for s in itertools.product((1, -1), repeat=d.size)]
    observed = d.mean()
    extreme = np.mean([abs(v) >= abs(observed) - 1e-12 for v in null])
    assert result["p_value"] == pytest.approx(extreme, rel=1e-9)
    ref = stats.bootstrap(
        (DEPRESSION_Y, DEPRESSION_X),
        lambda x, y, axis: np.mean(y - x, axis=axis),
        paired=True,
        n_resamples=10_000,
        rng=np.random.default_rng(1),
    )
    assert result["confidence_interval"] == pytest.approx(list(ref.confidence_interval))
    assert "group1_ci" not in result
    assert result["effect_size"]["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert entry["n"] == 9


def test_k_sample_equals_analyze_on_three_groups() -> None:
    direct = k_sample(list(PLANT.values()), tests=["anova", "kruskal_wallis"], correction="holm")
    via = analyze(PLANT, tests=["anova", "kruskal_wallis"], correction="holm")
    assert direct["test_results"] == via["test_results"]
    assert direct["sample_sizes"] == [10, 10, 10]


def test_mean_difference_interval_reports_what_it_did() -> None:
    result = mean_difference_interval(SLEEP_1, SLEEP_2, n_resamples=500, confidence_level=0.9)
    assert result["estimate"] == pytest.approx(1.58)
    assert {k: result[k] for k in ("method", "confidence_level", "n_resamples", "seed")} == {
        "method": "BCa",
        "confidence_level": 0.9,
        "n_resamples": 500,
        "seed": _stats.DEFAULT_SEED,
    }
    lo, hi = result["confidence_interval"]
    assert lo < 1.58 < hi


def test_permutation_pvalue_counts_splits_exactly_at_small_n() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0]
    two = permutation_pvalue(a, b)
    greater = permutation_pvalue(a, b, alternative="greater")
    assert two["exact"] is True
    # C(8, 4) = 70 splits of {1, 2, 3, 3, 4, 4, 5, 6}; the difference is at least the observed
    # 2 when the 4 values given to b sum to 18 or more: {5, 6} with (3, 4) four ways or
    # (4, 4). Only {4, 4, 5, 6} (sum 19) exceeds it.
    assert greater["p_value"] == pytest.approx(5 / 70)
    assert two["p_value"] == pytest.approx(10 / 70)
    assert permutation_pvalue(a, b, alternative="less")["p_value"] == pytest.approx(69 / 70)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: paired([1.0, 2.0], [1.0, 2.0, 3.0]), "equal sizes; got 2 and 3"),
        (lambda: paired([1.0, 2.0], [1.0, 3.0], tests=["ttest"]), "valid tests: paired_ttest"),
        (lambda: k_sample([[1.0, 2.0]]), "at least 2 samples, got 1"),
        (lambda: k_sample([[1.0, 2.0], [2.0, 3.0]], tests=["ttest"]), "anova, kruskal_wallis"),
        (lambda: mean_difference_interval([1.0, 2.0], [1.0]), "sample 1 has 1 value"),
        (lambda: mean_difference_interval([1.0, 2.0], [2.0, 3.0], method="bca"), "'bca'"),
        (lambda: permutation_pvalue([1.0, 2.0], [1.0, 3.0], alternative="both"), "'both'"),
        (lambda: effect_size([1.0, math.inf], [1.0, 2.0]), "non-finite"),
        (lambda: two_sample([1.0, 2.0], [3.0, 4.0], seed=-1), "seed must be"),
    ],
)
def test_function_api_rejects_bad_input_saying_what_was_expected(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        call()
