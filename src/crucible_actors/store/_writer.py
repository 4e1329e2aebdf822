"""The group-commit writer: one thread per database that commits queued writes in batches.

Callers :meth:`~GroupCommitWriter.submit` a write (rows to group with the same kind of
rows of other writes, and/or a function of a transaction) and wait. The writer's own
thread, started with :meth:`~GroupCommitWriter.running` and the only user of the write
connection, runs each batch of writes handed to it in ONE transaction, commits, and
only then hands the batch back to the event loop, which wakes the callers. A write that
returns to its caller is therefore always committed.

Batching happens on the event loop: while the thread commits one batch, new writes
gather into the next. When a batch comes back with several writes (many runs in
flight), the next one is handed over only after the callers just woken had their turn
to submit again (one ``run_sync_soon`` later), so they share its commit: many
concurrent runs pay one commit (and, when the store syncs, one fsync) per batch rather
than per row. A lone write to an idle thread is handed over at once.

Hand-overs go through a :class:`queue.SimpleQueue` the thread waits on (one list of
writes per batch), and the thread answers with one callback scheduled on the event
loop per batch (``run_sync_soon`` of the loop's :func:`anyio.lowlevel.current_token`:
``TrioToken.run_sync_soon`` or ``loop.call_soon_threadsafe``) that sets the event the
callers wait on. No ``anyio.to_thread`` round trip (worker hand-off, limiter) is paid
per batch, and no thread is spawned or taken from a pool.

``max_batch`` caps the writes per transaction; ``max_batch=1`` turns group commit off
(one transaction, and one commit, per write) while still handing every queued write to
the thread at once.

If a transaction fails, each of its writes is retried alone in its own transaction, so
one bad write (a duplicate run id, say) fails only its own caller. At most
``queue_size`` writes wait at a time: when the database falls behind, callers wait to
enqueue (backpressure). Closing lets the thread commit what was queued, then stops it.
"""

from __future__ import annotations

import abc
import queue
import threading
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from .._core._errors import StoreError, StoreUnavailable
from .._core._metrics import observe_store_commit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from contextlib import AbstractContextManager

__all__ = ["GroupCommitWriter"]

TxT = TypeVar("TxT")


class _Write:
    __slots__ = ("call", "done", "error", "fn", "parts", "result")

    def __init__(
        self, fn: Callable[..., Any] | None, parts: Sequence[tuple[int, Any]], call: bool = False
    ) -> None:
        self.fn = fn
        self.parts = parts
        #: Run ``fn()`` in the writer thread outside any transaction (see ``call``).
        self.call = call
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommitWriter(abc.ABC, Generic[TxT]):
    """Queue writes and commit them in batches from one dedicated thread.

    Subclasses provide :meth:`transaction` (open a transaction, commit on a clean exit,
    roll back on an error) and :meth:`wrap_error` (turn a driver error into a
    :class:`StoreError`); both run in the writer thread. ``handlers[kind](tx, items,
    store)`` writes the grouped rows of one kind for a whole transaction, in ``kind``
    order, before the writes' functions run. Enter :meth:`running` to start the thread;
    leaving it commits what is queued and stops the thread.
    """

    #: Scheduler passes the next batch waits after a batch of several writes came back.
    flush_passes = 2

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
        self.queue_size = max(1, queue_size)
        self.batches = 0
        self.writes = 0
        # Event-loop side only: the writes gathering for the next batch, how many are
        # submitted and not yet handed back, whether the thread has a batch, whether a
        # flush is scheduled (the next batch then waits for it).
        self._next: list[_Write] = []
        self._pending = 0
        self._busy = False
        self._held = False
        self._queue: queue.SimpleQueue[list[_Write] | None] = queue.SimpleQueue()
        self._open = False
        self._thread: threading.Thread | None = None
        # Set by the hand-back of the next batch; replaced (by a caller, on the loop)
        # once set. One event per batch, not per write.
        self._epoch: anyio.Event | None = None
        self._stopped: anyio.Event | None = None
        self._token: Any = None

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[TxT]:
        """Open a transaction (runs in the writer thread)."""

    @abc.abstractmethod
    def wrap_error(self, exc: Exception) -> StoreError:
        """Return the StoreError that reports driver error ``exc``."""

    def _current_epoch(self) -> anyio.Event:
        epoch = self._epoch
        if epoch is None or epoch.is_set():
            epoch = self._epoch = anyio.Event()
        return epoch

    async def submit(
        self, fn: Callable[[TxT], Any] | None = None, *, parts: Sequence[tuple[int, Any]] = ()
    ) -> Any:
        """Queue a write and return ``fn(tx)`` (or None) once its transaction committed.

        ``parts`` are ``(kind, row)`` pairs written by ``handlers[kind]`` together with
        the rows of that kind of the other writes in the transaction; ``fn`` runs after
        them, in the same transaction. A caller cancelled while it waits does not undo
        the write: it may still commit.

        Raises:
            StoreError: the write (or its commit) failed, or the store is closed.
        """
        return await self._enqueue(_Write(fn, parts))

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Return ``fn()`` run in the writer thread between two transactions.

        For a database with one connection only (in-memory SQLite): its reads take turns
        with the writes on the thread that owns the connection.
        """
        return await self._enqueue(_Write(fn, (), call=True))

    async def _enqueue(self, write: _Write) -> Any:
        while self._open and self._pending >= self.queue_size:
            await self._current_epoch().wait()  # backpressure: a batch hands back room
        if not self._open:
            await anyio.lowlevel.checkpoint()
            raise StoreUnavailable("the store is closed", store=self.store)
        self._pending += 1
        self._next.append(write)
        if not (self._busy or self._held):
            self._dispatch()
        while not write.done:
            # A write left over by a full drain waits for the following batch.
            await self._current_epoch().wait()
        if write.error is not None:
            raise write.error
        return write.result

    def close(self) -> None:
        """Stop accepting writes; the thread commits those queued, then stops."""
        if self._open:
            self._open = False
            if self._next:
                self._dispatch()  # the thread takes batches in order
            self._queue.put(None)

    @asynccontextmanager
    async def running(self, name: str) -> AsyncIterator[None]:
        """Run the writer thread (called ``name``) while the body runs, then stop it.

        On exit, cancelled or not, the writes already queued are committed and their
        callers answered before this returns (the wait is shielded: a batch cannot be
        interrupted halfway), so the connection may be closed afterwards.
        """
        self._token = anyio.lowlevel.current_token()
        self._stopped = anyio.Event()
        self._open = True
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self.close()
            with anyio.CancelScope(shield=True):
                await self._stopped.wait()

    # -- the event loop side of the hand-overs --------------------------------------

    def _dispatch(self) -> None:
        batch, self._next = self._next, []
        self._busy = True
        self._queue.put(batch)

    def _handed_back(self, batch: list[_Write]) -> None:
        """Mark ``batch`` done and wake its callers (runs on the event loop)."""
        for write in batch:
            write.done = True
        self._pending -= len(batch)
        self._busy = False
        if self._epoch is not None:
            self._epoch.set()
        if (self._next or len(batch) > 1) and not self._held:
            # Several runs are writing: let the callers just woken submit their next
            # writes (they run before a callback scheduled now) so they share a batch.
            self._held = True
            self._hand_back(self._flush)

    def _flush(self, passes: int = 1) -> None:
        if passes < self.flush_passes:
            self._hand_back(self._flush, passes + 1)
            return
        self._held = False
        if self._next and not self._busy:
            self._dispatch()

    def _hand_back(self, fn: Callable[..., object], *args: Any) -> None:
        token = self._token
        try:
            token.backend_class.run_sync_soon(fn, args, token.native_token)
        except Exception:  # pragma: no cover - the loop is gone; nobody waits any more
            return

    # -- the writer thread ------------------------------------------------------------

    def _serve(self) -> None:
        """Run each batch handed over and hand it back, until the closing sentinel."""
        get = self._queue.get
        try:
            while True:
                batch = get()
                if batch is None:
                    break
                try:
                    self._execute(batch)
                except BaseException as exc:  # a bug: still answer every caller
                    for write in batch:
                        if write.error is None:
                            write.error = StoreError(
                                f"the store writer failed: {type(exc).__name__}: {exc}",
                                store=self.store,
                            )
                    if not isinstance(exc, Exception):
                        raise
                finally:
                    self._hand_back(self._handed_back, batch)
        finally:
            self._hand_back(self._thread_stopped)

    def _thread_stopped(self) -> None:
        """Refuse new writes, fail any the thread will never take, report the stop.

        Runs on the event loop once the thread has ended: normally after the closing
        sentinel (nothing is left then), but also if the thread died of an error.
        """
        self._open = False
        left = self._next
        self._next = []
        while True:
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                break
            if batch is not None:
                left.extend(batch)
        for write in left:
            write.error = StoreUnavailable(
                "the store writer stopped before the write ran", store=self.store
            )
        self._handed_back(left)
        assert self._stopped is not None
        self._stopped.set()

    def _execute(self, writes: list[_Write]) -> None:
        """Run ``writes`` in transactions of at most ``max_batch`` writes each."""
        step = self.max_batch
        calls = [write for write in writes if write.call]
        if calls:
            writes = [write for write in writes if not write.call]
        for start in range(0, len(writes), step):
            self._commit(writes[start : start + step])
        for write in calls:
            assert write.fn is not None
            try:
                write.result = write.fn()
            except Exception as exc:
                write.error = self._error(exc)

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
