"""SQLite specifics: URLs, migrations, WAL and durability levels, group commit, acknowledgement."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from crucible_actors.errors import StoreError, StoreUnavailable
from crucible_actors.store import (
    Checkpoint,
    ExperimentRecord,
    RunRecord,
    SQLiteStore,
    default_store_url,
    open_sqlite_store,
    open_store,
)
from crucible_actors.store._sqlite import APPLICATION_ID

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
EXP = ExperimentRecord(id="e", definition={}, created_at=T0, updated_at=T0)


def run(run_id: str) -> RunRecord:
    return RunRecord(id=run_id, experiment_id="e", status="running", started_at=T0, owner_id="o")


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


def test_default_store_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRUCIBLE_STORE_URL", raising=False)
    assert default_store_url() == "sqlite:///./.crucible/crucible.db"
    monkeypatch.setenv("CRUCIBLE_STORE_URL", "postgresql://db/x")
    assert default_store_url() == "postgresql://db/x"


async def test_relative_url_creates_the_file_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_store("sqlite:///./.crucible/crucible.db") as store:
        assert store.name == "sqlite:///./.crucible/crucible.db"
        await store.start_run(run("r1"), experiment=EXP)
    assert (tmp_path / ".crucible" / "crucible.db").is_file()


async def test_absolute_url_and_options(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path}/a.db?max_batch=1&busy_timeout=2") as store:
        assert isinstance(store, SQLiteStore)
        await store.start_run(run("r1"), experiment=EXP)
        assert (store.batches, store.writes) == (1, 1)
    assert (tmp_path / "a.db").is_file()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "needs a path"),
        ("sqlite:///", "needs a path"),
        ("sqlite:///x.db?nope=1", "unknown SQLite URL option 'nope'"),
        ("sqlite:///x.db?max_batch=many", "bad value"),
        ("sqlite:///x.db?durability=disk", "bad value for SQLite URL option 'durability'.*'power'"),
        ("sqlite:///x.db?durability=", "unknown SQLite durability ''"),
    ],
)
async def test_bad_sqlite_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreUnavailable, match=message):
        async with open_store(url):
            pass


async def test_new_file_is_migrated_marked_as_ours_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with open_sqlite_store(path) as store:
        applied = [
            "0001_initial",
            "0002_sweeps",
            "0003_cache",
            "0005_resume_count",
            "0006_owner_lease",
            "0008_provenance",
        ]
        assert store.applied == applied
        assert store.schema_version == 8
        assert await store.migrate() == applied
        # The default durability: no fsync per commit (synchronous=NORMAL is 1).
        assert store.durability == "process"
        assert store._writer.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    with closing(raw(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 8
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    async with open_sqlite_store(path) as store:
        assert store.applied == []


@pytest.mark.parametrize(("durability", "synchronous"), [("process", 1), ("power", 2)])
async def test_durability_level_from_the_url_sets_the_writers_sync(
    tmp_path: Path, durability: str, synchronous: int
) -> None:
    url = f"sqlite:///{tmp_path}/d.db?durability={durability}&max_batch=8"
    async with open_store(url) as store:
        assert isinstance(store, SQLiteStore)
        assert store.durability == durability
        conn = store._writer.conn
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        await store.start_run(run("r1"), experiment=EXP)
        assert (await store.get_run("r1")).status == "running"


async def test_durability_level_from_the_constructor(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "p.db", durability="power") as store:
        assert store.durability == "power"
        assert store._writer.conn.execute("PRAGMA synchronous").fetchone()[0] == 2


@pytest.mark.parametrize("durability", ["FULL", "normal", "Power", ""])
async def test_unknown_durability_is_refused_before_the_file_is_created(
    tmp_path: Path, durability: str
) -> None:
    with pytest.raises(ValueError, match=rf"unknown SQLite durability '{durability}'.*'process'"):
        async with open_sqlite_store(tmp_path / "x.db", durability=durability):
            pass
    assert not (tmp_path / "x.db").exists()


async def test_data_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/keep.db"
    async with open_store(url) as store:
        await store.start_run(run("r1"), experiment=EXP)
    async with open_store(url) as store:
        assert (await store.get_run("r1")).status == "running"


async def test_an_acknowledged_write_is_already_committed(tmp_path: Path) -> None:
    path = tmp_path / "ack.db"
    async with open_sqlite_store(path) as store:
        await store.start_run(run("r1"), experiment=EXP)
        await store.save_checkpoint(Checkpoint(run_id="r1", index=1, data=b"ctx", created_at=T0))
        # Another connection (as another process would) sees it before the store closes.
        with closing(raw(path)) as conn:
            rows = conn.execute("SELECT stage_index, context FROM checkpoints").fetchall()
        assert rows == [(1, b"ctx")]


async def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "group.db") as store:
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(partial(store.start_run, run(f"r{i}"), experiment=EXP))
        assert store.writes == 200
        assert store.batches < 200 // 4
        assert len(await store.list_runs(limit=500)) == 200


async def test_max_batch_one_commits_every_write_alone(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "single.db", max_batch=1) as store:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(partial(store.start_run, run(f"r{i}"), experiment=EXP))
        assert (store.batches, store.writes) == (20, 20)


async def test_two_stores_on_one_file_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"

    async def writer(prefix: str) -> None:
        async with open_sqlite_store(path) as store:
            for i in range(20):
                await store.start_run(run(f"{prefix}{i}"), experiment=EXP)

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer, "a")
        tg.start_soon(writer, "b")
    async with open_sqlite_store(path) as store:
        assert len(await store.list_runs(limit=100)) == 40


async def test_in_memory_database_reads_its_own_writes() -> None:
    async with open_store("sqlite://:memory:") as store:
        assert store.name == "sqlite://:memory:"
        await store.start_run(run("r1"), experiment=EXP)
        assert [r.id for r in await store.list_runs()] == ["r1"]


async def test_in_memory_reads_never_see_a_batch_halfway(tmp_path: Path) -> None:
    # One connection serves reads and writes: a read between the rows of a committing
    # batch would see some of its runs and not others (or fail mid-transaction).
    async with open_store("sqlite://:memory:") as store:
        seen: list[int] = []

        async def reader() -> None:
            for _ in range(30):
                seen.append(len(await store.list_runs(limit=1000)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            for i in range(300):
                tg.start_soon(partial(store.start_run, run(f"r{i}"), experiment=EXP))
        assert seen == sorted(seen)
        assert store.batches < 300 // 4
        assert len(await store.list_runs(limit=1000)) == 300


class GatedCommits:
    """A sqlite3 connection whose COMMITs wait (in the writer thread) until ``gate`` is set."""

    def __init__(self, path: str, gate: threading.Event) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.gate = gate

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql == "COMMIT":
            self.gate.wait(30)
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self.conn.executemany(sql, rows)

    def close(self) -> None:
        self.conn.close()


async def test_writes_queued_when_the_store_closes_are_committed_and_answered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "close.db"
    gate = threading.Event()
    gate.set()  # opening the store commits its migration
    queued: list[str] = []
    answered: list[str] = []
    closing_now = anyio.Event()

    async def write(store: SQLiteStore, i: int) -> None:
        queued.append(f"r{i}")
        await store.start_run(run(f"r{i}"), experiment=EXP)
        answered.append(f"r{i}")

    async def open_gate_once_closing() -> None:
        await closing_now.wait()
        await anyio.lowlevel.checkpoint()
        gate.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(open_gate_once_closing)
        async with open_sqlite_store(path, connect=lambda p: GatedCommits(p, gate)) as store:
            gate.clear()
            for i in range(50):
                tg.start_soon(write, store, i)
            while len(queued) < 50:
                await anyio.lowlevel.checkpoint()
            assert answered == []  # the first batch cannot commit yet
            closing_now.set()
        # Leaving the store waited for every queued write to commit and be answered.
        assert sorted(answered) == sorted(queued)
    async with open_sqlite_store(path) as store:
        assert len(await store.list_runs(limit=100)) == 50


async def test_a_closed_store_refuses_writes(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "c.db") as store:
        pass
    with pytest.raises(StoreUnavailable, match="the store is closed"):
        await store.start_run(run("r1"), experiment=EXP)


@pytest.mark.slow
def test_importing_the_stores_leaves_the_postgres_driver_out() -> None:
    import subprocess
    import sys

    code = (
        "import sys, crucible_actors, crucible_actors.store; "
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),  # no fraction of a second
        datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 0, 0),  # naive: taken as UTC
        datetime(2024, 5, 1, 14, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_timestamps_are_fixed_width_utc_text_that_sorts_in_time_order(value: datetime) -> None:
    from crucible_actors.store._sqlite import _SQLiteTx

    text = _SQLiteTx(None).ts_in(value)
    as_utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    assert text == as_utc.isoformat(timespec="microseconds")
    assert len(text) == len("2024-05-01T12:00:00.000000+00:00")
    later = _SQLiteTx(None).ts_in(as_utc + timedelta(microseconds=1))
    assert text < later


class DiesOnCommit:
    """A sqlite3 connection whose next COMMIT raises SystemExit in the writer thread."""

    armed = False

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql == "COMMIT" and DiesOnCommit.armed:
            DiesOnCommit.armed = False
            raise SystemExit("the writer thread dies")
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self.conn.executemany(sql, rows)

    def close(self) -> None:
        self.conn.close()


async def test_a_dead_writer_thread_fails_writes_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    died: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_type))
    DiesOnCommit.armed = False
    async with open_sqlite_store(tmp_path / "dies.db", connect=DiesOnCommit) as store:
        await store.start_run(run("r0"), experiment=EXP)
        DiesOnCommit.armed = True
        with pytest.raises(StoreError, match="the store writer failed: SystemExit"):
            await store.start_run(run("r1"), experiment=EXP)
        # Queued before the loop learnt of the death, or refused after: never a hang.
        with anyio.fail_after(10), pytest.raises(StoreUnavailable, match=r"stopped|closed"):
            await store.start_run(run("r2"), experiment=EXP)
        with anyio.fail_after(10), pytest.raises(StoreUnavailable, match="closed"):
            await store.start_run(run("r3"), experiment=EXP)
    assert died == [SystemExit]


async def test_durability_on_a_postgres_url_is_refused_with_the_reason() -> None:
    with pytest.raises(StoreUnavailable, match="synchronous_commit") as info:
        async with open_store("postgresql://ada:secret@db.invalid/x?durability=power"):
            pass
    assert "secret" not in str(info.value)
