"""Owners: which process is executing which runs, and when one is dead.

While persistence is open (``_persist.py``) it registers an *owner* row (id, host, pid,
lease) and :func:`heartbeat` refreshes it every ``heartbeat_interval`` seconds. Whether
an owner is dead (:func:`owner_is_dead`) is decided by its *lease*, never by clocks
first, so a wall-clock step or an event loop blocked for minutes does not make a live
process look dead:

- a store that holds leases (PostgreSQL: a session-level advisory lock per owner, which
  the server releases when the session ends) says whether the lease is held;
- on a store local to one host (SQLite, memory), an owner on this host is alive while
  its pid is alive *and* is still the same process (its start time, recorded in the
  owner row as ``pid:<boot id>:<start time>``, so a recycled pid does not pass);
- only an owner no lease speaks for (another host sharing a local store, or a row from
  an older version) is judged by its heartbeat: dead once it is ``stale_after`` old.

Recovery (``_recovery.py``) then claims the runs of dead owners.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

import anyio
import msgspec

from .._errors import StoreError
from ._store import OwnerRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._store import Store

__all__ = [
    "PID_LEASE",
    "heartbeat",
    "new_owner",
    "owner_is_dead",
    "pid_alive",
    "process_start",
    "utcnow",
]

#: Prefix of :attr:`OwnerRecord.lease` for an owner judged by its pid and start time.
PID_LEASE = "pid:"

log = logging.getLogger("crucible_actors")


def utcnow() -> datetime:
    return datetime.now(UTC)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: the pid exists but belongs to another user
        return True
    return True


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """Return ``"<boot id>:<start time>"`` of process ``pid``, or None if unknown.

    The start time is field 22 of ``/proc/PID/stat`` (clock ticks since boot): with the
    boot id it names one process for good, where a pid is reused. None where there is
    no ``/proc`` (then the pid and the heartbeat decide) or the process is gone.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 20:
        return None
    return f"{_boot_id()}:{fields[19].decode()}"


def owner_is_dead(
    owner: OwnerRecord | None,
    *,
    now: datetime,
    stale_after: float,
    host: str,
    local: bool,
    pid_alive: Callable[[int], bool] = pid_alive,
    lease_held: bool | None = None,
    start_of: Callable[[int], str | None] = process_start,
) -> bool:
    """Return whether the runs of ``owner`` are orphans (pure apart from the callables).

    In order: a lease the store reports held (``lease_held``) means alive, whatever the
    clocks say; one it reports not held means dead, for an owner registered with a store
    lease (or whose row is gone). A missing row means dead. For ``local`` stores, an
    owner on ``host`` is dead when its pid is gone or now names another process (its
    start time differs from the one in ``owner.lease``), and alive otherwise. Only then,
    for an owner no lease speaks for (another host, an older row), a heartbeat more than
    ``stale_after`` seconds old means dead. Process ids are only compared on one host,
    and only for local stores: hosts sharing a PostgreSQL store may reuse each other's
    host names inside containers.
    """
    if lease_held:
        return False
    if owner is None:
        return True
    lease = owner.lease
    if lease_held is False and lease is not None and not lease.startswith(PID_LEASE):
        return True
    if local and owner.host == host:
        if not pid_alive(owner.pid):
            return True
        if lease is not None and lease.startswith(PID_LEASE):
            current = start_of(owner.pid)
            if current is not None:
                return current != lease[len(PID_LEASE) :]
        # No start time to compare: the pid alone may have been reused, so the
        # heartbeat decides below.
    return (now - owner.heartbeat_at).total_seconds() > stale_after


def new_owner(host: str, pid: int, now: datetime, lease: str | None = None) -> OwnerRecord:
    """Return a fresh owner record for process ``pid`` on ``host``, started at ``now``.

    ``lease`` is :attr:`OwnerRecord.lease`; None records ``pid:<start time>`` of ``pid``
    when its start time is known.
    """
    if lease is None:
        start = process_start(pid)
        lease = None if start is None else PID_LEASE + start
    return OwnerRecord(
        id=uuid.uuid4().hex, host=host, pid=pid, started_at=now, heartbeat_at=now, lease=lease
    )


async def heartbeat(
    store: Store, owner: OwnerRecord, interval: float, now: Callable[[], datetime]
) -> None:
    """Refresh ``owner``'s heartbeat every ``interval`` seconds, forever.

    An owner row another process removed (judging this one dead) is registered again,
    so runs started from then on are not orphaned at once. Store errors are logged.
    """
    while True:
        await anyio.sleep(interval)
        try:
            if not await store.heartbeat(owner.id, now()):
                await store.register_owner(msgspec.structs.replace(owner, heartbeat_at=now()))
        except StoreError as exc:
            log.warning("heartbeat of owner %s failed: %s", owner.id, exc)
