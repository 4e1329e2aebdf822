"""The SQL of what runs' provenance stores by content (migration 0008), both dialects.

Two tables, each keyed by the digest of its record's content and shared by the runs
that refer to it from ``runs.provenance``: ``environments`` (versions, packages,
platform, host, git) and ``definitions`` (the experiment definition a run executed).
Like :mod:`._cache`, each function runs inside one transaction given as a
:class:`~._sql.Tx`, and the first write of an id wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .._core import DefinitionRecord, EnvironmentRecord

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._sql import Tx

__all__ = ["get_definitions", "get_environment", "put_definition", "put_environment"]

#: Ids per ``IN (...)`` query of :func:`get_definitions` (well under SQLite's limit).
_CHUNK: Final = 500


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


def put_definition(tx: Tx, definition: DefinitionRecord) -> bool:
    """Insert ``definition`` unless its id exists; return whether it was inserted."""
    inserted = tx.execute(
        "INSERT INTO definitions (id, definition, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (definition.id, tx.json_in(definition.definition), tx.ts_in(definition.created_at)),
    )
    return inserted == 1


def get_definitions(tx: Tx, ids: Sequence[str]) -> dict[str, DefinitionRecord]:
    """Return the definitions stored under ``ids`` (those that exist), by id."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, DefinitionRecord] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = tx.fetchall(
            f"SELECT id, definition, created_at FROM definitions WHERE id IN ({marks})",
            chunk,
        )
        for row_id, body, created_raw in rows:
            created = tx.ts_out(created_raw)
            assert created is not None
            found[row_id] = DefinitionRecord(
                id=row_id, definition=tx.json_out(body), created_at=created
            )
    return found
