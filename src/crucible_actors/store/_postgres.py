"""The PostgreSQL store: one history shared by a team, several processes or hosts.

Driver: psycopg 3's *sync* API, called from worker threads through ``anyio.to_thread``,
with a ``psycopg_pool.ConnectionPool``. asyncpg and psycopg's async API both need an
asyncio event loop, so they cannot serve a runtime on trio; a sync driver in threads
works the same under either anyio backend, and the pool keeps the connections warm.

Writes go through the same group-commit writer as SQLite (one task, one thread at a
time): the writes queued while one transaction commits share the next one, so many
concurrent runs pay one commit per batch. Reads take pooled connections in parallel.
Every write is acknowledged only after ``COMMIT`` returned, i.e. after the server made
it durable under its own ``synchronous_commit`` setting (``on`` by default).

The schema is versioned by the files in ``migrations/postgresql`` (the same version
numbers as SQLite) and recorded in ``crucible_schema_migrations``; they are applied by
``crucible-actors db migrate --store URL`` (or ``open_store(url, migrate=True)``), under
an advisory lock so concurrent migrators do not collide. Opening a store whose schema is
behind raises :class:`StoreUnavailable` naming that command.

Several processes may share one database: run ids are primary keys, and takeovers of
orphaned runs are conditional updates (``... WHERE owner_id = old``), so a run is never
duplicated or resumed twice. Each runtime's ownership is a *lease* (:class:`_PgLease`):
a session-level advisory lock, keyed by its owner id, held on a dedicated connection for
the runtime's life. The server releases it when that session ends (the process died, or
the connection broke), so another process checks liveness in ``pg_locks``, never by
comparing clocks; TCP keepalives on that connection bound how long a vanished host's
session lingers. Writes of run state are fenced by owner (``_sql.check_owners``).
"""

from __future__ import annotations

import contextlib
import math
import threading
from contextlib import asynccontextmanager, contextmanager
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._core import StoreError, StoreUnavailable
from . import _sql
from ._pg_blobs import PostgresBlobStore, blob_options
from ._pg_driver import drivers as _drivers
from ._pg_driver import wrap_pg_error
from ._sql import redact_url
from ._sqlstore import SQLStore
from ._writer import FAULT_CONNECTION, FAULT_FULL, RETRY_FOR, GroupCommitWriter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence
    from datetime import datetime

    from .._core import BlobStore


__all__ = ["PostgresStore", "open_postgres_store"]

#: The tables of a store (their sizes are the store's size) and those gc vacuums.
_TABLES = (
    "experiments",
    "owners",
    "runs",
    "stage_attempts",
    "checkpoints",
    "artifacts",
    "trace_events",
    "sweeps",
    "sweep_points",
    "stage_results",
)
#: Vacuumed by gc when they exist: the run tables, and the blob tables of a database
#: that keeps its blobs (their size is counted as the blob store's, not here).
_RECLAIMED = (*_TABLES[2:], "blobs", "blob_chunks")
#: Seconds a read waits for a pooled connection before it opens one of its own.
_POOL_WAIT = 1.0

# pg_advisory_xact_lock key taken while migrating ("crucible" in ASCII).
_MIGRATION_LOCK = 0x6372756369626C65

# First key of the owner leases ("cruc" in ASCII); the second is hashtext(owner id).
_LEASE_CLASS = 0x63727563

#: ``OwnerRecord.lease`` of an owner holding a session-level advisory lock.
LEASE_KIND = "pg_advisory_lock"

# The lease connection's TCP keepalives: a session whose host vanished (no FIN, no RST)
# ends, releasing its lease, within about idle + interval * count seconds.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


def pg_fault(exc: BaseException) -> str | None:
    """Return the transient fault ``exc`` reports, or None.

    A full disk on the server is :data:`FAULT_FULL`; a lost, refused or timed-out
    connection, a server shutting down, a serialization failure or deadlock (all
    ``OperationalError``), a connection found closed, or no pooled connection in time
    is :data:`FAULT_CONNECTION`.
    """
    psycopg, psycopg_pool = _drivers()
    if isinstance(exc, psycopg.errors.DiskFull):
        return FAULT_FULL
    if isinstance(
        exc, psycopg.OperationalError | psycopg.InterfaceError | psycopg_pool.PoolTimeout
    ):
        return FAULT_CONNECTION
    return None


@cache
def _pg_sql(sql: str) -> str:
    return sql.replace("?", "%s")


class _PgTx(_sql.Tx):
    __slots__ = ("conn",)
    owner_match = "owner_id IS NOT DISTINCT FROM ?"
    lock_rows = " FOR SHARE"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.conn.cursor() as cur:
            cur.execute(_pg_sql(sql), params)
            rowcount: int = cur.rowcount
            return rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self.conn.cursor() as cur:
            cur.executemany(_pg_sql(sql), rows)
            changed: int = cur.rowcount
            return changed

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(_pg_sql(sql), params)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            return rows

    def ts_in(self, value: datetime | None) -> Any:
        return value  # timestamptz; psycopg adapts aware datetimes

    def owner_match_column(self, left: str, right: str) -> str:
        return f"{left} IS NOT DISTINCT FROM {right}"

    def cast_json(self, expr: str) -> str:
        return f"CAST({expr} AS jsonb)"

    def cast_ts(self, expr: str) -> str:
        return f"CAST({expr} AS timestamptz)"


class _PgWriter(GroupCommitWriter[_PgTx]):
    """The group-commit writer, on a connection of its own (not the pool's).

    Only the writer thread uses it. A connection found broken is dropped, and the next
    transaction opens a new one at once: after a server restart or an outage the writes
    resume as soon as the server accepts connections again, where the pool would wait
    out its reconnection backoff (measured: up to 28 s after a 30 s outage).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        store: str,
        max_batch: int,
        retry_for: float = RETRY_FOR,
    ) -> None:
        super().__init__(
            store=store, handlers=_sql.GROUP_HANDLERS, max_batch=max_batch, retry_for=retry_for
        )
        self.connect = connect
        self.conn: Any = None
        self.conv = _PgTx(None)  # value conversions only, no connection

    @contextmanager
    def transaction(self) -> Iterator[_PgTx]:
        conn = self.conn
        if conn is None or conn.closed:
            conn = self.conn = self.connect()
        try:
            with conn.transaction():
                yield _PgTx(conn)
        except BaseException:
            if conn.closed or conn.broken:
                self.close_connection()
            raise

    def close_connection(self) -> None:
        """Close the writer's connection (once the writer thread has stopped, or from it)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def wrap_error(self, exc: Exception) -> StoreError:
        return wrap_pg_error(exc, self.store)

    def fault_kind(self, exc: Exception) -> str | None:
        return pg_fault(exc)


def _schema_version(conn: Any) -> int:
    row = conn.execute("SELECT to_regclass('crucible_schema_migrations')").fetchone()
    if row[0] is None:
        return 0
    version: int = conn.execute(
        "SELECT coalesce(max(version), 0) FROM crucible_schema_migrations"
    ).fetchone()[0]
    return version


def migrate_postgres(conn: Any, store: str) -> tuple[int, list[str]]:
    """Apply the missing migrations in one transaction under an advisory lock.

    Returns the version reached and the names of the migrations applied.

    Raises:
        StoreError: the schema is newer than this version of crucible-actors.
    """
    steps = _sql.migrations("postgresql")
    latest = steps[-1].version
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS crucible_schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version = _schema_version(conn)
        if version > latest:
            raise StoreError(
                f"the database schema is version {version}, newer than this crucible-actors "
                f"supports ({latest}); upgrade crucible-actors",
                store=store,
            )
        for step in steps:
            if step.version > version:
                conn.execute(step.sql)
                conn.execute(
                    "INSERT INTO crucible_schema_migrations (version, name) VALUES (%s, %s)",
                    (step.version, step.name),
                )
                version = step.version
                applied.append(f"{step.version:04d}_{step.name}")
    return version, applied


class _PgLease:
    """One owner's lease: an advisory lock held on a connection of its own.

    One per owner, so several runtimes may share one store object. All methods are
    blocking (run them in a worker thread) and serialized by a lock.
    """

    def __init__(self, url: str, connect_kwargs: dict[str, Any], store: str) -> None:
        self.url = url
        self.kwargs = {**_KEEPALIVES, **connect_kwargs}
        self.store = store
        self.conn: Any = None
        self.owner_id: str | None = None
        self.mutex = threading.Lock()

    def _lock(self, owner_id: str) -> bool:
        psycopg, _ = _drivers()
        conn = psycopg.connect(self.url, **self.kwargs)
        try:
            # The server side of the keepalives too, and no idle timeout for this session.
            conn.execute("SET tcp_keepalives_idle = 5")
            conn.execute("SET tcp_keepalives_interval = 2")
            conn.execute("SET tcp_keepalives_count = 3")
            conn.execute("SET idle_session_timeout = 0")
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LEASE_CLASS, owner_id)
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        if not row[0]:
            conn.close()
            return False
        self.conn, self.owner_id = conn, owner_id
        return True

    def acquire(self, owner_id: str) -> bool:
        with self.mutex:
            self._close()
            return self._lock(owner_id)

    def check(self, owner_id: str) -> bool:
        """Return whether the lease is still held; if it was lost, try to take it again."""
        psycopg, _ = _drivers()
        with self.mutex:
            if self.conn is not None and self.owner_id == owner_id:
                try:
                    self.conn.execute("SELECT 1").fetchone()
                    return True
                except psycopg.Error:
                    pass  # the session is gone, and with it the lock
            self._close()
            with contextlib.suppress(psycopg.Error):  # else taken again at a later check
                self._lock(owner_id)
            return False

    def release(self) -> None:
        with self.mutex:
            if self.conn is not None and not self.conn.closed:
                with contextlib.suppress(Exception):
                    self.conn.execute(
                        "SELECT pg_advisory_unlock(%s, hashtext(%s))", (_LEASE_CLASS, self.owner_id)
                    )
            self._close()

    def _close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = self.owner_id = None


def _leases_held(tx: _sql.Tx, owner_ids: Sequence[str]) -> set[str]:
    rows = tx.fetchall(
        "SELECT o.id FROM unnest(CAST(? AS text[])) AS o(id) WHERE EXISTS ("
        " SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid = ? AND l.objid = CAST(hashtext(o.id) AS oid) AND l.objsubid = 2)",
        (list(owner_ids), _LEASE_CLASS),
    )
    return {r[0] for r in rows}


class PostgresStore(SQLStore):
    """A :class:`~crucible_actors.abc.Store` in a PostgreSQL database.

    Obtain one with :func:`open_postgres_store` (or ``open_store("postgresql://...")``).
    """

    local = False
    _writer: _PgWriter
    #: Where large Context values live; the database, or the ``?blobs=DIR`` directory.
    blobs: BlobStore

    def __init__(self, name: str, pool: Any, writer: _PgWriter, readers: int) -> None:
        self._name = name
        self._pool = pool
        self._writer = writer
        self._read_limiter = anyio.CapacityLimiter(readers)
        self.schema_version = 0
        self.applied: list[str] = []
        #: Opens leases: set by :func:`open_postgres_store`.
        self._new_lease: Callable[[], _PgLease] | None = None
        self._leases: dict[str, _PgLease] = {}

    def _read_sync(self, fn: Callable[[_sql.Tx], Any]) -> Any:
        _, psycopg_pool = _drivers()
        try:
            # The read limiter leaves the pool a connection to spare: a healthy pool
            # answers at once, so a wait means it is reconnecting after an outage (with a
            # backoff of its own): read on a connection of our own meanwhile.
            with self._pool.connection(timeout=_POOL_WAIT) as conn:
                return fn(_PgTx(conn))
        except psycopg_pool.PoolTimeout:
            with self._writer.connect() as conn:
                return fn(_PgTx(conn))

    async def _read(self, fn: Callable[[_sql.Tx], Any]) -> Any:
        """Run the query ``fn``; retry a lost connection as writes do (see ``_writer``)."""
        psycopg, psycopg_pool = _drivers()
        writer = self._writer
        delay, longest = writer.retry_delays
        deadline: float | None = None
        while True:
            try:
                return await anyio.to_thread.run_sync(
                    self._read_sync, fn, limiter=self._read_limiter
                )
            except StoreError:
                raise
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                now = anyio.current_time()
                if deadline is None:
                    deadline = now + writer.retry_for
                if pg_fault(exc) != FAULT_CONNECTION or now >= deadline:
                    raise wrap_pg_error(exc, self._name) from exc
                wait = min(delay, deadline - now)
            await anyio.sleep(wait)
            delay = min(delay * 2, longest)

    async def migrate(self) -> list[str]:
        """Apply the missing migrations now; return the names of those applied."""
        name = self._name

        def run() -> list[str]:
            with self._pool.connection() as conn:
                self.schema_version, applied = migrate_postgres(conn, name)
                return applied

        psycopg, _ = _drivers()
        try:
            applied: list[str] = await anyio.to_thread.run_sync(run)
        except psycopg.Error as exc:
            raise wrap_pg_error(exc, name) from exc
        self.applied.extend(applied)
        return applied

    async def _db_bytes(self) -> int:
        found = await self._read(
            lambda tx: tx.fetchall(
                "SELECT COALESCE(SUM(pg_total_relation_size(to_regclass(t))), 0)"
                " FROM unnest(CAST(? AS text[])) AS t",
                (list(_TABLES),),
            )
        )
        return int(found[0][0])

    async def _compact(self) -> None:
        # Plain VACUUM (not FULL, which locks the tables): the space of deleted rows
        # becomes reusable by the server; it is not handed back to the file system.
        def vacuum() -> None:
            with self._pool.connection() as conn:  # autocommit: VACUUM needs no transaction
                for table in _RECLAIMED:
                    found = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
                    if found[0] is not None:
                        conn.execute(f"VACUUM {table}")

        psycopg, psycopg_pool = _drivers()
        try:
            await anyio.to_thread.run_sync(vacuum, limiter=self._read_limiter)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise wrap_pg_error(exc, self._name) from exc

    # -- owner leases (see _core/_owner.py) -------------------------------------------

    #: ``OwnerRecord.lease`` of the owners this store holds leases for.
    lease_kind = LEASE_KIND

    async def _lease_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        psycopg, _ = _drivers()
        try:
            return await anyio.to_thread.run_sync(fn, *args)
        except psycopg.Error as exc:
            raise wrap_pg_error(exc, self._name) from exc

    async def acquire_lease(self, owner_id: str) -> bool:
        """Take ``owner_id``'s advisory lock on a dedicated session; False if it is held.

        Raises:
            StoreUnavailable: the server cannot be reached.
        """
        if self._new_lease is None:
            raise StoreUnavailable("the store was not opened for leases", store=self._name)
        lease = self._new_lease()
        taken: bool = await self._lease_call(lease.acquire, owner_id)
        if taken:
            self._leases[owner_id] = lease
        return taken

    async def check_lease(self, owner_id: str) -> bool:
        """Return whether ``owner_id``'s lease is still held (False: it was lost since the
        last check; it is taken again if it can be)."""
        lease = self._leases.get(owner_id)
        if lease is None:
            return True  # not taken through this store object: nothing to check
        held: bool = await self._lease_call(lease.check, owner_id)
        return held

    async def release_lease(self, owner_id: str) -> None:
        """Release ``owner_id``'s lease and close its session."""
        lease = self._leases.pop(owner_id, None)
        if lease is not None:
            with anyio.CancelScope(shield=True):
                await self._lease_call(lease.release)

    def _release_all(self) -> None:
        for lease in list(self._leases.values()):
            lease.release()
        self._leases.clear()

    async def leases_held(self, owner_ids: Sequence[str]) -> set[str]:
        """Return which of ``owner_ids`` hold their lease now (one ``pg_locks`` query)."""
        ids = list(owner_ids)
        found: set[str] = await self._read(lambda tx: _leases_held(tx, ids))
        return found


@asynccontextmanager
async def open_postgres_store(
    url: str,
    *,
    migrate: bool = False,
    connect_timeout: float = 5.0,
    pool_size: int = 8,
    max_batch: int = 512,
    retry_for: float = RETRY_FOR,
) -> AsyncIterator[PostgresStore]:
    """Open the PostgreSQL store at ``url`` (a libpq URL or conninfo string).

    Blobs (large Context values) go to the database's ``blobs`` tables, read through a
    cache directory (``?blob_cache=DIR``, default ``~/.cache/crucible-actors/blobs``), or
    to a directory every process can reach with ``?blobs=/shared/dir``.
    ``migrate`` applies missing migrations first; otherwise the schema must be current.
    ``connect_timeout`` bounds connecting (libpq rounds it up to 2 s at least) and
    waiting for a pooled connection; the writer has a connection of its own, and a pool
    of ``pool_size`` connections serves ``pool_size - 1`` parallel readers. The pool
    checks each connection as it hands it out, so a server restart costs a reconnect
    rather than a failed read; a write or a read that loses its connection anyway (or
    finds the server down) is retried with backoff for up to ``retry_for`` seconds in
    all, then raises :class:`StoreUnavailable`.

    Raises:
        MissingDependency: psycopg is not installed.
        StoreUnavailable: the server does not answer in time, refuses the login, or the
            schema is missing or behind (run ``crucible-actors db migrate``).
        StoreError: the schema is newer than this version supports.
    """
    psycopg, psycopg_pool = _drivers()
    name = redact_url(url)
    url, blob_dir, blob_cache = blob_options(url)
    timeout = max(2, math.ceil(connect_timeout))
    params = psycopg.conninfo.conninfo_to_dict(url)
    connect_kwargs: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in params:
        connect_kwargs["connect_timeout"] = timeout

    def probe() -> tuple[int, list[str]]:
        # A direct connection first: it fails fast with the server's own reason, where
        # a pool would retry silently until its timeout.
        with psycopg.connect(url, **connect_kwargs) as conn:
            if migrate:
                return migrate_postgres(conn, name)
            return _schema_version(conn), []

    try:
        version, applied = await anyio.to_thread.run_sync(probe)
    except psycopg.Error as exc:
        raise wrap_pg_error(exc, name) from exc
    latest = _sql.migrations("postgresql")[-1].version
    if version < latest:
        raise StoreUnavailable(
            f"the database schema is at version {version} but this crucible-actors needs "
            f"{latest}; run: crucible-actors db migrate --store {name}",
            store=name,
        )
    if version > latest:
        raise StoreError(
            f"the database schema is version {version}, newer than this crucible-actors "
            f"supports ({latest}); upgrade crucible-actors",
            store=name,
        )
    size = max(2, pool_size)
    pool = psycopg_pool.ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        kwargs=connect_kwargs,
        timeout=connect_timeout,
        open=False,
        name="crucible-actors",
        # A round trip per checkout: after a server restart the pooled connections are
        # dead, and without it the first writes and reads after it would fail (issue 21).
        check=psycopg_pool.ConnectionPool.check_connection,
    )
    try:
        await anyio.to_thread.run_sync(lambda: pool.open(wait=True, timeout=connect_timeout))
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        await anyio.to_thread.run_sync(pool.close)
        raise wrap_pg_error(exc, name) from exc
    writer = _PgWriter(
        lambda: psycopg.connect(url, **connect_kwargs),
        store=name,
        max_batch=max_batch,
        retry_for=retry_for,
    )
    store = PostgresStore(name, pool, writer, size - 1)
    store.schema_version, store.applied = version, applied
    if blob_dir is not None:
        from ._blobs import DirectoryBlobStore

        store.blobs = DirectoryBlobStore(blob_dir, durability="power")
    else:
        store.blobs = PostgresBlobStore(url, cache_dir=blob_cache, pool=pool)
    store._new_lease = partial(_PgLease, url, connect_kwargs, name)
    try:
        async with writer.running("crucible postgres writer"):
            yield store
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store._release_all)
            await anyio.to_thread.run_sync(writer.close_connection)
            await anyio.to_thread.run_sync(pool.close)
