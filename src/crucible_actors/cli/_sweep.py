"""Sweeps at the command line: ``run FILE`` with a ``[sweep]`` table, ``runs list --sweep``.

``crucible-actors run`` hands an experiment with a sweep to :func:`run_sweep`, which runs
every point (at most ``--max-concurrent`` at once; a sweep of more than 10,000 runs needs
``--yes``) and prints one row per run. ``runs list --sweep ID`` reads a stored sweep back
(:func:`list_sweep`). ``--json`` prints ``{"store", "sweep", "runs": [...]}``, each run
``{"index", "point", "repeat", "parameters", "seed", "run_id", "status", "metrics"}``.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import anyio

from .._core import to_json_safe

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from .._core import Experiment, Registry, RunRecord, SweepPointRecord, SweepRecord

__all__ = ["add_run_options", "list_sweep", "run_sweep"]


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Add the sweep options of ``run``: ``--max-concurrent`` and ``--yes``."""
    from ._format import _positive

    p.add_argument(
        "--max-concurrent",
        type=_positive,
        metavar="N",
        help="with a [sweep]: run at most N points at once (default: all)",
    )
    p.add_argument("--yes", action="store_true", help="with a [sweep]: allow more than 10,000 runs")


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(to_json_safe(v))


def _metric_text(metrics: dict[str, Any], limit: int = 3) -> str:
    shown = [
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in metrics.items()
        if isinstance(v, int | float | str) and not isinstance(v, bool)
    ]
    return " ".join(shown[:limit])


def _result_text(run: RunRecord | None, limit: int = 80) -> str:
    """The metrics of a run, or why it failed (shortened to ``limit`` characters)."""
    if run is None:
        return ""
    failure = run.failure
    if run.status == "completed" or not failure:
        return _metric_text(run.metrics)
    where = f"{failure['stage']}: " if failure.get("stage") else ""
    message = " ".join(str(failure.get("message") or "").split())
    text = f"{where}{failure.get('reason_type') or 'error'}: {message}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rows(
    points: Sequence[SweepPointRecord],
    runs: dict[str, RunRecord | None],
    paths: list[str] | None = None,
) -> tuple[list[str], list[list[str]]]:
    from ._format import _elapsed, _seconds

    if paths is None:
        paths = list(points[0].parameters) if points else []
    headers = ["#", *(p.rsplit(".", 1)[-1].upper() for p in paths), "SEED", "STATUS"]
    headers += ["DURATION", "RUN ID", "METRICS"]
    rows = []
    for p in points:
        run = runs.get(p.run_id)
        rows.append(
            [
                str(p.index),
                *(_value(p.parameters.get(path)) for path in paths),
                str(p.seed),
                run.status if run is not None else "not started",
                _seconds(_elapsed(run)) if run is not None else "-",
                p.run_id,
                _result_text(run),
            ]
        )
    return headers, rows


def _doc(
    url: str | None,
    sweep: SweepRecord | dict[str, Any],
    points: Sequence[SweepPointRecord],
    runs: dict[str, RunRecord | None],
) -> dict[str, Any]:
    out = []
    for p in points:
        run = runs.get(p.run_id)
        out.append(
            {
                "index": p.index,
                "point": p.point,
                "repeat": p.repeat,
                "parameters": p.parameters,
                "seed": p.seed,
                "run_id": p.run_id,
                "status": run.status if run is not None else None,
                "metrics": run.metrics if run is not None else {},
            }
        )
    return {"store": url, "sweep": sweep, "runs": out}


def _print(headers: list[str], rows: list[list[str]]) -> None:
    from ._format import _table

    print(_table(headers, rows))


async def _read_sweep(
    store: Any, sweep_id: str
) -> tuple[SweepRecord, list[SweepPointRecord], dict[str, RunRecord | None]]:
    from .._core import RunNotFound
    from ..errors import CrucibleError

    record = await store.get_sweep(sweep_id)
    if record is None:
        recent = await store.list_sweeps(limit=5)
        known = ", ".join(f"{s.id} ({s.experiment_id})" for s in recent)
        raise CrucibleError(
            f"no sweep {sweep_id!r} in {store.name}; "
            + (f"the most recent: {known}" if known else "it holds no sweeps")
        )
    points = await store.list_sweep_points(sweep_id)
    runs: dict[str, RunRecord | None] = {}
    for p in points:
        try:
            runs[p.run_id] = await store.get_run(p.run_id)
        except RunNotFound:
            runs[p.run_id] = None
    return record, points, runs


def list_sweep(args: argparse.Namespace, url: str) -> int:
    """Print the runs of sweep ``args.sweep`` from the store at ``url``."""
    from ..store import open_store

    async def main() -> Any:
        async with open_store(url) as store:
            return await _read_sweep(store, args.sweep)

    record, points, runs = anyio.run(main, backend="trio")
    if args.json:
        sys.stdout.write(
            json.dumps(to_json_safe(_doc(url, record, points, runs)), indent=2, sort_keys=True)
            + "\n"
        )
        return 0
    done = sum(1 for r in runs.values() if r is not None and r.status == "completed")
    print(
        f"sweep {record.id}  experiment {record.experiment_id}  {record.status}  "
        f"{done}/{record.runs} runs completed"
    )
    from ..comparison._compare import _paths

    _print(*_rows(points, runs, _paths(record.sweep, points)))
    return 0


def run_sweep(
    args: argparse.Namespace,
    experiment: Experiment,
    registry: Registry,
    url: str | None,
    assigns: dict[str, Any] | None,
) -> int:
    """Run every point of ``experiment.sweep``; 0 when all completed, 1 otherwise."""
    from .._core import RunRecord, SweepPointRecord, open_runtime

    sweep = experiment.sweep
    assert sweep is not None
    if args.run_id:
        from ..errors import CrucibleError

        raise CrucibleError(
            "--run-id names one run, but this file has a [sweep] with many; drop --run-id"
        )

    async def main() -> Any:
        async with open_runtime(registry=registry, store=url) as rt:
            handle = await rt.submit_sweep(
                experiment,
                assigns=assigns,
                validate_options=args.validate_options,
                enable_trace=args.trace,
                max_concurrent=args.max_concurrent,
                confirm_large=args.yes,
                persist=url is not None,
                cache=not getattr(args, "no_cache", False),
            )
            if not args.json:
                limit = args.max_concurrent or "all"
                print(
                    f"sweep {handle.sweep_id}: {len(handle.points)} runs ({sweep.size} points"
                    f" x {sweep.repeats} repeats), {limit} at a time",
                    flush=True,
                )
            await handle.wait()
            return handle

    try:
        handle = anyio.run(main, backend=args.backend)
    except KeyboardInterrupt:
        print("interrupted: the sweep was cancelled", file=sys.stderr)
        return 130
    points = [
        SweepPointRecord(
            sweep_id=handle.sweep_id,
            index=p.index,
            point=p.point,
            repeat=p.repeat,
            run_id=p.run_id,
            parameters=to_json_safe(p.parameters),
            seed=p.seed,
        )
        for p in handle.points
    ]
    runs: dict[str, RunRecord | None] = {}
    for p in handle.points:
        run = handle.run_handle(p.index)
        ctx = run.context if run is not None else None
        runs[p.run_id] = (
            None
            if run is None
            else RunRecord(
                id=run.run_id,
                experiment_id=experiment.id,
                status=run.status.value,
                metrics=to_json_safe(ctx.metrics) if ctx is not None else {},
                failure=to_json_safe(run.failure),
            )
        )
    counts = handle.statistics().by_status
    if args.json:
        doc = _doc(
            url,
            {"id": handle.sweep_id, "status": handle.status, "runs": len(points)},
            points,
            runs,
        )
        sys.stdout.write(json.dumps(to_json_safe(doc), indent=2, sort_keys=True) + "\n")
    else:
        headers, rows = _rows(points, runs)
        drop = headers.index("DURATION")
        _print(
            [h for i, h in enumerate(headers) if i != drop],
            [[c for i, c in enumerate(r) if i != drop] for r in rows],
        )
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        print(f"sweep {handle.sweep_id}: {handle.status} ({summary})")
        done = [a for run in handle.runs() for a in run.attempts if a.status == "completed"]
        hits = sum(a.cache_hit for a in done)
        if hits:
            print(
                f"cache: {hits} of {len(done)} stages replayed from the stage result cache"
                " (--no-cache computes them)"
            )
        completed = counts.get("completed", 0)
        if url is not None and completed >= 2:
            print(f"compare the points: crucible-actors compare --sweep {handle.sweep_id}")
        elif url is not None and completed < len(points):
            print("see why a run failed: crucible-actors runs show RUN_ID")
    return 0 if handle.status == "completed" else 1
