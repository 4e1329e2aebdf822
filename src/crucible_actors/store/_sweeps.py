"""The SQL of sweeps (tables ``sweeps`` and ``sweep_points``, migration 0002), both dialects.

Kept apart from :mod:`._sql` so the run tables' statements stay as they are; each
function runs inside one transaction given as a :class:`~._sql.Tx`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core import StoreError, SweepPointRecord, SweepRecord

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from ._sql import Tx

__all__ = [
    "finish_sweep",
    "get_sweep",
    "list_sweep_points",
    "list_sweeps",
    "record_sweep",
]

_SWEEP_COLS = "id, experiment_id, sweep, runs, status, created_at, finished_at"


def record_sweep(
    tx: Tx, sweep: SweepRecord, points: Sequence[SweepPointRecord], store: str
) -> None:
    """Insert the sweep and its points.

    Raises:
        StoreError: a sweep with this id already exists.
    """
    inserted = tx.execute(
        f"INSERT INTO sweeps ({_SWEEP_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (
            sweep.id,
            sweep.experiment_id,
            tx.json_in(sweep.sweep),
            sweep.runs,
            sweep.status,
            tx.ts_in(sweep.created_at),
            tx.ts_in(sweep.finished_at),
        ),
    )
    if inserted != 1:
        raise StoreError(
            f"a sweep with id {sweep.id!r} already exists; choose another sweep_id",
            store=store,
        )
    if points:
        tx.insert_rows(
            "INSERT INTO sweep_points (sweep_id, position, point, repetition, run_id,"
            " parameters, seed)",
            "",
            [
                (p.sweep_id, p.index, p.point, p.repeat, p.run_id, tx.json_in(p.parameters), p.seed)
                for p in points
            ],
        )


def finish_sweep(tx: Tx, sweep_id: str, status: str, finished_at: datetime, store: str) -> None:
    """Set the sweep's outcome.

    Raises:
        StoreError: no sweep has this id.
    """
    changed = tx.execute(
        "UPDATE sweeps SET status = ?, finished_at = ? WHERE id = ?",
        (status, tx.ts_in(finished_at), sweep_id),
    )
    if changed != 1:
        raise StoreError(f"no sweep with id {sweep_id!r} to finish", store=store)


def _sweep(tx: Tx, row: tuple[Any, ...]) -> SweepRecord:
    created = tx.ts_out(row[5])
    assert created is not None
    return SweepRecord(
        id=row[0],
        experiment_id=row[1],
        sweep=tx.json_out(row[2]),
        runs=row[3],
        status=row[4],
        created_at=created,
        finished_at=tx.ts_out(row[6]),
    )


def get_sweep(tx: Tx, sweep_id: str) -> SweepRecord | None:
    rows = tx.fetchall(f"SELECT {_SWEEP_COLS} FROM sweeps WHERE id = ?", (sweep_id,))
    return _sweep(tx, rows[0]) if rows else None


def list_sweeps(tx: Tx, experiment_id: str | None, limit: int) -> list[SweepRecord]:
    if experiment_id is None:
        rows = tx.fetchall(f"SELECT {_SWEEP_COLS} FROM sweeps ORDER BY seq DESC LIMIT ?", (limit,))
    else:
        rows = tx.fetchall(
            f"SELECT {_SWEEP_COLS} FROM sweeps WHERE experiment_id = ? ORDER BY seq DESC LIMIT ?",
            (experiment_id, limit),
        )
    return [_sweep(tx, r) for r in rows]


def list_sweep_points(tx: Tx, sweep_id: str) -> list[SweepPointRecord]:
    rows = tx.fetchall(
        "SELECT sweep_id, position, point, repetition, run_id, parameters, seed"
        " FROM sweep_points WHERE sweep_id = ? ORDER BY position",
        (sweep_id,),
    )
    return [
        SweepPointRecord(
            sweep_id=r[0],
            index=r[1],
            point=r[2],
            repeat=r[3],
            run_id=r[4],
            parameters=tx.json_out(r[5]),
            seed=r[6],
        )
        for r in rows
    ]
