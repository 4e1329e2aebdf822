"""Repeated runs and repeated measures: seeds, and k systems on the same examples.

Two kinds of repetition need different statistics:

* **Seeds** (training seeds, sampling seeds of a whole run): each run is one draw of the
  system, and run-to-run variance is part of what a comparison must account for;
  averaging the runs per example and testing over examples treats seeds as examples and
  gives p = 1e-15 where a run-level test gives 0.14 (Bouthillier et al. 2021).
  :func:`seed_ttest` combines the two variance components.
* **Repeated measures** (k systems, the same examples): Friedman's rank test and the
  repeated-measures ANOVA are the omnibus tests (Demsar 2006); Cochran's Q
  (:mod:`._discrete`) is the one for 0/1 scores.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._clustered import _cr1, t_result
from ._result import TestResult

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

__all__ = ["friedman", "pooled_seed_variance", "rm_anova", "seed_ttest"]


def _matrix(samples: Sequence[Sequence[float]], name: str) -> list[list[float]]:
    k = len(samples)
    if k < 2:
        raise ValueError(f"{name} needs at least 2 systems, got {k}")
    n = len(samples[0])
    if n < 2 or any(len(s) != n for s in samples):
        raise ValueError(
            f"{name} needs at least 2 examples, the same for every system; "
            f"lengths {[len(s) for s in samples]}"
        )
    return [[float(v) for v in s] for s in samples]


def friedman(samples: Sequence[Sequence[float]]) -> TestResult:
    """Friedman's test: k systems ranked within each example (``samples[j][i]``).

    scipy's ``friedmanchisquare`` (tie-corrected), chi-square(k - 1); for k = 2 the
    statistic is computed the same way. None when every example ties.

    Raises:
        ValueError: fewer than 2 systems or unequal lengths.
        MissingDependency: scipy is not installed.
    """
    from ._groups import require_scipy

    data = _matrix(samples, "Friedman's test")
    require_scipy("friedman")
    import numpy as np
    from scipy import stats

    x = np.asarray(data).T  # examples x systems
    k = x.shape[1]
    ranks = stats.rankdata(x, axis=1)
    n = x.shape[0]
    ties = 0.0
    for row in x:
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts**3 - counts).sum())
    denom = 1 - ties / (n * (k**3 - k))
    if denom <= 0:
        return TestResult(test="friedman", statistic=None, p_value=None, df=float(k - 1))
    r = ranks.sum(axis=0)
    chi2 = (12 / (n * k * (k + 1)) * float((r**2).sum()) - 3 * n * (k + 1)) / denom
    return TestResult(
        test="friedman", statistic=chi2, p_value=float(stats.chi2.sf(chi2, k - 1)), df=k - 1.0
    )


def rm_anova(samples: Sequence[Sequence[float]]) -> TestResult:
    """One-way repeated-measures ANOVA of k systems on the same examples.

    F = MS_systems / MS_error with (k - 1, (k - 1)(n - 1)) degrees of freedom, no
    sphericity correction (statsmodels' ``AnovaRM``). ``details`` holds both df.

    Raises:
        ValueError: fewer than 2 systems or unequal lengths.
        MissingDependency: scipy is not installed.
    """
    from ._groups import require_scipy

    data = _matrix(samples, "repeated-measures ANOVA")
    require_scipy("rm_anova")
    import numpy as np
    from scipy import stats

    x = np.asarray(data).T
    n, k = x.shape
    grand = x.mean()
    ss_sys = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    ss_subj = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    ss_err = float(((x - grand) ** 2).sum()) - ss_sys - ss_subj
    df1, df2 = k - 1, (k - 1) * (n - 1)
    details: dict[str, Any] = {"df_between": df1, "df_within": df2}
    if ss_err <= 1e-300:
        return TestResult(test="rm_anova", statistic=None, p_value=None, details=details)
    f = (ss_sys / df1) / (ss_err / df2)
    return TestResult(
        test="rm_anova",
        statistic=f,
        p_value=float(stats.f.sf(f, df1, df2)),
        details=details,
    )


def _run_means(runs: Sequence[Sequence[float]]) -> list[float]:
    return [math.fsum(r) / len(r) for r in runs]


def pooled_seed_variance(sides: Sequence[Sequence[Sequence[float]]]) -> tuple[float, int]:
    """Return the pooled variance of run means within each side and its degrees of freedom.

    ``sides[s][r]`` are the scores of run r of side s (a sweep point, a configuration);
    sides with one run add nothing. Assumes the seed variance is the same for every side.

    Raises:
        ValueError: no side has 2 runs or more.
    """
    ss = 0.0
    df = 0
    for runs in sides:
        if len(runs) < 2:
            continue
        means = _run_means(runs)
        m = math.fsum(means) / len(means)
        ss += math.fsum((v - m) ** 2 for v in means)
        df += len(means) - 1
    if df == 0:
        raise ValueError("run-to-run variance needs a side with at least 2 runs (seeds)")
    return ss / df, df


def seed_ttest(
    baseline_runs: Sequence[Sequence[float]],
    candidate_runs: Sequence[Sequence[float]],
    *,
    paired: bool,
    clusters: Sequence[Hashable] | None = None,
    seed_variance: tuple[float, int] | None = None,
    confidence_level: float = 0.95,
) -> TestResult:
    """Compare two configurations run with several seeds each: run-level variance counts.

    The estimate is the difference of the mean run means. Its variance has a run-to-run
    (seed) part and an example part (Miller 2024, section 3; Bouthillier et al. 2021). The
    variance of the run means, ``s^2 (1/R_a + 1/R_b)`` (``s^2`` pooled over both sides, or
    ``seed_variance = (s^2, df)`` pooled over a whole sweep), is unbiased for the total;
    the example part alone is the paired (per-example averaged differences, when
    ``paired``: runs aligned by example) or unpaired (pooled scores) standard error, made
    cluster-robust by ``clusters`` (one label per example, paired only). The test uses the
    larger of the two (the variance components truncated at zero) with its degrees of
    freedom: with real seed variance it is the run-level t-test, with none the per-example
    test. Named ``variance_components_ttest`` when paired, ``run_level_ttest`` otherwise;
    ``details`` carries ``seed_sd`` and which part decided (``"seeds"`` / ``"examples"``).

    Raises:
        ValueError: no run-to-run variance to estimate (one run per side and no
            ``seed_variance``), or paired runs of different lengths.
        MissingDependency: scipy is not installed.
    """
    from ._groups import require_scipy

    require_scipy("seed_ttest")
    if seed_variance is None:
        seed_variance = pooled_seed_variance([baseline_runs, candidate_runs])
    s2, df_seed = seed_variance
    ra, rb = len(baseline_runs), len(candidate_runs)
    ma, mb = _run_means(baseline_runs), _run_means(candidate_runs)
    estimate = math.fsum(mb) / rb - math.fsum(ma) / ra
    v_run = s2 * (1 / ra + 1 / rb)
    if paired:
        n = len(baseline_runs[0])
        if any(len(r) != n for r in (*baseline_runs, *candidate_runs)):
            raise ValueError("paired runs need the same examples in every run")
        avg_a = [math.fsum(col) / ra for col in zip(*baseline_runs, strict=True)]
        avg_b = [math.fsum(col) / rb for col in zip(*candidate_runs, strict=True)]
        diffs = [y - x for x, y in zip(avg_a, avg_b, strict=True)]
        if clusters is not None:
            _, se_ex, g = _cr1(diffs, clusters)
            df_ex = float(g - 1)
        else:
            m = math.fsum(diffs) / n
            se_ex = math.sqrt(math.fsum((d - m) ** 2 for d in diffs) / (n - 1) / n)
            df_ex = float(n - 1)
        v_ex = se_ex**2
    else:
        pools = [[v for r in runs for v in r] for runs in (baseline_runs, candidate_runs)]
        parts = []
        for pool in pools:
            m = math.fsum(pool) / len(pool)
            parts.append(math.fsum((v - m) ** 2 for v in pool) / (len(pool) - 1) / len(pool))
        v_ex = parts[0] + parts[1]
        df_ex = float(len(pools[0]) + len(pools[1]) - 2)
    seeds_decide = v_run >= v_ex
    details: dict[str, Any] = {
        "seed_sd": math.sqrt(s2),
        "seed_df": df_seed,
        "runs": [ra, rb],
        "decided_by": "seeds" if seeds_decide else "examples",
        "paired": paired,
    }
    return t_result(
        "variance_components_ttest" if paired else "run_level_ttest",
        estimate,
        math.sqrt(max(v_run, v_ex)),
        float(df_seed) if seeds_decide else df_ex,
        confidence_level,
        details,
    )
