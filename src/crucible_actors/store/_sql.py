"""The SQL both relational stores share: one statement set, two dialects.

Each function runs inside one transaction given as a :class:`Tx`, which the SQLite and
PostgreSQL adapters implement over their DB-API connections. Statements are written with
``?`` placeholders; a dialect may rewrite them (PostgreSQL uses ``%s``). JSON columns are
``TEXT`` on SQLite and ``jsonb`` on PostgreSQL, timestamps ISO 8601 text and
``timestamptz``, checkpoints ``BLOB`` and ``bytea``.

Migrations live in ``migrations/<dialect>/NNNN_name.sql``; both dialects carry the same
version numbers.
"""

from __future__ import annotations

import abc
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from .._core import (
    ArtifactRecord,
    Checkpoint,
    ExperimentRecord,
    OwnerRecord,
    OwnershipLost,
    RunNotFound,
    RunRecord,
    StageAttempt,
    StoreError,
    TraceEventRecord,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Migration", "Tx", "migrations", "redact_url"]

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def redact_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[2]}"))


class Migration(msgspec.Struct, frozen=True):
    """One versioned schema change."""

    version: int
    name: str
    sql: str


def migrations(dialect: str) -> list[Migration]:
    """Return the migrations of ``dialect`` (``sqlite`` or ``postgresql``) in order."""
    root = resources.files("crucible_actors.store").joinpath("migrations", dialect)
    found = []
    for entry in root.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(
                Migration(int(number), rest.removesuffix(".sql"), entry.read_text("utf-8"))
            )
    return sorted(found, key=lambda m: m.version)


class Tx(abc.ABC):
    """A transaction on a SQL database, and the dialect's value conversions."""

    #: SQL matching ``owner_id`` against a parameter that may be NULL.
    owner_match = "owner_id IS ?"

    #: Appended to the fencing query: locks the rows read until the commit, so a
    #: takeover waits for it (SQLite's writer already holds the whole database).
    lock_rows = ""

    def owner_match_column(self, left: str, right: str) -> str:
        """Return SQL comparing two owner columns, NULL matching NULL."""
        return f"{left} IS {right}"

    def cast_json(self, expr: str) -> str:
        """Return ``expr`` as a value for a JSON column (a no-op on SQLite)."""
        return expr

    def cast_ts(self, expr: str) -> str:
        """Return ``expr`` as a value for a timestamp column (a no-op on SQLite)."""
        return expr

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement and return the number of rows it changed."""

    #: Whether one statement stepped once per row beats a multi-row statement: true for
    #: SQLite in-process (a multi-row statement is parsed anew for every size), false
    #: for a server, where every statement is a round trip.
    per_row_statements = False

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement once per parameter row; return the rows changed in all."""

    @abc.abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""

    def insert_rows(self, head: str, tail: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Run ``head VALUES (...) tail`` for each of ``rows``; return the rows changed.

        One statement stepped per row where :attr:`per_row_statements`, else multi-row
        statements of up to ``_CHUNK`` rows (one round trip per chunk to a server).
        """
        if self.per_row_statements:
            return self.executemany(f"{head} VALUES {_values(1, len(rows[0]))} {tail}", rows)
        changed = 0
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            sql = f"{head} VALUES {_values(len(chunk), len(chunk[0]))} {tail}"
            changed += self.execute(sql, [value for row in chunk for value in row])
        return changed

    def json_in(self, value: Any) -> Any:
        """Return a parameter for a JSON column (JSON text by default)."""
        return None if value is None else _json_encode(value).decode()

    def json_out(self, raw: Any) -> Any:
        """Return the Python value of a JSON column."""
        if isinstance(raw, str | bytes):
            return _json_decode(raw)
        return raw

    def ts_in(self, value: datetime | None) -> Any:
        """Return a parameter for a timestamp column (ISO 8601 text by default)."""
        if value is None:
            return None
        if value.tzinfo is not UTC:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # Fixed width, in UTC, so the text sorts in time order. (Plain isoformat() is
        # much faster than with timespec=, and differs only in leaving out a zero
        # fraction of a second, put back here.)
        text = value.isoformat()
        return text if value.microsecond else f"{text[:19]}.000000{text[19:]}"

    def ts_out(self, raw: Any) -> datetime | None:
        """Return the aware datetime of a timestamp column."""
        if raw is None:
            return None
        value = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
        assert isinstance(value, datetime)
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- writes -------------------------------------------------------------------------
#
# A write is *parts* (parameter rows the writer groups with the same kind of rows of the
# other writes in its batch, and writes with one statement per kind: multi-row on
# PostgreSQL, one prepared statement stepped per row on SQLite, see
# ``Tx.per_row_statements``) plus, when it needs more, a function run after the parts.
# Grouping matters under load: a batch of N writes costs a handful of statements
# instead of several per write. Rows of one kind are de-duplicated by key within a
# batch (the last wins), as PostgreSQL refuses to upsert one row twice in a statement,
# and sorted by key, so concurrent writers lock shared rows in one order (no deadlock).

#: The kinds of grouped rows, in the order a batch writes them.
EXPERIMENT, RUN, CHECKPOINT, ATTEMPT, FINISH = range(5)
#: Fencing rows (run id, owner id): checked last, in the same transaction.
FENCE = 5

_CHUNK = 200  # rows per statement: far below SQLite's and PostgreSQL's parameter limits

_RUN_COLS = (
    "id, experiment_id, status, metrics, outputs, metadata, failure, "
    "started_at, finished_at, owner_id, provenance"
)


@cache
def _values(rows: int, width: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * rows)


def _many(tx: Tx, head: str, tail: str, rows: Sequence[tuple[Any, ...]]) -> int:
    """Run ``head VALUES (...) tail`` for every row; return the rows changed."""
    return tx.insert_rows(head, tail, rows) if rows else 0


# Row builders: the grouped parts travel as ready parameter rows, built by the caller on
# the event loop (``conv`` is a Tx used only for its value conversions), so the writer
# thread, on which every queued caller waits, only sorts and executes them.


def experiment_row(conv: Tx, e: ExperimentRecord) -> tuple[Any, ...]:
    """The EXPERIMENT part for ``e``."""
    return (
        e.id,
        conv.json_in(e.definition),
        e.owner,
        conv.json_in(e.tags),
        conv.json_in(e.metadata),
        conv.ts_in(e.created_at),
        conv.ts_in(e.updated_at),
    )


def checkpoint_row(conv: Tx, c: Checkpoint) -> tuple[Any, ...]:
    """The CHECKPOINT part for ``c``."""
    return (c.run_id, c.index, c.data, conv.ts_in(c.created_at))


def attempt_row(conv: Tx, a: StageAttempt) -> tuple[Any, ...]:
    """The ATTEMPT part for ``a``."""
    return (
        a.run_id,
        a.index,
        a.attempt,
        a.stage,
        a.status,
        conv.ts_in(a.started_at),
        conv.ts_in(a.finished_at),
        a.duration,
        a.error,
        a.cache_hit,
    )


def upsert_experiments(tx: Tx, rows: Sequence[tuple[Any, ...]], store: str) -> None:
    latest = {row[0]: row for row in rows}
    _many(
        tx,
        "INSERT INTO experiments (id, definition, owner, tags, metadata, created_at, updated_at)",
        "ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,"
        " owner = excluded.owner, tags = excluded.tags, metadata = excluded.metadata,"
        " updated_at = excluded.updated_at",
        [row for _, row in sorted(latest.items())],
    )


def insert_runs(tx: Tx, rows: Sequence[tuple[Any, ...]], store: str) -> None:
    """Insert new runs (rows from :func:`run_row`).

    Raises:
        StoreError: a run id already exists (the batch is then retried write by write).
    """
    inserted = _many(tx, f"INSERT INTO runs ({_RUN_COLS})", "ON CONFLICT (id) DO NOTHING", rows)
    if inserted != len(rows):
        # Which id is taken is only known for one run; a batch is retried write by write.
        taken = sorted({row[0] for row in rows})
        raise StoreError(
            f"a run with id {taken[0]!r} already exists; resume it with "
            f"'crucible-actors runs resume {taken[0]}' or choose another run_id",
            store=store,
        )


def upsert_checkpoints(tx: Tx, rows: Sequence[tuple[Any, ...]], store: str) -> None:
    latest = {(row[0], row[1]): row for row in rows}
    _many(
        tx,
        "INSERT INTO checkpoints (run_id, stage_index, context, created_at)",
        "ON CONFLICT (run_id, stage_index) DO UPDATE SET"
        " context = excluded.context, created_at = excluded.created_at",
        [row for _, row in sorted(latest.items())],
    )


def upsert_attempts(tx: Tx, rows: Sequence[tuple[Any, ...]], store: str) -> None:
    latest = {(row[0], row[1], row[2]): row for row in rows}
    _many(
        tx,
        "INSERT INTO stage_attempts (run_id, stage_index, attempt, stage, status, started_at,"
        " finished_at, duration, error, cache_hit)",
        "ON CONFLICT (run_id, stage_index, attempt) DO UPDATE SET"
        " stage = excluded.stage, status = excluded.status, started_at = excluded.started_at,"
        " finished_at = excluded.finished_at, duration = excluded.duration,"
        " error = excluded.error, cache_hit = excluded.cache_hit",
        [row for _, row in sorted(latest.items())],
    )


def run_row(tx: Tx, run: RunRecord) -> tuple[Any, ...]:
    """The RUN part for ``run`` (also the parameters of a one-run insert)."""
    return (
        run.id,
        run.experiment_id,
        run.status,
        tx.json_in(run.metrics),
        tx.json_in(run.outputs),
        tx.json_in(run.metadata),
        tx.json_in(run.failure),
        tx.ts_in(run.started_at),
        tx.ts_in(run.finished_at),
        run.owner_id,
        tx.json_in(run.provenance),
    )


def resume_run(tx: Tx, run: RunRecord) -> None:
    """Mark an existing run running again under ``run.owner_id`` (insert it if missing).

    ``resume_count`` is set to ``run.resume_count`` (the caller's number for this resume),
    not incremented: a write retried after its commit's answer was lost counts once.
    """
    changed = tx.execute(
        "UPDATE runs SET status = ?, owner_id = ?, metadata = ?, failure = NULL,"
        " finished_at = NULL, resume_count = ? WHERE id = ?",
        (run.status, run.owner_id, tx.json_in(run.metadata), run.resume_count, run.id),
    )
    if not changed:
        tx.execute(f"INSERT INTO runs ({_RUN_COLS}) VALUES {_values(1, 11)}", run_row(tx, run))


def finish_runs(
    tx: Tx,
    items: Sequence[tuple[RunRecord, Sequence[ArtifactRecord], Sequence[TraceEventRecord]]],
    store: str,
) -> None:
    """Store run outcomes, replacing their artifacts and events; fenced by owner.

    Raises:
        RunNotFound, StoreError: a run is missing or owned by another runtime (checked
            run by run when the batch is retried write by write).
    """
    latest = {run.id: (run, artifacts, events) for run, artifacts, events in items}
    rows = [
        (
            run.id,
            run.status,
            tx.json_in(run.metrics),
            tx.json_in(run.outputs),
            tx.json_in(run.metadata),
            tx.json_in(run.failure),
            tx.ts_in(run.finished_at),
            run.owner_id,
        )
        for run, _, _ in latest.values()
    ]
    updated = _update_finished(tx, rows)
    missing = [run_id for run_id in latest if run_id not in updated]
    if missing:
        run_id = missing[0]
        rows_found = tx.fetchall("SELECT owner_id FROM runs WHERE id = ?", (run_id,))
        if not rows_found:
            raise RunNotFound(run_id, store=store)
        raise OwnershipLost(run_id, owner_id=rows_found[0][0], store=store)
    ids = list(latest)
    for table in ("artifacts", "trace_events"):
        if tx.per_row_statements:
            tx.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(i,) for i in ids])
            continue
        for start in range(0, len(ids), _CHUNK):
            chunk_ids = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk_ids))
            tx.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", chunk_ids)
    artifact_rows = [
        (a.run_id, i, a.key, a.name, a.type, a.location, a.format, tx.json_in(a.metadata))
        for _, artifacts, _ in latest.values()
        for i, a in enumerate(artifacts)
    ]
    if artifact_rows:
        _many(
            tx,
            "INSERT INTO artifacts (run_id, position, key, name, type, location, format, metadata)",
            "",
            artifact_rows,
        )
    event_rows = [
        (e.run_id, e.seq, e.type, e.stage_id, tx.ts_in(e.timestamp), tx.json_in(e.event))
        for _, _, events in latest.values()
        for e in events
    ]
    if event_rows:
        _many(
            tx,
            "INSERT INTO trace_events (run_id, seq, type, stage_id, timestamp, event)",
            "",
            event_rows,
        )


def _update_finished(tx: Tx, rows: Sequence[tuple[Any, ...]]) -> set[str]:
    """Write the outcome rows of finished runs; return the ids the owner fence let through.

    ``rows``: (id, status, metrics, outputs, metadata, failure, finished_at, owner_id).
    """
    if tx.per_row_statements:
        sql = (
            "UPDATE runs SET status = ?, metrics = ?, outputs = ?, metadata = ?, failure = ?,"
            f" finished_at = ? WHERE id = ? AND {tx.owner_match}"
        )
        changed = tx.executemany(sql, [(*row[1:7], row[0], row[7]) for row in rows])
        if changed == len(rows):
            return {row[0] for row in rows}
        return {  # some were fenced off or missing: find out which (the batch fails)
            row[0]
            for row in rows
            if tx.fetchall(
                f"SELECT 1 FROM runs WHERE id = ? AND {tx.owner_match}", (row[0], row[7])
            )
        }
    j, t = tx.cast_json, tx.cast_ts
    same_owner = tx.owner_match_column("runs.owner_id", "v.owner_id")
    updated: set[str] = set()
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        found = tx.fetchall(
            "WITH v (id, status, metrics, outputs, metadata, failure, finished_at, owner_id)"
            f" AS (VALUES {_values(len(chunk), 8)})"
            f" UPDATE runs SET status = v.status, metrics = {j('v.metrics')},"
            f" outputs = {j('v.outputs')}, metadata = {j('v.metadata')},"
            f" failure = {j('v.failure')}, finished_at = {t('v.finished_at')}"
            f" FROM v WHERE runs.id = v.id AND {same_owner}"
            " RETURNING runs.id",
            [value for row in chunk for value in row],
        )
        updated.update(row[0] for row in found)
    return updated


def check_owners(tx: Tx, rows: Sequence[tuple[str, str]], store: str) -> None:
    """Fence the batch: each run of ``rows`` (run id, owner id) must still be that owner's.

    The rows read are locked until the commit (:attr:`Tx.lock_rows`), so a takeover
    either committed before (and this raises, rolling the batch back) or waits for this
    transaction. A run with no row is let through (its row is not this fence's concern).

    Raises:
        OwnershipLost: a run is owned by another runtime now.
    """
    wanted = dict(rows)
    ids = sorted(wanted)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        found = tx.fetchall(
            f"SELECT id, owner_id FROM runs WHERE id IN ({marks}) ORDER BY id{tx.lock_rows}", chunk
        )
        for run_id, owner_id in found:
            if owner_id != wanted[run_id]:
                raise OwnershipLost(run_id, owner_id=owner_id, store=store)


#: The handler of each kind of grouped rows, by kind.
GROUP_HANDLERS = (
    upsert_experiments,
    insert_runs,
    upsert_checkpoints,
    upsert_attempts,
    finish_runs,
    check_owners,
)


def claim_run(tx: Tx, run_id: str, status: str, owner_id: str | None, new_owner_id: str) -> bool:
    """Take the run over if it still has ``status`` and ``owner_id``; a ``pending`` run
    stays pending (it has not started: :func:`start_pending` starts it)."""
    target = "'pending'" if status == "pending" else "'running'"
    return (
        tx.execute(
            f"UPDATE runs SET status = {target}, owner_id = ? WHERE id = ? AND status = ?"
            f" AND {tx.owner_match}",
            (new_owner_id, run_id, status, owner_id),
        )
        == 1
    )


def start_pending(
    tx: Tx,
    run_id: str,
    owner_id: str,
    started_at: datetime,
    metadata: dict[str, Any],
    provenance: dict[str, Any] | None = None,
) -> bool:
    """Start the pending run ``run_id`` if ``owner_id`` still owns it, recording its
    ``provenance`` (kept as it was when None)."""
    return (
        tx.execute(
            "UPDATE runs SET status = 'running', started_at = ?, metadata = ?,"
            " provenance = COALESCE(?, provenance)"
            " WHERE id = ? AND status = 'pending' AND owner_id = ?",
            (
                tx.ts_in(started_at),
                tx.json_in(metadata),
                None if provenance is None else tx.json_in(provenance),
                run_id,
                owner_id,
            ),
        )
        == 1
    )


def started_by(tx: Tx, run_id: str, owner_id: str, started_at: datetime) -> bool:
    """Whether ``owner_id`` already started run ``run_id`` at ``started_at`` (a start
    retried after its commit went through unacknowledged)."""
    return bool(
        tx.fetchall(
            "SELECT 1 FROM runs WHERE id = ? AND owner_id = ? AND started_at = ?",
            (run_id, owner_id, tx.ts_in(started_at)),
        )
    )


def mark_interrupted(
    tx: Tx,
    run_id: str,
    owner_id: str | None,
    finished_at: datetime,
    failure: dict[str, Any] | None,
) -> bool:
    return (
        tx.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, failure = ?"
            f" WHERE id = ? AND status IN ('running', 'pending') AND {tx.owner_match}",
            (tx.ts_in(finished_at), tx.json_in(failure), run_id, owner_id),
        )
        == 1
    )


def register_owner(tx: Tx, owner: OwnerRecord) -> None:
    tx.execute(
        "INSERT INTO owners (id, host, pid, started_at, heartbeat_at, lease)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        (
            owner.id,
            owner.host,
            owner.pid,
            tx.ts_in(owner.started_at),
            tx.ts_in(owner.heartbeat_at),
            owner.lease,
        ),
    )


def heartbeat(tx: Tx, owner_id: str, at: datetime) -> bool:
    return (
        tx.execute("UPDATE owners SET heartbeat_at = ? WHERE id = ?", (tx.ts_in(at), owner_id)) == 1
    )


def remove_owner(tx: Tx, owner_id: str) -> None:
    tx.execute("DELETE FROM owners WHERE id = ?", (owner_id,))


# -- queries --------------------------------------------------------------------------


def _experiment(tx: Tx, row: tuple[Any, ...]) -> ExperimentRecord:
    created, updated = tx.ts_out(row[5]), tx.ts_out(row[6])
    assert created is not None
    assert updated is not None
    return ExperimentRecord(
        id=row[0],
        definition=tx.json_out(row[1]),
        owner=row[2],
        tags=tx.json_out(row[3]),
        metadata=tx.json_out(row[4]),
        created_at=created,
        updated_at=updated,
    )


_EXP_COLS = "id, definition, owner, tags, metadata, created_at, updated_at"


def get_experiment(tx: Tx, experiment_id: str) -> ExperimentRecord | None:
    rows = tx.fetchall(f"SELECT {_EXP_COLS} FROM experiments WHERE id = ?", (experiment_id,))
    return _experiment(tx, rows[0]) if rows else None


def list_experiments(tx: Tx, limit: int) -> list[ExperimentRecord]:
    rows = tx.fetchall(
        f"SELECT {_EXP_COLS} FROM experiments ORDER BY updated_at DESC, id LIMIT ?", (limit,)
    )
    return [_experiment(tx, r) for r in rows]


def _run(tx: Tx, row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0],
        experiment_id=row[1],
        status=row[2],
        metrics=tx.json_out(row[3]),
        outputs=tx.json_out(row[4]),
        metadata=tx.json_out(row[5]),
        failure=tx.json_out(row[6]),
        started_at=tx.ts_out(row[7]),
        finished_at=tx.ts_out(row[8]),
        owner_id=row[9],
        provenance=tx.json_out(row[10]),
        resume_count=row[11],
    )


def get_run(tx: Tx, run_id: str, store: str) -> RunRecord:
    rows = tx.fetchall(f"SELECT {_RUN_COLS}, resume_count FROM runs WHERE id = ?", (run_id,))
    if not rows:
        raise RunNotFound(run_id, store=store)
    return _run(tx, rows[0])


def list_runs(
    tx: Tx,
    experiment_id: str | None,
    status: str | None,
    limit: int,
    before: str | None,
    store: str,
    *,
    outputs: bool = True,
) -> list[RunRecord]:
    where: list[str] = []
    params: list[Any] = []
    if before is not None:
        seq = tx.fetchall("SELECT seq FROM runs WHERE id = ?", (before,))
        if not seq:
            raise RunNotFound(before, store=store)
        where.append("seq < ?")
        params.append(seq[0][0])
    if experiment_id is not None:
        where.append("experiment_id = ?")
        params.append(experiment_id)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    params.append(limit)
    # Without outputs the (possibly large) column is neither read nor decoded.
    cols = _RUN_COLS if outputs else _RUN_COLS.replace("outputs", "'[]'")
    rows = tx.fetchall(
        f"SELECT {cols}, resume_count FROM runs{clause} ORDER BY seq DESC LIMIT ?", params
    )
    return [_run(tx, r) for r in rows]


def list_attempts(tx: Tx, run_id: str) -> list[StageAttempt]:
    rows = tx.fetchall(
        "SELECT run_id, stage_index, attempt, stage, status, started_at, finished_at, duration,"
        " error, cache_hit FROM stage_attempts WHERE run_id = ? ORDER BY stage_index, attempt",
        (run_id,),
    )
    out = []
    for r in rows:
        started = tx.ts_out(r[5])
        assert started is not None
        out.append(
            StageAttempt(
                run_id=r[0],
                index=r[1],
                attempt=r[2],
                stage=r[3],
                status=r[4],
                started_at=started,
                finished_at=tx.ts_out(r[6]),
                duration=r[7],
                error=r[8],
                cache_hit=bool(r[9]),
            )
        )
    return out


def list_artifacts(tx: Tx, run_id: str) -> list[ArtifactRecord]:
    rows = tx.fetchall(
        "SELECT run_id, key, name, type, location, format, metadata FROM artifacts"
        " WHERE run_id = ? ORDER BY position",
        (run_id,),
    )
    return [
        ArtifactRecord(
            run_id=r[0],
            key=r[1],
            name=r[2],
            type=r[3],
            location=r[4],
            format=r[5],
            metadata=tx.json_out(r[6]),
        )
        for r in rows
    ]


def load_checkpoint(tx: Tx, run_id: str) -> Checkpoint | None:
    rows = tx.fetchall(
        "SELECT run_id, stage_index, context, created_at FROM checkpoints WHERE run_id = ?"
        " ORDER BY stage_index DESC LIMIT 1",
        (run_id,),
    )
    if not rows:
        return None
    r = rows[0]
    created = tx.ts_out(r[3])
    assert created is not None
    return Checkpoint(run_id=r[0], index=r[1], data=bytes(r[2]), created_at=created)


def list_events(tx: Tx, run_id: str, after: int | None) -> list[TraceEventRecord]:
    rows = tx.fetchall(
        "SELECT run_id, seq, type, stage_id, timestamp, event FROM trace_events"
        " WHERE run_id = ? AND seq > ? ORDER BY seq",
        (run_id, after if after is not None else 0),
    )
    return [
        TraceEventRecord(
            run_id=r[0],
            seq=r[1],
            type=r[2],
            stage_id=r[3],
            timestamp=tx.ts_out(r[4]),
            event=tx.json_out(r[5]),
        )
        for r in rows
    ]


def list_owners(tx: Tx) -> list[OwnerRecord]:
    rows = tx.fetchall(
        "SELECT id, host, pid, started_at, heartbeat_at, lease FROM owners ORDER BY id"
    )
    out = []
    for r in rows:
        started, beat = tx.ts_out(r[3]), tx.ts_out(r[4])
        assert started is not None
        assert beat is not None
        out.append(
            OwnerRecord(
                id=r[0], host=r[1], pid=r[2], started_at=started, heartbeat_at=beat, lease=r[5]
            )
        )
    return out


def adoption_probe(tx: Tx) -> tuple[set[str | None], int]:
    """Return the owners of the ``running`` and ``pending`` runs and how many runs are
    ``interrupted``.

    Both read through the index on status, for the adoption tick (``_recovery.py``).
    """
    owners = {
        r[0]
        for r in tx.fetchall(
            "SELECT DISTINCT owner_id FROM runs WHERE status IN ('running', 'pending')"
        )
    }
    count = tx.fetchall("SELECT count(*) FROM runs WHERE status = 'interrupted'")[0][0]
    return owners, int(count)
