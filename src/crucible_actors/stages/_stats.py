"""Pure statistics behind the ``bench`` stage: group comparisons, effect sizes, corrections.

The ``bench`` stage collects numeric groups from a Context and passes them to
:func:`analyze`; the dict it returns is the ``results`` part of ``metrics["bench"]``. Nothing
here touches a Context, does IO or keeps state. numpy and scipy are imported inside the
functions that need them, so this module imports without the ``bench`` extra;
:func:`require_scipy` turns a missing scipy into :class:`MissingDependency`. The small
helpers (:func:`cohens_d`, :func:`hedges_g`, :func:`interpret_p`, :func:`interpret_effect`,
:func:`adjust_pvalues`) are pure Python and work without the extra.

Conventions:

* Groups are ordered by sorted name: ``group1`` is the first name, ``group2`` the second.
* Sign: every directional figure is **group2 - group1**: the mean difference, the t
  statistic, the confidence interval of the difference, Cohen's d, Hedges' g and the
  rank-biserial correlations. R's ``t.test(x, y)`` reports ``x - y``, so our figures match
  ``t.test(group2, group1)``. The Mann-Whitney statistic is the U of group2 (R's
  ``wilcox.test(group2, group1)`` W) and the Wilcoxon statistic is W+, the rank sum of the
  positive differences group2 - group1 (R's paired ``V``).
* Paired tests (``paired_ttest``, ``wilcoxon``) pair values by position.
* Every float in a result is a built-in ``float``; NaN and +/-inf become ``None`` because JSON
  has neither. A statistic is ``None`` when it is undefined, e.g. a t statistic when both
  groups are constant; such a test is reported as not significant.
* ``correction`` adjusts, within one :func:`analyze` call, the p-values of the tests run on
  the same groups: the family is every requested test that produced a p-value (several tests
  of the same "no difference" hypothesis on the same data). It does not correct across
  group pairs, calls or stages; use :func:`adjust_pvalues` for that.
* ``bootstrap`` resamples each group independently with ``numpy.random.default_rng(seed)``
  and reports the percentile interval of the mean difference. Its p-value inverts that
  interval: ``2 * (min(#{diff* <= 0}, #{diff* >= 0}) + 1) / (iterations + 1)``, capped at 1,
  so ``p < 1 - confidence_level`` agrees with the interval excluding 0 up to Monte Carlo
  granularity.
"""

from __future__ import annotations

import importlib
import math
from typing import TYPE_CHECKING, Any, Final, SupportsFloat, TypeAlias

from .._core._errors import MissingDependency

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import numpy as np
    import numpy.typing as npt

    FloatArray: TypeAlias = npt.NDArray[np.float64]

__all__ = [
    "CORRECTIONS",
    "TESTS",
    "adjust_pvalues",
    "analyze",
    "cohens_d",
    "hedges_g",
    "interpret_effect",
    "interpret_p",
    "require_scipy",
]

TESTS: Final = (
    "ttest",
    "paired_ttest",
    "wilcoxon",
    "mann_whitney",
    "bootstrap",
    "anova",
    "kruskal_wallis",
)
CORRECTIONS: Final = ("none", "holm", "bonferroni", "fdr_bh")

_PAIRED_TESTS: Final = ("paired_ttest", "wilcoxon")
_SINGLE_GROUP_SKIPPED: Final = "Single group - no comparison tests possible"

# Thresholds from crucible_bench: Cohen (1988) for d, the rank-biserial scale for r, and
# Cohen's eta-squared scale (also used for epsilon-squared).
_D_SCALE: Final = (0.2, 0.5, 0.8)
_R_SCALE: Final = (0.1, 0.3, 0.5)
_ETA_SCALE: Final = (0.01, 0.06, 0.14)

Result: TypeAlias = dict[str, Any]


def require_scipy(feature: str = "bench") -> None:
    """Check that scipy (and so numpy) can be imported.

    Raises:
        MissingDependency: scipy is not installed; the message names the ``bench`` extra.
    """
    try:
        importlib.import_module("scipy.stats")
    except ImportError as exc:
        raise MissingDependency("scipy", feature=feature, extra="bench") from exc


# --------------------------------------------------------------------------- pure helpers


def _mean_var(xs: Sequence[float]) -> tuple[float, float]:
    """Return the mean and the sample variance (ddof=1), summed with fsum for accuracy."""
    n = len(xs)
    mean = math.fsum(xs) / n
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, var


def _require_two(xs: Sequence[float], label: str) -> None:
    if len(xs) < 2:
        raise ValueError(f"{label} has {len(xs)} value(s); it needs at least 2")


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float:
    """Return Cohen's d of ``b`` against ``a``: ``(mean(b) - mean(a)) / pooled SD``.

    The pooled SD weights the sample variances (ddof=1) by their degrees of freedom,
    ``sqrt(((n1-1)s1^2 + (n2-1)s2^2) / (n1+n2-2))``; for equal sizes this is the
    ``sqrt((s1^2 + s2^2) / 2)`` crucible_bench uses. Returns NaN when the pooled SD is 0.

    Raises:
        ValueError: either sample has fewer than 2 values.
    """
    _require_two(a, "a")
    _require_two(b, "b")
    n1, n2 = len(a), len(b)
    m1, v1 = _mean_var(a)
    m2, v2 = _mean_var(b)
    pooled = math.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / (n1 + n2 - 2))
    return (m2 - m1) / pooled if pooled > 0 else math.nan


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Return Hedges' g: Cohen's d times the small-sample factor ``1 - 3 / (4(n1+n2) - 9)``.

    Same sign and preconditions as :func:`cohens_d`.
    """
    return cohens_d(a, b) * (1 - 3 / (4 * (len(a) + len(b)) - 9))


def interpret_p(p: float | None, alpha: float = 0.05) -> str:
    """Describe a p-value the way the reference ``bench`` stage does.

    ``Extremely significant (p < 0.001)``, ``Highly significant (p < 0.01)``,
    ``Significant (p < 0.05)`` (the actual alpha) or ``Not significant (p = 0.0794)`` (p
    rounded to 4 decimals, trailing zeros dropped as in the reference). The first two are
    only used when ``p < alpha`` too. ``None``/NaN gives ``Not computable (p undefined)``.
    """
    if p is None or math.isnan(p):
        return "Not computable (p undefined)"
    if p >= alpha:
        return f"Not significant (p = {round(p, 4)})"
    if p < 0.001:
        return "Extremely significant (p < 0.001)"
    if p < 0.01:
        return "Highly significant (p < 0.01)"
    return f"Significant (p < {float(alpha)!r})"


def _magnitude(value: float | None, scale: tuple[float, float, float]) -> str:
    if value is None or math.isnan(value):
        return "undefined"
    size = abs(value)
    small, medium, large = scale
    if size < small:
        return "negligible"
    if size < medium:
        return "small"
    if size < large:
        return "medium"
    return "large"


def interpret_effect(d: float | None) -> str:
    """Name the size of Cohen's d or Hedges' g: |d| < 0.2 negligible, < 0.5 small, < 0.8
    medium, otherwise large; ``undefined`` for ``None``/NaN."""
    return _magnitude(d, _D_SCALE)


def adjust_pvalues(ps: Sequence[float], method: str) -> list[float]:
    """Adjust p-values for multiple testing, keeping their order.

    ``bonferroni`` multiplies by m; ``holm`` is the step-down ``max_{j<=i} (m-j+1) p_(j)``;
    ``fdr_bh`` is Benjamini-Hochberg ``min_{j>=i} m p_(j) / j``; ``none`` returns them as
    they are. Results are capped at 1.

    Raises:
        ValueError: unknown ``method``, or a p-value outside [0, 1] (NaN included).
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; expected one of {', '.join(CORRECTIONS)}")
    values = [float(p) for p in ps]
    for i, p in enumerate(values):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-value at index {i} is {p!r}; p-values must lie in [0, 1]")
    m = len(values)
    if method == "none" or m == 0:
        return values
    if method == "bonferroni":
        return [min(1.0, p * m) for p in values]
    order = sorted(range(m), key=values.__getitem__)
    adjusted = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * values[i]))
            adjusted[i] = running
    else:
        running = 1.0
        for rank in range(m - 1, -1, -1):
            i = order[rank]
            running = min(running, values[i] * m / (rank + 1))
            adjusted[i] = running
    return adjusted


# --------------------------------------------------------------------------- result shaping


def _f(x: SupportsFloat | None) -> float | None:
    """Return a built-in float, or None for None/NaN/inf (JSON has neither)."""
    if x is None:
        return None
    value = float(x)
    return value if math.isfinite(value) else None


def _pair(lo: SupportsFloat | None, hi: SupportsFloat | None) -> list[float | None] | None:
    if lo is None or hi is None:
        return None
    return [_f(lo), _f(hi)]


def _entry(
    test: str,
    *,
    statistic: SupportsFloat | None,
    p: SupportsFloat | None,
    ci: list[float | None] | None,
    effect_size: Result,
    alpha: float,
    **extra: Any,
) -> Result:
    p_value = _f(p)
    if p_value is not None:
        p_value = min(1.0, max(0.0, p_value))
    entry: Result = {
        "test": test,
        "statistic": _f(statistic),
        "p_value": p_value,
        "significant": False,
        "confidence_interval": ci,
        "effect_size": effect_size,
        "interpretation": "",
        **extra,
    }
    _judge(entry, p_value, alpha)
    return entry


def _judge(entry: Result, p: float | None, alpha: float) -> None:
    entry["significant"] = p is not None and p < alpha
    entry["interpretation"] = interpret_p(p, alpha)


def _apply_correction(results: Result, alpha: float, method: str) -> None:
    """Add ``p_value_adjusted`` to every entry with a p-value and re-judge it on that."""
    if method == "none":
        return
    entries = [e for e in results.values() if "p_value" in e]
    family = [e for e in entries if e["p_value"] is not None]
    adjusted = adjust_pvalues([e["p_value"] for e in family], method)
    for entry in entries:
        entry["p_value_adjusted"] = None
    for entry, p in zip(family, adjusted, strict=True):
        entry["p_value_adjusted"] = p
        _judge(entry, p, alpha)


def _d_effect(a: Sequence[float], b: Sequence[float]) -> Result:
    d = cohens_d(a, b)
    return {
        "cohens_d": _f(d),
        "hedges_g": _f(hedges_g(a, b)),
        "interpretation": interpret_effect(d),
    }


# --------------------------------------------------------------------------- tests


def _t_figures(
    diff: float, se: float, df: float, confidence_level: float
) -> tuple[float | None, float | None, list[float | None] | None]:
    """Return (t, two-sided p, CI of diff); all None when the standard error is 0."""
    from scipy import stats

    if not se > 0:
        return None, None, None
    t = diff / se
    p = 2.0 * float(stats.t.sf(abs(t), df))
    half = float(stats.t.ppf((1 + confidence_level) / 2, df)) * se
    return t, p, _pair(diff - half, diff + half)


def _ttest(
    a: Sequence[float],
    b: Sequence[float],
    *,
    alpha: float,
    equal_var: bool,
    confidence_level: float,
) -> Result:
    # Computed from the formulas rather than scipy.stats.ttest_ind, which emits a
    # RuntimeWarning (an error under our pytest config) whenever a group is constant.
    n1, n2 = len(a), len(b)
    m1, v1 = _mean_var(a)
    m2, v2 = _mean_var(b)
    if equal_var:
        df = float(n1 + n2 - 2)
        se = math.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / df * (1 / n1 + 1 / n2))
    else:
        q1, q2 = v1 / n1, v2 / n2
        se = math.sqrt(q1 + q2)
        df = (q1 + q2) ** 2 / (q1**2 / (n1 - 1) + q2**2 / (n2 - 1)) if se > 0 else math.nan
    t, p, ci = _t_figures(m2 - m1, se, df, confidence_level)
    return _entry(
        "ttest",
        statistic=t,
        p=p,
        ci=ci,
        effect_size=_d_effect(a, b),
        alpha=alpha,
        df=_f(df),
        mean_difference=_f(m2 - m1),
        equal_var=equal_var,
    )


def _paired_ttest(
    a: Sequence[float], b: Sequence[float], *, alpha: float, confidence_level: float
) -> Result:
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    mean, var = _mean_var(diffs)
    sd = math.sqrt(var)
    t, p, ci = _t_figures(mean, sd / math.sqrt(n), float(n - 1), confidence_level)
    dz = mean / sd if sd > 0 else math.nan
    return _entry(
        "paired_ttest",
        statistic=t,
        p=p,
        ci=ci,
        effect_size={"cohens_dz": _f(dz), "interpretation": interpret_effect(dz)},
        alpha=alpha,
        df=float(n - 1),
        mean_difference=_f(mean),
    )


def _wilcoxon(a: FloatArray, b: FloatArray, *, alpha: float) -> Result:
    import numpy as np
    from scipy import stats

    diffs = b - a
    nonzero = diffs[diffs != 0]
    if nonzero.size == 0:
        w_plus, p, r = 0.0, None, None
    else:
        # scipy's two-sided statistic is min(W+, W-), which hides the direction; report W+
        # of group2 - group1 (zeros dropped, as zero_method="wilcox" does).
        ranks = stats.rankdata(np.abs(nonzero))
        w_plus = float(ranks[nonzero > 0].sum())
        total = nonzero.size * (nonzero.size + 1) / 2
        r = (2 * w_plus - total) / total
        p = float(stats.wilcoxon(diffs).pvalue)
    return _entry(
        "wilcoxon",
        statistic=w_plus,
        p=p,
        ci=None,
        effect_size={"rank_biserial": _f(r), "interpretation": _magnitude(r, _R_SCALE)},
        alpha=alpha,
        n_nonzero=int(nonzero.size),
    )


def _mann_whitney(a: FloatArray, b: FloatArray, *, alpha: float) -> Result:
    from scipy import stats

    res = stats.mannwhitneyu(b, a, alternative="two-sided")
    u2 = float(res.statistic)
    r = 2 * u2 / (a.size * b.size) - 1
    return _entry(
        "mann_whitney",
        statistic=u2,
        p=float(res.pvalue),
        ci=None,
        effect_size={"rank_biserial": _f(r), "interpretation": _magnitude(r, _R_SCALE)},
        alpha=alpha,
    )


def _bootstrap_means(x: FloatArray, iterations: int, rng: np.random.Generator) -> FloatArray:
    import numpy as np

    out = np.empty(iterations, dtype=np.float64)
    # Resample in chunks so that iterations x n indices never take more than ~8 MiB.
    chunk = max(1, (1 << 20) // x.size)
    for start in range(0, iterations, chunk):
        stop = min(iterations, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        out[start:stop] = x[idx].mean(axis=1)
    return out


def _bootstrap(
    a: FloatArray,
    b: FloatArray,
    *,
    alpha: float,
    iterations: int,
    seed: int | None,
    confidence_level: float,
) -> Result:
    import numpy as np

    rng = np.random.default_rng(seed)
    means1 = _bootstrap_means(a, iterations, rng)
    means2 = _bootstrap_means(b, iterations, rng)
    diffs = means2 - means1
    qs = [(1 - confidence_level) / 2, (1 + confidence_level) / 2]
    lo, hi = np.quantile(diffs, qs)
    tail = min(int(np.count_nonzero(diffs <= 0)), int(np.count_nonzero(diffs >= 0)))
    p = min(1.0, 2 * (tail + 1) / (iterations + 1))
    diff = _mean_var(b.tolist())[0] - _mean_var(a.tolist())[0]
    g1_lo, g1_hi = np.quantile(means1, qs)
    g2_lo, g2_hi = np.quantile(means2, qs)
    return _entry(
        "bootstrap",
        statistic=diff,
        p=p,
        ci=_pair(lo, hi),
        effect_size=_d_effect(a.tolist(), b.tolist()),
        alpha=alpha,
        mean_difference=_f(diff),
        group1_ci=_pair(g1_lo, g1_hi),
        group2_ci=_pair(g2_lo, g2_hi),
        iterations=iterations,
        confidence_level=float(confidence_level),
        method="percentile",
    )


def _anova(arrays: Sequence[FloatArray], *, alpha: float) -> Result:
    from scipy import stats

    k = len(arrays)
    n = sum(x.size for x in arrays)
    grand = math.fsum(math.fsum(x.tolist()) for x in arrays) / n
    ss_between = math.fsum(x.size * (float(x.mean()) - grand) ** 2 for x in arrays)
    ss_within = math.fsum(_mean_var(x.tolist())[1] * (x.size - 1) for x in arrays)
    ss_total = ss_between + ss_within
    df_between, df_within = k - 1, n - k
    f_stat: float | None = None
    p: float | None = None
    if ss_within > 0:
        f_stat = (ss_between / df_between) / (ss_within / df_within)
        p = float(stats.f.sf(f_stat, df_between, df_within))
    eta = ss_between / ss_total if ss_total > 0 else None
    return _entry(
        "anova",
        statistic=f_stat,
        p=p,
        ci=None,
        effect_size={"eta_squared": _f(eta), "interpretation": _magnitude(eta, _ETA_SCALE)},
        alpha=alpha,
        df_between=df_between,
        df_within=df_within,
    )


def _kruskal_wallis(arrays: Sequence[FloatArray], *, alpha: float) -> Result:
    import numpy as np
    from scipy import stats

    n = sum(x.size for x in arrays)
    h: float | None = None
    p: float | None = None
    eps: float | None = None
    # All values equal: the tie correction divides by zero (scipy warns and returns NaN).
    if np.ptp(np.concatenate(arrays)) > 0:
        res = stats.kruskal(*arrays)
        h, p = float(res.statistic), float(res.pvalue)
        eps = h / (n - 1)
    return _entry(
        "kruskal_wallis",
        statistic=h,
        p=p,
        ci=None,
        effect_size={"epsilon_squared": _f(eps), "interpretation": _magnitude(eps, _ETA_SCALE)},
        alpha=alpha,
        df=len(arrays) - 1,
    )


# --------------------------------------------------------------------------- analyze


def _check_tests(tests: Sequence[str]) -> list[str]:
    if isinstance(tests, str):
        raise ValueError(f"tests must be a list of test names, not a string; try [{tests!r}]")
    unknown = [t for t in tests if t not in TESTS]
    if unknown:
        names = ", ".join(repr(t) for t in unknown)
        raise ValueError(f"unknown test(s) {names}; valid tests: {', '.join(TESTS)}")
    return list(dict.fromkeys(tests))


def _check_options(
    alpha: float, correction: str, bootstrap_iterations: int, seed: int | None, level: float
) -> None:
    for name, value in (("alpha", alpha), ("confidence_level", level)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    if correction not in CORRECTIONS:
        raise ValueError(
            f"unknown correction {correction!r}; expected one of {', '.join(CORRECTIONS)}"
        )
    iterations = bootstrap_iterations
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"bootstrap_iterations must be a positive int, got {iterations!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")


def _check_groups(groups: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    data: dict[str, list[float]] = {}
    for name, values in groups.items():
        if isinstance(values, str | bytes):
            raise ValueError(f"group {name!r}: expected a sequence of numbers, got a string")
        try:
            floats = [float(v) for v in values]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"group {name!r}: expected numbers ({exc})") from exc
        if len(floats) < 2:
            raise ValueError(
                f"group {name!r} has {len(floats)} value(s); each group needs at least 2"
            )
        for i, v in enumerate(floats):
            if not math.isfinite(v):
                raise ValueError(f"group {name!r} holds {v!r} at index {i}; values must be finite")
        data[name] = floats
    return data


def _describe_one(name: str, xs: list[float], confidence_level: float) -> Result:
    from scipy import stats

    n = len(xs)
    mean, var = _mean_var(xs)
    sd = math.sqrt(var)
    half = float(stats.t.ppf((1 + confidence_level) / 2, n - 1)) * sd / math.sqrt(n)
    return {
        "group": name,
        "n": n,
        "mean": _f(mean),
        "std": _f(sd),
        "confidence_interval": _pair(mean - half, mean + half),
        "tests_skipped": _SINGLE_GROUP_SKIPPED,
    }


def analyze(
    groups: Mapping[str, Sequence[float]],
    *,
    tests: Sequence[str] = ("ttest",),
    alpha: float = 0.05,
    correction: str = "none",
    bootstrap_iterations: int = 10_000,
    seed: int | None = None,
    equal_var: bool = False,
    confidence_level: float = 0.95,
) -> Result:
    """Compare numeric groups and return the ``results`` part of ``metrics["bench"]``.

    Shapes, by number of groups (names sorted; see the module docstring for signs):

    * 0: ``{"no_data": True}`` (scipy is not needed).
    * 1: ``{"group", "n", "mean", "std", "confidence_interval", "tests_skipped"}``; ``std``
      has ddof=1 and the interval is always the t interval of the mean at
      ``confidence_level``, even when ``bootstrap`` is requested, so it is deterministic.
    * 2: ``{"groups", "sample_sizes", "test_results", "effect_size", "alpha", "correction"}``.
      Each ``test_results[name]`` has ``test, statistic, p_value, significant,
      confidence_interval, effect_size, interpretation`` plus test-specific keys (``df``,
      ``mean_difference``...), and ``p_value_adjusted`` when ``correction`` is not ``none``;
      ``significant`` and ``interpretation`` then use the adjusted p. ``ttest`` is Welch's
      unless ``equal_var``; ``mann_whitney`` and ``wilcoxon`` are two-sided with scipy's
      defaults; ``anova`` and ``kruskal_wallis`` also run on two groups.
    * 3+: ``{"groups", "sample_sizes", "test_results", "alpha", "correction"}``; ``anova``
      (F, eta-squared) and ``kruskal_wallis`` (H, epsilon-squared = H / (n - 1)) run, any
      other test gives ``{"test": name, "skipped": "Test name not applicable for multiple
      groups"}``.

    Raises:
        ValueError: an unknown test or correction, an option out of range, a group with
            fewer than 2 values or a non-finite value, or a paired test on groups of
            different sizes.
        MissingDependency: there is data and scipy is not installed.
    """
    requested = _check_tests(tests)
    _check_options(alpha, correction, bootstrap_iterations, seed, confidence_level)
    data = _check_groups(groups)
    if not data:
        return {"no_data": True}
    require_scipy()
    import numpy as np

    names = sorted(data)
    if len(names) == 1:
        return _describe_one(names[0], data[names[0]], confidence_level)

    sizes = {name: len(data[name]) for name in names}
    results: Result = {}
    if len(names) == 2:
        g1, g2 = names
        a, b = data[g1], data[g2]
        for test in requested:
            if test in _PAIRED_TESTS and len(a) != len(b):
                raise ValueError(
                    f"{test} needs paired groups of equal size; group {g1!r} has {len(a)} "
                    f"values and group {g2!r} has {len(b)}"
                )
        arr_a, arr_b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        runners: dict[str, Callable[[], Result]] = {
            "ttest": lambda: _ttest(
                a, b, alpha=alpha, equal_var=equal_var, confidence_level=confidence_level
            ),
            "paired_ttest": lambda: _paired_ttest(
                a, b, alpha=alpha, confidence_level=confidence_level
            ),
            "wilcoxon": lambda: _wilcoxon(arr_a, arr_b, alpha=alpha),
            "mann_whitney": lambda: _mann_whitney(arr_a, arr_b, alpha=alpha),
            "bootstrap": lambda: _bootstrap(
                arr_a,
                arr_b,
                alpha=alpha,
                iterations=bootstrap_iterations,
                seed=seed,
                confidence_level=confidence_level,
            ),
            "anova": lambda: _anova([arr_a, arr_b], alpha=alpha),
            "kruskal_wallis": lambda: _kruskal_wallis([arr_a, arr_b], alpha=alpha),
        }
        for test in requested:
            results[test] = runners[test]()
        _apply_correction(results, alpha, correction)
        return {
            "groups": [g1, g2],
            "sample_sizes": sizes,
            "test_results": results,
            "effect_size": _d_effect(a, b),
            "alpha": float(alpha),
            "correction": correction,
        }

    arrays = [np.asarray(data[name], dtype=np.float64) for name in names]
    for test in requested:
        if test == "anova":
            results[test] = _anova(arrays, alpha=alpha)
        elif test == "kruskal_wallis":
            results[test] = _kruskal_wallis(arrays, alpha=alpha)
        else:
            results[test] = {
                "test": test,
                "skipped": f"Test {test} not applicable for multiple groups",
            }
    _apply_correction(results, alpha, correction)
    return {
        "groups": names,
        "sample_sizes": sizes,
        "test_results": results,
        "alpha": float(alpha),
        "correction": correction,
    }
