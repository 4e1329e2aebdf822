"""A pool of long-lived worker processes, reused across attempts (the parent's side).

A :class:`WorkerPool` starts up to ``size`` workers (``python -m
crucible_actors.executors._pool_worker``, with the parent's ``sys.path``) on demand and
keeps them: an attempt takes an idle worker, sends it one frame and reads one frame back
(see :mod:`._pool_worker` for the protocol). At most ``size`` attempts run at once; more
wait for a worker.

A worker is never handed out dead: before reuse the pool asks the kernel whether the
process still runs (a pidfd on Linux, the exit status elsewhere) and drops it if not. A
worker that dies during an attempt (``os._exit``, a signal, the OOM killer) ends the
attempt with :class:`~crucible_actors.errors.WorkerCrashed`; a worker whose attempt is
cancelled (timeout, run cancelled) is killed at once. Either way the pool starts a fresh
process at once, which starts up while the supervisor decides and backs off.
:meth:`WorkerPool.aclose` asks idle workers to tear down their stateful stages and exit,
and kills those that do not within a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from typing import TYPE_CHECKING

import anyio
import msgspec
from anyio.streams.buffered import BufferedByteReceiveStream

from .._core import WorkerCrashed
from ._pool_protocol import KEEP, RETIRE, Shutdown, frame

if TYPE_CHECKING:
    from anyio.abc import Process

__all__ = ["Worker", "WorkerPool", "describe_exit"]

_KILL_WAIT = 5.0
_SHUTDOWN = frame(msgspec.msgpack.encode(Shutdown()))


def describe_exit(code: int | None) -> str:
    """Say how a worker process ended (``exit status 1``, ``killed by SIGKILL``)."""
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        oom = " (out of memory? the OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{oom}"
    return f"exit status {code}"


class Worker:
    """One worker process and its pipes."""

    __slots__ = ("_pidfd", "_reader", "proc", "ready")

    def __init__(self, proc: Process) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self._reader = BufferedByteReceiveStream(proc.stdout)
        #: The stage references this worker has set up (a stage pool's worker has one).
        self.ready: set[str] = set()
        self._pidfd: int | None = None
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                self._pidfd = pidfd_open(proc.pid)
            except OSError:
                self._pidfd = None

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Return whether the process still runs (without reaping it)."""
        if self.proc.returncode is not None:
            return False
        if self._pidfd is not None:
            readable, _, _ = select.select([self._pidfd], [], [], 0)
            return not readable
        return True

    async def call(self, label: str, request: bytes) -> tuple[bool, bool, bytes]:
        """Send one request frame and return ``(retire, experiment kept, reply body)``.

        Raises:
            WorkerCrashed: the worker died (or closed its pipes) before answering.
        """
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            await stdin.send(frame(request))
            header = await self._reader.receive_exactly(6)
            size = int.from_bytes(header[:4], "big") - 2
            body = await self._reader.receive_exactly(size)
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            code = await self._wait_dead()
            raise WorkerCrashed(
                label,
                worker=f"pid {self.pid}",
                cause=describe_exit(code),
                hint="the attempt did not finish; a restart policy may retry it",
            ) from None
        flag = header[4:5]
        assert flag in (KEEP, RETIRE)
        return flag == RETIRE, header[5] == 1, body

    async def _wait_dead(self) -> int | None:
        with anyio.move_on_after(_KILL_WAIT, shield=True):
            return await self.proc.wait()
        self.proc.kill()
        return None

    async def kill(self) -> None:
        """Kill the process and reap it (shielded, bounded)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with anyio.move_on_after(_KILL_WAIT, shield=True):
            await self.proc.wait()
        await self._close()

    async def stop(self) -> None:
        """Ask the worker to tear down and exit; kill it if it does not in time."""
        stdin = self.proc.stdin
        assert stdin is not None
        with anyio.move_on_after(_KILL_WAIT, shield=True):
            try:
                await stdin.send(_SHUTDOWN)
                await stdin.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
            await self.proc.wait()
        await self.kill()

    async def _close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        with anyio.CancelScope(shield=True):
            await self.proc.aclose()


class WorkerPool:
    """Up to ``size`` warm worker processes (see the module docstring)."""

    __slots__ = ("_closed", "_env", "_idle", "_slots", "all", "name", "size", "started")

    def __init__(self, size: int, *, name: str = "process") -> None:
        self.size = size
        self.name = name
        self._slots = anyio.Semaphore(size)
        self._idle: list[Worker] = []
        #: Every live worker of the pool, idle or busy.
        self.all: set[Worker] = set()
        #: How many worker processes this pool has started.
        self.started = 0
        self._closed = False
        self._env: dict[str, str] | None = None

    async def acquire(self) -> Worker:
        """Return a live idle worker, starting one if none is idle; wait if all are busy."""
        if self._closed:
            raise RuntimeError(f"the {self.name} worker pool is closed")
        await self._slots.acquire()
        try:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                self.all.discard(worker)
                await worker.kill()  # reaps the dead process
            return await self._start()
        except BaseException:
            self._slots.release()
            raise

    def release(self, worker: Worker) -> None:
        """Give back a worker that answered and may be reused."""
        self._idle.append(worker)
        self._slots.release()

    async def discard(self, worker: Worker) -> None:
        """Kill and forget a worker (timed out, cancelled, crashed or retiring).

        Its replacement is started right away (shielded): the new interpreter starts up
        while the supervisor backs off, so a retry does not wait for all of it.
        """
        self.all.discard(worker)
        try:
            await worker.kill()
            if not self._closed:
                with anyio.CancelScope(shield=True):
                    self._idle.append(await self._start())
        finally:
            self._slots.release()

    async def _start(self) -> Worker:
        if self._env is None:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
            self._env = env
        proc = await anyio.open_process(
            [sys.executable, "-m", "crucible_actors.executors._pool_worker"],
            env=self._env,
            stderr=None,
        )
        worker = Worker(proc)
        self.all.add(worker)
        self.started += 1
        return worker

    async def aclose(self) -> None:
        """Stop every worker: idle ones tear down and exit, busy ones are killed."""
        self._closed = True
        idle, self._idle = self._idle, []
        busy = [w for w in self.all if w not in idle]
        self.all.clear()
        async with anyio.create_task_group() as tg:
            for worker in idle:
                tg.start_soon(worker.stop)
            for worker in busy:
                tg.start_soon(worker.kill)
