"""Cost of the ``bench`` stage's ``bootstrap`` test on scipy, as JSON lines.

For two groups of n values each, times ``analyze(tests=["bootstrap"])`` (BCa interval of the
mean difference, permutation p-value, BCa interval of Hedges' g, BCa intervals of both
means: five resampling procedures) against a baseline measured in the same process: one
``scipy.stats.bootstrap`` percentile interval of the mean difference with the same number
of resamples, what the percentile method alone costs. Also times ``ttest`` for scale.

Usage: ``python bench/stats.py [--resamples N] [--rounds R]``; figures are medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from crucible_actors.stats import analyze

if TYPE_CHECKING:
    from collections.abc import Callable


def _median_seconds(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n in (10, 100, 1000):
        a, b = rng.normal(0.7, 0.05, n).tolist(), rng.normal(0.72, 0.05, n).tolist()
        analyze({"a": a, "b": b}, tests=["bootstrap"], bootstrap_iterations=100)  # warm up

        def baseline(a: list[float] = a, b: list[float] = b) -> None:
            stats.bootstrap(
                (a, b),
                lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis),
                method="percentile",
                n_resamples=args.resamples,
                rng=np.random.default_rng(0),
            )

        def bootstrap(a: list[float] = a, b: list[float] = b) -> None:
            analyze({"a": a, "b": b}, tests=["bootstrap"], bootstrap_iterations=args.resamples)

        def ttest(a: list[float] = a, b: list[float] = b) -> None:
            analyze({"a": a, "b": b}, tests=["ttest"])

        base = _median_seconds(baseline, args.rounds)
        full = _median_seconds(bootstrap, args.rounds)
        t = _median_seconds(ttest, args.rounds)
        for name, value in (("bootstrap_test", full), ("ttest", t)):
            print(
                json.dumps(
                    {
                        "bench": "stats",
                        "figure": name,
                        "n_per_group": n,
                        "resamples": args.resamples,
                        "seconds": round(value, 5),
                        "baseline_percentile_seconds": round(base, 5),
                        "ratio": round(value / base, 2),
                    }
                )
            )


if __name__ == "__main__":
    main()
