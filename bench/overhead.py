"""Per-stage orchestration overhead of the supervised runtime, as JSON lines.

Measures a 5-stage pipeline of no-op async stages through ``run_async`` and through
``Runtime.submit`` with 1 and 1,000 concurrent runs, in microseconds per stage, against
two baselines measured in the same process (``submit_1_timed_stages``: the same with a
timeout on every stage, so each attempt goes to an actor task over memory streams):

(a) a bare anyio run of 5 awaited no-op coroutines;
(b) the same with a ``fail_after`` scope and a msgspec msgpack encode+decode of the
    Context per stage: the floor for a supervised, message-passing stage.

Usage: ``python bench/overhead.py [--backend trio|asyncio] [--runs N]``.
Target: per-stage overhead of the runtime <= 3x baseline (b).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

STAGES = 5


@ca.stage("noop")
async def noop(ctx: Context, opts: Any) -> Context:
    return ctx


def make_registry() -> Registry:
    reg = Registry()
    reg.register(noop)
    return reg


EXPERIMENT = Experiment(id="bench", pipeline=[StageDef(name="noop") for _ in range(STAGES)])
# The same with a timeout on every stage: each run then talks to its stage actor in a
# task of its own over memory streams (the supervisor watches the deadline).
TIMED = Experiment(
    id="bench_timed", pipeline=[StageDef(name="noop", timeout=60) for _ in range(STAGES)]
)


async def _noop_coro() -> None:
    return None


async def bare_run() -> None:
    for _ in range(STAGES):
        await _noop_coro()


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(Context)


async def floor_run(ctx: Context) -> Context:
    for _ in range(STAGES):
        with anyio.fail_after(60):
            ctx = _dec.decode(_enc.encode(ctx))
            await _noop_coro()
    return ctx


async def timed(n: int, fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await fn()
    return time.perf_counter() - t0


async def timed_concurrent(n: int, fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(fn)
    return time.perf_counter() - t0


async def main(runs: int) -> list[dict[str, Any]]:
    reg = make_registry()
    ctx = Context.new(EXPERIMENT, run_id="r")
    results: list[dict[str, Any]] = []
    # warm-up
    await timed(50, bare_run)
    await timed(50, lambda: floor_run(ctx))
    await ca.run_async(EXPERIMENT, registry=reg)

    bare = await timed(runs, bare_run)
    floor = await timed(runs, lambda: floor_run(ctx))

    async def via_run_async() -> None:
        await ca.run_async(EXPERIMENT, registry=reg)

    t_run_async = await timed(runs, via_run_async)

    async with ca.open_runtime(registry=reg) as rt:

        async def one_submit() -> None:
            h = await rt.submit(EXPERIMENT)
            await h.result()

        t_submit_1 = await timed(runs, one_submit)

        async def one_timed_submit() -> None:
            h = await rt.submit(TIMED)
            await h.result()

        t_submit_1_timed = await timed(runs, one_timed_submit)
        conc = 1000
        t_submit_1000 = await timed_concurrent(conc, one_submit)
        bare_1000 = await timed_concurrent(conc, bare_run)
        floor_1000 = await timed_concurrent(conc, lambda: floor_run(ctx))

    def per_stage(total: float, n: int) -> float:
        return total / (n * STAGES) * 1e6

    base_a = per_stage(bare, runs)
    base_b = per_stage(floor, runs)
    for name, total, n, a, b in [
        ("run_async", t_run_async, runs, base_a, base_b),
        ("submit_1", t_submit_1, runs, base_a, base_b),
        ("submit_1_timed_stages", t_submit_1_timed, runs, base_a, base_b),
        (
            "submit_1000_concurrent",
            t_submit_1000,
            conc,
            per_stage(bare_1000, conc),
            per_stage(floor_1000, conc),
        ),
    ]:
        us = per_stage(total, n)
        results.append(
            {
                "bench": "overhead",
                "path": name,
                "us_per_stage": round(us, 2),
                "baseline_a_us": round(a, 3),
                "baseline_b_us": round(b, 3),
                "ratio_vs_a": round(us / a, 1),
                "ratio_vs_b": round(us / b, 2),
                "target_ratio_vs_b": 3.0,
            }
        )
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("trio", "asyncio"), default=None)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    for backend in [args.backend] if args.backend else ["trio", "asyncio"]:
        for line in anyio.run(main, args.runs, backend=backend):
            print(json.dumps({"backend": backend, **line}), flush=True)


if __name__ == "__main__":
    cli()
