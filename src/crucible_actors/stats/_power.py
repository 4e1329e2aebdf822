"""Power: the smallest difference an evaluation can detect, and the n it would need.

"Not significant" is only informative next to what the evaluation could have detected:
100 paired 0/1 questions cannot detect anything under about 12.5 points. Both functions
use the normal approximation of a two-sided test (Cohen 1988; Miller 2024, "Adding Error
Bars to Evals", arXiv 2411.00640, section 5): ``MDE = (z_{1-alpha/2} + z_power) * SE``.
Paired: ``sd`` is the SD of the per-example differences and ``SE = sd / sqrt(n)``;
unpaired: ``sd`` the SD of the scores in each group, n per group, ``SE = sd sqrt(2 / n)``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["detectable_from_se", "minimum_detectable_effect", "sample_size"]


def _z_sum(alpha: float, power: float) -> float:
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)


def detectable_from_se(se: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Return the minimum detectable effect of a test whose estimate has standard error ``se``."""
    return _z_sum(alpha, power) * se


def minimum_detectable_effect(
    *,
    n: int,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    paired: bool = True,
) -> float:
    """Return the smallest true difference a two-sided test detects with probability ``power``.

    ``n`` examples (pairs when ``paired``, per group otherwise). n = 1797, sd = 0.16992
    gives 0.01123.

    Raises:
        ValueError: ``n < 2``, ``sd < 0``, or alpha/power outside (0, 1).
    """
    if n < 2 or sd < 0:
        raise ValueError(f"need n >= 2 and sd >= 0; got n={n!r}, sd={sd!r}")
    se = sd / math.sqrt(n) if paired else sd * math.sqrt(2 / n)
    return detectable_from_se(se, alpha=alpha, power=power)


def sample_size(
    *,
    effect: float,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    paired: bool = True,
) -> int:
    """Return the n (pairs, or per group when unpaired) that detects ``effect`` with ``power``.

    The inverse of :func:`minimum_detectable_effect`, rounded up.

    Raises:
        ValueError: ``effect == 0``, ``sd < 0``, or alpha/power outside (0, 1).
    """
    if effect == 0 or sd < 0:
        raise ValueError(f"need effect != 0 and sd >= 0; got effect={effect!r}, sd={sd!r}")
    base = (_z_sum(alpha, power) * sd / abs(effect)) ** 2
    return max(2, math.ceil(base if paired else 2 * base))
