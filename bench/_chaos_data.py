"""Chaos scenario ``data-sigkill``: SIGKILL and resume with blob-sized values (issue 22).

Like ``sigkill`` in ``bench/chaos.py`` (whose helpers it uses: the resume child, the store
state, the PostgreSQL schemas), but every run carries numpy arrays above the blob
threshold: stage ``s0`` makes ``X`` (1, 2 or 4 MB of float64, seeded; about half the runs
share their seed with others, so identical content is stored once and re-used by
concurrent runs), ``s1`` adds ``Y = X[::-1]`` (a new blob), ``s2``-``s4`` read both back
and check them. A process running ``--data-runs`` such runs (SQLite; then PostgreSQL with
a blob cache in the trial's folder, unless ``--no-postgres``) is SIGKILLed at a seeded
point, a fresh process resumes the runs, and the store is checked:

- ``lost``: acknowledged runs not completed (``lost_never_stored``: of those, runs the
  store has no row for); ``wrong_results``: completed runs whose
  final Context (decoded from the store, blobs read and verified) does not hold the
  expected arrays, or whose stages recorded a failed check;
- ``missing_blobs`` / ``corrupt_blobs``: final Contexts naming a blob the store lacks,
  and stored blobs that do not hash to their digest (every blob is read);
- ``temp_files_after_kill``: partial blob files the kill left; ``orphan_temp_files``:
  those still there after ``Store.gc()`` (must be 0); after the collection the final
  Contexts are decoded again (``missing_after_gc``).

Decoding a stored final Context uses
``crucible_actors._core.persistence._persistence.decode_checkpoint`` (no public API
returns a stored run's Context); everything else is public.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    import argparse

HERE = Path(__file__).resolve()
STAGES = 5
SIZES = (131_072, 262_144, 524_288)  # float64 elements: 1, 2 and 4 MB

STAGES_PY = textwrap.dedent(
    '''
    """Stages of bench/_chaos_data.py (written to its scratch folder)."""

    import os

    import anyio
    import numpy as np

    from crucible_actors import stage


    def expected(seed, n):
        return np.random.default_rng(seed).random(n)


    def _log(ctx, opts):
        line = f"{ctx.run_id} {ctx.telemetry_context['stage']} {os.getpid()}\\n".encode()
        fd = os.open(opts["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


    @stage("data_make")
    async def data_make(ctx, opts):
        await anyio.sleep(opts["delay"])
        _log(ctx, opts)
        x = expected(opts["seed"], opts["n"])
        return ctx.assign("X", x).put_metric(ctx.telemetry_context["stage"], 1)


    @stage("data_flip")
    async def data_flip(ctx, opts):
        await anyio.sleep(opts["delay"])
        _log(ctx, opts)
        y = ctx.assigns["X"][::-1].copy()
        return ctx.assign("Y", y).put_metric(ctx.telemetry_context["stage"], 1)


    @stage("data_check")
    async def data_check(ctx, opts):
        await anyio.sleep(opts["delay"])
        _log(ctx, opts)
        want = expected(opts["seed"], opts["n"])
        ok = np.array_equal(ctx.assigns["X"], want) and np.array_equal(
            ctx.assigns["Y"], want[::-1]
        )
        return ctx.put_metric(ctx.telemetry_context["stage"], 1 if ok else 0)
    '''
)


def plan(seed: int, runs: int) -> list[tuple[int, int, list[float]]]:
    """(array seed, elements, stage delays) of each run; the parent re-derives it."""
    rng = random.Random(seed)
    out = []
    for _ in range(runs):
        shared = rng.random() < 0.5
        array_seed = rng.randrange(4) if shared else rng.randrange(1_000, 2**31)
        n = rng.choice(SIZES) if not shared else SIZES[array_seed % len(SIZES)]
        out.append((array_seed, n, [round(rng.uniform(0.0, 0.03), 4) for _ in range(STAGES)]))
    return out


def _pipeline(log: str, array_seed: int, n: int, delays: list[float]) -> list[Any]:
    from crucible_actors import StageDef

    names = ["data_make", "data_flip", *["data_check"] * (STAGES - 2)]
    return [
        StageDef(
            name=f"s{k}",
            stage=f"chaos_data_stages:{name}",
            options={"log": log, "delay": delays[k], "seed": array_seed, "n": n},
        )
        for k, name in enumerate(names)
    ]


async def child_batch(url: str, runs: int, log: str, acks: str, seed: int) -> None:
    """Submit ``runs`` persisted runs, writing each run id to ``acks`` once acknowledged."""
    from crucible_actors import Experiment, open_runtime

    async with open_runtime(store=url) as rt:
        handles = []
        fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        for i, (array_seed, n, delays) in enumerate(plan(seed, runs)):
            exp = Experiment(id="chaos-data", pipeline=_pipeline(log, array_seed, n, delays))
            handles.append(await rt.submit(exp, run_id=f"run-{i:05d}"))
            os.write(fd, f"run-{i:05d}\n".encode())
        for handle in handles:
            await handle.wait()


def _temp_files(url: str, trial: Path) -> int:
    if url.startswith("sqlite"):
        tmp = Path(url.removeprefix("sqlite:///") + ".blobs") / "tmp"
        return len(list(tmp.iterdir())) if tmp.is_dir() else 0
    cache = trial / "blob-cache"
    return sum(1 for _ in cache.rglob("*.tmp")) if cache.is_dir() else 0


async def check_store(
    url: str, expected: dict[str, tuple[int, int]], *, collect: bool
) -> dict[str, Any]:
    """Decode each completed run's final Context and compare its arrays; read every blob.

    With ``collect``, run ``Store.gc()`` first.
    """
    import numpy as np

    from crucible_actors._core.persistence._persistence import decode_checkpoint
    from crucible_actors.errors import BlobCorrupt, BlobMissing
    from crucible_actors.store import open_store

    wrong = missing = corrupt = 0
    async with open_store(url) as store:
        if collect:
            await store.gc()
        for run_id, (array_seed, n) in expected.items():
            checkpoint = await store.load_checkpoint(run_id)
            if checkpoint is None:
                wrong += 1
                continue
            try:
                ctx = decode_checkpoint(checkpoint, store=url, blobs=store.blobs)
            except BlobMissing:
                missing += 1
                continue
            except BlobCorrupt:
                corrupt += 1
                continue
            want = np.random.default_rng(array_seed).random(n)
            x, y = ctx.assigns.get("X"), ctx.assigns.get("Y")
            if (
                x is None
                or y is None
                or not (np.array_equal(x, want) and np.array_equal(y, want[::-1]))
            ):
                wrong += 1
        blobs = store.blobs
        count = 0
        for info in list(blobs.list()):
            count += 1
            try:
                blobs.open(info.digest)
            except BlobCorrupt:
                corrupt += 1
            except BlobMissing:  # deleted between list and open: nothing else runs here
                missing += 1
    return {"wrong": wrong, "missing": missing, "corrupt": corrupt, "blobs": count}


def data_trial(
    scratch: Path, url: str, runs: int, rng: random.Random, backend: str
) -> dict[str, Any]:
    import chaos

    trial = scratch / f"data-trial-{uuid.uuid4().hex[:8]}"
    trial.mkdir()
    if url.startswith("postgresql"):
        url = f"{url}&blob_cache={trial / 'blob-cache'}"
        from crucible_actors.store import open_store

        async def migrate() -> None:
            async with open_store(url, migrate=True):
                pass

        anyio.run(migrate)
    log, acks = trial / "stages.log", trial / "acks"
    total = runs * (STAGES + 1)
    # Killed while stages run (and write blobs): a kill among the acknowledgements, before
    # the runs' rows exist, is ``sigkill``'s (and durable submission's) business.
    target = rng.randrange(runs + 1, total)
    seed = rng.randrange(2**31)
    cmd = [sys.executable, str(HERE), "_data_batch", backend, url, str(runs), str(log)]
    proc = subprocess.Popen([*cmd, str(acks), str(seed)], cwd=scratch, env=chaos.child_env(scratch))
    while proc.poll() is None:
        if chaos.line_count(acks) + chaos.line_count(log) >= target:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    acked = acks.read_text().split() if acks.exists() else []
    before = anyio.run(chaos.store_state, url, acked)["runs"]
    temp_after_kill = _temp_files(url, trial)
    stale = 0.5
    time.sleep(stale + 0.2)
    out = subprocess.run(
        [sys.executable, str(chaos.HERE), "_resume", backend, url, str(stale)],
        cwd=scratch,
        env=chaos.child_env(scratch),
        capture_output=True,
        check=True,
        text=True,
    )
    resumed = json.loads(out.stdout.strip().splitlines()[-1])
    if out.stderr.strip():
        print(out.stderr[-2000:], file=sys.stderr)  # the resuming process's complaints
    after = anyio.run(chaos.store_state, url, acked)
    by_resumer: set[tuple[str, str]] = set()
    executed: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in log.read_text().splitlines() if log.exists() else []:
        run_id, stage_name, pid = line.split()
        executed[(run_id, stage_name)] += 1
        if int(pid) == resumed["pid"]:
            by_resumer.add((run_id, stage_name))
    duplicated = sum(1 for r in acked for s in before[r][1] if (r, s) in by_resumer)
    planned = plan(seed, runs)
    completed: dict[str, tuple[int, int]] = {}
    lost = non_terminal = wrong = never_stored = 0
    for run_id in acked:
        status, done, metrics = after["runs"][run_id]
        if status != "completed":
            lost += 1
        if status is None:
            never_stored += 1
        if status not in chaos.TERMINAL:
            non_terminal += 1
        if status == "completed":
            array_seed, n, _ = planned[int(run_id.removeprefix("run-"))]
            completed[run_id] = (array_seed, n)
            if done != {f"s{k}" for k in range(STAGES)} or metrics != {
                f"s{k}": 1 for k in range(STAGES)
            }:
                wrong += 1
    checked = anyio.run(lambda: check_store(url, completed, collect=False))
    collected = anyio.run(lambda: check_store(url, completed, collect=True))
    return {
        "killed": killed,
        "kill_point": round(target / total, 3),
        "acked": len(acked),
        "in_flight": sum(1 for r in acked if before[r][0] == "running"),
        "resumed": resumed["resumed"],
        "lost": lost,
        "never_stored": never_stored,
        "wrong": wrong + checked["wrong"],
        "duplicated": duplicated,
        "non_terminal": non_terminal,
        "missing": checked["missing"],
        "corrupt": checked["corrupt"] + collected["corrupt"],
        "missing_after_gc": collected["missing"] + collected["wrong"],
        "blobs": checked["blobs"],
        "blobs_after_gc": collected["blobs"],
        "temp_after_kill": temp_after_kill,
        "orphan_temp": _temp_files(url, trial),
        "leaked_owners": after["owners"],
        "leaked_processes": len(chaos.children_of(os.getpid())),
    }


def scenario_data_sigkill(args: argparse.Namespace, scratch: Path) -> None:
    """SIGKILL and resume with arrays above the blob threshold, on SQLite and PostgreSQL."""
    import chaos

    (scratch / "chaos_data_stages.py").write_text(STAGES_PY)
    stores = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    runs = getattr(args, "data_runs", 24)
    trials_sqlite = getattr(args, "data_trials", 6)
    for kind in stores:
        rng = random.Random(f"{args.seed}-data-sigkill-{kind}")
        trials = trials_sqlite if kind == "sqlite" else max(1, trials_sqlite // 2)
        started = time.perf_counter()
        results = []
        for t in range(trials):
            schema = None
            if kind == "sqlite":
                url = f"sqlite:///{scratch}/data-kill-{t}.db"
            else:
                url, schema = chaos.pg_schema_url(args.pg_url)
            try:
                results.append(data_trial(scratch, url, runs, rng, args.backend))
            finally:
                if schema is not None:
                    chaos.pg_drop(args.pg_url, schema)

        def total(key: str, results: list[dict[str, Any]] = results) -> int:
            return sum(r[key] for r in results)

        chaos.emit(
            "data_sigkill_resume",
            store=kind,
            backend=args.backend,
            trials=trials,
            runs=total("acked"),
            array_mb=[n * 8 // 2**20 for n in SIZES],
            in_flight_at_kill=total("in_flight"),
            resumed=total("resumed"),
            lost=total("lost"),
            lost_never_stored=total("never_stored"),
            wrong_results=total("wrong"),
            duplicated_completed_stages=total("duplicated"),
            non_terminal=total("non_terminal"),
            missing_blobs=total("missing"),
            corrupt_blobs=total("corrupt"),
            missing_after_gc=total("missing_after_gc"),
            blobs=total("blobs"),
            blobs_after_gc=total("blobs_after_gc"),
            temp_files_after_kill=total("temp_after_kill"),
            orphan_temp_files=total("orphan_temp"),
            leaked_owners=total("leaked_owners"),
            leaked_processes=total("leaked_processes"),
            kills=sum(r["killed"] for r in results),
            kill_points=sorted(r["kill_point"] for r in results),
            wall_s=round(time.perf_counter() - started, 2),
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The scenario's options, added to ``bench/chaos.py``'s parser."""
    parser.add_argument("--data-runs", type=int, default=24, help="runs per data-sigkill trial")
    parser.add_argument("--data-trials", type=int, default=6, help="data-sigkill SQLite trials")


if __name__ == "__main__":
    command, backend, *rest = sys.argv[1:]
    if command != "_data_batch":
        raise SystemExit(f"unknown child command {command!r}")
    url, n_runs, log_path, acks_path, batch_seed = rest
    anyio.run(child_batch, url, int(n_runs), log_path, acks_path, int(batch_seed), backend=backend)
