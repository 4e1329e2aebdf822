"""What runtime metrics cost per stage, as JSON lines.

Runs a 5-stage pipeline of no-op async stages through one runtime, ``--runs`` runs one
after another, in interleaved rounds: without metrics (the baseline, measured in the same
process: no telemetry handler is attached, the run loop builds no event payloads) and with
``crucible_actors.metrics.instrument`` on an SDK ``MeterProvider`` with an in-memory
reader (every stage start/stop/attempt recorded on OpenTelemetry instruments), and with a
no-op telemetry handler on every event (what the run loop's event payloads cost alone).
Prints the median microseconds per stage of each and the ratios to the baseline.

Usage: ``python bench/metrics.py [--backend trio|asyncio] [--runs N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from typing import Any

import anyio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef, metrics, telemetry

STAGES = 5


@ca.stage("noop")
async def noop(ctx: Context, opts: Any) -> Context:
    return ctx


EXPERIMENT = Experiment(id="bench", pipeline=[StageDef(name="noop") for _ in range(STAGES)])


async def _per_stage_us(rt: ca.Runtime, runs: int) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        handle = await rt.submit(EXPERIMENT)
        await handle.result()
    return (time.perf_counter() - start) / (runs * STAGES) * 1e6


async def main(runs: int, rounds: int) -> list[dict[str, Any]]:
    reg = Registry()
    reg.register(noop)
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    off: list[float] = []
    on: list[float] = []
    noop_handler: list[float] = []
    async with ca.open_runtime(registry=reg) as rt:
        await _per_stage_us(rt, 50)  # warm-up
        for _ in range(rounds):
            off.append(await _per_stage_us(rt, runs))
            with metrics.instrument(provider):
                on.append(await _per_stage_us(rt, runs))
            telemetry.attach("bench.noop", telemetry.EVENTS, lambda *_: None)
            try:
                noop_handler.append(await _per_stage_us(rt, runs))
            finally:
                telemetry.detach("bench.noop")
    with contextlib.suppress(Exception):
        provider.shutdown()
    base, with_metrics = statistics.median(off), statistics.median(on)
    events_only = statistics.median(noop_handler)
    return [
        {
            "bench": "metrics",
            "figure": "submit_1_per_stage_us",
            "baseline_no_metrics_us": round(base, 2),
            "with_metrics_us": round(with_metrics, 2),
            "ratio": round(with_metrics / base, 3),
            "noop_handler_us": round(events_only, 2),
            "noop_handler_ratio": round(events_only / base, 3),
            "runs": runs,
            "rounds": rounds,
        }
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="trio", choices=["trio", "asyncio"])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for line in anyio.run(main, args.runs, args.rounds, backend=args.backend):
        print(json.dumps({**line, "backend": args.backend}))
