"""Owners: which process is executing which runs, and when one is dead.

While persistence is open (``_persist.py``) it registers an *owner* row (id, host, pid)
and :func:`heartbeat` refreshes it every ``heartbeat_interval`` seconds. An owner is dead
(:func:`owner_is_dead`) when its heartbeat is older than ``stale_after`` seconds, or, for
a store local to one host, when its process is gone on this host; recovery
(``_recovery.py``) then claims its runs.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import msgspec

from ._errors import StoreError
from ._store import OwnerRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._store import Store

__all__ = ["heartbeat", "new_owner", "owner_is_dead", "pid_alive", "utcnow"]

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


def owner_is_dead(
    owner: OwnerRecord | None,
    *,
    now: datetime,
    stale_after: float,
    host: str,
    local: bool,
    pid_alive: Callable[[int], bool] = pid_alive,
) -> bool:
    """Return whether the runs of ``owner`` are orphans (pure apart from ``pid_alive``).

    An owner is dead when its row is missing, its heartbeat is more than ``stale_after``
    seconds old, or (``local`` stores only) it ran on ``host`` and its process is gone.
    Process ids are only compared on one host, and only for local stores: hosts sharing
    a PostgreSQL store may reuse each other's host names inside containers.
    """
    if owner is None:
        return True
    if (now - owner.heartbeat_at).total_seconds() > stale_after:
        return True
    return local and owner.host == host and not pid_alive(owner.pid)


def new_owner(host: str, pid: int, now: datetime) -> OwnerRecord:
    """Return a fresh owner record for process ``pid`` on ``host``, started at ``now``."""
    return OwnerRecord(id=uuid.uuid4().hex, host=host, pid=pid, started_at=now, heartbeat_at=now)


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
