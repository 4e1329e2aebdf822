"""Comparing stored runs: per-example scores, the test that fits them, a verdict.

:func:`compare` reads runs from a Store, takes one score per example from each run's
``outputs`` (the items holding the ``metric`` field) and compares every run with the
first one, the *baseline*; :func:`compare_sweep` compares the points of a sweep. The
statistics are :mod:`crucible_actors.stats`; :mod:`._design` chooses the test:

- **pairing**: by ``pair_by``, or automatically by ``id`` when every output of every run
  carries a unique one (``unpaired=True`` opts out); the header says which and why;
- **0/1 scores**: McNemar's exact test with the discordant counts, Wilson intervals, the
  difference in points and Cohen's h;
- **clusters** (``cluster_by``): cluster-robust (CR1) standard errors and t-tests;
- **repeated runs** of a sweep point are seeds by default (``repeats="seeds"``): the
  test counts run-to-run variance (:func:`~crucible_actors.stats.seed_ttest`) and the
  seed SD is printed; ``repeats="samples"`` averages them per example instead;
- **cross-validation** (``test_train_ratio``): per-fold scores compared with the
  corrected resampled t-test, never the naive one;
- **several comparisons**: against the baseline, Holm (``correction``) over the k - 1
  comparisons; in a sweep, over *all* pairs of points, so picking the best point after
  seeing the data keeps the family-wise error at alpha; the omnibus test fits the design
  (Cochran's Q, Friedman and repeated-measures ANOVA, ANOVA on run means, ANOVA and
  Kruskal-Wallis).

Each verdict prints the interval of its own test, and every "not significant" verdict
the minimum detectable effect at that n (power 0.8).
"""

from __future__ import annotations

import functools
import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec

from .._core import CrucibleError, RunNotFound, RunRecord
from ._warnings import provenance_warnings_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable, Sequence

    from ._design import Design, Side

__all__ = ["Comparison", "ComparisonError", "GroupSummary", "PairComparison", "compare"]

REPEATS = ("seeds", "samples")


class ComparisonError(CrucibleError, ValueError):
    """The runs cannot be compared: no scores, an ambiguous metric, nothing to pair.

    Raised by :func:`compare` before any statistics are computed; unlike
    :class:`~crucible_actors.errors.RunNotFound` the runs exist but their data do not fit.
    """


class GroupSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One side of a comparison: a run, or the runs of one sweep point.

    ``confidence_interval`` fits the data (``interval``: ``Wilson`` for 0/1 scores,
    ``t``, ``cluster-robust t``, or ``seeds``: the run means' spread counted);
    ``scores`` are the values compared (in ``Comparison.keys`` order when paired; the
    per-example average of a point's runs). ``seed_sd`` is the SD of the run means.
    """

    label: str
    run_ids: list[str]
    n: int
    mean: float | None
    std: float | None
    confidence_interval: list[float | None] | None
    scores: list[float]
    parameters: dict[str, Any] = {}
    interval: str = "t"
    seed_sd: float | None = None
    n_clusters: int | None = None


class PairComparison(msgspec.Struct, frozen=True, kw_only=True):
    """One group (``candidate``) against the reference group (``baseline``).

    ``tests`` holds the entries by test name (with ``p_value_adjusted`` when a correction
    applies); ``test`` names the one the verdict uses, and ``p_value``, ``significant``
    and ``mean_difference_ci`` are that test's (adjusted). Figures are candidate -
    baseline. ``minimum_detectable_effect`` is the difference that test would detect
    with power 0.8; ``discordant`` is McNemar's (b, c).
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
    test: str = ""
    minimum_detectable_effect: float | None = None
    discordant: list[int] | None = None


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`compare` found; encodes to JSON as is (``msgspec.json.encode``).

    ``design`` says in words which test was used and why; ``family`` is what
    ``correction`` adjusts over (``baseline``: the comparisons against it; ``all_pairs``:
    every pair of sweep points).
    """

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
    design: str = ""
    binary: bool = False
    cluster_by: str | None = None
    repeats: str = "seeds"
    family: str = "baseline"
    test_train_ratio: float | None = None
    notes: list[str] = []
    #: One line per way the compared runs differ in code, environment or input data.
    warnings: list[str] = []


# -- scores ---------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numeric_fields(run: RunRecord, exclude: set[str]) -> set[str]:
    items = [o for o in run.outputs if isinstance(o, dict)]
    if not items:
        return set()
    common = set.intersection(*({k for k, v in o.items() if _is_number(v)} for o in items))
    return common - exclude


def choose_metric(runs: Sequence[RunRecord], pair_by: str | None, *also: str | None) -> str:
    """Pick the field to compare when none is named: the one numeric field all outputs share.

    Raises:
        ComparisonError: no such field, or several (listed, with the ``--metric`` fix).
    """
    exclude = {f for f in (pair_by, *also) if f}
    fields = set.intersection(*(_numeric_fields(r, exclude) for r in runs)) if runs else set()
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
    return [(k, v) for k, v, _ in _run_items(run, metric, pair_by, None)]


def _run_items(
    run: RunRecord, metric: str, pair_by: str | None, cluster_by: str | None
) -> list[tuple[str | None, float, Hashable]]:
    found: list[tuple[str | None, float, Hashable]] = []
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
        cluster: Hashable = None
        if cluster_by is not None:
            if cluster_by not in item:
                raise ComparisonError(
                    f"run {run.id}: outputs[{i}] has {metric!r} but no {cluster_by!r} to "
                    "cluster by; every output needs the --cluster-by field"
                )
            cluster = _hashable(item[cluster_by])
        found.append((key, float(value), cluster))
    if not found:
        listed = run.metrics.get(metric)
        if isinstance(listed, list) and listed and all(_is_number(v) for v in listed):
            if cluster_by is not None:
                raise ComparisonError(
                    f"run {run.id}: {metric!r} is a run metric (a list), which has no "
                    f"{cluster_by!r} field to cluster by"
                )
            return [(str(i) if pair_by else None, float(v), None) for i, v in enumerate(listed)]
        raise ComparisonError(
            f"run {run.id} has no scores named {metric!r}: no output item holds that field "
            "and no metric of that name is a list of numbers; check --metric"
        )
    if pair_by is not None:
        seen: set[str | None] = set()
        for key, _, _ in found:
            if key in seen:
                raise ComparisonError(
                    f"run {run.id}: {pair_by}={key!r} appears twice in the outputs; "
                    "--pair-by needs a field unique per example"
                )
            seen.add(key)
    return found


def _hashable(value: Any) -> Hashable:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value  # type: ignore[no-any-return]


def _has_unique_ids(runs: Sequence[RunRecord], metric: str, field: str = "id") -> bool:
    """Whether every output with ``metric`` of every run carries a unique ``field``."""
    for run in runs:
        seen: set[str] = set()
        items = [o for o in run.outputs if isinstance(o, dict) and metric in o]
        if not items:
            return False
        for item in items:
            if field not in item or item[field] is None:
                return False
            key = str(item[field])
            if key in seen:
                return False
            seen.add(key)
    return True


# -- verdicts -------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _amount(x: float | None, binary: bool, signed: bool = False) -> str:
    """A difference: in points (percentage points) for 0/1 scores."""
    if x is None:
        return "n/a"
    if binary:
        return f"{x * 100:+.1f} points" if signed else f"{x * 100:.1f} points"
    return f"{'+' if signed and x >= 0 else ''}{_fmt(x)}"


def _ci_text(ci: Sequence[float | None] | None, level: float, binary: bool = False) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    if binary:
        return f", {round(level * 100):d}% CI [{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]"
    return f", {round(level * 100):d}% CI [{_fmt(ci[0], 3)}, {_fmt(ci[1], 3)}]"


_EFFECT_SYMBOLS = {"cohens_dz": "d_z", "cohens_d": "d", "cohens_h": "h"}


def _verdict(
    base: GroupSummary,
    cand: GroupSummary,
    test: str,
    entry: dict[str, Any],
    effect: dict[str, Any],
    mde: float | None,
    *,
    level: float,
    binary: bool,
    higher_is_better: bool,
) -> tuple[str, str | None]:
    from ._design import TEST_NAMES

    diff = entry.get("estimate")
    significant = bool(entry.get("significant"))
    ci = _ci_text(entry.get("confidence_interval"), level, binary)
    head = (
        f"{cand.label} vs {base.label}: mean {_fmt(cand.mean)} vs {_fmt(base.mean)} "
        f"({_amount(diff, binary, signed=True)}{ci})"
    )
    p_text = entry.get("interpretation") or "Not computable (p undefined)"
    adjusted = " after correction" if "p_value_adjusted" in entry else ""
    extra = ""
    if test == "mcnemar":
        b, c = entry["discordant"]
        extra = f" (b = {b}, c = {c})"
    elif "seed_sd" in entry:
        runs = entry.get("runs") or []
        extra = f" (seed SD {_fmt(entry['seed_sd'], 3)}; {'+'.join(map(str, runs))} runs)"
    eff = (
        f"effect size {effect['interpretation']} "
        f"({_EFFECT_SYMBOLS.get(effect['name'], effect['name'])} = {_fmt(effect['value'], 3)}"
        f"{_ci_text(effect.get('ci'), level)})"
    )
    better: str | None = None
    if significant and diff is not None and diff != 0:
        better = cand.label if (diff > 0) == higher_is_better else base.label
        worse = base.label if better == cand.label else cand.label
        tail = f"{better} is better than {worse}."
    else:
        tail = "The difference may be noise"
        if mde is not None:
            tail += f"; this comparison could not detect differences under {_amount(mde, binary)}"
        tail += "."
    return (
        f"{head}; {p_text} by {TEST_NAMES.get(test, test)}{extra}{adjusted}; {eff}. {tail}",
        better,
    )


# -- building a comparison ------------------------------------------------------------


class _Side(msgspec.Struct):
    label: str
    runs: list[RunRecord]
    parameters: dict[str, Any] = {}


def _labels(runs: Sequence[RunRecord]) -> list[str]:
    for width in (8, 12, 16):
        short = [r.id[:width] for r in runs]
        if len(set(short)) == len(short):
            return short
    return [r.id for r in runs]


def _check(repeats: str, test_train_ratio: float | None, correction: str) -> None:
    from .. import stats

    if repeats not in REPEATS:
        raise ValueError(f"repeats must be 'seeds' or 'samples', got {repeats!r}")
    if test_train_ratio is not None and (
        isinstance(test_train_ratio, bool)
        or not isinstance(test_train_ratio, int | float)
        or not 0 < test_train_ratio < math.inf
    ):
        raise ValueError(
            "test_train_ratio must be n_test / n_train of one fold (1/4 for 5-fold CV), "
            f"got {test_train_ratio!r}"
        )
    if correction not in stats.CORRECTIONS:
        raise ValueError(
            f"unknown correction {correction!r}; expected one of {', '.join(stats.CORRECTIONS)}"
        )


def _pairing(
    all_runs: list[RunRecord],
    metric: str,
    *,
    pair_by: str | None,
    unpaired: bool,
    cv: bool,
) -> tuple[str | None, str]:
    """Return (the key field to pair by or None, the words saying so)."""
    if cv:
        return None, "fold scores paired by position"
    if unpaired:
        if pair_by is not None:
            raise ComparisonError("pair_by and unpaired contradict each other; give one")
        return None, "unpaired (as asked)"
    if pair_by is not None:
        return pair_by, f"paired by {pair_by}"
    if _has_unique_ids(all_runs, metric):
        return (
            "id",
            "paired by id (automatically: every output has a unique id; --unpaired to opt out)",
        )
    return None, "unpaired (not every output has a unique id; --pair-by FIELD pairs them)"


def _sides_data(
    sides: list[_Side],
    per_side: list[list[list[tuple[str | None, float, Hashable]]]],
    *,
    key_field: str | None,
    cv: bool,
    clustered: bool,
) -> tuple[list[Side], list[str], dict[str, int]]:
    from ._design import Side

    keys: list[str] = []
    dropped: dict[str, int] = {}
    out: list[Side] = []
    if cv:
        for side, runs in zip(sides, per_side, strict=True):
            values = [v for items in runs for _, v, _ in items]
            out.append(Side(label=side.label, runs=[values], values=values))
        lengths = {len(s.values) for s in out}
        if len(lengths) > 1:
            raise ComparisonError(
                "the corrected resampled t-test pairs folds by position; the runs have "
                f"{sorted(lengths)} fold scores: give every run the same folds"
            )
        keys = [str(i) for i in range(lengths.pop())]
        return out, keys, dropped
    if key_field is not None:
        key_sets = [{k for k, _, _ in items} for runs in per_side for items in runs]
        common = set.intersection(*key_sets)
        keys = [k for k, _, _ in per_side[0][0] if k is not None and k in common]
        cluster_of = {k: c for k, _, c in per_side[0][0]}
        for side, runs in zip(sides, per_side, strict=True):
            extra = sum(len(items) for items in runs) - len(common) * len(runs)
            if extra:
                dropped[side.label] = extra
            aligned = []
            for items in runs:
                by_key = {k: v for k, v, _ in items}
                aligned.append([by_key[k] for k in keys])
            values = [math.fsum(col) / len(aligned) for col in zip(*aligned, strict=True)]
            out.append(
                Side(
                    label=side.label,
                    runs=aligned,
                    values=values,
                    clusters=[cluster_of[k] for k in keys] if clustered else None,
                )
            )
        return out, keys, dropped
    for side, runs in zip(sides, per_side, strict=True):
        run_values = [[v for _, v, _ in items] for items in runs]
        out.append(
            Side(
                label=side.label,
                runs=run_values,
                values=[v for r in run_values for v in r],
                clusters=[c for items in runs for _, _, c in items] if clustered else None,
            )
        )
    return out, keys, dropped


def _describe(design: Design, pairing: str, cluster_by: str | None, n_clusters: int | None) -> str:
    if design.cv_ratio is not None:
        return (
            f"{pairing}; the corrected resampled t-test (Nadeau & Bengio), test/train ratio "
            f"{design.cv_ratio:.4g}"
        )
    parts = [pairing]
    if design.seeds:
        parts.append(
            "repeated runs are seeds: the test counts run-to-run variance "
            "(--repeats samples averages them per example instead)"
        )
    if design.clustered:
        parts.append(f"clustered by {cluster_by} ({n_clusters} clusters): cluster-robust SEs")
    if design.seeds:
        test = "the seed-variance t-test" if design.paired else "the run-level t-test"
    elif design.clustered:
        test = "the cluster-robust t-test"
    elif design.paired and design.binary:
        test = "0/1 scores: McNemar's exact test, Wilson intervals"
    elif design.paired:
        test = "the paired t-test (Wilcoxon signed-rank beside it)"
    elif design.binary:
        test = "0/1 scores: Welch's t-test on the accuracies, Wilson intervals"
    else:
        test = "Welch's t-test (Mann-Whitney U beside it)"
    parts.append(test)
    return "; ".join(parts)


def _build(
    sides: list[_Side],
    *,
    metric: str | None,
    pair_by: str | None,
    cluster_by: str | None,
    unpaired: bool,
    repeats: str,
    test_train_ratio: float | None,
    reference: int | None,
    alpha: float,
    correction: str,
    confidence_level: float,
    bootstrap_iterations: int,
    seed: int | None,
    higher_is_better: bool,
    sweep_id: str | None,
) -> Comparison:
    from .. import stats
    from . import _design
    from ._design import Design

    stats.require_scipy("compare")
    _check(repeats, test_train_ratio, correction)
    if not 0 < alpha < 1 or not 0 < confidence_level < 1:
        raise ValueError(
            f"alpha and confidence_level must lie strictly between 0 and 1; got {alpha!r} "
            f"and {confidence_level!r}"
        )
    if len(sides) < 2:
        raise ComparisonError(
            f"comparing needs at least 2 runs (or sweep points); got {len(sides)}"
        )
    all_runs = [r for s in sides for r in s.runs]
    cv = test_train_ratio is not None
    name = metric or choose_metric(all_runs, pair_by, cluster_by, "id")
    key_field, pairing = _pairing(all_runs, name, pair_by=pair_by, unpaired=unpaired, cv=cv)
    per_side = [[_run_items(r, name, key_field, cluster_by) for r in s.runs] for s in sides]
    if key_field is not None:
        common = set.intersection(
            *({k for k, _, _ in items} for runs in per_side for items in runs)
        )
        if len(common) < 2:
            if pair_by is not None:
                raise ComparisonError(
                    f"only {len(common)} {pair_by!r} value(s) appear in every run; pairing "
                    "needs at least 2 shared examples (drop --pair-by to compare unpaired)"
                )
            key_field, pairing = None, "unpaired (the runs share fewer than 2 example ids)"
            per_side = [[_run_items(r, name, None, cluster_by) for r in s.runs] for s in sides]
    dsides, keys, dropped = _sides_data(
        sides, per_side, key_field=key_field, cv=cv, clustered=cluster_by is not None
    )
    if key_field is not None:
        pairing = pairing.replace(
            f"paired by {key_field}", f"paired by {key_field} ({len(keys)} examples)", 1
        )
    for ds in dsides:
        if len(ds.values) < 2:
            raise ComparisonError(
                f"{ds.label} has {len(ds.values)} score(s); comparing needs at least 2 per run"
            )
    raw_binary = all(v in (0.0, 1.0) for items in per_side for runs in items for _, v, _ in runs)
    seeds = repeats == "seeds" and not cv and any(len(ds.runs) >= 2 for ds in dsides)
    design = Design(
        paired=key_field is not None or cv,
        binary=all(v in (0.0, 1.0) for ds in dsides for v in ds.values),
        seeds=seeds,
        clustered=cluster_by is not None and not cv,
        cv_ratio=float(test_train_ratio) if test_train_ratio is not None else None,
        seed_variance=stats.pooled_seed_variance([ds.runs for ds in dsides]) if seeds else None,
    )
    notes: list[str] = []
    if repeats == "samples" and any(len(ds.runs) >= 2 for ds in dsides):
        notes.append(
            "repeated runs treated as eval-time samples of one system (averaged per example); "
            "if they are training seeds, use --repeats seeds"
        )
    elif sweep_id is not None and not cv and all(len(ds.runs) == 1 for ds in dsides):
        notes.append(
            "one run per point: run-to-run (seed) variance cannot be estimated, so the test "
            "counts the examples as the only source of noise"
        )
    groups = [
        _group(design, side, ds, confidence_level=confidence_level)
        for side, ds in zip(sides, dsides, strict=True)
    ]
    order = sorted(
        range(len(groups)),
        key=lambda i: -(groups[i].mean or 0.0) if higher_is_better else (groups[i].mean or 0.0),
    )
    ref = order[0] if reference is None else reference
    family = "baseline" if reference is not None else "all_pairs"
    pairs = [(ref, i) for i in range(len(groups)) if i != ref]
    if family == "all_pairs":
        pairs += [
            (i, j)
            for i in range(len(groups))
            for j in range(i + 1, len(groups))
            if ref not in (i, j)
        ]
    tested: list[tuple[str, dict[str, dict[str, Any]]]] = [
        _design.pair_test(
            design, dsides[i], dsides[j], alpha=alpha, confidence_level=confidence_level
        )
        for i, j in pairs
    ]
    if correction != "none" and len(tested) > 1:
        for test in {t for _, entries in tested for t in entries}:
            family_entries = [
                e[test] for _, e in tested if test in e and e[test].get("p_value") is not None
            ]
            adjusted = stats.adjust_pvalues([e["p_value"] for e in family_entries], correction)
            for entry, p in zip(family_entries, adjusted, strict=True):
                entry["p_value_adjusted"] = p
                entry["significant"] = p < alpha
                entry["interpretation"] = stats.interpret_p(p, alpha)
    comparisons: list[PairComparison] = []
    for (i, j), (test, entries) in zip(pairs, tested, strict=True):
        if i != ref:
            continue
        comparisons.append(
            _pair_comparison(
                design,
                groups[i],
                groups[j],
                dsides[i],
                dsides[j],
                test,
                entries,
                raw_binary=raw_binary,
                alpha=alpha,
                confidence_level=confidence_level,
                iterations=bootstrap_iterations,
                seed=seed,
                higher_is_better=higher_is_better,
            )
        )
    if reference is None:  # the reference is the best group: list the rest by rank
        rank = {groups[i].label: r for r, i in enumerate(order)}
        comparisons.sort(key=lambda c: rank[c.candidate])
    omnibus = _omnibus(design, dsides, alpha) if len(groups) >= 3 else None
    n_clusters = len(set(dsides[0].clusters)) if dsides[0].clusters is not None else None
    text = _describe(design, pairing, cluster_by, n_clusters)
    if correction != "none" and len(tested) > 1:
        text += (
            f", p adjusted ({correction}) over all {len(tested)} pairs of points"
            if family == "all_pairs"
            else f", p adjusted ({correction})"
        )
    return Comparison(
        metric=name,
        pair_by=key_field,
        paired=design.paired,
        alpha=float(alpha),
        correction=correction if len(tested) > 1 else "none",
        confidence_level=float(confidence_level),
        higher_is_better=higher_is_better,
        groups=groups,
        comparisons=comparisons,
        omnibus=omnibus,
        ranking=[groups[i].label for i in order],
        keys=keys,
        dropped=dropped,
        verdict=_overall(groups, ref, comparisons, reference is None),
        sweep_id=sweep_id,
        design=text,
        binary=raw_binary,
        cluster_by=cluster_by,
        repeats=repeats,
        family=family,
        test_train_ratio=design.cv_ratio,
        notes=notes,
    )


def _group(design: Design, side: _Side, ds: Side, *, confidence_level: float) -> GroupSummary:
    from ._design import group_interval

    mean, _, ci, method = group_interval(design, ds, confidence_level=confidence_level)
    n = len(ds.values)
    m = math.fsum(ds.values) / n
    sd = math.sqrt(math.fsum((v - m) ** 2 for v in ds.values) / (n - 1))
    seed_sd = None
    if len(ds.runs) >= 2:
        means = [math.fsum(r) / len(r) for r in ds.runs]
        mm = math.fsum(means) / len(means)
        seed_sd = math.sqrt(math.fsum((x - mm) ** 2 for x in means) / (len(means) - 1))
    return GroupSummary(
        label=side.label,
        run_ids=[r.id for r in side.runs],
        n=n,
        mean=mean,
        std=sd,
        confidence_interval=ci,
        scores=ds.values,
        parameters=side.parameters,
        interval=method,
        seed_sd=seed_sd,
        n_clusters=len(set(ds.clusters)) if ds.clusters is not None else None,
    )


def _pair_comparison(
    design: Design,
    base: GroupSummary,
    cand: GroupSummary,
    base_side: Side,
    cand_side: Side,
    test: str,
    entries: dict[str, dict[str, Any]],
    *,
    raw_binary: bool,
    alpha: float,
    confidence_level: float,
    iterations: int,
    seed: int | None,
    higher_is_better: bool,
) -> PairComparison:
    from ._design import detectable, effect

    primary = entries[test]
    eff = effect(
        design,
        base_side,
        cand_side,
        proportions=raw_binary,
        confidence_level=confidence_level,
        iterations=iterations,
        seed=seed,
    )
    mde = None if primary.get("significant") else detectable(primary, alpha=alpha)
    verdict, better = _verdict(
        base,
        cand,
        test,
        primary,
        eff,
        mde,
        level=confidence_level,
        binary=raw_binary,
        higher_is_better=higher_is_better,
    )
    ci = primary.get("confidence_interval")
    return PairComparison(
        baseline=base.label,
        candidate=cand.label,
        n=cand.n if design.paired else base.n + cand.n,
        mean_difference=primary.get("estimate"),
        mean_difference_ci=list(ci) if ci is not None else None,
        effect_size=eff,
        tests=entries,
        p_value=primary.get("p_value_adjusted", primary.get("p_value")),
        significant=bool(primary.get("significant")),
        better=better,
        verdict=verdict,
        test=test,
        minimum_detectable_effect=mde,
        discordant=primary.get("discordant"),
    )


def _omnibus(design: Design, dsides: list[Side], alpha: float) -> dict[str, Any] | None:
    from ._design import OMNIBUS_NAMES, omnibus

    results = omnibus(design, dsides, alpha=alpha)
    if not results:
        return None
    said = ", ".join(
        f"{entry['interpretation']} by {OMNIBUS_NAMES.get(key, key)}"
        for key, entry in results.items()
    )
    return {**results, "verdict": f"Across all {len(dsides)} groups: {said}."}


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
    cluster_by: str | None = None,
    unpaired: bool = False,
    repeats: str = "seeds",
    test_train_ratio: float | None = None,
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
    field every output shares, ``score`` if present). ``pair_by`` names the field
    identifying the example; without it the runs are paired by ``id`` when every output
    carries a unique one, unless ``unpaired``. ``cluster_by`` names a field grouping
    dependent examples (a passage, a document): the tests use cluster-robust SEs.
    ``repeats`` says what several runs of one group are (``seeds``: run-to-run variance
    counts; ``samples``: eval-time samples, averaged per example). ``test_train_ratio``
    (n_test / n_train of a fold) declares the scores per-fold CV results and uses the
    corrected resampled t-test. ``correction`` (``holm``, ``bonferroni``, ``fdr_bh``,
    ``none``) adjusts each test's p-values across the comparisons. See the module
    docstring for the choice of test.

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
        warnings = await provenance_warnings_of(opened, runs)
    sides = [_Side(label, [r]) for label, r in zip(_labels(runs), runs, strict=True)]
    result = await _build_in_thread(
        sides,
        metric=metric,
        pair_by=pair_by,
        cluster_by=cluster_by,
        unpaired=unpaired,
        repeats=repeats,
        test_train_ratio=test_train_ratio,
        reference=0,
        alpha=alpha,
        correction=correction,
        confidence_level=confidence_level,
        bootstrap_iterations=bootstrap_iterations,
        seed=seed,
        higher_is_better=higher_is_better,
        sweep_id=None,
    )
    return msgspec.structs.replace(result, warnings=warnings) if warnings else result


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
    cluster_by: str | None = None,
    unpaired: bool = False,
    repeats: str = "seeds",
    test_train_ratio: float | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    confidence_level: float = 0.95,
    bootstrap_iterations: int = 10_000,
    seed: int | None = 0,
    higher_is_better: bool = True,
) -> Comparison:
    """Rank the points of sweep ``sweep_id`` on the metric and test each against the best.

    A point's repeats are seeds by default (``repeats="seeds"``: the run-to-run variance,
    pooled over the points, enters every test); ``repeats="samples"`` averages them per
    example (paired) or pools them (unpaired). ``correction`` runs over every pair of
    points (``family="all_pairs"``), so the best point, picked after seeing the data, is
    still compared at the family-wise alpha. Points whose runs did not all complete are
    left out and counted in ``dropped`` under ``"incomplete points"``. Options as for
    :func:`compare`.

    Raises:
        ComparisonError: no such sweep, or fewer than 2 complete points.
    """
    async with _opened(store) as opened:
        sides, incomplete = await _sweep_sides(opened, sweep_id)
        warnings = await provenance_warnings_of(opened, [r for s in sides for r in s.runs])
    if len(sides) < 2:
        raise ComparisonError(
            f"sweep {sweep_id} has {len(sides)} point(s) whose runs all completed; "
            "comparing needs at least 2"
        )
    result = await _build_in_thread(
        sides,
        metric=metric,
        pair_by=pair_by,
        cluster_by=cluster_by,
        unpaired=unpaired,
        repeats=repeats,
        test_train_ratio=test_train_ratio,
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
    if warnings:
        result = msgspec.structs.replace(result, warnings=warnings)
    return result
