"""Deleting runs and collecting garbage on SQLite, against plain ``sqlite3`` doing the same.

A store is seeded with ``--runs`` finished runs (default 1,000), each with 6 checkpoints
of ~500 bytes (msgpack), 5 attempts and 3 trace events, and one in ten with a 256 KiB blob named
by its last checkpoint. The file (and its blob directory) is copied, then, in one process:

- ``delete_runs``: ``store.delete_runs(ids)`` deleting the older half of the runs, against
  the floor ``raw_delete``: plain ``sqlite3`` on the copy deleting the same rows from the
  same tables with the same ``IN (...)`` lists, in one transaction;
- ``gc``: ``store.gc()`` (read every checkpoint left for the blobs it names, delete the
  other blobs, ``VACUUM``, truncate the WAL), against the floor ``raw_gc``: ``os.unlink``
  of the same blob files (known in advance: no reading), then ``VACUUM`` and
  ``wal_checkpoint(TRUNCATE)`` on the copy.

Prints one JSON object per line (seconds, and the ratio to the floor). Usage:
``python bench/gc.py [--runs N] [--backend trio|asyncio]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import msgspec

from crucible_actors._core._data import EXT_BLOB, BlobRef, blob_digests
from crucible_actors._core.persistence._blobs import digest_of
from crucible_actors.store import (
    Checkpoint,
    ExperimentRecord,
    RunRecord,
    StageAttempt,
    TraceEventRecord,
    open_store,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BLOB = 256 * 1024


def _ref_bytes(digest: str) -> bytes:

    ref = msgspec.msgpack.encode(BlobRef(digest, BLOB, "msgpack", "bytes"))
    return msgspec.msgpack.encode({"assigns": {"X": msgspec.msgpack.Ext(EXT_BLOB, ref)}})


async def seed(url: str, runs: int) -> None:
    exp = ExperimentRecord(id="e", definition={}, created_at=T0, updated_at=T0)
    async with open_store(url) as store:
        blobs = store.blobs  # type: ignore[attr-defined]

        async def one(i: int) -> None:
            run_id = f"r{i:06d}"
            run = RunRecord(id=run_id, experiment_id="e", status="running", started_at=T0)
            data = msgspec.msgpack.encode({"assigns": {"x": os.urandom(480)}})
            await store.start_run(
                run,
                experiment=exp,
                checkpoint=Checkpoint(run_id=run_id, index=0, data=data, created_at=T0),
            )
            for k in range(1, 5):
                attempt = StageAttempt(
                    run_id=run_id,
                    index=k - 1,
                    stage="s",
                    attempt=1,
                    status="completed",
                    started_at=T0,
                )
                cp = Checkpoint(run_id=run_id, index=k, data=data, created_at=T0)
                await store.save_checkpoint(cp, attempts=[attempt])
            last = data
            if i % 10 == 0:
                content = os.urandom(BLOB)
                digest = digest_of([content])
                blobs.put(digest, [content], BLOB)
                last = _ref_bytes(digest)
            await store.finish_run(
                RunRecord(
                    id=run_id,
                    experiment_id="e",
                    status="completed",
                    started_at=T0,
                    finished_at=T0 + timedelta(seconds=1),
                ),
                artifacts=[],
                events=[
                    TraceEventRecord(run_id=run_id, seq=s, type="t", event={"n": s})
                    for s in range(1, 4)
                ],
                attempts=[
                    StageAttempt(
                        run_id=run_id,
                        index=4,
                        stage="s",
                        attempt=1,
                        status="completed",
                        started_at=T0,
                    )
                ],
                checkpoint=Checkpoint(run_id=run_id, index=5, data=last, created_at=T0),
            )

        async with anyio.create_task_group() as tg:
            for i in range(runs):
                tg.start_soon(one, i)


def doomed(runs: int) -> list[str]:
    """The runs deleted: the older half."""
    return [f"r{i:06d}" for i in range(runs // 2)]


def raw_delete(path: Path, ids: list[str]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        marks = ", ".join("?" * len(chunk))
        conn.execute(
            f"SELECT SUM(length(context)) FROM checkpoints WHERE run_id IN ({marks})", chunk
        )
        for table in ("stage_attempts", "checkpoints", "artifacts", "trace_events", "sweep_points"):
            conn.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", chunk)
        conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def raw_gc(path: Path, garbage: list[Path]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    started = time.perf_counter()
    for blob in garbage:
        os.unlink(blob)
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def garbage_of(path: Path, ids: list[str]) -> list[Path]:
    """The blob files only the runs ``ids`` name (each run names its own)."""
    conn = sqlite3.connect(path)
    marks = ", ".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT context FROM checkpoints WHERE stage_index = 5 AND run_id IN ({marks})", ids
    ).fetchall()
    conn.close()
    digests = set().union(*(blob_digests(bytes(r[0])) for r in rows))
    return [Path(f"{path}.blobs") / d[:2] / d for d in digests]


async def ours(url: str, ids: list[str]) -> tuple[float, float, Any, Any]:
    async with open_store(url) as store:
        started = time.perf_counter()
        deleted = await store.delete_runs(ids)
        t_delete = time.perf_counter() - started
        started = time.perf_counter()
        result = await store.gc()
        t_gc = time.perf_counter() - started
    return t_delete, t_gc, deleted, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "a" / "x.db"
        copy = Path(tmp) / "b" / "x.db"
        anyio.run(seed, f"sqlite:///{db}", args.runs, backend=args.backend)
        copy.parent.mkdir()
        shutil.copy(db, copy)
        shutil.copytree(f"{db}.blobs", f"{copy}.blobs")
        ids = doomed(args.runs)
        garbage = garbage_of(copy, ids)
        floor_delete = raw_delete(copy, ids)
        floor_gc = raw_gc(copy, garbage)
        t_delete, t_gc, deleted, result = anyio.run(
            ours, f"sqlite:///{db}", ids, backend=args.backend
        )
    common = {"runs": args.runs, "backend": args.backend}
    print(
        json.dumps(
            {
                "figure": "delete_runs",
                **common,
                "seconds": round(t_delete, 4),
                "floor": "raw_delete",
                "floor_seconds": round(floor_delete, 4),
                "ratio": round(t_delete / floor_delete, 2),
                "deleted_runs": len(deleted.run_ids),
            }
        )
    )
    print(
        json.dumps(
            {
                "figure": "gc",
                **common,
                "seconds": round(t_gc, 4),
                "floor": "raw_gc",
                "floor_seconds": round(floor_gc, 4),
                "ratio": round(t_gc / floor_gc, 2),
                "blobs": result.blobs,
                "freed_bytes": result.freed,
            }
        )
    )


if __name__ == "__main__":
    main()
