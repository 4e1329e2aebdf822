"""Chaos scenarios of owner leases (issue 21 item 2), registered in ``bench/chaos.py``.

Each scenario runs real processes on one store (SQLite, then PostgreSQL unless
``--no-postgres``) at the default liveness settings unless it says otherwise, and prints
one JSON line with ``lost`` (acknowledged runs that did not end ``completed``),
``duplicated`` (stage executions that should not have happened: a stage the store had
recorded as completed that ran again, or, where no process died, any stage that ran
twice), ``non_terminal`` (runs still ``running`` at the end) and ``disagreements``
(runs whose final status in the process holding them differs from the store's): all 0.

- ``quick-restart``: a runtime process runs ``--lease-runs`` 3-stage runs (stages sleep
  0.4-0.8 s), is SIGKILLed at a seeded point of the batch, and a new one
  (``open_runtime(on_start="resume")``) starts 1.5 s later; ``resume_s`` is the longest
  time from its start until every run ended.
- ``serve-quick-restart``: the same with ``crucible-actors serve`` (runs submitted over
  HTTP, 4 stages each), SIGKILLed at a seeded point and restarted 1.5 s later;
  ``resume_s`` counts from the restart, its start-up included.
- ``second-replica``: two runtime processes share the store; the first submits the runs
  and is SIGKILLed at a seeded point; the second, up all along and never restarted,
  adopts them (``adopt_s``: from the kill until every run ended).

The kill points of those three are spread, by seed, from the very start of the batch
(its first acknowledgement: kill point 0 may land while runs are still being submitted)
to its end (the last run's stages done, about 2.7 s later): ``--lease-trials`` points
per seed, one in each slice of the batch, over ``--lease-seeds`` seeds from ``--seed``;
each trial has a fresh store, and the JSON line sums them and lists ``kill_s``.
- ``clock-step``: the owner runs the runs while a second process's wall clock (and
  monotonic clock) steps forward 2 hours through libfaketime (``FAKETIME_TIMESTAMP_FILE``)
  mid-run: the heartbeat looks 2 h old to it, and it must take nothing.
- ``starved-loop``: the owner's event loop is blocked for 4 s by a stage (no heartbeat
  meanwhile), with a second process present whose ``stale_after`` is 1 s (far below the
  default 60 s, so the short scenario proves the point): it must take nothing.

Scenario children are run as ``python bench/_chaos_lease.py _lease ...``.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve()
TERMINAL = {"completed", "failed", "cancelled", "interrupted"}
STAGES = 3
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

LEASE_STAGES_PY = textwrap.dedent(
    '''
    """Stages of bench/_chaos_lease.py (written to the scratch folder)."""

    import os
    import time

    import anyio

    from crucible_actors import stage


    def _log(ctx, opts):
        line = f"{ctx.run_id} {opts['name']} {os.getpid()}\\n".encode()
        fd = os.open(opts["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


    @stage("lease_nap")
    async def nap(ctx, opts):
        """Sleep ``delay`` seconds (or block the event loop if ``block``), log, record."""
        if opts.get("block"):
            time.sleep(opts["delay"])  # starves the event loop on purpose
        else:
            await anyio.sleep(opts["delay"])
        _log(ctx, opts)
        return ctx.put_metric(opts["name"], 1)
    '''
)


# -- children --------------------------------------------------------------------------------


async def child(url: str, role: str, opts: dict[str, Any]) -> None:
    """``submit``: submit runs, write their ids to ``acks``; ``replica``: just be there.

    Both keep their runtime open (adopting dead owners' runs) until ``stop`` exists, then
    print the statuses of the runs they hold as JSON.
    """
    from crucible_actors import Experiment, StageDef, open_runtime
    from crucible_actors.store import open_persistence

    stop = anyio.Path(opts["stop"])
    async with (
        open_persistence(url, stale_after=opts.get("stale_after", 60.0)) as persistence,
        open_runtime(store=persistence, on_start="resume") as rt,
    ):
        if role == "submit":
            fd = os.open(opts["acks"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            for i in range(opts["runs"]):
                pipeline = [
                    StageDef(
                        name=f"s{k}",
                        stage="lease_stages:nap",
                        options={
                            "name": f"s{k}",
                            "log": opts["log"],
                            **(
                                {"delay": 4.0, "block": True}
                                if opts.get("block") and i == 0 and k == 1
                                else {"delay": opts["delays"][(i + k) % len(opts["delays"])]}
                            ),
                        },
                    )
                    for k in range(STAGES)
                ]
                run_id = f"run-{i:03d}"
                await rt.submit(Experiment(id="lease-chaos", pipeline=pipeline), run_id=run_id)
                os.write(fd, f"{run_id}\n".encode())
            os.close(fd)
        await anyio.Path(opts["ready"]).write_text("ready")
        while not await stop.exists():  # noqa: ASYNC110 - another process says when
            await anyio.sleep(0.05)
        # Printed before closing: under libfaketime's stepped clocks, closing the
        # PostgreSQL pool (thread joins with timeouts) can hang; the parent kills it.
        print(json.dumps({h.run_id: str(h.status) for h in rt.runs()}), flush=True)


def child_main(argv: list[str]) -> None:
    backend, url, role, opts = argv
    anyio.run(child, url, role, json.loads(opts), backend=backend)


# -- the parent side ---------------------------------------------------------------------------

#: Seconds from a batch's first acknowledgement to its end: submissions, then the last
#: run's three stages at up to 0.8 s each.
BATCH_S = 0.3 + STAGES * 0.8


def add_arguments(parser: Any) -> None:
    """Add this module's options to chaos.py's parser."""
    parser.add_argument("--lease-trials", type=int, default=3, help="kill points per seed")
    parser.add_argument("--lease-seeds", type=int, default=2, help="seeds (from --seed on)")


def kill_times(trials: int, rng: random.Random) -> list[float]:
    """``trials`` kill times (seconds after the batch's first ack), one per slice."""
    return [round((t + rng.random()) * BATCH_S / trials, 3) for t in range(trials)]


def _spread(args: Any, scratch: Path, kind: str, name: str, trial: Any) -> dict[str, Any]:
    """Run ``trial(url, kill_s)`` at every seeded kill point, each on a fresh store;
    return the sums (and the slowest ``*_s`` figure) with the kill times."""
    results: list[dict[str, Any]] = []
    kills: list[float] = []
    seeds = [args.seed + i for i in range(args.lease_seeds)]
    for seed in seeds:
        rng = random.Random(f"{seed}-{name}-{kind}")
        for kill_s in kill_times(args.lease_trials, rng):
            results.append(
                _with_store(
                    args, scratch, kind, f"{name}-{len(kills)}", lambda url, k=kill_s: trial(url, k)
                )
            )
            kills.append(kill_s)
    out: dict[str, Any] = {"seeds": seeds, "trials": len(results), "kill_s": sorted(kills)}
    for key in results[0]:
        values = [r[key] for r in results]
        out[key] = round(max(values), 2) if key.endswith("_s") else sum(values)
    return out


def wait_first_ack(acks: Path, proc: Any, timeout: float = 60) -> None:
    """Wait until the submitting child acknowledged its first run (the batch's start)."""
    deadline = time.monotonic() + timeout
    while not (acks.exists() and acks.stat().st_size):
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{proc.name} failed:\n{proc.out.read_text()[-3000:]}")
        time.sleep(0.005)


class Proc:
    """One scenario child process."""

    def __init__(
        self,
        scratch: Path,
        url: str,
        role: str,
        opts: dict[str, Any],
        backend: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = f"{role}-{time.monotonic_ns()}"
        self.stop = scratch / f"{self.name}.stop"
        self.ready = scratch / f"{self.name}.ready"
        self.out = scratch / f"{self.name}.out"
        opts = {**opts, "stop": str(self.stop), "ready": str(self.ready)}
        child_env = dict(os.environ if env is None else env)
        child_env.pop("CRUCIBLE_STORE_URL", None)
        child_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(scratch), child_env.get("PYTHONPATH")])
        )
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE), "_lease", backend, url, role, json.dumps(opts)],
                cwd=scratch,
                env=child_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{self.name} failed:\n{self.out.read_text()[-3000:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def finish(self) -> dict[str, str]:
        """Ask the child to stop; return the run statuses it printed."""
        self.stop.write_text("stop")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        lines = self.out.read_text().strip().splitlines()
        try:
            statuses: dict[str, str] = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            raise SystemExit(f"{self.name} failed:\n{self.out.read_text()[-3000:]}") from None
        return statuses

    def tracebacks(self) -> int:
        return self.out.read_text(errors="replace").count("Traceback (most recent call last)")


async def _state(url: str, run_ids: list[str]) -> dict[str, tuple[str | None, set[str]]]:
    from crucible_actors.errors import RunNotFound
    from crucible_actors.store import open_store

    state: dict[str, tuple[str | None, set[str]]] = {}
    async with open_store(url) as store:
        for run_id in run_ids:
            try:
                run = await store.get_run(run_id)
            except RunNotFound:
                state[run_id] = (None, set())
                continue
            done = {a.stage for a in await store.list_attempts(run_id) if a.status == "completed"}
            state[run_id] = (run.status, done)
    return state


def store_state(url: str, run_ids: list[str]) -> dict[str, tuple[str | None, set[str]]]:
    return anyio.run(_state, url, run_ids)


def wait_terminal(url: str, run_ids: list[str], timeout: float) -> float:
    """Wait until every run is terminal in the store; return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        state = store_state(url, run_ids)
        if all(status in TERMINAL for status, _ in state.values()):
            break
        time.sleep(0.1)
    return time.monotonic() - started


def executions(log: Path) -> list[tuple[str, str, int]]:
    if not log.exists():
        return []
    return [
        (run_id, stage, int(pid))
        for run_id, stage, pid in (line.split() for line in log.read_text().splitlines())
    ]


def tally(
    url: str,
    acked: list[str],
    log: Path,
    holders: list[dict[str, str]],
    *,
    before: dict[str, tuple[str | None, set[str]]] | None,
    after_pids: set[int],
) -> dict[str, Any]:
    """Count lost, duplicated, non-terminal runs and store/holder disagreements."""
    final = store_state(url, acked)
    runs = executions(log)
    if before is None:  # no process died: any stage that ran twice is a duplicate
        counts = collections.Counter((r, s) for r, s, _ in runs)
        duplicated = sum(n - 1 for n in counts.values() if n > 1)
    else:  # completed before the kill, then ran again in a surviving process
        duplicated = sum(
            1 for r, s, pid in runs if pid in after_pids and s in before.get(r, (None, set()))[1]
        )
    disagreements = 0
    for statuses in holders:
        for run_id, status in statuses.items():
            if run_id in final and status in TERMINAL and status != final[run_id][0]:
                disagreements += 1
    return {
        "runs": len(acked),
        "lost": sum(1 for r in acked if final[r][0] != "completed"),
        "duplicated": duplicated,
        "non_terminal": sum(1 for r in acked if final[r][0] not in TERMINAL),
        "disagreements": disagreements,
    }


def fresh_store(args: Any, scratch: Path, kind: str, name: str) -> tuple[str, str | None]:
    """Return (url, PostgreSQL schema to drop) of a new, migrated store."""
    from chaos import pg_schema_url

    if kind == "sqlite":
        return f"sqlite:///{scratch}/{name}.db", None
    url, schema = pg_schema_url(args.pg_url)

    async def migrate() -> None:
        from crucible_actors.store import open_store

        async with open_store(url, migrate=True):
            pass

    anyio.run(migrate)
    return url, schema


def stores(args: Any) -> list[str]:
    return ["sqlite"] + ([] if args.no_postgres else ["postgresql"])


def emit(scenario: str, **fields: Any) -> None:
    print(json.dumps({"bench": "chaos", "scenario": scenario, **fields}), flush=True)


def _opts(scratch: Path, runs: int, trial: str, **extra: Any) -> dict[str, Any]:
    return {
        "runs": runs,
        "log": str(scratch / f"{trial}.log"),
        "acks": str(scratch / f"{trial}.acks"),
        "delays": [0.4, 0.6, 0.8],
        **extra,
    }


def _acked(opts: dict[str, Any]) -> list[str]:
    path = Path(opts["acks"])
    return path.read_text().split() if path.exists() else []


def _with_store(args: Any, scratch: Path, kind: str, name: str, fn: Any) -> dict[str, Any]:
    from chaos import pg_drop

    url, schema = fresh_store(args, scratch, kind, name)
    try:
        result: dict[str, Any] = fn(url)
        return result
    finally:
        if schema is not None:
            pg_drop(args.pg_url, schema)


# -- scenarios ---------------------------------------------------------------------------------


def scenario_quick_restart(args: Any, scratch: Path) -> None:
    (scratch / "lease_stages.py").write_text(LEASE_STAGES_PY)
    for kind in stores(args):

        def trial(url: str, kill_s: float, kind: str = kind) -> dict[str, Any]:
            opts = _opts(scratch, args.lease_runs, f"quick-{kind}-{time.monotonic_ns()}")
            first = Proc(scratch, url, "submit", opts, args.backend)
            wait_first_ack(Path(opts["acks"]), first)
            time.sleep(kill_s)
            first.kill()
            acked = _acked(opts)
            before = store_state(url, acked)
            in_flight = sum(1 for s, _ in before.values() if s == "running")
            time.sleep(1.5)
            second = Proc(scratch, url, "replica", opts, args.backend)
            resume_s = wait_terminal(url, acked, 60)
            held = second.finish()
            return {
                "in_flight_at_kill": in_flight,
                "resume_s": round(resume_s, 2),
                **tally(
                    url,
                    acked,
                    Path(opts["log"]),
                    [held],
                    before=before,
                    after_pids={second.proc.pid},
                ),
                "tracebacks": second.tracebacks(),
            }

        started = time.perf_counter()
        result = _spread(args, scratch, kind, "quick", trial)
        emit(
            "lease_quick_restart",
            store=kind,
            backend=args.backend,
            stale_after_s=60.0,
            **result,
            wall_s=round(time.perf_counter() - started, 2),
        )


def scenario_second_replica(args: Any, scratch: Path) -> None:
    (scratch / "lease_stages.py").write_text(LEASE_STAGES_PY)
    for kind in stores(args):

        def trial(url: str, kill_s: float, kind: str = kind) -> dict[str, Any]:
            opts = _opts(scratch, args.lease_runs, f"replica-{kind}-{time.monotonic_ns()}")
            replica = Proc(scratch, url, "replica", opts, args.backend)
            replica.wait_ready()
            first = Proc(scratch, url, "submit", opts, args.backend)
            wait_first_ack(Path(opts["acks"]), first)
            time.sleep(kill_s)
            first.kill()
            acked = _acked(opts)
            before = store_state(url, acked)
            in_flight = sum(1 for s, _ in before.values() if s == "running")
            adopt_s = wait_terminal(url, acked, 60)
            held = replica.finish()
            return {
                "in_flight_at_kill": in_flight,
                "adopted": sum(1 for r in acked if r in held),
                "adopt_s": round(adopt_s, 2),
                **tally(
                    url,
                    acked,
                    Path(opts["log"]),
                    [held],
                    before=before,
                    after_pids={replica.proc.pid},
                ),
                "tracebacks": replica.tracebacks(),
            }

        started = time.perf_counter()
        result = _spread(args, scratch, kind, "replica", trial)
        emit(
            "lease_second_replica",
            store=kind,
            backend=args.backend,
            stale_after_s=60.0,
            **result,
            wall_s=round(time.perf_counter() - started, 2),
        )


def _live_owner_trial(
    args: Any,
    scratch: Path,
    url: str,
    name: str,
    *,
    observer_env: dict[str, str] | None,
    observer_stale: float,
    block: bool,
    step: Path | None,
) -> dict[str, Any]:
    """The owner runs the runs while an observer process is present; nothing may move."""
    opts = _opts(scratch, args.lease_runs, name, block=block)
    observer = Proc(
        scratch,
        url,
        "replica",
        {**opts, "stale_after": observer_stale},
        args.backend,
        env=observer_env,
    )
    observer.wait_ready()
    owner = Proc(scratch, url, "submit", opts, args.backend)
    owner.wait_ready()
    if step is not None:
        step.write_text("+2h\n")  # the observer's clocks jump two hours ahead, mid-run
    acked = _acked(opts)
    wall = wait_terminal(url, acked, 60)
    taken = observer.finish()
    held = owner.finish()
    return {
        "taken_by_observer": sum(1 for r in acked if r in taken),
        "runs_s": round(wall, 2),
        **tally(url, acked, Path(opts["log"]), [held, taken], before=None, after_pids=set()),
        "tracebacks": observer.tracebacks() + owner.tracebacks(),
    }


def scenario_clock_step(args: Any, scratch: Path) -> None:
    (scratch / "lease_stages.py").write_text(LEASE_STAGES_PY)
    if not (Path(FAKETIME_LIB).exists() and shutil.which("faketime")):
        emit("lease_clock_step", skipped="libfaketime is not installed (apt-get install faketime)")
        return
    for kind in stores(args):
        step = scratch / f"faketime-{kind}"
        step.write_text("+0\n")
        env = {
            **os.environ,
            "LD_PRELOAD": FAKETIME_LIB,
            "FAKETIME_TIMESTAMP_FILE": str(step),
            "FAKETIME_NO_CACHE": "1",
        }
        started = time.perf_counter()
        result = _with_store(
            args,
            scratch,
            kind,
            "clock",
            lambda url, kind=kind, step=step, env=env: _live_owner_trial(
                args,
                scratch,
                url,
                f"clock-{kind}",
                observer_env=env,
                observer_stale=60.0,
                block=False,
                step=step,
            ),
        )
        emit(
            "lease_clock_step",
            store=kind,
            backend=args.backend,
            step_s=7200,
            clock="libfaketime",
            stale_after_s=60.0,
            **result,
            wall_s=round(time.perf_counter() - started, 2),
        )


def scenario_starved_loop(args: Any, scratch: Path) -> None:
    (scratch / "lease_stages.py").write_text(LEASE_STAGES_PY)
    for kind in stores(args):
        started = time.perf_counter()
        result = _with_store(
            args,
            scratch,
            kind,
            "starved",
            lambda url, kind=kind: _live_owner_trial(
                args,
                scratch,
                url,
                f"starved-{kind}",
                observer_env=None,
                observer_stale=1.0,
                block=True,
                step=None,
            ),
        )
        emit(
            "lease_starved_loop",
            store=kind,
            backend=args.backend,
            blocked_s=4.0,
            observer_stale_after_s=1.0,
            **result,
            wall_s=round(time.perf_counter() - started, 2),
        )


def _serve_quick_restart(
    args: Any, scratch: Path, url: str, kind: str, kill_s: float
) -> dict[str, Any]:
    """``crucible-actors serve`` killed ``kill_s`` after its first 202 (while runs are
    still being posted, for early points), restarted 1.5 s later."""
    import httpx
    from chaos import SERVE_STAGES, Served

    log = scratch / f"serve-quick-{kind}-{time.monotonic_ns()}.log"
    server = Served(scratch, url, args.backend)
    acked: list[str] = []
    first = threading.Event()

    def post_all() -> None:
        with httpx.Client(timeout=30) as poster:
            for i in range(args.lease_runs):
                pipeline = [
                    {
                        "name": f"s{k}",
                        "options": {"delay": [0.4, 0.6, 0.8][(i + k) % 3], "log": str(log)},
                    }
                    for k in range(SERVE_STAGES)
                ]
                body = {"experiment": {"id": "lease-serve", "pipeline": pipeline}}
                try:
                    response = poster.post(f"{server.base}/api/runs", json=body)
                except httpx.TransportError:
                    return  # the server is gone: this one was never acknowledged
                if response.status_code in (200, 202):
                    acked.append(response.json()["run_id"])
                    first.set()

    posting = threading.Thread(target=post_all)
    posting.start()
    if not first.wait(60):
        raise SystemExit(f"serve acknowledged nothing:\n{server.log.read_text()[-3000:]}")
    time.sleep(kill_s)
    server.signal(signal.SIGKILL)
    posting.join()
    before = store_state(url, acked)
    in_flight = sum(1 for status, _ in before.values() if status == "running")
    time.sleep(1.5)
    started = time.monotonic()
    server = Served(scratch, url, args.backend)
    restarted = server.proc.pid
    try:
        wait_terminal(url, acked, 60)
        resume_s = time.monotonic() - started
        answered = {}
        with httpx.Client(timeout=30) as client:
            for run_id in acked:
                response = client.get(f"{server.base}/api/runs/{run_id}")
                answered[run_id] = (
                    response.json()["status"] if response.status_code == 200 else "lost"
                )
        tracebacks = server.unhandled_errors()
    finally:
        server.signal(signal.SIGINT)
    # The chaos stages log "run stage pid" lines, as the lease stages do.
    return {
        "in_flight_at_kill": in_flight,
        "resume_s": round(resume_s, 2),
        **tally(url, acked, log, [answered], before=before, after_pids={restarted}),
        "tracebacks": tracebacks,
    }


def scenario_serve_quick_restart(args: Any, scratch: Path) -> None:
    for kind in stores(args):
        started = time.perf_counter()
        result = _spread(
            args,
            scratch,
            kind,
            "serve-quick",
            lambda url, kill_s, kind=kind: _serve_quick_restart(args, scratch, url, kind, kill_s),
        )
        emit(
            "lease_serve_quick_restart",
            store=kind,
            backend=args.backend,
            stale_after_s=60.0,
            **result,
            wall_s=round(time.perf_counter() - started, 2),
        )


#: Registered in ``bench/chaos.py``'s ``SCENARIOS``.
LEASE_SCENARIOS = {
    "quick-restart": scenario_quick_restart,
    "serve-quick-restart": scenario_serve_quick_restart,
    "second-replica": scenario_second_replica,
    "clock-step": scenario_clock_step,
    "starved-loop": scenario_starved_loop,
}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_lease":
        child_main(sys.argv[2:])
    else:
        raise SystemExit("run the scenarios through bench/chaos.py --only quick-restart ...")
