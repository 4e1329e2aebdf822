"""What the stage result cache costs and saves, as JSON lines.

1. ``hit_1mb_context``: a cache hit on a stage whose input Context encodes to ~1 MB
   (2,500 example records in ``outputs``), against decoding that Context
   (``decode_context``) in the same process. Timed: what the run supervisor does for a
   hit before recording it, ``RunCache.lookup`` on an embedded SQLite store: the key
   (the snapshot split into raw fields, SHA-256 over them), the store read, and the next
   snapshot built from bytes. Two results are measured: the stage added a metric
   (``result="small"``), and the stage rewrote the 1 MB ``outputs`` (``result="1mb"``:
   the stored result is ~1 MB too). Medians of ``--repeats`` interleaved repetitions;
   target: hit <= 2x decode.
2. ``sweep_rerun``: a 1,000-point sweep (``--points``) of N stages (``--stages``, a
   comma-separated list of N, default ``2,3``) that each sleep 20 ms, every stage
   cached, persisted to an embedded SQLite file; the wall time of the first run of the
   sweep, and of running it again in a new runtime (as a second ``crucible-actors run``
   would: every stage a hit), with ``--max-concurrent`` points at once (default 1: the
   sweep's time is then the sum of its runs, as when points share one model server).
   Target: re-run >= 50x faster. What a re-run still pays per run is a persisted run's
   fixed cost (the start and outcome commits, the records) and one store read per stage.

Usage: ``python bench/cache.py [--backend trio|asyncio] [--points N] [--stages 2,3]
[--max-concurrent N] [--repeats N] [--skip-sweep]``.
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
from crucible_actors import CacheConfig, Context, Experiment, Registry, StageDef
from crucible_actors._core._cache import StageCache
from crucible_actors._core._encoding import decode_context, encode_context
from crucible_actors._core._executor import PreparedStage, default_executors
from crucible_actors._core._invoke import prepare_options, resolve_stage
from crucible_actors._core._stage import stage_info
from crucible_actors.store import open_store


class SleepOpts(msgspec.Struct):
    x: int = 0
    seconds: float = 0.02


@ca.stage("sleep", options=SleepOpts)
async def sleep(ctx: Context, opts: SleepOpts) -> Context:
    await anyio.sleep(opts.seconds)
    return ctx.put_metric(f"slept_{len(ctx.metrics)}", opts.seconds)


@ca.stage("add_metric")
async def add_metric(ctx: Context, opts: Any) -> Context:
    return ctx.put_metric("n", len(ctx.outputs))


@ca.stage("rewrite_outputs")
async def rewrite_outputs(ctx: Context, opts: Any) -> Context:
    return ctx.add_output({"id": "extra"})


def registry() -> Registry:
    reg = Registry()
    for s in (sleep, add_metric, rewrite_outputs):
        reg.register(s)
    return reg


def big_context(exp: Experiment) -> Context:
    rows = [
        {"id": f"q{i:05d}", "prompt": "x" * 300, "answer": "y" * 60, "score": i / 2500}
        for i in range(2500)
    ]
    return Context.new(exp, run_id="bench").add_outputs(rows).assign("dataset", "bench")


def prepared(reg: Registry, sd: StageDef) -> PreparedStage:
    obj = resolve_stage(sd, reg)
    opts = prepare_options(sd.label, obj, sd.options or {}, "off")
    return PreparedStage(0, sd.label, sd, stage_info(obj), opts, default_executors["inline"])


async def hit_vs_decode(store: Any, reg: Registry, name: str, repeats: int) -> dict[str, Any]:
    sd = StageDef(name=name, cache=True)
    exp = Experiment(id="bench_cache", pipeline=[sd])
    ctx = big_context(exp)
    snapshot = encode_context(ctx)
    stage = prepared(reg, sd)
    run_cache = StageCache(store).for_run(exp)
    assert run_cache is not None
    probe = await run_cache.lookup(stage, snapshot)
    assert probe is not None
    assert probe.snapshot is None  # a miss: store the result
    result = await stage.info.stage.run(decode_context(snapshot), {})
    await run_cache.save(stage, probe, encode_context(result.mark_stage_complete(name)), "r0")
    decode_s: list[float] = []
    hit_s: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        decode_context(snapshot)
        decode_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        probe = await run_cache.lookup(stage, snapshot)
        hit_s.append(time.perf_counter() - t0)
        assert probe is not None
        assert probe.snapshot is not None
    assert probe.hit is not None
    after = decode_context(probe.snapshot)
    assert after.outputs[:3] == ctx.outputs[:3]
    decode_us = statistics.median(decode_s) * 1e6
    hit_us = statistics.median(hit_s) * 1e6
    return {
        "result": "small" if name == "add_metric" else "1mb",
        "context_bytes": len(snapshot),
        "result_bytes": probe.hit.size,
        "decode_us": round(decode_us, 1),
        "hit_us": round(hit_us, 1),
        "ratio_hit_vs_decode": round(hit_us / decode_us, 2),
        "target_ratio": 2.0,
    }


async def sweep_walls(
    url: str, reg: Registry, points: int, stages: int, max_concurrent: int
) -> tuple[float, float, int]:
    exp = Experiment(
        id="bench_cache_sweep",
        pipeline=[
            StageDef(name="sleep" if i == 0 else f"sleep{i}", stage=sleep) for i in range(stages)
        ],
        cache=CacheConfig(default=True),
        sweep={"sleep.x": list(range(points))},
    )
    walls: list[float] = []
    hits = 0
    for _ in range(2):  # a runtime each: the re-run starts with nothing in memory
        async with ca.open_runtime(registry=reg, store=url) as rt:
            t0 = time.perf_counter()
            handle = await rt.submit_sweep(exp, max_concurrent=max_concurrent)
            counts = await handle.wait()
            walls.append(time.perf_counter() - t0)
            assert counts == {"completed": points}, counts
            hits = sum(a.cache_hit for run in handle.runs() for a in run.attempts)
    assert hits == points * stages, hits  # the second sweep: every stage a hit
    return walls[0], walls[1], hits


async def main(args: argparse.Namespace) -> None:
    reg = registry()
    with tempfile.TemporaryDirectory() as tmp:
        async with open_store(f"sqlite:///{tmp}/hit.db") as store:
            for name in ("add_metric", "rewrite_outputs"):
                line = await hit_vs_decode(store, reg, name, args.repeats)
                print(
                    json.dumps(
                        {"backend": args.backend, "bench": "cache", "path": "hit_1mb_context"}
                        | line
                        | {"statistic": f"median of {args.repeats}"}
                    ),
                    flush=True,
                )
        if args.skip_sweep:
            return
        for n, stages in enumerate(int(s) for s in args.stages.split(",")):
            first, again, hits = await sweep_walls(
                f"sqlite:///{tmp}/sweep{n}.db", reg, args.points, stages, args.max_concurrent
            )
            line = {
                "backend": args.backend,
                "bench": "cache",
                "path": "sweep_rerun",
                "points": args.points,
                "stages": stages,
                "stage_sleep_s": 0.02,
                "max_concurrent": args.max_concurrent,
                "first_run_s": round(first, 3),
                "rerun_s": round(again, 3),
                "rerun_hits": hits,
                "rerun_ms_per_run": round(again / args.points * 1000, 3),
                "speedup": round(first / again, 1),
                "target_speedup": 50.0,
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--stages", default="2,3", help="comma-separated stage counts")
    parser.add_argument("--max-concurrent", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    anyio.run(main, args, backend=args.backend)
