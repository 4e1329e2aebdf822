"""Persisted runs per second: the runtime with a store, against raw SQLite baselines.

Every figure is a 5-stage pipeline whose stages do no work, so what is measured is the
cost of persisting a run: the run row, a durable Context checkpoint before every stage
(each completed attempt commits with the checkpoint that follows it) and the outcome
with the final Context. That is 6 commits per run, in WAL mode on SQLite at the store's
durability level (``--durability``: ``process``, the default, is ``synchronous=NORMAL``;
``power`` is ``synchronous=FULL``); every raw baseline uses the same setting.

Measured, in one process, on one backend (default trio):

- ``runtime`` on SQLite with group commit and with one transaction per write
  (``max_batch=1``), and on PostgreSQL when a server answers
  (``CRUCIBLE_TEST_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432/test``,
  in a scratch schema that is dropped afterwards); each with 1 and 100 concurrent runs;
- baseline (a) ``raw_sqlite_batched``: the same rows inserted by plain ``sqlite3`` in a
  loop, 100 runs per transaction: SQLite's own batched insert rate;
- baseline (b) ``bare_anyio_group_commit``: bare anyio tasks of the same shape (5 stages,
  6 awaited writes per run) feeding one minimal group-committing ``sqlite3`` writer
  thread with the same rows, statement by statement, with 1 and 100 concurrent runs;
- ``raw_sqlite_commit_per_write``: plain ``sqlite3`` committing each of the 6 writes of
  a run on its own (a commit at every stage boundary), one run after another;
- baseline (c) ``bare_anyio_writer_thread``: one bare anyio run at a time whose 6 writes
  are each committed by a minimal dedicated thread (a ``SimpleQueue`` in, one
  ``run_sync_soon`` out): the floor of commit per stage for any store that keeps the
  database off the event loop's thread;
- ``ca_run_sqlite`` / ``ca_run_no_store``: one blocking ``ca.run(...)`` per run (its own
  loop, store opened, owner registered, orphans looked for, store closed), against the
  floor ``raw_sqlite_one_run``: plain ``sqlite3`` connecting, setting the same pragmas and
  committing the same 8 writes (owner, the run's 6, owner removed) per run.

Also ``runtime_no_store``: the same runs with no store, the ceiling any store can reach.

Ratios printed (targets from issue 12): runtime with group commit at 100 concurrent
runs over baseline (b) at 100 (target >= 0.8); runtime at 1 concurrent run, which
commits at every stage boundary, over the raw commit-per-write loop (target >= 0.7),
and the floor of that ratio, baseline (c) over the raw loop; the same with 100
concurrent runs and one transaction per write; for information, runtime at 100 over
baseline (a), and the ceiling: runtime without a store over (b). Then one persisted
5-stage run, through ``ca.run`` and inside an open runtime: its absolute ms, its ratio
to its floor (target <= 2: the same runs without a store plus the raw loop writing the
same rows with the same commits), and to the recorded Dagster (282 ms per 5-op job on
SQLite) and Prefect (1,091 ms per 5-task flow) figures.

Prints one JSON object per line. Usage:
``python bench/store.py [--backend trio|asyncio] [--durability process|power] [--runs N]
[--serial-runs N] [--rounds N] [--no-postgres]``. The SQLite figures are measured
``--rounds`` times (default 3), interleaved, and the ratios use the medians (the figures
of each round are printed too).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import queue
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import msgspec
import msgspec.structs

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef
from crucible_actors._core._encoding import encode_context
from crucible_actors.store import open_sqlite_store, open_store

STAGES = 5
#: Recorded peer figures (issue 12): Dagster on SQLite per 5-op job, Prefect per 5-task flow.
DAGSTER_MS = 282.0
PREFECT_MS = 1091.0
PG_URL = os.environ.get("CRUCIBLE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"


@ca.stage("noop")
async def noop(ctx: Context, opts: Any) -> Context:
    return ctx


EXPERIMENT = Experiment(id="bench", pipeline=[StageDef(name="noop") for _ in range(STAGES)])


def registry() -> Registry:
    reg = Registry()
    reg.register(noop)
    return reg


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "store", "durability": DURABILITY, **fields}), flush=True)


# -- the rows one run writes, as plain parameters -----------------------------------------

NOW = datetime.now(UTC).isoformat(timespec="microseconds")
DEFINITION = json.dumps({"id": "bench", "pipeline": [{"name": "noop"}] * STAGES})


def new_run_id() -> str:
    """A run id as the runtime makes them: a random UUID4 string.

    The baselines use the same ids as the runtime so their rows are the same rows: random
    keys land on scattered B-tree pages, and a commit writes every page it dirtied.
    """
    return str(uuid.uuid4())


def snapshots() -> list[bytes]:
    """The Contexts the runtime checkpoints: before each stage, with the stage's
    telemetry (attempt, idempotency key) as the runtime leaves it, and after the last."""
    run_id = new_run_id()
    ctx = Context.new(EXPERIMENT, run_id=run_id)
    out = [encode_context(ctx)]
    for k in range(STAGES):
        ctx = msgspec.structs.replace(
            ctx,
            telemetry_context={
                **ctx.telemetry_context,
                "stage": "noop",
                "attempt": 1,
                "idempotency_key": f"{run_id}/noop/{k + 1}",
            },
        ).mark_stage_complete("noop")
        out.append(encode_context(ctx))
    return out


SNAPSHOTS = snapshots()

Write = list[tuple[str, tuple[Any, ...]]]

EXP_SQL = (
    "INSERT INTO experiments (id, definition, owner, tags, metadata, created_at, updated_at)"
    " VALUES (?, ?, NULL, '[]', '{}', ?, ?) ON CONFLICT (id) DO UPDATE SET"
    " definition = excluded.definition, updated_at = excluded.updated_at"
)
RUN_SQL = (
    "INSERT INTO runs (id, experiment_id, status, metrics, outputs, metadata, failure,"
    " started_at, finished_at, owner_id) VALUES (?, 'bench', 'running', '{}', '[]',"
    " '{\"resumed_from\": 0}', NULL, ?, NULL, 'bench') ON CONFLICT (id) DO NOTHING"
)
CP_SQL = (
    "INSERT INTO checkpoints (run_id, stage_index, context, created_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (run_id, stage_index) DO UPDATE SET context = excluded.context"
)
ATTEMPT_SQL = (
    "INSERT INTO stage_attempts (run_id, stage_index, attempt, stage, status, started_at,"
    " finished_at, duration, error) VALUES (?, ?, 1, 'noop', 'completed', ?, ?, 0.0001, NULL)"
    " ON CONFLICT (run_id, stage_index, attempt) DO UPDATE SET status = excluded.status"
)
FINISH_SQL = (
    "UPDATE runs SET status = 'completed', metrics = '{}', outputs = '[]',"
    " metadata = '{\"resumed_from\": 0}', failure = NULL, finished_at = ? WHERE id = ?"
    " AND owner_id IS 'bench'"
)


def run_writes(run_id: str) -> list[Write]:
    """The 6 writes (commits) of one run, grouped as the runtime groups them."""
    writes: list[Write] = [
        [
            (EXP_SQL, ("bench", DEFINITION, NOW, NOW)),
            (RUN_SQL, (run_id, NOW)),
            (CP_SQL, (run_id, 0, SNAPSHOTS[0], NOW)),
        ]
    ]
    for k in range(STAGES - 1):
        writes.append(
            [
                (ATTEMPT_SQL, (run_id, k, NOW, NOW)),
                (CP_SQL, (run_id, k + 1, SNAPSHOTS[k + 1], NOW)),
            ]
        )
    writes.append(
        [
            (ATTEMPT_SQL, (run_id, STAGES - 1, NOW, NOW)),
            (CP_SQL, (run_id, STAGES, SNAPSHOTS[STAGES], NOW)),
            (FINISH_SQL, (NOW, run_id)),
            ("DELETE FROM artifacts WHERE run_id = ?", (run_id,)),
            ("DELETE FROM trace_events WHERE run_id = ?", (run_id,)),
        ]
    )
    return writes


def fresh_db(root: Path) -> Path:
    """Create a migrated, empty database file (through the store, then closed)."""
    path = root / f"{uuid.uuid4().hex}.db"

    async def create() -> None:
        async with open_sqlite_store(path):
            pass

    anyio.run(create)
    return path


#: ``PRAGMA synchronous`` of each durability level (WAL mode for both).
SYNCHRONOUS = {"process": "NORMAL", "power": "FULL"}
#: The durability level of every figure; set from ``--durability`` in :func:`main`.
DURABILITY = "process"


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[DURABILITY]}")
    return conn


def store_options() -> dict[str, Any]:
    """``open_sqlite_store`` keywords selecting :data:`DURABILITY`.

    A store without durability levels (before they existed) always synced like
    ``"power"``; ``main`` refuses ``--durability process`` for it.
    """
    if "durability" in inspect.signature(open_sqlite_store).parameters:
        return {"durability": DURABILITY}
    return {}


def store_url(path: Path) -> str:
    """The ``sqlite:///`` URL of ``path`` at :data:`DURABILITY` (what ``ca.run`` opens)."""
    query = f"?durability={DURABILITY}" if store_options() else ""
    return f"sqlite:///{path}{query}"


# -- baselines ------------------------------------------------------------------------


def raw_batched(path: Path, runs: int, per_commit: int = 100) -> float:
    """Baseline (a): the same rows, plain sqlite3, ``per_commit`` runs per transaction."""
    rows = [w for i in range(runs) for w in run_writes(new_run_id())]
    per_run = len(rows) // runs
    with closing(raw_connection(path)) as conn:
        t0 = time.perf_counter()
        for start in range(0, len(rows), per_commit * per_run):
            conn.execute("BEGIN IMMEDIATE")
            for write in rows[start : start + per_commit * per_run]:
                for sql, params in write:
                    conn.execute(sql, params)
            conn.execute("COMMIT")
        return runs / (time.perf_counter() - t0)


def raw_commit_per_write(path: Path, runs: int) -> float:
    """The same rows, plain sqlite3, one transaction per write, one run after another."""
    rows = [run_writes(new_run_id()) for i in range(runs)]
    with closing(raw_connection(path)) as conn:
        t0 = time.perf_counter()
        for writes in rows:
            for write in writes:
                conn.execute("BEGIN IMMEDIATE")
                for sql, params in write:
                    conn.execute(sql, params)
                conn.execute("COMMIT")
        return runs / (time.perf_counter() - t0)


class MiniWriter:
    """The least a group-committing writer can be: a queue, a thread, one commit a batch."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.send, self.recv = anyio.create_memory_object_stream[tuple[Write, anyio.Event]](1024)
        self.limiter = anyio.CapacityLimiter(1)

    async def write(self, write: Write) -> None:
        done = anyio.Event()
        await self.send.send((write, done))
        await done.wait()

    def _commit(self, batch: list[tuple[Write, anyio.Event]]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        for write, _ in batch:
            for sql, params in write:
                self.conn.execute(sql, params)
        self.conn.execute("COMMIT")

    async def run(self) -> None:
        async for first in self.recv:
            batch = [first]
            while True:
                try:
                    batch.append(self.recv.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            await anyio.to_thread.run_sync(self._commit, batch, limiter=self.limiter)
            for _, done in batch:
                done.set()


class MiniThreadWriter:
    """The least a writer on its own thread can be: a SimpleQueue in, run_sync_soon out.

    No batching: one commit per write. It is the floor of an acknowledged write that
    keeps the database off the event loop's thread, without any ``to_thread`` hop.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.queue: queue.SimpleQueue[tuple[Write, anyio.Event] | None] = queue.SimpleQueue()
        self.token = anyio.lowlevel.current_token()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        token = self.token
        while (item := self.queue.get()) is not None:
            write, done = item
            self.conn.execute("BEGIN IMMEDIATE")
            for sql, params in write:
                self.conn.execute(sql, params)
            self.conn.execute("COMMIT")
            token.backend_class.run_sync_soon(done.set, (), token.native_token)

    async def write(self, write: Write) -> None:
        done = anyio.Event()
        self.queue.put((write, done))
        await done.wait()


async def bare_anyio_thread(path: Path, runs: int) -> float:
    """Baseline (c): one bare anyio run at a time, each write committed by its own thread."""
    todo = [run_writes(new_run_id()) for i in range(runs)]
    with closing(raw_connection(path)) as conn:
        writer = MiniThreadWriter(conn)
        t0 = time.perf_counter()
        for writes in todo:
            await writer.write(writes[0])
            for write in writes[1:]:
                await anyio.lowlevel.checkpoint()  # the "stage"
                await writer.write(write)
        rate = runs / (time.perf_counter() - t0)
        writer.queue.put(None)
        await anyio.to_thread.run_sync(writer.thread.join)
    return rate


async def bare_anyio(path: Path, runs: int, concurrency: int) -> float:
    """Baseline (b): bare anyio runs of the same shape feeding one group-commit writer."""
    todo = [run_writes(new_run_id()) for i in range(runs)]
    with closing(raw_connection(path)) as conn:
        writer = MiniWriter(conn)

        async def worker() -> None:
            while todo:
                writes = todo.pop()
                await writer.write(writes[0])
                for write in writes[1:]:
                    await anyio.lowlevel.checkpoint()  # the "stage"
                    await writer.write(write)

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            async with anyio.create_task_group() as workers:
                for _ in range(concurrency):
                    workers.start_soon(worker)
            writer.send.close()
        return runs / (time.perf_counter() - t0)


# -- the runtime ------------------------------------------------------------------------


async def runtime_rate(store: Any, runs: int, concurrency: int) -> float:
    """Persisted runs per second through ``open_runtime(store=...)``."""
    reg = registry()
    async with ca.open_runtime(
        store=store, registry=reg, max_concurrent_runs=concurrency, keep_finished=100
    ) as rt:
        for _ in range(min(20, runs)):  # warm up: imports, prepared statements, caches
            await rt.submit(EXPERIMENT)
        await rt.wait_idle()
        t0 = time.perf_counter()
        for _ in range(runs):
            await rt.submit(EXPERIMENT)
        await rt.wait_idle()
        elapsed = time.perf_counter() - t0
        failed = {k: v for k, v in rt.statistics().by_status.items() if k != "completed"}
    if failed:
        raise SystemExit(f"runs did not complete: {failed}")
    return runs / elapsed


async def sqlite_runtime(root: Path, runs: int, concurrency: int, max_batch: int) -> dict[str, Any]:
    path = await anyio.to_thread.run_sync(fresh_db, root)
    async with open_sqlite_store(path, max_batch=max_batch, **store_options()) as store:
        rate = await runtime_rate(store, runs, concurrency)
        return {"runs_per_s": round(rate, 1), "commits": store.batches, "writes": store.writes}


OWNER_SQL = (
    "INSERT INTO owners (id, host, pid, started_at, heartbeat_at) VALUES (?, 'bench', 1, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
)


def raw_one_run(path: Path, runs: int) -> float:
    """Floor of ``ca.run`` with a store: what one call writes, in plain sqlite3.

    Per run: connect and set WAL and the durability's ``synchronous``, register an owner,
    the run's 6 writes, remove the owner: 8 commits, each its own transaction.
    """
    rows = [run_writes(new_run_id()) for i in range(runs)]
    t0 = time.perf_counter()
    for writes in rows:
        owner = uuid.uuid4().hex
        with closing(raw_connection(path)) as conn:
            for write in [
                [(OWNER_SQL, (owner, NOW, NOW))],
                *writes,
                [("DELETE FROM owners WHERE id = ?", (owner,))],
            ]:
                conn.execute("BEGIN IMMEDIATE")
                for sql, params in write:
                    conn.execute(sql, params)
                conn.execute("COMMIT")
    return runs / (time.perf_counter() - t0)


#: The figures measured with ``max(10, serial_runs // 10)`` runs (a loop and a store per run).
ONE_RUN = ("raw_sqlite_one_run", "ca_run_sqlite", "ca_run_no_store")


def ca_run_rate(path: Path | None, runs: int, backend: str) -> float:
    """Runs per second of ``ca.run(experiment, store=...)``, one blocking call per run.

    Each call starts its own event loop, opens the store, registers its owner, looks for
    orphans, runs, and closes it all again: what a researcher at a shell pays per run.
    ``path=None`` runs without a store.
    """
    reg = registry()
    url = store_url(path) if path is not None else None
    ca.run(EXPERIMENT, registry=reg, store=url, backend=backend)  # warm up
    t0 = time.perf_counter()
    for _ in range(runs):
        ca.run(EXPERIMENT, registry=reg, store=url, backend=backend)
    return runs / (time.perf_counter() - t0)


def pg_available() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


async def pg_runtime(runs: int, concurrency: int) -> dict[str, Any]:
    import psycopg

    schema = f"crucible_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-c%20search_path%3D{schema}"
    try:
        async with open_store(url, migrate=True) as store:
            rate = await runtime_rate(store, runs, concurrency)
            return {
                "runs_per_s": round(rate, 1),
                "commits": store.batches,  # type: ignore[attr-defined]
                "writes": store.writes,  # type: ignore[attr-defined]
            }
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def measure_round(root: Path, counts: dict[int, int], backend: str) -> dict[tuple[str, int], float]:
    """One round of every SQLite figure: the baselines and the runtime, interleaved."""
    results: dict[tuple[str, int], float] = {}
    results["raw_sqlite_batched", 0] = raw_batched(fresh_db(root), counts[100])
    results["raw_sqlite_commit_per_write", 1] = raw_commit_per_write(fresh_db(root), counts[1])
    results["bare_anyio_writer_thread", 1] = anyio.run(
        bare_anyio_thread, fresh_db(root), counts[1], backend=backend
    )
    for conc, runs in counts.items():
        results["bare_anyio_group_commit", conc] = anyio.run(
            bare_anyio, fresh_db(root), runs, conc, backend=backend
        )
        for label, max_batch in (("group_commit", 512), ("transaction_per_write", 1)):
            fig = anyio.run(sqlite_runtime, root, runs, conc, max_batch, backend=backend)
            results[f"runtime_sqlite_{label}", conc] = fig["runs_per_s"]
        results["runtime_no_store", conc] = anyio.run(
            runtime_rate, None, runs, conc, backend=backend
        )
    one = max(10, counts[1] // 10)
    results["raw_sqlite_one_run", 1] = raw_one_run(fresh_db(root), one)
    results["ca_run_sqlite", 1] = ca_run_rate(fresh_db(root), one, backend)
    results["ca_run_no_store", 1] = ca_run_rate(None, one, backend)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--runs", type=int, default=3000, help="runs at 100 concurrent")
    parser.add_argument("--serial-runs", type=int, default=400, help="runs at 1 concurrent")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the SQLite figures (medians reported)"
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--durability",
        choices=tuple(SYNCHRONOUS),
        default="process",
        help="the SQLite store's durability level, and the baselines' synchronous setting",
    )
    args = parser.parse_args()
    backend = args.backend
    global DURABILITY
    DURABILITY = args.durability
    if DURABILITY != "power" and not store_options():
        raise SystemExit("this store has no durability levels: it syncs as --durability power")
    counts = {1: args.serial_runs, 100: args.runs}

    with tempfile.TemporaryDirectory(prefix="crucible-bench-") as tmp:
        root = Path(tmp)
        rounds: list[dict[tuple[str, int], float]] = []
        for number in range(1, max(1, args.rounds) + 1):
            got = measure_round(root, counts, backend)
            rounds.append(got)
            for (name, conc), rate in got.items():
                emit(
                    name=name,
                    round=number,
                    backend=backend,
                    concurrency=conc or 100,
                    runs=max(10, counts[1] // 10) if name in ONE_RUN else counts[conc or 100],
                    runs_per_s=round(rate, 1),
                )
        results = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        for (name, conc), rate in results.items():
            emit(
                name=name,
                statistic="median",
                backend=backend,
                concurrency=conc or 100,
                runs_per_s=round(rate, 1),
            )
        if not args.no_postgres and pg_available():
            for conc, runs in counts.items():
                fig = anyio.run(pg_runtime, runs, conc, backend=backend)
                emit(name="runtime_postgres", backend=backend, concurrency=conc, runs=runs, **fig)
        elif not args.no_postgres:
            emit(name="runtime_postgres", skipped=f"no PostgreSQL server at {PG_URL}")

        def ratio(name: str, num: tuple[str, int], den: tuple[str, int], **extra: Any) -> None:
            per_round = [r[num] / r[den] for r in rounds]
            emit(
                name=name,
                value=round(results[num] / results[den], 3),
                per_round=[round(v, 3) for v in per_round],
                **extra,
            )

        ratio(
            "ratio_runtime_vs_bare_anyio_group_commit",
            ("runtime_sqlite_group_commit", 100),
            ("bare_anyio_group_commit", 100),
            concurrency=100,
            target=0.8,
        )
        ratio(
            "ratio_runtime_commit_per_stage_vs_raw_loop",
            ("runtime_sqlite_group_commit", 1),
            ("raw_sqlite_commit_per_write", 1),
            concurrency=1,
            target=0.7,
        )
        ratio(
            "ratio_bare_anyio_commit_per_stage_vs_raw_loop",
            ("bare_anyio_group_commit", 1),
            ("raw_sqlite_commit_per_write", 1),
            concurrency=1,
            note="the same ratio for baseline (b): one thread hop per acknowledged write",
        )
        ratio(
            "floor_writer_thread_commit_per_stage_vs_raw_loop",
            ("bare_anyio_writer_thread", 1),
            ("raw_sqlite_commit_per_write", 1),
            concurrency=1,
            note="baseline (c): the floor of commit per stage with the database off the loop",
        )
        ratio(
            "ratio_runtime_commit_per_stage_vs_writer_thread_floor",
            ("runtime_sqlite_group_commit", 1),
            ("bare_anyio_writer_thread", 1),
            concurrency=1,
        )
        ratio(
            "ratio_runtime_transaction_per_write_vs_raw_loop",
            ("runtime_sqlite_transaction_per_write", 100),
            ("raw_sqlite_commit_per_write", 1),
            concurrency=100,
        )
        ratio(
            "ratio_runtime_vs_raw_sqlite_batched",
            ("runtime_sqlite_group_commit", 100),
            ("raw_sqlite_batched", 0),
            concurrency=100,
        )
        ratio(
            "ceiling_runtime_no_store_vs_bare_anyio_group_commit",
            ("runtime_no_store", 100),
            ("bare_anyio_group_commit", 100),
            concurrency=100,
        )

        def one_run(name: str, run: str, floor_parts: tuple[str, str], what: str) -> None:
            """Emit one persisted run: absolute ms, over its floor and over the peers."""

            def ms(key: str, r: dict[tuple[str, int], float] = results) -> float:
                return 1000.0 / r[key, 1]

            floor = ms(floor_parts[0]) + ms(floor_parts[1])
            per_round = [
                ms(run, r) / (ms(floor_parts[0], r) + ms(floor_parts[1], r)) for r in rounds
            ]
            emit(
                name=name,
                what=what,
                backend=backend,
                ms=round(ms(run), 3),
                floor_ms=round(floor, 3),
                floor=f"{floor_parts[0]} + {floor_parts[1]}",
                ratio_to_floor=round(ms(run) / floor, 3),
                per_round=[round(v, 3) for v in per_round],
                target=2.0,
                ratio_to_dagster_282ms=round(ms(run) / DAGSTER_MS, 5),
                ratio_to_prefect_1091ms=round(ms(run) / PREFECT_MS, 5),
            )

        one_run(
            "one_persisted_run_ca_run",
            "ca_run_sqlite",
            ("ca_run_no_store", "raw_sqlite_one_run"),
            "ca.run(experiment, store=sqlite URL): own loop, store opened and closed",
        )
        one_run(
            "one_persisted_run_in_runtime",
            "runtime_sqlite_group_commit",
            ("runtime_no_store", "raw_sqlite_commit_per_write"),
            "one run in flight in an open runtime (its store already open)",
        )


if __name__ == "__main__":
    main()
