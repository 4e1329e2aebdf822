"""Per-stage orchestration overhead of the supervised runtime, as JSON lines.

Measures a 5-stage pipeline of no-op async stages through ``run_async`` and through
``Runtime.submit`` with 1 and 1,000 concurrent runs, in microseconds per stage, against
two baselines measured in the same process (``submit_1_timed_stages``: the same with a
timeout on every stage; ``submit_1_timed_transient``: a timeout and ``restart="transient"``
on every stage, the shape a model call has):

(a) a bare anyio run of 5 awaited no-op coroutines;
(b) the same with a ``fail_after`` scope and a msgspec msgpack encode+decode of the
    Context per stage: the floor for a supervised, message-passing stage.

Usage: ``python bench/overhead.py [--backend trio|asyncio] [--runs N] [--rounds N]``;
every figure is measured ``--rounds`` times (default 3; within a round the sequential
paths run in interleaved slices) and the medians are printed (the ratios are medians of
each round's ratio). Times are this process's CPU time, so load from other processes on
a shared machine does not skew a path against its baselines.
Targets: per-stage overhead of the runtime <= 3x baseline (b); a timed stage with
``restart="transient"`` <= 1.5x baseline (b).

``context_1mb_read_stage_marginal`` is the data path: what one more stage costs when the
Context holds a 1 MB numpy array stored by reference (assigned once by the run's first
stage, then read), from runs of 1 and 9 reading stages, with the small-Context per-stage
figure (``submit_1``) beside it; skipped without numpy.

Two more lines split ``submit_1_timed_transient`` in its parts, from runs of 1 and 9 such
stages: ``timed_transient_stage_marginal`` (what one more timed, transient stage costs)
and ``run_fixed_cost_per_stage_of_5`` (admission, the run's task, its handle, its
first and last events and ``result()``, spread over 5 stages); the two add up to it.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
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


_ARRAY: list[Any] = []


def one_mb_array() -> Any:
    """The 1 MB float64 array the data path assigns (numpy imported on first use)."""
    if not _ARRAY:
        import numpy as np

        _ARRAY.append(np.arange(131_072, dtype="float64"))
    return _ARRAY[0]


@ca.stage("assign_1mb")
async def assign_1mb(ctx: Context, opts: Any) -> Context:
    return ctx.assign("X", one_mb_array())


@ca.stage("read_1mb")
async def read_1mb(ctx: Context, opts: Any) -> Context:
    if ctx.assigns["X"].shape != (131_072,):
        raise AssertionError("the array did not come back")
    return ctx


def make_registry() -> Registry:
    reg = Registry()
    reg.register(noop)
    reg.register(assign_1mb)
    reg.register(read_1mb)
    return reg


def data_experiment(reads: int) -> Experiment:
    """A stage assigning a 1 MB array (stored as a blob), then ``reads`` stages reading it."""
    return Experiment(
        id=f"bench_data_{reads}",
        pipeline=[StageDef(name="assign_1mb"), *[StageDef(name="read_1mb")] * reads],
    )


DATA_1 = data_experiment(1)
DATA_9 = data_experiment(9)


EXPERIMENT = Experiment(id="bench", pipeline=[StageDef(name="noop") for _ in range(STAGES)])
# The same with a timeout on every stage: each run then talks to its stage actor in a
# task of its own over memory streams (the supervisor watches the deadline).
TIMED = Experiment(
    id="bench_timed", pipeline=[StageDef(name="noop", timeout=60) for _ in range(STAGES)]
)


def timed_transient(stages: int) -> Experiment:
    """``stages`` no-op stages, each with a timeout and ``restart="transient"``."""
    return Experiment(
        id=f"bench_timed_transient_{stages}",
        pipeline=[StageDef(name="noop", timeout=60, restart="transient") for _ in range(stages)],
    )


TIMED_TRANSIENT = timed_transient(STAGES)
# A run's cost is a fixed part (admission, its task, its handle, its first and last
# events) and a part per stage; 1- and 9-stage runs of the same shape separate the two.
TIMED_TRANSIENT_1 = timed_transient(1)
TIMED_TRANSIENT_9 = timed_transient(9)


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


#: The bench's clock: this process's CPU time, so that other processes competing for a
#: shared machine's cores stretch neither the paths nor their baselines.
clock = time.process_time


def settle() -> None:
    """Collect, then freeze what survives, before a timed slice.

    A full pass of the cyclic collector walks every long-lived object (the runtime keeps
    10,000 finished handles): tens of ms that land in whichever slice crosses the
    threshold, so a change that shifts allocation counts moved seconds between paths.
    Frozen objects are not walked again; each slice pays only for what it allocates.
    """
    gc.collect()
    gc.freeze()


async def timed(n: int, fn: Callable[[], Awaitable[Any]]) -> float:
    settle()
    t0 = clock()
    for _ in range(n):
        await fn()
    return clock() - t0


async def timed_concurrent(n: int, fn: Callable[[], Awaitable[Any]]) -> float:
    settle()
    t0 = clock()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(fn)
    return clock() - t0


#: Sequential paths are timed in this many interleaved slices per round, so a burst of
#: load lands on every path alike.
SLICES = 10


async def one_round(runs: int, reg: Registry, ctx: Context) -> list[dict[str, Any]]:
    """Measure every path once; return one line per path."""

    async def via_run_async() -> None:
        await ca.run_async(EXPERIMENT, registry=reg)

    async with ca.open_runtime(registry=reg) as rt:

        def submitting(exp: Experiment) -> Callable[[], Awaitable[None]]:
            async def one_submit() -> None:
                h = await rt.submit(exp)
                await h.result()

            return one_submit

        paths: list[Callable[[], Awaitable[Any]]] = [
            bare_run,
            lambda: floor_run(ctx),
            via_run_async,
            submitting(EXPERIMENT),
            submitting(TIMED),
            submitting(TIMED_TRANSIENT),
            submitting(TIMED_TRANSIENT_1),
            submitting(TIMED_TRANSIENT_9),
        ]
        totals = [0.0] * len(paths)
        per_slice = max(1, runs // SLICES)
        runs = per_slice * SLICES
        # The data path (a 1 MB array in the Context) in the same slices, with fewer runs:
        # each run stores the array once (pickle, hash, dedup), which the marginal cancels.
        data_paths = [submitting(DATA_1), submitting(DATA_9)] if await data_path_works() else []
        data_totals = [0.0] * len(data_paths)
        data_per_slice = max(1, per_slice // 10)
        for _ in range(SLICES):
            for i, fn in enumerate(paths):
                totals[i] += await timed(per_slice, fn)
            for i, fn in enumerate(data_paths):
                data_totals[i] += await timed(data_per_slice, fn)
        bare, floor, t_run_async, t_submit_1, t_submit_1_timed, t_submit_1_transient = totals[:6]
        t_transient_1, t_transient_9 = totals[6:]
        conc = 1000
        t_submit_1000 = await timed_concurrent(conc, submitting(EXPERIMENT))
        bare_1000 = await timed_concurrent(conc, bare_run)
        floor_1000 = await timed_concurrent(conc, lambda: floor_run(ctx))

    def per_stage(total: float, n: int) -> float:
        return total / (n * STAGES) * 1e6

    base_a = per_stage(bare, runs)
    base_b = per_stage(floor, runs)
    # The marginal cost of one more timed, transient stage, and the fixed cost of a run
    # spread over the 5 stages of the runs above: what submit_1_timed_transient adds up to.
    marginal = (t_transient_9 - t_transient_1) / (8 * runs) * 1e6
    fixed = t_transient_1 / runs * 1e6 - marginal
    lines: list[dict[str, Any]] = []
    for name, total, n, a, b, target in [
        ("run_async", t_run_async, runs, base_a, base_b, 3.0),
        ("submit_1", t_submit_1, runs, base_a, base_b, 3.0),
        ("submit_1_timed_stages", t_submit_1_timed, runs, base_a, base_b, 3.0),
        ("submit_1_timed_transient", t_submit_1_transient, runs, base_a, base_b, 1.5),
        (
            "submit_1000_concurrent",
            t_submit_1000,
            conc,
            per_stage(bare_1000, conc),
            per_stage(floor_1000, conc),
            3.0,
        ),
    ]:
        us = per_stage(total, n)
        lines.append(
            {
                "bench": "overhead",
                "path": name,
                "us_per_stage": us,
                "baseline_a_us": a,
                "baseline_b_us": b,
                "ratio_vs_a": us / a,
                "ratio_vs_b": us / b,
                "target_ratio_vs_b": target,
            }
        )
    parts: list[tuple[str, float, float | None]] = [
        ("timed_transient_stage_marginal", marginal, 1.5),
        ("run_fixed_cost_per_stage_of_5", fixed / STAGES, None),
    ]
    if data_totals:
        # What one more stage reading a 1 MB array held by reference costs (decode: the
        # blob mapped and unpickled zero-copy; encode: recalled by identity), against
        # one stage of the small-Context path (submit_1).
        data_runs = data_per_slice * SLICES
        read_marginal = (data_totals[1] - data_totals[0]) / (8 * data_runs) * 1e6
        parts.append(("context_1mb_read_stage_marginal", read_marginal, None))
        small_us = per_stage(t_submit_1, runs)
    for name, us, goal in parts:
        lines.append(
            {
                "bench": "overhead",
                "path": name,
                "us_per_stage": us,
                "baseline_a_us": base_a,
                "baseline_b_us": base_b,
                "ratio_vs_a": us / base_a,
                "ratio_vs_b": us / base_b,
                "target_ratio_vs_b": goal,
            }
        )
    if data_totals:
        lines[-1]["small_context_us_per_stage"] = small_us
        lines[-1]["ratio_vs_small_context"] = lines[-1]["us_per_stage"] / small_us
    return lines


#: Set by ``--no-data-path`` (to compare with a build that has no data codec).
SKIP_DATA_PATH: list[bool] = []


async def data_path_works() -> bool:
    """Whether this build carries a numpy array in the Context (else skip the data path)."""
    if SKIP_DATA_PATH:
        return False
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    try:
        await ca.run_async(DATA_1, registry=make_registry())
    except ca.StageFailed:  # a version without the data codec: EncodeError
        return False
    return True


async def main(runs: int, rounds: int = 3) -> list[dict[str, Any]]:
    reg = make_registry()
    ctx = Context.new(EXPERIMENT, run_id="r")
    # warm-up
    await timed(50, bare_run)
    await timed(50, lambda: floor_run(ctx))
    await ca.run_async(EXPERIMENT, registry=reg)
    try:
        samples = [await one_round(runs, reg, ctx) for _ in range(max(1, rounds))]
    finally:
        gc.unfreeze()
    results: list[dict[str, Any]] = []
    for lines in zip(*samples, strict=True):

        def med(field: str, lines: tuple[dict[str, Any], ...] = lines) -> float:
            return float(statistics.median(line[field] for line in lines))

        results.append(
            {
                **lines[0],
                "statistic": f"median of {len(lines)} rounds",
                "us_per_stage": round(med("us_per_stage"), 2),
                "baseline_a_us": round(med("baseline_a_us"), 3),
                "baseline_b_us": round(med("baseline_b_us"), 3),
                "ratio_vs_a": round(med("ratio_vs_a"), 1),
                "ratio_vs_b": round(med("ratio_vs_b"), 2),
                **(
                    {
                        "small_context_us_per_stage": round(med("small_context_us_per_stage"), 2),
                        "ratio_vs_small_context": round(med("ratio_vs_small_context"), 2),
                    }
                    if "ratio_vs_small_context" in lines[0]
                    else {}
                ),
            }
        )
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("trio", "asyncio"), default=None)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians reported)")
    parser.add_argument(
        "--no-data-path", action="store_true", help="skip context_1mb_read_stage_marginal"
    )
    args = parser.parse_args()
    if args.no_data_path:
        SKIP_DATA_PATH.append(True)
    for backend in [args.backend] if args.backend else ["trio", "asyncio"]:
        for line in anyio.run(main, args.runs, args.rounds, backend=backend):
            print(json.dumps({"backend": backend, **line}), flush=True)


if __name__ == "__main__":
    cli()
