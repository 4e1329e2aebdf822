"""The dashboard's runs list with metric and parameter columns, sorted and filtered, at scale.

Fills a fresh SQLite store with ``--runs`` finished runs (default 10,000), each with two
metrics, two stage options and ``--outputs`` per-example outputs (default 40), a quarter
of them points of one sweep. Each run names its own experiment definition in its
provenance (``--definitions`` distinct ones, default 4, differing in ``lr``: the
experiment was edited between runs), as the runtime records it. Then asks the app
in-process (``httpx.ASGITransport``, no network) for:

- ``page``: the newest 50 runs with three columns (what the dashboard polls by default);
- ``sort``: every run sorted by a metric, first page of 50 (the server reads all runs);
- ``sort_param``: every run sorted by ``params.m.lr``, read from each run's own
  definition (one store call for the distinct definitions), first page;
- ``filter``: every run filtered by a metric and a parameter, first page;
- baseline: ``store.list_runs`` of every run in pages of 1,000 (outputs included), the
  cost a sort would have if it read runs the way the plain list does.

Each figure is the median of ``--repeat`` requests (default 5) after one warm-up, printed
as one JSON object per line. Usage: ``python bench/runs_columns.py [--runs N]
[--outputs N] [--repeat N] [--definitions N]``; ``--quick`` is ``--runs 500 --outputs 5
--repeat 2``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx

from crucible_actors import Registry, open_runtime
from crucible_actors._core._provenance import definition_id
from crucible_actors.serve import create_app
from crucible_actors.store import (
    DefinitionRecord,
    ExperimentRecord,
    RunRecord,
    SweepPointRecord,
    SweepRecord,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)


async def _fill(store: Any, runs: int, outputs: int, definitions: int) -> None:
    rng = random.Random(0)
    ids = []
    for k in range(definitions):
        options = {"model": "a", "lr": round(0.1 * (k + 1), 2)}
        definition = {"id": "exp", "pipeline": [{"name": "m", "options": options}]}
        ids.append(definition_id(definition))
        await store.put_definition(
            DefinitionRecord(id=ids[-1], definition=definition, created_at=T0)
        )
    # The experiment record holds the last definition submitted, as after real runs.
    exp = ExperimentRecord(id="exp", definition=definition, created_at=T0, updated_at=T0)
    swept = runs // 4
    await store.record_sweep(
        SweepRecord(
            id="sweep",
            experiment_id="exp",
            sweep={"parameters": {"m.model": ["a", "b"]}, "mode": "grid", "repeats": swept // 2},
            runs=swept,
            created_at=T0,
        ),
        points=[
            SweepPointRecord(
                sweep_id="sweep",
                index=i,
                point=i % 2,
                repeat=i // 2,
                run_id=f"r{i:06d}",
                parameters={"m.model": "ab"[i % 2]},
                seed=i,
            )
            for i in range(swept)
        ],
    )

    async def one(i: int) -> None:
        run_id = f"r{i:06d}"
        run = RunRecord(
            id=run_id,
            experiment_id="exp",
            status="running",
            started_at=T0,
            owner_id="b",
            provenance={"definition": ids[i % definitions]},
        )
        await store.start_run(run, experiment=exp)
        done = RunRecord(
            id=run_id,
            experiment_id="exp",
            status="completed",
            metrics={"accuracy": rng.random(), "loss": rng.random()},
            outputs=[{"id": f"q{j}", "score": rng.random()} for j in range(outputs)],
            started_at=T0,
            finished_at=T0,
            owner_id="b",
        )
        await store.finish_run(done, artifacts=[], events=[])

    for start in range(0, runs, 500):
        async with anyio.create_task_group() as tg:
            for i in range(start, min(runs, start + 500)):
                tg.start_soon(one, i)


async def _timed(repeat: int, fn: Any) -> tuple[float, Any]:
    await fn()  # warm-up
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        async with open_runtime(registry=Registry(), store=url) as rt:
            store = rt.store
            assert store is not None
            started = time.perf_counter()
            await _fill(store, args.runs, args.outputs, args.definitions)
            fill = time.perf_counter() - started
            app = create_app(rt)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                cols = "metrics.accuracy,params.m.model,params.m.lr"
                queries = {
                    "page": {"limit": "50", "columns": cols},
                    "sort": {"limit": "50", "columns": cols, "sort": "-metrics.accuracy"},
                    "sort_param": {"limit": "50", "columns": cols, "sort": "-params.m.lr"},
                    "filter": [
                        ("limit", "50"),
                        ("columns", cols),
                        ("filter", "metrics.accuracy>0.5"),
                        ("filter", "params.m.model=b"),
                    ],
                }
                for name, params in queries.items():

                    async def get(params: Any = params) -> Any:
                        resp = await c.get("/api/runs", params=params)
                        resp.raise_for_status()
                        return resp.json()

                    seconds, body = await _timed(args.repeat, get)
                    if name == "sort_param":  # each run's own lr, not the latest one
                        top = body["runs"][0]["columns"]["params.m.lr"]
                        assert top == round(0.1 * args.definitions, 2), top
                    _emit(
                        figure=name,
                        seconds=round(seconds, 4),
                        runs=args.runs,
                        outputs=args.outputs,
                        definitions=args.definitions,
                        total=body.get("total"),
                        fill_seconds=round(fill, 2),
                    )

                async def read_all() -> int:
                    n, cursor = 0, None
                    while True:
                        batch = await store.list_runs(limit=1000, before=cursor)
                        n += len(batch)
                        if len(batch) < 1000:
                            return n
                        cursor = batch[-1].id

                seconds, n = await _timed(args.repeat, read_all)
                _emit(figure="baseline_list_runs_all", seconds=round(seconds, 4), runs=n)


def _emit(**fields: Any) -> None:
    print(json.dumps({"bench": "runs_columns", **fields}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--outputs", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--definitions", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="500 runs, 5 outputs, 2 repeats")
    ns = parser.parse_args()
    if ns.quick:
        ns.runs, ns.outputs, ns.repeat = 500, 5, 2
    anyio.run(main, ns)
