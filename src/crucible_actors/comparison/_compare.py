"""Comparing stored runs: per-example scores, the bench statistics, a verdict.

:func:`compare` reads runs from a Store, takes one score per example from each run's
``outputs`` (the items holding the ``metric`` field), optionally pairs the examples of
the runs by a key field (``pair_by``), and compares every run with the first one, the
*baseline*, using the ``bench`` stage's statistics (:func:`..stages._stats.analyze`):

- paired (``pair_by`` given): the paired t-test and the Wilcoxon signed-rank test, on the
  examples every run has (the others are counted in ``dropped``);
- unpaired: Welch's t-test and the Mann-Whitney U test;
- three groups or more: ANOVA and Kruskal-Wallis across all of them first;
- the p-values of the same test across the comparisons are adjusted for multiple
  testing (``correction``, Holm by default), and each comparison reports Cohen's d
  (d_z when paired) and the mean difference with BCa bootstrap intervals
  (:func:`..stages._effect_ci.effect_size_ci`).

The verdict of each comparison uses the reference's wording (``Significant (p < 0.05)``,
``Not significant (p = 0.31)``; effect sizes ``negligible``, ``small``, ``medium``,
``large``). :func:`compare_sweep` does the same for the points of a sweep (the repeats of a
point pooled, or averaged per example when paired), ranked on the metric, each against
the best point.
"""

from __future__ import annotations

import functools
import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec

from .._core._errors import CrucibleError, RunNotFound
from .._core._store import RunRecord

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = ["Comparison", "ComparisonError", "GroupSummary", "PairComparison", "compare"]


class ComparisonError(CrucibleError, ValueError):
    """The runs cannot be compared: no scores, an ambiguous metric, nothing to pair.

    Raised by :func:`compare` before any statistics are computed; unlike
    :class:`~crucible_actors.errors.RunNotFound` the runs exist but their data do not fit.
    """


class GroupSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One side of a comparison: a run, or the runs of one sweep point.

    ``confidence_interval`` is the t interval of the mean; ``scores`` are the values
    compared (in ``Comparison.keys`` order when paired).
    """

    label: str
    run_ids: list[str]
    n: int
    mean: float | None
    std: float | None
    confidence_interval: list[float | None] | None
    scores: list[float]
    parameters: dict[str, Any] = {}


class PairComparison(msgspec.Struct, frozen=True, kw_only=True):
    """One group (``candidate``) against the reference group (``baseline``).

    ``tests`` holds the bench stage's result entries by test name (with
    ``p_value_adjusted`` when a correction applies); ``p_value`` and ``significant``
    come from the first test (the t-test), adjusted. Figures are candidate - baseline.
    """

    baseline: str
    candidate: str
    n: int
    mean_difference: float | None
    mean_difference_ci: list[float | None] | None
    effect_size: dict[str, Any]
    tests: dict[str, Any]
    p_value: float | None
    significant: bool
    better: str | None
    verdict: str


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`compare` found; encodes to JSON as is (``msgspec.json.encode``)."""

    metric: str
    pair_by: str | None
    paired: bool
    alpha: float
    correction: str
    confidence_level: float
    higher_is_better: bool
    groups: list[GroupSummary]
    comparisons: list[PairComparison]
    omnibus: dict[str, Any] | None
    ranking: list[str]
    keys: list[str]
    dropped: dict[str, int]
    verdict: str
    sweep_id: str | None = None


# -- scores ---------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numeric_fields(run: RunRecord, pair_by: str | None) -> set[str]:
    items = [o for o in run.outputs if isinstance(o, dict)]
    if not items:
        return set()
    common = set.intersection(*({k for k, v in o.items() if _is_number(v)} for o in items))
    common.discard(pair_by or "")
    return common


def choose_metric(runs: Sequence[RunRecord], pair_by: str | None) -> str:
    """Pick the field to compare when none is named: the one numeric field all outputs share.

    Raises:
        ComparisonError: no such field, or several (listed, with the ``--metric`` fix).
    """
    fields = set.intersection(*(_numeric_fields(r, pair_by) for r in runs)) if runs else set()
    if "score" in fields:
        return "score"
    if len(fields) == 1:
        return next(iter(fields))
    if not fields:
        raise ComparisonError(
            "no numeric field is present in the outputs of every run; name the per-example "
            "score with --metric NAME (metric=NAME)"
        )
    raise ComparisonError(
        f"several numeric output fields could be the score ({', '.join(sorted(fields))}); "
        "choose one with --metric NAME (metric=NAME)"
    )


def run_scores(run: RunRecord, metric: str, pair_by: str | None) -> list[tuple[str | None, float]]:
    """Return ``(key, score)`` per example of ``run``: its outputs with field ``metric``.

    When no output has the field, a run metric of that name holding a list of numbers
    is used (keys are then the positions).

    Raises:
        ComparisonError: no scores, a non-numeric score, a missing or repeated key.
    """
    found: list[tuple[str | None, float]] = []
    for i, item in enumerate(run.outputs):
        if not isinstance(item, dict) or metric not in item:
            continue
        value = item[metric]
        if not _is_number(value):
            raise ComparisonError(
                f"run {run.id}: outputs[{i}].{metric} is {value!r}; expected a finite number"
            )
        key: str | None = None
        if pair_by is not None:
            if pair_by not in item:
                raise ComparisonError(
                    f"run {run.id}: outputs[{i}] has {metric!r} but no {pair_by!r} to pair by"
                )
            key = str(item[pair_by])
        found.append((key, float(value)))
    if not found:
        listed = run.metrics.get(metric)
        if isinstance(listed, list) and listed and all(_is_number(v) for v in listed):
            return [(str(i) if pair_by else None, float(v)) for i, v in enumerate(listed)]
        raise ComparisonError(
            f"run {run.id} has no scores named {metric!r}: no output item holds that field "
            "and no metric of that name is a list of numbers; check --metric"
        )
    if pair_by is not None:
        seen: set[str | None] = set()
        for key, _ in found:
            if key in seen:
                raise ComparisonError(
                    f"run {run.id}: {pair_by}={key!r} appears twice in the outputs; "
                    "--pair-by needs a field unique per example"
                )
            seen.add(key)
    return found


# -- statistics -----------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _ci_text(ci: list[float | None] | None, level: float) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f", {round(level * 100):d}% CI [{_fmt(ci[0], 3)}, {_fmt(ci[1], 3)}]"


_TEST_NAMES = {
    "paired_ttest": "the paired t-test",
    "wilcoxon": "the Wilcoxon signed-rank test",
    "ttest": "Welch's t-test",
    "mann_whitney": "the Mann-Whitney U test",
}


def _verdict(
    base: GroupSummary,
    cand: GroupSummary,
    diff: float | None,
    diff_ci: list[float | None] | None,
    effect: dict[str, Any],
    test: str,
    entry: dict[str, Any],
    level: float,
    higher_is_better: bool,
) -> tuple[str, str | None]:
    significant = bool(entry.get("significant"))
    sign = "+" if (diff or 0) >= 0 else ""
    head = (
        f"{cand.label} vs {base.label}: mean {_fmt(cand.mean)} vs {_fmt(base.mean)} "
        f"({sign}{_fmt(diff)}{_ci_text(diff_ci, level)})"
    )
    p_text = entry.get("interpretation") or "Not computable (p undefined)"
    adjusted = " after correction" if "p_value_adjusted" in entry else ""
    eff = (
        f"effect size {effect['interpretation']} ({'d_z' if effect['name'] == 'cohens_dz' else 'd'}"
        f" = {_fmt(effect['value'], 3)}{_ci_text(effect['ci'], level)})"
    )
    better: str | None = None
    if significant and diff is not None and diff != 0:
        better = cand.label if (diff > 0) == higher_is_better else base.label
        worse = base.label if better == cand.label else cand.label
        tail = f"{better} is better than {worse}."
    else:
        tail = "The difference may be noise."
    return f"{head}; {p_text} by {_TEST_NAMES[test]}{adjusted}; {eff}. {tail}", better


def _effect_with_intervals(
    a: list[float],
    b: list[float],
    *,
    paired: bool,
    confidence_level: float,
    iterations: int,
    seed: int | None,
) -> dict[str, Any]:
    from .. import stats

    kw: dict[str, Any] = {
        "paired": paired,
        "confidence_level": confidence_level,
        "n_resamples": iterations,
        "seed": seed,
    }
    eff = stats.effect_size(a, b, **kw)
    diff = stats.mean_difference_interval(a, b, **kw)
    name = "cohens_dz" if paired else "cohens_d"
    return {
        "name": name,
        "value": eff[name],
        "ci": eff[f"{name}_ci"],
        "interpretation": eff["interpretation"],
        "mean_difference": diff["estimate"],
        "mean_difference_ci": diff["confidence_interval"],
    }


def _analyze_groups(
    groups: list[GroupSummary],
    reference: int,
    *,
    paired: bool,
    alpha: float,
    correction: str,
    confidence_level: float,
    iterations: int,
    seed: int | None,
    higher_is_better: bool,
) -> tuple[list[PairComparison], dict[str, Any] | None]:
    from .. import stats as _stats

    tests = ("paired_ttest", "wilcoxon") if paired else ("ttest", "mann_whitney")
    base = groups[reference]
    raw: list[tuple[GroupSummary, dict[str, Any], dict[str, Any]]] = []
    for i, cand in enumerate(groups):
        if i == reference:
            continue
        # Names sort as baseline < candidate, so every figure is candidate - baseline.
        result = _stats.analyze(
            {"0": base.scores, "1": cand.scores},
            tests=tests,
            alpha=alpha,
            confidence_level=confidence_level,
        )
        effect = _effect_with_intervals(
            base.scores,
            cand.scores,
            paired=paired,
            confidence_level=confidence_level,
            iterations=iterations,
            seed=seed,
        )
        raw.append((cand, result["test_results"], effect))
    # The family of a test is its comparisons against the reference.
    if correction != "none" and len(raw) > 1:
        for test in tests:
            entries = [r[1][test] for r in raw if r[1][test]["p_value"] is not None]
            adjusted = _stats.adjust_pvalues([e["p_value"] for e in entries], correction)
            for entry, p in zip(entries, adjusted, strict=True):
                entry["p_value_adjusted"] = p
                entry["significant"] = p < alpha
                entry["interpretation"] = _stats.interpret_p(p, alpha)
    out: list[PairComparison] = []
    for cand, results, effect in raw:
        primary = results[tests[0]]
        # The stage's own figure for the estimate; the interval from the bootstrap.
        stage_effect = primary["effect_size"]
        value = stage_effect.get("cohens_dz" if paired else "cohens_d")
        effect = {**effect, "value": value, "interpretation": _stats.interpret_effect(value)}
        diff = primary.get("mean_difference")
        verdict, better = _verdict(
            base,
            cand,
            diff,
            effect["mean_difference_ci"],
            effect,
            tests[0],
            primary,
            confidence_level,
            higher_is_better,
        )
        out.append(
            PairComparison(
                baseline=base.label,
                candidate=cand.label,
                n=len(cand.scores) if paired else len(base.scores) + len(cand.scores),
                mean_difference=diff,
                mean_difference_ci=effect["mean_difference_ci"],
                effect_size=effect,
                tests=results,
                p_value=primary.get("p_value_adjusted", primary["p_value"]),
                significant=bool(primary["significant"]),
                better=better,
                verdict=verdict,
            )
        )
    omnibus = None
    if len(groups) >= 3:
        # Zero-padded names keep the groups in their order (analyze sorts by name).
        width = len(str(len(groups)))
        res = _stats.analyze(
            {f"{i:0{width}d}": g.scores for i, g in enumerate(groups)},
            tests=("anova", "kruskal_wallis"),
            alpha=alpha,
        )
        omnibus = {
            **res["test_results"],
            "verdict": (
                f"Across all {len(groups)} groups: "
                f"{res['test_results']['anova']['interpretation']} by ANOVA, "
                f"{res['test_results']['kruskal_wallis']['interpretation']} by Kruskal-Wallis."
            ),
        }
    return out, omnibus


def _summary(
    label: str, run_ids: list[str], scores: list[float], level: float, params: dict[str, Any]
) -> GroupSummary:
    from .. import stats as _stats

    if len(scores) < 2:
        raise ComparisonError(
            f"{label} has {len(scores)} score(s); comparing needs at least 2 per run"
        )
    desc = _stats.analyze({label: scores}, confidence_level=level)
    return GroupSummary(
        label=label,
        run_ids=run_ids,
        n=desc["n"],
        mean=desc["mean"],
        std=desc["std"],
        confidence_interval=desc["confidence_interval"],
        scores=scores,
        parameters=params,
    )


def _labels(runs: Sequence[RunRecord]) -> list[str]:
    for width in (8, 12, 16):
        short = [r.id[:width] for r in runs]
        if len(set(short)) == len(short):
            return short
    return [r.id for r in runs]


class _Side(msgspec.Struct):
    label: str
    runs: list[RunRecord]
    parameters: dict[str, Any] = {}


def _build(
    sides: list[_Side],
    *,
    metric: str | None,
    pair_by: str | None,
    reference: int | None,
    alpha: float,
    correction: str,
    confidence_level: float,
    bootstrap_iterations: int,
    seed: int | None,
    higher_is_better: bool,
    sweep_id: str | None,
) -> Comparison:
    from .. import stats as _stats

    _stats.require_scipy("compare")
    if len(sides) < 2:
        raise ComparisonError(
            f"comparing needs at least 2 runs (or sweep points); got {len(sides)}"
        )
    all_runs = [r for s in sides for r in s.runs]
    name = metric or choose_metric(all_runs, pair_by)
    per_side: list[list[list[tuple[str | None, float]]]] = [
        [run_scores(r, name, pair_by) for r in s.runs] for s in sides
    ]
    keys: list[str] = []
    dropped: dict[str, int] = {}
    if pair_by is not None:
        key_sets = [{k for k, _ in scores if k is not None} for runs in per_side for scores in runs]
        common = set.intersection(*key_sets)
        if len(common) < 2:
            raise ComparisonError(
                f"only {len(common)} {pair_by!r} value(s) appear in every run; pairing needs "
                "at least 2 shared examples (drop --pair-by to compare unpaired)"
            )
        first = [k for k, _ in per_side[0][0] if k in common]
        keys = first
        for side, runs in zip(sides, per_side, strict=True):
            extra = sum(len(scores) for scores in runs) - len(common) * len(runs)
            if extra:
                dropped[side.label] = extra
    groups: list[GroupSummary] = []
    for side, runs in zip(sides, per_side, strict=True):
        if pair_by is not None:
            # One value per example: the mean over the side's runs (a point's repeats).
            sums = dict.fromkeys(keys, 0.0)
            for scores in runs:
                for k, v in scores:
                    if k is not None and k in sums:
                        sums[k] += v
            values = [sums[k] / len(runs) for k in keys]
        else:
            values = [v for scores in runs for _, v in scores]
        groups.append(
            _summary(
                side.label, [r.id for r in side.runs], values, confidence_level, side.parameters
            )
        )
    order = sorted(
        range(len(groups)),
        key=lambda i: -(groups[i].mean or 0.0) if higher_is_better else (groups[i].mean or 0.0),
    )
    ref = order[0] if reference is None else reference
    comparisons, omnibus = _analyze_groups(
        groups,
        ref,
        paired=pair_by is not None,
        alpha=alpha,
        correction=correction,
        confidence_level=confidence_level,
        iterations=bootstrap_iterations,
        seed=seed,
        higher_is_better=higher_is_better,
    )
    if reference is None:  # the reference is the best group: list the rest by rank
        rank = {groups[i].label: r for r, i in enumerate(order)}
        comparisons.sort(key=lambda c: rank[c.candidate])
    verdict = _overall(groups, ref, comparisons, reference is None)
    return Comparison(
        metric=name,
        pair_by=pair_by,
        paired=pair_by is not None,
        alpha=float(alpha),
        correction=correction if len(comparisons) > 1 else "none",
        confidence_level=float(confidence_level),
        higher_is_better=higher_is_better,
        groups=groups,
        comparisons=comparisons,
        omnibus=omnibus,
        ranking=[groups[i].label for i in order],
        keys=keys,
        dropped=dropped,
        verdict=verdict,
        sweep_id=sweep_id,
    )


def _overall(
    groups: list[GroupSummary], ref: int, comparisons: list[PairComparison], best: bool
) -> str:
    """One sentence over all comparisons; ``best``: the reference is the best group."""
    base = groups[ref]
    if len(comparisons) == 1 and not best:
        return comparisons[0].verdict
    beaten = [c.candidate for c in comparisons if c.better == c.candidate]
    worse = [c.candidate for c in comparisons if c.better == base.label]
    unclear = [c.candidate for c in comparisons if c.better is None]
    if best:
        head = f"Best: {base.label} (mean {_fmt(base.mean)})."
        if not unclear and not beaten:
            return f"{head} It is significantly better than every other point."
        parts = [head]
        if worse:
            parts.append(f"Significantly better than: {', '.join(worse)}.")
        if unclear:
            parts.append(
                f"Not significantly different from: {', '.join(unclear)} "
                "(the difference may be noise)."
            )
        return " ".join(parts)
    parts = []
    if beaten:
        parts.append(f"better: {', '.join(beaten)}")
    if worse:
        parts.append(f"worse: {', '.join(worse)}")
    if unclear:
        parts.append(f"not significantly different: {', '.join(unclear)}")
    return f"Against the baseline {base.label}: " + "; ".join(parts) + "."


async def _build_in_thread(sides: list[_Side], **options: Any) -> Comparison:
    # The tests and the bootstrap are CPU work: keep the event loop free, as the bench
    # stage does.
    result: Comparison = await anyio.to_thread.run_sync(functools.partial(_build, sides, **options))
    return result


@asynccontextmanager
async def _opened(store: Any) -> AsyncIterator[Any]:
    """Yield ``store``, opening it first when given as a URL."""
    if isinstance(store, str):
        from ..store import open_store

        async with open_store(store) as opened:
            yield opened
    else:
        yield store


async def _get_runs(store: Any, run_ids: Sequence[str]) -> list[RunRecord]:
    runs = []
    for run_id in run_ids:
        run = await store.get_run(run_id)
        if run.status != "completed":
            raise ComparisonError(
                f"run {run_id} is {run.status}, not completed; compare completed runs only"
            )
        runs.append(run)
    return runs


async def compare(
    store: Any,
    run_ids: Sequence[str],
    *,
    metric: str | None = None,
    pair_by: str | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    confidence_level: float = 0.95,
    bootstrap_iterations: int = 10_000,
    seed: int | None = 0,
    higher_is_better: bool = True,
) -> Comparison:
    """Compare stored runs; the first is the baseline every other run is tested against.

    ``store`` is a Store or a store URL (opened for the call).
    ``metric`` names the per-example score field of the outputs (default: the one numeric
    field every output shares, ``score`` if present); ``pair_by`` a field identifying the
    example, to pair the runs on. ``correction`` (``holm``, ``bonferroni``, ``fdr_bh``,
    ``none``) adjusts each test's p-values across the comparisons. See the module
    docstring for the tests.

    Raises:
        RunNotFound: a run id is not in the store.
        ComparisonError: fewer than 2 runs, a run not completed, no or ambiguous scores,
            fewer than 2 shared examples when pairing.
        ValueError: an option out of range (from the bench statistics).
        MissingDependency: scipy is not installed (extra ``bench``).
    """
    ids = list(dict.fromkeys(run_ids))
    if len(ids) < 2:
        raise ComparisonError(f"comparing needs at least 2 distinct runs; got {len(ids)}")
    async with _opened(store) as opened:
        runs = await _get_runs(opened, ids)
    sides = [_Side(label, [r]) for label, r in zip(_labels(runs), runs, strict=True)]
    return await _build_in_thread(
        sides,
        metric=metric,
        pair_by=pair_by,
        reference=0,
        alpha=alpha,
        correction=correction,
        confidence_level=confidence_level,
        bootstrap_iterations=bootstrap_iterations,
        seed=seed,
        higher_is_better=higher_is_better,
        sweep_id=None,
    )


async def _sweep_sides(store: Any, sweep_id: str) -> tuple[list[_Side], int]:
    """The complete points of a sweep as sides, and how many points were incomplete."""
    record = await store.get_sweep(sweep_id)
    if record is None:
        raise ComparisonError(f"no sweep {sweep_id!r} in {store.name}")
    points = await store.list_sweep_points(sweep_id)
    paths = _paths(record.sweep, points)
    by_point: dict[int, list[Any]] = {}
    for p in points:
        by_point.setdefault(p.point, []).append(p)
    sides: list[_Side] = []
    incomplete = 0
    for _, members in sorted(by_point.items()):
        runs = []
        for p in members:
            try:
                run = await store.get_run(p.run_id)
            except RunNotFound:
                run = None
            if run is None or run.status != "completed":
                break
            runs.append(run)
        else:
            params = members[0].parameters
            sides.append(_Side(_point_label(params, paths), runs, params))
            continue
        incomplete += 1
    return sides, incomplete


def _paths(sweep: dict[str, Any], points: Sequence[Any]) -> list[str]:
    """The sweep's option paths in the order given (a jsonb column reorders dict keys)."""
    given = sweep.get("paths")
    if isinstance(given, list) and all(isinstance(p, str) for p in given):
        return given
    return list(points[0].parameters) if points else []


def _point_label(params: dict[str, Any], paths: list[str]) -> str:
    short = {p: p.rsplit(".", 1)[-1] for p in paths}
    if len(set(short.values())) < len(paths):
        short = {p: p for p in paths}
    return " ".join(f"{short[p]}={params.get(p)}" for p in paths)


async def compare_sweep(
    store: Any,
    sweep_id: str,
    *,
    metric: str | None = None,
    pair_by: str | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    confidence_level: float = 0.95,
    bootstrap_iterations: int = 10_000,
    seed: int | None = 0,
    higher_is_better: bool = True,
) -> Comparison:
    """Rank the points of sweep ``sweep_id`` on the metric and test each against the best.

    A point's repeats are pooled (unpaired) or averaged per example (paired). Points
    whose runs did not all complete are left out and counted in ``dropped`` under
    ``"incomplete points"``. Options as for :func:`compare`.

    Raises:
        ComparisonError: no such sweep, or fewer than 2 complete points.
    """
    async with _opened(store) as opened:
        sides, incomplete = await _sweep_sides(opened, sweep_id)
    if len(sides) < 2:
        raise ComparisonError(
            f"sweep {sweep_id} has {len(sides)} point(s) whose runs all completed; "
            "comparing needs at least 2"
        )
    result = await _build_in_thread(
        sides,
        metric=metric,
        pair_by=pair_by,
        reference=None,
        alpha=alpha,
        correction=correction,
        confidence_level=confidence_level,
        bootstrap_iterations=bootstrap_iterations,
        seed=seed,
        higher_is_better=higher_is_better,
        sweep_id=sweep_id,
    )
    if incomplete:
        dropped = {**result.dropped, "incomplete points": incomplete}
        result = msgspec.structs.replace(result, dropped=dropped)
    return result
