"""0/1 scores: intervals of a proportion, McNemar's test, Cohen's h, Cochran's Q.

An accuracy is a proportion, and the t machinery misleads at the edges: its interval of
19/20 is [0.845, 1.055], outside [0, 1]; on paired 0/1 scores the t-test calls b = 0,
c = 4 of 50 significant while McNemar's exact p is 0.125. ``compare`` uses these
functions whenever every score is 0 or 1.

References: Agresti & Coull (1998), Brown, Cai & DasGupta (2001) for the intervals;
McNemar (1947), Fagerland, Lydersen & Laake (2013) for the exact and mid-p tests; Agresti
& Min (2005) for the interval of a paired difference; Cohen (1988) for h; Cochran (1950)
for Q.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING, Final

from ._result import Interval, McNemarResult, TestResult

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "PROPORTION_INTERVALS",
    "cochrans_q",
    "cohens_h",
    "discordant_counts",
    "mcnemar",
    "mcnemar_from_counts",
    "proportion_interval",
]

PROPORTION_INTERVALS: Final = ("wilson", "agresti_coull", "clopper_pearson", "jeffreys")
MCNEMAR_METHODS: Final = ("exact", "midp", "chi2")


def _z(confidence_level: float) -> float:
    if not 0 < confidence_level < 1:
        raise ValueError(
            f"confidence_level must be strictly between 0 and 1, got {confidence_level!r}"
        )
    return NormalDist().inv_cdf((1 + confidence_level) / 2)


def proportion_interval(
    successes: int,
    n: int,
    confidence_level: float = 0.95,
    method: str = "wilson",
) -> Interval:
    """Return the ``(low, high)`` interval of a proportion ``successes / n``.

    ``wilson`` (default; Wilson 1927, recommended by Brown, Cai & DasGupta 2001),
    ``agresti_coull`` (Agresti & Coull 1998), ``clopper_pearson`` (exact, conservative)
    or ``jeffreys`` (the Beta(1/2, 1/2) posterior's equal-tailed interval, with the bound
    at 0 or n successes set to 0 or 1 as Brown, Cai & DasGupta advise). Every method
    stays inside [0, 1]. 19 of 20 gives Wilson's (0.76387, 0.99112).

    Raises:
        ValueError: ``n < 1``, ``successes`` outside ``[0, n]``, or an unknown method.
        MissingDependency: ``clopper_pearson``/``jeffreys`` without scipy.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(successes, bool) or not isinstance(successes, int) or not 0 <= successes <= n:
        raise ValueError(f"successes must be an int in [0, n={n}], got {successes!r}")
    if method not in PROPORTION_INTERVALS:
        raise ValueError(
            f"unknown interval method {method!r}; expected one of {', '.join(PROPORTION_INTERVALS)}"
        )
    z = _z(confidence_level)
    p = successes / n
    if method == "wilson":
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        low = 0.0 if successes == 0 else max(0.0, centre - half)
        return (low, 1.0 if successes == n else min(1.0, centre + half))
    if method == "agresti_coull":
        n_adj = n + z * z
        p_adj = (successes + z * z / 2) / n_adj
        half = z * math.sqrt(p_adj * (1 - p_adj) / n_adj)
        return (max(0.0, p_adj - half), min(1.0, p_adj + half))
    from ._groups import require_scipy

    require_scipy("proportion_interval")
    from scipy import stats

    tail = (1 - confidence_level) / 2
    if method == "clopper_pearson":
        low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, n - successes + 1))
        high = 1.0 if successes == n else float(stats.beta.isf(tail, successes + 1, n - successes))
        return (low, high)
    a, b = successes + 0.5, n - successes + 0.5
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, a, b))
    high = 1.0 if successes == n else float(stats.beta.isf(tail, a, b))
    return (low, high)


def _binary(values: Sequence[float], label: str) -> list[int]:
    out = []
    for i, v in enumerate(values):
        if v not in (0, 1):
            raise ValueError(f"{label}[{i}] is {v!r}; McNemar's test needs 0/1 scores")
        out.append(int(v))
    return out


def discordant_counts(baseline: Sequence[float], candidate: Sequence[float]) -> tuple[int, int]:
    """Return ``(b, c)``: pairs only the baseline got right, and only the candidate.

    Raises:
        ValueError: different lengths, or a score other than 0 or 1.
    """
    if len(baseline) != len(candidate):
        raise ValueError(
            f"paired scores need equal lengths; got {len(baseline)} and {len(candidate)}"
        )
    x, y = _binary(baseline, "baseline"), _binary(candidate, "candidate")
    b = sum(1 for u, v in zip(x, y, strict=True) if u == 1 and v == 0)
    c = sum(1 for u, v in zip(x, y, strict=True) if u == 0 and v == 1)
    return b, c


def mcnemar(
    baseline: Sequence[float],
    candidate: Sequence[float],
    method: str = "exact",
    *,
    confidence_level: float = 0.95,
) -> McNemarResult:
    """McNemar's test of paired 0/1 scores (the same examples scored by two systems).

    Only the discordant pairs count: b (baseline right, candidate wrong) and c (the
    reverse); under "no difference" b ~ Binomial(b + c, 1/2). ``method``:

    * ``exact`` (default): ``p = min(1, 2 P(X <= min(b, c)))``, statistic ``min(b, c)``
      (statsmodels' ``mcnemar(exact=True)``);
    * ``midp``: the exact p minus the point probability ``P(X = min(b, c))``, less
      conservative and still close to nominal (Fagerland, Lydersen & Laake 2013);
    * ``chi2``: ``(|b - c| - 1)^2 / (b + c)`` against chi-square(1) (Edwards' continuity
      correction; statsmodels' ``exact=False``).

    The estimate is the accuracy difference ``(c - b) / n`` with Agresti & Min's (2005)
    interval (add 1/2 to each cell, then Wald). n = 1797, b = 18, c = 34 gives p = 0.03648;
    n = 50, b = 0, c = 4 gives 0.125.

    Raises:
        ValueError: different lengths, fewer than 1 pair, a score other than 0/1, an unknown
            method.
        MissingDependency: scipy is not installed.
    """
    b, c = discordant_counts(baseline, candidate)
    return mcnemar_from_counts(
        b, c, len(baseline), method=method, confidence_level=confidence_level
    )


def mcnemar_from_counts(
    b: int, c: int, n: int, *, method: str = "exact", confidence_level: float = 0.95
) -> McNemarResult:
    """McNemar's test from the discordant counts ``b``, ``c`` of ``n`` pairs (see :func:`mcnemar`).

    Raises:
        ValueError: negative counts, ``b + c > n``, ``n < 1`` or an unknown method.
        MissingDependency: scipy is not installed.
    """
    if method not in MCNEMAR_METHODS:
        raise ValueError(
            f"unknown McNemar method {method!r}; expected one of {', '.join(MCNEMAR_METHODS)}"
        )
    if n < 1 or b < 0 or c < 0 or b + c > n:
        raise ValueError(f"need 0 <= b, c and b + c <= n >= 1; got b={b}, c={c}, n={n}")
    from ._groups import require_scipy

    require_scipy("mcnemar")
    from scipy import stats

    m = b + c
    low = min(b, c)
    statistic: float
    if m == 0:
        statistic, p = (0.0, 1.0)
    elif method == "chi2":
        statistic = (abs(b - c) - 1) ** 2 / m  # as statsmodels, even when b == c
        p = float(stats.chi2.sf(statistic, 1))
    else:
        statistic = float(low)
        p = min(1.0, 2 * float(stats.binom.cdf(low, m, 0.5)))
        if method == "midp":
            p = max(0.0, p - float(stats.binom.pmf(low, m, 0.5)))
    z = _z(confidence_level)
    na = n + 2
    pb, pc = (b + 0.5) / na, (c + 0.5) / na
    diff_adj = pc - pb
    se = math.sqrt(max(0.0, pb + pc - diff_adj**2) / na)
    ci = (max(-1.0, diff_adj - z * se), min(1.0, diff_adj + z * se))
    return McNemarResult(
        test="mcnemar",
        statistic=statistic,
        p_value=p,
        estimate=(c - b) / n,
        standard_error=math.sqrt(max(0.0, (b + c) / n - ((c - b) / n) ** 2) / n),
        confidence_interval=ci,
        confidence_level=confidence_level,
        discordant=(b, c),
        n=n,
        method=method,
    )


def cohens_h(p1: float, p2: float) -> float:
    """Return Cohen's h of proportion ``p2`` against ``p1``: ``2 asin sqrt(p2) - 2 asin sqrt(p1)``.

    The arcsine transform makes equal h mean equally detectable differences anywhere in
    [0, 1] (Cohen 1988, ch. 6); ``|h|`` < 0.2 negligible, < 0.5 small, < 0.8 medium, else large.

    Raises:
        ValueError: a proportion outside [0, 1].
    """
    for name, p in (("p1", p1), ("p2", p2)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a proportion in [0, 1], got {p!r}")
    return 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))


def cochrans_q(samples: Sequence[Sequence[float]]) -> TestResult:
    """Cochran's Q: do k systems have the same accuracy on the same examples (0/1 scores)?

    ``samples[j][i]`` is system j's score on example i. The omnibus test for paired 0/1
    data (McNemar's test is its k = 2 case without continuity correction); statistic Q
    against chi-square(k - 1). Matches statsmodels' ``cochrans_q``.

    Raises:
        ValueError: fewer than 2 systems, unequal lengths, or a score other than 0/1.
        MissingDependency: scipy is not installed.
    """
    k = len(samples)
    if k < 2:
        raise ValueError(f"Cochran's Q needs at least 2 systems, got {k}")
    n = len(samples[0])
    if any(len(s) != n for s in samples):
        raise ValueError(
            "Cochran's Q needs the same examples for every system; "
            f"lengths {[len(s) for s in samples]}"
        )
    cols = [_binary(s, f"samples[{j}]") for j, s in enumerate(samples)]
    from ._groups import require_scipy

    require_scipy("cochrans_q")
    from scipy import stats

    col_totals = [sum(c) for c in cols]
    row_totals = [sum(c[i] for c in cols) for i in range(n)]
    total = sum(col_totals)
    denom = k * total - sum(r * r for r in row_totals)
    if denom == 0:
        return TestResult(test="cochrans_q", statistic=None, p_value=None, df=float(k - 1))
    q = (k - 1) * (k * sum(c * c for c in col_totals) - total * total) / denom
    return TestResult(
        test="cochrans_q", statistic=q, p_value=float(stats.chi2.sf(q, k - 1)), df=float(k - 1)
    )
