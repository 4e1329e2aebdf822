"""Submits per second when ``submit()`` returns only once the run's row is durable.

``Runtime.submit()`` acknowledges a persisted run only after its row is committed (issue
21); concurrent submits share one group commit. Measured on a SQLite file (and
PostgreSQL when a server answers, in a scratch schema), with 1 and with 100 concurrent
submitters, each submitting 5-stage no-op runs one after another:

- ``submit_per_s``: runs acknowledged per second (until the last ``submit()`` returned);
- ``end_to_end_per_s``: runs per second until every run ended (stored completed).

Baselines in the same process: the same submits with no store (``store: none``, the
ceiling), and plain ``sqlite3`` inserting and committing one row per run one after
another (``raw_sqlite_commit_per_row``, what a durable ack costs without group commit).

``--compare SRC`` also runs this script with ``PYTHONPATH=SRC`` (e.g. ``/work/main/src``,
where ``submit()`` returned before the row was written) in a child process, rounds
interleaved, and prints the ratios of this checkout's figures to its. Prints one JSON
object per line; ``--runs`` (default 2000) runs per figure keeps it well under a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef

PG_URL = os.environ.get("CRUCIBLE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"


@ca.stage("noop")
async def noop(ctx: Context, opts: Any) -> Context:
    """Do nothing: what is measured is the runtime and the store."""
    return ctx


def experiment() -> Experiment:
    return Experiment(id="ack", pipeline=[StageDef(name="noop") for _ in range(5)])


async def measure(store: Any, runs: int, submitters: int) -> dict[str, float]:
    """Submit ``runs`` runs from ``submitters`` tasks; return the two rates."""
    reg = Registry()
    reg.register(noop)
    exp = experiment()
    async with ca.open_runtime(store=store, registry=reg, keep_finished=runs) as rt:
        t0 = time.perf_counter()

        async def submitter(n: int) -> None:
            for _ in range(n):
                await rt.submit(exp, persist=store is not None)

        async with anyio.create_task_group() as tg:
            for i in range(submitters):
                tg.start_soon(submitter, runs // submitters + (i < runs % submitters))
        acked = time.perf_counter() - t0
        await rt.wait_idle()
        ended = time.perf_counter() - t0
    return {"submit_per_s": runs / acked, "end_to_end_per_s": runs / ended}


def raw_commit_per_row(path: Path, runs: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, status TEXT, metadata TEXT)")
    t0 = time.perf_counter()
    for _ in range(runs):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO runs VALUES (?, 'running', '{}')", (uuid.uuid4().hex,))
        conn.execute("COMMIT")
    rate = runs / (time.perf_counter() - t0)
    conn.close()
    return rate


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception:
        return False
    return True


async def pg_measure(runs: int, submitters: int) -> dict[str, float]:
    import psycopg

    from crucible_actors.store import open_store

    schema = f"bench_ack_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-c%20search_path%3D{schema}"
        async with open_store(url, migrate=True) as store:
            return await measure(store, runs, submitters)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def figures(args: argparse.Namespace) -> list[dict[str, Any]]:
    """This process's figures, one dict per (store, submitters)."""
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="crucible-ack-") as tmp:
        root = Path(tmp)
        for submitters in (1, 100):
            runs = args.runs if submitters > 1 else max(1, args.runs // 4)
            sqlite_url = f"sqlite:///{root}/{submitters}.db"
            for store, fn in (
                ("none", lambda s=submitters, r=runs: measure(None, r, s)),
                ("sqlite", lambda s=submitters, r=runs, u=sqlite_url: measure(u, r, s)),
            ):
                rates = anyio.run(fn, backend=args.backend)
                out.append({"store": store, "submitters": submitters, "runs": runs, **rates})
            if not args.no_postgres and pg_available():
                rates = anyio.run(pg_measure, runs, submitters, backend=args.backend)
                out.append({"store": "postgresql", "submitters": submitters, "runs": runs, **rates})
        out.append(
            {
                "store": "raw_sqlite_commit_per_row",
                "submitters": 1,
                "runs": args.runs,
                "submit_per_s": raw_commit_per_row(root / "raw.db", args.runs),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--compare", metavar="SRC", help="also measure the package in SRC")
    parser.add_argument("--json-out", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json_out:  # the child of --compare: figures only
        print(json.dumps(figures(args)))
        return
    label = "this"
    other: list[dict[str, Any]] = []
    if args.compare:
        cmd = [sys.executable, __file__, "--json-out", "--runs", str(args.runs)]
        cmd += ["--backend", args.backend] + (["--no-postgres"] if args.no_postgres else [])
        env = {**os.environ, "PYTHONPATH": args.compare}
        other = json.loads(
            subprocess.run(cmd, env=env, capture_output=True, check=True, text=True).stdout
        )
    mine = figures(args)
    base = {(f["store"], f["submitters"]): f for f in other}
    for fig in mine:
        row = {"bench": "submit_ack", "package": label, "backend": args.backend, **fig}
        then = base.get((fig["store"], fig["submitters"]))
        if then is not None:
            for key in ("submit_per_s", "end_to_end_per_s"):
                if key in fig and key in then:
                    row[f"{key}_before"] = round(then[key], 1)
                    row[f"{key}_ratio"] = fig[key] / then[key]
        print(json.dumps({k: _rounded(k, v) for k, v in row.items()}))


def _rounded(key: str, value: Any) -> Any:
    if not isinstance(value, float):
        return value
    return round(value, 3) if key.endswith("_ratio") else round(value, 1)


if __name__ == "__main__":
    main()
