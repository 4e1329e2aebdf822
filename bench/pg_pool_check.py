"""What checking each pooled PostgreSQL connection on checkout costs (issue 21).

The PostgreSQL store's read pool runs ``ConnectionPool.check_connection`` (one empty
round trip) whenever it hands out a connection, so that after a server restart no read
gets a dead connection. Measured here, in one process against the same server:
checkout + a one-statement transaction + return, with the check (what the store does)
and without it (the baseline), interleaved over ``--rounds`` rounds; the median of each
is printed as one JSON line in microseconds. It is paid per read; the writer keeps a
connection of its own (it reconnects when a write finds it broken).

Usage: ``python bench/pg_pool_check.py [--n 2000] [--rounds 5]`` (needs a server at
``CRUCIBLE_TEST_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import psycopg_pool

URL = os.environ.get("CRUCIBLE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"


def per_checkout_us(pool: psycopg_pool.ConnectionPool, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        with pool.connection() as conn, conn.transaction():
            conn.execute("SELECT 1")
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pools = {
        "unchecked": psycopg_pool.ConnectionPool(
            URL, min_size=1, max_size=2, kwargs={"autocommit": True}, open=True
        ),
        "checked": psycopg_pool.ConnectionPool(
            URL,
            min_size=1,
            max_size=2,
            kwargs={"autocommit": True},
            check=psycopg_pool.ConnectionPool.check_connection,
            open=True,
        ),
    }
    try:
        for pool in pools.values():
            pool.wait()
            per_checkout_us(pool, 200)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in pools}
        for _ in range(args.rounds):
            for name, pool in pools.items():
                times[name].append(per_checkout_us(pool, args.n))
    finally:
        for pool in pools.values():
            pool.close()
    median = {name: round(statistics.median(t), 1) for name, t in times.items()}
    print(
        json.dumps(
            {
                "bench": "pg_pool_check",
                "us_per_checkout_tx": median,
                "check_cost_us": round(median["checked"] - median["unchecked"], 1),
                "ratio": round(median["checked"] / median["unchecked"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
