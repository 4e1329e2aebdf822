"""Computing a comparison: from the runs of each side to the groups, tests and verdicts.

:func:`build` takes one score per example from each run's ``outputs`` (:mod:`._scores`),
pairs, clusters or pools them as :class:`~crucible_actors.comparison.CompareOptions`
say, lets :mod:`._design` choose the test that fits (the choice is described in
:mod:`crucible_actors.comparison`), tests every group against the reference group with
:mod:`crucible_actors.stats`, and words the result (:mod:`._verdict`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import msgspec

from .._core import RunRecord
from ._result import Comparison, ComparisonError, GroupSummary, PairComparison
from ._scores import choose_metric, has_unique_ids, run_items
from ._verdict import overall, verdict

if TYPE_CHECKING:
    from collections.abc import Hashable

    from ._design import Design, Side
    from ._options import CompareOptions
    from ._result import Family

__all__ = ["RunGroup", "build"]


class RunGroup(msgspec.Struct):
    """The runs of one side of a comparison: one run, or the runs of one sweep point."""

    label: str
    runs: list[RunRecord]
    parameters: dict[str, Any] = {}


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
    if has_unique_ids(all_runs, metric):
        return (
            "id",
            "paired by id (automatically: every output has a unique id; --unpaired to opt out)",
        )
    return None, "unpaired (not every output has a unique id; --pair-by FIELD pairs them)"


def _sides_data(
    sides: list[RunGroup],
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


def build(
    sides: list[RunGroup],
    options: CompareOptions,
    *,
    reference: int | None,
    sweep_id: str | None,
) -> Comparison:
    """Compare the groups of ``sides`` as ``options`` say; CPU work, no IO.

    ``reference`` is the index of the baseline every other group is tested against
    (``None``: the best group, tested against every other, with ``correction`` over all
    pairs).

    Raises:
        ComparisonError: fewer than 2 sides, no or ambiguous scores, too few examples.
        MissingDependency: scipy is not installed (extra ``bench``).
    """
    from .. import stats
    from . import _design
    from ._design import Design

    stats.require_scipy("compare")
    if len(sides) < 2:
        raise ComparisonError(
            f"comparing needs at least 2 runs (or sweep points); got {len(sides)}"
        )
    all_runs = [r for s in sides for r in s.runs]
    cv = options.test_train_ratio is not None
    name = options.metric or choose_metric(all_runs, options.pair_by, options.cluster_by, "id")
    key_field, pairing = _pairing(
        all_runs, name, pair_by=options.pair_by, unpaired=options.unpaired, cv=cv
    )
    per_side = [[run_items(r, name, key_field, options.cluster_by) for r in s.runs] for s in sides]
    if key_field is not None:
        common = set.intersection(
            *({k for k, _, _ in items} for runs in per_side for items in runs)
        )
        if len(common) < 2:
            if options.pair_by is not None:
                raise ComparisonError(
                    f"only {len(common)} {options.pair_by!r} value(s) appear in every run; pairing "
                    "needs at least 2 shared examples (drop --pair-by to compare unpaired)"
                )
            key_field, pairing = None, "unpaired (the runs share fewer than 2 example ids)"
            per_side = [
                [run_items(r, name, None, options.cluster_by) for r in s.runs] for s in sides
            ]
    dsides, keys, dropped = _sides_data(
        sides, per_side, key_field=key_field, cv=cv, clustered=options.cluster_by is not None
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
    seeds = options.repeats == "seeds" and not cv and any(len(ds.runs) >= 2 for ds in dsides)
    design = Design(
        paired=key_field is not None or cv,
        binary=all(v in (0.0, 1.0) for ds in dsides for v in ds.values),
        seeds=seeds,
        clustered=options.cluster_by is not None and not cv,
        cv_ratio=float(options.test_train_ratio) if options.test_train_ratio is not None else None,
        seed_variance=stats.pooled_seed_variance([ds.runs for ds in dsides]) if seeds else None,
    )
    notes: list[str] = []
    if options.repeats == "samples" and any(len(ds.runs) >= 2 for ds in dsides):
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
        _group(design, side, ds, confidence_level=options.confidence_level)
        for side, ds in zip(sides, dsides, strict=True)
    ]
    order = sorted(
        range(len(groups)),
        key=lambda i: (
            -(groups[i].mean or 0.0) if options.higher_is_better else (groups[i].mean or 0.0)
        ),
    )
    ref = order[0] if reference is None else reference
    family: Family = "baseline" if reference is not None else "all_pairs"
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
            design,
            dsides[i],
            dsides[j],
            alpha=options.alpha,
            confidence_level=options.confidence_level,
        )
        for i, j in pairs
    ]
    if options.correction != "none" and len(tested) > 1:
        for test in {t for _, entries in tested for t in entries}:
            family_entries = [
                e[test] for _, e in tested if test in e and e[test].get("p_value") is not None
            ]
            adjusted = stats.adjust_pvalues(
                [e["p_value"] for e in family_entries], options.correction
            )
            for entry, p in zip(family_entries, adjusted, strict=True):
                entry["p_value_adjusted"] = p
                entry["significant"] = p < options.alpha
                entry["interpretation"] = stats.interpret_p(p, options.alpha)
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
                alpha=options.alpha,
                confidence_level=options.confidence_level,
                iterations=options.bootstrap_iterations,
                seed=options.seed,
                higher_is_better=options.higher_is_better,
            )
        )
    if reference is None:  # the reference is the best group: list the rest by rank
        rank = {groups[i].label: r for r, i in enumerate(order)}
        comparisons.sort(key=lambda c: rank[c.candidate])
    omnibus = _omnibus(design, dsides, options.alpha) if len(groups) >= 3 else None
    n_clusters = len(set(dsides[0].clusters)) if dsides[0].clusters is not None else None
    text = _describe(design, pairing, options.cluster_by, n_clusters)
    if options.correction != "none" and len(tested) > 1:
        text += (
            f", p adjusted ({options.correction}) over all {len(tested)} pairs of points"
            if family == "all_pairs"
            else f", p adjusted ({options.correction})"
        )
    return Comparison(
        metric=name,
        pair_by=key_field,
        paired=design.paired,
        alpha=float(options.alpha),
        correction=options.correction if len(tested) > 1 else "none",
        confidence_level=float(options.confidence_level),
        higher_is_better=options.higher_is_better,
        groups=groups,
        comparisons=comparisons,
        omnibus=omnibus,
        ranking=[groups[i].label for i in order],
        keys=keys,
        dropped=dropped,
        verdict=overall(groups, ref, comparisons, reference is None),
        sweep_id=sweep_id,
        design=text,
        binary=raw_binary,
        cluster_by=options.cluster_by,
        repeats=options.repeats,
        family=family,
        test_train_ratio=design.cv_ratio,
        notes=notes,
    )


def _group(design: Design, side: RunGroup, ds: Side, *, confidence_level: float) -> GroupSummary:
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
    verdict_text, better = verdict(
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
        verdict=verdict_text,
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
