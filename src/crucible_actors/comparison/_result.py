"""What a comparison finds: :class:`Comparison`, its groups and pairs, and its error.

Frozen msgspec Structs, so a comparison encodes to JSON as it is (``compare --format
json``, ``GET /api/compare``) and decodes back. :mod:`._analysis` builds them,
:mod:`._verdict` words them and :mod:`._render` draws them.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

from .._core import CrucibleError
from ..stats import Correction
from ._options import Repeats

__all__ = ["Comparison", "ComparisonError", "Family", "GroupSummary", "PairComparison"]

#: What ``correction`` adjusts over: the comparisons against the baseline, or every pair
#: of sweep points.
Family: TypeAlias = Literal["baseline", "all_pairs"]


class ComparisonError(CrucibleError, ValueError):
    """The runs cannot be compared: no scores, an ambiguous metric, nothing to pair.

    Raised by :func:`~crucible_actors.comparison.compare` before any statistics are
    computed; unlike :class:`~crucible_actors.errors.RunNotFound` the runs exist but their
    data do not fit.
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
    """What a comparison found; encodes to JSON as is (``msgspec.json.encode``).

    ``design`` says in words which test was used and why; ``family`` is what
    ``correction`` adjusts over (``baseline``: the comparisons against it; ``all_pairs``:
    every pair of sweep points).
    """

    metric: str
    pair_by: str | None
    paired: bool
    alpha: float
    correction: Correction
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
    repeats: Repeats = "seeds"
    family: Family = "baseline"
    test_train_ratio: float | None = None
    notes: list[str] = []
    #: One line per way the compared runs differ in code, environment or input data.
    warnings: list[str] = []
