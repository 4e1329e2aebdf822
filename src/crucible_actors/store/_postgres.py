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
duplicated or resumed twice. Hosts' clocks must agree within the heartbeat staleness
window, since heartbeats carry wall-clock time.
"""

from __future__ import annotations

import contextlib
import math
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._core._errors import MissingDependency, StoreError, StoreUnavailable
from . import _sql
from ._sql import redact_url
from ._sqlstore import SQLStore
from ._writer import FAULT_CONNECTION, FAULT_FULL, RETRY_FOR, GroupCommitWriter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence
    from datetime import datetime


__all__ = ["PostgresStore", "open_postgres_store"]

#: Seconds a read waits for a pooled connection before it opens one of its own.
_POOL_WAIT = 1.0

# pg_advisory_xact_lock key taken while migrating ("crucible" in ASCII).
_MIGRATION_LOCK = 0x6372756369626C65


def _drivers() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise MissingDependency("psycopg", "the PostgreSQL store", extra="postgres") from exc
    return psycopg, psycopg_pool


def wrap_pg_error(exc: BaseException, store: str) -> StoreError:
    """Return the StoreError subclass that reports the psycopg error ``exc``."""
    if isinstance(exc, StoreError):
        return exc
    psycopg, psycopg_pool = _drivers()
    err: StoreError
    if isinstance(exc, psycopg_pool.PoolTimeout):
        err = StoreUnavailable(f"no database connection available in time ({exc})", store=store)
    elif isinstance(exc, psycopg.errors.DiskFull):
        err = StoreUnavailable(f"the server's disk is full ({exc})", store=store)
    elif isinstance(exc, psycopg.errors.UndefinedTable):
        err = StoreUnavailable(
            f"the crucible-actors tables are missing ({exc}); "
            f"run: crucible-actors db migrate --store {store}",
            store=store,
        )
    elif isinstance(exc, psycopg.OperationalError):
        # libpq's messages span lines ("...failed: Connection refused\n\tIs the server
        # running..."): one line, so that the CLI prints one.
        text = " ".join(str(exc).split())
        err = StoreUnavailable(f"cannot use the server: {text}".strip(), store=store)
    else:
        err = StoreError(f"{type(exc).__name__}: {exc}", store=store)
    err.__cause__ = exc
    return err


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


class PostgresStore(SQLStore):
    """A :class:`~crucible_actors._core._store.Store` in a PostgreSQL database.

    Obtain one with :func:`open_postgres_store` (or ``open_store("postgresql://...")``).
    """

    local = False
    _writer: _PgWriter

    def __init__(self, name: str, pool: Any, writer: _PgWriter, readers: int) -> None:
        self._name = name
        self._pool = pool
        self._writer = writer
        self._read_limiter = anyio.CapacityLimiter(readers)
        self.schema_version = 0
        self.applied: list[str] = []

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
    try:
        async with writer.running("crucible postgres writer"):
            yield store
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writer.close_connection)
            await anyio.to_thread.run_sync(pool.close)
