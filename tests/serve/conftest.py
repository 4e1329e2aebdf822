"""Service test set-up: test stages, an in-process app, a lifespan driver, ``served_app``.

- ``serve(**options)`` (fixture) opens a runtime over a fresh registry of the stages in
  ``serve_stages.py`` (plus a per-app :class:`Gate`), builds ``create_app(runtime, ...)``
  and yields a :class:`Served` with an ``httpx.AsyncClient`` talking to it in-process.
- ``run_lifespan(app)`` drives an app's ASGI lifespan (httpx does not).
- ``served_app`` starts ``crucible-actors serve`` as a real subprocess on a free loopback
  port with a tmp SQLite store and the test stages, and yields its base URL; the
  dashboard's browser test uses it too. ``start_served(tmp_path, *args)`` is the same
  with extra command-line arguments (``--token-file``...).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
from tests.helpers import missing_extra, registry_with

pytest.importorskip("starlette", reason=missing_extra("serve"))
pytest.importorskip("hypercorn", reason=missing_extra("serve"))
pytest.importorskip("prometheus_client", reason=missing_extra("serve"))

from crucible_actors import Registry, open_runtime
from crucible_actors.serve import create_app
from crucible_actors.store import MemoryStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from contextlib import AbstractAsyncContextManager
    from types import ModuleType

    from starlette.applications import Starlette

    from crucible_actors import RunHandle, Runtime
    from crucible_actors.store import Store

HERE = Path(__file__).parent


def _load_stages() -> ModuleType:
    """Import ``serve_stages.py`` as ``serve_stages`` (its references resolve in-process)."""
    module = sys.modules.get("serve_stages")
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location("serve_stages", HERE / "serve_stages.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_stages"] = module
    spec.loader.exec_module(module)
    return module


serve_stages = _load_stages()


def experiment(*stages: str | dict[str, Any], id: str = "exp", **extra: Any) -> dict[str, Any]:
    """Return an experiment body; a stage is a name or a StageDef mapping."""
    pipeline = [{"name": s} if isinstance(s, str) else s for s in stages]
    return {"id": id, "pipeline": pipeline, **extra}


class Served:
    """An app under test: its client, runtime, store, app and gate stage."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        store: Store | None,
        app: Starlette,
        gate: Any,
    ) -> None:
        self.client = client
        self.runtime = runtime
        self.store = store
        self.app = app
        self.gate = gate

    async def submit(self, *stages: str | dict[str, Any], **body: Any) -> httpx.Response:
        """POST an experiment of ``stages`` (``body`` adds envelope keys or fields)."""
        headers = body.pop("headers", None)
        exp_fields = {
            k: body.pop(k)
            for k in list(body)
            if k not in ("assigns", "run_id", "validate_options", "trace")
        }
        payload = {"experiment": experiment(*stages, **exp_fields), **body}
        return await self.client.post("/api/runs", json=payload, headers=headers)

    async def run(self, *stages: str | dict[str, Any], **body: Any) -> str:
        """Submit, wait until the run ended, and return its id."""
        response = await self.submit(*stages, **body)
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]
        await self.wait(run_id)
        return run_id

    async def wait(self, run_id: str) -> RunHandle:
        """Wait until run ``run_id`` of this runtime has ended (outcome stored)."""
        handle = self.runtime.get(run_id)
        assert handle is not None
        await handle.wait()
        return handle


def make_registry(gate: Any) -> Registry:
    """Return a registry of the test stages and ``gate``."""
    return registry_with(
        serve_stages.Echo,
        serve_stages.Need,
        serve_stages.Fail,
        serve_stages.Sleep,
        serve_stages.Write,
        gate,
    )


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., AbstractAsyncContextManager[Served]]:
    """Return ``serve(store=..., max_concurrent_runs=..., **create_app_options)``.

    ``store`` is ``"memory"`` (default), ``"sqlite"`` (a file in ``tmp_path``), a URL,
    a Store, or None (no persistence).
    """

    @asynccontextmanager
    async def open_served(
        *, store: Any = "memory", max_concurrent_runs: int | None = None, **options: Any
    ) -> AsyncIterator[Served]:
        gate = serve_stages.Gate()
        if store == "memory":
            store = MemoryStore()
        elif store == "sqlite":
            store = f"sqlite:///{tmp_path / 'serve.db'}"
        async with open_runtime(
            registry=make_registry(gate), store=store, max_concurrent_runs=max_concurrent_runs
        ) as rt:
            app = create_app(rt, **options)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield Served(client, rt, getattr(rt, "store", None), app, gate)

    return open_served


@pytest.fixture
async def served(
    serve: Callable[..., AbstractAsyncContextManager[Served]],
) -> AsyncIterator[Served]:
    """An app over a memory store, without auth."""
    async with serve() as s:
        yield s


@asynccontextmanager
async def run_lifespan(app: Any) -> AsyncIterator[None]:
    """Run ``app``'s ASGI lifespan: startup on entry, shutdown on exit."""
    to_app_send, to_app_recv = anyio.create_memory_object_stream[dict[str, Any]](4)
    from_app_send, from_app_recv = anyio.create_memory_object_stream[dict[str, Any]](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    async with (
        to_app_send,
        to_app_recv,
        from_app_send,
        from_app_recv,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(app, scope, to_app_recv.receive, from_app_send.send)
        await to_app_send.send({"type": "lifespan.startup"})
        message = await from_app_recv.receive()
        assert message["type"] == "lifespan.startup.complete", message
        try:
            yield
        finally:
            await to_app_send.send({"type": "lifespan.shutdown"})
            message = await from_app_recv.receive()
            assert message["type"] == "lifespan.shutdown.complete", message


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    """A ``crucible-actors serve`` subprocess (see :func:`start_served`)."""

    def __init__(self, proc: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
        self.proc = proc
        self.base_url = base_url
        self.log_path = log_path

    def log(self) -> str:
        """Return what the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """Stop the process with SIGINT (then SIGKILL after 20 s); return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_served(tmp_path: Path, *args: str, ready_timeout: float = 30.0) -> ServeProcess:
    """Start ``crucible-actors serve`` in ``tmp_path`` and wait until /healthz answers.

    The process uses ``tmp_path/serve.db`` as its store and registers the stages of
    ``serve_stages.py`` (``echo need fail sleep write tally await_file``) through
    ``crucible.toml``; ``args`` are appended to the command line. Polls /healthz with a
    bounded deadline.
    """
    (tmp_path / "serve_stages.py").write_text((HERE / "serve_stages.py").read_text())
    (tmp_path / "crucible.toml").write_text(serve_stages.CRUCIBLE_TOML)
    port = free_port()
    env = dict(os.environ)
    env.pop("CRUCIBLE_STORE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    log_path = tmp_path / "serve.log"
    command = [
        sys.executable,
        "-m",
        "crucible_actors",
        "serve",
        "--port",
        str(port),
        "--store",
        f"sqlite:///{tmp_path / 'serve.db'}",
        *args,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    served = ServeProcess(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + ready_timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"crucible-actors serve exited with {proc.returncode}:\n{served.log()}")
        try:
            if httpx.get(f"{served.base_url}/healthz", timeout=2).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            served.stop()
            pytest.fail(
                f"crucible-actors serve did not answer within {ready_timeout} s:\n{served.log()}"
            )
        time.sleep(0.05)


@pytest.fixture
def served_app(tmp_path: Path) -> Iterator[str]:
    """Start ``crucible-actors serve`` (tmp SQLite store, test stages); yield its base URL."""
    served = start_served(tmp_path)
    try:
        yield served.base_url
    finally:
        served.stop()
