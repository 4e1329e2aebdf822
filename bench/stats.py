"""Cost and calibration of ``crucible_actors.stats`` and ``compare``, as JSON lines.

1. ``bootstrap_test`` / ``ttest``: for two groups of n values each, ``analyze(tests=
   ["bootstrap"])`` (BCa interval of the mean difference, permutation p-value, BCa interval
   of Hedges' g, BCa intervals of both means: five resampling procedures) against a
   baseline measured in the same process: one ``scipy.stats.bootstrap`` percentile interval
   of the mean difference with the same number of resamples. ``ttest`` for scale.
2. ``compare_seconds``: the statistics of ``compare`` (everything after the runs are read
   from the store) on 2 runs x 100,000 examples, and on a 20-point sweep x 3 seeds x 10,000
   examples, continuous scores paired by id, against the implementation on ``main`` before
   issue 18 (its modules are loaded from ``git show``, in this process) as the baseline;
   ``ratio`` = new / old (the issue allows at most 2).
3. ``type_i_error``: the share of 2,000 seeded simulations (``--reps``) of equal systems in
   which ``compare`` declares a difference at alpha 0.05 (each must lie in [0.03, 0.07]),
   for: equal configurations with seed variance (2 x 3 seeds, 0/1 scores, 1,000 questions),
   clustered questions with an intra-cluster correlation of 0.3 (50 passages x 4
   questions, ``cluster_by``), and k = 10 equal sweep points (3 seeds each; the
   family-wise error of "the best point is better than another"). ``old_rate`` is the
   rate the pre-issue implementation gives on the same data, where it applies.

Usage: ``python bench/stats.py [--resamples N] [--rounds R] [--reps N] [--quick]``
(``--quick``: small sizes, for checking that the script runs). Figures are medians.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from crucible_actors.comparison import CompareOptions, _analysis
from crucible_actors.stats import analyze
from crucible_actors.store import RunRecord

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 1, 1, tzinfo=UTC)
# The last commit of main before issue 18 (compare as it was: seeds as examples, Holm over
# the k - 1 comparisons with the best, no McNemar, clusters or power).
OLD_REF = "da545e70d6131192c20fc215b24868c056d374ab"
OLD_FILES = {
    "comparison/_compare.py": "src/crucible_actors/comparison/_compare.py",
    "stages/_stats.py": "src/crucible_actors/stages/_stats.py",
    "stages/_effect_ci.py": "src/crucible_actors/stages/_effect_ci.py",
}


def _median_seconds(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def emit(**figure: Any) -> None:
    print(json.dumps({"bench": "stats", **figure}), flush=True)


# -- 1. the bench stage's bootstrap ----------------------------------------------------


def bootstrap_figures(resamples: int, rounds: int, sizes: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    for n in sizes:
        a, b = rng.normal(0.7, 0.05, n).tolist(), rng.normal(0.72, 0.05, n).tolist()
        analyze({"a": a, "b": b}, tests=["bootstrap"], bootstrap_iterations=100)  # warm up

        def baseline(a: list[float] = a, b: list[float] = b) -> None:
            stats.bootstrap(
                (a, b),
                lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis),
                method="percentile",
                n_resamples=resamples,
                rng=np.random.default_rng(0),
            )

        def bootstrap(a: list[float] = a, b: list[float] = b) -> None:
            analyze({"a": a, "b": b}, tests=["bootstrap"], bootstrap_iterations=resamples)

        def ttest(a: list[float] = a, b: list[float] = b) -> None:
            analyze({"a": a, "b": b}, tests=["ttest"])

        base = _median_seconds(baseline, rounds)
        full = _median_seconds(bootstrap, rounds)
        t = _median_seconds(ttest, rounds)
        for name, value in (("bootstrap_test", full), ("ttest", t)):
            emit(
                figure=name,
                n_per_group=n,
                resamples=resamples,
                seconds=round(value, 5),
                baseline_percentile_seconds=round(base, 5),
                ratio=round(value / base, 2),
            )


# -- the implementation before issue 18, loaded from git --------------------------------


def load_old() -> ModuleType | None:
    """Import ``main``'s comparison module (and the stats it used) as ``crucible_old``."""
    tmp = Path(tempfile.mkdtemp(prefix="crucible_old_"))
    pkg = tmp / "crucible_old"
    for target, source in OLD_FILES.items():
        try:
            text = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{OLD_REF}:{source}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        except (subprocess.CalledProcessError, FileNotFoundError):
            return None
        path = pkg / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for sub in ("", "comparison", "stages"):
        (pkg / sub / "__init__.py").write_text("")
    # The old modules import the runtime's own _core (errors, RunRecord): share it.
    import crucible_actors._core as core

    sys.modules["crucible_old._core"] = core
    for name in ("_errors", "_store"):
        sys.modules[f"crucible_old._core.{name}"] = importlib.import_module(
            f"crucible_actors._core.{name}"
        )
    sys.path.insert(0, str(tmp))
    try:
        return importlib.import_module("crucible_old.comparison._compare")
    except ImportError as exc:
        emit(figure="old_baseline", error=f"cannot load {OLD_REF[:12]}: {exc}")
        return None


def old_options() -> dict[str, Any]:
    return {
        "metric": None,
        "pair_by": "id",
        "reference": None,
        "alpha": 0.05,
        "correction": "holm",
        "confidence_level": 0.95,
        "seed": 0,
        "higher_is_better": True,
        "sweep_id": "s",
    }


def new_options() -> dict[str, Any]:
    return {
        **old_options(),
        "pair_by": None,  # paired automatically by id
        "cluster_by": None,
        "unpaired": False,
        "repeats": "seeds",
        "test_train_ratio": None,
    }


def new_build(sides: list[Any], kw: dict[str, Any]) -> Any:
    """Run today's compare statistics on ``sides`` with the flat options of new_options()."""
    options = dict(kw)
    reference = options.pop("reference", None)
    sweep_id = options.pop("sweep_id", None)
    return _analysis.build(sides, CompareOptions(**options), reference=reference, sweep_id=sweep_id)


def run(run_id: str, scores: Any, **fields: Any) -> RunRecord:
    outputs = [
        {"id": f"q{i}", "score": float(s), **{k: v[i] for k, v in fields.items()}}
        for i, s in enumerate(scores)
    ]
    return RunRecord(
        id=run_id, experiment_id="e", status="completed", outputs=outputs, started_at=T0
    )


# -- 2. the time of compare ------------------------------------------------------------


def compare_figures(old: ModuleType | None, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(1)
    n2 = args.examples_two
    truth = rng.normal(0.6, 0.15, n2)
    two = [
        _analysis.RunGroup(
            label, [run(label, np.clip(truth + shift + rng.normal(0, 0.1, n2), 0, 1))]
        )
        for label, shift in (("a", 0.0), ("b", 0.002))
    ]
    k, seeds, n = args.points, 3, args.examples_sweep
    truth = rng.normal(0.6, 0.15, n)
    sweep = [
        _analysis.RunGroup(
            f"p{p}",
            [
                run(f"p{p}r{r}", np.clip(truth + 0.001 * p + rng.normal(0, 0.1, n), 0, 1))
                for r in range(seeds)
            ],
        )
        for p in range(k)
    ]
    small = [
        _analysis.RunGroup(s.label, [run(r.id, [o["score"] for o in r.outputs[: n2 // 10]])])
        for s in two
        for r in s.runs
    ]
    cases = (
        ("two_runs", two, {"reference": 0, "sweep_id": None}, f"2 runs x {n2} examples"),
        (
            "two_runs_tenth",
            small,
            {"reference": 0, "sweep_id": None},
            f"2 runs x {n2 // 10} examples",
        ),
        ("sweep", sweep, {}, f"{k} points x {seeds} seeds x {n} examples"),
    )
    for name, sides, extra, shape in cases:
        new_kw = {**new_options(), "bootstrap_iterations": args.resamples, **extra}
        new = _median_seconds(lambda s=sides, kw=new_kw: new_build(s, kw), args.rounds)
        figure: dict[str, Any] = {
            "figure": "compare_seconds",
            "case": name,
            "shape": shape,
            "resamples": args.resamples,
            "seconds": round(new, 4),
        }
        if old is not None:
            old_sides = [old._Side(s.label, s.runs) for s in sides]
            old_kw = {**old_options(), "bootstrap_iterations": args.resamples, **extra}
            try:
                base = _median_seconds(
                    lambda s=old_sides, kw=old_kw: old._build(s, **kw),  # type: ignore[misc]
                    args.rounds,
                )
            except MemoryError as exc:  # the old BCa jackknife allocates n^2 at once
                figure["old_error"] = f"{type(exc).__name__}: {exc}"
            else:
                figure.update(old_seconds=round(base, 4), ratio=round(new / base, 3))
        emit(**figure)


# -- 3. Type-I error by simulation ------------------------------------------------------


def _binary_runs(
    rng: np.random.Generator, difficulty: Any, seeds: int, seed_sd: float, label: str
) -> list[RunRecord]:
    runs = []
    for r in range(seeds):
        shift = rng.normal(0, seed_sd)
        p = 1 / (1 + np.exp(-(difficulty + shift)))
        runs.append(run(f"{label}{r}", (rng.random(difficulty.size) < p).astype(float)))
    return runs


def _rejects(result: Any) -> bool:
    return any(c.significant for c in result.comparisons)


def type_i_figures(old: ModuleType | None, reps: int) -> None:
    cheap = {"bootstrap_iterations": 100}
    cases: dict[str, Callable[[np.random.Generator], tuple[list[Any], dict[str, Any]]]] = {}

    def seeds_case(rng: np.random.Generator) -> tuple[list[Any], dict[str, Any]]:
        difficulty = rng.normal(1.0, 1.5, 1000)
        sides = [
            _analysis.RunGroup(label, _binary_runs(rng, difficulty, 3, 0.1, label))
            for label in ("A", "B")
        ]
        return sides, {"reference": 0}

    def cluster_case(rng: np.random.Generator) -> tuple[list[Any], dict[str, Any]]:
        passages = np.repeat(np.arange(50), 4)
        # Differences with intra-cluster correlation 0.3: a passage part (variance 0.3)
        # shared by its 4 questions, and a question part (variance 0.7).
        base = rng.normal(0, 1, 200) + rng.normal(0, 1, 50)[passages]
        cand = (
            base + rng.normal(0, math.sqrt(0.3), 50)[passages] + rng.normal(0, math.sqrt(0.7), 200)
        )
        labels = passages.tolist()
        sides = [
            _analysis.RunGroup("A", [run("A", base, passage=labels)]),
            _analysis.RunGroup("B", [run("B", cand, passage=labels)]),
        ]
        return sides, {"reference": 0, "cluster_by": "passage"}

    def sweep_case(rng: np.random.Generator) -> tuple[list[Any], dict[str, Any]]:
        difficulty = rng.normal(1.0, 1.5, 500)
        sides = [
            _analysis.RunGroup(f"p{p}", _binary_runs(rng, difficulty, 3, 0.1, f"p{p}"))
            for p in range(10)
        ]
        return sides, {}

    cases = {
        "seed_variance": seeds_case,
        "clustered_icc_0.3": cluster_case,
        "sweep_k10": sweep_case,
    }
    for name, make in cases.items():
        rng = np.random.default_rng(2024)
        hits = old_hits = 0
        start = time.perf_counter()
        for _ in range(reps):
            sides, extra = make(rng)
            hits += _rejects(new_build(sides, {**new_options(), **cheap, **extra}))
            if old is not None:
                old_kw = {**old_options(), **cheap, **extra}
                old_kw.pop("cluster_by", None)
                old_hits += _rejects(
                    old._build([old._Side(s.label, s.runs) for s in sides], **old_kw)
                )
        rate = hits / reps
        figure: dict[str, Any] = {
            "figure": "type_i_error",
            "case": name,
            "alpha": 0.05,
            "reps": reps,
            "rate": round(rate, 4),
            "mc_se": round(math.sqrt(0.05 * 0.95 / reps), 4),
            "within_0.03_0.07": 0.03 <= rate <= 0.07,
            "seconds": round(time.perf_counter() - start, 1),
        }
        if old is not None:
            figure["old_rate"] = round(old_hits / reps, 4)
        emit(**figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=2_000, help="simulations per Type-I case")
    parser.add_argument("--examples-two", type=int, default=100_000)
    parser.add_argument("--examples-sweep", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--no-old", action="store_true", help="skip the pre-issue baseline")
    parser.add_argument("--only", choices=("bootstrap", "compare", "type_i"), default=None)
    parser.add_argument("--quick", action="store_true", help="small sizes: check it runs")
    args = parser.parse_args()
    sizes: tuple[int, ...] = (10, 100, 1000)
    if args.quick:
        args.resamples, args.rounds, args.reps = 500, 1, 100
        args.examples_two, args.examples_sweep, args.points = 5_000, 1_000, 5
        sizes = (10, 100)
    old = None if args.no_old else load_old()
    if args.only in (None, "bootstrap"):
        bootstrap_figures(args.resamples, args.rounds, sizes)
    if args.only in (None, "compare"):
        compare_figures(old, args)
    if args.only in (None, "type_i"):
        type_i_figures(old, args.reps)


if __name__ == "__main__":
    main()
