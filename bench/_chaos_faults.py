"""Chaos scenarios of store faults (issue 21): a PostgreSQL restart and a 30 s outage under
load, and a full disk under a SQLite store. Registered in ``bench/chaos.py``.

Each scenario runs a runtime in this process (``open_runtime(store=URL)``, public API
only), puts a load of persisted runs on it, injects the fault from a worker thread while
they run, and prints one JSON line with:

- ``lost``: acknowledged runs not stored ``completed`` at the end;
- ``duplicated``: stage executions beyond the first of a (run, stage);
- ``non_terminal``: acknowledged runs still stored ``pending``/``running``;
- ``disagreements``: runs whose outcome the caller saw (``handle.status``) differs from
  the one stored;
- ``stall_s``: the longest time no stage finished while runs were going, against
  ``outage_s``, how long the fault lasted.

Scenarios:

- ``pg-restart``: ``pg_ctlcluster 15 main restart`` while ``FAULT_RUNS`` runs are going.
- ``pg-outage``: ``pg_ctlcluster 15 main stop``, ``OUTAGE_S`` (30) seconds, ``start``.
  Both restore the server if it is left down. They disturb every other client of the
  server: run them alone. ``CHAOS_PG_FAULT=terminate`` replaces the restart or outage
  by ``pg_terminate_backend`` of the store's connections (a dry run that leaves the
  server alone); ``CHAOS_PG_FAULT=proxy`` puts a TCP proxy between the store and the
  server and cuts it instead (every connection closed, new ones refused: the outage a
  client sees, without touching the server).
- ``full-disk``: the SQLite store on a 4 MB tmpfs (``mount -t tmpfs``, root only; the
  scenario reports ``"skipped"`` where it cannot mount one). Runs are accepted, the disk
  is filled to the last byte, new runs are submitted (each must be refused at once with
  ``StoreUnavailable``: ``refused_new``, ``refuse_s`` the slowest refusal), the space is
  freed after ``FULL_S`` seconds, and the accepted runs must all complete; runs submitted
  after that must complete too (``recovered``).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from crucible_actors.testing import TcpProxy

TERMINAL = {"completed", "failed", "cancelled", "interrupted"}
STAGES = 5
FAULT_RUNS = int(os.environ.get("CHAOS_FAULT_RUNS", "200"))
OUTAGE_S = float(os.environ.get("CHAOS_OUTAGE_S", "30"))
FULL_S = float(os.environ.get("CHAOS_FULL_S", "3"))
DISK_RUNS = int(os.environ.get("CHAOS_DISK_RUNS", "30"))
DISK_PAD = int(os.environ.get("CHAOS_DISK_PAD", "1024"))
CLUSTER = ("15", "main")

STAGES_PY = textwrap.dedent(
    '''
    """Stages of bench/_chaos_faults.py (written to its scratch folder)."""

    import os

    import anyio

    from crucible_actors import stage


    @stage("fault_step")
    async def fault_step(ctx, opts):
        """Sleep ``delay`` s, log the execution, record a metric and ``pad`` bytes."""
        await anyio.sleep(opts.get("delay", 0))
        name = ctx.telemetry_context["stage"]
        line = f"{ctx.run_id} {name} {os.getpid()}\\n".encode()
        fd = os.open(opts["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        ctx = ctx.put_metric(name, 1)
        if opts.get("pad"):
            ctx = ctx.assign(f"pad_{name}", "x" * opts["pad"])
        return ctx
    '''
)


def emit(scenario: str, **fields: Any) -> None:
    print(json.dumps({"bench": "chaos", "scenario": scenario, **fields}), flush=True)


def _prepare(scratch: Path) -> None:
    (scratch / "chaos_fault_stages.py").write_text(STAGES_PY)
    if str(scratch) not in sys.path:
        sys.path.insert(0, str(scratch))
    # psycopg_pool logs every failed reconnect; the store's own warnings say enough.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    logging.basicConfig(level=logging.WARNING, format="  %(name)s: %(message)s")


def _experiment(log: Path, rng: random.Random, pad: int = 0) -> Any:
    from crucible_actors import Experiment, StageDef

    return Experiment(
        id="chaos-faults",
        pipeline=[
            StageDef(
                name=f"s{k}",
                stage="chaos_fault_stages:fault_step",
                options={"log": str(log), "delay": round(rng.uniform(0.05, 0.25), 3), "pad": pad},
            )
            for k in range(STAGES)
        ],
    )


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


class Progress:
    """Poll the stage log; ``stall_s`` is the longest time without a new line."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.stall_s = 0.0
        self.done = False

    async def watch(self) -> None:
        seen, since = _lines(self.log), time.monotonic()
        while not self.done:
            await anyio.sleep(0.02)
            now_seen = _lines(self.log)
            now = time.monotonic()
            if now_seen != seen:
                seen, since = now_seen, now
            self.stall_s = max(self.stall_s, now - since)


async def _verdict(url: str, handles: list[Any], log: Path) -> dict[str, Any]:
    """Compare what the callers saw with the store: lost, duplicated, non-terminal, ..."""
    from crucible_actors.errors import RunNotFound
    from crucible_actors.store import open_store

    stored: dict[str, str | None] = {}
    async with open_store(url) as store:
        for handle in handles:
            try:
                stored[handle.run_id] = (await store.get_run(handle.run_id)).status
            except RunNotFound:
                stored[handle.run_id] = None
    executed = collections.Counter(
        tuple(line.split()[:2]) for line in _read(log).splitlines() if line
    )
    return {
        "runs": len(handles),
        "lost": sum(1 for h in handles if stored[h.run_id] != "completed"),
        "duplicated": sum(n - 1 for n in executed.values() if n > 1),
        "non_terminal": sum(1 for h in handles if stored[h.run_id] not in TERMINAL),
        "disagreements": sum(1 for h in handles if str(h.status) != str(stored[h.run_id])),
        "statuses": dict(collections.Counter(str(stored[h.run_id]) for h in handles)),
        "caller_statuses": dict(collections.Counter(str(h.status) for h in handles)),
    }


# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_schema(base: str, app: str) -> tuple[str, str]:
    import psycopg

    schema = f"chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    options = quote(f"-c search_path={schema}")
    return f"{base}{sep}options={options}&application_name={app}", schema


def _pg_drop(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _cluster(action: str) -> int:
    return subprocess.run(
        ["pg_ctlcluster", *CLUSTER, action], capture_output=True, check=False
    ).returncode


def _ensure_up() -> None:
    """Start the cluster if a scenario left it down (``status`` exits 3 then)."""
    if _cluster("status") != 0:
        _cluster("start")


def _terminate(base: str, app: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (app,),
        )


def _pg_fault(kind: str, base: str, app: str, proxy: TcpProxy | None) -> float:
    """Inject the fault; return how long the server was unavailable (seconds)."""
    started = time.monotonic()
    mode = os.environ.get("CHAOS_PG_FAULT")
    if mode == "terminate":
        _terminate(base, app)
        return 0.0
    if proxy is not None:
        proxy.cut()
        time.sleep(OUTAGE_S if kind == "outage" else 1.0)
        proxy.restore()
    elif kind == "restart":
        if _cluster("restart") != 0:
            raise RuntimeError("pg_ctlcluster restart failed")
    else:
        if _cluster("stop") != 0:
            raise RuntimeError("pg_ctlcluster stop failed")
        time.sleep(OUTAGE_S)
        if _cluster("start") != 0:
            raise RuntimeError("pg_ctlcluster start failed")
    return time.monotonic() - started


async def _pg_trial(kind: str, base: str, scratch: Path, seed: int) -> dict[str, Any]:
    from crucible_actors import open_runtime
    from crucible_actors.store import open_store
    from crucible_actors.testing import TcpProxy

    app = f"chaos-faults-{uuid.uuid4().hex[:8]}"
    url, schema = _pg_schema(base, app)
    direct = url
    proxy = None
    if os.environ.get("CHAOS_PG_FAULT") == "proxy":
        server = urlsplit(base)
        proxy = TcpProxy((server.hostname or "127.0.0.1", server.port or 5432))
        url = url.replace(f"@{server.netloc.split('@')[-1]}", f"@127.0.0.1:{proxy.port}", 1)
    log = scratch / f"pg-{kind}-{uuid.uuid4().hex[:6]}.log"
    rng = random.Random(seed)
    try:
        async with open_store(direct, migrate=True):
            pass
        progress = Progress(log)
        started = time.monotonic()
        async with anyio.create_task_group() as tg, open_runtime(store=url) as rt:
            tg.start_soon(progress.watch)
            handles = [await rt.submit(_experiment(log, rng)) for _ in range(FAULT_RUNS)]
            while _lines(log) < FAULT_RUNS:  # noqa: ASYNC110 - until a fifth of the stages ran
                await anyio.sleep(0.01)
            outage_s = await anyio.to_thread.run_sync(_pg_fault, kind, base, app, proxy)
            for handle in handles:
                await handle.wait()
            progress.done = True
        wall = time.monotonic() - started
        verdict = await _verdict(direct, handles, log)
    finally:
        if proxy is not None:
            proxy.cut()
        await anyio.to_thread.run_sync(_ensure_up)
        with contextlib.suppress(Exception):
            await anyio.to_thread.run_sync(_pg_drop, base, schema)
    return {
        **verdict,
        "fault": os.environ.get("CHAOS_PG_FAULT") or kind,
        "outage_s": round(outage_s, 2),
        "stall_s": round(progress.stall_s, 2),
        "wall_s": round(wall, 2),
    }


def _pg_skip(args: argparse.Namespace) -> str | None:
    """Why a PostgreSQL scenario cannot run here, or None."""
    if args.no_postgres:
        return "--no-postgres"
    if os.environ.get("CHAOS_PG_FAULT") not in ("terminate", "proxy") and not shutil.which(
        "pg_ctlcluster"
    ):
        return "no pg_ctlcluster to restart the server (CHAOS_PG_FAULT=proxy cuts a proxy)"
    return None


def scenario_pg_restart(args: argparse.Namespace, scratch: Path) -> None:
    skip = _pg_skip(args)
    if skip is not None:
        emit("pg_restart", skipped=skip)
        return
    _prepare(scratch)
    result = anyio.run(_pg_trial, "restart", args.pg_url, scratch, args.seed, backend=args.backend)
    emit("pg_restart", store="postgresql", **result)


def scenario_pg_outage(args: argparse.Namespace, scratch: Path) -> None:
    skip = _pg_skip(args)
    if skip is not None:
        emit("pg_outage", skipped=skip)
        return
    _prepare(scratch)
    result = anyio.run(_pg_trial, "outage", args.pg_url, scratch, args.seed, backend=args.backend)
    emit("pg_outage", store="postgresql", **result)


# -- full disk -------------------------------------------------------------------------------


def _fill(path: Path) -> int:
    """Write ``path`` until the file system is full; return the bytes written."""
    written = 0
    block = b"\0" * 65536
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(block)
            except OSError:
                break
        small = b"\0" * 512
        while True:
            try:
                written += f.write(small)
            except OSError:
                return written


async def _submit_new(rt: Any, exp: Any) -> tuple[str, float, Any]:
    """Submit a run on a full disk: ``("refused", s, None)`` or ``("accepted", s, handle)``."""
    from crucible_actors import RunStatus
    from crucible_actors.errors import StoreUnavailable

    started = time.monotonic()
    try:
        handle = await rt.submit(exp)
    except StoreUnavailable:
        return "refused", time.monotonic() - started, None
    status = await handle.wait()
    failure = getattr(handle.error, "reason", None)
    if status is RunStatus.FAILED and isinstance(failure, StoreUnavailable):
        return "refused", time.monotonic() - started, handle
    return "accepted", time.monotonic() - started, handle


async def _disk_trial(disk: Path, scratch: Path, seed: int) -> dict[str, Any]:
    from crucible_actors import open_runtime

    url = f"sqlite:///{disk / 'chaos.db'}"
    log = scratch / f"disk-{uuid.uuid4().hex[:6]}.log"
    rng = random.Random(seed)
    progress = Progress(log)
    filler = disk / "filler"
    accepted_n = DISK_RUNS
    async with anyio.create_task_group() as tg, open_runtime(store=url) as rt:
        tg.start_soon(progress.watch)
        accepted = [await rt.submit(_experiment(log, rng, pad=DISK_PAD)) for _ in range(accepted_n)]
        while _lines(log) < accepted_n:  # noqa: ASYNC110 - until a fifth of the stages ran
            await anyio.sleep(0.01)
        filled = await anyio.to_thread.run_sync(_fill, filler)
        full_at = time.monotonic()
        new = [await _submit_new(rt, _experiment(log, rng, pad=DISK_PAD)) for _ in range(10)]
        await anyio.sleep(max(0.0, FULL_S - (time.monotonic() - full_at)))
        filler.unlink()
        wal = disk / "chaos.db-wal"
        freed_at = time.monotonic()
        for handle in accepted:
            await handle.wait()
        settled_s = time.monotonic() - freed_at
        later = [await rt.submit(_experiment(log, rng, pad=DISK_PAD)) for _ in range(10)]
        for handle in later:
            await handle.wait()
        progress.done = True
    refused = [n for n in new if n[0] == "refused"]
    verdict = await _verdict(url, accepted + later, log)
    refused_stored = 0
    if any(h is not None for _, _, h in refused):
        stored = await _verdict(url, [h for _, _, h in refused if h is not None], log)
        refused_stored = stored["runs"] - stored["statuses"].get("None", 0)
    return {
        **verdict,
        "filled_bytes": filled,
        "refused_new": len(refused),
        "refused_new_stored": refused_stored,
        "accepted_while_full": len(new) - len(refused),
        "refuse_s": round(max((s for _, s, _ in refused), default=0.0), 3),
        "full_s": round(freed_at - full_at, 2),
        "settled_after_free_s": round(settled_s, 2),
        "recovered": sum(1 for h in later if str(h.status) == "completed"),
        "wal_bytes_end": wal.stat().st_size if wal.exists() else 0,
        "stall_s": round(progress.stall_s, 2),
    }


def scenario_full_disk(args: argparse.Namespace, scratch: Path) -> None:
    _prepare(scratch)
    disk = scratch / "disk"
    disk.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        emit("full_disk", skipped=f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        return
    started = time.monotonic()
    try:
        result = anyio.run(_disk_trial, disk, scratch, args.seed, backend=args.backend)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
        shutil.rmtree(disk, ignore_errors=True)
    emit(
        "full_disk",
        store="sqlite",
        disk="tmpfs 4 MB",
        **result,
        wall_s=round(time.monotonic() - started, 2),
    )


SCENARIOS = {
    "pg-restart": scenario_pg_restart,
    "pg-outage": scenario_pg_outage,
    "full-disk": scenario_full_disk,
}
