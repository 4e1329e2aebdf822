"""Chaos scenarios of ``bench/chaos.py``: a kill right after an acknowledgement.

An acknowledged run must never be lost: ``Runtime.submit()`` returns, and ``serve``
answers 202, only once the run's row is committed. Two scenarios check it with a real
SIGKILL, on SQLite and PostgreSQL, at kill points spread from the very first
acknowledgement of a batch to its last, over several seeds:

- ``ack-kill``: a process submits ``--ack-runs`` runs from ``--ack-concurrency``
  concurrent submitters and SIGKILLs itself right after the k-th ``submit()`` returned
  (no await in between);
- ``ack-202``: ``crucible-actors serve`` is SIGKILLed right after the k-th HTTP 202
  reached a client posting runs with ``--ack-concurrency`` connections;
- ``sweep-kill``: a process submits a sweep of ``--sweep-points`` 5-stage points with
  ``max_concurrent=--sweep-concurrency`` and SIGKILLs itself right after
  ``submit_sweep`` returned (kill point 0: most points never started), or once k stage
  executions are logged, k spread over the whole sweep; every point is acknowledged.

Then a fresh process opens ``open_runtime(on_start="resume")`` on the store and finishes
the runs. Each (scenario, store) prints one JSON line: ``lost`` (acknowledged runs not
completed at the end), ``duplicated_completed_stages`` (stages the store had recorded
completed that ran again), ``non_terminal``, ``disagreements`` (acknowledged runs the
store did not know right after the kill: the caller was told "accepted", the store said
"no such run") and ``wrong_results``. All must be 0.

The helpers (stages, store inspection, ``Served``, the resume child) are ``chaos.py``'s,
imported lazily: ``chaos.py`` imports this module to register the scenarios. This file
is also the child process of ``ack-kill`` (``python _chaos_ack.py _ackbatch ...``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    import argparse

HERE = Path(__file__).resolve()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this module's options to chaos.py's parser."""
    parser.add_argument("--ack-runs", type=int, default=40, help="runs per ack-kill/202 trial")
    parser.add_argument("--ack-trials", type=int, default=4, help="kill points per seed")
    parser.add_argument("--ack-seeds", type=int, default=3, help="seeds (from --seed on)")
    parser.add_argument("--ack-concurrency", type=int, default=8)
    parser.add_argument("--sweep-points", type=int, default=40, help="points per sweep-kill")
    parser.add_argument(
        "--sweep-concurrency", type=int, default=4, help="max_concurrent of sweep-kill's sweep"
    )


def kill_points(runs: int, trials: int, rng: random.Random) -> list[int]:
    """``trials`` acknowledgement counts to kill at, one in each slice of the batch."""
    return [
        min(runs, 1 + int((t + rng.random()) * runs / trials)) if t else 1 + rng.randrange(2)
        for t in range(trials)
    ]


# -- child: submit, kill yourself right after the k-th acknowledgement ---------------------


async def child_ack_batch(
    url: str, runs: int, concurrency: int, kill_at: int, acks: str, log: str, seed: int
) -> None:
    """Submit ``runs`` runs concurrently; SIGKILL this process after ``kill_at`` acks."""
    import chaos as base

    from crucible_actors import Experiment, open_runtime

    rng = random.Random(seed)
    exps = [Experiment(id="ack", pipeline=base._pipeline(log, rng)) for _ in range(runs)]
    fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    acked = 0

    async def submitter(indices: range) -> None:
        nonlocal acked
        for i in indices:
            await rt.submit(exps[i], run_id=f"run-{i:05d}")
            os.write(fd, f"run-{i:05d}\n".encode())
            acked += 1
            if acked >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # right after the ack: no await

    async with open_runtime(store=url) as rt, anyio.create_task_group() as tg:
        for c in range(concurrency):
            tg.start_soon(submitter, range(c, runs, concurrency))


SWEEP_STAGES_PY = """
\"\"\"Stages of bench/_chaos_ack.py's sweep-kill (written to the scratch folder).\"\"\"

import os

import anyio
import msgspec

from crucible_actors import stage


class StepOptions(msgspec.Struct):
    name: str
    log: str
    delay: float = 0.0
    x: int = 0


@stage("sweep_step", options=StepOptions)
async def step(ctx, opts):
    \"\"\"Sleep ``delay`` s, log ``run stage pid`` (one write), record a metric named
    after the stage.\"\"\"
    await anyio.sleep(opts.delay)
    fd = os.open(opts.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{ctx.run_id} {opts.name} {os.getpid()}\\n".encode())
    finally:
        os.close(fd)
    return ctx.put_metric(opts.name, 1)
"""


async def child_sweep(
    url: str, points: int, limit: int, kill_at: int, acks: str, log: str, seed: int
) -> None:
    """Submit a sweep; SIGKILL this process right after it is acknowledged (``kill_at``
    0) or once ``kill_at`` stage executions are logged."""
    import chaos as base

    from crucible_actors import Experiment, StageDef, open_runtime

    rng = random.Random(seed)
    pipeline = [
        StageDef(
            name=f"s{k}",
            stage="sweep_chaos_stages:step",
            options={"name": f"s{k}", "log": log, "delay": round(rng.uniform(0.0, 0.02), 4)},
        )
        for k in range(base.STAGES)
    ]
    exp = Experiment(id="sweep-ack", pipeline=pipeline, sweep={"s0.x": list(range(points))})
    async with open_runtime(store=url) as rt:
        sweep = await rt.submit_sweep(exp, max_concurrent=limit)
        with open(acks, "w") as f:  # noqa: ASYNC230 - nothing may run between ack and kill
            f.write("\n".join(p.run_id for p in sweep.points))
        if kill_at == 0:
            os.kill(os.getpid(), signal.SIGKILL)  # right after the ack: no await
        while base.line_count(Path(log)) < kill_at:  # noqa: ASYNC110 - the stages write it
            await anyio.sleep(0.002)
        os.kill(os.getpid(), signal.SIGKILL)


# -- the parent side -----------------------------------------------------------------------


def _migrate(url: str) -> None:
    from crucible_actors.store import open_store

    async def migrate() -> None:
        async with open_store(url, migrate=True):
            pass

    anyio.run(migrate)


def _settle(
    scratch: Path, url: str, acked: list[str], log: Path, backend: str, stages: int
) -> dict[str, Any]:
    """After the kill: compare the store with the acks, resume in a fresh process, count."""
    import chaos as base

    before = anyio.run(base.store_state, url, acked)["runs"]
    disagreements = sum(1 for r in acked if before[r][0] is None)
    # SQLite sees the dead pid at once (default thresholds). PostgreSQL judges owners by
    # their heartbeat only until owners hold server-side leases: let the dead one age.
    stale = 0.5 if url.startswith("postgresql") else 60.0
    if url.startswith("postgresql"):
        time.sleep(stale + 0.2)
    out = subprocess.run(
        [sys.executable, str(base.HERE), "_resume", backend, url, str(stale)],
        cwd=scratch,
        env=base.child_env(scratch),
        capture_output=True,
        check=True,
        text=True,
    )
    resumed = json.loads(out.stdout.strip().splitlines()[-1])
    after = anyio.run(base.store_state, url, acked)["runs"]
    by_resumer: set[tuple[str, str]] = set()
    for line in log.read_text().splitlines() if log.exists() else []:
        run_id, stage_name, pid = line.split()
        if int(pid) == resumed["pid"]:
            by_resumer.add((run_id, stage_name))
    want_stages = {f"s{k}" for k in range(stages)}
    want_metrics = {f"s{k}": 1 for k in range(stages)}
    lost = non_terminal = wrong = 0
    for run_id in acked:
        status, done, metrics = after[run_id]
        lost += status != "completed"
        non_terminal += status not in base.TERMINAL
        wrong += status == "completed" and (done != want_stages or metrics != want_metrics)
    return {
        "acked": len(acked),
        "resumed": resumed["resumed"],
        "disagreements": disagreements,
        "lost": lost,
        "non_terminal": non_terminal,
        "wrong": wrong,
        "duplicated": sum(1 for r in acked for s in before[r][1] if (r, s) in by_resumer),
    }


def ack_kill_trial(
    scratch: Path, url: str, runs: int, concurrency: int, kill_at: int, seed: int, backend: str
) -> dict[str, Any]:
    import chaos as base

    trial = scratch / f"ack-{uuid.uuid4().hex[:8]}"
    trial.mkdir()
    log, acks = trial / "stages.log", trial / "acks"
    if url.startswith("postgresql"):
        _migrate(url)
    cmd = [sys.executable, str(HERE), "_ackbatch", backend, url, str(runs), str(concurrency)]
    cmd += [str(kill_at), str(acks), str(log), str(seed)]
    proc = subprocess.run(cmd, cwd=scratch, env=base.child_env(scratch), check=False)
    acked = acks.read_text().split() if acks.exists() else []
    result = _settle(scratch, url, acked, log, backend, base.STAGES)
    result["killed"] = proc.returncode == -signal.SIGKILL
    return result


async def _post_until(
    base_url: str, runs: int, concurrency: int, kill_at: int, log: Path, seed: int, kill: Any
) -> list[str]:
    """Post ``runs`` runs over ``concurrency`` connections; call ``kill`` at the k-th 202."""
    import chaos as base
    import httpx

    rng = random.Random(seed)
    acked: list[str] = []
    killed = False
    bodies = [
        {
            "experiment": {
                "id": "ack-202",
                "pipeline": [
                    {"name": f"s{k}", "options": {"delay": rng.uniform(0, 0.02), "log": str(log)}}
                    for k in range(base.SERVE_STAGES)  # the stages crucible.toml names
                ],
            }
        }
        for _ in range(runs)
    ]

    async def poster(client: httpx.AsyncClient, indices: range) -> None:
        nonlocal killed
        for i in indices:
            if killed:
                return
            try:
                response = await client.post(f"{base_url}/api/runs", json=bodies[i])
            except httpx.TransportError:
                return  # the server is gone: this one was never acknowledged
            if response.status_code != 202:
                raise SystemExit(f"serve answered {response.status_code}: {response.text}")
            if not killed:
                acked.append(response.json()["run_id"])
                if len(acked) >= kill_at:
                    kill()  # right after the 202 reached the client
                    killed = True

    async with (
        httpx.AsyncClient(timeout=30) as client,
        anyio.create_task_group() as tg,
    ):
        for c in range(concurrency):
            tg.start_soon(poster, client, range(c, runs, concurrency))
    return acked


def ack_202_trial(
    scratch: Path, url: str, runs: int, concurrency: int, kill_at: int, seed: int, backend: str
) -> dict[str, Any]:
    import chaos as base

    trial = scratch / f"ack202-{uuid.uuid4().hex[:8]}"
    trial.mkdir()
    log = trial / "stages.log"
    if url.startswith("postgresql"):
        _migrate(url)
    server = base.Served(scratch, url, backend)
    try:
        acked = anyio.run(
            _post_until,
            server.base,
            runs,
            concurrency,
            kill_at,
            log,
            seed,
            lambda: server.proc.send_signal(signal.SIGKILL),
        )
    finally:
        code = server.signal(signal.SIGKILL)
    result = _settle(scratch, url, acked, log, backend, base.SERVE_STAGES)
    result["killed"] = code == -signal.SIGKILL
    return result


def sweep_kill_trial(
    scratch: Path, url: str, points: int, limit: int, kill_at: int, seed: int, backend: str
) -> dict[str, Any]:
    import chaos as base

    (scratch / "sweep_chaos_stages.py").write_text(SWEEP_STAGES_PY)
    trial = scratch / f"sweep-{uuid.uuid4().hex[:8]}"
    trial.mkdir()
    log, acks = trial / "stages.log", trial / "acks"
    if url.startswith("postgresql"):
        _migrate(url)
    cmd = [sys.executable, str(HERE), "_sweepkill", backend, url, str(points), str(limit)]
    cmd += [str(kill_at), str(acks), str(log), str(seed)]
    proc = subprocess.run(cmd, cwd=scratch, env=base.child_env(scratch), check=False)
    acked = acks.read_text().split() if acks.exists() else []
    result = _settle(scratch, url, acked, log, backend, base.STAGES)
    result["killed"] = proc.returncode == -signal.SIGKILL
    return result


def _scenario(name: str, trial_fn: Any, args: argparse.Namespace, scratch: Path) -> None:
    import chaos as base

    stores = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    for kind in stores:
        started = time.perf_counter()
        results: list[dict[str, Any]] = []
        points: list[float] = []
        seeds = [args.seed + i for i in range(args.ack_seeds)]
        sweep = name == "sweep_kill_after_submit"
        # A sweep's kill points count logged stage executions, 0 being the ack itself.
        span = args.sweep_points * 5 if sweep else args.ack_runs
        for seed in seeds:
            rng = random.Random(f"{seed}-{name}-{kind}")
            kills = kill_points(span, args.ack_trials, rng)
            for kill_at in [0, *kills[1:]] if sweep else kills:
                schema = None
                if kind == "sqlite":
                    url = f"sqlite:///{scratch}/{name}-{uuid.uuid4().hex[:8]}.db"
                else:
                    url, schema = base.pg_schema_url(args.pg_url)
                size, width = (
                    (args.sweep_points, args.sweep_concurrency)
                    if sweep
                    else (args.ack_runs, args.ack_concurrency)
                )
                try:
                    results.append(
                        trial_fn(
                            scratch,
                            url,
                            size,
                            width,
                            kill_at,
                            rng.randrange(2**31),
                            args.backend,
                        )
                    )
                finally:
                    if schema is not None:
                        base.pg_drop(args.pg_url, schema)
                points.append(round(kill_at / span, 3))
        base.emit(
            name,
            store=kind,
            backend=args.backend,
            seeds=seeds,
            trials=len(results),
            runs=sum(r["acked"] for r in results),
            lost=sum(r["lost"] for r in results),
            duplicated_completed_stages=sum(r["duplicated"] for r in results),
            non_terminal=sum(r["non_terminal"] for r in results),
            disagreements=sum(r["disagreements"] for r in results),
            wrong_results=sum(r["wrong"] for r in results),
            resumed=sum(r["resumed"] for r in results),
            kills=sum(r["killed"] for r in results),
            kill_points=sorted(points),
            wall_s=round(time.perf_counter() - started, 2),
        )


def scenario_ack_kill(args: argparse.Namespace, scratch: Path) -> None:
    """SIGKILL a library process right after the k-th ``submit()`` returned."""
    _scenario("ack_kill_after_submit", ack_kill_trial, args, scratch)


def scenario_ack_202(args: argparse.Namespace, scratch: Path) -> None:
    """SIGKILL ``serve`` right after the k-th 202 reached its client."""
    _scenario("ack_kill_after_202", ack_202_trial, args, scratch)


def scenario_sweep_kill(args: argparse.Namespace, scratch: Path) -> None:
    """SIGKILL a library process right after ``submit_sweep`` returned, or later."""
    _scenario("sweep_kill_after_submit", sweep_kill_trial, args, scratch)


#: The scenarios this module adds to chaos.py, by ``--only`` name.
SCENARIOS = {
    "ack-kill": scenario_ack_kill,
    "ack-202": scenario_ack_202,
    "sweep-kill": scenario_sweep_kill,
}


if __name__ == "__main__":
    command, backend, url, runs, concurrency, kill_at, acks, log, seed = sys.argv[1:]
    assert command in ("_ackbatch", "_sweepkill"), command
    anyio.run(
        child_sweep if command == "_sweepkill" else child_ack_batch,
        url,
        int(runs),
        int(concurrency),
        int(kill_at),
        acks,
        log,
        int(seed),
        backend=backend,
    )
