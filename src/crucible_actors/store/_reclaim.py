"""Deleting runs and collecting garbage: the SQL of both dialects and the blob sweep.

:meth:`~crucible_actors.abc.Store.delete_runs` removes runs with every row that
names them (``stage_attempts``, ``checkpoints``, ``artifacts``, ``trace_events``,
``sweep_points``, and a sweep once none of its points is left) in ONE transaction, after
checking, in that same transaction, that none of the named runs is ``running`` or
``pending``. A concurrent resume or takeover therefore either happens before (and the
delete is refused) or finds the run gone.

:meth:`~crucible_actors.abc.Store.gc` then frees what no run needs:

1. in one transaction, the cached results whose run is gone are deleted, and the start
   of the oldest live run is read: the *cutoff* (:func:`cutoff`: that start less
   :data:`SLACK` seconds; with no live run, the collection's own start, less the slack
   too while a runtime is registered on the store);
2. every checkpoint and cached result is read, page by page, and the blob digests in it
   collected (``blob_digests``, which never unpickles);
3. the blob store is listed last (so the ``mtime`` read is as fresh as it can be) and
   every blob neither referenced nor touched since the cutoff is deleted.

Why the cutoff: a running run writes a blob, then commits the checkpoint naming it; a
collection in between sees an unreferenced blob. Every blob such a run writes or
re-uses (``put`` touches a blob it finds already stored) has an ``mtime`` after the
run's start, so sparing blobs newer than the oldest live run's start is enough. What is
left: a dedup ``put`` that touches a blob after step 3 listed it and before it is
deleted (for a directory store, between a last ``stat`` of the file and its ``unlink``),
a cache hit, which re-uses a cached result's bytes without touching their blobs (so
while a run is live, the blobs of the cached results deleted in step 1 are spared too; a
later collection frees them). The codec's identity memo, which names a blob again
without a ``put``, touches it instead (``BlobStore.touch``), at most once per
``_data.TOUCH_INTERVAL`` (1 s, below :data:`SLACK`).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core import (
    DIGEST_LENGTH,
    LIVE_STATUSES,
    RUN_STATUSES,
    DeletedRuns,
    RunNotFound,
    RunStillRunning,
    blob_digests,
)
from ._blobs import DirectoryBlobStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from .._core import BlobStore
    from ._sql import Tx

__all__ = [
    "SLACK",
    "blob_usage",
    "check_delete_args",
    "cutoff",
    "delete_runs",
    "digests_in",
    "gc_begin",
    "referenced_page",
    "sweep_blobs",
]

_CHUNK = 200  # ids per IN (...) list: far below both databases' parameter limits

#: The tables whose rows belong to one run, by their run id column.
RUN_TABLES = ("stage_attempts", "checkpoints", "artifacts", "trace_events")


def check_delete_args(
    run_ids: Sequence[str], older_than: timedelta | None, status: str | None
) -> None:
    """Check the arguments of ``delete_runs``.

    Raises:
        ValueError: both run ids and a filter, neither, a negative ``older_than``, or a
            ``status`` that is unknown or live.
    """
    if isinstance(run_ids, str):
        raise ValueError(f"run_ids must be a sequence of run ids, not the string {run_ids!r}")
    filtered = older_than is not None or status is not None
    if run_ids and filtered:
        raise ValueError(
            "delete_runs takes either run ids or a selection (older_than, status), not both"
        )
    if not run_ids and not filtered:
        raise ValueError(
            "delete_runs needs run ids, or older_than and/or status to select runs; "
            "nothing was deleted"
        )
    if older_than is not None and older_than.total_seconds() < 0:
        raise ValueError(f"older_than must not be negative, got {older_than}")
    if status is not None:
        if status not in RUN_STATUSES:
            raise ValueError(
                f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}"
            )
        if status in LIVE_STATUSES:
            raise ValueError(
                f"runs that are {status} are never deleted; select completed, failed, "
                "cancelled or interrupted runs"
            )


def _chunks(ids: Sequence[str]) -> Iterable[tuple[str, Sequence[str]]]:
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        yield ", ".join("?" * len(chunk)), chunk


def _statuses(tx: Tx, ids: Sequence[str]) -> dict[str, str]:
    """The status of each of the runs ``ids`` that exists."""
    found: dict[str, str] = {}
    for marks, chunk in _chunks(ids):
        found.update(
            (row[0], row[1])
            for row in tx.fetchall(f"SELECT id, status FROM runs WHERE id IN ({marks})", chunk)
        )
    return found


def _select_named(tx: Tx, run_ids: Sequence[str], store: str) -> list[str]:
    ids = list(dict.fromkeys(run_ids))
    found = _statuses(tx, ids)
    for run_id in ids:
        if run_id not in found:
            raise RunNotFound(run_id, store=store)
    for run_id in ids:
        if found[run_id] in LIVE_STATUSES:
            raise RunStillRunning(run_id, status=found[run_id], store=store)
    return ids


def _select_filtered(
    tx: Tx, older_than: timedelta | None, status: str | None, now: datetime
) -> tuple[list[str], list[str]]:
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if older_than is not None:
        # ISO text of one width on SQLite and timestamptz on PostgreSQL: both compare
        # in time order.
        where.append("COALESCE(finished_at, started_at) < ?")
        params.append(tx.ts_in(now - older_than))
    rows = tx.fetchall(
        f"SELECT id, status FROM runs WHERE {' AND '.join(where)} ORDER BY seq", params
    )
    targets = [row[0] for row in rows if row[1] not in LIVE_STATUSES]
    skipped = [row[0] for row in rows if row[1] in LIVE_STATUSES]
    return targets, skipped


def _count(tx: Tx, sql: str, ids: Sequence[str]) -> int:
    total = 0
    for marks, chunk in _chunks(ids):
        total += int(tx.fetchall(sql.format(marks=marks), chunk)[0][0] or 0)
    return total


def _delete(tx: Tx, table: str, ids: Sequence[str], dry_run: bool) -> int:
    if dry_run:
        return _count(tx, f"SELECT COUNT(*) FROM {table} WHERE run_id IN ({{marks}})", ids)
    return sum(
        tx.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", chunk)
        for marks, chunk in _chunks(ids)
    )


def delete_runs(
    tx: Tx,
    run_ids: Sequence[str],
    older_than: timedelta | None,
    status: str | None,
    now: datetime,
    dry_run: bool,
    store: str,
) -> DeletedRuns:
    """Delete the runs named or selected, with their rows; see the module docstring.

    Raises:
        RunNotFound: a named run does not exist.
        RunStillRunning: a named run is running or pending.
    """
    skipped: list[str] = []
    if run_ids:
        targets = _select_named(tx, run_ids, store)
    else:
        targets, skipped = _select_filtered(tx, older_than, status, now)
    if not targets:
        return DeletedRuns(skipped=skipped)
    if not dry_run:
        # The run rows go first, guarded by their status: on PostgreSQL (read committed)
        # a resume that claimed one since the SELECT above makes the guard skip it, and a
        # claim that comes later waits on the deleted row, then finds it gone.
        gone_rows = sum(
            tx.execute(
                f"DELETE FROM runs WHERE id IN ({marks}) AND status NOT IN (?, ?)",
                [*chunk, *LIVE_STATUSES],
            )
            for marks, chunk in _chunks(targets)
        )
        if gone_rows != len(targets):
            live = _statuses(tx, targets)
            if run_ids:  # all or none: the transaction rolls back
                run_id = next(r for r in targets if r in live)
                raise RunStillRunning(run_id, status=live[run_id], store=store)
            skipped = skipped + [r for r in targets if r in live]
            targets = [r for r in targets if r not in live]
            if not targets:
                return DeletedRuns(skipped=skipped)
    checkpoint_bytes = _count(
        tx,
        "SELECT COALESCE(SUM(length(context)), 0) FROM checkpoints WHERE run_id IN ({marks})",
        targets,
    )
    # A sweep goes with its last point: find the sweeps whose every point is deleted.
    points: dict[str, set[str]] = {}
    for marks, chunk in _chunks(targets):
        for sweep_id, run_id in tx.fetchall(
            "SELECT sweep_id, run_id FROM sweep_points WHERE sweep_id IN"
            f" (SELECT sweep_id FROM sweep_points WHERE run_id IN ({marks}))",
            chunk,
        ):
            points.setdefault(sweep_id, set()).add(run_id)
    gone = set(targets)
    emptied = sorted(s for s, runs in points.items() if runs <= gone)
    counts = {table: _delete(tx, table, targets, dry_run) for table in RUN_TABLES}
    sweep_points = _delete(tx, "sweep_points", targets, dry_run)
    if not dry_run:
        for marks, chunk in _chunks(emptied):
            tx.execute(f"DELETE FROM sweeps WHERE id IN ({marks})", chunk)
    return DeletedRuns(
        run_ids=targets,
        skipped=skipped,
        attempts=counts["stage_attempts"],
        checkpoints=counts["checkpoints"],
        checkpoint_bytes=checkpoint_bytes,
        events=counts["trace_events"],
        artifacts=counts["artifacts"],
        sweep_points=sweep_points,
        sweeps=len(emptied),
    )


# -- gc -------------------------------------------------------------------------------

_HEX_DIGEST = re.compile(rb"[0-9a-f]{%d}" % DIGEST_LENGTH)
# A BlobRef's digest as msgpack writes it (str8 header, as the digest has more than 31
# characters, then its hex): rows without one name no blob, and are skipped without
# decoding them (36x faster on a 31 MB row).
_REF_DIGEST = re.compile(
    b"\xd9" + re.escape(bytes([DIGEST_LENGTH])) + rb"[0-9a-f]{%d}" % DIGEST_LENGTH
)


def digests_in(data: bytes) -> set[str]:
    """Return the blob digests ``data`` (a checkpoint or a cached result) names.

    Bytes that are not the msgpack the runtime writes (a foreign or damaged row) are
    scanned for anything that looks like a digest instead: a collection may keep a blob
    too many, never delete one a row might name.
    """
    if _REF_DIGEST.search(data) is None:
        return set()
    try:
        return blob_digests(data)
    except Exception:
        return {m.decode() for m in _HEX_DIGEST.findall(data)}


_ORPHAN_RESULTS = (
    "FROM stage_results WHERE NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = stage_results.run_id)"
)


#: Seconds a cutoff is moved back: file systems stamp ``mtime`` from a coarse clock (a
#: touch may read a few milliseconds before the run's start), and a run being submitted
#: writes the blobs of its first checkpoint before its row exists. It must exceed the
#: codec's ``TOUCH_INTERVAL`` (a blob recalled by identity is touched at most that often).
SLACK = 2.0


def cutoff(now: datetime, oldest_live: datetime | None, runtimes: int) -> datetime:
    """Return the time before which an unreferenced blob may be deleted.

    ``oldest_live`` is the start of the oldest running or pending run, ``runtimes`` how
    many runtimes are registered on the store (owner rows). With a live run: its start
    less :data:`SLACK`; else, while a runtime is up (it may be submitting a run), ``now``
    less :data:`SLACK`; else ``now``: nothing can be writing.
    """
    slack = timedelta(seconds=SLACK)
    if oldest_live is not None:
        return min(now, oldest_live) - slack
    return now - slack if runtimes else now


def gc_begin(tx: Tx, now: datetime) -> tuple[int, int, datetime, set[str]]:
    """Step 1 of a collection, in one transaction.

    Deletes the cached results whose run is gone; returns how many, their bytes, the
    :func:`cutoff` and the blob digests to spare for live runs' sake (those of the
    deleted results, when a run is live).
    """
    live = tx.fetchall(
        "SELECT COUNT(*), MIN(started_at) FROM runs WHERE status IN (?, ?)", LIVE_STATUSES
    )
    live_count, oldest = int(live[0][0]), tx.ts_out(live[0][1])
    if live_count and oldest is None:  # pending and never started: as if starting now
        oldest = now
    runtimes = int(tx.fetchall("SELECT COUNT(*) FROM owners")[0][0])
    spared: set[str] = set()
    rows = tx.fetchall(f"SELECT size, result {_ORPHAN_RESULTS}")
    if live_count:
        for row in rows:
            spared |= digests_in(bytes(row[1]))
    if rows:
        tx.execute(f"DELETE {_ORPHAN_RESULTS}")
    found = sum(int(row[0]) for row in rows)
    return len(rows), found, cutoff(now, oldest, runtimes), spared


_PAGE = 64  # checkpoints or cached results read per page while collecting references


def referenced_page(
    tx: Tx, table: str, after: tuple[Any, ...] | None
) -> tuple[set[str], tuple[Any, ...] | None]:
    """Step 2, one page: the digests named by the next rows of ``table`` and the next key.

    ``table`` is ``checkpoints`` (keyed by run id and index) or ``stage_results`` (by
    ``seq``); ``after`` is the key returned by the previous page (None to start). The
    key returned is None after the last page.
    """
    if table == "checkpoints":
        key, data = "run_id, stage_index", "context"
        where = "" if after is None else " WHERE (run_id, stage_index) > (?, ?)"
    else:
        key, data = "seq", "result"
        where = "" if after is None else " WHERE seq > ?"
    rows = tx.fetchall(
        f"SELECT {key}, {data} FROM {table}{where} ORDER BY {key} LIMIT ?",
        (*(after or ()), _PAGE),
    )
    found: set[str] = set()
    for row in rows:
        found |= digests_in(bytes(row[-1]))
    nxt = tuple(rows[-1][:-1]) if len(rows) == _PAGE else None
    return found, nxt


def _temp_files(blobs: BlobStore) -> list[tuple[Path, int, float]]:
    """The partial blob files of a directory store (a writer killed mid-``put`` leaves one)."""
    if not isinstance(blobs, DirectoryBlobStore):
        return []
    found = []
    try:
        entries = list(os.scandir(blobs.root / "tmp"))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            st = entry.stat()
        except FileNotFoundError:  # renamed into place meanwhile
            continue
        found.append((Path(entry.path), st.st_size, st.st_mtime))
    return found


def _touched_since(blobs: BlobStore, digest: str, cutoff: float) -> bool:
    """Whether a directory store's blob was touched since it was listed (a dedup ``put``).

    Narrows the race in the module docstring to the time between this ``stat`` and the
    ``unlink`` that follows it.
    """
    if not isinstance(blobs, DirectoryBlobStore):
        return False
    try:
        return (blobs.root / digest[:2] / digest).stat().st_mtime >= cutoff
    except FileNotFoundError:
        return False


def sweep_blobs(blobs: BlobStore, keep: set[str], cutoff: float) -> tuple[int, int, int, int]:
    """Step 3: delete every blob not in ``keep`` whose ``mtime`` is before ``cutoff``.

    Partial files a killed writer left in a directory store go too when they are older
    than ``cutoff`` (a live run's write in progress is newer). Blocking (file system
    calls): run it in a worker thread. Returns the blobs (and partial files) deleted,
    their bytes, the unreferenced blobs spared for being newer than ``cutoff``, and the
    bytes that remain.
    """
    deleted = freed = spared = remaining = 0
    for info in list(blobs.list()):
        if info.digest in keep:
            remaining += info.size
        elif info.mtime >= cutoff or _touched_since(blobs, info.digest, cutoff):
            spared += 1
            remaining += info.size
        else:
            gone = blobs.delete(info.digest)
            deleted += 1 if gone else 0
            freed += gone
    for path, size, mtime in _temp_files(blobs):
        if mtime >= cutoff:
            remaining += size
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        deleted += 1
        freed += size
    return deleted, freed, spared, remaining


def blob_usage(blobs: BlobStore | None) -> tuple[int, int]:
    """Return how many blob files ``blobs`` holds and their bytes ((0, 0) without one).

    Partial files of a directory store count. Blocking. The listing is read to its end
    (one left half-read may hold a directory open).
    """
    if blobs is None:
        return 0, 0
    sizes = [info.size for info in blobs.list()]
    sizes += [size for _, size, _ in _temp_files(blobs)]
    return len(sizes), sum(sizes)
