"""Reading the scores of stored runs: one number per example, its key and its cluster.

:func:`choose_metric` picks the score field when none is named, :func:`run_items`
reads ``(key, score, cluster)`` per example from a run's ``outputs`` (or from a run
metric holding a list of numbers), and :func:`has_unique_ids` says whether the runs can
be paired by ``id`` automatically. Every refusal is a
:class:`~crucible_actors.comparison.ComparisonError` naming the run, the item and the
option that fixes it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._result import ComparisonError

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

    from .._core import RunRecord

__all__ = ["choose_metric", "has_unique_ids", "run_items"]


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


def run_items(
    run: RunRecord, metric: str, pair_by: str | None, cluster_by: str | None
) -> list[tuple[str | None, float, Hashable]]:
    """Return ``(key, score, cluster)`` per example of ``run``: its outputs with ``metric``.

    ``key`` is the ``pair_by`` field as text (None unpaired), ``cluster`` the
    ``cluster_by`` field (None without). When no output has the field, a run metric of
    that name holding a list of numbers is used (keys are then the positions).

    Raises:
        ComparisonError: no scores, a non-numeric score, a missing or repeated key, a
            missing cluster field.
    """
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


def has_unique_ids(runs: Sequence[RunRecord], metric: str, field: str = "id") -> bool:
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
