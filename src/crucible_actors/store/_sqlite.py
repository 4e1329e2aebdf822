"""The embedded SQLite store: one file, WAL mode, group commit, trio and asyncio alike.

aiosqlite needs an asyncio loop, so this adapter drives stdlib :mod:`sqlite3` through
``anyio.to_thread`` instead, which works on both anyio backends. All writes go through
ONE writer task per database (:class:`~crucible_actors.store._writer.GroupCommitWriter`)
owning ONE connection, used from one worker thread at a time (``CapacityLimiter(1)``);
writes queued while a batch commits share the next transaction. Reads use a second
connection (WAL lets it read while the writer writes); an in-memory database has only
the one connection, so reads take turns with the writer there.

Durability: the writer connection runs with ``PRAGMA synchronous=FULL`` in WAL mode, so
every commit syncs the write-ahead log before the writes in it are acknowledged. Every
acknowledged write — checkpoints included — therefore survives a process crash and a
power loss; group commit keeps that to one sync per batch rather than one per row.

Schema migrations are the versioned files in ``migrations/sqlite``; the database's
``PRAGMA user_version`` records the version applied, and opening a store applies the
missing ones in one transaction. ``PRAGMA application_id`` marks the file as ours, so a
foreign SQLite file is refused instead of written to.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._core._errors import StoreCorrupt, StoreError, StoreUnavailable
from . import _sql
from ._writer import GroupCommitWriter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence
    from datetime import datetime

    from .._core._store import (
        ArtifactRecord,
        Checkpoint,
        ExperimentRecord,
        OwnerRecord,
        RunRecord,
        StageAttempt,
        TraceEventRecord,
    )

__all__ = ["APPLICATION_ID", "SQLiteStore", "open_sqlite_store"]

#: ``PRAGMA application_id`` of a crucible-actors database ("CRC1").
APPLICATION_ID = 0x43524331


def wrap_sqlite_error(exc: BaseException, store: str) -> StoreError:
    """Return the StoreError subclass that reports the sqlite3 error ``exc``."""
    if isinstance(exc, StoreError):
        return exc
    code = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc)
    if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or (
        "not a database" in text or "malformed" in text
    ):
        err: StoreError = StoreCorrupt(
            f"the file is not a readable crucible-actors database ({text}); "
            "restore it from a backup or point the store URL at a new file",
            store=store,
        )
    elif code.startswith("SQLITE_FULL") or "disk is full" in text:
        err = StoreUnavailable(
            f"the disk is full ({text}); free some space and try again", store=store
        )
    elif isinstance(exc, sqlite3.OperationalError | OSError):
        err = StoreUnavailable(f"cannot use the database: {text}", store=store)
    else:
        err = StoreError(f"{type(exc).__name__}: {text}", store=store)
    err.__cause__ = exc
    return err


class _SQLiteTx(_sql.Tx):
    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        rowcount: int = self.conn.execute(sql, params).rowcount
        return rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.conn.execute(sql, params).fetchall()
        return rows


def _rollback(conn: Any) -> None:
    # SQLite may have rolled back already (e.g. after SQLITE_FULL): nothing to undo then.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


class _SQLiteWriter(GroupCommitWriter[_SQLiteTx]):
    def __init__(self, conn: Any, *, store: str, max_batch: int) -> None:
        super().__init__(store=store, max_batch=max_batch)
        self.conn = conn
        self.tx = _SQLiteTx(conn)

    @contextmanager
    def transaction(self) -> Iterator[_SQLiteTx]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.tx
            self.conn.execute("COMMIT")
        except BaseException:
            _rollback(self.conn)
            raise

    def wrap_error(self, exc: Exception) -> StoreError:
        return wrap_sqlite_error(exc, self.store)


def _statements(script: str) -> list[str]:
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") for ln in buf.strip().splitlines()):
        out.append(buf.strip())
    return out


def _pragma(conn: Any, name: str) -> Any:
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


def _prepare(conn: Any, store: str, memory: bool, busy_ms: int) -> tuple[int, list[str]]:
    """Check the file is ours, set WAL and FULL sync, migrate; see :func:`migrate_sqlite`."""
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    # One read transaction, so all three come from the same snapshot: another process
    # may be creating the schema right now.
    conn.execute("BEGIN")
    try:
        app_id = _pragma(conn, "application_id")
        version = _pragma(conn, "user_version")
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        ]
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    if app_id != APPLICATION_ID and (app_id != 0 or version != 0 or tables):
        shown = ", ".join(tables[:5]) or "none"
        raise StoreCorrupt(
            f"the file is not a crucible-actors database (application_id {app_id}, "
            f"user_version {version}, tables: {shown}); point the store URL at a new file",
            store=store,
        )
    if not memory:
        mode = str(_pragma(conn, "journal_mode = WAL")).lower()
        if mode != "wal":
            raise StoreUnavailable(
                f"cannot switch the database to WAL mode (got {mode})", store=store
            )
    conn.execute("PRAGMA synchronous = FULL")
    return migrate_sqlite(conn, store)


def migrate_sqlite(conn: Any, store: str) -> tuple[int, list[str]]:
    """Apply the missing migrations in one transaction.

    Returns the version reached and the names of the migrations applied.

    Raises:
        StoreError: the database was written by a newer version of crucible-actors.
    """
    steps = _sql.migrations("sqlite")
    latest = steps[-1].version
    version: int = _pragma(conn, "user_version")
    if version > latest:
        raise StoreError(
            f"the database schema is version {version}, newer than this crucible-actors "
            f"supports ({latest}); upgrade crucible-actors",
            store=store,
        )
    applied: list[str] = []
    if version == latest:
        return version, applied
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _pragma(conn, "user_version")  # another process may have migrated
        for step in steps:
            if step.version > version:
                for statement in _statements(step.sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step.version}")
                version = step.version
                applied.append(f"{step.version:04d}_{step.name}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return version, applied


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)


class SQLiteStore:
    """A :class:`~crucible_actors._core._store.Store` in one SQLite file.

    Obtain one with :func:`open_sqlite_store` (or ``open_store("sqlite:///path.db")``).
    ``batches`` and ``writes`` count the commits and the writes they carried.
    """

    local = True

    def __init__(
        self, name: str, writer: _SQLiteWriter, read_tx: _SQLiteTx, read_limiter: Any
    ) -> None:
        self._name = name
        self._writer = writer
        self._read_tx = read_tx
        self._read_limiter = read_limiter
        self.schema_version = 0
        self.applied: list[str] = []

    def __repr__(self) -> str:
        return f"<SQLiteStore {self._name}>"

    @property
    def name(self) -> str:
        """The store URL."""
        return self._name

    @property
    def batches(self) -> int:
        """How many write transactions the writer committed (or tried)."""
        return self._writer.batches

    @property
    def writes(self) -> int:
        """How many writes those transactions carried."""
        return self._writer.writes

    async def _read(self, fn: Callable[[_sql.Tx], Any]) -> Any:
        try:
            return await anyio.to_thread.run_sync(fn, self._read_tx, limiter=self._read_limiter)
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise wrap_sqlite_error(exc, self._name) from exc

    # -- writes -------------------------------------------------------------------

    async def start_run(
        self,
        run: RunRecord,
        *,
        experiment: ExperimentRecord,
        checkpoint: Checkpoint | None = None,
        resume: bool = False,
    ) -> None:
        name = self._name
        await self._writer.submit(
            lambda tx: _sql.start_run(tx, run, experiment, checkpoint, resume, name)
        )

    async def save_checkpoint(
        self, checkpoint: Checkpoint, *, attempts: Sequence[StageAttempt] = ()
    ) -> None:
        await self._writer.submit(lambda tx: _sql.save_checkpoint_with(tx, checkpoint, attempts))

    async def record_attempt(self, attempt: StageAttempt) -> None:
        await self._writer.submit(lambda tx: _sql.record_attempt(tx, attempt))

    async def finish_run(
        self,
        run: RunRecord,
        *,
        artifacts: Sequence[ArtifactRecord],
        events: Sequence[TraceEventRecord],
        attempts: Sequence[StageAttempt] = (),
    ) -> None:
        name = self._name
        await self._writer.submit(
            lambda tx: _sql.finish_run(tx, run, artifacts, events, attempts, name)
        )

    async def claim_run(
        self, run_id: str, *, status: str, owner_id: str | None, new_owner_id: str
    ) -> bool:
        claimed: bool = await self._writer.submit(
            lambda tx: _sql.claim_run(tx, run_id, status, owner_id, new_owner_id)
        )
        return claimed

    async def mark_interrupted(
        self,
        run_id: str,
        *,
        owner_id: str | None,
        finished_at: datetime,
        failure: dict[str, Any] | None = None,
    ) -> bool:
        done: bool = await self._writer.submit(
            lambda tx: _sql.mark_interrupted(tx, run_id, owner_id, finished_at, failure)
        )
        return done

    async def register_owner(self, owner: OwnerRecord) -> None:
        await self._writer.submit(lambda tx: _sql.register_owner(tx, owner))

    async def heartbeat(self, owner_id: str, at: datetime) -> bool:
        alive: bool = await self._writer.submit(lambda tx: _sql.heartbeat(tx, owner_id, at))
        return alive

    async def remove_owner(self, owner_id: str) -> None:
        await self._writer.submit(lambda tx: _sql.remove_owner(tx, owner_id))

    # -- queries --------------------------------------------------------------------

    async def get_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        found: ExperimentRecord | None = await self._read(
            lambda tx: _sql.get_experiment(tx, experiment_id)
        )
        return found

    async def list_experiments(self, *, limit: int = 50) -> list[ExperimentRecord]:
        found: list[ExperimentRecord] = await self._read(
            lambda tx: _sql.list_experiments(tx, limit)
        )
        return found

    async def get_run(self, run_id: str) -> RunRecord:
        name = self._name
        found: RunRecord = await self._read(lambda tx: _sql.get_run(tx, run_id, name))
        return found

    async def list_runs(
        self,
        *,
        experiment_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[RunRecord]:
        name = self._name
        found: list[RunRecord] = await self._read(
            lambda tx: _sql.list_runs(tx, experiment_id, status, limit, before, name)
        )
        return found

    async def list_attempts(self, run_id: str) -> list[StageAttempt]:
        found: list[StageAttempt] = await self._read(lambda tx: _sql.list_attempts(tx, run_id))
        return found

    async def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        found: list[ArtifactRecord] = await self._read(lambda tx: _sql.list_artifacts(tx, run_id))
        return found

    async def load_checkpoint(self, run_id: str) -> Checkpoint | None:
        found: Checkpoint | None = await self._read(lambda tx: _sql.load_checkpoint(tx, run_id))
        return found

    async def list_events(self, run_id: str, *, after: int | None = None) -> list[TraceEventRecord]:
        found: list[TraceEventRecord] = await self._read(
            lambda tx: _sql.list_events(tx, run_id, after)
        )
        return found

    async def list_owners(self) -> list[OwnerRecord]:
        found: list[OwnerRecord] = await self._read(_sql.list_owners)
        return found

    async def migrate(self) -> list[str]:
        """Return the migrations applied when the store opened (it migrates on open)."""
        await anyio.lowlevel.checkpoint()
        return list(self.applied)


def _close_all(*conns: Any) -> None:
    for conn in conns:
        if conn is not None:
            conn.close()


@asynccontextmanager
async def open_sqlite_store(
    path: str | os.PathLike[str],
    *,
    connect: Callable[[str], Any] | None = None,
    max_batch: int = 512,
    busy_timeout: float = 10.0,
) -> AsyncIterator[SQLiteStore]:
    """Open (creating and migrating as needed) the SQLite store at ``path``.

    ``":memory:"`` opens a private in-memory database. ``connect(path)`` replaces
    :func:`sqlite3.connect` (it must return a connection in autocommit mode,
    ``isolation_level=None``, usable from any thread); tests use it to inject faults.
    ``max_batch`` caps the writes per transaction (1 turns group commit off).
    ``busy_timeout`` is how long a write waits for another process's lock.

    Raises:
        StoreCorrupt: the file is not a SQLite database, or not one of ours.
        StoreUnavailable: the file cannot be opened or created.
        StoreError: the schema is newer than this version supports.
    """
    raw = os.fspath(path)
    memory = raw == ":memory:"
    name = "sqlite://:memory:" if memory else f"sqlite:///{raw}"
    opener = connect or (lambda p: _connect(p, busy_timeout))

    def open_sync() -> tuple[Any, Any, tuple[int, list[str]]]:
        if not memory:
            Path(raw).parent.mkdir(parents=True, exist_ok=True)
        write = read = None
        try:
            write = opener(raw)
            version = _prepare(write, name, memory, int(busy_timeout * 1000))
            if not memory:
                read = opener(raw)
                read.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                read.execute("PRAGMA query_only = 1")
        except BaseException:
            _close_all(read, write)
            raise
        return write, read, version

    try:
        write_conn, read_conn, version = await anyio.to_thread.run_sync(open_sync)
    except (sqlite3.Error, OSError) as exc:
        raise wrap_sqlite_error(exc, name) from exc
    writer = _SQLiteWriter(write_conn, store=name, max_batch=max_batch)
    if read_conn is None:
        store = SQLiteStore(name, writer, writer.tx, writer.limiter)
    else:
        store = SQLiteStore(name, writer, _SQLiteTx(read_conn), anyio.CapacityLimiter(1))
    store.schema_version, store.applied = version
    body_error: Exception | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run, name="crucible sqlite writer")
            try:
                yield store
            except Exception as exc:
                body_error = exc  # re-raised as is, not wrapped in an ExceptionGroup
            finally:
                writer.close()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                _close_all, read_conn, write_conn, limiter=writer.limiter
            )
    if body_error is not None:
        raise body_error
