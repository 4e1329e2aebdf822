"""A process killed mid-stage (SIGKILL) and a new runtime resuming its run to completion.

The child process runs a 4-stage pipeline whose third stage prints ``BLOCKED`` on stdout
and waits; the test reads that line (no sleeps), kills the child, and opens a runtime
with ``on_start="resume"``. The run must complete with the first two stages not repeated
and exactly one run row.
"""

from __future__ import annotations

import signal
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

STAGES = """
    import os
    from pathlib import Path

    import anyio

    from crucible_actors import stage


    def _log(ctx, opts, name):
        with Path(opts["log"]).open("a") as f:
            f.write(f"{ctx.run_id} {name} {os.getpid()}\\n")


    @stage("prep")
    def prep(ctx, opts):
        _log(ctx, opts, "prep")
        return ctx.put_metric("prep", 1)


    @stage("train")
    async def train(ctx, opts):
        _log(ctx, opts, "train")
        return ctx.put_metric("train", ctx.get_metric("prep") + 1)


    @stage("block")
    async def block(ctx, opts):
        _log(ctx, opts, "block")
        if not Path(opts["allow"]).exists():
            print("BLOCKED", flush=True)  # the test kills us now
            await anyio.sleep_forever()
        return ctx.put_metric("block", 1)


    @stage("finish")
    def finish(ctx, opts):
        _log(ctx, opts, "finish")
        return ctx.put_metric("finish", 1)
"""

CHILD = """
    import sys

    import anyio

    from crucible_actors import Experiment, StageDef, open_runtime

    url, log, allow = sys.argv[1:4]
    opts = {"log": log, "allow": allow}
    exp = Experiment(
        id="crash",
        pipeline=[
            StageDef(name=name, stage="crash_stages:" + name, options=opts)
            for name in ("prep", "train", "block", "finish")
        ],
    )


    async def main():
        async with open_runtime(store=url) as rt:
            handle = await rt.submit(exp, run_id="crash-1")
            await handle.wait()


    anyio.run(main, backend="trio")
"""


@pytest.fixture(params=["process", "power", pytest.param("postgres", marks=pytest.mark.postgres)])
def crash_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL: SQLite at each durability level, or PostgreSQL."""
    if request.param in ("process", "power"):
        return f"sqlite:///{tmp_path}/crash.db?durability={request.param}"
    url: str = request.getfixturevalue("pg_url")
    return url


async def run_child_until_blocked(tmp_path: Path, url: str) -> int:
    """Start the child, wait until its third stage blocks, SIGKILL it; return its pid."""
    (tmp_path / "crash_stages.py").write_text(textwrap.dedent(STAGES))
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    if url.startswith("postgresql"):
        async with open_store(url, migrate=True):
            pass
    cmd = [sys.executable, str(script), url, str(tmp_path / "log"), str(tmp_path / "allow")]
    async with await anyio.open_process(cmd, cwd=tmp_path) as proc:
        assert proc.stdout is not None
        seen = b""
        with anyio.fail_after(60):
            while b"BLOCKED" not in seen:
                try:
                    seen += await proc.stdout.receive()
                except anyio.EndOfStream:
                    pytest.fail(f"the child ended before blocking: {seen!r}")
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        return proc.pid


async def test_killed_run_resumes_from_its_checkpoint_in_a_new_runtime(
    tmp_path: Path, crash_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    child_pid = await run_child_until_blocked(tmp_path, crash_url)

    async with open_store(crash_url) as store:
        run = await store.get_run("crash-1")
        assert run.status == "running"
        cp = await store.load_checkpoint("crash-1")
        assert cp is not None
        assert cp.index == 2  # committed before the stage that was killed
        assert [a.stage for a in await store.list_attempts("crash-1")] == ["prep", "train"]

    (tmp_path / "allow").touch()
    # PostgreSQL only trusts heartbeats: look at the store from an hour later, when the
    # killed process's heartbeat is stale. SQLite also sees that its pid is gone.
    now = None
    if crash_url.startswith("postgresql"):
        now = lambda: datetime.now(UTC) + timedelta(hours=1)  # noqa: E731
    with anyio.fail_after(60):
        async with (
            open_persistence(crash_url, now=now) as p,
            open_runtime(store=p, registry=Registry(), on_start="resume") as rt,
        ):
            assert p.last_recovery.resumed == ["crash-1"]
            handle = rt.get("crash-1")
            assert handle is not None
            ctx = await handle.result()
    assert ctx.metrics == {"prep": 1, "train": 2, "block": 1, "finish": 1}

    log = [line.split() for line in (tmp_path / "log").read_text().splitlines()]
    by_stage: dict[str, list[int]] = {}
    for run_id, stage_name, pid in log:
        assert run_id == "crash-1"
        by_stage.setdefault(stage_name, []).append(int(pid))
    me = p.owner.pid
    assert by_stage == {
        "prep": [child_pid],
        "train": [child_pid],
        "block": [child_pid, me],
        "finish": [me],
    }

    async with open_store(crash_url) as store:
        runs = await store.list_runs()
        assert [r.id for r in runs] == ["crash-1"]
        assert runs[0].status == "completed"
        assert runs[0].metadata["resumed_from"] == 2
        assert [(a.index, a.stage, a.status) for a in await store.list_attempts("crash-1")] == [
            (0, "prep", "completed"),
            (1, "train", "completed"),
            (2, "block", "completed"),
            (3, "finish", "completed"),
        ]
        assert await store.list_owners() == []
