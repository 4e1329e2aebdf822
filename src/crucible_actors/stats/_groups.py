"""Group comparisons, effect sizes, corrections and the bootstrap (public via :mod:`..stats`).

The ``bench`` stage collects numeric groups from a Context and passes them to
:func:`analyze`; the dict it returns is the ``results`` part of ``metrics["bench"]``.
``compare`` uses the same functions (and the one BCa implementation, :func:`_interval`). Nothing
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
* ``bootstrap`` is resampling on scipy: the interval of the mean difference is
  ``scipy.stats.bootstrap``'s BCa interval (``method: "BCa"``; bias-corrected and
  accelerated, the better choice at the small n of ML evaluations than the percentile
  interval), the p-value is ``scipy.stats.permutation_test``'s (``p_value_method:
  "permutation"``; exact when every split of the pooled values fits in the iterations,
  ``permutation_exact``), and the effect size carries a BCa interval of Hedges' g
  (``hedges_g_ci``). Each procedure draws from ``numpy.random.default_rng(seed)``, with
  :data:`DEFAULT_SEED` when no seed is given, and the entry records the ``seed`` it used:
  the same data and options always give the same figures.

Function-level API, for callers comparing runs rather than a Context's groups:
:func:`two_sample`, :func:`paired` and :func:`k_sample` run the tests on explicit samples
(``b`` against ``a``); :func:`effect_size`, :func:`mean_difference_interval`,
:func:`mean_interval` and :func:`permutation_pvalue` are the resampling pieces on their own;
:func:`adjust_pvalues` corrects any family of p-values.
"""

from __future__ import annotations

import importlib
import math
import warnings
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Literal,
    NamedTuple,
    SupportsFloat,
    TypeAlias,
    get_args,
)

from .._core import MissingDependency

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import numpy as np
    import numpy.typing as npt

    FloatArray: TypeAlias = npt.NDArray[np.float64]
    #: A sample: a sequence of numbers or a 1-d float array.
    Sample: TypeAlias = Sequence[float] | FloatArray

__all__ = [
    "CORRECTIONS",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "INTERVAL_METHODS",
    "K_SAMPLE_TESTS",
    "PAIRED_TESTS",
    "TESTS",
    "adjust_pvalues",
    "analyze",
    "cohens_d",
    "effect_size",
    "hedges_g",
    "interpret_effect",
    "interpret_p",
    "k_sample",
    "mean_difference_interval",
    "mean_interval",
    "paired",
    "permutation_pvalue",
    "require_scipy",
    "two_sample",
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
#: A multiple-comparison correction: none, Holm, Bonferroni or Benjamini-Hochberg.
Correction: TypeAlias = Literal["none", "holm", "bonferroni", "fdr_bh"]
CORRECTIONS: Final[tuple[Correction, ...]] = get_args(Correction)
#: The tests :func:`paired` runs; ``bootstrap`` there resamples pairs.
PAIRED_TESTS: Final = ("paired_ttest", "wilcoxon", "bootstrap")
#: The tests :func:`k_sample` runs.
K_SAMPLE_TESTS: Final = ("anova", "kruskal_wallis")

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
    """Describe a p-value the way CrucibleFramework's ``bench`` stage does.

    ``Extremely significant (p < 0.001)``, ``Highly significant (p < 0.01)``,
    ``Significant (p < 0.05)`` (the actual alpha) or ``Not significant (p = 0.0794)`` (p
    rounded to 4 decimals, trailing zeros dropped as in CrucibleFramework). The first two are
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
    """Name the size of Cohen's d or Hedges' g: ``|d|`` < 0.2 negligible, < 0.5 small, < 0.8
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


# --------------------------------------------------------------------------- resampling

# The seed a resampling procedure uses when the caller gives none: results are reproducible
# by default, and every result records the seed it used.
DEFAULT_SEED: Final = 0
DEFAULT_RESAMPLES: Final = 10_000
INTERVAL_METHODS: Final = ("BCa", "percentile", "basic")
# Keep a (batch x n) float64 block of resamples (or jackknife samples) near 8 MiB.
_BATCH_BYTES: Final = 1 << 23


def _rng(seed: int | None) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng(DEFAULT_SEED if seed is None else seed)


def _batch(n: int) -> int:
    return max(1, _BATCH_BYTES // (8 * max(1, n)))


def _check_resampling(
    confidence_level: float, n_resamples: int, seed: int | None, method: str = "BCa"
) -> None:
    if (
        isinstance(confidence_level, bool)
        or not isinstance(confidence_level, int | float)
        or not 0 < confidence_level < 1
    ):
        raise ValueError(
            f"confidence_level must be a number strictly between 0 and 1, got {confidence_level!r}"
        )
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    if method not in INTERVAL_METHODS:
        raise ValueError(
            f"unknown interval method {method!r}; expected one of {', '.join(INTERVAL_METHODS)}"
        )


def _arrays(*samples: Sample) -> list[FloatArray]:
    import numpy as np

    arrays = [np.asarray(s, dtype=np.float64) for s in samples]
    for i, x in enumerate(arrays):
        if x.ndim != 1 or x.size < 2:
            raise ValueError(f"sample {i} has {x.size} value(s); it needs at least 2")
        if not np.isfinite(x).all():
            raise ValueError(f"sample {i} holds a non-finite value; values must be finite")
    return arrays


def _check_paired(a: FloatArray, b: FloatArray) -> None:
    if a.size != b.size:
        raise ValueError(f"paired samples must have equal sizes; got {a.size} and {b.size} values")


def _interval(
    data: tuple[FloatArray, ...],
    statistic: Callable[..., Any],
    *,
    paired: bool,
    confidence_level: float,
    n_resamples: int,
    seed: int | None,
    method: str,
) -> tuple[list[float | None] | None, float | None]:
    """Return scipy's bootstrap interval and standard error; (None, None) when undefined.

    BCa is undefined when every value is the same (no spread to resample: scipy would warn
    and return NaN); that case is answered without resampling.
    """
    import numpy as np
    from scipy import stats

    if all(np.ptp(x) == 0 for x in data):
        return None, None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # A BCa interval scipy cannot compute (a skewed resample of very few values) comes
        # back as NaN with a DegenerateDataWarning: it is reported as None instead.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            data,
            statistic,
            n_resamples=n_resamples,
            batch=_batch(sum(x.size for x in data)),
            vectorized=True,
            paired=paired,
            confidence_level=confidence_level,
            method=method,
            rng=_rng(seed),
        )
    low, high = _f(res.confidence_interval.low), _f(res.confidence_interval.high)
    interval: list[float | None] | None = None
    if low is not None and high is not None:
        interval = [low, high]
    return interval, _f(res.standard_error)


def _mean_stat(x: FloatArray, axis: int = -1) -> Any:
    return x.mean(axis=axis)


def _diff_stat(x: FloatArray, y: FloatArray, axis: int = -1) -> Any:
    return y.mean(axis=axis) - x.mean(axis=axis)


def _paired_diff_stat(x: FloatArray, y: FloatArray, axis: int = -1) -> Any:
    return (y - x).mean(axis=axis)


def _hedges_stat(x: FloatArray, y: FloatArray, axis: int = -1) -> Any:
    import numpy as np

    n1, n2 = x.shape[axis], y.shape[axis]
    pooled = np.sqrt(
        ((n1 - 1) * x.var(axis=axis, ddof=1) + (n2 - 1) * y.var(axis=axis, ddof=1)) / (n1 + n2 - 2)
    )
    return (y.mean(axis=axis) - x.mean(axis=axis)) / pooled * (1 - 3 / (4 * (n1 + n2) - 9))


def _dz_one_stat(d: FloatArray, axis: int = -1) -> Any:
    return d.mean(axis=axis) / d.std(axis=axis, ddof=1)


def mean_interval(
    x: Sample,
    *,
    confidence_level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = None,
    method: str = "BCa",
) -> list[float | None] | None:
    """Return the bootstrap interval ``[low, high]`` of the mean of ``x`` (BCa by default).

    Drawn with ``numpy.random.default_rng(seed)`` (seed :data:`DEFAULT_SEED` when None), so
    equal arguments give equal intervals. ``None`` when ``x`` is constant.

    Raises:
        ValueError: fewer than 2 values, a non-finite value, or an option out of range.
    """
    _check_resampling(confidence_level, n_resamples, seed, method)
    require_scipy()
    (arr,) = _arrays(x)
    ci, _ = _interval(
        (arr,),
        _mean_stat,
        paired=False,
        confidence_level=confidence_level,
        n_resamples=n_resamples,
        seed=seed,
        method=method,
    )
    return ci


def mean_difference_interval(
    a: Sample,
    b: Sample,
    *,
    paired: bool = False,
    confidence_level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = None,
    method: str = "BCa",
) -> Result:
    """Bootstrap the difference of means ``mean(b) - mean(a)`` with ``scipy.stats.bootstrap``.

    Unpaired samples are resampled independently; ``paired=True`` resamples the pairs
    ``(a[i], b[i])`` together (the interval of the mean of ``b - a``). Returns
    ``{"estimate", "confidence_interval", "standard_error", "method", "confidence_level",
    "n_resamples", "seed", "paired"}``; ``seed`` is the seed actually used.
    ``confidence_interval`` is ``None`` when both samples are constant.

    Raises:
        ValueError: a sample with fewer than 2 values or a non-finite value, paired samples
            of different sizes, or an option out of range.
    """
    _check_resampling(confidence_level, n_resamples, seed, method)
    require_scipy()
    x, y = _arrays(a, b)
    if paired:
        _check_paired(x, y)
    ci, se = _interval(
        (x, y),
        _paired_diff_stat if paired else _diff_stat,
        paired=paired,
        confidence_level=confidence_level,
        n_resamples=n_resamples,
        seed=seed,
        method=method,
    )
    estimate = _mean_var((y - x).tolist())[0] if paired else _diff_of_means(x, y)
    return {
        "estimate": _f(estimate),
        "confidence_interval": ci,
        "standard_error": se,
        "method": method,
        "confidence_level": float(confidence_level),
        "n_resamples": n_resamples,
        "seed": DEFAULT_SEED if seed is None else seed,
        "paired": paired,
    }


def _diff_of_means(x: FloatArray, y: FloatArray) -> float:
    return _mean_var(y.tolist())[0] - _mean_var(x.tolist())[0]


def effect_size(
    a: Sample,
    b: Sample,
    *,
    paired: bool = False,
    confidence_level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = None,
) -> Result:
    """Return the standardized effect of ``b`` against ``a`` with a BCa bootstrap interval.

    Unpaired: ``{"cohens_d", "cohens_d_ci", "hedges_g", "hedges_g_ci", "interpretation"}``
    (Hedges' g resampled within each sample; the interval of d is that of g divided by the
    small-sample factor, which BCa carries over exactly because it is a positive constant).
    Paired: ``{"cohens_dz", "cohens_dz_ci", "interpretation"}``,
    ``dz = mean(b - a) / sd(b - a)``, the pairs resampled together.
    Both also carry ``confidence_level``, ``n_resamples`` and the ``seed`` used. Figures that
    are undefined (no spread) are ``None``.

    Raises:
        ValueError: as :func:`mean_difference_interval`.
    """
    _check_resampling(confidence_level, n_resamples, seed)
    require_scipy()
    x, y = _arrays(a, b)
    common = {
        "confidence_level": float(confidence_level),
        "n_resamples": n_resamples,
        "seed": DEFAULT_SEED if seed is None else seed,
    }
    if paired:
        _check_paired(x, y)
        diffs = (y - x).tolist()
        mean, var = _mean_var(diffs)
        dz = mean / math.sqrt(var) if var > 0 else math.nan
        ci = None
        if var > 0:
            # Resampling the differences draws the same indices as resampling the pairs
            # (scipy resamples pairs through an index array), at half the jackknife cost.
            ci, _ = _interval(
                (y - x,),
                _dz_one_stat,
                paired=False,
                confidence_level=confidence_level,
                n_resamples=n_resamples,
                seed=seed,
                method="BCa",
            )
        return {
            "cohens_dz": _f(dz),
            "cohens_dz_ci": ci,
            "interpretation": interpret_effect(dz),
            **common,
        }
    effect = _d_effect(x.tolist(), y.tolist())
    ci = None
    if effect["hedges_g"] is not None:
        ci, _ = _interval(
            (x, y),
            _hedges_stat,
            paired=False,
            confidence_level=confidence_level,
            n_resamples=n_resamples,
            seed=seed,
            method="BCa",
        )
    d_ci = None
    if ci is not None and ci[0] is not None and ci[1] is not None:
        factor = 1 - 3 / (4 * (x.size + y.size) - 9)
        d_ci = [ci[0] / factor, ci[1] / factor]
    return {**effect, "cohens_d_ci": d_ci, "hedges_g_ci": ci, **common}


def permutation_pvalue(
    a: Sample,
    b: Sample,
    *,
    paired: bool = False,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = None,
    alternative: str = "two-sided",
) -> Result:
    """Test "no difference in means" by permutation with ``scipy.stats.permutation_test``.

    The statistic is ``mean(b) - mean(a)``. Unpaired samples are pooled and re-split
    (``permutation_type="independent"``); paired samples swap within pairs
    (``"samples"``, i.e. sign flips of ``b - a``). When every distinct permutation fits in
    ``n_resamples`` the test is exact (``"exact": True``), otherwise randomized with
    ``numpy.random.default_rng(seed)``. Returns ``{"statistic", "p_value", "exact",
    "n_resamples", "seed", "alternative", "paired"}``; ``p_value`` is ``None`` when both
    samples are constant.

    Raises:
        ValueError: a bad sample, paired samples of different sizes, an option out of range,
            or ``alternative`` not ``two-sided``, ``less`` or ``greater``.
    """
    _check_resampling(0.95, n_resamples, seed)  # no interval here: only n_resamples and seed
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(
            f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}"
        )
    require_scipy()
    import numpy as np
    from scipy import stats

    x, y = _arrays(a, b)
    if paired:
        _check_paired(x, y)
        total = 2**x.size
    else:
        total = math.comb(x.size + y.size, x.size)
    with np.errstate(all="ignore"):
        res = stats.permutation_test(
            (x, y),
            _paired_diff_stat if paired else _diff_stat,
            permutation_type="samples" if paired else "independent",
            vectorized=True,
            n_resamples=n_resamples,
            batch=_batch(x.size + y.size),
            alternative=alternative,
            rng=_rng(seed),
        )
    return {
        "statistic": _f(res.statistic),
        "p_value": min(1.0, float(res.pvalue)),
        "exact": total <= n_resamples,
        "n_resamples": n_resamples,
        "seed": DEFAULT_SEED if seed is None else seed,
        "alternative": alternative,
        "paired": paired,
    }


def _bootstrap(
    a: FloatArray,
    b: FloatArray,
    *,
    alpha: float,
    iterations: int,
    seed: int | None,
    confidence_level: float,
    paired: bool = False,
) -> Result:
    diff = mean_difference_interval(
        a,
        b,
        paired=paired,
        confidence_level=confidence_level,
        n_resamples=iterations,
        seed=seed,
    )
    perm = permutation_pvalue(a, b, paired=paired, n_resamples=iterations, seed=seed)
    effect = effect_size(
        a, b, paired=paired, confidence_level=confidence_level, n_resamples=iterations, seed=seed
    )
    for key in ("confidence_level", "n_resamples", "seed"):
        effect.pop(key)
    group_cis: Result = {}
    if not paired:
        group_cis = {
            f"group{i}_ci": mean_interval(
                x, confidence_level=confidence_level, n_resamples=iterations, seed=seed
            )
            for i, x in ((1, a), (2, b))
        }
    return _entry(
        "bootstrap",
        statistic=diff["estimate"],
        p=perm["p_value"],
        ci=diff["confidence_interval"],
        effect_size=effect,
        alpha=alpha,
        mean_difference=diff["estimate"],
        standard_error=diff["standard_error"],
        **group_cis,
        iterations=iterations,
        confidence_level=float(confidence_level),
        method="BCa",
        p_value_method="permutation",
        permutation_exact=perm["exact"],
        seed=diff["seed"],
        paired=paired,
    )


# --------------------------------------------------------------------------- comparisons


def _check_tests(tests: Sequence[str], allowed: Sequence[str] = TESTS) -> list[str]:
    if isinstance(tests, str):
        raise ValueError(f"tests must be a list of test names, not a string; try [{tests!r}]")
    unknown = [t for t in tests if t not in allowed]
    if unknown:
        names = ", ".join(repr(t) for t in unknown)
        raise ValueError(f"unknown test(s) {names}; valid tests: {', '.join(allowed)}")
    return list(dict.fromkeys(tests))


class _Settings(NamedTuple):
    """The checked options every comparison of groups shares."""

    alpha: float
    correction: str
    bootstrap_iterations: int
    seed: int | None
    confidence_level: float


def _check_options(
    alpha: float, correction: str, bootstrap_iterations: int, seed: int | None, level: float
) -> _Settings:
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
    return _Settings(alpha, correction, bootstrap_iterations, seed, level)


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


def _two_results(
    names: tuple[str, str],
    a: list[float],
    b: list[float],
    requested: Sequence[str],
    settings: _Settings,
    *,
    equal_var: bool,
    paired_bootstrap: bool = False,
) -> Result:
    import numpy as np

    alpha, confidence_level = settings.alpha, settings.confidence_level

    for test in requested:
        if (test in _PAIRED_TESTS or (paired_bootstrap and test == "bootstrap")) and len(a) != len(
            b
        ):
            raise ValueError(
                f"{test} needs paired groups of equal size; group {names[0]!r} has {len(a)} "
                f"values and group {names[1]!r} has {len(b)}"
            )
    arr_a, arr_b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    runners: dict[str, Callable[[], Result]] = {
        "ttest": lambda: _ttest(
            a, b, alpha=alpha, equal_var=equal_var, confidence_level=confidence_level
        ),
        "paired_ttest": lambda: _paired_ttest(a, b, alpha=alpha, confidence_level=confidence_level),
        "wilcoxon": lambda: _wilcoxon(arr_a, arr_b, alpha=alpha),
        "mann_whitney": lambda: _mann_whitney(arr_a, arr_b, alpha=alpha),
        "bootstrap": lambda: _bootstrap(
            arr_a,
            arr_b,
            alpha=alpha,
            iterations=settings.bootstrap_iterations,
            seed=settings.seed,
            confidence_level=confidence_level,
            paired=paired_bootstrap,
        ),
        "anova": lambda: _anova([arr_a, arr_b], alpha=alpha),
        "kruskal_wallis": lambda: _kruskal_wallis([arr_a, arr_b], alpha=alpha),
    }
    results: Result = {test: runners[test]() for test in requested}
    _apply_correction(results, alpha, settings.correction)
    return results


def _k_results(arrays: Sequence[FloatArray], requested: Sequence[str], *, alpha: float) -> Result:
    results: Result = {}
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
    return results


def two_sample(
    a: Sequence[float],
    b: Sequence[float],
    *,
    tests: Sequence[str] = ("ttest",),
    alpha: float = 0.05,
    correction: str = "none",
    bootstrap_iterations: int = DEFAULT_RESAMPLES,
    seed: int | None = None,
    equal_var: bool = False,
    confidence_level: float = 0.95,
) -> Result:
    """Compare sample ``b`` against sample ``a`` (e.g. a candidate run against a baseline).

    Every directional figure is ``b - a``. ``tests`` are any of :data:`TESTS`, as in
    :func:`analyze` (the paired ones pair by position; ``bootstrap`` resamples ``a`` and
    ``b`` independently). Returns ``{"sample_sizes": [len(a), len(b)], "test_results",
    "effect_size", "alpha", "correction"}``; each ``test_results`` entry is shaped as in
    :func:`analyze`, and ``correction`` adjusts across the tests of this call.

    Raises:
        ValueError: as :func:`analyze`, naming the samples ``'a'`` and ``'b'``.
        MissingDependency: scipy is not installed.
    """
    requested = _check_tests(tests)
    settings = _check_options(alpha, correction, bootstrap_iterations, seed, confidence_level)
    data = _check_groups({"a": a, "b": b})
    require_scipy()
    results = _two_results(
        ("a", "b"), data["a"], data["b"], requested, settings, equal_var=equal_var
    )
    return {
        "sample_sizes": [len(data["a"]), len(data["b"])],
        "test_results": results,
        "effect_size": _d_effect(data["a"], data["b"]),
        "alpha": float(alpha),
        "correction": correction,
    }


def paired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    tests: Sequence[str] = ("paired_ttest",),
    alpha: float = 0.05,
    correction: str = "none",
    bootstrap_iterations: int = DEFAULT_RESAMPLES,
    seed: int | None = None,
    confidence_level: float = 0.95,
) -> Result:
    """Compare paired samples: ``b[i]`` and ``a[i]`` measure the same item (e.g. one prompt).

    ``tests`` are any of :data:`PAIRED_TESTS`. ``bootstrap`` here resamples the pairs
    (BCa interval of ``mean(b - a)``) and its p-value comes from a sign-flip permutation
    test; its effect size is Cohen's dz with a BCa interval. Returns ``{"n",
    "test_results", "effect_size", "alpha", "correction"}``.

    Raises:
        ValueError: samples of different sizes, or as :func:`two_sample`.
        MissingDependency: scipy is not installed.
    """
    requested = _check_tests(tests, PAIRED_TESTS)
    settings = _check_options(alpha, correction, bootstrap_iterations, seed, confidence_level)
    data = _check_groups({"a": a, "b": b})
    if len(data["a"]) != len(data["b"]):
        raise ValueError(
            f"paired samples must have equal sizes; got {len(data['a'])} and "
            f"{len(data['b'])} values"
        )
    require_scipy()
    results = _two_results(
        ("a", "b"),
        data["a"],
        data["b"],
        requested,
        settings,
        equal_var=False,
        paired_bootstrap=True,
    )
    diffs = [y - x for x, y in zip(data["a"], data["b"], strict=True)]
    mean, var = _mean_var(diffs)
    dz = mean / math.sqrt(var) if var > 0 else math.nan
    return {
        "n": len(diffs),
        "test_results": results,
        "effect_size": {"cohens_dz": _f(dz), "interpretation": interpret_effect(dz)},
        "alpha": float(alpha),
        "correction": correction,
    }


def k_sample(
    samples: Sequence[Sequence[float]],
    *,
    tests: Sequence[str] = ("anova",),
    alpha: float = 0.05,
    correction: str = "none",
) -> Result:
    """Compare two or more independent samples with ``anova`` and/or ``kruskal_wallis``.

    Returns ``{"sample_sizes": [...], "test_results", "alpha", "correction"}``; the entries
    are shaped as in :func:`analyze` (eta-squared and epsilon-squared effect sizes).

    Raises:
        ValueError: fewer than 2 samples, a test other than those two, or a bad sample.
        MissingDependency: scipy is not installed.
    """
    requested = _check_tests(tests, K_SAMPLE_TESTS)
    _check_options(alpha, correction, 1, None, 0.95)
    if len(samples) < 2:
        raise ValueError(f"k_sample needs at least 2 samples, got {len(samples)}")
    data = _check_groups({str(i): s for i, s in enumerate(samples)})
    require_scipy()
    import numpy as np

    arrays = [np.asarray(v, dtype=np.float64) for v in data.values()]
    results = _k_results(arrays, requested, alpha=alpha)
    _apply_correction(results, alpha, correction)
    return {
        "sample_sizes": [x.size for x in arrays],
        "test_results": results,
        "alpha": float(alpha),
        "correction": correction,
    }


def analyze(
    groups: Mapping[str, Sequence[float]],
    *,
    tests: Sequence[str] = ("ttest",),
    alpha: float = 0.05,
    correction: str = "none",
    bootstrap_iterations: int = DEFAULT_RESAMPLES,
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
      defaults; ``bootstrap`` is described in the module docstring; ``anova`` and
      ``kruskal_wallis`` also run on two groups.
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
    settings = _check_options(alpha, correction, bootstrap_iterations, seed, confidence_level)
    data = _check_groups(groups)
    if not data:
        return {"no_data": True}
    require_scipy()
    import numpy as np

    names = sorted(data)
    if len(names) == 1:
        return _describe_one(names[0], data[names[0]], confidence_level)

    sizes = {name: len(data[name]) for name in names}
    if len(names) == 2:
        g1, g2 = names
        results = _two_results(
            (g1, g2), data[g1], data[g2], requested, settings, equal_var=equal_var
        )
        return {
            "groups": [g1, g2],
            "sample_sizes": sizes,
            "test_results": results,
            "effect_size": _d_effect(data[g1], data[g2]),
            "alpha": float(alpha),
            "correction": correction,
        }

    arrays = [np.asarray(data[name], dtype=np.float64) for name in names]
    results = _k_results(arrays, requested, alpha=alpha)
    _apply_correction(results, alpha, correction)
    return {
        "groups": names,
        "sample_sizes": sizes,
        "test_results": results,
        "alpha": float(alpha),
        "correction": correction,
    }
