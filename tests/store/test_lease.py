"""Owner leases: liveness without clocks, continuous adoption and fencing (issue 21 item 2).

A live owner keeps its runs however old its heartbeat looks (its pid and start time on
SQLite, its advisory lock on PostgreSQL); a dead one's runs are adopted by a runtime
that is already running, within seconds; a runtime that lost a run never writes over
its new owner. The crash contract runs real subprocesses and a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from tests.helpers import registry_with

from crucible_actors import Context, Experiment, Registry, StageDef, open_runtime, stage
from crucible_actors._core._encoding import encode_context
from crucible_actors._core.persistence._owner import PID_LEASE, owner_is_dead, process_start
from crucible_actors.errors import OwnershipLost
from crucible_actors.store import (
    Checkpoint,
    ExperimentRecord,
    OwnerRecord,
    PendingRun,
    RunRecord,
    StageAttempt,
    SweepPointRecord,
    SweepRecord,
    open_persistence,
    open_store,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from crucible_actors.store import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
HOST = socket.gethostname()
HOUR_LATER = T0 + timedelta(hours=1)


def owner(
    owner_id: str, *, host: str = HOST, pid: int = 1, lease: str | None = None
) -> OwnerRecord:
    return OwnerRecord(id=owner_id, host=host, pid=pid, started_at=T0, heartbeat_at=T0, lease=lease)


# -- the liveness rule -------------------------------------------------------------------


def test_a_held_store_lease_is_alive_whatever_the_heartbeat_says() -> None:
    o = owner("o", host="elsewhere", lease="pg_advisory_lock")
    assert not owner_is_dead(
        o, now=HOUR_LATER, stale_after=60, host=HOST, local=False, lease_held=True
    )
    assert owner_is_dead(o, now=T0, stale_after=60, host=HOST, local=False, lease_held=False)
    # No row at all, but the lock is held: alive.
    assert not owner_is_dead(
        None, now=HOUR_LATER, stale_after=60, host=HOST, local=False, lease_held=True
    )


def test_an_older_row_without_a_lease_falls_back_to_the_heartbeat() -> None:
    o = owner("o", host="elsewhere")
    assert not owner_is_dead(o, now=T0, stale_after=60, host=HOST, local=False, lease_held=False)
    assert owner_is_dead(
        o, now=HOUR_LATER, stale_after=60, host=HOST, local=False, lease_held=False
    )


def test_a_live_pid_with_its_start_time_is_alive_however_old_its_heartbeat() -> None:
    start = process_start(os.getpid())
    assert start is not None
    o = owner("o", pid=os.getpid(), lease=PID_LEASE + start)
    assert not owner_is_dead(o, now=HOUR_LATER, stale_after=60, host=HOST, local=True)


def test_a_recycled_pid_is_dead_even_with_a_fresh_heartbeat() -> None:
    o = owner("o", pid=os.getpid(), lease=PID_LEASE + "another-boot:12345")
    assert owner_is_dead(o, now=T0, stale_after=60, host=HOST, local=True)


def test_an_owner_on_another_host_of_a_local_store_is_judged_by_its_heartbeat() -> None:
    o = owner("o", host="elsewhere", pid=os.getpid(), lease=PID_LEASE + "x:1")
    assert not owner_is_dead(
        o, now=T0 + timedelta(seconds=30), stale_after=60, host=HOST, local=True
    )
    assert owner_is_dead(o, now=HOUR_LATER, stale_after=60, host=HOST, local=True)


# -- seeded runs ----------------------------------------------------------------------------

CALLS: list[str] = []


@stage("lease_step")
async def lease_step(ctx: Context, opts: Any) -> Context:
    CALLS.append(ctx.run_id)
    return ctx.put_metric("done", 1)


EXP = Experiment(id="lease", pipeline=[StageDef(name="lease_step")])


@pytest.fixture
def registry() -> Registry:
    CALLS.clear()
    return registry_with(lease_step)


async def seed(store: Store, run_id: str, owner_row: OwnerRecord | None, owner_id: str) -> None:
    """Store a run left ``running`` by ``owner_id`` with its first checkpoint."""
    if owner_row is not None:
        await store.register_owner(owner_row)
    await store.start_run(
        RunRecord(
            id=run_id, experiment_id=EXP.id, status="running", started_at=T0, owner_id=owner_id
        ),
        experiment=ExperimentRecord(
            id=EXP.id, definition={"id": EXP.id}, created_at=T0, updated_at=T0
        ),
        checkpoint=Checkpoint(
            run_id=run_id,
            index=0,
            data=encode_context(Context.new(EXP, run_id=run_id)),
            created_at=T0,
        ),
    )


async def wait_ended(store: Store, run_id: str) -> str:
    """Poll the store until ``run_id`` ended; return its status.

    Another process, or the runtime's own adoption tick, acts: there is no event to
    wait on across processes.
    """
    with anyio.fail_after(15):
        while (run := await store.get_run(run_id)).status == "running":  # noqa: ASYNC110
            await anyio.sleep(0.05)
    return run.status


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process on this host: the stand-in for a runtime whose loop is stuck."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
async def test_a_live_local_owner_keeps_its_runs_until_its_process_dies(
    tmp_path: Path, registry: Registry, sleeper: subprocess.Popen[bytes]
) -> None:
    start = process_start(sleeper.pid)
    assert start is not None
    async with open_store(f"sqlite:///{tmp_path}/lease.db") as store:
        live = owner("live", pid=sleeper.pid, lease=PID_LEASE + start)
        await seed(store, "r1", live, "live")
        # The heartbeat is an hour old by this clock (a wall-clock step, a blocked loop).
        async with (
            open_persistence(store, now=lambda: HOUR_LATER) as p,
            open_runtime(store=p, registry=registry, on_start="resume", adopt_interval=0.1),
        ):
            assert p.last_recovery.resumed == []
            run = await store.get_run("r1")
            assert (run.status, run.owner_id) == ("running", "live")
            assert CALLS == []
            sleeper.kill()  # the owner dies while this runtime is up: adopted at once
            sleeper.wait()
            assert await wait_ended(store, "r1") == "completed"
        assert CALLS == ["r1"]


@pytest.mark.slow
async def test_a_live_runtime_adopts_the_pending_sweep_points_of_an_owner_that_dies(
    tmp_path: Path, registry: Registry, sleeper: subprocess.Popen[bytes]
) -> None:
    """A sweep recorded by a live process (its 5 points all pending, none started; no
    run is ``running``) is left alone while it lives, then started, within the sweep's
    ``max_concurrent``, by a runtime that was up all along, and its outcome recorded."""
    start = process_start(sleeper.pid)
    assert start is not None
    ids = [f"p{i}" for i in range(5)]
    async with open_store(f"sqlite:///{tmp_path}/lease.db") as store:
        await store.register_owner(owner("live", pid=sleeper.pid, lease=PID_LEASE + start))
        await store.record_sweep(
            SweepRecord(
                id="sw1",
                experiment_id=EXP.id,
                sweep={"options": {"max_concurrent": 2}},
                runs=len(ids),
                created_at=T0,
            ),
            points=[
                SweepPointRecord(
                    sweep_id="sw1", index=i, point=i, repeat=0, run_id=r, parameters={}, seed=i
                )
                for i, r in enumerate(ids)
            ],
            experiment=ExperimentRecord(
                id=EXP.id, definition={"id": EXP.id}, created_at=T0, updated_at=T0
            ),
            pending=[
                PendingRun(
                    run=RunRecord(
                        id=r,
                        experiment_id=EXP.id,
                        status="pending",
                        metadata={"sweep_id": "sw1", "sweep_index": i},
                        owner_id="live",
                    ),
                    checkpoint=Checkpoint(
                        run_id=r,
                        index=0,
                        data=encode_context(Context.new(EXP, run_id=r)),
                        created_at=T0,
                    ),
                )
                for i, r in enumerate(ids)
            ],
        )
        async with open_runtime(
            store=store, registry=registry, on_start="resume", adopt_interval=0.05
        ) as rt:
            assert rt.recovery is not None
            assert rt.recovery.resumed == []  # its owner lives
            await anyio.sleep(0.2)  # four ticks: nothing taken
            assert {(await store.get_run(r)).status for r in ids} == {"pending"}
            sleeper.kill()  # the owner dies while this runtime is up
            sleeper.wait()
            with anyio.fail_after(15):
                while (sweep := await store.get_sweep("sw1")) is None or (  # noqa: ASYNC110
                    sweep.status == "running"
                ):
                    await anyio.sleep(0.05)
        assert sweep.status == "completed"
        assert sorted(CALLS) == ids  # each point ran once
        assert {(await store.get_run(r)).status for r in ids} == {"completed"}


async def test_a_recycled_pid_does_not_keep_the_runs(tmp_path: Path, registry: Registry) -> None:
    async with open_store(f"sqlite:///{tmp_path}/lease.db") as store:
        # This very process's pid, but recorded with another start time: a dead
        # owner whose pid was reused. Its heartbeat is fresh.
        await seed(store, "r1", owner("old", pid=os.getpid(), lease=PID_LEASE + "b:1"), "old")
        async with (
            open_persistence(store, now=lambda: T0) as p,
            open_runtime(store=p, registry=registry, on_start="resume") as rt,
        ):
            assert p.last_recovery.resumed == ["r1"]
            handle = rt.get("r1")
            assert handle is not None
            await handle.wait()
        assert (await store.get_run("r1")).status == "completed"


# -- fencing ---------------------------------------------------------------------------------


async def test_writes_of_a_runtime_that_lost_the_run_are_refused(store: Store) -> None:
    await seed(store, "r1", None, "first")
    assert await store.claim_run("r1", status="running", owner_id="first", new_owner_id="second")
    stale = Checkpoint(run_id="r1", index=1, data=b"stale", created_at=T0, owner_id="first")
    with pytest.raises(OwnershipLost) as info:
        await store.save_checkpoint(stale)
    assert (info.value.run_id, info.value.owner_id) == ("r1", "second")
    attempt = StageAttempt(
        run_id="r1", index=0, stage="a", attempt=1, status="failed", started_at=T0, owner_id="first"
    )
    with pytest.raises(OwnershipLost):
        await store.record_attempt(attempt)
    with pytest.raises(OwnershipLost):
        await store.finish_run(
            RunRecord(id="r1", experiment_id=EXP.id, status="completed", owner_id="first"),
            artifacts=[],
            events=[],
        )
    checkpoint = await store.load_checkpoint("r1")
    assert checkpoint is not None
    assert checkpoint.index == 0  # nothing of the stale owner's was written
    assert await store.list_attempts("r1") == []
    # The new owner's writes go through, and the records read back carry no owner.
    fresh = Checkpoint(run_id="r1", index=1, data=b"fresh", created_at=T0, owner_id="second")
    await store.save_checkpoint(fresh)
    checkpoint = await store.load_checkpoint("r1")
    assert checkpoint is not None
    assert (checkpoint.data, checkpoint.owner_id) == (b"fresh", None)
    run = await store.get_run("r1")
    assert (run.status, run.owner_id) == ("running", "second")


async def test_adoption_probe_gives_running_owners_and_interrupted_count(store: Store) -> None:
    await seed(store, "r1", None, "a")
    await seed(store, "r2", None, "b")
    await seed(store, "r3", None, "b")
    await store.mark_interrupted("r2", owner_id="b", finished_at=T0)
    assert await store.adoption_probe() == ({"a", "b"}, 1)  # type: ignore[attr-defined]


# -- PostgreSQL: the advisory lock ---------------------------------------------------------------


def _lock_as(url: str, owner_id: str) -> Any:
    """Hold ``owner_id``'s lease on a connection of the test's own (a live owner elsewhere)."""
    import psycopg

    from crucible_actors.store._postgres import _LEASE_CLASS

    conn = psycopg.connect(url, autocommit=True)
    row = conn.execute(
        "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LEASE_CLASS, owner_id)
    ).fetchone()
    assert row is not None
    assert row[0]
    return conn


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_live_postgres_owner_keeps_its_runs_until_its_session_ends(
    pg_url: str, registry: Registry
) -> None:
    async with open_store(pg_url, migrate=True) as store:
        live = owner("live", host="elsewhere", pid=1, lease="pg_advisory_lock")
        await seed(store, "r1", live, "live")
        session = _lock_as(pg_url, "live")
        try:
            async with (
                open_persistence(store, now=lambda: HOUR_LATER) as p,
                open_runtime(store=p, registry=registry, on_start="resume", adopt_interval=0.1),
            ):
                assert p.last_recovery.resumed == []
                assert await store.leases_held(["live", "gone", p.owner.id]) == {  # type: ignore[attr-defined]
                    "live",
                    p.owner.id,
                }
                run = await store.get_run("r1")
                assert (run.status, run.owner_id) == ("running", "live")
                session.close()  # the owner's session ends: its runs are adopted in seconds
                assert await wait_ended(store, "r1") == "completed"
            assert CALLS == ["r1"]
        finally:
            session.close()


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_runtime_that_lost_its_lease_stops_the_runs_taken_over(
    pg_url: str, registry: Registry
) -> None:
    import psycopg

    from crucible_actors.store._postgres import _LEASE_CLASS

    entered = anyio.Event()

    @stage("lease_wait")
    async def lease_wait(ctx: Context, opts: Any) -> Context:
        entered.set()
        await anyio.sleep_forever()
        return ctx  # pragma: no cover

    registry.register(lease_wait)
    exp = Experiment(id="lost", pipeline=[StageDef(name="lease_wait")])
    async with (
        open_store(pg_url, migrate=True) as store,
        open_persistence(store) as p,
        open_runtime(store=p, registry=registry, adopt=False) as rt,
    ):
        handle = await rt.submit(exp, run_id="r1")
        with anyio.fail_after(10):
            await entered.wait()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            # The runtime's lease session dies (a network cut, an admin); another process
            # sees it dead and takes the run over.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid = %s AND objid = CAST(hashtext(%s) AS oid)",
                (_LEASE_CLASS, p.owner.id),
            )
        assert await store.claim_run(
            "r1", status="running", owner_id=p.owner.id, new_owner_id="adopter"
        )
        assert not await p.recovery._check_own_lease(rt)
        assert await handle.wait() == "interrupted"
        with pytest.raises(OwnershipLost):
            await handle.result()
        assert p.lost == {"r1": "adopter"}
        # The lease is held again, for the runs it still has.
        assert await p.recovery._check_own_lease(rt)
    async with open_store(pg_url) as again:
        run = await again.get_run("r1")
        assert (run.status, run.owner_id) == ("running", "adopter")  # not written over


# -- the crash contract: SIGKILL, restart 1.5 s later, all runs complete ---------------------------

STAGES_PY = textwrap.dedent(
    """
    import anyio

    from crucible_actors import stage


    @stage("nap")
    async def nap(ctx, opts):
        await anyio.sleep(opts["seconds"])
        return ctx.put_metric(ctx.telemetry_context.get("stage", "nap"), 1)
    """
)

CHILD_PY = textwrap.dedent(
    """
    import json
    import sys

    import anyio

    from crucible_actors import Experiment, StageDef, open_runtime


    async def main(url, ids, mode):
        if mode == "submit":
            exp = Experiment(
                id="contract",
                pipeline=[
                    StageDef(name=f"s{k}", stage="lease_stages:nap", options={"seconds": 2.0})
                    for k in range(3)
                ],
            )
            async with open_runtime(store=url) as rt:
                with open(ids, "w") as f:
                    for i in range(20):
                        handle = await rt.submit(exp, run_id=f"run-{i:02d}")
                        f.write(handle.run_id + "\\n")
                        f.flush()
                await anyio.sleep_forever()
        else:
            async with open_runtime(store=url, on_start="resume") as rt:
                with anyio.fail_after(60):
                    while True:
                        handles = rt.runs()
                        if len(handles) >= 20 and all(h.done for h in handles):
                            break
                        await anyio.sleep(0.1)
                print(json.dumps(sorted(str(h.status) for h in handles)))


    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
    """
)


def _crash_and_restart(url: str, tmp_path: Path) -> tuple[list[str], float]:
    (tmp_path / "lease_stages.py").write_text(STAGES_PY)
    (tmp_path / "lease_child.py").write_text(CHILD_PY)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("CRUCIBLE_STORE_URL", None)
    ids = tmp_path / "ids"
    child = subprocess.Popen(
        [sys.executable, "lease_child.py", url, str(ids), "submit"], cwd=tmp_path, env=env
    )
    try:
        deadline = time.monotonic() + 60
        while len(ids.read_text().split()) < 20 if ids.exists() else True:
            assert child.poll() is None, "the child exited before submitting its runs"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(1.0)  # after 1 s of running: every run is inside a 2 s stage
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        child.kill()
        child.wait()
    time.sleep(1.5)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "lease_child.py", url, str(ids), "resume"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), elapsed


async def _statuses(url: str) -> list[str]:
    async with open_store(url) as store:
        return sorted([(await store.get_run(f"run-{i:02d}")).status for i in range(20)])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sigkilled_runtime_runs_complete_in_a_process_started_soon_after(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/contract.db"
    else:
        url = request.getfixturevalue("pg_url")

        async def migrate() -> None:
            async with open_store(url, migrate=True):
                pass

        anyio.run(migrate)
    statuses, elapsed = _crash_and_restart(url, tmp_path)
    assert statuses == ["completed"] * 20
    assert elapsed < 30
    assert anyio.run(_statuses, url) == ["completed"] * 20


# -- continuous adoption ---------------------------------------------------------------------


async def test_a_live_replica_resumes_the_runs_another_one_interrupted_at_shutdown(
    tmp_path: Path, registry: Registry
) -> None:
    entered = anyio.Event()
    release = anyio.Event()

    @stage("lease_gate")
    async def lease_gate(ctx: Context, opts: Any) -> Context:
        CALLS.append(f"{ctx.run_id}:gate")
        if not entered.is_set():
            entered.set()
            await anyio.sleep_forever()  # the first runtime stops here
        await release.wait()
        return ctx

    registry.register(lease_gate)
    exp = Experiment(id="handover", pipeline=[StageDef(name="lease_gate")])
    async with open_store(f"sqlite:///{tmp_path}/lease.db") as store:
        async with open_runtime(
            store=store, registry=registry, on_start="resume", adopt_interval=0.05
        ) as replica:
            async with open_runtime(store=store, registry=registry, on_shutdown="interrupt") as rt:
                await rt.submit(exp, run_id="r1")
                await entered.wait()
            # A rolling restart: the first runtime stored r1 interrupted and went away;
            # the replica, up all along, resumes it.
            with anyio.fail_after(10):
                while replica.get("r1") is None:  # noqa: ASYNC110 - the adoption tick acts
                    await anyio.sleep(0.05)
            release.set()
            handle = replica.get("r1")
            assert handle is not None
            assert await handle.wait() == "completed"
        assert CALLS == ["r1:gate", "r1:gate"]


async def test_adopt_false_resumes_only_at_start_up(
    tmp_path: Path, registry: Registry, sleeper: subprocess.Popen[bytes]
) -> None:
    start = process_start(sleeper.pid)
    assert start is not None
    async with open_store(f"sqlite:///{tmp_path}/lease.db") as store:
        await seed(store, "r1", owner("live", pid=sleeper.pid, lease=PID_LEASE + start), "live")
        async with open_runtime(
            store=store, registry=registry, on_start="resume", adopt=False, adopt_interval=0.01
        ) as rt:
            sleeper.kill()
            sleeper.wait()
            assert "crucible adoption" not in [t.name for t in anyio.get_running_tasks()]
            await anyio.sleep(0.1)  # ten ticks' worth: none runs
            assert rt.get("r1") is None
        assert (await store.get_run("r1")).status == "running"


async def test_adopt_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="adopt_interval must be > 0 seconds, got 0"):
        async with open_runtime(adopt_interval=0):
            pass  # pragma: no cover


async def test_recovery_removes_dead_owners_without_runs_and_keeps_live_ones(
    tmp_path: Path, registry: Registry, sleeper: subprocess.Popen[bytes]
) -> None:
    start = process_start(sleeper.pid)
    assert start is not None
    async with open_store(f"sqlite:///{tmp_path}/lease.db") as store:
        # Killed before its first run was stored: an owner row and nothing else.
        await store.register_owner(owner("gone", pid=999_999_999, lease=PID_LEASE + "b:1"))
        await store.register_owner(owner("live", pid=sleeper.pid, lease=PID_LEASE + start))
        async with (
            open_persistence(store, now=lambda: HOUR_LATER) as p,
            open_runtime(store=p, registry=registry, on_start="resume"),
        ):
            assert {o.id for o in await store.list_owners()} == {"live", p.owner.id}
