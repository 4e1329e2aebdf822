"""The SQL of the provenance environments (table ``environments``, migration 0008), both dialects.

An environment (versions, packages, platform, host, git) is stored once under the
digest of its content; runs refer to it by that id from ``runs.provenance``. Like
:mod:`._cache`, each function runs inside one transaction given as a
:class:`~._sql.Tx`, and the first write of an id wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core._store import EnvironmentRecord

if TYPE_CHECKING:
    from ._sql import Tx

__all__ = ["get_environment", "put_environment"]


def put_environment(tx: Tx, env: EnvironmentRecord) -> bool:
    """Insert ``env`` unless its id exists; return whether it was inserted."""
    inserted = tx.execute(
        "INSERT INTO environments (id, record, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (env.id, tx.json_in(env.record), tx.ts_in(env.created_at)),
    )
    return inserted == 1


def get_environment(tx: Tx, env_id: str) -> EnvironmentRecord | None:
    """Return the environment stored under ``env_id``, or None."""
    rows = tx.fetchall("SELECT id, record, created_at FROM environments WHERE id = ?", (env_id,))
    if not rows:
        return None
    created = tx.ts_out(rows[0][2])
    assert created is not None
    return EnvironmentRecord(id=rows[0][0], record=tx.json_out(rows[0][1]), created_at=created)
