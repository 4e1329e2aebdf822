"""How to compare: :class:`CompareOptions`, the one definition of compare's options.

:func:`~crucible_actors.comparison.compare`, :func:`~crucible_actors.comparison.compare_sweep`,
the ``crucible-actors compare`` command and the service's ``GET /api/compare`` all build
one :class:`CompareOptions`, so the options, their defaults and their checks are
written once. :class:`CompareChanges` is the same fields as keyword arguments, the
typing of ``compare(store, run_ids, pair_by="id")``.
"""

from __future__ import annotations

import math
from typing import Literal, TypeAlias, TypedDict, get_args

import msgspec

from ..stats import CORRECTIONS, Correction

__all__ = ["REPEATS", "CompareChanges", "CompareOptions", "Repeats"]

#: What the repeated runs of one group are: seeds (run-to-run variance counts) or
#: eval-time samples of one system (averaged per example).
Repeats: TypeAlias = Literal["seeds", "samples"]
REPEATS: tuple[Repeats, ...] = get_args(Repeats)


class CompareOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The options of a comparison; checked when built.

    ``metric`` names the per-example score field of the outputs (default: the one
    numeric field every output shares, ``score`` if present). ``pair_by`` names the
    field identifying the example; without it the runs are paired by ``id`` when every
    output carries a unique one, unless ``unpaired``. ``cluster_by`` names a field
    grouping dependent examples (a passage, a document): the tests use cluster-robust
    SEs. ``repeats`` says what several runs of one group are (``seeds``: run-to-run
    variance counts; ``samples``: eval-time samples, averaged per example).
    ``test_train_ratio`` (n_test / n_train of a fold) declares the scores per-fold CV
    results and uses the corrected resampled t-test. ``correction`` adjusts each test's
    p-values across the comparisons. ``seed`` seeds the bootstrap of the effect sizes'
    intervals (``None``: fresh randomness).

    Raises:
        ValueError: ``repeats`` or ``correction`` not one of their values,
            ``test_train_ratio`` not a positive number, ``alpha`` or
            ``confidence_level`` outside (0, 1).
    """

    metric: str | None = None
    pair_by: str | None = None
    cluster_by: str | None = None
    unpaired: bool = False
    repeats: Repeats = "seeds"
    test_train_ratio: float | None = None
    alpha: float = 0.05
    correction: Correction = "holm"
    confidence_level: float = 0.95
    bootstrap_iterations: int = 10_000
    seed: int | None = 0
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if self.repeats not in REPEATS:
            raise ValueError(f"repeats must be 'seeds' or 'samples', got {self.repeats!r}")
        ratio = self.test_train_ratio
        if ratio is not None and (
            isinstance(ratio, bool)
            or not isinstance(ratio, int | float)
            or not 0 < ratio < math.inf
        ):
            raise ValueError(
                "test_train_ratio must be n_test / n_train of one fold (1/4 for 5-fold CV), "
                f"got {ratio!r}"
            )
        if self.correction not in CORRECTIONS:
            raise ValueError(
                f"unknown correction {self.correction!r}; expected one of {', '.join(CORRECTIONS)}"
            )
        if not 0 < self.alpha < 1 or not 0 < self.confidence_level < 1:
            raise ValueError(
                "alpha and confidence_level must lie strictly between 0 and 1; got "
                f"{self.alpha!r} and {self.confidence_level!r}"
            )


class CompareChanges(TypedDict, total=False):
    """The fields of :class:`CompareOptions` as keyword arguments (each optional)."""

    metric: str | None
    pair_by: str | None
    cluster_by: str | None
    unpaired: bool
    repeats: Repeats
    test_train_ratio: float | None
    alpha: float
    correction: Correction
    confidence_level: float
    bootstrap_iterations: int
    seed: int | None
    higher_is_better: bool
