"""Many concurrent runs in one process: throughput, memory per run and GC share, as JSON lines.

Runs N (default 10,000) concurrent 5-stage runs whose stages each ``await anyio.sleep(0)``
through ``Runtime.submit``, and, in the same process, N bare anyio tasks of the same
shape (5 awaits of ``anyio.sleep(0)``). Reports runs/s, peak RSS growth, memory per run
(peak traced Python allocations / N, via tracemalloc in a separate pass), the share of
wall time spent in garbage collection, and failures. Each backend runs in a fresh
subprocess so peak RSS is not shared between them.

Usage: ``python bench/concurrency.py [--runs N] [--rounds N] [--backend trio|asyncio]``;
each figure is measured ``--rounds`` times (default 3) and the ratios use the medians.
Times (wall time of a batch, time in the GC) are this process's CPU time, so load from
other processes on a shared machine does not skew a path against its baselines.
Targets: zero failures, >= 0.35x the bare anyio throughput, <= 2.5x its memory per run,
GC <= 30% of the time.

Also measured (``gc_census``): how many GC-tracked objects each blocked run holds (runs
parked in their first stage on an event, ``gc.get_objects()`` counted against the
same process before), for the runtime with and without a timeout on its stages and
for bare anyio tasks, with the object types that make the difference.

Also measured, for reference: the same count of tasks of the same shape doing what
``overhead.py`` calls baseline (b), the floor for a supervised, message-passing stage
(a ``fail_after`` scope and a Context decode and encode per stage), with its ratio to
the bare runs and the runtime's ratio to it; and ``snapshot_tasks``, tasks passing the
Context as a snapshot the way an untimed run does (decode before each stage's await,
mark complete and encode after it, no scope), which is what message passing alone costs.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import anyio

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, RunStatus, StageDef
from crucible_actors._core._encoding import decode_context_with, encode_context

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

STAGES = 5


@ca.stage("yield")
async def yield_stage(ctx: Context, opts: Any) -> Context:
    await anyio.sleep(0)  # noqa: ASYNC115 - the benchmark shape the issue fixes
    return ctx


EXPERIMENT = Experiment(id="bench", pipeline=[StageDef(name="yield") for _ in range(STAGES)])


async def bare_run(done: list[int]) -> None:
    for _ in range(STAGES):
        await anyio.sleep(0)  # noqa: ASYNC115 - the benchmark shape the issue fixes
    done.append(1)


async def floor_run(done: list[int]) -> None:
    """The same shape with what overhead.py calls baseline (b), the floor for a
    supervised, message-passing stage: a ``fail_after`` scope and a msgpack decode and
    encode of the Context around each stage's await."""
    snapshot = encode_context(Context.new(EXPERIMENT, run_id="floor"))
    for _ in range(STAGES):
        with anyio.fail_after(60):
            ctx = decode_context_with(snapshot, EXPERIMENT)
            await anyio.sleep(0)  # noqa: ASYNC115 - the benchmark shape the issue fixes
            snapshot = encode_context(ctx)
    done.append(1)


#: The bench's clock: this process's CPU time (see the module docstring).
clock = time.process_time


def _gc_timer() -> tuple[Callable[[str, dict[str, Any]], None], list[float]]:
    total = [0.0]
    start = [0.0]

    def cb(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            start[0] = clock()
        else:
            total[0] += clock() - start[0]

    return cb, total


async def runtime_batch(n: int) -> tuple[float, int]:
    reg = Registry()
    reg.register(yield_stage)
    t0 = clock()
    async with ca.open_runtime(registry=reg, keep_finished=n) as rt:
        handles = [await rt.submit(EXPERIMENT) for _ in range(n)]
        await rt.wait_idle()
    elapsed = clock() - t0
    failures = sum(1 for h in handles if h.status is not RunStatus.COMPLETED)
    return elapsed, failures


async def _tasks_batch(n: int, fn: Callable[[list[int]], Awaitable[None]]) -> tuple[float, int]:
    done: list[int] = []
    t0 = clock()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(fn, done)
    return clock() - t0, n - len(done)


async def bare_batch(n: int) -> tuple[float, int]:
    return await _tasks_batch(n, bare_run)


async def floor_batch(n: int) -> tuple[float, int]:
    return await _tasks_batch(n, floor_run)


async def snapshot_run(done: list[int]) -> None:
    """The same shape passing the Context as a snapshot the way an untimed run does:
    decoded before each stage's await, marked complete and encoded after it, no scope."""
    snapshot = encode_context(Context.new(EXPERIMENT, run_id="snapshot"))
    for _ in range(STAGES):
        ctx = decode_context_with(snapshot, EXPERIMENT)
        await anyio.sleep(0)  # noqa: ASYNC115 - the benchmark shape the issue fixes
        snapshot = encode_context(ctx.mark_stage_complete("yield"))
    done.append(1)


async def snapshot_batch(n: int) -> tuple[float, int]:
    return await _tasks_batch(n, snapshot_run)


def measure(
    name: str, fn: Callable[[int], Awaitable[tuple[float, int]]], n: int, backend: str
) -> dict[str, Any]:
    gc.collect()
    cb, gc_total = _gc_timer()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gc.callbacks.append(cb)
    try:
        elapsed, failures = anyio.run(fn, n, backend=backend)
    finally:
        gc.callbacks.remove(cb)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gc.collect()
    tracemalloc.start()
    anyio.run(fn, n, backend=backend)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "path": name,
        "runs": n,
        "failures": failures,
        "seconds": round(elapsed, 3),
        "runs_per_s": round(n / elapsed, 1),
        "peak_rss_growth_mib": round((rss1 - rss0) / 1024, 1),
        "bytes_per_run": round(peak / n),
        "gc_share": round(gc_total[0] / elapsed, 4),
    }


def _tracked() -> collections.Counter[str]:
    gc.collect()
    return collections.Counter(
        type(o).__qualname__
        + ("" if type(o).__module__ == "builtins" else f" ({type(o).__module__.split('.')[0]})")
        for o in gc.get_objects()
    )


async def census(n: int) -> list[dict[str, Any]]:
    """GC-tracked objects per blocked run: bare tasks and runs parked on one event."""
    gate = anyio.Event()

    @ca.stage("parked")
    async def parked(ctx: Context, opts: Any) -> Context:
        await gate.wait()
        return ctx

    async def bare_parked() -> None:
        await gate.wait()

    reg = Registry()
    reg.register(parked)
    counts: dict[str, collections.Counter[str]] = {}
    before = _tracked()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(bare_parked)
        await anyio.sleep(0.01)
        counts["bare_anyio"] = _tracked() - before
        gate.set()
    for name, timeout in (("runtime_submit", None), ("runtime_submit_timed", 60.0)):
        gate = anyio.Event()
        exp = Experiment(id="census", pipeline=[StageDef(name="parked", timeout=timeout)] * 5)
        async with ca.open_runtime(registry=reg, keep_finished=1) as rt:
            before = _tracked()
            for _ in range(n):
                await rt.submit(exp)
            await anyio.sleep(0.01)
            counts[name] = _tracked() - before
            gate.set()
    bare = counts["bare_anyio"]
    lines = []
    for name, count in counts.items():
        extra = count - bare
        lines.append(
            {
                "path": "gc_census",
                "of": name,
                "runs": n,
                "tracked_objects_per_run": round(count.total() / n, 1),
                "beyond_bare_by_type": {
                    t: round(c / n, 2) for t, c in extra.most_common() if c >= n // 2
                },
            }
        )
    return lines


def child(backend: str, n: int, rounds: int) -> None:
    for line in anyio.run(census, min(n, 2000), backend=backend):
        print(json.dumps({"bench": "concurrency", "backend": backend, **line}), flush=True)
    samples: dict[str, list[dict[str, Any]]] = {
        "bare": [],
        "floor": [],
        "snapshot": [],
        "runtime": [],
    }
    for number in range(1, max(1, rounds) + 1):
        for key, name, fn in (
            ("bare", "bare_anyio", bare_batch),
            ("floor", "floor_b_tasks", floor_batch),
            ("snapshot", "snapshot_tasks", snapshot_batch),
            ("runtime", "runtime_submit", runtime_batch),
        ):
            line = measure(name, fn, n, backend)
            samples[key].append(line)
            print(
                json.dumps({"bench": "concurrency", "backend": backend, "round": number, **line}),
                flush=True,
            )

    def med(key: str, field: str) -> float:
        return float(statistics.median(line[field] for line in samples[key]))

    print(
        json.dumps(
            {
                "bench": "concurrency",
                "backend": backend,
                "path": "ratios",
                "statistic": f"median of {len(samples['bare'])} rounds",
                "runtime_runs_per_s": med("runtime", "runs_per_s"),
                "bare_runs_per_s": med("bare", "runs_per_s"),
                "throughput_vs_bare": round(
                    med("runtime", "runs_per_s") / med("bare", "runs_per_s"), 3
                ),
                "memory_per_run_vs_bare": round(
                    med("runtime", "bytes_per_run") / med("bare", "bytes_per_run"), 2
                ),
                "target_throughput_vs_bare": 0.35,
                "target_memory_vs_bare": 2.5,
                "floor_b_throughput_vs_bare": round(
                    med("floor", "runs_per_s") / med("bare", "runs_per_s"), 3
                ),
                "throughput_vs_floor_b": round(
                    med("runtime", "runs_per_s") / med("floor", "runs_per_s"), 3
                ),
                "snapshot_throughput_vs_bare": round(
                    med("snapshot", "runs_per_s") / med("bare", "runs_per_s"), 3
                ),
                "snapshot_gc_share": med("snapshot", "gc_share"),
                "runtime_gc_share": med("runtime", "gc_share"),
                "bare_gc_share": med("bare", "gc_share"),
                "target_gc_share": 0.3,
                "failures": sum(int(line["failures"]) for line in samples["runtime"]),
            }
        ),
        flush=True,
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--backend", choices=("trio", "asyncio"), default=None)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians reported)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.backend, args.runs, args.rounds)
        return
    for backend in [args.backend] if args.backend else ["trio", "asyncio"]:
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--backend",
                backend,
                "--runs",
                str(args.runs),
                "--rounds",
                str(args.rounds),
            ],
            check=True,
        )


if __name__ == "__main__":
    cli()
