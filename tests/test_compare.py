"""``compare``: per-example scores of stored runs, the bench statistics, checked against scipy."""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pytest
from tests.compare_helpers import stored_run
from tests.helpers import missing_extra

pytest.importorskip("scipy", reason=missing_extra("bench"))

from scipy import stats

import crucible_actors as ca
from crucible_actors._render_kit import CSS
from crucible_actors.comparison import Comparison, ComparisonError, render
from crucible_actors.errors import RunNotFound
from crucible_actors.stats import cohens_d, effect_size
from crucible_actors.store import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from crucible_actors.store import Store


def sample(seed: int, n: int, shift: float = 0.0, sd: float = 0.1) -> list[float]:
    rng = random.Random(seed)
    return [round(0.5 + shift + rng.gauss(0, sd), 6) for _ in range(n)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path}/c.db") as opened:
        yield opened


def holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjustment written out, to check the stage's against."""
    m = len(ps)
    order = sorted(range(m), key=ps.__getitem__)
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


async def test_paired_comparison_matches_scipy(store: Store) -> None:
    a = sample(1, 30)
    b = [x + d for x, d in zip(a, sample(2, 30, shift=-0.47, sd=0.05), strict=True)]
    await stored_run(store, "run-a", a)
    # The same examples in another order: pairing is by key, not by position.
    keys = [f"q{i:02d}" for i in range(30)]
    order = list(reversed(range(30)))
    await stored_run(store, "run-b", [b[i] for i in order], keys=[keys[i] for i in order])
    result = await ca.compare(store, ["run-a", "run-b"], pair_by="id")
    assert (result.metric, result.paired, result.keys) == ("score", True, keys)
    (c,) = result.comparisons
    t = stats.ttest_rel(b, a)
    assert c.tests["paired_ttest"]["statistic"] == pytest.approx(t.statistic, rel=1e-9)
    assert c.tests["paired_ttest"]["p_value"] == pytest.approx(t.pvalue, rel=1e-9)
    w = stats.wilcoxon(np.subtract(b, a))
    assert c.tests["wilcoxon"]["p_value"] == pytest.approx(w.pvalue, rel=1e-9)
    diffs = np.subtract(b, a)
    assert c.mean_difference == pytest.approx(diffs.mean())
    assert c.effect_size["name"] == "cohens_dz"
    assert c.effect_size["value"] == pytest.approx(diffs.mean() / diffs.std(ddof=1))
    # The interval beside the verdict is the paired t-test's own.
    ci = t.confidence_interval()
    assert c.mean_difference_ci == pytest.approx([ci.low, ci.high])
    assert c.test == "paired_ttest"
    assert c.p_value == c.tests["paired_ttest"]["p_value"]  # one comparison: nothing adjusted
    assert result.correction == "none"
    assert result.design.startswith("paired by id (30 examples)")


async def test_unpaired_comparison_matches_scipy(store: Store) -> None:
    a, b = sample(3, 25), sample(4, 32, shift=0.06, sd=0.14)
    await stored_run(store, "a", a)
    await stored_run(store, "b", b)
    result = await ca.compare(store, ["a", "b"], unpaired=True)
    assert not result.paired
    assert result.design.startswith("unpaired (as asked)")
    (c,) = result.comparisons
    welch = stats.ttest_ind(b, a, equal_var=False)
    assert c.tests["ttest"]["statistic"] == pytest.approx(welch.statistic, rel=1e-9)
    assert c.tests["ttest"]["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    mw = stats.mannwhitneyu(b, a, alternative="two-sided")
    assert c.tests["mann_whitney"]["statistic"] == pytest.approx(mw.statistic)
    assert c.tests["mann_whitney"]["p_value"] == pytest.approx(mw.pvalue, rel=1e-9)
    assert c.effect_size["value"] == pytest.approx(cohens_d(a, b))
    assert c.n == 57
    ga, gb = result.groups
    assert (ga.n, ga.mean, ga.std) == (
        25,
        pytest.approx(np.mean(a)),
        pytest.approx(np.std(a, ddof=1)),
    )
    half = stats.t.ppf(0.975, 31) * np.std(b, ddof=1) / np.sqrt(32)
    assert gb.confidence_interval == pytest.approx([np.mean(b) - half, np.mean(b) + half])


async def test_three_runs_get_anova_kruskal_and_holm_adjusted_pairs(store: Store) -> None:
    a, b, c = sample(5, 20), sample(6, 20, shift=0.02), sample(7, 20, shift=0.12)
    for name, xs in (("a", a), ("b", b), ("c", c)):
        await stored_run(store, name, xs)
    result = await ca.compare(store, ["a", "b", "c"], unpaired=True)
    assert result.omnibus is not None
    f = stats.f_oneway(a, b, c)
    assert result.omnibus["anova"]["statistic"] == pytest.approx(f.statistic, rel=1e-9)
    assert result.omnibus["anova"]["p_value"] == pytest.approx(f.pvalue, rel=1e-9)
    h = stats.kruskal(a, b, c)
    assert result.omnibus["kruskal_wallis"]["p_value"] == pytest.approx(h.pvalue, rel=1e-9)
    raw = [stats.ttest_ind(x, a, equal_var=False).pvalue for x in (b, c)]
    assert [cmp.candidate for cmp in result.comparisons] == ["b", "c"]
    assert [cmp.p_value for cmp in result.comparisons] == pytest.approx(holm(raw))
    assert result.correction == "holm"
    assert result.ranking == ["c", "b", "a"]


async def test_verdict_says_which_is_better_or_that_it_may_be_noise(store: Store) -> None:
    base = sample(8, 40)
    await stored_run(store, "base", base)
    await stored_run(store, "better", [x + 0.2 for x in sample(9, 40)])
    await stored_run(store, "same", [x + 0.001 for x in reversed(base)])
    better = await ca.compare(store, ["base", "better"], unpaired=True)
    assert better.comparisons[0].better == "better"
    assert re.search(
        r"^better vs base: mean 0\.\d+ vs 0\.\d+ \(\+0\.\d+, 95% CI \[[-\d.e]+, [-\d.e]+\]\); "
        r"Extremely significant \(p < 0\.001\) by Welch's t-test; effect size large "
        r"\(d = [\d.]+, 95% CI \[[\d.]+, [\d.]+\]\)\. better is better than base\.$",
        better.verdict,
    )
    same = await ca.compare(store, ["base", "same"], unpaired=True)
    assert same.comparisons[0].better is None
    assert "Not significant (p = " in same.verdict
    # "Not significant" says what the comparison could have detected (power 0.8).
    mde = same.comparisons[0].minimum_detectable_effect
    se = same.comparisons[0].tests["ttest"]["standard_error"]
    assert mde == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se)
    assert same.verdict.endswith(
        f"The difference may be noise; this comparison could not detect differences under "
        f"{mde:.4g}."
    )
    loss = await ca.compare(store, ["base", "better"], higher_is_better=False, unpaired=True)
    assert loss.comparisons[0].better == "base"


async def test_pairing_keeps_only_shared_examples_and_counts_the_rest(store: Store) -> None:
    await stored_run(store, "a", [0.1, 0.2, 0.3, 0.4], keys=["w", "x", "y", "z"])
    await stored_run(store, "b", [0.3, 0.25, 0.5, 0.9, 0.8], keys=["x", "y", "w", "v", "u"])
    result = await ca.compare(store, ["a", "b"], pair_by="id")
    assert result.keys == ["w", "x", "y"]
    assert [g.scores for g in result.groups] == [[0.1, 0.2, 0.3], [0.5, 0.3, 0.25]]
    assert result.dropped == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        ("ambiguous", {}, r"several numeric output fields could be the score \(loss, quality\)"),
        ("plain", {"metric": "nope"}, "run a has no scores named 'nope'"),
        ("plain", {"pair_by": "nope"}, "outputs\\[0\\] has 'score' but no 'nope' to pair by"),
        ("failed", {}, "run b is failed, not completed"),
    ],
)
async def test_unusable_runs_are_refused_with_the_fix(
    store: Store, setup: str, kwargs: dict[str, Any], message: str
) -> None:
    if setup == "ambiguous":
        await stored_run(store, "a", [1.0, 2.0], field="loss", extra={"quality": 1})
        await stored_run(store, "b", [1.0, 2.0], field="loss", extra={"quality": 2})
    else:
        await stored_run(store, "a", [1.0, 2.0, 3.0])
        await stored_run(
            store, "b", [1.0, 2.0, 4.0], status="completed" if setup == "plain" else "failed"
        )
    with pytest.raises(ComparisonError, match=message):
        await ca.compare(store, ["a", "b"], **kwargs)


async def test_unknown_run_and_single_run_are_errors(store: Store) -> None:
    await stored_run(store, "a", [1.0, 2.0, 3.0])
    with pytest.raises(RunNotFound):
        await ca.compare(store, ["a", "missing"])
    with pytest.raises(ComparisonError, match="at least 2 distinct runs; got 1"):
        await ca.compare(store, ["a", "a"])


def _d(x: Any, y: Any, axis: int = -1) -> Any:
    n1, n2 = x.shape[axis], y.shape[axis]
    pooled = np.sqrt(
        ((n1 - 1) * x.var(axis=axis, ddof=1) + (n2 - 1) * y.var(axis=axis, ddof=1)) / (n1 + n2 - 2)
    )
    return (y.mean(axis=axis) - x.mean(axis=axis)) / pooled


def test_the_one_bca_implementation_gives_cohens_d_interval() -> None:
    a, b = sample(11, 15), sample(12, 19, shift=0.1)
    eff = effect_size(a, b, n_resamples=2000, seed=1)
    ref = stats.bootstrap(
        (np.asarray(a), np.asarray(b)),
        _d,
        n_resamples=2000,
        method="BCa",
        rng=np.random.default_rng(1),
    )
    expected = [ref.confidence_interval.low, ref.confidence_interval.high]
    assert eff["cohens_d_ci"] == pytest.approx(expected, rel=1e-9)
    assert eff["cohens_d_ci"][0] < cohens_d(a, b) < eff["cohens_d_ci"][1]


def test_constant_samples_give_no_interval_and_no_warning() -> None:
    eff = effect_size([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], paired=True, n_resamples=200)
    assert (eff["cohens_dz"], eff["cohens_dz_ci"]) == (None, None)


# -- rendering ------------------------------------------------------------------------


@pytest.mark.slow
async def test_every_format_renders_the_same_comparison(store: Store) -> None:
    a = sample(13, 12)
    await stored_run(store, "aaaa", a)
    await stored_run(store, "bbbb", [x + 0.05 for x in a])
    result = await ca.compare(store, ["aaaa", "bbbb"], pair_by="id")
    assert msgspec.json.decode(render(result, "json"), type=Comparison) == result
    table = render(result, "table")
    assert table.splitlines()[0].startswith(
        "compare runs: metric score, paired by id (12 examples)"
    )
    assert result.verdict in table
    md = render(result, "markdown")
    assert "| RANK | GROUP | N | MEAN | SD | 95% CI | RUNS |" in md
    assert f"**Verdict:** {result.verdict}" in md
    page = render(result, "html")
    assert page.startswith("<!DOCTYPE html>")
    assert f"<style>{CSS}</style>" in page  # the shell and stylesheet of every page
    # Self-contained: nothing is fetched (the SVG namespace is an identifier, not a fetch).
    assert re.findall(r"(?:src|href)=", page) == []
    assert "<script" not in page
    assert page.count('class="dot"') == 24  # every score of both groups
    assert page.count('class="pair"') == 12  # every per-example difference
    assert page.count('class="diff"') == 1
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        render(result, "pdf")  # type: ignore[arg-type]  # refused at run time too


async def test_a_store_url_is_opened_for_the_call(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    async with open_store(url) as opened:
        await stored_run(opened, "a", sample(14, 10))
        await stored_run(opened, "b", sample(15, 10, shift=0.3))
    result = await ca.compare(url, ["a", "b"])
    assert result.comparisons[0].better == "b"
    with pytest.raises(ComparisonError, match="no sweep 'nope'"):
        await ca.compare_sweep(url, "nope")


# --- options ------------------------------------------------------------------------------


async def test_options_and_keyword_changes_are_one_call(store: Store) -> None:
    a = sample(5, 12)
    await stored_run(store, "a", a)
    await stored_run(store, "b", [x + 0.02 for x in a])
    by_keywords = await ca.compare(store, ["a", "b"], pair_by="id", bootstrap_iterations=200)
    options = ca.CompareOptions(pair_by="id", bootstrap_iterations=200)
    assert await ca.compare(store, ["a", "b"], options) == by_keywords
    # A keyword changes one option of the given ones.
    unpaired = await ca.compare(store, ["a", "b"], options, pair_by=None, unpaired=True)
    assert (by_keywords.paired, unpaired.paired) == (True, False)
    assert unpaired.comparisons[0].tests.keys() != by_keywords.comparisons[0].tests.keys()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"repeats": "trials"}, "repeats must be 'seeds' or 'samples', got 'trials'"),
        ({"correction": "sidak"}, "unknown correction 'sidak'; expected one of none, holm"),
        ({"test_train_ratio": 0}, "test_train_ratio must be n_test / n_train"),
        ({"test_train_ratio": True}, "test_train_ratio must be n_test / n_train"),
        ({"alpha": 1.0}, "alpha and confidence_level must lie strictly between 0 and 1"),
        ({"confidence_level": 0}, "alpha and confidence_level must lie strictly between 0 and 1"),
    ],
)
async def test_options_out_of_range_are_refused_before_the_store_is_read(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ca.CompareOptions(**changes)
    # No store is opened: the URL names none that exists.
    with pytest.raises(ValueError, match=re.escape(message)):
        await ca.compare("sqlite:///nowhere/never.db", ["a", "b"], **changes)
    with pytest.raises(ValueError, match=re.escape(message)):
        await ca.compare_sweep("sqlite:///nowhere/never.db", "s", ca.CompareOptions(), **changes)


def test_the_keyword_changes_mirror_the_options() -> None:
    from typing import get_type_hints

    from crucible_actors.comparison import CompareChanges

    fields = get_type_hints(ca.CompareOptions)
    assert get_type_hints(CompareChanges) == fields
    assert list(CompareChanges.__annotations__) == list(ca.CompareOptions.__struct_fields__)
