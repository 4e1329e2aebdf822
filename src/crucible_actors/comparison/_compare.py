"""Comparing stored runs: :func:`compare` and :func:`compare_sweep`, the entry points.

:func:`compare` reads runs from a Store, takes one score per example from each run's
``outputs`` (the items holding the ``metric`` field) and compares every run with the
first one, the *baseline*; :func:`compare_sweep` compares the points of a sweep, each
against the best. Both read the runs here (a store URL is opened for the call), then
compute in a worker thread (:func:`._analysis.build`, which says how the test is
chosen), and add the provenance warnings (:mod:`._warnings`): how the compared runs
differ in code, environment or input data. The options are one
:class:`~crucible_actors.comparison.CompareOptions`.
"""

from __future__ import annotations

import functools
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Unpack

import anyio.to_thread
import msgspec

from .._core import RunNotFound, RunRecord, Store
from ._analysis import RunGroup, build
from ._options import CompareOptions
from ._result import Comparison, ComparisonError
from ._warnings import provenance_warnings_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from ._options import CompareChanges

__all__ = ["compare", "compare_sweep"]


def _labels(runs: Sequence[RunRecord]) -> list[str]:
    for width in (8, 12, 16):
        short = [r.id[:width] for r in runs]
        if len(set(short)) == len(short):
            return short
    return [r.id for r in runs]


def _options(options: CompareOptions | None, changes: CompareChanges) -> CompareOptions:
    """Return ``options`` (default: the defaults) with ``changes`` applied and checked."""
    base = options if options is not None else CompareOptions()
    return msgspec.structs.replace(base, **changes) if changes else base


async def _build_in_thread(
    sides: list[RunGroup], options: CompareOptions, *, reference: int | None, sweep_id: str | None
) -> Comparison:
    # The tests and the bootstrap are CPU work: keep the event loop free, as the bench
    # stage does.
    work = functools.partial(build, sides, options, reference=reference, sweep_id=sweep_id)
    result: Comparison = await anyio.to_thread.run_sync(work)
    return result


@asynccontextmanager
async def _opened(store: Store | str) -> AsyncIterator[Store]:
    """Yield ``store``, opening it first when given as a URL."""
    if isinstance(store, str):
        from ..store import open_store

        async with open_store(store) as opened:
            yield opened
    else:
        yield store


async def _get_runs(store: Store, run_ids: Sequence[str]) -> list[RunRecord]:
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
    store: Store | str,
    run_ids: Sequence[str],
    options: CompareOptions | None = None,
    **changes: Unpack[CompareChanges],
) -> Comparison:
    """Compare stored runs; the first is the baseline every other run is tested against.

    ``store`` is a Store or a store URL (opened for the call). ``options`` says how to
    compare (:class:`~crucible_actors.comparison.CompareOptions`, whose docstring
    describes each option); keyword arguments change single options, so
    ``compare(store, ids, pair_by="id")`` and
    ``compare(store, ids, CompareOptions(pair_by="id"))`` are the same call. See
    :mod:`crucible_actors.comparison` for the choice of test.

    Raises:
        RunNotFound: a run id is not in the store.
        ComparisonError: fewer than 2 runs, a run not completed, no or ambiguous scores,
            fewer than 2 shared examples when pairing.
        ValueError: an option out of range.
        MissingDependency: scipy is not installed (extra ``bench``).
    """
    opts = _options(options, changes)
    ids = list(dict.fromkeys(run_ids))
    if len(ids) < 2:
        raise ComparisonError(f"comparing needs at least 2 distinct runs; got {len(ids)}")
    async with _opened(store) as opened:
        runs = await _get_runs(opened, ids)
        warnings = await provenance_warnings_of(opened, runs)
    sides = [RunGroup(label, [r]) for label, r in zip(_labels(runs), runs, strict=True)]
    result = await _build_in_thread(sides, opts, reference=0, sweep_id=None)
    return msgspec.structs.replace(result, warnings=warnings) if warnings else result


async def _sweep_sides(store: Store, sweep_id: str) -> tuple[list[RunGroup], int]:
    """The complete points of a sweep as sides, and how many points were incomplete."""
    record = await store.get_sweep(sweep_id)
    if record is None:
        raise ComparisonError(f"no sweep {sweep_id!r} in {store.name}")
    points = await store.list_sweep_points(sweep_id)
    paths = _paths(record.sweep, points)
    by_point: dict[int, list[Any]] = {}
    for p in points:
        by_point.setdefault(p.point, []).append(p)
    sides: list[RunGroup] = []
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
            sides.append(RunGroup(_point_label(params, paths), runs, params))
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
    store: Store | str,
    sweep_id: str,
    options: CompareOptions | None = None,
    **changes: Unpack[CompareChanges],
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
        ValueError: an option out of range.
        MissingDependency: scipy is not installed (extra ``bench``).
    """
    opts = _options(options, changes)
    async with _opened(store) as opened:
        sides, incomplete = await _sweep_sides(opened, sweep_id)
        warnings = await provenance_warnings_of(opened, [r for s in sides for r in s.runs])
    if len(sides) < 2:
        raise ComparisonError(
            f"sweep {sweep_id} has {len(sides)} point(s) whose runs all completed; "
            "comparing needs at least 2"
        )
    result = await _build_in_thread(sides, opts, reference=None, sweep_id=sweep_id)
    if incomplete:
        dropped = {**result.dropped, "incomplete points": incomplete}
        result = msgspec.structs.replace(result, dropped=dropped)
    if warnings:
        result = msgspec.structs.replace(result, warnings=warnings)
    return result
