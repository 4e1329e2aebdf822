"""Real store faults for CLI and serve tests: an orphaned run whose recovery fails.

:func:`seed_unrecoverable_orphan` stores a run left ``running`` by a dead process on
this host in a SQLite file, and adds a trigger that makes every write changing that
run's status or owner fail (SQLite's ``RAISE(ABORT)``): start-up recovery then meets a
real store error on that one run, as it would on a row the store cannot write.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio

from crucible_actors import Context, Experiment, StageDef
from crucible_actors._core._encoding import encode_context
from crucible_actors.store import (
    Checkpoint,
    ExperimentRecord,
    OwnerRecord,
    RunRecord,
    open_store,
)

if TYPE_CHECKING:
    from pathlib import Path

#: A pid no process has: the orphan's owner is dead on this host.
DEAD_PID = 999_999_999


def seed_unrecoverable_orphan(db: Path, run_id: str = "poison1") -> None:
    """Store run ``run_id`` orphaned in ``db`` and make writes to it fail."""
    anyio.run(_seed, db, run_id)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "CREATE TRIGGER crucible_test_poison BEFORE UPDATE OF status, owner_id ON runs"
            f" WHEN OLD.id = '{run_id}'"
            " BEGIN SELECT RAISE(ABORT, 'injected: this run cannot be written'); END"
        )
        conn.commit()


def seed_orphan(db: Path, run_id: str = "orphan1") -> None:
    """Store run ``run_id`` in ``db`` as ``running`` under an owner that is dead on this
    host (its pid does not exist), with its initial checkpoint: a run to adopt."""
    anyio.run(_seed, db, run_id)


async def _seed(db: Path, run_id: str) -> None:
    now = datetime.now(UTC)
    exp = Experiment(id="orphaned", pipeline=[StageDef(stage="data_checks")])
    async with open_store(f"sqlite:///{db}") as store:
        await store.register_owner(
            OwnerRecord(
                id="dead", host=socket.gethostname(), pid=DEAD_PID, started_at=now, heartbeat_at=now
            )
        )
        await store.start_run(
            RunRecord(
                id=run_id, experiment_id=exp.id, status="running", started_at=now, owner_id="dead"
            ),
            experiment=ExperimentRecord(
                id=exp.id, definition={"id": exp.id}, created_at=now, updated_at=now
            ),
            checkpoint=Checkpoint(
                run_id=run_id,
                index=0,
                data=encode_context(Context.new(exp, run_id=run_id)),
                created_at=now,
            ),
        )


class TcpProxy:
    """A TCP proxy to ``target`` on a free local port, whose outages are real to clients.

    :meth:`cut` closes every proxied connection and refuses new ones (the listening
    socket is closed, so connecting gets ``Connection refused``, as from a stopped
    server) until :meth:`restore`. Threads, not the event loop: clients under test run
    their own.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
