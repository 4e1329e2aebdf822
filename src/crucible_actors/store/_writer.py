"""The group-commit writer: one task per database that commits queued writes in batches.

Callers :meth:`~GroupCommitWriter.submit` a write (rows to group with the same kind of
rows of other writes, and/or a function of a transaction) and wait. The writer task takes
every write queued so far, runs them in ONE transaction in a worker thread
(``anyio.to_thread`` with a ``CapacityLimiter(1)``, so the database connection is only
ever used by one thread at a time), commits, and only then wakes the callers. Under
load, the writes that queue up while one batch commits share the next commit, so many
concurrent runs pay one commit (and one fsync) per batch rather than per row, while a
write that returns to its caller is always committed.

``max_batch`` caps the writes per transaction; ``max_batch=1`` turns group commit off
(one transaction, and one commit, per write) while still taking every queued write in
one trip to the worker thread.

If a transaction fails, each of its writes is retried alone in its own transaction, so
one bad write (a duplicate run id, say) fails only its own caller. The queue is a
bounded memory stream: when the database falls behind, callers wait to enqueue
(backpressure).
"""

from __future__ import annotations

import abc
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._core._errors import StoreError, StoreUnavailable
from ..metrics import observe_store_commit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from contextlib import AbstractContextManager

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["GroupCommitWriter"]

TxT = TypeVar("TxT")


class _Write:
    __slots__ = ("done", "error", "fn", "parts", "result")

    def __init__(self, fn: Callable[[Any], Any] | None, parts: Sequence[tuple[int, Any]]) -> None:
        self.fn = fn
        self.parts = parts
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommitWriter(abc.ABC, Generic[TxT]):
    """Queue writes and commit them in batches from one worker thread at a time.

    Subclasses provide :meth:`transaction` (open a transaction, commit on a clean exit,
    roll back on an error) and :meth:`wrap_error` (turn a driver error into a
    :class:`StoreError`). ``handlers[kind](tx, items, store)`` writes the grouped rows of
    one kind for a whole transaction, in ``kind`` order, before the writes' functions
    run. Start :meth:`run` in a task group and call :meth:`close` to let it drain the
    queue and stop.
    """

    #: The most writes taken per trip to the worker thread.
    max_drain = 1024

    def __init__(
        self,
        *,
        store: str,
        handlers: Sequence[Callable[[TxT, list[Any], str], None]] = (),
        max_batch: int = 512,
        queue_size: int = 1024,
    ) -> None:
        self.store = store
        #: Converts record values to this database's parameters (``ts_in``/``json_in``);
        #: used on the event loop to build the rows of grouped parts. Set by subclasses.
        self.conv: Any = None
        self.handlers = tuple(handlers)
        self.max_batch = max(1, max_batch)
        self.limiter = anyio.CapacityLimiter(1)
        self._send: MemoryObjectSendStream[_Write]
        self._recv: MemoryObjectReceiveStream[_Write]
        self._send, self._recv = anyio.create_memory_object_stream[_Write](queue_size)
        self.batches = 0
        self.writes = 0
        # Set when the batch being taken now has run: one event per batch, not per write.
        self._epoch = anyio.Event()

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[TxT]:
        """Open a transaction (runs in the worker thread)."""

    @abc.abstractmethod
    def wrap_error(self, exc: Exception) -> StoreError:
        """Return the StoreError that reports driver error ``exc``."""

    async def submit(
        self, fn: Callable[[TxT], Any] | None = None, *, parts: Sequence[tuple[int, Any]] = ()
    ) -> Any:
        """Queue a write and return ``fn(tx)`` (or None) once its transaction committed.

        ``parts`` are ``(kind, row)`` pairs written by ``handlers[kind]`` together with
        the rows of that kind of the other writes in the transaction; ``fn`` runs after
        them, in the same transaction.

        Raises:
            StoreError: the write (or its commit) failed, or the store is closed.
        """
        write = _Write(fn, parts)
        try:
            try:
                self._send.send_nowait(write)  # waiting for the commit is the checkpoint
            except anyio.WouldBlock:
                await self._send.send(write)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise StoreUnavailable("the store is closed", store=self.store) from exc
        while not write.done:
            # A write left over by a full drain waits for the following batch.
            await self._epoch.wait()
        if write.error is not None:
            raise write.error
        return write.result

    def close(self) -> None:
        """Stop accepting writes; :meth:`run` returns after committing those queued."""
        self._send.close()

    @asynccontextmanager
    async def running(self, name: str) -> AsyncIterator[None]:
        """Run the writer task (called ``name``) while the body runs, then close it.

        Errors raised by the body come out as they are, not wrapped in an
        ExceptionGroup by the writer's task group.
        """
        body_error: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.run, name=name)
            try:
                yield
            except Exception as exc:
                body_error = exc
            finally:
                self.close()
        if body_error is not None:
            raise body_error

    async def run(self) -> None:
        """Commit queued writes until :meth:`close`; fail what is left if cancelled."""
        batch: list[_Write] = []
        epoch = self._epoch
        try:
            async for first in self._recv:
                batch = [first]
                while len(batch) < self.max_drain:
                    try:
                        batch.append(self._recv.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                epoch, self._epoch = self._epoch, anyio.Event()
                try:
                    await anyio.to_thread.run_sync(self._execute, batch, limiter=self.limiter)
                finally:
                    for write in batch:
                        write.done = True
                    epoch.set()
                batch = []
                # Let the callers just woken run before draining again: most submit their
                # next write straight away, and it joins this next batch rather than the
                # one after (two passes: the first may run before some of them).
                await anyio.lowlevel.cancel_shielded_checkpoint()
                await anyio.lowlevel.cancel_shielded_checkpoint()
        finally:
            # Cancelled (or crashed): no caller may wait forever for a write that will
            # never run. No await between here and closing the stream, so no write can
            # slip in unseen.
            self._send.close()
            while True:
                try:
                    batch.append(self._recv.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            self._recv.close()
            for write in batch:
                if not write.done:
                    write.error = StoreUnavailable(
                        "the store closed before the write ran", store=self.store
                    )
                    write.done = True
            epoch.set()
            self._epoch.set()

    def _execute(self, writes: list[_Write]) -> None:
        """Run ``writes`` in transactions of at most ``max_batch`` writes each."""
        step = self.max_batch
        for start in range(0, len(writes), step):
            self._commit(writes[start : start + step])

    def _commit(self, batch: list[_Write]) -> None:
        """Run ``batch`` in one transaction; on failure retry each write alone."""
        self.batches += 1
        self.writes += len(batch)
        try:
            with observe_store_commit(self.store), self.transaction() as tx:
                self._apply(tx, batch)
            return
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = self._error(exc)
                return
        for write in batch:
            write.result = None
            try:
                with self.transaction() as tx:
                    self._apply(tx, [write])
            except Exception as exc:
                write.error = self._error(exc)

    def _apply(self, tx: TxT, batch: list[_Write]) -> None:
        groups: list[list[Any]] = [[] for _ in self.handlers]
        for write in batch:
            for kind, item in write.parts:
                groups[kind].append(item)
        for handler, items in zip(self.handlers, groups, strict=True):
            if items:
                handler(tx, items, self.store)
        for write in batch:
            if write.fn is not None:
                write.result = write.fn(tx)

    def _error(self, exc: Exception) -> StoreError:
        return exc if isinstance(exc, StoreError) else self.wrap_error(exc)
