"""Which test fits the data, and running it: the statistics behind ``compare``.

:class:`Design` records what the data are (paired or not, 0/1 or not, clustered,
repeated runs as seeds or as samples, cross-validation folds) and why;
:func:`pair_test` runs the test that design calls for on two groups and returns the
JSON-ready entries (``{test name: entry}``) plus the name of the primary test;
:func:`omnibus` is the k-group test that fits. Everything comes from
:mod:`crucible_actors.stats`; this module only chooses.

Choice, in order (the first that applies):

1. cross-validation folds (``test_train_ratio``): Nadeau & Bengio's corrected resampled
   t-test on the per-fold differences;
2. several runs per group with ``repeats="seeds"``: :func:`~..stats.seed_ttest`, with
   the run-to-run variance pooled over every group;
3. ``cluster_by``: the cluster-robust (CR1) t-test;
4. paired 0/1 scores: McNemar's exact test; paired scores: the paired t-test (and
   Wilcoxon's signed-rank test beside it);
5. unpaired: Welch's t-test (and Mann-Whitney's U beside it).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import msgspec

from .. import stats

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TEST_NAMES", "Design", "Side", "omnibus", "pair_test"]

#: How a test is named in a verdict.
TEST_NAMES = {
    "corrected_resampled_ttest": "the corrected resampled t-test (Nadeau & Bengio)",
    "variance_components_ttest": "the seed-variance t-test",
    "run_level_ttest": "the run-level t-test",
    "clustered_ttest": "the cluster-robust t-test",
    "mcnemar": "McNemar's exact test",
    "paired_ttest": "the paired t-test",
    "wilcoxon": "the Wilcoxon signed-rank test",
    "ttest": "Welch's t-test",
    "mann_whitney": "the Mann-Whitney U test",
}


class Design(msgspec.Struct, frozen=True, kw_only=True):
    """The shape of the data, which decides the tests."""

    paired: bool
    binary: bool
    seeds: bool
    clustered: bool
    cv_ratio: float | None
    seed_variance: tuple[float, int] | None = None


class Side(msgspec.Struct, kw_only=True):
    """One group's data: per-run scores (aligned by example when paired) and the values.

    ``values`` are what the group summary describes and the per-example tests use: the
    per-example average over the runs when paired, all scores pooled otherwise.
    ``clusters`` label ``values`` one for one.
    """

    label: str
    runs: list[list[float]]
    values: list[float]
    clusters: list[Hashable] | None = None


def _judge(entry: dict[str, Any], alpha: float) -> dict[str, Any]:
    p = entry.get("p_value")
    entry["significant"] = p is not None and p < alpha
    entry["interpretation"] = stats.interpret_p(p, alpha)
    return entry


def _result_entry(result: stats.TestResult, alpha: float) -> dict[str, Any]:
    return _judge(result.to_dict(), alpha)


def _se_paired(diffs: Sequence[float]) -> float:
    n = len(diffs)
    m = math.fsum(diffs) / n
    return math.sqrt(math.fsum((d - m) ** 2 for d in diffs) / (n - 1) / n)


def _se_unpaired(a: Sequence[float], b: Sequence[float]) -> float:
    total = 0.0
    for xs in (a, b):
        m = math.fsum(xs) / len(xs)
        total += math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs)
    return math.sqrt(total)


def pair_test(
    design: Design,
    base: Side,
    cand: Side,
    *,
    alpha: float,
    confidence_level: float,
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Run the test ``design`` calls for on ``cand`` against ``base``.

    Returns ``(primary test name, {test name: entry})``. Every entry has ``p_value``,
    ``significant``, ``interpretation``, ``estimate`` (candidate - baseline),
    ``standard_error`` and the ``confidence_interval`` of that same test.
    """
    a, b = base.values, cand.values
    if design.cv_ratio is not None:
        diffs = [y - x for x, y in zip(a, b, strict=True)]
        res = stats.corrected_resampled_ttest(
            diffs, test_train_ratio=design.cv_ratio, confidence_level=confidence_level
        )
        return res.test, {res.test: _result_entry(res, alpha)}
    if design.seeds:
        res = stats.seed_ttest(
            base.runs,
            cand.runs,
            paired=design.paired,
            clusters=base.clusters if design.paired and design.clustered else None,
            seed_variance=design.seed_variance,
            confidence_level=confidence_level,
        )
        return res.test, {res.test: _result_entry(res, alpha)}
    if design.clustered:
        assert base.clusters is not None
        assert cand.clusters is not None
        res = stats.clustered_ttest(
            a,
            b,
            base.clusters,
            candidate_clusters=None if design.paired else cand.clusters,
            paired=design.paired,
            confidence_level=confidence_level,
        )
        return res.test, {res.test: _result_entry(res, alpha)}
    if design.paired and design.binary:
        res = stats.mcnemar(a, b, confidence_level=confidence_level)
        return res.test, {res.test: _result_entry(res, alpha)}
    if design.paired:
        out = stats.paired(
            a, b, tests=("paired_ttest", "wilcoxon"), alpha=alpha, confidence_level=confidence_level
        )["test_results"]
        diffs = [y - x for x, y in zip(a, b, strict=True)]
        out["paired_ttest"]["estimate"] = out["paired_ttest"]["mean_difference"]
        out["paired_ttest"]["standard_error"] = _se_paired(diffs)
        return "paired_ttest", out
    out = stats.two_sample(
        a, b, tests=("ttest", "mann_whitney"), alpha=alpha, confidence_level=confidence_level
    )["test_results"]
    out["ttest"]["estimate"] = out["ttest"]["mean_difference"]
    out["ttest"]["standard_error"] = _se_unpaired(a, b)
    return "ttest", out


def effect(
    design: Design,
    base: Side,
    cand: Side,
    *,
    proportions: bool,
    confidence_level: float,
    iterations: int,
    seed: int | None,
) -> dict[str, Any]:
    """The standardized effect of ``cand`` against ``base``: Cohen's h when the scores are
    0/1 (``proportions``), d_z (paired) or d (unpaired) with a BCa interval otherwise."""
    a, b = base.values, cand.values
    if proportions:
        p1, p2 = math.fsum(a) / len(a), math.fsum(b) / len(b)
        h = stats.cohens_h(min(1.0, max(0.0, p1)), min(1.0, max(0.0, p2)))
        return {"name": "cohens_h", "value": h, "ci": None, "interpretation": _label(h)}
    paired = design.paired
    name = "cohens_dz" if paired else "cohens_d"
    if len(a) + len(b) > BOOTSTRAP_LIMIT:
        return _large_sample_effect(a, b, paired=paired, confidence_level=confidence_level)
    eff = stats.effect_size(
        a, b, paired=paired, confidence_level=confidence_level, n_resamples=iterations, seed=seed
    )
    return {
        "name": name,
        "value": eff[name],
        "ci": eff[f"{name}_ci"],
        "interpretation": eff["interpretation"],
    }


#: Above this many scores in a comparison, the effect size's interval is the large-sample
#: normal one: BCa's jackknife costs O(n^2) (about 5 s per comparison at 2 x 10,000,
#: minutes at 2 x 100,000), and from a few thousand pairs on the two agree to the digits
#: printed.
BOOTSTRAP_LIMIT = 5_000


def _large_sample_effect(
    a: Sequence[float], b: Sequence[float], *, paired: bool, confidence_level: float
) -> dict[str, Any]:
    """Cohen's d_z / d with the normal interval of Hedges & Olkin (1985) / Algina et al."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf((1 + confidence_level) / 2)
    if paired:
        diffs = [y - x for x, y in zip(a, b, strict=True)]
        n = len(diffs)
        m = math.fsum(diffs) / n
        sd = math.sqrt(math.fsum((d - m) ** 2 for d in diffs) / (n - 1))
        value = m / sd if sd > 0 else None
        se = math.sqrt(1 / n + (value or 0.0) ** 2 / (2 * n))
        name = "cohens_dz"
    else:
        d = stats.cohens_d(a, b)
        value = d if math.isfinite(d) else None
        n1, n2 = len(a), len(b)
        se = math.sqrt((n1 + n2) / (n1 * n2) + (value or 0.0) ** 2 / (2 * (n1 + n2)))
        name = "cohens_d"
    ci = None if value is None else [value - z * se, value + z * se]
    return {
        "name": name,
        "value": value,
        "ci": ci,
        "interpretation": stats.interpret_effect(value),
        "interval": "normal",
    }


def _label(h: float) -> str:
    return stats.interpret_effect(h)


def detectable(entry: dict[str, Any], *, alpha: float) -> float | None:
    """The minimum detectable effect (power 0.8) of the test behind ``entry``."""
    se = entry.get("standard_error")
    if se is None or not se > 0:
        return None
    from ..stats._power import detectable_from_se

    return detectable_from_se(se, alpha=alpha)


def omnibus(design: Design, sides: Sequence[Side], *, alpha: float) -> dict[str, dict[str, Any]]:
    """The k-group test that fits ``design``: keyed by test name."""
    if design.seeds:
        means = [[math.fsum(r) / len(r) for r in s.runs] for s in sides]
        if all(len(m) >= 2 for m in means):
            res = stats.k_sample(means, tests=("anova",), alpha=alpha)["test_results"]["anova"]
            return {"run_level_anova": {**res, "test": "run_level_anova"}}
        return {}
    values = [s.values for s in sides]
    if design.paired and design.binary and design.cv_ratio is None:
        return {"cochrans_q": _result_entry(stats.cochrans_q(values), alpha)}
    if design.paired:
        return {
            "friedman": _result_entry(stats.friedman(values), alpha),
            "rm_anova": _result_entry(stats.rm_anova(values), alpha),
        }
    return dict(
        stats.k_sample(values, tests=("anova", "kruskal_wallis"), alpha=alpha)["test_results"]
    )


OMNIBUS_NAMES = {
    "run_level_anova": "ANOVA on the run means",
    "cochrans_q": "Cochran's Q",
    "friedman": "Friedman's test",
    "rm_anova": "repeated-measures ANOVA",
    "anova": "ANOVA",
    "kruskal_wallis": "Kruskal-Wallis",
}


def group_interval(
    design: Design, side: Side, *, confidence_level: float
) -> tuple[float, float | None, list[float | None] | None, str]:
    """Return (mean, standard error, interval, method) of one group, fitting ``design``."""
    from scipy import stats as sps

    xs = side.values
    n = len(xs)
    mean = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    if design.seeds and design.seed_variance is not None:
        s2, df_seed = design.seed_variance
        r = len(side.runs)
        run_means = [math.fsum(run) / len(run) for run in side.runs]
        mean = math.fsum(run_means) / r
        v_run, v_ex = s2 / r, sd * sd / n
        se = math.sqrt(max(v_run, v_ex))
        df = float(df_seed) if v_run >= v_ex else float(n - 1)
        half = float(sps.t.ppf((1 + confidence_level) / 2, df)) * se
        return mean, se, [mean - half, mean + half], "seeds"
    if design.clustered and side.clusters is not None:
        se = stats.clustered_se(xs, side.clusters)
        g = len(set(side.clusters))
        half = float(sps.t.ppf((1 + confidence_level) / 2, g - 1)) * se
        return mean, se, [mean - half, mean + half], "cluster-robust t"
    if all(x in (0.0, 1.0) for x in xs):
        low, high = stats.proportion_interval(
            round(math.fsum(xs)), n, confidence_level=confidence_level
        )
        return mean, sd / math.sqrt(n), [low, high], "Wilson"
    se = sd / math.sqrt(n)
    half = float(sps.t.ppf((1 + confidence_level) / 2, n - 1)) * se
    return mean, se, [mean - half, mean + half], "t"
