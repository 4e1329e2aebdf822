"""The SQL of the stage result cache (``stage_results``, migrations 0003, 0008), both dialects.

Kept apart from :mod:`._sql` like the sweeps' statements; each function runs inside one
transaction given as a :class:`~._sql.Tx`. A key is stored once: the first write wins
(``ON CONFLICT (key) DO NOTHING``), so runtimes sharing a database that computed the
same result at once neither fail nor overwrite each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core import CachedResult

if TYPE_CHECKING:
    from ._sql import Tx

__all__ = [
    "clear_cached_results",
    "get_cached_result",
    "list_cached_results",
    "put_cached_result",
]

_COLS = "key, stage, version, size, run_id, created_at, code"


def put_cached_result(tx: Tx, result: CachedResult) -> bool:
    """Insert ``result`` unless its key exists; return whether it was inserted."""
    inserted = tx.execute(
        f"INSERT INTO stage_results ({_COLS}, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (key) DO NOTHING",
        (
            result.key,
            result.stage,
            result.version,
            result.size,
            result.run_id,
            tx.ts_in(result.created_at),
            result.code,
            result.result,
        ),
    )
    return inserted == 1


def clear_cached_results(tx: Tx, stage: str | None) -> int:
    """Delete the cached results (of ``stage`` only, if given); return how many."""
    if stage is None:
        return tx.execute("DELETE FROM stage_results")
    return tx.execute("DELETE FROM stage_results WHERE stage = ?", (stage,))


def _record(tx: Tx, row: tuple[Any, ...], result: Any = b"") -> CachedResult:
    created = tx.ts_out(row[5])
    assert created is not None
    return CachedResult(
        key=row[0],
        stage=row[1],
        version=row[2],
        size=row[3],
        run_id=row[4],
        created_at=created,
        code=row[6],
        result=bytes(result),
    )


def get_cached_result(tx: Tx, key: str) -> CachedResult | None:
    rows = tx.fetchall(f"SELECT {_COLS}, result FROM stage_results WHERE key = ?", (key,))
    return _record(tx, rows[0], rows[0][7]) if rows else None


def list_cached_results(tx: Tx, stage: str | None, limit: int) -> list[CachedResult]:
    if stage is None:
        rows = tx.fetchall(f"SELECT {_COLS} FROM stage_results ORDER BY seq DESC LIMIT ?", (limit,))
    else:
        rows = tx.fetchall(
            f"SELECT {_COLS} FROM stage_results WHERE stage = ? ORDER BY seq DESC LIMIT ?",
            (stage, limit),
        )
    return [_record(tx, r) for r in rows]
