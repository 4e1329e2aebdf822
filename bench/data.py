"""Large values in the Context: persisted runs over arrays, frames and lists, as JSON lines.

Every figure is printed beside a floor measured in the same process, with the ratio and
the target of issue 22. Each persisted run uses a fresh embedded SQLite store in a temp
directory (blobs beside it, in ``x.db.blobs``), at the store's default durability
(``process``: nothing is fsynced; ``--durability power`` fsyncs the store and the floors'
files alike). Times are wall clock (disk writes are part of the cost), medians of
``--rounds`` interleaved rounds (the floor first in even rounds, second in odd ones);
the machine is shared and its disk writes vary by 2x from one write to the next, so
single samples vary.

Scenarios (``--only NAME``, repeatable):

- ``array``: a 5-stage persisted run over a 100 MB float64 array passed in as
  ``assigns["X"]`` (each stage reads one element and records a metric) against the floor:
  the same five plain function calls on the array plus one ``np.save`` of it to the same
  disk (target <= 1.5x). Also the store's growth: the first run against the array's
  size (target <= 1.1x) and an identical second run (target <= 1 MB).
- ``frame``: the same over a 1,000,000-row pandas DataFrame (int64, two float64 and a
  categorical column); floor: five calls plus one Arrow IPC (Feather v2, uncompressed)
  write of it (target <= 1.5x); store growth as above.
- ``dicts``: stage 1 builds a 1,000,000-row list of small dicts, four stages read it;
  floor: the same five plain Python calls (building the list is most of it; target
  <= 5x). A list of dicts is pickled and unpickled whole at every stage boundary (it
  cannot be mapped), so this figure shows what that costs. Store growth against the
  list's msgpack size.
- ``concurrent``: 100 concurrent runs reading one 500 MB array (every run's stage touches
  every page of it, all runs holding it at once), in a child process; its peak resident
  memory (``VmHWM`` in ``/proc/self/status``) against the array's size (target <= 2x).
  The array enters the store once through a producer run; the 100 runs get the
  read-only array it returned. A watchdog ends the child if its memory passes 6x the
  array (the machine is shared).
- ``array_1gb``: the ``array`` figure over a 1 GB array: the run completes, ratio to its
  floor (target <= 1.5x).

The small-Context per-stage path is ``bench/overhead.py``'s. ``--quick`` runs every
scenario on small sizes (10 MB arrays, 100,000 rows, 20 runs over 50 MB) in one round,
for a CI smoke test; its ratios are dominated by fixed costs and are not the figures.

Usage: ``python bench/data.py [--quick] [--only NAME ...] [--rounds N]
[--durability process|power] [--backend trio|asyncio]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef

if TYPE_CHECKING:
    from collections.abc import Callable

MB = 1_000_000
SCENARIOS = ("array", "frame", "dicts", "concurrent", "array_1gb")


# -- sizes ------------------------------------------------------------------------------


def sizes(quick: bool) -> dict[str, int]:
    """The data sizes of every scenario: the issue's, or small ones with ``--quick``."""
    if quick:
        return {
            "array": 10 * MB,
            "rows": 100_000,
            "dicts": 100_000,
            "concurrent_runs": 20,
            "concurrent": 50 * MB,
            "array_1gb": 50 * MB,
        }
    return {
        "array": 100 * MB,
        "rows": 1_000_000,
        "dicts": 1_000_000,
        "concurrent_runs": 100,
        "concurrent": 500 * MB,
        "array_1gb": 1000 * MB,
    }


# -- helpers ----------------------------------------------------------------------------


def dir_bytes(path: Path) -> int:
    """Apparent size of every file under ``path`` (the SQLite file, its WAL, the blobs)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def remove_floor_files(tmp: Path, stem: str) -> None:
    """Delete the files a floor wrote (``stem``, ``stem.npy``)."""
    for p in tmp.glob(f"{stem}*"):
        p.unlink()


def fsync_file(path: Path) -> None:
    """Flush ``path`` to the disk (the floors at ``--durability power``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def status_bytes(field: str) -> int:
    """``field`` (``VmHWM``, ``VmRSS``) of ``/proc/self/status``, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} line; this needs Linux")


def figure(
    name: str, value: float, floor: float, target: float, unit: str, **extra: Any
) -> dict[str, Any]:
    """One JSON line: the figure, its floor, the ratio and the target (a ratio bound)."""
    ratio = value / floor if floor else float("inf")
    return {
        "bench": "data",
        "name": name,
        "value": round(value, 4),
        "floor": round(floor, 4),
        "unit": unit,
        "ratio": round(ratio, 3),
        "target": f"<= {target}x",
        "met": ratio <= target,
        **extra,
    }


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


# -- the 5-stage persisted run ------------------------------------------------------------


def five_stage_experiment(
    exp_id: str, read: Callable[[Any, int], Any], build: Callable[[], Any] | None = None
) -> tuple[Experiment, Registry]:
    """Five stages that each ``read(value, i)`` and record it; stage 1 may ``build`` it."""

    def make_stage(i: int) -> Any:
        async def stage(ctx: Context, opts: Any) -> Context:
            if i == 0 and build is not None:
                ctx = ctx.assign("data", build())
            return ctx.put_metric(f"m{i}", read(ctx.assigns["data"], i))

        stage.__name__ = stage.__qualname__ = f"read{i}"
        return ca.stage(f"read{i}")(stage)

    stages = [make_stage(i) for i in range(5)]
    registry = Registry()
    for s in stages:
        registry.register(s)
    pipeline = [StageDef(name=f"read{i}") for i in range(5)]
    return Experiment(id=exp_id, pipeline=pipeline), registry


async def persisted_run(
    tmp: Path,
    exp: Experiment,
    registry: Registry,
    assigns: dict[str, Any] | None,
    durability: str,
    again: bool = False,
) -> tuple[float, int, int | None, Context]:
    """One persisted run in a fresh store under ``tmp``: (seconds, growth, growth again, ctx).

    The store is opened before the clock starts. ``again`` runs the identical run a second
    time (not timed) and measures the store's growth for it too.
    """
    store_dir = Path(tempfile.mkdtemp(dir=tmp))
    url = f"sqlite:///{store_dir}/x.db?durability={durability}"
    async with ca.open_runtime(registry=registry, store=url) as rt:
        empty = dir_bytes(store_dir)
        t0 = time.perf_counter()
        handle = await rt.submit(exp, assigns=assigns)
        ctx = await handle.result()
        seconds = time.perf_counter() - t0
        first = dir_bytes(store_dir) - empty
        second = None
        if again:
            handle = await rt.submit(exp, assigns=assigns)
            await handle.result()
            second = dir_bytes(store_dir) - empty - first
    _rmtree(store_dir)
    return seconds, first, second, ctx


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


async def run_vs_floor(
    args: argparse.Namespace,
    tmp: Path,
    exp: Experiment,
    registry: Registry,
    assigns: dict[str, Any] | None,
    floor: Callable[[Path], None],
) -> tuple[float, float, int, int, list[float], list[float], Context]:
    """Medians of ``--rounds`` interleaved rounds of the run and its floor, and the growth."""
    runs: list[float] = []
    floors: list[float] = []
    first = second = 0
    ctx: Context | None = None
    for r in range(args.rounds):
        # Odd rounds run the floor second: writing to the same disk, neither goes first always.
        for side in ("floor", "run") if r % 2 == 0 else ("run", "floor"):
            if side == "floor":
                t0 = time.perf_counter()
                floor(tmp / f"floor{r}")
                floors.append(time.perf_counter() - t0)
                remove_floor_files(tmp, f"floor{r}")
                continue
            seconds, grew, grew_again, ctx = await persisted_run(
                tmp, exp, registry, assigns, args.durability, again=r == 0
            )
            runs.append(seconds)
            if r == 0:
                first, second = grew, grew_again or 0
    assert ctx is not None
    return statistics.median(runs), statistics.median(floors), first, second, runs, floors, ctx


def array_read(x: Any, i: int) -> float:
    return float(x[i * 7])


async def scenario_array(args: argparse.Namespace, tmp: Path, nbytes: int, name: str) -> None:
    import numpy as np

    x = np.random.default_rng(0).random(nbytes // 8)
    exp, registry = five_stage_experiment(f"bench_data_{name}", array_read)

    def floor(path: Path) -> None:
        for i in range(5):
            array_read(x, i)
        np.save(path, x)
        if args.durability == "power":
            fsync_file(path.with_suffix(".npy"))

    run_s, floor_s, first, second, runs, floors, ctx = await run_vs_floor(
        args, tmp, exp, registry, {"data": x}, floor
    )
    got = ctx.assigns["data"]
    extra = {
        "data_bytes": x.nbytes,
        "rounds_s": [round(s, 4) for s in runs],
        "floor_rounds_s": [round(s, 4) for s in floors],
        "floor_is": "5 plain calls + np.save",
        "returned": f"{type(got).__module__}.{type(got).__name__}"
        + (f" writeable={got.flags.writeable}" if hasattr(got, "flags") else ""),
    }
    emit(figure(f"array_{x.nbytes // MB}mb_5_stages_s", run_s, floor_s, 1.5, "s", **extra))
    if name == "array":
        emit_store_bytes(name, first, second, x.nbytes)


def emit_store_bytes(name: str, first: int, second: int, data_bytes: int) -> None:
    emit(
        figure(
            f"store_bytes_first_run_{name}",
            first,
            data_bytes,
            1.1,
            "bytes",
            floor_is="the data's size",
        )
    )
    line = figure(
        f"store_bytes_second_run_{name}", second, MB, 1.0, "bytes", floor_is="1 MB (the target)"
    )
    emit(line)


def make_frame(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "x": rng.random(rows),
            "y": rng.normal(size=rows),
            "label": pd.Categorical(rng.choice(["cat", "dog", "bird", "fish"], rows)),
        }
    )


def frame_read(df: Any, i: int) -> float:
    return float(df["x"].iat[i * 7])


async def scenario_frame(args: argparse.Namespace, tmp: Path, rows: int) -> None:
    import pyarrow.feather as feather

    df = make_frame(rows)
    nbytes = int(df.memory_usage(index=True, deep=True).sum())
    exp, registry = five_stage_experiment("bench_data_frame", frame_read)

    def floor(path: Path) -> None:
        for i in range(5):
            frame_read(df, i)
        feather.write_feather(df, str(path), compression="uncompressed")
        if args.durability == "power":
            fsync_file(path)

    run_s, floor_s, first, second, runs, floors, ctx = await run_vs_floor(
        args, tmp, exp, registry, {"data": df}, floor
    )
    got = ctx.assigns["data"]
    extra = {
        "data_bytes": nbytes,
        "rows": rows,
        "rounds_s": [round(s, 4) for s in runs],
        "floor_rounds_s": [round(s, 4) for s in floors],
        "floor_is": "5 plain calls + Arrow IPC (Feather v2) write",
        "returned": f"{type(got).__module__}.{type(got).__name__}",
    }
    emit(figure(f"frame_{rows}_rows_5_stages_s", run_s, floor_s, 1.5, "s", **extra))
    emit_store_bytes("frame", first, second, nbytes)


def build_dicts(rows: int) -> list[dict[str, Any]]:
    """Rows like an evaluation set's: an id, a short text, a score and a label (~70 B each)."""
    return [
        {"id": i, "text": f"example {i:07d}", "score": i / rows, "label": ("no", "yes")[i % 2]}
        for i in range(rows)
    ]


def dicts_read(rows: list[dict[str, Any]], i: int) -> float:
    return float(rows[i * 7]["score"])


async def scenario_dicts(args: argparse.Namespace, tmp: Path, rows: int) -> None:
    import msgspec

    exp, registry = five_stage_experiment(
        "bench_data_dicts", dicts_read, build=lambda: build_dicts(rows)
    )

    def floor(path: Path) -> None:
        data = build_dicts(rows)
        for i in range(5):
            dicts_read(data, i)

    run_s, floor_s, first, second, runs, floors, _ = await run_vs_floor(
        args, tmp, exp, registry, None, floor
    )
    nbytes = len(msgspec.msgpack.encode(build_dicts(rows)))
    extra = {
        "data_bytes": nbytes,
        "rows": rows,
        "rounds_s": [round(s, 4) for s in runs],
        "floor_rounds_s": [round(s, 4) for s in floors],
        "floor_is": "5 plain Python calls (stage 1 builds the list)",
    }
    emit(figure(f"dicts_{rows}_rows_5_stages_s", run_s, floor_s, 5.0, "s", **extra))
    emit_store_bytes("dicts", first, second, nbytes)
    emit(boundary_costs(build_dicts(rows), floor_s))


def boundary_costs(value: Any, floor_s: float) -> dict[str, Any]:
    """What one stage boundary costs for ``value`` with each codec: what 5x would take.

    A 5-stage run crosses 5 boundaries (the initial snapshot and one after each stage but
    the last is checkpointed; each stage decodes its input). At <= 5x the floor, the run
    may spend 4x the floor on them: ``budget_per_boundary_s``.
    """
    import pickle

    import msgspec

    from crucible_actors._core.persistence._blobs import digest_of

    def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out

    dump_s, pickled = timed(lambda: pickle.dumps(value, protocol=5))
    load_s, _ = timed(lambda: pickle.loads(pickled))
    enc_s, packed = timed(lambda: msgspec.msgpack.encode(value))
    dec_s, _ = timed(lambda: msgspec.msgpack.decode(packed))
    hash_s, _ = timed(lambda: digest_of([pickled]))
    return {
        "bench": "data",
        "name": "dicts_boundary_costs_s",
        "pickle_dumps_s": round(dump_s, 4),
        "pickle_loads_s": round(load_s, 4),
        "pickle_bytes": len(pickled),
        "msgpack_encode_s": round(enc_s, 4),
        "msgpack_decode_s": round(dec_s, 4),
        "msgpack_bytes": len(packed),
        "digest_s": round(hash_s, 4),
        "pickle_boundary_s": round(dump_s + load_s + hash_s, 4),
        "msgpack_boundary_s": round(enc_s + dec_s + hash_s, 4),
        "budget_per_boundary_s": round(4 * floor_s / 5, 4),
    }


# -- 100 concurrent runs over one array (in a child process) ------------------------------


def scenario_concurrent(args: argparse.Namespace, nbytes: int, runs: int) -> None:
    cmd = [sys.executable, __file__, "--child-concurrent", str(nbytes), str(runs)]
    cmd += ["--durability", args.durability, "--backend", args.backend]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        emit(
            {
                "bench": "data",
                "name": f"concurrent_{runs}_runs_peak_rss",
                "error": f"child exited {proc.returncode}",
                "stderr": proc.stderr.strip().splitlines()[-5:],
            }
        )
        return
    emit(json.loads(proc.stdout.strip().splitlines()[-1]))


async def child_concurrent(nbytes: int, runs: int, durability: str) -> dict[str, Any]:
    """Produce the array through a run, then ``runs`` runs read it at once; the peak RSS."""
    import numpy as np

    started = anyio.Event()
    waiting = 0
    touched: list[float] = []

    @ca.stage("make")
    async def make(ctx: Context, opts: Any) -> Context:
        return ctx.assign("X", np.random.default_rng(0).random(nbytes // 8))

    @ca.stage("touch")
    async def touch(ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("first", float(ctx.assigns["X"][0]))

    @ca.stage("read_all")
    async def read_all(ctx: Context, opts: Any) -> Context:
        nonlocal waiting
        x = ctx.assigns["X"]
        waiting += 1
        if waiting == runs:
            started.set()
        await started.wait()  # every run holds its X now
        touched.append(float(x[::512].sum()))  # one float64 in every 4 KiB page
        return ctx.put_metric("sum", touched[-1])

    registry = Registry()
    for s in (make, touch, read_all):
        registry.register(s)
    cap = 6 * nbytes + status_bytes("VmRSS")

    async def watchdog() -> None:
        while True:
            rss = status_bytes("VmRSS")
            if rss > cap:
                print(f"watchdog: RSS {rss} passed {cap} bytes; stopping", file=sys.stderr)
                os._exit(3)
            await anyio.sleep(0.05)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/x.db?durability={durability}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(watchdog)
            async with ca.open_runtime(
                registry=registry, store=url, max_concurrent_runs=runs + 1
            ) as rt:
                baseline = status_bytes("VmRSS")
                producer = Experiment(
                    id="produce", pipeline=[StageDef(name="make"), StageDef(name="touch")]
                )
                ctx = await (await rt.submit(producer)).result()
                x = ctx.assigns["X"]
                del ctx
                readonly = not x.flags.writeable
                reader = Experiment(id="read", pipeline=[StageDef(name="read_all")])
                t0 = time.perf_counter()
                handles = [await rt.submit(reader, assigns={"X": x}) for _ in range(runs)]
                for h in handles:
                    await h.result()
                seconds = time.perf_counter() - t0
                blobs = dir_bytes(Path(f"{tmp}/x.db.blobs"))
            tg.cancel_scope.cancel()
    peak = status_bytes("VmHWM")
    return figure(
        f"concurrent_{runs}_runs_{nbytes // MB}mb_peak_rss_bytes",
        peak,
        nbytes,
        2.0,
        "bytes",
        floor_is="the array's size",
        baseline_rss_bytes=baseline,
        above_baseline_bytes=peak - baseline,
        runs=runs,
        readers_s=round(seconds, 3),
        producer_result_read_only=readonly,
        blob_dir_bytes=blobs,
        all_equal=len(set(touched)) == 1 and len(touched) == runs,
    )


# -- main -------------------------------------------------------------------------------


NEEDS = {"frame": ("numpy", "pandas", "pyarrow")}


def missing(scenario: str) -> list[str]:
    """The packages ``scenario`` needs that are not installed (numpy for every one)."""
    import importlib.util

    return [m for m in NEEDS.get(scenario, ("numpy",)) if importlib.util.find_spec(m) is None]


async def main(args: argparse.Namespace) -> None:
    size = sizes(args.quick)
    only = set(args.only or SCENARIOS)
    for scenario in sorted(only):
        if absent := missing(scenario):
            only.discard(scenario)
            emit({"bench": "data", "scenario": scenario, "skipped": f"needs {', '.join(absent)}"})
    with tempfile.TemporaryDirectory(prefix="bench-data-") as name:
        tmp = Path(name)
        if "array" in only:
            await scenario_array(args, tmp, size["array"], "array")
        if "frame" in only:
            await scenario_frame(args, tmp, size["rows"])
        if "dicts" in only:
            await scenario_dicts(args, tmp, size["dicts"])
        if "concurrent" in only:
            scenario_concurrent(args, size["concurrent"], size["concurrent_runs"])
        if "array_1gb" in only:
            await scenario_array(args, tmp, size["array_1gb"], "array_1gb")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (CI)")
    parser.add_argument("--only", action="append", choices=SCENARIOS, metavar="NAME")
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--durability", choices=("process", "power"), default="process")
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--child-concurrent", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args


if __name__ == "__main__":
    options = parse()
    if options.child_concurrent:
        nbytes, runs = options.child_concurrent
        line = anyio.run(
            child_concurrent, nbytes, runs, options.durability, backend=options.backend
        )
        print(json.dumps(line), flush=True)
    else:
        anyio.run(main, options, backend=options.backend)
