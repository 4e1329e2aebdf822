"""The supported test helpers in crucible_actors.testing."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import pytest
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Experiment, StageDef
from crucible_actors.testing import MemoryStore, RecordingStage, TcpProxy, capture_spans

if TYPE_CHECKING:
    from collections.abc import Iterator


async def test_recording_stage_fails_on_chosen_calls_and_records_attempts() -> None:
    rec = RecordingStage("rec", fail_on_calls=[1])
    reg = registry_with(rec)
    ctx = await ca.run_async(
        Experiment(id="e", pipeline=[StageDef(name="rec", restart="transient", options={"k": 1})]),
        registry=reg,
    )
    assert ctx.get_metric("rec") == 2
    assert [c["attempt"] for c in rec.calls] == [1, 2]
    assert rec.calls[0]["options"] == {"k": 1}


async def test_memory_store_and_capture_spans_plug_into_the_runtime() -> None:
    rec = RecordingStage("rec")
    reg = registry_with(rec)
    store = MemoryStore()
    with capture_spans() as capture:
        async with ca.open_runtime(
            registry=reg, store=store, tracer_provider=capture.provider
        ) as rt:
            handle = await rt.submit(Experiment(id="e", pipeline=[StageDef(name="rec")]))
            await handle.result()
        assert [s.name for s in capture.spans("crucible.run")] == ["crucible.run"]
    run = await store.get_run(handle.run_id)
    assert run.status == "completed"


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """A TCP server on 127.0.0.1 that echoes what each connection sends."""
    server = socket.create_server(("127.0.0.1", 0))

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    with server:
        yield server.getsockname()[:2]


def _echo_through(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(b"ping")
    assert client.recv(1024) == b"ping"
    return client


def test_tcp_proxy_cut_closes_connections_and_refuses_new_ones_until_restored(
    echo_server: tuple[str, int],
) -> None:
    with TcpProxy(echo_server) as proxy:
        with _echo_through(proxy.port) as before:
            proxy.cut()
            assert before.recv(1024) == b""  # the open connection ends, as the server died
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        proxy.restore()
        with _echo_through(proxy.port):
            pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
