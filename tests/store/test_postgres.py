"""PostgreSQL specifics: migrations, and several processes sharing one store."""

from __future__ import annotations

import json
import sys
import textwrap
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from crucible_actors import Context, Experiment, StageDef
from crucible_actors._core._encoding import encode_context
from crucible_actors.errors import StoreError, StoreUnavailable
from crucible_actors.store import Checkpoint, ExperimentRecord, RunRecord, open_store
from crucible_actors.store._sql import redact_url

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.postgres

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_redacted_url_hides_the_password() -> None:
    assert (
        redact_url("postgresql://bob:s3cret@db:5432/x?a=1") == "postgresql://bob:***@db:5432/x?a=1"
    )
    assert redact_url("postgresql://bob@db/x") == "postgresql://bob@db/x"


async def test_unmigrated_database_is_refused_with_the_command_to_run(pg_url: str) -> None:
    with pytest.raises(StoreUnavailable, match="crucible-actors db migrate --store") as info:
        async with open_store(pg_url):
            pass
    assert "version 0" in str(info.value)
    assert info.value.store == pg_url


async def test_migrations_apply_once_even_when_concurrent(pg_url: str) -> None:
    applied: list[list[str]] = []

    async def migrate() -> None:
        async with open_store(pg_url, migrate=True) as store:
            applied.append(list(store.applied))  # type: ignore[attr-defined]

    async with anyio.create_task_group() as tg:
        tg.start_soon(migrate)
        tg.start_soon(migrate)
    assert sorted(applied) == [
        [],
        [
            "0001_initial",
            "0002_sweeps",
            "0003_cache",
            "0004_blobs",
            "0005_resume_count",
            "0006_owner_lease",
            "0008_provenance",
        ],
    ]
    async with open_store(pg_url) as store:
        assert store.schema_version == 8  # type: ignore[attr-defined]
        assert await store.migrate() == []  # type: ignore[attr-defined]


async def test_a_newer_schema_is_refused(pg_url: str, pg_server_url: str) -> None:
    import psycopg

    async with open_store(pg_url, migrate=True):
        pass
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO crucible_schema_migrations (version, name) VALUES (99, 'x')")
    with pytest.raises(StoreError, match="newer than this crucible-actors supports"):
        async with open_store(pg_url):
            pass


CHILD = """
    import json
    import os
    import sys
    from datetime import UTC, datetime, timedelta

    import anyio

    from crucible_actors import Experiment, Registry, StageDef, open_runtime, stage
    from crucible_actors.store import open_persistence

    url, mode, prefix, count, log = sys.argv[1:6]


    def counting(name):
        @stage(name)
        async def run(ctx, opts):
            with open(log, "a") as f:
                f.write(f"{ctx.run_id} {name} {os.getpid()}\\n")
            await anyio.sleep(0)
            return ctx.put_metric(name, 1)

        return run


    registry = Registry()
    for name in ("a", "b", "c"):
        registry.register(counting(name))
    exp = Experiment(id="shared", pipeline=[StageDef(name=n) for n in ("a", "b", "c")])


    def later():
        return datetime.now(UTC) + timedelta(hours=1)


    async def main():
        print("READY", flush=True)
        sys.stdin.readline()  # both processes start together
        if mode == "submit":
            async with open_runtime(store=url, registry=registry) as rt:
                handles = [
                    await rt.submit(exp, run_id=f"{prefix}-{i}") for i in range(int(count))
                ]
                statuses = [str(await h.wait()) for h in handles]
            print(json.dumps({"statuses": statuses}), flush=True)
        else:
            async with (
                open_persistence(url, now=later) as p,
                open_runtime(store=p, registry=registry, on_start="resume") as rt,
            ):
                await rt.wait_idle()
            print(json.dumps({"resumed": p.last_recovery.resumed}), flush=True)


    anyio.run(main, backend=sys.argv[6])
"""


async def run_children(tmp_path: Path, argvs: list[list[str]]) -> list[dict[str, Any]]:
    """Run one child per argv, release them together, and return their JSON results."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    results: list[dict[str, Any]] = [{} for _ in argvs]
    ready = [anyio.Event() for _ in argvs]
    go = anyio.Event()

    async def child(i: int, argv: list[str]) -> None:
        cmd = [sys.executable, str(script), *argv]
        async with await anyio.open_process(cmd, cwd=tmp_path) as proc:
            assert proc.stdout is not None
            assert proc.stdin is not None
            out = b""
            while b"READY\n" not in out:
                out += await proc.stdout.receive()
            ready[i].set()
            await go.wait()
            await proc.stdin.send(b"go\n")
            async for chunk in proc.stdout:
                out += chunk
            assert await proc.wait() == 0, out
        results[i] = json.loads(out.split(b"READY\n", 1)[1])

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for i, argv in enumerate(argvs):
                tg.start_soon(child, i, argv)
            for event in ready:
                await event.wait()
            go.set()
    return results


def stage_log(tmp_path: Path) -> list[tuple[str, str]]:
    lines = (tmp_path / "log").read_text().splitlines()
    return sorted((run_id, name) for run_id, name, _pid in (line.split() for line in lines))


@pytest.mark.slow
async def test_two_processes_submitting_to_one_store_lose_and_duplicate_nothing(
    pg_url: str, tmp_path: Path, anyio_backend: str
) -> None:
    async with open_store(pg_url, migrate=True):
        pass
    log = str(tmp_path / "log")
    results = await run_children(
        tmp_path,
        [[pg_url, "submit", p, "25", log, anyio_backend] for p in ("left", "right")],
    )
    assert results == [{"statuses": ["completed"] * 25}] * 2
    ids = [f"{p}-{i}" for p in ("left", "right") for i in range(25)]
    async with open_store(pg_url) as store:
        runs = []
        before = None
        while page := await store.list_runs(limit=20, before=before):
            runs.extend(page)
            before = page[-1].id
        assert sorted(r.id for r in runs) == sorted(ids)
        assert {r.status for r in runs} == {"completed"}
        assert {r.owner_id for r in runs if r.id.startswith("left")}.isdisjoint(
            {r.owner_id for r in runs if r.id.startswith("right")}
        )
        for run_id in ("left-0", "right-24"):
            assert len(await store.list_attempts(run_id)) == 3
        assert await store.list_owners() == []
    assert stage_log(tmp_path) == sorted((r, s) for r in ids for s in ("a", "b", "c"))


@pytest.mark.slow
async def test_two_processes_recovering_at_once_resume_each_orphan_exactly_once(
    pg_url: str, tmp_path: Path, anyio_backend: str
) -> None:
    exp = Experiment(id="shared", pipeline=[StageDef(name=n) for n in ("a", "b", "c")])
    ids = [f"orphan-{i:02}" for i in range(30)]
    async with open_store(pg_url, migrate=True) as store:
        for run_id in ids:
            ctx = Context.new(exp, run_id=run_id).put_metric("a", 1).mark_stage_complete("a")
            await store.start_run(
                RunRecord(
                    id=run_id,
                    experiment_id="shared",
                    status="running",
                    started_at=T0,
                    owner_id="killed",
                ),
                experiment=ExperimentRecord(
                    id="shared", definition={}, created_at=T0, updated_at=T0
                ),
                checkpoint=Checkpoint(
                    run_id=run_id, index=1, data=encode_context(ctx), created_at=T0
                ),
            )
    log = str(tmp_path / "log")
    results = await run_children(
        tmp_path, [[pg_url, "recover", "-", "0", log, anyio_backend] for _ in range(2)]
    )
    left, right = (set(r["resumed"]) for r in results)
    assert left.isdisjoint(right)
    assert sorted(left | right) == ids
    assert stage_log(tmp_path) == sorted((r, s) for r in ids for s in ("b", "c"))
    async with open_store(pg_url) as store:
        runs = await store.list_runs(limit=100)
        assert sorted(r.id for r in runs) == ids
        assert {r.status for r in runs} == {"completed"}
        assert {r.metrics["c"] for r in runs} == {1}
