"""Bad input and faults: each gives a clear StoreError subclass, never a hang.

Transient faults (a full disk, a lost connection) are ridden out: the store retries the
write with backoff for up to ``retry_for`` seconds, and a new run is refused at once on a
full disk. A store error that outlasts that fails the run without charging the stage's
restart budget: the run supervisor treats observer errors as run failures, outside the
stage's restart loop. The run's outcome is then kept and its write retried until the
store takes it.
"""

from __future__ import annotations

import socket
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import anyio
import pytest
from tests.helpers import missing_extra, needs_extra

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
from crucible_actors._core._encoding import encode_context
from crucible_actors.errors import OutcomeNotStored, StoreCorrupt, StoreError, StoreUnavailable
from crucible_actors.store import (
    Checkpoint,
    ExperimentRecord,
    OwnerRecord,
    PostgresStore,
    RunRecord,
    SQLiteStore,
    open_sqlite_store,
    open_store,
)
from crucible_actors.testing import TcpProxy

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


@needs_extra("postgres", "psycopg")
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

    ``free_after`` (if set) frees the disk after that many failed writes; ``statements``
    records every statement run, for the WAL truncation check.
    """

    full = False
    free_after: int | None = None
    failures = 0
    statements: ClassVar[list[str]] = []

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def _check(self, sql: str) -> None:
        DiskFull.statements.append(sql)
        verb = sql.lstrip().split(None, 1)[0].upper()
        if DiskFull.full and verb not in ("SELECT", "PRAGMA", "BEGIN", "ROLLBACK"):
            DiskFull.failures += 1
            if DiskFull.free_after is not None and DiskFull.failures >= DiskFull.free_after:
                DiskFull.full = False
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
    DiskFull.full, DiskFull.free_after, DiskFull.failures = False, None, 0
    DiskFull.statements.clear()
    yield DiskFull
    DiskFull.full, DiskFull.free_after, DiskFull.failures = False, None, 0


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


@pytest.mark.slow
async def test_full_disk_at_a_checkpoint_waits_for_space_then_completes(
    tmp_path: Path, disk: type[DiskFull]
) -> None:
    CALLS.clear()
    disk.free_after = 3  # space is freed after three failed writes
    exp = Experiment(
        id="full",
        pipeline=[
            StageDef(stage=fill_disk, restart="transient", max_restarts=5),
            StageDef(stage=after, restart="transient", max_restarts=5),
        ],
    )
    with anyio.fail_after(20):
        async with (
            open_sqlite_store(tmp_path / "full.db", connect=disk) as store,
            open_runtime(store=store, registry=Registry()) as rt,
        ):
            handle = await rt.submit(exp, run_id="r1")
            assert await handle.wait() is RunStatus.COMPLETED
            assert (await store.get_run("r1")).status == "completed"
            assert store._writer.retries >= 3
    assert CALLS == ["fill_disk", "after"]  # each stage ran once: no stage was retried
    assert disk.failures == 3
    # The first transaction after the full disk checkpointed and truncated the WAL.
    assert "PRAGMA wal_checkpoint(TRUNCATE)" in disk.statements


@pytest.mark.slow
async def test_full_disk_outlasting_retry_for_fails_the_run_without_retrying_stages(
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
    with anyio.fail_after(20):
        async with (
            open_sqlite_store(tmp_path / "full.db", connect=disk, retry_for=0.3) as store,
            open_runtime(store=store, registry=Registry()) as rt,
        ):
            handle = await rt.submit(exp, run_id="r1")
            # The checkpoint write gave up (the run failed), then its outcome's write did
            # too: the caller is told the outcome was not stored, never that it failed
            # while the store still says running.
            assert await handle.wait() is RunStatus.INTERRUPTED
            assert (await store.get_run("r1")).status == "running"
    assert CALLS == ["fill_disk"]  # neither stage was retried; 'after' never started
    err = handle.error
    assert isinstance(err, OutcomeNotStored)
    assert err.outcome == "failed"
    assert isinstance(err.__cause__, StoreUnavailable)
    text = str(err.__cause__)
    assert "the disk is full" in text
    assert "(retried for 0.3 s)" in text
    assert "\n" not in text
    assert text.count(f"store sqlite:///{tmp_path}/full.db:") == 1
    assert err.__cause__.store == f"sqlite:///{tmp_path}/full.db"


@pytest.mark.slow
async def test_full_disk_while_recording_a_failed_attempt_does_not_retry_the_stage(
    tmp_path: Path, disk: type[DiskFull]
) -> None:
    CALLS.clear()
    exp = Experiment(
        id="full",
        pipeline=[StageDef(stage=fill_disk, restart="transient", options={"fail": True})],
    )
    async with (
        open_sqlite_store(tmp_path / "full.db", connect=disk, retry_for=0.3) as store,
        open_runtime(store=store, registry=Registry()) as rt,
    ):
        handle = await rt.submit(exp, run_id="r1")
        with anyio.fail_after(20):
            # The failed attempt's record could not be written (the run failed on the
            # store, the stage was not retried), nor could the outcome: the caller hears so.
            assert await handle.wait() is RunStatus.INTERRUPTED
        disk.full = False
        # The row stays running under this live owner, for recovery to settle once this
        # process is gone.
        assert (await store.get_run("r1")).status == "running"
    assert CALLS == ["fill_disk"]
    assert isinstance(handle.error, OutcomeNotStored)
    assert handle.error.outcome == "failed"
    assert isinstance(handle.error.__cause__, StoreUnavailable)


async def test_a_full_disk_refuses_a_new_run_at_once_and_only_that_run(
    tmp_path: Path, disk: type[DiskFull]
) -> None:
    CALLS.clear()
    exp = Experiment(id="ok", pipeline=[StageDef(stage=after)])
    async with (
        open_sqlite_store(tmp_path / "full.db", connect=disk) as store,
        open_runtime(store=store, registry=Registry()) as rt,
    ):
        disk.full = True
        refused: BaseException | None
        with anyio.fail_after(2):  # not the minute an accepted run's write would wait
            # Whether submit() itself raises (it waits for the run's row to commit) or
            # the run fails before its first stage, the refusal is a StoreUnavailable.
            try:
                doomed = await rt.submit(exp, run_id="doomed")
            except StoreUnavailable as exc:
                refused = exc
            else:
                assert await doomed.wait() is RunStatus.FAILED
                assert isinstance(doomed.error, StageFailed)
                refused = doomed.error.reason
        assert store._writer.retries == 0
        disk.full = False
        fine = await rt.submit(exp, run_id="fine")
        assert await fine.wait() is RunStatus.COMPLETED
        assert [r.id for r in await store.list_runs()] == ["fine"]
    assert CALLS == ["after"]
    assert isinstance(refused, StoreUnavailable)
    assert "the disk is full" in str(refused)


async def test_writes_after_close_fail_instead_of_hanging(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "closed.db") as store:
        pass
    now = datetime.now(UTC)
    with pytest.raises(StoreUnavailable, match="closed"), anyio.fail_after(5):
        await store.register_owner(
            OwnerRecord(id="o", host="h", pid=1, started_at=now, heartbeat_at=now)
        )


@stage("cut_connections")
async def cut_connections(ctx: Context, opts: Any) -> Context:
    """Terminate every server connection of the application named in ``opts`` (once)."""
    if opts.get("armed") and not CUT:
        CUT.append(await anyio.to_thread.run_sync(_terminate, opts["server"], opts["app"]))
    return ctx.put_metric("cut", True)


CUT: list[int] = []


def _terminate(server: str, app: str) -> int:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (app,),
        ).fetchall()
    return len(rows)


@pytest.mark.postgres
@pytest.mark.slow
async def test_postgres_connections_terminated_mid_run_are_ridden_out(
    pg_url: str, pg_server_url: str
) -> None:
    """pg_terminate_backend of all the store's connections while 20 runs write: all
    complete, stored ``completed``, and the store stays usable."""
    pytest.importorskip("psycopg", reason=missing_extra("postgres"))
    CUT.clear()
    app = f"crucible-faults-{uuid.uuid4().hex[:8]}"
    url = f"{pg_url}&application_name={app}"
    opts = {"server": pg_server_url, "app": app}
    experiments = [
        Experiment(
            id="cut",
            pipeline=[
                StageDef(stage=after),
                StageDef(stage=cut_connections, options={**opts, "armed": i == 5}),
                StageDef(stage=after),
            ],
        )
        for i in range(20)
    ]
    with anyio.fail_after(60):
        async with open_store(url, migrate=True):
            pass
        async with (
            open_store(url) as store,
            open_runtime(store=store, registry=Registry()) as rt,
        ):
            handles = [await rt.submit(exp) for exp in experiments]
            statuses = [await h.wait() for h in handles]
            assert [CUT[0]] == CUT  # cut once, mid-run
            assert CUT[0] >= 1
            assert statuses == [RunStatus.COMPLETED] * 20, [h.error for h in handles]
            stored = {r.id: r.status for r in await store.list_runs(limit=100)}
            assert stored == {h.run_id: "completed" for h in handles}
            # Cut again while the pool is idle (as a server restart leaves it): the next
            # lone run and read get live connections, not the dead pooled ones.
            assert await anyio.to_thread.run_sync(_terminate, pg_server_url, app) >= 1
            late = await rt.submit(Experiment(id="late", pipeline=[StageDef(stage=after)]))
            assert await late.wait() is RunStatus.COMPLETED, late.error
            assert await anyio.to_thread.run_sync(_terminate, pg_server_url, app) >= 1
            assert (await store.get_run(late.run_id)).status == "completed"


async def test_a_full_disk_fails_a_batch_once_not_write_by_write(
    tmp_path: Path, disk: type[DiskFull]
) -> None:
    """30 concurrent writes meet a full disk: the batch fails as a whole (one failed
    statement per try, not one per write) and every write commits once space is back."""
    now = datetime.now(UTC)
    owners = [
        OwnerRecord(id=f"o{i}", host="h", pid=i, started_at=now, heartbeat_at=now)
        for i in range(30)
    ]
    with anyio.fail_after(20):
        async with open_sqlite_store(tmp_path / "batch.db", connect=disk) as store:
            for owner in owners:
                await store.register_owner(owner)
            disk.full, disk.free_after = True, 2
            async with anyio.create_task_group() as tg:
                for owner in owners:
                    tg.start_soon(store.heartbeat, owner.id, now)
            assert disk.failures == 2  # two failed transactions, not one per write
            assert store._writer.retries >= 30
            assert len(await store.list_owners()) == 30


class LostAck(DiskFull):
    """A connection whose next ``lose`` COMMITs go through but report a lost connection
    (as when PostgreSQL commits and the connection dies before the answer arrives)."""

    lose = 0

    def execute(self, sql: str, params: Any = ()) -> Any:
        result = self.conn.execute(sql, params)
        if sql.strip().upper() == "COMMIT" and LostAck.lose > 0:
            LostAck.lose -= 1
            raise sqlite3.OperationalError("database is locked")  # a transient fault
        return result


async def test_writes_retried_after_a_lost_commit_acknowledgement_are_idempotent(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    run = RunRecord(id="r1", experiment_id="e", status="running", started_at=now, owner_id="me")
    experiment = ExperimentRecord(id="e", definition={"id": "e"}, created_at=now, updated_at=now)
    with anyio.fail_after(20):
        async with open_sqlite_store(tmp_path / "ack.db", connect=LostAck) as store:
            LostAck.lose = 1
            await store.start_run(run, experiment=experiment)  # committed, then retried
            assert [r.id for r in await store.list_runs()] == ["r1"]
            LostAck.lose = 1
            claimed = await store.claim_run("r1", status="running", owner_id="me", new_owner_id="B")
            assert claimed  # its own earlier commit counts
            LostAck.lose = 1
            assert await store.mark_interrupted("r1", owner_id="B", finished_at=now)
            assert (await store.get_run("r1")).status == "interrupted"
            assert store._writer.retries == 3
            # A real duplicate (another owner's row) is still refused.
            with pytest.raises(StoreError, match="already exists"):
                await store.start_run(
                    RunRecord(
                        id="r1", experiment_id="e", status="running", started_at=now, owner_id="C"
                    ),
                    experiment=experiment,
                )


class LostResumeAck(DiskFull):
    """A connection whose next ``lose`` COMMITs of a resume (the transaction that wrote
    ``resume_count``) go through but report a lost connection."""

    lose = 0
    resuming = False

    def execute(self, sql: str, params: Any = ()) -> Any:
        result = self.conn.execute(sql, params)
        if "resume_count" in sql and sql.lstrip().upper().startswith("UPDATE"):
            LostResumeAck.resuming = True
        if sql.strip().upper() == "COMMIT":
            resumed, LostResumeAck.resuming = LostResumeAck.resuming, False
            if resumed and LostResumeAck.lose > 0:
                LostResumeAck.lose -= 1
                raise sqlite3.OperationalError("database is locked")  # a transient fault
        return result


async def test_a_resume_retried_after_a_lost_commit_acknowledgement_counts_once(
    tmp_path: Path,
) -> None:
    """Recovery resumes an orphan; the commit of its resume goes through but its answer
    is lost, so the writer runs the write again: the run is counted resumed once."""
    exp = Experiment(id="once", pipeline=[StageDef(stage=after)])
    now = datetime.now(UTC)
    db = tmp_path / "resume.db"
    async with open_sqlite_store(db) as store:
        await store.register_owner(
            OwnerRecord(
                id="dead",
                host=socket.gethostname(),
                pid=999_999_999,
                started_at=now,
                heartbeat_at=now,
            )
        )
        await store.start_run(
            RunRecord(
                id="r1", experiment_id=exp.id, status="running", started_at=now, owner_id="dead"
            ),
            experiment=ExperimentRecord(
                id=exp.id, definition={"id": exp.id}, created_at=now, updated_at=now
            ),
            checkpoint=Checkpoint(
                run_id="r1",
                index=0,
                created_at=now,
                data=encode_context(Context.new(exp, run_id="r1")),
            ),
        )
    LostResumeAck.lose, LostResumeAck.resuming = 1, False
    with anyio.fail_after(20):
        async with (
            open_sqlite_store(db, connect=LostResumeAck) as store,
            open_runtime(store=store, registry=Registry(), on_start="resume") as rt,
        ):
            handle = rt.get("r1")
            assert handle is not None
            assert await handle.wait() is RunStatus.COMPLETED
            assert LostResumeAck.lose == 0  # the resume's answer was lost once
            assert store._writer.retries == 1  # and its write ran again
            run = await store.get_run("r1")
    assert (run.status, run.resume_count) == ("completed", 1)


@stage("pause")
async def pause(ctx: Context, opts: Any) -> Context:
    await anyio.sleep(opts["seconds"])
    return ctx.put_metric("paused", True)


@pytest.mark.postgres
@pytest.mark.slow
async def test_runs_stall_through_a_postgres_outage_and_finish(pg_url: str) -> None:
    """The server becomes unreachable for 3 s (every connection cut, new ones refused,
    through a TCP proxy): the 20 runs going stall and then all complete, stored so,
    within a few seconds of the server coming back."""
    server = urlsplit(pg_url)
    assert server.hostname is not None
    proxy = TcpProxy((server.hostname, server.port or 5432))
    url = pg_url.replace(f"{server.hostname}:{server.port}", f"127.0.0.1:{proxy.port}", 1)
    exp = Experiment(
        id="outage",
        pipeline=[
            StageDef(stage=after),
            StageDef(stage=pause, options={"seconds": 0.5}),
            StageDef(stage=after),
            StageDef(stage=pause, options={"seconds": 0.5}),
        ],
    )
    try:
        with anyio.fail_after(60):
            async with open_store(pg_url, migrate=True):
                pass
            async with (
                open_store(url) as store,
                open_runtime(store=store, registry=Registry()) as rt,
            ):
                handles = [await rt.submit(exp) for _ in range(20)]
                await anyio.sleep(0.3)  # the runs are in their first pause
                proxy.cut()
                await anyio.sleep(3.0)  # the outage
                proxy.restore()
                back = anyio.current_time()
                statuses = [await h.wait() for h in handles]
                settled = anyio.current_time() - back
                assert statuses == [RunStatus.COMPLETED] * 20, [h.error for h in handles]
                stored = {r.id: r.status for r in await store.list_runs(limit=100)}
                assert stored == {h.run_id: "completed" for h in handles}
                assert settled < 5.0  # not the pool's reconnection backoff
    finally:
        proxy.close()


async def test_retry_for_is_a_store_url_option(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path}/r.db?retry_for=2.5") as store:
        assert isinstance(store, SQLiteStore)
        assert store._writer.retry_for == 2.5
    with pytest.raises(StoreUnavailable, match="bad value for SQLite URL option 'retry_for'"):
        async with open_store(f"sqlite:///{tmp_path}/r.db?retry_for=soon"):
            pass


@pytest.mark.postgres
async def test_retry_for_in_a_postgres_url_is_taken_out_before_connecting(pg_url: str) -> None:
    async with open_store(pg_url, migrate=True):
        pass
    async with open_store(f"{pg_url}&retry_for=2.5") as store:
        assert isinstance(store, PostgresStore)
        assert store._writer.retry_for == 2.5
        assert await store.list_runs() == []
    with pytest.raises(StoreUnavailable, match="'retry_for': 'soon'"):
        async with open_store(f"{pg_url}&retry_for=soon"):
            pass
