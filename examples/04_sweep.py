"""Run a sweep from Python, then compare its points (needs the ``bench`` extra: scipy).

``sweep.toml`` runs a fake model over two models x two temperatures, three seeded repeats
each, into a throwaway SQLite store, then again (every stage's result now comes from the
stage result cache); ``compare_sweep`` ranks the points on the
per-example ``score`` (paired by question ``id``) and tests each against the best. Run
from anywhere:

    python examples/04_sweep.py
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import anyio

import crucible_actors as ca
from crucible_actors.comparison import render

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # "sweep_stages:call_model" imports from here, as with the CLI


async def main(store_url: str) -> int:
    experiment = ca.load_experiment(HERE / "sweep.toml")
    async with ca.open_runtime(store=store_url) as rt:
        sweep = await rt.submit_sweep(experiment, max_concurrent=4)
        counts = await sweep.wait()
        print(f"sweep {sweep.sweep_id}: {sweep.status} {counts}")
        for point, parameters in {p.point: p.parameters for p in sweep.points}.items():
            print(f"  point {point}: {parameters}")
        # Run again: every stage's result comes from the cache ([cache] default = true).
        again = await rt.submit_sweep(experiment, max_concurrent=4)
        await again.wait()
        attempts = [a for run in again.runs() for a in run.attempts]
        hits = sum(a.cache_hit for a in attempts)
        print(f"sweep {again.sweep_id}: {hits} of {len(attempts)} stages from the cache")
        result = await ca.compare_sweep(rt.store, sweep.sweep_id, pair_by="id")
    print(render(result, "table"))
    ok = sweep.status == "completed" and result.ranking[0].startswith("model=large")
    return 0 if ok and hits == len(attempts) else 1


if __name__ == "__main__":
    if importlib.util.find_spec("scipy") is None:
        print(
            "skipped: comparing needs scipy; install it with: pip install 'crucible-actors[bench]'"
        )
        sys.exit(0)
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(anyio.run(main, f"sqlite:///{tmp}/sweep.db", backend="trio"))
