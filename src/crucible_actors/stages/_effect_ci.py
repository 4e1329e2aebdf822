"""Bootstrap confidence intervals of effect sizes, for comparing runs.

:mod:`._stats` gives the point estimates (:func:`~._stats.cohens_d`, the paired
``cohens_dz``) and the tests; this module adds what it lacks: BCa intervals (scipy's
:func:`scipy.stats.bootstrap`) of the standardized effect and of the mean difference,
resampling pairs together when the data are paired. Signs follow :mod:`._stats`: every
figure is ``b - a``. Degenerate data (a constant sample, or too few values for BCa)
give ``None`` rather than a warning, as JSON has no NaN.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

from . import _stats

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

__all__ = ["effect_size_ci"]


def _d_vectorized(a: npt.NDArray[Any], b: npt.NDArray[Any], axis: int = -1) -> npt.NDArray[Any]:
    """Cohen's d of ``b`` against ``a`` along ``axis`` (the form :func:`_stats.cohens_d` has)."""
    import numpy as np

    n1, n2 = a.shape[axis], b.shape[axis]
    v1, v2 = a.var(axis=axis, ddof=1), b.var(axis=axis, ddof=1)
    pooled = np.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / (n1 + n2 - 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        out: npt.NDArray[Any] = (b.mean(axis=axis) - a.mean(axis=axis)) / pooled
    return out


def _dz_vectorized(d: npt.NDArray[Any], axis: int = -1) -> npt.NDArray[Any]:
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        out: npt.NDArray[Any] = d.mean(axis=axis) / d.std(axis=axis, ddof=1)
    return out


def _interval(
    data: tuple[np.ndarray[Any, Any], ...],
    statistic: Any,
    *,
    paired: bool,
    confidence_level: float,
    iterations: int,
    seed: int | None,
) -> list[float | None] | None:
    import numpy as np
    from scipy import stats

    with warnings.catch_warnings():
        # Degenerate resamples (a constant sample) make BCa warn and give NaN: reported
        # as no interval.
        warnings.simplefilter("ignore")
        try:
            res = stats.bootstrap(
                data,
                statistic,
                n_resamples=iterations,
                vectorized=True,
                paired=paired,
                confidence_level=confidence_level,
                method="BCa",
                rng=np.random.default_rng(seed),
            )
        except ValueError:
            return None
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return [lo, hi]


def effect_size_ci(
    a: Sequence[float],
    b: Sequence[float],
    *,
    paired: bool,
    confidence_level: float = 0.95,
    iterations: int = 10_000,
    seed: int | None = 0,
) -> dict[str, Any]:
    """Return the effect of ``b`` against ``a`` with BCa bootstrap intervals.

    Unpaired: Cohen's d (pooled SD, as :func:`._stats.cohens_d`); paired (equal lengths,
    position ``i`` of both is one example): Cohen's d_z, the mean difference over the SD
    of the differences. Returns ``{"name", "value", "ci", "interpretation",
    "mean_difference", "mean_difference_ci"}``; an interval is ``None`` when the data
    are degenerate.

    Raises:
        ValueError: fewer than 2 values in a sample, or paired samples of unequal length.
        MissingDependency: scipy is not installed.
    """
    _stats.require_scipy()
    import numpy as np

    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"each sample needs at least 2 values; got {len(a)} and {len(b)}")
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    kw: dict[str, Any] = {
        "confidence_level": confidence_level,
        "iterations": iterations,
        "seed": seed,
    }
    if paired:
        if x.size != y.size:
            raise ValueError(f"paired samples need equal lengths; got {x.size} and {y.size}")
        diffs = y - x
        mean = float(diffs.mean())
        sd = float(diffs.std(ddof=1))
        value = mean / sd if sd > 0 else None
        constant = sd == 0
        d_ci = None if constant else _interval((diffs,), _dz_vectorized, paired=False, **kw)
        m_ci = None if constant else _interval((diffs,), np.mean, paired=False, **kw)
        name = "cohens_dz"
    else:
        d = _stats.cohens_d(a, b)
        value = d if math.isfinite(d) else None
        mean = float(y.mean() - x.mean())
        constant = value is None

        def diff(p: npt.NDArray[Any], q: npt.NDArray[Any], axis: int = -1) -> Any:
            return q.mean(axis=axis) - p.mean(axis=axis)

        d_ci = None if constant else _interval((x, y), _d_vectorized, paired=False, **kw)
        m_ci = None if constant else _interval((x, y), diff, paired=False, **kw)
        name = "cohens_d"
    return {
        "name": name,
        "value": value,
        "ci": d_ci,
        "interpretation": _stats.interpret_effect(value),
        "mean_difference": mean,
        "mean_difference_ci": m_ci,
    }
