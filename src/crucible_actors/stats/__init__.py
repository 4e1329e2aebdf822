"""Statistics for "is B better than A?": the functions the ``bench`` stage and ``compare`` use.

Which function for which data (:doc:`/statistics` has the long version):

* continuous scores, independent samples: :func:`two_sample` (Welch's t, Mann-Whitney,
  bootstrap); paired by example: :func:`paired` (paired t, Wilcoxon, bootstrap);
  k groups: :func:`k_sample` (ANOVA, Kruskal-Wallis), k systems on the same examples:
  :func:`rm_anova`, :func:`friedman` (Demsar 2006);
* 0/1 scores: :func:`mcnemar` (paired; exact by default), :func:`proportion_interval`
  (Wilson), :func:`cohens_h`, :func:`cochrans_q` (k paired systems);
* examples grouped in clusters (questions of one passage): :func:`clustered_se`,
  :func:`clustered_ttest` (CR1; Miller 2024, arXiv 2411.00640);
* several runs per configuration (seeds): :func:`seed_ttest`;
* cross-validation fold scores: :func:`corrected_resampled_ttest` (Nadeau & Bengio
  2003), :func:`five_by_two_cv_ttest` (Dietterich 1998);
* power: :func:`minimum_detectable_effect`, :func:`sample_size`;
* effect sizes and corrections: :func:`cohens_d`, :func:`hedges_g`, :func:`effect_size`
  (BCa intervals), :func:`adjust_pvalues` (Holm, Bonferroni, Benjamini-Hochberg).

Signs: every directional figure is candidate (``b``) - baseline (``a``). numpy and scipy
(extra ``bench``) are imported inside the functions that need them; a missing scipy
raises :class:`~crucible_actors.errors.MissingDependency`. The new tests return frozen
:class:`TestResult` records (``p_value``, ``statistic``, ``confidence_interval`` as a
``(low, high)`` tuple); the group functions return JSON-ready dicts, as the ``bench``
stage stores them.
"""

from ._clustered import clustered_se as clustered_se
from ._clustered import clustered_ttest as clustered_ttest
from ._discrete import PROPORTION_INTERVALS as PROPORTION_INTERVALS
from ._discrete import cochrans_q as cochrans_q
from ._discrete import cohens_h as cohens_h
from ._discrete import discordant_counts as discordant_counts
from ._discrete import mcnemar as mcnemar
from ._discrete import mcnemar_from_counts as mcnemar_from_counts
from ._discrete import proportion_interval as proportion_interval
from ._groups import CORRECTIONS as CORRECTIONS
from ._groups import DEFAULT_RESAMPLES as DEFAULT_RESAMPLES
from ._groups import DEFAULT_SEED as DEFAULT_SEED
from ._groups import INTERVAL_METHODS as INTERVAL_METHODS
from ._groups import K_SAMPLE_TESTS as K_SAMPLE_TESTS
from ._groups import PAIRED_TESTS as PAIRED_TESTS
from ._groups import TESTS as TESTS
from ._groups import Correction as Correction
from ._groups import adjust_pvalues as adjust_pvalues
from ._groups import analyze as analyze
from ._groups import cohens_d as cohens_d
from ._groups import effect_size as effect_size
from ._groups import hedges_g as hedges_g
from ._groups import interpret_effect as interpret_effect
from ._groups import interpret_p as interpret_p
from ._groups import k_sample as k_sample
from ._groups import mean_difference_interval as mean_difference_interval
from ._groups import mean_interval as mean_interval
from ._groups import paired as paired
from ._groups import permutation_pvalue as permutation_pvalue
from ._groups import require_scipy as require_scipy
from ._groups import two_sample as two_sample
from ._power import minimum_detectable_effect as minimum_detectable_effect
from ._power import sample_size as sample_size
from ._repeated import friedman as friedman
from ._repeated import pooled_seed_variance as pooled_seed_variance
from ._repeated import rm_anova as rm_anova
from ._repeated import seed_ttest as seed_ttest
from ._resampled import corrected_resampled_ttest as corrected_resampled_ttest
from ._resampled import five_by_two_cv_ttest as five_by_two_cv_ttest
from ._result import Interval as Interval
from ._result import McNemarResult as McNemarResult
from ._result import TestResult as TestResult

__all__ = [
    "CORRECTIONS",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "INTERVAL_METHODS",
    "K_SAMPLE_TESTS",
    "PAIRED_TESTS",
    "PROPORTION_INTERVALS",
    "TESTS",
    "Correction",
    "Interval",
    "McNemarResult",
    "TestResult",
    "adjust_pvalues",
    "analyze",
    "clustered_se",
    "clustered_ttest",
    "cochrans_q",
    "cohens_d",
    "cohens_h",
    "corrected_resampled_ttest",
    "discordant_counts",
    "effect_size",
    "five_by_two_cv_ttest",
    "friedman",
    "hedges_g",
    "interpret_effect",
    "interpret_p",
    "k_sample",
    "mcnemar",
    "mcnemar_from_counts",
    "mean_difference_interval",
    "mean_interval",
    "minimum_detectable_effect",
    "paired",
    "permutation_pvalue",
    "pooled_seed_variance",
    "proportion_interval",
    "require_scipy",
    "rm_anova",
    "sample_size",
    "seed_ttest",
    "two_sample",
]
