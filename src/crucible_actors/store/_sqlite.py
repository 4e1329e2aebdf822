"""The embedded SQLite store: one file, WAL mode, group commit, trio and asyncio alike.

aiosqlite needs an asyncio loop, so this adapter drives stdlib :mod:`sqlite3` from
threads instead, which works on both anyio backends. All writes go through ONE writer
per database (:class:`~crucible_actors.store._writer.GroupCommitWriter`) owning ONE
connection, used only by the writer's own thread; writes queued while a batch commits
share the next transaction. Reads use a second connection through ``anyio.to_thread``
(WAL lets it read while the writer writes); an in-memory database has only the one
connection, so its reads run on the writer thread, between transactions.

Durability (``durability=``, or ``?durability=`` in the URL), always in WAL mode:

- ``"process"`` (the default): ``PRAGMA synchronous=NORMAL``. A commit appends to the
  write-ahead log with ``write()`` and is acknowledged without an fsync; the log is
  synced at WAL checkpoints. Every acknowledged write survives the process being
  killed (SIGKILL, OOM, a crash: the operating system still holds the written log),
  which is what crash-resume needs; a power loss or an OS crash may roll back the last
  commits (never corrupting the file), and their runs then resume from an earlier
  checkpoint.
- ``"power"``: ``PRAGMA synchronous=FULL``. Every commit syncs the log before the writes
  in it are acknowledged, so they also survive a power loss; group commit keeps that to
  one sync per batch rather than one per row.

Schema migrations are the versioned files in ``migrations/sqlite``; the database's
``PRAGMA user_version`` records the version applied, and opening a store applies the
missing ones in one transaction. ``PRAGMA application_id`` marks the file as ours, so a
foreign SQLite file is refused instead of written to.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import msgspec

from .._core import Durability, MemoryBlobStore, StoreCorrupt, StoreError, StoreUnavailable
from . import _sql
from ._blobs import DirectoryBlobStore
from ._sqlstore import SQLStore
from ._writer import FAULT_CONNECTION, FAULT_FULL, RETRY_FOR, GroupCommitWriter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

    from .._core import BlobStore


__all__ = ["APPLICATION_ID", "DURABILITY_LEVELS", "SQLiteStore", "open_sqlite_store"]

#: ``PRAGMA application_id`` of a crucible-actors database ("CRC1").
APPLICATION_ID = 0x43524331

#: The durability levels of the SQLite store and the ``PRAGMA synchronous`` of each.
DURABILITY_LEVELS: dict[Durability, str] = {"process": "NORMAL", "power": "FULL"}


def check_durability(durability: object) -> Durability:
    """Return ``durability`` if it is one of :data:`DURABILITY_LEVELS`.

    Raises:
        ValueError: it is not, naming the levels and what each survives.
    """
    for level in DURABILITY_LEVELS:
        if durability == level:
            return level
    raise ValueError(
        f"unknown SQLite durability {durability!r}; use 'process' (survives the process "
        "being killed, no fsync per commit; the default) or 'power' (also survives a "
        "power loss, one fsync per commit)"
    )


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
    elif sqlite_fault(exc, store) == FAULT_FULL:
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
    per_row_statements = True

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        rowcount: int = self.conn.execute(sql, params).rowcount
        return rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        changed: int = self.conn.executemany(sql, rows).rowcount
        return changed

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.conn.execute(sql, params).fetchall()
        return rows


def _rollback(conn: Any) -> None:
    # SQLite may have rolled back already (e.g. after SQLITE_FULL): nothing to undo then.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


#: Pages between automatic WAL checkpoints once the disk has been full (see ``recover``).
SMALL_WAL_PAGES = 64

#: Free bytes under which an I/O error is taken for a full disk (see ``sqlite_fault``).
NEARLY_FULL = 1 << 20


def _no_space(store: str) -> bool:
    """Whether the file system of the store's file has (nearly) no space left."""
    path = store.removeprefix("sqlite:///")
    if path == store or path == ":memory:":
        return False
    try:
        return shutil.disk_usage(Path(path).resolve().parent).free < NEARLY_FULL
    except OSError:
        return False


def sqlite_fault(exc: BaseException, store: str = "") -> str | None:
    """Return the transient fault ``exc`` reports (a full disk, a locked database), or None.

    SQLite reports a full disk as ``SQLITE_FULL`` when the database or its log cannot
    grow, but as an I/O error (``SQLITE_IOERR_SHMSIZE``, ``..._WRITE``) when its
    shared-memory or log file cannot; an I/O error while the file system of ``store``
    has under :data:`NEARLY_FULL` bytes free counts as a full disk too.
    """
    if not isinstance(exc, sqlite3.OperationalError | OSError):
        return None
    code = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc)
    if code.startswith("SQLITE_FULL") or "disk is full" in text:
        return FAULT_FULL
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return FAULT_FULL
    if (code.startswith("SQLITE_IOERR") or "disk I/O error" in text) and _no_space(store):
        return FAULT_FULL
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
        return FAULT_CONNECTION
    return None


class _SQLiteWriter(GroupCommitWriter[_SQLiteTx]):
    def __init__(
        self, conn: Any, *, store: str, max_batch: int, retry_for: float = RETRY_FOR
    ) -> None:
        super().__init__(
            store=store, handlers=_sql.GROUP_HANDLERS, max_batch=max_batch, retry_for=retry_for
        )
        self.conn = conn
        self.tx = _SQLiteTx(conn)
        self.conv = self.tx  # value conversions only: safe to call from the event loop
        #: Whether a full disk switched the log to small checkpoints (see ``recover``).
        self.small_wal = False

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

    def fault_kind(self, exc: Exception) -> str | None:
        return sqlite_fault(exc, self.store)

    def recover(self, fault: str) -> None:
        """After a full disk, keep the write-ahead log small, and truncate it now.

        A WAL file keeps its largest size until truncated, and grows to about 4 MB
        (1,000 pages) between automatic checkpoints: without this, the space a user
        frees is soon taken again by the log growing back into it. From the
        first full disk on, the log is checkpointed every 64 pages and truncated after
        each checkpoint (more checkpoints, each one smaller), and this checkpoint moves
        what the log holds into the database and truncates it.
        """
        if fault != FAULT_FULL:
            return
        _rollback(self.conn)
        if not self.small_wal:
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {SMALL_WAL_PAGES}")
            self.conn.execute("PRAGMA journal_size_limit = 0")
            self.small_wal = True
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


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


def _pragma_tx(tx: _sql.Tx, name: str) -> Any:
    return tx.fetchall(f"PRAGMA {name}")[0][0]


def _set_wal(conn: Any, busy_ms: int) -> str:
    """Switch to WAL mode; return the journal mode in force.

    Changing the journal mode needs the database to itself, and SQLite answers "database
    is locked" at once, without its busy handler, while another connection (another
    process opening the same new file, say) holds it: retry for up to ``busy_ms``.
    """
    for _ in range(max(1, busy_ms // 10)):
        try:
            mode = str(_pragma(conn, "journal_mode")).lower()
            if mode == "wal":
                return mode
            return str(_pragma(conn, "journal_mode = WAL")).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.01)  # a worker thread: this does not block the event loop
    return str(_pragma(conn, "journal_mode = WAL")).lower()


def _prepare(
    conn: Any, store: str, memory: bool, busy_ms: int, synchronous: str = "NORMAL"
) -> tuple[int, list[str]]:
    """Check the file is ours, set WAL and ``synchronous``, migrate (:func:`migrate_sqlite`)."""
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
        mode = _set_wal(conn, busy_ms)
        if mode != "wal":
            raise StoreUnavailable(
                f"cannot switch the database to WAL mode (got {mode})", store=store
            )
    conn.execute(f"PRAGMA synchronous = {synchronous}")
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


class SQLiteStore(SQLStore):
    """A :class:`~crucible_actors.abc.Store` in one SQLite file.

    Obtain one with :func:`open_sqlite_store` (or ``open_store("sqlite:///path.db")``).
    ``batches`` and ``writes`` count the commits and the writes they carried;
    ``durability`` is the level it was opened with (``"process"`` or ``"power"``).
    """

    local = True
    _writer: _SQLiteWriter

    def __init__(
        self,
        name: str,
        writer: _SQLiteWriter,
        read_tx: _SQLiteTx | None,
        *,
        durability: Durability = "process",
        blobs: BlobStore | None = None,
    ) -> None:
        self._name = name
        #: Where large Context values live; ``x.db.blobs/`` beside the file.
        self.blobs: BlobStore = blobs if blobs is not None else MemoryBlobStore()
        self._writer = writer
        self._read_tx = read_tx  # None: one connection only; reads go to the writer
        self._read_limiter = anyio.CapacityLimiter(1)
        self.durability = check_durability(durability)
        self.schema_version = 0
        self.applied: list[str] = []

    async def _read(self, fn: Callable[[_sql.Tx], Any]) -> Any:
        read_tx = self._read_tx
        try:
            if read_tx is None:
                tx = self._writer.tx
                return await self._writer.call(lambda: fn(tx))
            return await anyio.to_thread.run_sync(fn, read_tx, limiter=self._read_limiter)
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise wrap_sqlite_error(exc, self._name) from exc
        except msgspec.DecodeError as exc:
            raise StoreCorrupt(
                f"a stored value is not valid JSON ({exc}); it was changed outside "
                "crucible-actors: fix or delete that row",
                store=self._name,
            ) from exc

    async def migrate(self) -> list[str]:
        """Return the migrations applied when the store opened (it migrates on open)."""
        await anyio.lowlevel.checkpoint()
        return list(self.applied)

    async def _db_bytes(self) -> int:
        def size(tx: _sql.Tx) -> int:
            path = next(
                (row[2] for row in tx.fetchall("PRAGMA database_list") if row[1] == "main"), ""
            )
            if not path:  # in memory
                return int(_pragma_tx(tx, "page_count")) * int(_pragma_tx(tx, "page_size"))
            return sum(
                os.stat(p).st_size
                for p in (path, f"{path}-wal", f"{path}-shm")
                if os.path.exists(p)
            )

        total: int = await self._read(size)
        return total

    async def _compact(self) -> None:
        conn = self._writer.conn

        def compact() -> None:
            # Free pages go back to the file system: VACUUM rewrites the file without
            # them (incremental_vacuum where auto_vacuum is incremental), then a
            # truncating checkpoint empties the write-ahead log the rewrite went through.
            if int(_pragma(conn, "auto_vacuum")) == 2:
                conn.execute("PRAGMA incremental_vacuum").fetchall()
            elif int(_pragma(conn, "freelist_count")):
                conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

        await self._writer.call(compact)


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
    durability: Durability = "process",
    retry_for: float = RETRY_FOR,
) -> AsyncIterator[SQLiteStore]:
    """Open (creating and migrating as needed) the SQLite store at ``path``.

    ``":memory:"`` opens a private in-memory database. ``connect(path)`` replaces
    :func:`sqlite3.connect` (it must return a connection in autocommit mode,
    ``isolation_level=None``, usable from any thread); tests use it to inject faults.
    ``max_batch`` caps the writes per transaction (1 turns group commit off).
    ``busy_timeout`` is how long a write waits for another process's lock.
    ``durability`` is ``"process"`` (WAL with ``synchronous=NORMAL``: an acknowledged
    write survives the process being killed, and commits need no fsync) or ``"power"``
    (``synchronous=FULL``: it also survives a power loss); see the module docstring.
    ``retry_for`` is how long a write keeps retrying a full disk or a locked database
    (with backoff) before it raises :class:`StoreUnavailable`; a new run's first write
    is refused at once on a full disk instead.

    Raises:
        ValueError: ``durability`` is not ``"process"`` or ``"power"``.
        StoreCorrupt: the file is not a SQLite database, or not one of ours.
        StoreUnavailable: the file cannot be opened or created.
        StoreError: the schema is newer than this version supports.
    """
    synchronous = DURABILITY_LEVELS[check_durability(durability)]
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
            version = _prepare(write, name, memory, int(busy_timeout * 1000), synchronous)
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
    writer = _SQLiteWriter(write_conn, store=name, max_batch=max_batch, retry_for=retry_for)
    read_tx = None if read_conn is None else _SQLiteTx(read_conn)
    blobs = (
        MemoryBlobStore()
        if memory
        else DirectoryBlobStore(raw + ".blobs", durability=check_durability(durability))
    )
    store = SQLiteStore(name, writer, read_tx, durability=durability, blobs=blobs)
    store.schema_version, store.applied = version
    try:
        async with writer.running("crucible sqlite writer"):
            yield store
    finally:
        # The writer thread has stopped: nothing uses the write connection any more.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                _close_all, read_conn, write_conn, limiter=store._read_limiter
            )
