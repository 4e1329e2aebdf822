"""Bad input and faults: each gives a clear StoreError subclass, never a hang, never a retry.

A store error during a run fails the run without charging the stage's restart budget:
the run supervisor treats observer errors as run failures, outside the stage's restart
loop. The run's outcome is then kept and its write retried until the store takes it.
"""

from __future__ import annotations

import socket
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from crucible_actors import (
    Context,
    Experiment,
    Registry,
    RunStatus,
    StageDef,
    StageFailed,
    open_runtime,
    stage,
)
from crucible_actors.errors import StoreCorrupt, StoreError, StoreUnavailable
from crucible_actors.store import OwnerRecord, open_sqlite_store, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


async def test_unknown_scheme_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(StoreUnavailable) as info:
        async with open_store("mysql://root:pw@db/x"):
            pass
    assert "unknown store URL (scheme 'mysql')" in str(info.value)
    assert "sqlite:///path.db" in str(info.value)
    assert info.value.store == "mysql://root:***@db/x"


async def test_url_without_scheme_is_refused() -> None:
    with pytest.raises(StoreUnavailable, match="no scheme"):
        async with open_store("crucible.db"):
            pass


async def test_runtime_with_a_bad_store_url_fails_to_open() -> None:
    with pytest.raises(StoreUnavailable), anyio.fail_after(10):
        async with open_runtime(store="nosuch://x", registry=Registry()):
            pass


async def test_garbage_file_is_reported_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database, just text " * 200)
    with pytest.raises(StoreCorrupt) as info, anyio.fail_after(10):
        async with open_store(f"sqlite:///{path}"):
            pass
    assert info.value.store == f"sqlite:///{path}"
    assert "not a readable crucible-actors database" in str(info.value)
    assert "file is not a database" in str(info.value)


async def test_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
        conn.commit()
    with pytest.raises(StoreCorrupt, match="not a crucible-actors database") as info:
        async with open_sqlite_store(path):
            pass
    assert "tables: invoices" in str(info.value)
    with closing(sqlite3.connect(path)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
        assert tables == [("invoices",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


async def test_schema_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with open_sqlite_store(path):
        pass
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 42")
    with pytest.raises(StoreError, match="version 42, newer than this crucible-actors"):
        async with open_sqlite_store(path):
            pass


async def test_refused_postgres_connection_is_unavailable_at_once() -> None:
    with pytest.raises(StoreUnavailable, match="Connection refused") as info, anyio.fail_after(10):
        async with open_store("postgresql://postgres:secret@127.0.0.1:1/test"):
            pass
    assert info.value.store == "postgresql://postgres:***@127.0.0.1:1/test"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Return the port of a TCP server that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.mark.slow
async def test_silent_postgres_server_times_out_instead_of_hanging(silent_server: int) -> None:
    from crucible_actors.store._postgres import open_postgres_store

    url = f"postgresql://postgres@127.0.0.1:{silent_server}/test"
    start = anyio.current_time()
    with pytest.raises(StoreUnavailable, match="timeout"), anyio.fail_after(20):
        async with open_postgres_store(url, connect_timeout=2):
            pass
    assert anyio.current_time() - start < 10


class DiskFull:
    """A sqlite3 connection whose writes fail with SQLITE_FULL while ``full`` is set.

    With ``free_after`` set, space frees itself after that many refused writes.
    """

    full = False
    free_after: int | None = None

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def _check(self, sql: str) -> None:
        verb = sql.lstrip().split(None, 1)[0].upper()
        if DiskFull.full and verb not in ("SELECT", "PRAGMA", "BEGIN", "ROLLBACK"):
            if DiskFull.free_after is not None:
                DiskFull.free_after -= 1
                DiskFull.full = DiskFull.free_after > 0
            raise sqlite3.OperationalError("database or disk is full")

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._check(sql)
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        self._check(sql)
        return self.conn.executemany(sql, rows)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def disk() -> Iterator[type[DiskFull]]:
    DiskFull.full = False
    DiskFull.free_after = None
    yield DiskFull
    DiskFull.full = False
    DiskFull.free_after = None


CALLS: list[str] = []


@stage("fill_disk")
async def fill_disk(ctx: Context, opts: Any) -> Context:
    CALLS.append("fill_disk")
    DiskFull.full = True
    if opts.get("fail"):
        raise RuntimeError("stage failed while the disk filled up")
    return ctx.put_metric("filled", True)


@stage("after")
async def after(ctx: Context, opts: Any) -> Context:
    CALLS.append("after")
    return ctx


async def test_full_disk_at_a_checkpoint_fails_the_run_without_retrying(
    tmp_path: Path, disk: type[DiskFull]
) -> None:
    CALLS.clear()
    exp = Experiment(
        id="full",
        pipeline=[
            StageDef(stage=fill_disk, restart="transient", max_restarts=5),
            StageDef(stage=after, restart="transient", max_restarts=5),
        ],
    )
    # The checkpoint write is refused (the run fails), then the outcome's first write;
    # its retry lands once space is free.
    disk.free_after = 2
    with anyio.fail_after(20):
        async with (
            open_sqlite_store(tmp_path / "full.db", connect=disk) as store,
            open_runtime(store=store, registry=Registry()) as rt,
        ):
            handle = await rt.submit(exp, run_id="r1")
            assert await handle.wait() is RunStatus.FAILED
            assert (await store.get_run("r1")).status == "failed"
    assert CALLS == ["fill_disk"]  # neither stage was retried; 'after' never started
    err = handle.error
    assert isinstance(err, StageFailed)
    assert isinstance(err.reason, StoreUnavailable)
    assert "the disk is full" in str(err.reason)
    assert err.reason.store == f"sqlite:///{tmp_path}/full.db"


async def test_full_disk_while_recording_a_failed_attempt_does_not_retry_the_stage(
    tmp_path: Path, disk: type[DiskFull]
) -> None:
    CALLS.clear()
    exp = Experiment(
        id="full",
        pipeline=[StageDef(stage=fill_disk, restart="transient", options={"fail": True})],
    )
    disk.free_after = 2  # the failed attempt, then the outcome's first write
    async with (
        open_sqlite_store(tmp_path / "full.db", connect=disk) as store,
        open_runtime(store=store, registry=Registry()) as rt,
    ):
        handle = await rt.submit(exp, run_id="r1")
        with anyio.fail_after(20):
            assert await handle.wait() is RunStatus.FAILED
        # The outcome was kept and its write retried until the disk had room again.
        assert (await store.get_run("r1")).status == "failed"
    assert CALLS == ["fill_disk"]
    assert isinstance(handle.error, StageFailed)
    assert isinstance(handle.error.reason, StoreUnavailable)


async def test_a_store_failure_at_start_refuses_only_that_submission(
    tmp_path: Path, disk: type[DiskFull]
) -> None:
    CALLS.clear()
    exp = Experiment(id="ok", pipeline=[StageDef(stage=after)])
    async with (
        open_sqlite_store(tmp_path / "full.db", connect=disk) as store,
        open_runtime(store=store, registry=Registry()) as rt,
    ):
        disk.full = True
        # Not acknowledged: submit() raises rather than return a run the store lacks.
        with pytest.raises(StoreUnavailable, match="the disk is full"):
            await rt.submit(exp, run_id="doomed")
        disk.full = False
        fine = await rt.submit(exp, run_id="fine")
        assert await fine.wait() is RunStatus.COMPLETED
        assert [r.id for r in await store.list_runs()] == ["fine"]
    assert CALLS == ["after"]


async def test_writes_after_close_fail_instead_of_hanging(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "closed.db") as store:
        pass
    now = datetime.now(UTC)
    with pytest.raises(StoreUnavailable, match="closed"), anyio.fail_after(5):
        await store.register_owner(
            OwnerRecord(id="o", host="h", pid=1, started_at=now, heartbeat_at=now)
        )
