"""What recording provenance costs a persisted run: time per run and bytes per run.

Two runtimes in one process, each on its own fresh SQLite store, one with
``open_runtime(provenance=True)`` (the default) and one with ``provenance=False``, run
the same 5-stage pipeline of no-op stages one run at a time (submit, wait for the
result), in interleaved slices so a burst of load lands on both alike. Each run's
initial Context holds a 1 MB numpy array (stored by content, so its digest is one of the
run's recorded inputs) when numpy is installed.

Printed, one JSON object per line (``"bench": "provenance"``):

- ``first_environment_ms``: computing this process's environment the first time
  (package metadata, ``git rev-parse`` and ``git status`` in the current directory):
  paid once per process, not per run;
- ``persisted_run_ms`` for ``provenance`` true and false: process CPU time per run
  (medians over ``--rounds``), and ``provenance_cost_per_run_ms``: their difference
  (target: <= 1 ms per run after the first);
- ``store_bytes_per_run``: ``provenance_json`` (the per-run record as stored, the
  environment and definition records left out since each is stored once: target <
  1024), ``environment_json`` and ``definition_json`` (those records), and each
  store's database size per run (page count x page size after a WAL checkpoint) with
  and without provenance.

Usage: ``python bench/provenance.py [--runs N] [--rounds N] [--backend trio|asyncio]``
(defaults 300 runs per side per round, 3 rounds; ``--quick``: 30 runs, 1 round).
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef
from crucible_actors._core._provenance import environment_of
from crucible_actors.store import open_sqlite_store

STAGES = 5
SLICES = 10


@ca.stage("noop")
async def noop(ctx: Context, opts: Any) -> Context:
    return ctx


EXPERIMENT = Experiment(id="provenance-bench", pipeline=[StageDef(name="noop")] * STAGES)


def registry() -> Registry:
    reg = Registry()
    reg.register(noop)
    return reg


def inputs() -> dict[str, Any]:
    try:
        import numpy as np
    except ImportError:
        return {}
    return {"data": np.arange(131_072, dtype=np.float64)}  # 1 MB: a blob


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "provenance", **fields}), flush=True)


def db_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int(pages * size)


async def measure(runs: int, rounds: int) -> None:
    reg = registry()
    assigns = inputs()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {flag: Path(tmp) / f"{flag}.db" for flag in (True, False)}
        t0 = time.perf_counter()
        await environment_of([noop._fn])
        emit(figure="first_environment_ms", value=round((time.perf_counter() - t0) * 1e3, 3))
        per_run: dict[bool, list[float]] = {True: [], False: []}
        async with (
            open_sqlite_store(paths[True]) as store_on,
            open_sqlite_store(paths[False]) as store_off,
            ca.open_runtime(registry=reg, store=store_on, keep_finished=100) as rt_on,
            ca.open_runtime(
                registry=reg, store=store_off, keep_finished=100, provenance=False
            ) as rt_off,
        ):
            runtimes = {True: rt_on, False: rt_off}
            for rt in runtimes.values():  # warm up: imports, statements, the environment
                for _ in range(5):
                    await (await rt.submit(EXPERIMENT, assigns=assigns)).result()
            before = {flag: db_bytes(paths[flag]) for flag in paths}
            total = dict.fromkeys(paths, 0)
            for _ in range(rounds):
                spent = {True: 0.0, False: 0.0}
                for i in range(SLICES):
                    n = runs // SLICES + (1 if i < runs % SLICES else 0)
                    for flag in (True, False) if i % 2 == 0 else (False, True):
                        gc.collect()
                        start = time.process_time()
                        for _ in range(n):
                            await (
                                await runtimes[flag].submit(EXPERIMENT, assigns=assigns)
                            ).result()
                        spent[flag] += time.process_time() - start
                        total[flag] += n
                for flag in per_run:
                    per_run[flag].append(spent[flag] / runs * 1e3)
            row = await store_on.list_runs(limit=1)
            prov = row[0].provenance or {}
            env = await store_on.get_environment(prov.get("environment", ""))
            defs = await store_on.get_definitions([prov.get("definition", "")])
        after = {flag: db_bytes(paths[flag]) for flag in paths}
    med = {flag: statistics.median(v) for flag, v in per_run.items()}
    for flag in (True, False):
        emit(
            figure="persisted_run_ms",
            provenance=flag,
            value=round(med[flag], 4),
            rounds=[round(v, 4) for v in per_run[flag]],
            stages=STAGES,
            runs=runs,
        )
    emit(
        figure="provenance_cost_per_run_ms",
        value=round(med[True] - med[False], 4),
        target_ms=1.0,
    )
    growth = {flag: (after[flag] - before[flag]) / total[flag] for flag in paths}
    emit(
        figure="store_bytes_per_run",
        provenance_json=len(json.dumps(prov, separators=(",", ":"))),
        environment_json=len(json.dumps(env.record if env else None, separators=(",", ":"))),
        definition_json=sum(
            len(json.dumps(d.definition, separators=(",", ":"))) for d in defs.values()
        ),
        db_bytes_per_run_provenance=round(growth[True], 1),
        db_bytes_per_run_no_provenance=round(growth[False], 1),
        target_bytes=1024,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="runs per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--quick", action="store_true", help="30 runs, 1 round: a smoke test")
    args = parser.parse_args()
    runs, rounds = (30, 1) if args.quick else (args.runs, args.rounds)
    anyio.run(measure, runs, rounds, backend=args.backend)


if __name__ == "__main__":
    main()
