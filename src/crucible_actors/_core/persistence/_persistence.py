"""Persistence of runs: a Store, this process's owner identity, and how they are opened.

:func:`open_persistence` wraps a :class:`~crucible_actors._core.persistence._store.Store` (or opens
one from a URL through a *store opener*) into a :class:`Persistence`, which
:func:`open_runtime` uses in three ways:

- ``observer()`` gives each run a store observer (``_observer.py``) that writes the run's
  life to the store, one commit per stage boundary; every write is acknowledged only once
  durable, so a crash loses at most the stage that was executing.
- ``recover(runtime, on_start)`` (``_recovery.py``) resumes, marks interrupted or leaves
  the runs left ``running`` by a dead process.
- While open it registers an owner row and heartbeats it (``_owner.py``); the heartbeat
  stops, and the row is removed, when the persistence closes. On a store that holds
  leases (PostgreSQL) it first takes this owner's lease, held until it closes.
- ``adopt_forever(runtime, interval)`` (``_recovery.py``) keeps adopting the runs of
  owners that die while the runtime is up.

Opening a store from a URL is an adapter's job (:mod:`crucible_actors.store`), not the
core's: the caller passes ``opener=`` (a callable from URL to an async context manager
yielding a Store), or the process-wide default set with :func:`set_store_opener`
(:mod:`crucible_actors` installs one that imports :mod:`crucible_actors.store` lazily).

A store error raised by a hook fails the run without retrying the stage: the run
supervisor treats observer errors as run failures, outside the stage's restart loop.
Only ``run_finished`` handles store errors itself, since by then the run's outcome is
decided: it retries an unavailable store until the outcome lands, stores an outcome the
store refuses as ``failed``, and otherwise reports it on the handle (``_observer.py``).
"""

from __future__ import annotations

import logging
import os
import socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from .._encoding import to_json_safe
from .._errors import StoreError, StoreUnavailable
from .._memo import IdentityMemo
from ._observer import StoreObserver
from ._owner import heartbeat, new_owner, owner_is_dead, utcnow
from ._owner import pid_alive as pid_alive_default
from ._records import artifacts_from_context, decode_checkpoint, events_from_context
from ._recovery import Recovery, RecoveryReport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager
    from datetime import datetime
    from typing import TypeAlias

    from .._handle import RunHandle
    from .._instruments import RunObserver
    from .._ir import Experiment
    from .._provenance import ProvenanceRecorder
    from .._runtime import Runtime, StartMode
    from ._store import Store

    #: Opens the store a URL names, as an async context manager yielding it.
    StoreOpener: TypeAlias = Callable[[str], AbstractAsyncContextManager[Store]]

__all__ = [
    "Persistence",
    "RecoveryReport",
    "artifacts_from_context",
    "decode_checkpoint",
    "events_from_context",
    "open_persistence",
    "owner_is_dead",
    "set_store_opener",
]

log = logging.getLogger("crucible_actors")

_default_opener: StoreOpener | None = None


def set_store_opener(opener: StoreOpener | None) -> None:
    """Set the process-wide opener :func:`open_persistence` uses for store URLs."""
    global _default_opener
    _default_opener = opener


class Persistence:
    """A store plus this process's owner identity; obtain one with :func:`open_persistence`.

    Its ``recovery`` resumes or marks the runs dead processes left; :meth:`recover`,
    :meth:`resume_run` and :meth:`adopt_forever` are its entry points.
    """

    def __init__(
        self,
        store: Store,
        *,
        now: Callable[[], datetime],
        heartbeat_interval: float,
        stale_after: float,
        host: str,
        pid: int,
        pid_alive: Callable[[int], bool],
        lease: str | None = None,
        max_resumes: int | None = 3,
    ) -> None:
        self.store = store
        #: Resumes a run gets before it is failed with ``ResumeLimitExceeded`` (None for
        #: no limit).
        self.max_resumes = max_resumes
        self.now = now
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self.pid_alive = pid_alive
        self.owner = new_owner(host, pid, now(), lease)
        #: Runs another runtime took over from this one, run id to new owner id. They
        #: stop here and their observers write nothing more.
        self.lost: dict[str, str | None] = {}
        #: Recovery and resume of the runs dead processes left, on this store.
        self.recovery = Recovery(self)
        self._definitions: IdentityMemo[Experiment, tuple[dict[str, Any], list[Any], Any]] = (
            IdentityMemo()
        )
        #: Records each new run's provenance; set by ``open_runtime`` (None: not recorded).
        self.provenance: ProvenanceRecorder | None = None

    def observer(self) -> RunObserver:
        """Return a fresh observer for one run."""
        return StoreObserver(self)

    # -- recovery -----------------------------------------------------------------

    @property
    def last_recovery(self) -> RecoveryReport:
        """What the last :meth:`recover` did."""
        return self.recovery.last_recovery

    async def recover(self, runtime: Runtime, on_start: StartMode) -> RecoveryReport:
        """Handle runs left ``running`` by dead processes, per ``on_start``.

        ``"resume"`` claims each orphan and resumes it from its last checkpoint (then
        does the same for the runs a runtime interrupted when it shut down);
        ``"mark_interrupted"`` marks orphans interrupted; ``"ignore"`` does nothing.
        Runs of live owners are never touched, and a run whose recovery fails is listed
        in the report's ``failed`` while the others go on.
        """
        return await self.recovery.recover(runtime, on_start)

    async def resume_run(self, runtime: Runtime, run_id: str) -> RunHandle:
        """Resume run ``run_id`` from its last checkpoint and return its handle.

        Raises:
            RunNotFound: no such run.
            StoreError: the run completed, is running in a live process, or another
                process claimed it first.
            CheckpointDecodeError: its checkpoint no longer decodes (the run is then
                marked interrupted with that reason).
        """
        return await self.recovery.resume_run(runtime, run_id)

    async def adopt_forever(self, runtime: Runtime, interval: float) -> None:
        """Adopt the runs of owners that die, every ``interval`` seconds; never returns.

        Each tick checks this runtime's own lease, then resumes the runs of owners found
        dead (by their lease) and the runs a shutting-down runtime left ``interrupted``.
        Store errors are logged and the next tick tries again.
        """
        await self.recovery.adopt_forever(runtime, interval)

    def _experiment_fields(self, exp: Experiment) -> tuple[dict[str, Any], list[Any], Any]:
        """The experiment record's definition, tags and metadata, made once per object.

        Runs of one experiment then reuse them instead of sanitizing the same values
        again for every run.
        """
        return self._definitions.get(
            exp,
            lambda e: (
                to_json_safe(e, finite=True),
                list(e.tags),
                to_json_safe(e.metadata, finite=True),
            ),
        )

    async def _heartbeat(self) -> None:
        await heartbeat(self.store, self.owner, self.heartbeat_interval, self.now)


def _coerce_store(store: Any) -> tuple[Any, bool]:
    """Return (store or URL, whether it is a URL to open)."""
    if isinstance(store, str):
        return store, True
    if isinstance(store, os.PathLike):
        return "sqlite:///" + os.fspath(store), True
    return store, False


@asynccontextmanager
async def open_persistence(
    store: Any,
    *,
    now: Callable[[], datetime] | None = None,
    heartbeat_interval: float = 10.0,
    stale_after: float = 60.0,
    host: str | None = None,
    pid: int | None = None,
    pid_alive: Callable[[int], bool] | None = None,
    opener: StoreOpener | None = None,
    max_resumes: int | None = 3,
) -> AsyncIterator[Persistence]:
    """Open persistence on ``store`` (a Store, a store URL, a path, or a Persistence).

    A URL is opened with ``opener`` (default: the process-wide opener, which is
    :func:`crucible_actors.store.open_store` once :mod:`crucible_actors` is imported) and
    closed on exit; a Store object stays open (the caller owns it); a
    :class:`Persistence` is yielded as is, so a caller can share one (and its clock) with
    :func:`~crucible_actors.open_runtime`. ``now``
    gives the wall-clock time stored in records and compared with heartbeats.
    ``max_resumes`` is how many times a run is resumed (the store counts them in the
    run's row) before the next resume fails it with
    :class:`~crucible_actors.errors.ResumeLimitExceeded`
    instead: a run that takes its process down every time is not resumed forever.

    Raises:
        StoreError: the store cannot be opened or the owner row cannot be written.
    """
    if isinstance(store, Persistence):
        yield store
        return
    target, is_url = _coerce_store(store)
    if is_url:
        open_url = opener if opener is not None else _default_opener
        if open_url is None:
            raise StoreUnavailable(
                "no store opener is set to open this URL; pass open_persistence(opener=...) "
                "or import crucible_actors, which sets crucible_actors.store.open_store",
                store=str(target),
            )
        async with (
            open_url(target) as opened,
            open_persistence(
                opened,
                now=now,
                heartbeat_interval=heartbeat_interval,
                stale_after=stale_after,
                host=host,
                pid=pid,
                pid_alive=pid_alive,
                max_resumes=max_resumes,
            ) as persistence,
        ):
            yield persistence
        return
    persistence = Persistence(
        target,
        now=now or utcnow,
        heartbeat_interval=heartbeat_interval,
        stale_after=stale_after,
        host=host if host is not None else socket.gethostname(),
        pid=pid if pid is not None else os.getpid(),
        pid_alive=pid_alive or pid_alive_default,
        lease=getattr(target, "lease_kind", None),
        max_resumes=max_resumes,
    )
    leased = await _acquire_lease(persistence)
    body_error: Exception | None = None
    try:
        await target.register_owner(persistence.owner)
        async with anyio.create_task_group() as tg:
            tg.start_soon(persistence._heartbeat, name="crucible heartbeat")
            try:
                yield persistence
            except Exception as exc:
                body_error = exc  # re-raised as is, not wrapped in an ExceptionGroup
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await target.remove_owner(persistence.owner.id)
            except StoreError as exc:
                log.warning("could not remove owner %s: %s", persistence.owner.id, exc)
            if leased:
                try:
                    await target.release_lease(persistence.owner.id)
                except StoreError as exc:
                    log.warning(
                        "could not release the lease of owner %s: %s", persistence.owner.id, exc
                    )
    if body_error is not None:
        raise body_error


async def _acquire_lease(persistence: Persistence) -> bool:
    """Take the owner's lease on a store that holds leases; False if it has none.

    An owner id whose lease another live session holds (two ids whose lock keys
    collide) is replaced by a fresh one.

    Raises:
        StoreError: no lease could be taken.
    """
    acquire = getattr(persistence.store, "acquire_lease", None)
    if acquire is None:
        return False
    owner = persistence.owner
    for _ in range(16):
        if await acquire(persistence.owner.id):
            return True
        persistence.owner = new_owner(owner.host, owner.pid, owner.started_at, owner.lease)
    raise StoreError(
        "could not take an owner lease: every owner id tried is held by another session",
        store=persistence.store.name,
    )
