"""Chaos scenarios: crashes, kills, faults under load and racing clients, with their figures.

Each scenario is bounded and seeded (``--seed``) and prints one JSON line: ``trials``,
``runs``, ``lost`` (acknowledged runs that did not end completed, or ended without the
outcome the scenario planned), ``duplicated_completed_stages`` (stages the store had
recorded as completed that ran again), ``non_terminal`` (runs still pending or running at
the end), ``leaked_tasks`` / ``leaked_threads`` / ``leaked_processes`` and ``wall_s``,
plus figures of its own. Only public APIs and subprocesses are used (``open_runtime``,
``crucible_actors.store``, ``crucible-actors serve`` over HTTP), so internal refactors do
not break it.

Scenarios (``--only NAME``, repeatable):

- ``sigkill``: a process runs ``--runs`` persisted 5-stage runs (SQLite; then PostgreSQL
  unless ``--no-postgres``) and is SIGKILLed at a seeded point spread uniformly over the
  batch (counted in acknowledged submissions plus executed stages); a fresh process opens
  ``open_runtime(on_start="resume")`` and finishes the runs. Repeated ``--trials`` times.
- ``serve-kill``: ``crucible-actors serve`` on a SQLite file runs ``--serve-runs`` 4-stage
  runs; SSE clients follow some of them (slower runs, still going when the server
  stops, so their streams cross the stop); the server is stopped mid-run by SIGTERM (a
  rolling restart: the runs still going are stored ``interrupted``), then (second trial)
  killed by SIGKILL, and restarted on the same store. Every run the API acknowledged must
  end completed (resumed by the restart; ``lost`` counts the others, ``cancelled_by_stop``
  those the stop cancelled), no stage the store recorded as completed before the restart
  may run again, and the SSE clients, reconnecting with ``Last-Event-ID``, must have seen
  exactly the run's events: none missed, none twice.
- ``faults``: ``--fault-runs`` concurrent runs with seeded faults (a stage raising, one
  hanging past its timeout, runs cancelled, ``os._exit`` inside a process-isolated stage,
  a store write failing once) in a fresh process per backend: every run terminal with its
  planned outcome, the same outcome counts on trio and asyncio, no task, thread or child
  process left after the runtime closed, and allocated memory blocks back near the start.
- ``ack-kill``, ``ack-202``, ``sweep-kill`` (``_chaos_ack.py``): SIGKILL right after the
  k-th ``submit()`` returned, right after ``serve``'s k-th 202, or right after
  ``submit_sweep`` returned (then later, over the sweep), over kill points from the
  start of the batch to its end and several seeds: no acknowledged run may be lost.
- ``data-sigkill``: ``sigkill`` with numpy arrays above the blob threshold in every run
  (``bench/_chaos_data.py``): no run lost or wrong, no blob missing or corrupt, no
  partial blob file left after ``gc``.
- ``pg-restart``, ``pg-outage``, ``full-disk``: store faults under load
  (``bench/_chaos_faults.py``; the PostgreSQL ones restart or stop the local cluster).
- ``idempotency``: ``--submissions`` concurrent HTTP submissions with one
  ``Idempotency-Key``: exactly one run, every response names it; then the same key with a
  different body gets the documented 422 ``IdempotencyKeyReused``.
- ``quick-restart``, ``serve-quick-restart``, ``second-replica``, ``clock-step``,
  ``starved-loop``: owner leases
  (``bench/_chaos_lease.py``, ``--lease-runs`` runs each; the kills spread over the
  batch by seed, ``--lease-trials`` x ``--lease-seeds``).

Usage: ``python bench/chaos.py [--seed N] [--trials N] [--runs N] [--only sigkill ...]``.
The defaults finish in a few minutes on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import _chaos_data
import _chaos_faults
import anyio
import httpx
from _chaos_ack import SCENARIOS as ACK_SCENARIOS
from _chaos_ack import add_arguments as add_ack_arguments

HERE = Path(__file__).resolve()
TERMINAL = {"completed", "failed", "cancelled", "interrupted"}
RUN_ENDED = {"run_completed", "run_failed", "run_cancelled", "run_interrupted"}
STAGES = 5

STAGES_PY = textwrap.dedent(
    '''
    """Stages of bench/chaos.py (written to its scratch folder, imported by every process)."""

    import os

    import anyio

    from crucible_actors import stage


    def _log(ctx, opts):
        # one write() of one line on an O_APPEND descriptor: lines never interleave
        line = f"{ctx.run_id} {ctx.telemetry_context['stage']} {os.getpid()}\\n".encode()
        fd = os.open(opts["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


    @stage("step")
    async def step(ctx, opts):
        """Sleep ``delay`` seconds, log the execution, record a metric named after the stage."""
        await anyio.sleep(opts.get("delay", 0))
        if "log" in opts:
            _log(ctx, opts)
        return ctx.put_metric(ctx.telemetry_context["stage"], 1)


    @stage("boom")
    async def boom(ctx, opts):
        raise ValueError("chaos: planned failure")


    @stage("hang")
    async def hang(ctx, opts):
        await anyio.sleep_forever()


    @stage("die")
    def die(ctx, opts):
        os._exit(3)
    '''
)

SERVE_STAGES = 4
CRUCIBLE_TOML = "[stages]\n" + "".join(
    f'{name} = "chaos_stages:step"\n' for name in ["step", *(f"s{k}" for k in range(SERVE_STAGES))]
)


def emit(scenario: str, **fields: Any) -> None:
    print(json.dumps({"bench": "chaos", "scenario": scenario, **fields}), flush=True)


def child_env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CRUCIBLE_STORE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(scratch), env.get("PYTHONPATH")]))
    return env


def line_count(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def children_of(pid: int) -> list[int]:
    """Return the live child pids of ``pid`` (Linux /proc)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


# -- child processes -------------------------------------------------------------------------


def _pipeline(log: str, rng: random.Random) -> list[Any]:
    from crucible_actors import StageDef

    return [
        StageDef(
            name=f"s{k}",
            stage="chaos_stages:step",
            options={"log": log, "delay": round(rng.uniform(0.0, 0.02), 4)},
        )
        for k in range(STAGES)
    ]


async def child_batch(url: str, runs: int, log: str, acks: str, seed: int) -> None:
    """Submit ``runs`` persisted runs, writing each run id to ``acks`` once acknowledged."""
    from crucible_actors import Experiment, open_runtime

    rng = random.Random(seed)
    async with open_runtime(store=url) as rt:
        handles = []
        fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        for i in range(runs):
            exp = Experiment(id="chaos", pipeline=_pipeline(log, rng))
            handles.append(await rt.submit(exp, run_id=f"run-{i:05d}"))
            os.write(fd, f"run-{i:05d}\n".encode())
        for handle in handles:
            await handle.wait()


async def child_resume(url: str, stale_after: float) -> None:
    """Resume what a dead process left running; print what was recovered as JSON."""
    from crucible_actors import open_runtime
    from crucible_actors.store import open_persistence

    async with (
        open_persistence(url, stale_after=stale_after) as persistence,
        open_runtime(store=persistence, on_start="resume") as rt,
    ):
        report = persistence.last_recovery
        for handle in rt.runs():
            await handle.wait()
        await rt.wait_idle()  # and the sweep points adopted pending, started as they fit
        resumed = len(report.resumed) if report is not None else 0
    print(json.dumps({"resumed": resumed, "pid": os.getpid()}), flush=True)


def _task_count() -> int:
    """Tasks alive in this event loop, on either backend."""
    import sniffio

    if sniffio.current_async_library() == "asyncio":
        import asyncio

        return len(asyncio.all_tasks())
    import trio

    def walk(task: Any) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


def _fault_plan(runs: int, seed: int) -> list[str]:
    kinds = ["ok", "raise", "timeout", "cancel", "exit", "store"]
    weights = [70, 8, 8, 6, 2, 6]
    rng = random.Random(seed)
    return rng.choices(kinds, weights=weights, k=runs)


EXPECTED = {
    "ok": "completed",
    "raise": "failed",
    "timeout": "failed",
    "cancel": "cancelled",
    "exit": "failed",
    "store": "failed",
}


async def child_faults(runs: int, seed: int) -> None:
    """Run the fault plan on this process's backend; print outcomes, leaks and memory."""
    from crucible_actors import Experiment, StageDef, open_runtime
    from crucible_actors.errors import StoreUnavailable
    from crucible_actors.store import MemoryStore

    plan = _fault_plan(runs, seed)

    class FlakyStore(MemoryStore):
        """A MemoryStore whose first checkpoint write of each doomed run fails."""

        def __init__(self, doomed: set[str]) -> None:
            super().__init__()
            self.doomed = doomed

        async def save_checkpoint(self, checkpoint: Any, **kw: Any) -> None:
            if checkpoint.run_id in self.doomed:
                self.doomed.discard(checkpoint.run_id)
                raise StoreUnavailable("chaos: injected write failure", store="memory://")
            await super().save_checkpoint(checkpoint, **kw)

    def experiment(kind: str) -> Experiment:
        middle = {
            "ok": StageDef(name="work", stage="chaos_stages:step"),
            "raise": StageDef(name="work", stage="chaos_stages:boom"),
            "timeout": StageDef(
                name="work",
                stage="chaos_stages:hang",
                timeout=0.05,
                restart="transient",
                max_restarts=1,
            ),
            "cancel": StageDef(name="work", stage="chaos_stages:hang"),
            "exit": StageDef(name="work", stage="chaos_stages:die", isolation="process"),
            "store": StageDef(name="work", stage="chaos_stages:step"),
        }[kind]
        first = StageDef(name="first", stage="chaos_stages:step")
        last = StageDef(name="last", stage="chaos_stages:step")
        return Experiment(id=f"faults-{kind}", pipeline=[first, middle, last])

    async def one_round(plan: list[str], prefix: str) -> dict[str, str]:
        doomed = {f"{prefix}{i}" for i, kind in enumerate(plan) if kind == "store"}
        store = FlakyStore(doomed)
        outcomes: dict[str, str] = {}
        async with open_runtime(store=store, shutdown_grace=2.0) as rt:
            handles = []
            for i, kind in enumerate(plan):
                handle = await rt.submit(experiment(kind), run_id=f"{prefix}{i}")
                handles.append((kind, handle))
            async with anyio.create_task_group() as tg:
                for kind, handle in handles:
                    if kind == "cancel":
                        tg.start_soon(handle.cancel)
            for i, (_, handle) in enumerate(handles):
                with anyio.fail_after(120):
                    outcomes[f"{prefix}{i}"] = str(await handle.wait())
        return outcomes

    # warm-up: imports, caches and the process pool's first spawn are not "growth"
    await one_round(["ok", "raise", "timeout", "cancel", "exit", "store"], "warm-")
    del_tasks = _task_count()
    threads0 = threading.active_count()
    gc.collect()
    blocks0 = sys.getallocatedblocks()
    started = time.perf_counter()
    outcomes = await one_round(plan, "run-")
    elapsed = time.perf_counter() - started
    tasks = _task_count() - del_tasks
    deadline = time.monotonic() + 15  # idle worker threads expire after 10 s
    while threading.active_count() > threads0 and time.monotonic() < deadline:  # noqa: ASYNC110
        await anyio.sleep(0.1)  # (polling other threads' lifetimes: no event to wait on)
    threads = max(0, threading.active_count() - threads0)
    processes = len(children_of(os.getpid()))
    gc.collect()
    blocks1 = sys.getallocatedblocks()
    counts = collections.Counter(outcomes.values())
    unexpected = sum(1 for i, kind in enumerate(plan) if outcomes[f"run-{i}"] != EXPECTED[kind])
    print(
        json.dumps(
            {
                "outcomes": dict(sorted(counts.items())),
                "planned": dict(sorted(collections.Counter(plan).items())),
                "unexpected": unexpected,
                "non_terminal": sum(1 for s in outcomes.values() if s not in TERMINAL),
                "leaked_tasks": tasks,
                "leaked_threads": threads,
                "leaked_processes": processes,
                "blocks_start": blocks0,
                "blocks_end": blocks1,
                "runs_s": round(elapsed, 3),
            }
        ),
        flush=True,
    )


def child_main(argv: list[str]) -> None:
    command, backend, *args = argv
    if command == "_batch":
        url, runs, log, acks, seed = args
        anyio.run(child_batch, url, int(runs), log, acks, int(seed), backend=backend)
    elif command == "_resume":
        url, stale = args
        anyio.run(child_resume, url, float(stale), backend=backend)
    elif command == "_faults":
        runs, seed = args
        anyio.run(child_faults, int(runs), int(seed), backend=backend)
    else:
        raise SystemExit(f"unknown child command {command!r}")


# -- scenario: SIGKILL and resume ------------------------------------------------------------


async def store_state(url: str, run_ids: list[str]) -> dict[str, Any]:
    """Return ``{run_id: (status or None, completed stages, metrics)}`` and the owners."""
    from crucible_actors.errors import RunNotFound
    from crucible_actors.store import open_store

    state: dict[str, Any] = {}
    async with open_store(url) as store:
        for run_id in run_ids:
            try:
                run = await store.get_run(run_id)
            except RunNotFound:
                state[run_id] = (None, set(), {})
                continue
            attempts = await store.list_attempts(run_id)
            done = {a.stage for a in attempts if a.status == "completed"}
            state[run_id] = (run.status, done, dict(run.metrics or {}))
        owners = len(await store.list_owners())
    return {"runs": state, "owners": owners}


def pg_schema_url(base: str) -> tuple[str, str]:
    import psycopg

    schema = f"chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-c search_path={schema}')}", schema


def pg_drop(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def sigkill_trial(
    scratch: Path, url: str, runs: int, rng: random.Random, backend: str
) -> dict[str, Any]:
    trial = scratch / f"trial-{uuid.uuid4().hex[:8]}"
    trial.mkdir()
    log, acks = trial / "stages.log", trial / "acks"
    total = runs * (STAGES + 1)  # acknowledgements + stage executions
    target = rng.randrange(1, total)
    if url.startswith("postgresql"):
        from crucible_actors.store import open_store

        async def migrate() -> None:
            async with open_store(url, migrate=True):
                pass

        anyio.run(migrate)
    cmd = [
        sys.executable,
        str(HERE),
        "_batch",
        backend,
        url,
        str(runs),
        str(log),
        str(acks),
        str(rng.randrange(2**31)),
    ]
    proc = subprocess.Popen(cmd, cwd=scratch, env=child_env(scratch))
    progress = 0
    while proc.poll() is None:
        progress = line_count(acks) + line_count(log)
        if progress >= target:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    acked = acks.read_text().split() if acks.exists() else []
    before = anyio.run(store_state, url, acked)["runs"]
    # resume in a fresh process; PostgreSQL trusts heartbeats only: let the dead one age
    stale = 0.5
    time.sleep(stale + 0.2)
    out = subprocess.run(
        [sys.executable, str(HERE), "_resume", backend, url, str(stale)],
        cwd=scratch,
        env=child_env(scratch),
        capture_output=True,
        check=True,
        text=True,
    )
    resumed = json.loads(out.stdout.strip().splitlines()[-1])
    after = anyio.run(store_state, url, acked)
    executed: collections.Counter[tuple[str, str]] = collections.Counter()
    by_resumer: set[tuple[str, str]] = set()
    for line in log.read_text().splitlines() if log.exists() else []:
        run_id, stage_name, pid = line.split()
        executed[(run_id, stage_name)] += 1
        if int(pid) == resumed["pid"]:
            by_resumer.add((run_id, stage_name))
    duplicated = sum(1 for run_id in acked for s in before[run_id][1] if (run_id, s) in by_resumer)
    lost = non_terminal = wrong = 0
    for run_id in acked:
        status, done, metrics = after["runs"][run_id]
        if status != "completed":
            lost += 1
        if status not in TERMINAL:
            non_terminal += 1
        if status == "completed" and (
            done != {f"s{k}" for k in range(STAGES)}
            or metrics != {f"s{k}": 1 for k in range(STAGES)}
        ):
            wrong += 1
    return {
        "killed": killed,
        "kill_point": round(target / total, 3),
        "acked": len(acked),
        "in_flight": sum(1 for r in acked if before[r][0] == "running"),
        "resumed": resumed["resumed"],
        "lost": lost,
        "wrong": wrong,
        "duplicated": duplicated,
        "non_terminal": non_terminal,
        "leaked_owners": after["owners"],
        "leaked_processes": len(children_of(os.getpid())),
    }


def scenario_sigkill(args: argparse.Namespace, scratch: Path) -> None:
    stores = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    for kind in stores:
        rng = random.Random(f"{args.seed}-sigkill-{kind}")
        trials = args.trials if kind == "sqlite" else max(1, args.trials // 2)
        started = time.perf_counter()
        results = []
        for t in range(trials):
            schema = None
            if kind == "sqlite":
                url = f"sqlite:///{scratch}/kill-{t}.db"
            else:
                url, schema = pg_schema_url(args.pg_url)
            try:
                results.append(sigkill_trial(scratch, url, args.runs, rng, args.backend))
            finally:
                if schema is not None:
                    pg_drop(args.pg_url, schema)
        emit(
            "sigkill_resume",
            store=kind,
            backend=args.backend,
            trials=trials,
            runs=sum(r["acked"] for r in results),
            in_flight_at_kill=sum(r["in_flight"] for r in results),
            resumed=sum(r["resumed"] for r in results),
            lost=sum(r["lost"] for r in results),
            wrong_results=sum(r["wrong"] for r in results),
            duplicated_completed_stages=sum(r["duplicated"] for r in results),
            non_terminal=sum(r["non_terminal"] for r in results),
            leaked_owners=sum(r["leaked_owners"] for r in results),
            leaked_processes=sum(r["leaked_processes"] for r in results),
            kills=sum(r["killed"] for r in results),
            kill_points=sorted(r["kill_point"] for r in results),
            wall_s=round(time.perf_counter() - started, 2),
        )


# -- serve: start, kill, restart -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """A ``crucible-actors serve`` subprocess on a free port."""

    def __init__(self, scratch: Path, store: str, backend: str, *extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = scratch / f"serve-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "crucible_actors",
            "serve",
            "--port",
            str(self.port),
            "--store",
            store,
            "--backend",
            backend,
            *extra,
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=scratch, env=child_env(scratch), stdout=out, stderr=out
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise SystemExit(f"serve did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def signal(self, sig: int, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def unhandled_errors(self) -> int:
        text = self.log.read_text(errors="replace")
        return text.count("Traceback (most recent call last)")


def parse_sse(buffer: bytes) -> tuple[list[tuple[int, str]], bytes]:
    """Split complete SSE messages off ``buffer``; return (id, event) pairs and the rest."""
    events = []
    while b"\n\n" in buffer:
        message, buffer = buffer.split(b"\n\n", 1)
        fields = dict(line.split(b": ", 1) for line in message.split(b"\n") if b": " in line)
        if b"id" in fields:
            events.append((int(fields[b"id"]), fields[b"event"].decode()))
    return events, buffer


async def follow(
    client: httpx.AsyncClient, base: str, run_id: str, after: int | None, seen: list[Any]
) -> bool:
    """Append the run's SSE events to ``seen``; return True if the stream ended cleanly."""
    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    buffer = b""
    try:
        async with client.stream(
            "GET", f"{base}/api/runs/{run_id}/events", headers=headers, timeout=None
        ) as response:
            if response.status_code != 200:
                return False
            async for chunk in response.aiter_bytes():
                events, buffer = parse_sse(buffer + chunk)
                seen.extend(events)
    except (httpx.TransportError, httpx.RemoteProtocolError):
        return False
    return True


async def serve_kill_trial(
    scratch: Path, sig: int, runs: int, followers: int, rng: random.Random, backend: str
) -> dict[str, Any]:
    store = f"sqlite:///{scratch}/serve-{sig}.db"
    server = Served(scratch, store, backend)
    log = scratch / f"serve-stages-{sig}.log"
    acked: list[str] = []
    seen: dict[str, list[Any]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(runs):
            # The followed runs are slow: still going when the server stops, so their
            # clients reconnect to the resumed runs.
            low, high = (0.5, 2.5) if i < followers else (0.05, 0.3)
            pipeline = [
                {
                    "name": f"s{k}",
                    "options": {"delay": round(rng.uniform(low, high), 3), "log": str(log)},
                }
                for k in range(SERVE_STAGES)
            ]
            body = {"experiment": {"id": f"serve-kill-{i % 4}", "pipeline": pipeline}}
            response = await client.post(f"{server.base}/api/runs", json=body)
            if response.status_code in (200, 202):
                acked.append(response.json()["run_id"])
        followed = acked[:followers]
        async with anyio.create_task_group() as tg:
            for run_id in followed:
                seen[run_id] = []
                tg.start_soon(follow, client, server.base, run_id, None, seen[run_id])
            await anyio.sleep(rng.uniform(0.2, 0.6))  # mid-run: stages take 0.2-1.2 s
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(server.signal, sig)
            tg.cancel_scope.deadline = anyio.current_time() + 5
        first_exit = server.proc.returncode
        errors = server.unhandled_errors()
        before = (await store_state(store, acked))["runs"]
        at_stop = collections.Counter(before[r][0] or "lost" for r in acked)
        after_kill = collections.Counter()
        server = Served(scratch, store, backend)
        restarted = server.proc.pid
        try:
            statuses: dict[str, str] = {}
            deadline = anyio.current_time() + 90
            pending = set(acked)
            while pending and anyio.current_time() < deadline:
                for run_id in list(pending):
                    response = await client.get(f"{server.base}/api/runs/{run_id}")
                    status = response.json()["status"] if response.status_code == 200 else "lost"
                    statuses[run_id] = status
                    if status in TERMINAL or status == "lost":
                        pending.discard(run_id)
                if pending:
                    await anyio.sleep(0.2)
            after_kill.update(statuses.values())
            missed = duplicated = cut_mid_run = 0
            for run_id in followed:
                events = seen[run_id]
                last = events[-1][0] if events else None
                cut_mid_run += not events or events[-1][1] not in RUN_ENDED
                if statuses.get(run_id) in TERMINAL:
                    await follow(client, server.base, run_id, last, events)
                full: list[Any] = []
                await follow(client, server.base, run_id, None, full)
                ids = [e[0] for e in events]
                duplicated += len(ids) - len(set(ids))
                # the same seq must carry the same event: compare (seq, type) pairs
                missed += len(set(full) - set(events))
                if os.environ.get("CHAOS_DEBUG"):
                    print(run_id, statuses.get(run_id), events, full, file=sys.stderr)
            errors += server.unhandled_errors()
        finally:
            server.signal(signal.SIGINT)
    after = (await store_state(store, acked))["runs"]
    rerun = set()
    for line in log.read_text().splitlines() if log.exists() else []:
        run_id, stage_name, pid = line.split()
        if int(pid) == restarted:
            rerun.add((run_id, stage_name))
    duplicated_stages = sum(1 for r in acked for s in before[r][1] if (r, s) in rerun)
    full_metrics = {f"s{k}": 1 for k in range(SERVE_STAGES)}
    return {
        "signal": signal.Signals(sig).name,
        "exit": first_exit,
        "acked": len(acked),
        "at_stop": dict(sorted(at_stop.items())),
        "statuses": dict(sorted(after_kill.items())),
        "lost": sum(1 for r in acked if after[r][0] != "completed"),
        "cancelled_by_stop": at_stop.get("cancelled", 0),
        "wrong_results": sum(
            1 for r in acked if after[r][0] == "completed" and after[r][2] != full_metrics
        ),
        "duplicated_completed_stages": duplicated_stages,
        "non_terminal": sum(v for k, v in after_kill.items() if k not in TERMINAL),
        "followed": len(followed),
        "followed_cut_mid_run": cut_mid_run,
        "events_missed": missed,
        "events_duplicated": duplicated,
        "server_tracebacks": errors,
    }


def scenario_serve_kill(args: argparse.Namespace, scratch: Path) -> None:
    rng = random.Random(f"{args.seed}-serve")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        started = time.perf_counter()
        result = anyio.run(
            serve_kill_trial, scratch, sig, args.serve_runs, args.followers, rng, args.backend
        )
        emit(
            "serve_kill_restart",
            trials=1,
            runs=result.pop("acked"),
            **result,
            wall_s=round(time.perf_counter() - started, 2),
        )


# -- faults under load -----------------------------------------------------------------------


def scenario_faults(args: argparse.Namespace, scratch: Path) -> None:
    results = {}
    started = time.perf_counter()
    for backend in ("trio", "asyncio"):
        out = subprocess.run(
            [sys.executable, str(HERE), "_faults", backend, str(args.fault_runs), str(args.seed)],
            cwd=scratch,
            env=child_env(scratch),
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"faults child ({backend}) failed:\n{out.stderr[-4000:]}")
        results[backend] = json.loads(out.stdout.strip().splitlines()[-1])
    trio_r, asyncio_r = results["trio"], results["asyncio"]
    emit(
        "faults_under_load",
        trials=2,
        runs=args.fault_runs,
        planned=trio_r["planned"],
        outcomes_trio=trio_r["outcomes"],
        outcomes_asyncio=asyncio_r["outcomes"],
        same_outcomes=trio_r["outcomes"] == asyncio_r["outcomes"],
        lost=trio_r["unexpected"] + asyncio_r["unexpected"],
        unexpected_outcomes=trio_r["unexpected"] + asyncio_r["unexpected"],
        duplicated_completed_stages=None,
        non_terminal=trio_r["non_terminal"] + asyncio_r["non_terminal"],
        leaked_tasks=trio_r["leaked_tasks"] + asyncio_r["leaked_tasks"],
        leaked_threads=trio_r["leaked_threads"] + asyncio_r["leaked_threads"],
        leaked_processes=trio_r["leaked_processes"] + asyncio_r["leaked_processes"],
        memory_blocks_ratio={
            b: round(r["blocks_end"] / r["blocks_start"], 3) for b, r in results.items()
        },
        runs_s={b: r["runs_s"] for b, r in results.items()},
        wall_s=round(time.perf_counter() - started, 2),
    )


# -- idempotency under concurrency -----------------------------------------------------------


async def idempotency_trial(scratch: Path, submissions: int, backend: str) -> dict[str, Any]:
    store = f"sqlite:///{scratch}/idem.db"
    server = Served(scratch, store, backend, "--max-queue", str(submissions + 10))
    key = f"chaos-{uuid.uuid4().hex[:8]}"
    body = {
        "experiment": {
            "id": "idem",
            "pipeline": [{"name": "step", "options": {"delay": 0.5}}],
        }
    }
    answers: list[tuple[int, str | None]] = []
    try:
        limits = httpx.Limits(max_connections=submissions)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            ready = anyio.Event()

            async def submit() -> None:
                await ready.wait()
                response = await client.post(
                    f"{server.base}/api/runs", json=body, headers={"Idempotency-Key": key}
                )
                run_id = response.json().get("run_id") if response.status_code < 300 else None
                answers.append((response.status_code, run_id))

            async with anyio.create_task_group() as tg:
                for _ in range(submissions):
                    tg.start_soon(submit)
                await anyio.sleep(0.1)
                ready.set()
            conflict = await client.post(
                f"{server.base}/api/runs",
                json={**body, "assigns": {"other": True}},
                headers={"Idempotency-Key": key},
            )
            listing = await client.get(
                f"{server.base}/api/runs", params={"experiment_id": "idem", "limit": 200}
            )
            stored = listing.json()["runs"]
        errors = server.unhandled_errors()
    finally:
        server.signal(signal.SIGINT)
    ids = {run_id for _, run_id in answers}
    return {
        "responses": dict(sorted(collections.Counter(code for code, _ in answers).items())),
        "distinct_run_ids": len(ids - {None}),
        "responses_without_run_id": sum(1 for _, r in answers if r is None),
        "runs_stored": len(stored),
        "conflict_status": conflict.status_code,
        "conflict_type": conflict.json().get("error", {}).get("type"),
        "server_tracebacks": errors,
    }


def scenario_idempotency(args: argparse.Namespace, scratch: Path) -> None:
    started = time.perf_counter()
    result = anyio.run(idempotency_trial, scratch, args.submissions, args.backend)
    emit(
        "idempotency_race",
        trials=1,
        runs=result["runs_stored"],
        lost=0 if result["runs_stored"] == 1 else abs(result["runs_stored"] - 1),
        duplicated_completed_stages=None,
        non_terminal=None,
        **result,
        wall_s=round(time.perf_counter() - started, 2),
    )


SCENARIOS = {
    "sigkill": scenario_sigkill,
    "serve-kill": scenario_serve_kill,
    "faults": scenario_faults,
    "idempotency": scenario_idempotency,
    **ACK_SCENARIOS,
    "data-sigkill": _chaos_data.scenario_data_sigkill,
}

from _chaos_lease import LEASE_SCENARIOS  # noqa: E402 - owner leases (issue 21 item 2)
from _chaos_lease import add_arguments as add_lease_arguments  # noqa: E402

SCENARIOS.update(LEASE_SCENARIOS)
# Store faults (issue 21): PostgreSQL restart and outage, a full disk.
SCENARIOS.update(_chaos_faults.SCENARIOS)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        child_main(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--trials", type=int, default=10, help="SIGKILL trials on SQLite")
    parser.add_argument("--runs", type=int, default=200, help="persisted runs per SIGKILL trial")
    parser.add_argument("--serve-runs", type=int, default=40)
    parser.add_argument("--followers", type=int, default=8, help="SSE clients in serve-kill")
    parser.add_argument("--fault-runs", type=int, default=1000)
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--lease-runs", type=int, default=20, help="runs per lease scenario")
    parser.add_argument("--backend", choices=["trio", "asyncio"], default="trio")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CRUCIBLE_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--no-postgres", action="store_true")
    add_ack_arguments(parser)
    add_lease_arguments(parser)
    _chaos_data.add_arguments(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crucible-chaos-") as tmp:
        scratch = Path(tmp)
        (scratch / "chaos_stages.py").write_text(STAGES_PY)
        (scratch / "crucible.toml").write_text(CRUCIBLE_TOML)
        for name in args.only or list(SCENARIOS):
            SCENARIOS[name](args, scratch)
    emit("total", wall_s=round(time.perf_counter() - started, 2))


if __name__ == "__main__":
    main()
