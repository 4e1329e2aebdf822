"""Real store faults for CLI and serve tests: an orphaned run whose recovery fails.

:func:`seed_unrecoverable_orphan` stores a run left ``running`` by a dead process on
this host in a SQLite file, and adds a trigger that makes every write changing that
run's status or owner fail (SQLite's ``RAISE(ABORT)``): start-up recovery then meets a
real store error on that one run, as it would on a row the store cannot write.
"""

from __future__ import annotations

import socket
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio

from crucible_actors import Context, Experiment, StageDef
from crucible_actors._core._encoding import encode_context
from crucible_actors.store import (
    Checkpoint,
    ExperimentRecord,
    OwnerRecord,
    RunRecord,
    open_store,
)

if TYPE_CHECKING:
    from pathlib import Path

#: A pid no process has: the orphan's owner is dead on this host.
DEAD_PID = 999_999_999


def seed_unrecoverable_orphan(db: Path, run_id: str = "poison1") -> None:
    """Store run ``run_id`` orphaned in ``db`` and make writes to it fail."""
    anyio.run(_seed, db, run_id)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "CREATE TRIGGER crucible_test_poison BEFORE UPDATE OF status, owner_id ON runs"
            f" WHEN OLD.id = '{run_id}'"
            " BEGIN SELECT RAISE(ABORT, 'injected: this run cannot be written'); END"
        )
        conn.commit()


def seed_orphan(db: Path, run_id: str = "orphan1") -> None:
    """Store run ``run_id`` in ``db`` as ``running`` under an owner that is dead on this
    host (its pid does not exist), with its initial checkpoint: a run to adopt."""
    anyio.run(_seed, db, run_id)


async def _seed(db: Path, run_id: str) -> None:
    now = datetime.now(UTC)
    exp = Experiment(id="orphaned", pipeline=[StageDef(stage="data_checks")])
    async with open_store(f"sqlite:///{db}") as store:
        await store.register_owner(
            OwnerRecord(
                id="dead", host=socket.gethostname(), pid=DEAD_PID, started_at=now, heartbeat_at=now
            )
        )
        await store.start_run(
            RunRecord(
                id=run_id, experiment_id=exp.id, status="running", started_at=now, owner_id="dead"
            ),
            experiment=ExperimentRecord(
                id=exp.id, definition={"id": exp.id}, created_at=now, updated_at=now
            ),
            checkpoint=Checkpoint(
                run_id=run_id,
                index=0,
                data=encode_context(Context.new(exp, run_id=run_id)),
                created_at=now,
            ),
        )
