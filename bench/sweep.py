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

With ``--store sqlite`` it also times the acknowledgement, the wait in
``submit_sweep`` until the sweep is durable (issue 21): ``sweep_ack_s`` with every point
recorded ``pending`` (its run row and initial checkpoint, in the sweep's transaction:
what the store does now) against ``sweep_ack_record_only_s``, the same store hiding
``start_pending`` so only the sweep and its point list are recorded (as before; points
then get their rows as they start). Both sweeps then run to the end (``..._total_s``).

Usage: ``python bench/sweep.py [--backend trio|asyncio] [--points N] [--rounds R]
[--store sqlite]``; quick check: ``--points 200 --rounds 1 --store sqlite``.
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


class RecordOnly:
    """A store as it was before pending points: ``start_pending`` hidden."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "start_pending":
            raise AttributeError(name)
        return getattr(self._store, name)


async def acknowledged(exp: Experiment, url: str, durable: bool) -> tuple[float, float]:
    """Return (seconds until submit_sweep returned, seconds until every run ended)."""
    from crucible_actors.store import open_store

    async with open_store(url) as opened:
        store = opened if durable else RecordOnly(opened)
        async with ca.open_runtime(registry=make_registry(), store=store) as rt:
            start = time.perf_counter()
            handle = await rt.submit_sweep(exp)
            ack = time.perf_counter() - start
            counts = await handle.wait()
            total = time.perf_counter() - start
    assert counts == {"completed": len(handle.points)}, counts
    return ack, total


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
        acks: dict[str, list[tuple[float, float]]] = {"pending": [], "record_only": []}
        for r in range(args.rounds):
            for name, fn in (("by_hand", by_hand), ("sweep", as_sweep)):
                store = None if args.store == "none" else f"sqlite:///{tmp}/{name}{r}.db"
                times[name].append(anyio.run(fn, exp, store, backend=args.backend))
            if args.store == "sqlite":
                for kind in acks:
                    url = f"sqlite:///{tmp}/ack-{kind}{r}.db"
                    acks[kind].append(
                        anyio.run(acknowledged, exp, url, kind == "pending", backend=args.backend)
                    )
    base, sweep = (statistics.median(times[k]) for k in ("by_hand", "sweep"))
    common = {"backend": args.backend, "points": args.points, "store": args.store}
    print(json.dumps({"figure": "runs_by_hand_s", "value": round(base, 4), **common}))
    print(json.dumps({"figure": "submit_sweep_s", "value": round(sweep, 4), **common}))
    print(json.dumps({"figure": "sweep_over_by_hand", "ratio": round(sweep / base, 3), **common}))
    if args.store == "sqlite":
        for kind, name in (("pending", "sweep_ack"), ("record_only", "sweep_ack_record_only")):
            ack = statistics.median(a for a, _ in acks[kind])
            total = statistics.median(t for _, t in acks[kind])
            print(json.dumps({"figure": f"{name}_s", "value": round(ack, 4), **common}))
            print(json.dumps({"figure": f"{name}_total_s", "value": round(total, 4), **common}))


if __name__ == "__main__":
    main()
