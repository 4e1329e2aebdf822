"""Cluster-robust standard errors: questions that share a passage are not independent.

When several examples come from one unit (the questions of a passage, the turns of a
conversation, the pages of a document), their scores are correlated and the usual
``sd / sqrt(n)`` is too small: 50 passages x 4 questions with an intra-cluster
correlation of 0.3 make it 1.38x too small. :func:`clustered_se` is the CR1 sandwich
estimator of a mean, as statsmodels (``OLS(...).fit(cov_type="cluster")`` on a constant)
and Inspect AI's ``stderr(cluster=...)`` compute it; :func:`clustered_ttest` tests a
(paired or unpaired) difference with it, against t with G - 1 degrees of freedom.

References: Liang & Zeger (1986); Cameron & Miller (2015), "A practitioner's guide to
cluster-robust inference"; Miller (2024), "Adding Error Bars to Evals", arXiv 2411.00640,
section 2.2.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._result import TestResult

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

__all__ = ["clustered_se", "clustered_ttest"]


def _cr1(values: Sequence[float], clusters: Sequence[Hashable]) -> tuple[float, float, int]:
    """Return (mean, CR1 standard error, number of clusters)."""
    n = len(values)
    if n != len(clusters):
        raise ValueError(f"got {n} scores but {len(clusters)} cluster labels; give one per score")
    if n < 2:
        raise ValueError(f"a clustered standard error needs at least 2 scores, got {n}")
    mean = math.fsum(values) / n
    sums: dict[Any, float] = {}
    for v, g in zip(values, clusters, strict=True):
        sums[g] = sums.get(g, 0.0) + (v - mean)
    g_count = len(sums)
    if g_count < 2:
        raise ValueError(
            f"a clustered standard error needs at least 2 clusters, got {g_count}; "
            "check the cluster field"
        )
    var = g_count / (g_count - 1) * math.fsum(s * s for s in sums.values()) / (n * n)
    return mean, math.sqrt(var), g_count


def clustered_se(
    scores: Sequence[float],
    clusters: Sequence[Hashable],
    *,
    baseline: Sequence[float] | None = None,
) -> float:
    """Return the cluster-robust (CR1) standard error of the mean of ``scores``.

    ``SE^2 = G / (G - 1) * sum_g (sum_{i in g} (x_i - mean))^2 / n^2`` over the G
    clusters; with one example per cluster it is ``sqrt((n - 1) / n)`` times the usual
    ``sd / sqrt(n)``, as in statsmodels. With ``baseline`` (paired scores of the same
    examples), the standard error of the mean difference ``scores - baseline``.
    ``[1, 1, 1, 0, 0, 0]`` in clusters ``[0, 1, 1, 1, 0, 0]`` gives 1/6.

    Raises:
        ValueError: lengths that differ, fewer than 2 scores or 2 clusters.
    """
    values = list(scores)
    if baseline is not None:
        if len(baseline) != len(values):
            raise ValueError(
                f"paired scores need equal lengths; got {len(values)} and {len(baseline)}"
            )
        values = [y - x for x, y in zip(baseline, values, strict=True)]
    return _cr1(values, clusters)[1]


def clustered_ttest(
    baseline: Sequence[float],
    candidate: Sequence[float],
    clusters: Sequence[Hashable],
    *,
    candidate_clusters: Sequence[Hashable] | None = None,
    paired: bool = True,
    confidence_level: float = 0.95,
) -> TestResult:
    """Test "no difference" between candidate and baseline with cluster-robust errors.

    Paired (default; the same examples in the same order, ``clusters`` labelling them):
    the mean difference over its CR1 standard error, against t(G - 1). Unpaired:
    ``clusters`` labels ``baseline`` and ``candidate_clusters`` the candidate; the
    difference of means over ``sqrt(se_a^2 + se_b^2)``, against t(G_a + G_b - 2). The
    interval is the same t interval, so it agrees with the p-value.

    Raises:
        ValueError: as :func:`clustered_se`; ``candidate_clusters`` missing when unpaired.
        MissingDependency: scipy is not installed.
    """
    from ._groups import require_scipy

    require_scipy("clustered_ttest")
    if paired:
        if len(baseline) != len(candidate):
            raise ValueError(
                f"paired scores need equal lengths; got {len(baseline)} and {len(candidate)}"
            )
        diffs = [y - x for x, y in zip(baseline, candidate, strict=True)]
        estimate, se, g = _cr1(diffs, clusters)
        df = float(g - 1)
        details: dict[str, Any] = {"n_clusters": g, "paired": True}
    else:
        if candidate_clusters is None:
            raise ValueError("an unpaired clustered test needs candidate_clusters as well")
        m1, se1, g1 = _cr1(list(baseline), clusters)
        m2, se2, g2 = _cr1(list(candidate), candidate_clusters)
        estimate, se, df = m2 - m1, math.hypot(se1, se2), float(g1 + g2 - 2)
        details = {"n_clusters": [g1, g2], "paired": False}
    return t_result("clustered_ttest", estimate, se, df, confidence_level, details)


def t_result(
    test: str,
    estimate: float,
    se: float,
    df: float,
    confidence_level: float,
    details: dict[str, Any] | None = None,
) -> TestResult:
    """Return the t test and t interval of ``estimate`` with standard error ``se``."""
    from scipy import stats

    if not (se > 0 and math.isfinite(se)):
        return TestResult(
            test=test,
            statistic=None,
            p_value=None,
            estimate=estimate,
            standard_error=se,
            df=df,
            confidence_level=confidence_level,
            details=details or {},
        )
    t = estimate / se
    p = min(1.0, 2.0 * float(stats.t.sf(abs(t), df)))
    half = float(stats.t.ppf((1 + confidence_level) / 2, df)) * se
    return TestResult(
        test=test,
        statistic=t,
        p_value=p,
        estimate=estimate,
        standard_error=se,
        df=df,
        confidence_interval=(estimate - half, estimate + half),
        confidence_level=confidence_level,
        details=details or {},
    )
