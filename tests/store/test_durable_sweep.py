"""An acknowledged sweep is never lost: every point is durable when ``submit_sweep`` returns.

A child process (a real one) opens a runtime on the store, submits a sweep of 30 points
with ``max_concurrent=3``, writes the sweep id to a file and SIGKILLs itself with no
further await: three points are running, 27 were never started. A fresh runtime opened
with ``on_start="resume"`` must find every point in the store, start the 27 pending ones
no more than three at a time (with the three it resumed), complete each exactly once and
record the sweep's outcome. The stage waits for a file the parent creates after the
kill, so no point can finish in the child.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from typing import TYPE_CHECKING

import anyio
import pytest

from crucible_actors import Registry, open_runtime
from crucible_actors.store import open_persistence, open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

POINTS = 30
LIMIT = 3

STAGES = """
    import os
    from pathlib import Path

    import anyio
    import msgspec

    from crucible_actors import stage

    ACTIVE = 0
    PEAK = 0


    class GateOptions(msgspec.Struct):
        allow: str
        log: str
        x: int = 0


    @stage("gate", options=GateOptions)
    async def gate(ctx, opts):
        global ACTIVE, PEAK
        ACTIVE += 1
        PEAK = max(PEAK, ACTIVE)
        try:
            while not Path(opts.allow).exists():
                await anyio.sleep(0.01)
        finally:
            ACTIVE -= 1
        fd = os.open(opts.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{ctx.run_id} {os.getpid()}\\n".encode())
        finally:
            os.close(fd)
        return ctx.put_metric("x", opts.x)
"""

CHILD = """
    import os
    import signal
    import sys

    import anyio

    from crucible_actors import Experiment, StageDef, open_runtime

    url, sweep_file, allow, log, backend = sys.argv[1:6]
    exp = Experiment(
        id="sweep-ack",
        pipeline=[
            StageDef(
                name="gate", stage="durable_sweep_stages:gate", options={"allow": allow, "log": log}
            )
        ],
        sweep={"gate.x": list(range({points}))},
    )


    async def main():
        async with open_runtime(store=url) as rt:
            sweep = await rt.submit_sweep(exp, max_concurrent={limit})
            with open(sweep_file, "w") as f:
                f.write(sweep.sweep_id)
            os.kill(os.getpid(), signal.SIGKILL)  # no await between the ack and the kill


    anyio.run(main, backend=backend)
"""


@pytest.mark.parametrize("child_backend", ["asyncio", "trio"])
async def test_a_sweep_acknowledged_before_a_sigkill_completes_every_point_once(
    tmp_path: Path, shared_store_url: str, child_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("durable_sweep_stages", None)  # a fresh module (and counters) per test
    (tmp_path / "durable_sweep_stages.py").write_text(textwrap.dedent(STAGES))
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(CHILD).replace("{points}", str(POINTS)).replace("{limit}", str(LIMIT))
    )
    async with open_store(shared_store_url, migrate=True):
        pass
    sweep_file, allow, log = tmp_path / "sweep", tmp_path / "allow", tmp_path / "log"
    cmd = [sys.executable, str(script), shared_store_url, str(sweep_file), str(allow), str(log)]
    with anyio.fail_after(60):
        done = await anyio.run_process([*cmd, child_backend], cwd=tmp_path, check=False)
    assert done.returncode == -9, done.stderr.decode()
    sweep_id = sweep_file.read_text()

    async with open_store(shared_store_url) as store:
        points = await store.list_sweep_points(sweep_id)
        assert len(points) == POINTS
        statuses = [(await store.get_run(p.run_id)).status for p in points]
    # Every point has a row: at most max_concurrent started, the others pending.
    assert set(statuses) <= {"running", "pending"}
    assert statuses.count("running") <= LIMIT
    assert statuses.count("pending") >= POINTS - LIMIT

    allow.touch()
    with anyio.fail_after(60):
        async with (
            open_persistence(shared_store_url) as p,
            open_runtime(store=p, registry=Registry(), on_start="resume") as rt,
        ):
            assert sorted(p.last_recovery.resumed) == sorted(pt.run_id for pt in points)
            await rt.wait_idle()
    # The runtime closed once the adopted sweep had recorded its outcome.
    async with open_store(shared_store_url) as store:
        record = await store.get_sweep(sweep_id)
        runs = {pt.run_id: await store.get_run(pt.run_id) for pt in points}
    assert record is not None
    assert record.status == "completed"
    assert {r.status for r in runs.values()} == {"completed"}
    assert sorted(r.metrics["x"] for r in runs.values()) == list(range(POINTS))
    executed = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(executed) == sorted(runs)  # each point completed exactly once
    stages = importlib.import_module("durable_sweep_stages")
    sys.modules.pop("durable_sweep_stages", None)  # the module is this test's own
    assert stages.PEAK <= LIMIT  # the sweep's max_concurrent held after the crash too
