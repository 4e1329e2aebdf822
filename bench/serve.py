"""Submission latency of ``crucible-actors serve`` under load, against a bare Starlette handler.

Starts ``crucible-actors serve`` as a subprocess on a loopback port (trio worker by
default, a fresh SQLite store, ``--max-concurrent-runs 256`` so that no submission waits
for admission) with one bench stage, then submits ``--runs`` experiments (default 500)
from ``--clients`` concurrent keep-alive HTTP/1.1 connections: every 10th run fails,
every 10th (offset 5) sleeps until it is cancelled through
``POST /api/runs/{id}/cancel``, the rest finish after a few milliseconds. The runs
execute in the server process while submissions arrive, so the latency includes their
share of the event loop. The bench waits until every run is terminal, then checks that
the run list, each run's detail and the store (opened directly) report the same status
for every run, and that the counts are the expected ones.

Baseline, measured in the same bench run: the same number of POSTs over the same number
of connections to a bare Starlette app on the same Hypercorn worker, whose handler only
decodes the JSON body and answers 202 with a run id.

Figures (one JSON object per line): p50/p99/mean submit latency for both and their
ratio, submissions per second, the time until every run was terminal, the status
counts, and whether API and store agreed on every run. Usage:
``python bench/serve.py [--runs N] [--clients N] [--backend trio|asyncio]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import h11
import httpx

STAGES_PY = textwrap.dedent(
    '''
    import anyio
    import msgspec
    from crucible_actors import Context, Stage


    class Work(Stage):
        """Sleep ``delay`` seconds, then fail if asked to."""

        name = "work"

        class Options(msgspec.Struct):
            delay: float = 0.005
            fail: bool = False

        async def run(self, ctx: Context, opts) -> Context:
            await anyio.sleep(opts.delay)
            if opts.fail:
                raise RuntimeError("asked to fail")
            return ctx.put_metric("delay", opts.delay)
    '''
)

BARE_PY = textwrap.dedent(
    """
    import signal, sys, uuid, anyio, msgspec
    from functools import partial
    from hypercorn.config import Config
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def submit(request):
        msgspec.json.decode(await request.body())
        run_id = str(uuid.uuid4())
        answer = {"run_id": run_id, "status": "pending", "links": {"self": "/api/runs/" + run_id}}
        return Response(msgspec.json.encode(answer), 202, media_type="application/json")

    async def healthz(request):
        return Response(b'{"status":"ok"}', media_type="application/json")

    app = Starlette(routes=[Route("/api/runs", submit, methods=["POST"]),
                            Route("/healthz", healthz)])
    config = Config()
    config.bind = ["127.0.0.1:" + sys.argv[1]]
    config.accesslog = None
    if sys.argv[2] == "trio":
        from hypercorn.trio import serve
    else:
        from hypercorn.asyncio import serve
    async def stopped():
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                return

    anyio.run(partial(serve, app, config, shutdown_trigger=stopped), backend=sys.argv[2])
    """
)


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "serve", **fields}), flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(command: list[str], cwd: Path, base: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("CRUCIBLE_STORE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd), env.get("PYTHONPATH")]))
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{command[:4]} exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{command[:4]} did not start:\n{log.read_text()}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "p50_ms": round(pick(0.50), 3),
        "p99_ms": round(pick(0.99), 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def body_for(i: int) -> dict[str, Any]:
    """Every 10th run fails, every 10th (offset 5) waits to be cancelled."""
    if i % 10 == 0:
        options: dict[str, Any] = {"delay": 0.002, "fail": True}
    elif i % 10 == 5:
        options = {"delay": 60.0}
    else:
        options = {"delay": 0.002 + (i % 7) * 0.001}
    return {
        "experiment": {"id": f"bench-{i % 5}", "pipeline": [{"name": "work", "options": options}]},
        "trace": i % 2 == 0,
    }


class _Connection:
    """A minimal keep-alive HTTP/1.1 client on h11.

    At 50 concurrent connections httpx's own overhead, not the server, would dominate the
    measured latency.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def post(self, target: str, body: bytes) -> tuple[int, bytes]:
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        headers = [
            ("host", "127.0.0.1"),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
        ]
        await self.stream.send(
            self.conn.send(h11.Request(method="POST", target=target, headers=headers))
            + self.conn.send(h11.Data(data=body))
            + self.conn.send(h11.EndOfMessage())
        )
        status, chunks = 0, []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, b"".join(chunks)


async def load(port: int, runs: int, clients: int) -> tuple[list[float], list[str], float]:
    """POST ``runs`` bodies over ``clients`` keep-alive connections; return latencies, ids."""
    latencies: list[float] = []
    ids: list[str] = [""] * runs
    queue = iter(range(runs))
    bodies = [json.dumps(body_for(i)).encode() for i in range(runs)]

    async def worker() -> None:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            conn = _Connection(stream)
            for i in queue:
                t0 = time.perf_counter()
                status, answer = await conn.post("/api/runs", bodies[i])
                latencies.append(time.perf_counter() - t0)
                if status != 202:
                    raise SystemExit(f"submission {i}: {status} {answer!r}")
                ids[i] = json.loads(answer)["run_id"]

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(worker)
    return latencies, ids, time.perf_counter() - t0


async def finish(base: str, ids: list[str], clients: int) -> dict[str, str]:
    """Cancel the waiting runs, then poll until every run is terminal; return statuses."""
    terminal = {"completed", "failed", "cancelled", "interrupted"}
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        to_cancel = [run_id for i, run_id in enumerate(ids) if i % 10 == 5]

        async def cancel(run_id: str) -> None:
            response = await client.post(f"/api/runs/{run_id}/cancel")
            if response.status_code not in (202, 409):
                raise SystemExit(f"cancel {run_id}: {response.status_code} {response.text}")

        async with anyio.create_task_group() as tg:
            for run_id in to_cancel:
                tg.start_soon(cancel, run_id)
        deadline = time.monotonic() + 40
        while True:
            statuses: dict[str, str] = {}
            before = None
            while True:
                params: dict[str, Any] = {"limit": 200}
                if before:
                    params["before"] = before
                page = (await client.get("/api/runs", params=params)).json()
                statuses.update({r["id"]: r["status"] for r in page["runs"]})
                before = page["next"]
                if before is None:
                    break
            if all(statuses.get(run_id) in terminal for run_id in ids):
                # Each run's own view too: live status from the handle, else the store.
                details = await read_details(client, ids)
                if details != {run_id: statuses[run_id] for run_id in ids}:
                    raise SystemExit("the run list and the run details disagree")
                return details
            if time.monotonic() > deadline:
                pending = [r for r in ids if statuses.get(r) not in terminal][:5]
                raise SystemExit(f"runs still not terminal after 40 s, e.g. {pending}")
            await anyio.sleep(0.1)


async def read_details(client: httpx.AsyncClient, ids: list[str]) -> dict[str, str]:
    """Return the status each run's ``GET /api/runs/{id}`` reports."""
    details: dict[str, str] = {}

    async def read(run_id: str) -> None:
        details[run_id] = (await client.get(f"/api/runs/{run_id}")).json()["status"]

    async with anyio.create_task_group() as tg:
        for run_id in ids:
            tg.start_soon(read, run_id)
    return details


async def stored_statuses(url: str, ids: list[str]) -> dict[str, str]:
    from crucible_actors.store import open_store

    async with open_store(url) as store:
        return {run_id: (await store.get_run(run_id)).status for run_id in ids}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crucible-bench-serve-") as tmp:
        cwd = Path(tmp)
        (cwd / "bench_stages.py").write_text(STAGES_PY)
        (cwd / "crucible.toml").write_text('[stages]\nwork = "bench_stages:Work"\n')
        (cwd / "bare_app.py").write_text(BARE_PY)
        url = f"sqlite:///{cwd / 'bench.db'}"

        # Baseline first: a bare Starlette handler on the same server stack.
        port = free_port()
        bare = start(
            [sys.executable, str(cwd / "bare_app.py"), str(port), args.backend],
            cwd,
            f"http://127.0.0.1:{port}",
            cwd / "bare.log",
        )
        try:
            base_lat, _, base_elapsed = anyio.run(
                load, port, args.runs, args.clients, backend="trio"
            )
        finally:
            stop(bare)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve = start(
            [
                sys.executable,
                "-m",
                "crucible_actors",
                "serve",
                "--port",
                str(port),
                "--store",
                url,
                "--max-concurrent-runs",
                "256",
                "--max-queue",
                str(args.runs),
                "--backend",
                args.backend,
            ],
            cwd,
            base,
            cwd / "serve.log",
        )
        try:
            t0 = time.perf_counter()
            lat, ids, elapsed = anyio.run(load, port, args.runs, args.clients, backend="trio")
            api = anyio.run(finish, base, ids, args.clients, backend="trio")
            all_terminal = time.perf_counter() - t0
        finally:
            stop(serve)
        stored = anyio.run(stored_statuses, url, ids, backend="trio")

    counts: dict[str, int] = {}
    for status in api.values():
        counts[status] = counts.get(status, 0) + 1
    expected = {
        "completed": sum(1 for i in range(args.runs) if i % 10 not in (0, 5)),
        "failed": sum(1 for i in range(args.runs) if i % 10 == 0),
        "cancelled": sum(1 for i in range(args.runs) if i % 10 == 5),
    }
    expected = {k: v for k, v in expected.items() if v}
    agree = api == stored
    serve_p = percentiles(lat)
    bare_p = percentiles(base_lat)
    common = {"runs": args.runs, "clients": args.clients, "backend": args.backend}
    emit(figure="submit_latency", **common, **serve_p, per_s=round(args.runs / elapsed, 1))
    emit(
        figure="bare_starlette_latency",
        **common,
        **bare_p,
        per_s=round(args.runs / base_elapsed, 1),
    )
    emit(
        figure="latency_ratio",
        **common,
        p50=round(serve_p["p50_ms"] / bare_p["p50_ms"], 2),
        p99=round(serve_p["p99_ms"] / bare_p["p99_ms"], 2),
    )
    emit(
        figure="outcome",
        **common,
        counts=counts,
        expected=expected,
        store_agrees=agree,
        all_terminal_s=round(all_terminal, 2),
    )
    if not agree or counts != expected:
        disagree = [r for r in ids if api.get(r) != stored.get(r)][:5]
        raise SystemExit(f"check failed: counts {counts} (expected {expected}); {disagree}")


if __name__ == "__main__":
    main()
