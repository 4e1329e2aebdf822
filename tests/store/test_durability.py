"""Every acknowledged write survives the writer's process being killed (SIGKILL).

A child process writes runs (each with its first checkpoint) from 20 concurrent tasks
and prints each run id once its write is acknowledged; the test kills it while writes
are in flight, then checks that every printed run, with its checkpoint, is in the store.
SQLite is tested at both durability levels (``process``: no fsync per commit; ``power``:
one per commit), PostgreSQL under its server's settings; the child runs on the test's
own anyio backend, so the writer thread's hand-back is exercised on trio and asyncio.
"""

from __future__ import annotations

import signal
import sys
import textwrap
from typing import TYPE_CHECKING

import anyio
import pytest

from crucible_actors.store import open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

CHILD = """
    import sys
    from datetime import UTC, datetime

    import anyio

    from crucible_actors.store import Checkpoint, ExperimentRecord, RunRecord, open_store

    url, backend = sys.argv[1:3]
    T0 = datetime(2024, 5, 1, tzinfo=UTC)
    EXP = ExperimentRecord(id="e", definition={}, created_at=T0, updated_at=T0)


    async def writer(store, k):
        for i in range(1_000_000):
            run_id = f"w{k}-{i}"
            run = RunRecord(
                id=run_id, experiment_id="e", status="running", started_at=T0, owner_id="o"
            )
            checkpoint = Checkpoint(run_id=run_id, index=0, data=run_id.encode(), created_at=T0)
            await store.start_run(run, experiment=EXP, checkpoint=checkpoint)
            print(run_id, flush=True)  # acknowledged: it must survive the kill


    async def main():
        async with open_store(url, migrate=True) as store, anyio.create_task_group() as tg:
            for k in range(20):
                tg.start_soon(writer, store, k)


    anyio.run(main, backend=backend)
"""


@pytest.fixture(params=["process", "power", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param in ("process", "power"):
        return f"sqlite:///{tmp_path}/durable.db?durability={request.param}"
    found: str = request.getfixturevalue("pg_url")
    return found


async def test_every_acknowledged_write_survives_sigkill(
    tmp_path: Path, url: str, anyio_backend_name: str
) -> None:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    cmd = [sys.executable, str(script), url, anyio_backend_name]
    out = b""
    async with await anyio.open_process(cmd, cwd=tmp_path) as proc:
        assert proc.stdout is not None
        with anyio.fail_after(60):
            while out.count(b"\n") < 400:
                try:
                    out += await proc.stdout.receive()
                except anyio.EndOfStream:
                    assert proc.stderr is not None
                    err = await proc.stderr.receive()
                    pytest.fail(f"the child ended before the kill: {err!r}")
            proc.send_signal(signal.SIGKILL)  # 20 writes in flight, a batch committing
            assert await proc.wait() == -signal.SIGKILL
            while True:  # lines already in the pipe were acknowledged too
                try:
                    out += await proc.stdout.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    acknowledged = out.decode().split("\n")[:-1]  # drop a partial last line
    assert len(acknowledged) >= 400
    async with open_store(url) as store:
        stored = {r.id for r in await store.list_runs(limit=len(acknowledged) + 10_000)}
        assert set(acknowledged) <= stored
        for run_id in acknowledged[-40:]:  # the last ones acknowledged before the kill
            checkpoint = await store.load_checkpoint(run_id)
            assert checkpoint is not None
            assert checkpoint.data == run_id.encode()
