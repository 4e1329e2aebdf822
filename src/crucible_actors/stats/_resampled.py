"""Tests for cross-validation: fold scores are not independent samples.

The training sets of k-fold (or repeated) cross-validation overlap, so the differences
between two learners across folds are correlated and the naive paired t-test's variance
is far too small (LR vs RF on digits, 10 x 10 CV: naive p = 6e-8, corrected p = 0.095).
:func:`corrected_resampled_ttest` is Nadeau & Bengio's (2003) correction, the one
Bouckaert & Frank (2004) recommend for repeated CV; :func:`five_by_two_cv_ttest` is
Dietterich's (1998) 5x2cv test.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._clustered import t_result
from ._result import TestResult

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["corrected_resampled_ttest", "five_by_two_cv_ttest"]


def corrected_resampled_ttest(
    differences: Sequence[float],
    test_train_ratio: float,
    *,
    confidence_level: float = 0.95,
) -> TestResult:
    """Nadeau & Bengio's corrected resampled t-test of per-fold score differences.

    ``differences`` are candidate - baseline on each of the k folds (all repetitions of a
    repeated CV together); ``test_train_ratio`` is n_test / n_train of one fold (1/9 for
    10-fold, 1/4 for 5-fold). ``t = mean / sqrt((1/k + ratio) * var)`` against t(k - 1);
    the naive test is the ``ratio = 0`` case. The ten differences ``[.01, .02, 0, .015,
    .005, .01, .02, 0, .01, .01]`` at 1/9 give t = 3.078, p = 0.01318.

    Raises:
        ValueError: fewer than 2 differences, a non-finite one, or a negative ratio.
        MissingDependency: scipy is not installed.
    """
    from ._groups import require_scipy

    diffs = [float(d) for d in differences]
    if len(diffs) < 2 or not all(math.isfinite(d) for d in diffs):
        raise ValueError(f"need at least 2 finite fold differences, got {differences!r}")
    if not (isinstance(test_train_ratio, int | float) and test_train_ratio >= 0):
        raise ValueError(
            f"test_train_ratio must be n_test / n_train >= 0 (1/9 for 10-fold CV), "
            f"got {test_train_ratio!r}"
        )
    require_scipy("corrected_resampled_ttest")
    k = len(diffs)
    mean = math.fsum(diffs) / k
    var = math.fsum((d - mean) ** 2 for d in diffs) / (k - 1)
    se = math.sqrt((1 / k + test_train_ratio) * var)
    return t_result(
        "corrected_resampled_ttest",
        mean,
        se,
        float(k - 1),
        confidence_level,
        {"k": k, "test_train_ratio": float(test_train_ratio)},
    )


def five_by_two_cv_ttest(differences: Sequence[Sequence[float]]) -> TestResult:
    """Dietterich's 5x2cv paired t-test.

    ``differences[i][j]`` is candidate - baseline on fold j (0 or 1) of replication i
    (5 replications of 2-fold CV). ``t = differences[0][0] / sqrt(mean_i s_i^2)`` with
    ``s_i^2 = sum_j (p_ij - mean_j p_ij)^2``, against t(5).

    Raises:
        ValueError: not 5 rows of 2 finite values.
        MissingDependency: scipy is not installed.
    """
    from ._groups import require_scipy

    rows = [[float(v) for v in row] for row in differences]
    if len(rows) != 5 or any(len(r) != 2 or not all(map(math.isfinite, r)) for r in rows):
        raise ValueError("the 5x2cv test needs 5 rows of 2 finite fold differences")
    require_scipy("five_by_two_cv_ttest")
    from scipy import stats

    s2 = [(r[0] - (r[0] + r[1]) / 2) ** 2 + (r[1] - (r[0] + r[1]) / 2) ** 2 for r in rows]
    denom = math.sqrt(math.fsum(s2) / 5)
    if denom == 0:
        return TestResult(test="five_by_two_cv_ttest", statistic=None, p_value=None, df=5.0)
    t = rows[0][0] / denom
    return TestResult(
        test="five_by_two_cv_ttest",
        statistic=t,
        p_value=min(1.0, 2 * float(stats.t.sf(abs(t), 5))),
        estimate=math.fsum(v for r in rows for v in r) / 10,
        df=5.0,
    )
