"""Statistical comparison of stored runs and sweep points (``crucible-actors compare``).

:func:`compare` and :func:`compare_sweep` read runs from a Store and return a
:class:`Comparison` computed with :mod:`crucible_actors.stats` (the test chosen to fit
the data, see :doc:`/statistics`); :class:`CompareOptions` says how to compare;
:func:`render` prints a comparison as a table, Markdown, JSON or a self-contained HTML
page. scipy (extra ``bench``) is imported only when a comparison is computed.

The scores are one number per example, from each run's ``outputs`` (the items holding
the ``metric`` field). The test fits the data:

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

Inside (private): ``_compare`` (the entry points: reading runs and sweeps),
``_options``, ``_analysis`` (computing: pairing, tests, groups), ``_scores`` (the scores
of a run), ``_design`` (which test fits), ``_verdict`` (the sentences), ``_result`` (the
result types) and ``_render`` (the formats).
"""

from ._compare import compare as compare
from ._compare import compare_sweep as compare_sweep
from ._options import REPEATS as REPEATS
from ._options import CompareChanges as CompareChanges
from ._options import CompareOptions as CompareOptions
from ._options import Repeats as Repeats
from ._render import FORMATS as FORMATS
from ._render import Format as Format
from ._render import render as render
from ._result import Comparison as Comparison
from ._result import ComparisonError as ComparisonError
from ._result import GroupSummary as GroupSummary
from ._result import PairComparison as PairComparison

__all__ = [
    "FORMATS",
    "REPEATS",
    "CompareChanges",
    "CompareOptions",
    "Comparison",
    "ComparisonError",
    "Format",
    "GroupSummary",
    "PairComparison",
    "Repeats",
    "compare",
    "compare_sweep",
    "render",
]
