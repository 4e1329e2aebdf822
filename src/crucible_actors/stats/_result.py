"""The result of one test: a small frozen record every new test in :mod:`..stats` returns.

The older group functions (:func:`~._groups.analyze` and friends) return JSON-ready dicts
because the ``bench`` stage stores them as they are; the tests added for ``compare``
(McNemar, cluster-robust, corrected resampled, seed-variance) return a
:class:`TestResult`, which :meth:`TestResult.to_dict` turns into the same kind of dict.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

__all__ = ["Interval", "McNemarResult", "TestResult", "finite"]

#: A confidence interval: ``(low, high)``.
Interval = tuple[float, float]


def finite(x: float | None) -> float | None:
    """Return ``x`` as a float, or None for None/NaN/inf (JSON has neither)."""
    if x is None:
        return None
    value = float(x)
    return value if math.isfinite(value) else None


class TestResult(msgspec.Struct, frozen=True, kw_only=True):
    """A two-sided test of "no difference" and the interval that belongs to it.

    ``estimate`` is the tested difference (candidate - baseline, or the mean of the
    differences), ``standard_error`` its standard error and ``confidence_interval`` the
    interval that belongs to the test: for the t-based tests it is built from the same
    standard error and t distribution as the p-value, so it excludes 0 exactly when
    ``p_value < alpha`` at ``confidence_level = 1 - alpha`` (McNemar's is Agresti & Min's,
    which can differ from the exact p at the margin). ``df`` is None for a normal or exact
    reference.
    """

    __test__ = False  # not a pytest class, despite the name

    test: str
    statistic: float | None
    p_value: float | None
    estimate: float | None = None
    standard_error: float | None = None
    df: float | None = None
    confidence_interval: Interval | None = None
    confidence_level: float = 0.95
    details: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict (the interval as a list, details inlined)."""
        out: dict[str, Any] = {
            "test": self.test,
            "statistic": finite(self.statistic),
            "p_value": finite(self.p_value),
            "estimate": finite(self.estimate),
            "standard_error": finite(self.standard_error),
            "df": finite(self.df),
            "confidence_interval": (
                None if self.confidence_interval is None else list(self.confidence_interval)
            ),
            "confidence_level": self.confidence_level,
        }
        out.update(self.details)
        return out


class McNemarResult(TestResult, frozen=True, kw_only=True):
    """McNemar's test of paired 0/1 scores.

    ``discordant`` is ``(b, c)``: b examples only the baseline got right, c only the
    candidate. ``estimate`` is the difference in accuracy ``(c - b) / n`` and
    ``confidence_interval`` Agresti & Min's (2005) interval of it.
    """

    discordant: tuple[int, int] = (0, 0)
    n: int = 0
    method: str = "exact"

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict, ``discordant`` as ``[b, c]``."""
        out = super().to_dict()
        out.update({"discordant": list(self.discordant), "n": self.n, "method": self.method})
        return out
