"""SQLite specifics: URLs, migrations, WAL and FULL sync, group commit, acknowledged writes."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING

import anyio
import pytest

from crucible_actors.errors import StoreUnavailable
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
    ],
)
async def test_bad_sqlite_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreUnavailable, match=message):
        async with open_store(url):
            pass


async def test_new_file_is_migrated_marked_as_ours_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with open_sqlite_store(path) as store:
        assert store.applied == ["0001_initial", "0002_sweeps", "0003_cache"]
        assert store.schema_version == 3
        assert await store.migrate() == ["0001_initial", "0002_sweeps", "0003_cache"]
        # The writer connection syncs the WAL at every commit.
        assert store._writer.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    with closing(raw(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    async with open_sqlite_store(path) as store:
        assert store.applied == []


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
