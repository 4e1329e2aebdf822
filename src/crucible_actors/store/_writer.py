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

Store faults are ridden out (``docs/design/0007-store-faults-ridden-out.md``): a transaction
that fails with a *transient* fault (:meth:`~GroupCommitWriter.fault_kind`: a lost or
unreachable server, a locked database, a full disk) fails its whole batch at once, without
the write-by-write retry (which would only wait out the fault once per write), and each
caller waits with backoff on the event loop and queues its write again, until it commits or
``retry_for`` seconds have passed since its first failure; then it raises the last
:class:`StoreUnavailable`. Every write is idempotent when repeated (upserts, fenced
updates), and a write whose first commit may have gone through unacknowledged (the
connection died during ``COMMIT``) gives an ``again`` function for its retries that accepts
its own earlier row. A write may decline a fault (``retry_on``): a new run is refused at
once on a full disk, while the runs already accepted keep their writes waiting for space.
Before the first transaction after a fault the thread calls
:meth:`~GroupCommitWriter.recover` (SQLite truncates its write-ahead log there).
"""

from __future__ import annotations

import abc
import logging
import queue
import threading
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from .._core import StoreError, StoreUnavailable, observe_store_commit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from contextlib import AbstractContextManager

__all__ = ["FAULTS", "FAULT_CONNECTION", "FAULT_FULL", "RETRY_FOR", "GroupCommitWriter"]

TxT = TypeVar("TxT")

log = logging.getLogger("crucible_actors.store")

#: A transient fault: the server is unreachable or dropped the connection, or the
#: database is locked by another process for longer than its busy timeout.
FAULT_CONNECTION = "connection"
#: A transient fault: the disk (or the server's disk) is full.
FAULT_FULL = "full"
#: Every transient fault: what a write retries on unless it declines some.
FAULTS = frozenset({FAULT_CONNECTION, FAULT_FULL})
#: Seconds a write retries a transient fault by default: a minute, so that a PostgreSQL
#: restart or a 30 s outage is ridden out with room to spare, while a store that stays
#: down still fails the runs within a bounded time.
RETRY_FOR = 60.0


class _Write:
    __slots__ = ("again", "call", "done", "error", "fault", "fn", "parts", "result", "retry_on")

    def __init__(
        self,
        fn: Callable[..., Any] | None,
        parts: Sequence[tuple[int, Any]],
        call: bool = False,
        *,
        retry_on: frozenset[str] = FAULTS,
        again: Callable[..., Any] | None = None,
    ) -> None:
        self.fn = fn
        self.parts = parts
        #: Run ``fn()`` in the writer thread outside any transaction (see ``call``).
        self.call = call
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        #: The transient fault the write failed with (see ``fault_kind``), if any.
        self.fault: str | None = None
        self.retry_on = retry_on
        #: Replaces ``fn`` and ``parts`` on a retry (see the module docstring).
        self.again = again

    def reset_for_retry(self) -> None:
        self.done = False
        self.result = None
        self.error = None
        self.fault = None
        if self.again is not None:
            self.fn, self.parts = self.again, ()


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
        retry_for: float = RETRY_FOR,
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
        #: Seconds a write keeps retrying a transient fault before it gives up.
        self.retry_for = max(0.0, retry_for)
        #: Backoff between retries: the first delay, doubled up to the last.
        self.retry_delays = (0.05, 1.0)
        #: How many times writes were queued again after a transient fault.
        self.retries = 0
        # Writer-thread side: the fault the last transaction failed with, for
        # ``recover``; and when the current run of faults began (for the log).
        self._fault: str | None = None
        self._faulted_at: float | None = None
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

    def fault_kind(self, exc: Exception) -> str | None:
        """Return the transient fault (one of :data:`FAULTS`) ``exc`` reports, or None.

        Runs in the writer thread. None (the default) means the error is the write's own
        (a constraint, a fenced update, a bug): it fails at once.
        """
        return None

    def recover(self, fault: str) -> None:
        """Prepare the database for the next transaction after a ``fault`` (writer thread).

        Errors are ignored: the transaction that follows reports the fault if it lasts.
        """

    def _current_epoch(self) -> anyio.Event:
        epoch = self._epoch
        if epoch is None or epoch.is_set():
            epoch = self._epoch = anyio.Event()
        return epoch

    async def submit(
        self,
        fn: Callable[[TxT], Any] | None = None,
        *,
        parts: Sequence[tuple[int, Any]] = (),
        retry_on: frozenset[str] = FAULTS,
        again: Callable[[TxT], Any] | None = None,
    ) -> Any:
        """Queue a write and return ``fn(tx)`` (or None) once its transaction committed.

        ``parts`` are ``(kind, row)`` pairs written by ``handlers[kind]`` together with
        the rows of that kind of the other writes in the transaction; ``fn`` runs after
        them, in the same transaction. A caller cancelled while it waits does not undo
        the write: it may still commit.

        A transient fault in ``retry_on`` is retried with backoff for up to
        ``retry_for`` seconds; ``again(tx)``, if given, replaces ``fn`` and ``parts`` on
        those retries (it must accept the write's own row left by an earlier attempt
        whose commit was not acknowledged).

        Raises:
            StoreUnavailable: a transient fault outside ``retry_on``, or one that lasted
                over ``retry_for`` seconds.
            StoreError: the write (or its commit) failed, or the store is closed.
        """
        return await self._enqueue(_Write(fn, parts, retry_on=retry_on, again=again))

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Return ``fn()`` run in the writer thread between two transactions.

        For a database with one connection only (in-memory SQLite): its reads take turns
        with the writes on the thread that owns the connection.
        """
        return await self._enqueue(_Write(fn, (), call=True))

    async def _enqueue(self, write: _Write) -> Any:
        # One loop in one coroutine: the retry path costs the fast path nothing.
        deadline: float | None = None
        delay, longest = self.retry_delays
        while True:
            while self._open and self._pending >= self.queue_size:
                await self._current_epoch().wait()  # backpressure: a batch hands back room
            if not self._open:
                await anyio.lowlevel.checkpoint()
                if write.error is not None:  # closed while the write waited to retry
                    raise write.error
                raise StoreUnavailable("the store is closed", store=self.store)
            if deadline is not None:  # a retry
                write.reset_for_retry()
            self._pending += 1
            self._next.append(write)
            if not (self._busy or self._held):
                self._dispatch()
            while not write.done:
                # A write left over by a full drain waits for the following batch.
                await self._current_epoch().wait()
            error = write.error
            if error is None:
                return write.result
            fault = write.fault
            if fault is None or fault not in write.retry_on or not self._open:
                raise error
            now = anyio.current_time()
            if deadline is None:
                deadline = now + self.retry_for
            if now >= deadline:
                given_up = StoreUnavailable(
                    f"{self._message(error)} (retried for {self.retry_for:g} s)", store=self.store
                )
                raise given_up from error
            await anyio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, longest)
            self.retries += 1

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
        if self._fault is not None:
            fault, self._fault = self._fault, None
            try:
                self.recover(fault)
            except Exception:  # the next transaction reports the fault if it lasts
                log.debug("store %s: recovering from %s failed", self.store, fault, exc_info=True)
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
        except Exception as exc:
            fault = self.fault_kind(exc)
            if fault is not None:
                # The database, not a write, failed: every write of the batch waits and
                # retries on the event loop; trying them one by one here would only
                # wait out the fault once per write.
                self._faulted(fault, exc)
                error = self._error(exc)
                for write in batch:
                    write.error, write.fault, write.result = error, fault, None
                return
            if len(batch) == 1:
                batch[0].error = self._error(exc)
                return
        else:
            if self._faulted_at is not None:
                log.warning(
                    "store %s: writes succeed again after %.1f s",
                    self.store,
                    time.monotonic() - self._faulted_at,
                )
                self._faulted_at = None
            return
        for write in batch:
            write.result = None
            try:
                with self.transaction() as tx:
                    self._apply(tx, [write])
            except Exception as exc:
                write.error, write.fault = self._error(exc), self.fault_kind(exc)
                if write.fault is not None:
                    self._faulted(write.fault, exc)

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

    def _faulted(self, fault: str, exc: Exception) -> None:
        """Remember ``fault`` for :meth:`recover`; log the first of a run of faults."""
        self._fault = fault
        if self._faulted_at is None:
            # Writer-thread bookkeeping for the log only; retry timing is on the loop.
            self._faulted_at = time.monotonic()
            log.warning(
                "store %s: %s; retrying writes for up to %g s",
                self.store,
                self._message(self._error(exc)),
                self.retry_for,
            )

    def _message(self, error: BaseException | None) -> str:
        """Return ``error``'s first line, without the ``store URL:`` prefix."""
        text = str(error).strip().removeprefix(f"store {self.store}: ")
        return text.splitlines()[0] if text else type(error).__name__
