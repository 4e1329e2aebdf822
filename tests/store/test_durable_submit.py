"""An acknowledged run is never lost: ``submit()`` returns only once the run's row is durable.

A child process (a real one) opens a runtime on the store, submits 30 runs, writes their
ids to a file and SIGKILLs itself with no further await. A fresh runtime opened with
``on_start="resume"`` must find all 30 in the store and complete them. The runs' stage
waits for a file the parent creates after the kill, so none can finish in the child.
"""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import pytest

from crucible_actors import Registry, open_runtime
from crucible_actors.store import open_persistence, open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

RUNS = 30

STAGES = """
    from pathlib import Path

    import anyio

    from crucible_actors import stage


    @stage("gate")
    async def gate(ctx, opts):
        while not Path(opts["allow"]).exists():
            await anyio.sleep(0.01)
        return ctx.put_metric("passed", 1)
"""

CHILD = """
    import os
    import signal
    import sys

    import anyio

    from crucible_actors import Experiment, StageDef, open_runtime

    url, ids_file, allow, backend = sys.argv[1:5]
    exp = Experiment(
        id="ack",
        pipeline=[StageDef(name="gate", stage="ack_stages:gate", options={"allow": allow})],
    )


    async def main():
        async with open_runtime(store=url) as rt:
            ids = [(await rt.submit(exp)).run_id for _ in range({runs})]
            with open(ids_file, "w") as f:
                f.write("\\n".join(ids))
            os.kill(os.getpid(), signal.SIGKILL)  # no await between the acks and the kill


    anyio.run(main, backend=backend)
"""


@pytest.mark.parametrize("child_backend", ["asyncio", "trio"])
async def test_runs_acknowledged_before_a_sigkill_are_all_resumed_and_completed(
    tmp_path: Path, shared_store_url: str, child_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "ack_stages.py").write_text(textwrap.dedent(STAGES))
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD).replace("{runs}", str(RUNS)))
    async with open_store(shared_store_url, migrate=True):
        pass
    ids_file, allow = tmp_path / "ids", tmp_path / "allow"
    cmd = [sys.executable, str(script), shared_store_url, str(ids_file), str(allow), child_backend]
    with anyio.fail_after(60):
        done = await anyio.run_process(cmd, cwd=tmp_path, check=False)
    assert done.returncode == -9, done.stderr.decode()
    ids = ids_file.read_text().split()
    assert len(ids) == RUNS

    async with open_store(shared_store_url) as store:
        for run_id in ids:
            assert (await store.get_run(run_id)).status == "running"

    allow.touch()
    # PostgreSQL judges the killed owner by its heartbeat only (until owners hold a
    # lease the server releases): look at the store from an hour later.
    now = None
    if shared_store_url.startswith("postgresql"):
        now = lambda: datetime.now(UTC) + timedelta(hours=1)  # noqa: E731
    with anyio.fail_after(60):
        async with (
            open_persistence(shared_store_url, now=now) as p,
            open_runtime(store=p, registry=Registry(), on_start="resume") as rt,
        ):
            assert sorted(p.last_recovery.resumed) == sorted(ids)
            await rt.wait_idle()
    async with open_store(shared_store_url) as store:
        runs = {r.id: r for r in await store.list_runs(limit=100)}
    assert sorted(runs) == sorted(ids)
    assert {r.status for r in runs.values()} == {"completed"}
    assert all(r.metrics == {"passed": 1} for r in runs.values())
