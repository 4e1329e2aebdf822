"""What a sweep costs on top of its runs, as JSON lines.

Runs ``--points`` runs of a 2-stage no-op pipeline two ways in the same process, in
interleaved rounds (``--rounds``, medians reported), and prints the wall time of each:

(a) baseline: the same runs submitted by hand (``Runtime.submit`` for each point's
    experiment, then waiting for every handle);
(b) ``Runtime.submit_sweep`` of the equivalent ``[sweep]``: expansion, the schema checks,
    building each point's experiment, seeds, the feeder and the per-run bookkeeping.

Both without a store (``--store sqlite`` adds (c)/(d): the same with an embedded SQLite
file, where the sweep also records itself and its points). The ratio (b)/(a) is the
sweep machinery's overhead; target <= 1.2.

Usage: ``python bench/sweep.py [--backend trio|asyncio] [--points N] [--rounds R]
[--store sqlite]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any

import anyio
import msgspec

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef
from crucible_actors._core._sweep import expand, point_experiment


class Opts(msgspec.Struct):
    x: int = 0


@ca.stage("noop", options=Opts)
async def noop(ctx: Context, opts: Opts) -> Context:
    return ctx


def make_registry() -> Registry:
    reg = Registry()
    reg.register(noop)
    return reg


def experiment(points: int) -> Experiment:
    return Experiment(
        id="bench_sweep",
        pipeline=[StageDef(name="noop"), StageDef(name="noop2", stage=noop)],
        sweep={"noop.x": list(range(points))},
    )


async def by_hand(exp: Experiment, store: Any) -> float:
    assert exp.sweep is not None
    async with ca.open_runtime(registry=make_registry(), store=store) as rt:
        start = time.perf_counter()
        points = [point_experiment(exp, p) for p in expand(exp.sweep)]
        handles = [await rt.submit(p, telemetry={"seed": i}) for i, p in enumerate(points)]
        for h in handles:
            await h.wait()
        return time.perf_counter() - start


async def as_sweep(exp: Experiment, store: Any) -> float:
    async with ca.open_runtime(registry=make_registry(), store=store) as rt:
        start = time.perf_counter()
        handle = await rt.submit_sweep(exp)
        counts = await handle.wait()
        elapsed = time.perf_counter() - start
    assert counts == {"completed": len(handle.points)}, counts
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", choices=("none", "sqlite"), default="none")
    args = parser.parse_args()
    exp = experiment(args.points)
    with tempfile.TemporaryDirectory() as tmp:
        for fn in (by_hand, as_sweep):  # warm-up: imports and first-use caches
            anyio.run(fn, experiment(10), None, backend=args.backend)
        times: dict[str, list[float]] = {"by_hand": [], "sweep": []}
        for r in range(args.rounds):
            for name, fn in (("by_hand", by_hand), ("sweep", as_sweep)):
                store = None if args.store == "none" else f"sqlite:///{tmp}/{name}{r}.db"
                times[name].append(anyio.run(fn, exp, store, backend=args.backend))
    base, sweep = (statistics.median(times[k]) for k in ("by_hand", "sweep"))
    common = {"backend": args.backend, "points": args.points, "store": args.store}
    print(json.dumps({"figure": "runs_by_hand_s", "value": round(base, 4), **common}))
    print(json.dumps({"figure": "submit_sweep_s", "value": round(sweep, 4), **common}))
    print(json.dumps({"figure": "sweep_over_by_hand", "ratio": round(sweep / base, 3), **common}))


if __name__ == "__main__":
    main()
