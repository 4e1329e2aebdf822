"""Executors: what running an attempt elsewhere costs, as JSON lines, against bare baselines.

Each figure is the *per-attempt* time a place of execution adds: a pipeline of ``K`` no-op
stages on that executor minus the same pipeline inline, divided by ``K``, against a bare
round trip of the same bytes (the Context snapshot of such a run) measured in the same
process:

- ``pool_vs_process_pool_executor``: the warm pool (``isolation="process"``) against
  ``concurrent.futures.ProcessPoolExecutor(1).submit(echo, payload).result()``
  (target <= 1.5x);
- ``ray_task_vs_bare``: ray tasks against ``ray.get(f.remote(payload))`` (target <= 1.3x);
- ``ray_actor_vs_bare``: a stateful stage on its actor against a bare actor method round
  trip (target <= 1.3x);
- ``ray_1000_runs``: 1,000 runs x 3 ray stages, runs/s against the same work as bare Ray
  tasks (1,000 concurrent chains of 3 tasks, each awaited before the next is submitted, as
  a run's stages are) (target >= 0.7x).

Ray is local (2 CPUs, no dashboard), started once. Rounds interleave the runtime and its
baseline; ratios come from the medians.

``--data MB`` measures instead what a large array in the Context costs an attempt
(issue 22; 1024 for the issue's 1 GB): a run on a SQLite store assigns ``X`` (MB of
float64) inline, then ``K`` stages on the executor each touch it and record when they
started. The time between consecutive stage starts (one whole stage: checkpoint,
dispatch, decode in the worker, run, reply) is compared with the same pipeline without
``X``, in the same process:

- ``data_pool_attempt``: a process-pool attempt with the array against a no-op one (target:
  <= 20 ms over); the first attempt, whose worker maps and checks the blob once, is
  reported apart;
- ``data_ray_attempt``: the same on Ray; the first attempt puts the blob in Ray's object
  store, the later ones must cost no transfer (``blob_puts`` stays 1).

Usage: ``python bench/executors.py [--backend trio|asyncio] [--rounds N] [--no-ray]
[--data MB]``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import msgspec.structs

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _executor_stages as st

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef
from crucible_actors._core import encode_context

K = 20


def registry() -> Registry:
    reg = Registry()
    reg.register(st.noop)
    reg.register(st.Loaded)
    reg.register(st.make_data)
    reg.register(st.stamp)
    return reg


def pipeline(isolation: str, name: str = "noop", k: int = K) -> Experiment:
    return Experiment(
        id=f"bench_{isolation}", pipeline=[StageDef(name=name, isolation=isolation)] * k
    )  # type: ignore[arg-type]


def payload() -> bytes:
    """The bytes an attempt of the benchmark pipeline carries (its Context snapshot)."""
    return encode_context(Context.new(pipeline("inline"), run_id="r" * 36))


def emit(name: str, **fields: Any) -> None:
    print(json.dumps({"bench": name, **fields}), flush=True)


async def per_run(exp: Experiment, runs: int, **runtime: Any) -> float:
    """Seconds per run of ``exp``, sequential runs, after one warm-up run."""
    async with ca.open_runtime(registry=registry(), **runtime) as rt:
        await (await rt.submit(exp)).result()
        t0 = time.perf_counter()
        for _ in range(runs):
            await (await rt.submit(exp)).result()
        return (time.perf_counter() - t0) / runs


def per_attempt(backend: str, exp: Experiment, runs: int, **runtime: Any) -> float:
    inline = anyio.run(per_run, pipeline("inline", k=len(exp.pipeline)), runs, backend=backend)
    other = anyio.run(lambda: per_run(exp, runs, **runtime), backend=backend)
    return (other - inline) / len(exp.pipeline)


def bare_process_pool(n: int) -> float:
    data = payload()
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        pool.submit(st.echo, data).result()
        t0 = time.perf_counter()
        for _ in range(n):
            pool.submit(st.echo, data).result()
        return (time.perf_counter() - t0) / n


def median_ratio(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    mine = statistics.median(p[0] for p in pairs)
    base = statistics.median(p[1] for p in pairs)
    return mine, base, mine / base


def bench_pool(backend: str, rounds: int) -> None:
    pairs = []
    for _ in range(rounds):
        pool = per_attempt(backend, pipeline("process"), 50, process_workers=1)
        pairs.append((pool, bare_process_pool(1000)))
    mine, base, ratio = median_ratio(pairs)
    emit(
        "pool_vs_process_pool_executor",
        backend=backend,
        pool_us_per_attempt=round(mine * 1e6, 1),
        bare_us_per_round_trip=round(base * 1e6, 1),
        ratio=round(ratio, 2),
        target="<= 1.5",
    )


def bare_ray_task(ray: Any, n: int) -> float:
    f = ray.remote(st.echo)
    data = payload()
    ray.get(f.remote(data))
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(f.remote(data))
    return (time.perf_counter() - t0) / n


def bare_ray_actor(ray: Any, n: int) -> float:
    actor = ray.remote(st.Echo).remote()
    data = payload()
    ray.get(actor.echo.remote(data))
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(actor.echo.remote(data))
    ray.kill(actor)
    return (time.perf_counter() - t0) / n


async def bare_ray_chains(ray: Any, runs: int, stages: int) -> float:
    f = ray.remote(st.echo)
    data = payload()

    async def chain() -> None:
        out = data
        for _ in range(stages):
            out = await f.remote(out)

    t0 = time.perf_counter()
    await asyncio.gather(*(chain() for _ in range(runs)))
    return runs / (time.perf_counter() - t0)


async def runtime_runs(runs: int, stages: int) -> float:
    exp = pipeline("ray", k=stages)
    async with ca.open_runtime(registry=registry()) as rt:
        await (await rt.submit(exp)).result()
        t0 = time.perf_counter()
        handles = [await rt.submit(exp) for _ in range(runs)]
        for h in handles:
            await h.result()
        return runs / (time.perf_counter() - t0)


def bench_ray(backend: str, rounds: int) -> None:
    import ray

    path = os.pathsep.join(p for p in sys.path if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    try:
        asyncio.run(bare_ray_chains(ray, 200, 3))  # warm Ray's worker pool up first
        tasks, actors, many = [], [], []
        for _ in range(rounds):
            tasks.append((per_attempt(backend, pipeline("ray"), 10), bare_ray_task(ray, 200)))
            actors.append(
                (per_attempt(backend, pipeline("ray", "loaded"), 10), bare_ray_actor(ray, 200))
            )
            many.append(
                (
                    1 / anyio.run(runtime_runs, 1000, 3, backend=backend),
                    1 / asyncio.run(bare_ray_chains(ray, 1000, 3)),
                )
            )
        for name, pairs in (("ray_task_vs_bare", tasks), ("ray_actor_vs_bare", actors)):
            mine, base, ratio = median_ratio(pairs)
            emit(
                name,
                backend=backend,
                runtime_us_per_attempt=round(mine * 1e6, 1),
                bare_us_per_round_trip=round(base * 1e6, 1),
                ratio=round(ratio, 2),
                target="<= 1.3",
            )
        mine, base, _ = median_ratio(many)
        emit(
            "ray_1000_runs",
            backend=backend,
            stages=3,
            runtime_runs_per_s=round(1 / mine, 1),
            bare_runs_per_s=round(1 / base, 1),
            ratio=round(base / mine, 2),
            target=">= 0.7",
        )
    finally:
        ray.shutdown()


async def stage_gaps(
    tmp: str, isolation: str, mb: int, k: int, **runtime: Any
) -> tuple[list[float], dict[str, Any]]:
    """Seconds between the starts of consecutive ``stamp`` stages of one run (and stats)."""
    exp = Experiment(
        id=f"data_{isolation}",
        pipeline=[
            StageDef(name="make_data", options={"mb": mb}),
            *[StageDef(name="stamp", isolation=isolation) for i in range(k)],
        ],
    )  # type: ignore[arg-type]
    url = f"sqlite:///{tmp}/{isolation}_{mb}.db"
    warm = Experiment(id="warm", pipeline=[StageDef(name="stamp", isolation=isolation)] * 2)  # type: ignore[arg-type]
    async with ca.open_runtime(registry=registry(), store=url, **runtime) as rt:
        await (await rt.submit(warm)).result()  # workers started: not part of any gap
        ctx = await (await rt.submit(exp)).result()
        executor = rt.executors[isolation]
        stats = executor.statistics()
        found = stats if isinstance(stats, dict) else msgspec.structs.asdict(stats)
    stamps = ctx.get_metric("stamps")
    return [b - a for a, b in itertools.pairwise(stamps)], found


def bench_data(backend: str, mb: int, ray_too: bool) -> None:
    import tempfile

    k = 12
    places = [("process", {"process_workers": 1})]
    if ray_too:
        places.append(("ray", {}))
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        for isolation, runtime in places:
            if isolation == "ray":
                import ray

                path = os.pathsep.join(p for p in sys.path if p)
                ray.init(
                    num_cpus=2,
                    include_dashboard=False,
                    log_to_driver=False,
                    object_store_memory=(mb + 512) * 1024 * 1024,
                    runtime_env={"env_vars": {"PYTHONPATH": path}},
                )
            try:
                empty, _ = anyio.run(
                    lambda i=isolation, r=runtime: stage_gaps(tmp, i, 0, k, **r), backend=backend
                )
                full, stats = anyio.run(
                    lambda i=isolation, r=runtime: stage_gaps(tmp, i, mb, k, **r), backend=backend
                )
            finally:
                if isolation == "ray":
                    ray.shutdown()
            # Gap 0 runs from the end of make_data to the first attempt's start (on a warm
            # worker): storing the blob (hash, write), the checkpoint, then the worker
            # mapping and checking it (and Ray's put). Gaps 1.. are whole later stages:
            # the steady cost.
            base = statistics.median(empty[1:])
            steady = statistics.median(full[1:])
            fields: dict[str, Any] = {
                "backend": backend,
                "mb": mb,
                "noop_ms_per_attempt": round(base * 1e3, 2),
                "data_ms_per_attempt": round(steady * 1e3, 2),
                "over_ms": round((steady - base) * 1e3, 2),
                "max_later_data_gap_ms": round(max(full[1:]) * 1e3, 2),
                "store_and_first_attempt_ms": round(full[0] * 1e3, 1),
            }
            if isolation == "process":
                fields.update(
                    bytes_sent=stats["bytes_sent"],
                    bytes_received=stats["bytes_received"],
                    target="over_ms <= 20",
                )
                emit("data_pool_attempt", **fields)
            else:
                fields.update(blob_puts=stats["blob_puts"], target="blob_puts == 1")
                emit("data_ray_attempt", **fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray figures")
    parser.add_argument(
        "--data", type=int, metavar="MB", help="measure an MB-sized array's cost instead"
    )
    args = parser.parse_args()
    if args.data is not None:
        bench_data(args.backend, args.data, not args.no_ray)
        return
    bench_pool(args.backend, args.rounds)
    if not args.no_ray:
        bench_ray(args.backend, args.rounds)


if __name__ == "__main__":
    main()
