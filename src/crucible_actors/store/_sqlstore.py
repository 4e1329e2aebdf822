"""SQLStore: the Store contract over the shared SQL, for SQLite and PostgreSQL alike.

Writes go to the adapter's :class:`~crucible_actors.store._writer.GroupCommitWriter`:
rows that group well (experiments, new runs, checkpoints, attempts) travel as *parts*
the writer inserts for a whole batch at once; the rest are functions of the
transaction. Reads go to the adapter's ``_read``.
"""

from __future__ import annotations

import abc
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .._core import GcResult
from . import _cache, _environments, _reclaim, _sql, _sweeps
from ._sql import ATTEMPT, CHECKPOINT, EXPERIMENT, FENCE, FINISH, RUN
from ._writer import FAULT_CONNECTION

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import timedelta

    from .._core import (
        ArtifactRecord,
        BlobStore,
        CachedResult,
        Checkpoint,
        DefinitionRecord,
        DeletedRuns,
        EnvironmentRecord,
        ExperimentRecord,
        OwnerRecord,
        PendingRun,
        RunRecord,
        StageAttempt,
        SweepPointRecord,
        SweepRecord,
        TraceEventRecord,
    )
    from ._writer import GroupCommitWriter

__all__ = ["SQLStore"]

#: The faults a new run's first write retries on: not a full disk (see ``start_run``);
#: likewise a new runtime's owner row, a new sweep, and an owner row's removal.
_NEW_RUN_RETRIES = frozenset({FAULT_CONNECTION})


class SQLStore(abc.ABC):
    """Base of the relational stores; subclasses own the connections."""

    local: bool
    _name: str
    _writer: GroupCommitWriter[Any]

    @property
    def retry_for(self) -> float:
        """Seconds a write keeps retrying a transient fault before ``StoreUnavailable``."""
        return self._writer.retry_for

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name}>"

    @property
    def name(self) -> str:
        """The store URL (without secrets)."""
        return self._name

    @property
    def batches(self) -> int:
        """How many write transactions the writer committed (or tried)."""
        return self._writer.batches

    @property
    def writes(self) -> int:
        """How many writes those transactions carried."""
        return self._writer.writes

    @abc.abstractmethod
    async def _read(self, fn: Callable[[_sql.Tx], Any]) -> Any:
        """Run the query function ``fn`` on a read connection in a worker thread."""

    # -- writes -------------------------------------------------------------------

    async def start_run(
        self,
        run: RunRecord,
        *,
        experiment: ExperimentRecord,
        checkpoint: Checkpoint | None = None,
        resume: bool = False,
    ) -> None:
        conv = self._writer.conv
        parts: list[tuple[int, Any]] = [(EXPERIMENT, _sql.experiment_row(conv, experiment))]
        if not resume:
            parts.append((RUN, _sql.run_row(conv, run)))
        if checkpoint is not None:
            parts.append((CHECKPOINT, _sql.checkpoint_row(conv, checkpoint)))
        fn = (lambda tx: _sql.resume_run(tx, run)) if resume else None
        if resume:
            await self._writer.submit(fn, parts=parts)
            return
        # A new run is refused at once on a full disk (the runs already accepted keep
        # the space); a lost connection is retried, accepting the row an unacknowledged
        # commit may have left.
        name = self._name
        await self._writer.submit(
            parts=parts,
            retry_on=_NEW_RUN_RETRIES,
            again=lambda tx: _start_run_again(tx, parts, run, name),
        )

    async def save_checkpoint(
        self, checkpoint: Checkpoint, *, attempts: Sequence[StageAttempt] = ()
    ) -> None:
        conv = self._writer.conv
        parts: list[tuple[int, Any]] = [
            *((ATTEMPT, _sql.attempt_row(conv, a)) for a in attempts),
            (CHECKPOINT, _sql.checkpoint_row(conv, checkpoint)),
        ]
        if checkpoint.owner_id is not None:  # fenced: see _sql.check_owners
            parts.append((FENCE, (checkpoint.run_id, checkpoint.owner_id)))
        await self._writer.submit(parts=parts)

    async def record_attempt(self, attempt: StageAttempt) -> None:
        parts: list[tuple[int, Any]] = [(ATTEMPT, _sql.attempt_row(self._writer.conv, attempt))]
        if attempt.owner_id is not None:
            parts.append((FENCE, (attempt.run_id, attempt.owner_id)))
        await self._writer.submit(parts=parts)

    async def finish_run(
        self,
        run: RunRecord,
        *,
        artifacts: Sequence[ArtifactRecord],
        events: Sequence[TraceEventRecord],
        attempts: Sequence[StageAttempt] = (),
        checkpoint: Checkpoint | None = None,
    ) -> None:
        conv = self._writer.conv
        parts: list[tuple[int, Any]] = [(ATTEMPT, _sql.attempt_row(conv, a)) for a in attempts]
        if checkpoint is not None:
            parts.append((CHECKPOINT, _sql.checkpoint_row(conv, checkpoint)))
        parts.append((FINISH, (run, artifacts, events)))
        await self._writer.submit(parts=parts)

    async def claim_run(
        self, run_id: str, *, status: str, owner_id: str | None, new_owner_id: str
    ) -> bool:
        claimed: bool = await self._writer.submit(
            lambda tx: _sql.claim_run(tx, run_id, status, owner_id, new_owner_id),
            again=lambda tx: (
                _sql.claim_run(tx, run_id, status, owner_id, new_owner_id)
                or _owned_running(tx, run_id, new_owner_id, status)
            ),
        )
        return claimed

    async def mark_interrupted(
        self,
        run_id: str,
        *,
        owner_id: str | None,
        finished_at: datetime,
        failure: dict[str, Any] | None = None,
    ) -> bool:
        done: bool = await self._writer.submit(
            lambda tx: _sql.mark_interrupted(tx, run_id, owner_id, finished_at, failure),
            again=lambda tx: (
                _sql.mark_interrupted(tx, run_id, owner_id, finished_at, failure)
                or _interrupted_by_us(tx, run_id, owner_id, finished_at)
            ),
        )
        return done

    async def register_owner(self, owner: OwnerRecord) -> None:
        # A runtime starting on a full disk is refused at once, like a new run.
        await self._writer.submit(
            lambda tx: _sql.register_owner(tx, owner), retry_on=_NEW_RUN_RETRIES
        )

    async def heartbeat(self, owner_id: str, at: datetime) -> bool:
        alive: bool = await self._writer.submit(lambda tx: _sql.heartbeat(tx, owner_id, at))
        return alive

    async def remove_owner(self, owner_id: str) -> None:
        # At shutdown; a row left behind is cleaned up by the next recovery, so a full
        # disk does not hold the shutdown for ``retry_for`` seconds.
        await self._writer.submit(
            lambda tx: _sql.remove_owner(tx, owner_id), retry_on=_NEW_RUN_RETRIES
        )

    async def record_sweep(
        self,
        sweep: SweepRecord,
        *,
        points: Sequence[SweepPointRecord],
        experiment: ExperimentRecord | None = None,
        pending: Sequence[PendingRun] = (),
    ) -> None:
        name = self._name
        conv = self._writer.conv
        # The pending points' rows travel as grouped parts (one statement per kind for
        # the whole sweep), in the sweep's transaction.
        parts: list[tuple[int, Any]] = []
        if experiment is not None:
            parts.append((EXPERIMENT, _sql.experiment_row(conv, experiment)))
        parts += [(RUN, _sql.run_row(conv, p.run)) for p in pending]
        parts += [(CHECKPOINT, _sql.checkpoint_row(conv, p.checkpoint)) for p in pending]
        # New work, like a new run: refused at once on a full disk. A lost connection is
        # retried, accepting the sweep an unacknowledged commit may have left.
        await self._writer.submit(
            lambda tx: _sweeps.record_sweep(tx, sweep, points, name),
            parts=parts,
            retry_on=_NEW_RUN_RETRIES,
            again=lambda tx: _record_sweep_again(tx, parts, sweep, points, pending, name),
        )

    async def start_pending(
        self,
        run_id: str,
        *,
        owner_id: str,
        started_at: datetime,
        metadata: dict[str, Any],
        provenance: dict[str, Any] | None = None,
    ) -> bool:
        """Start the ``pending`` run ``run_id`` if ``owner_id`` still owns it (see Store)."""
        started: bool = await self._writer.submit(
            lambda tx: _sql.start_pending(tx, run_id, owner_id, started_at, metadata, provenance),
            again=lambda tx: (
                _sql.start_pending(tx, run_id, owner_id, started_at, metadata, provenance)
                or _sql.started_by(tx, run_id, owner_id, started_at)
            ),
        )
        return started

    async def finish_sweep(self, sweep_id: str, *, status: str, finished_at: datetime) -> None:
        name = self._name
        await self._writer.submit(
            lambda tx: _sweeps.finish_sweep(tx, sweep_id, status, finished_at, name)
        )

    async def put_cached_result(self, result: CachedResult) -> bool:
        # Best effort (the cache logs a failure and the run goes on): never retried, so a
        # run does not wait out a store fault for the sake of its cache entry.
        stored: bool = await self._writer.submit(
            lambda tx: _cache.put_cached_result(tx, result), retry_on=frozenset()
        )
        return stored

    async def put_environment(self, env: EnvironmentRecord) -> bool:
        # Best effort, like the cache: a run whose environment could not be stored still
        # runs (the next one tries again), so a store fault is not waited out here.
        stored: bool = await self._writer.submit(
            lambda tx: _environments.put_environment(tx, env), retry_on=frozenset()
        )
        return stored

    async def put_definition(self, definition: DefinitionRecord) -> bool:
        # Best effort, like the environment: a run whose definition could not be stored
        # shows its experiment's latest definition instead.
        stored: bool = await self._writer.submit(
            lambda tx: _environments.put_definition(tx, definition), retry_on=frozenset()
        )
        return stored

    async def clear_cached_results(self, *, stage: str | None = None) -> int:
        removed: int = await self._writer.submit(lambda tx: _cache.clear_cached_results(tx, stage))
        return removed

    # -- queries --------------------------------------------------------------------

    async def get_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        found: ExperimentRecord | None = await self._read(
            lambda tx: _sql.get_experiment(tx, experiment_id)
        )
        return found

    async def list_experiments(self, *, limit: int = 50) -> list[ExperimentRecord]:
        found: list[ExperimentRecord] = await self._read(
            lambda tx: _sql.list_experiments(tx, limit)
        )
        return found

    async def get_run(self, run_id: str) -> RunRecord:
        name = self._name
        found: RunRecord = await self._read(lambda tx: _sql.get_run(tx, run_id, name))
        return found

    async def list_runs(
        self,
        *,
        experiment_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[RunRecord]:
        name = self._name
        found: list[RunRecord] = await self._read(
            lambda tx: _sql.list_runs(tx, experiment_id, status, limit, before, name)
        )
        return found

    async def list_runs_without_outputs(
        self,
        *,
        experiment_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[RunRecord]:
        """Return what :meth:`list_runs` returns, with ``outputs`` left empty (not read).

        For listings that need the runs' metrics but not their per-example outputs (the
        dashboard sorting thousands of runs by a metric): the outputs column is the
        large one.
        """
        name = self._name
        found: list[RunRecord] = await self._read(
            lambda tx: _sql.list_runs(tx, experiment_id, status, limit, before, name, outputs=False)
        )
        return found

    async def list_attempts(self, run_id: str) -> list[StageAttempt]:
        found: list[StageAttempt] = await self._read(lambda tx: _sql.list_attempts(tx, run_id))
        return found

    async def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        found: list[ArtifactRecord] = await self._read(lambda tx: _sql.list_artifacts(tx, run_id))
        return found

    async def load_checkpoint(self, run_id: str) -> Checkpoint | None:
        found: Checkpoint | None = await self._read(lambda tx: _sql.load_checkpoint(tx, run_id))
        return found

    async def list_events(self, run_id: str, *, after: int | None = None) -> list[TraceEventRecord]:
        found: list[TraceEventRecord] = await self._read(
            lambda tx: _sql.list_events(tx, run_id, after)
        )
        return found

    async def list_owners(self) -> list[OwnerRecord]:
        found: list[OwnerRecord] = await self._read(_sql.list_owners)
        return found

    async def adoption_probe(self) -> tuple[set[str | None], int]:
        """Return the owners of the ``running`` runs and how many runs are ``interrupted``."""
        found: tuple[set[str | None], int] = await self._read(_sql.adoption_probe)
        return found

    async def get_sweep(self, sweep_id: str) -> SweepRecord | None:
        found: SweepRecord | None = await self._read(lambda tx: _sweeps.get_sweep(tx, sweep_id))
        return found

    async def list_sweeps(
        self, *, experiment_id: str | None = None, limit: int = 50
    ) -> list[SweepRecord]:
        found: list[SweepRecord] = await self._read(
            lambda tx: _sweeps.list_sweeps(tx, experiment_id, limit)
        )
        return found

    async def list_sweep_points(self, sweep_id: str) -> list[SweepPointRecord]:
        found: list[SweepPointRecord] = await self._read(
            lambda tx: _sweeps.list_sweep_points(tx, sweep_id)
        )
        return found

    async def get_cached_result(self, key: str) -> CachedResult | None:
        found: CachedResult | None = await self._read(lambda tx: _cache.get_cached_result(tx, key))
        return found

    async def get_environment(self, env_id: str) -> EnvironmentRecord | None:
        found: EnvironmentRecord | None = await self._read(
            lambda tx: _environments.get_environment(tx, env_id)
        )
        return found

    async def get_definitions(self, ids: Sequence[str]) -> dict[str, DefinitionRecord]:
        found: dict[str, DefinitionRecord] = await self._read(
            lambda tx: _environments.get_definitions(tx, ids)
        )
        return found

    async def list_cached_results(
        self, *, stage: str | None = None, limit: int = 100
    ) -> list[CachedResult]:
        found: list[CachedResult] = await self._read(
            lambda tx: _cache.list_cached_results(tx, stage, limit)
        )
        return found

    # -- deleting runs and reclaiming space (see ._reclaim) -------------------------------

    async def delete_runs(
        self,
        run_ids: Sequence[str] = (),
        *,
        older_than: timedelta | None = None,
        status: str | None = None,
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> DeletedRuns:
        _reclaim.check_delete_args(run_ids, older_than, status)
        at = now if now is not None else datetime.now(UTC)
        name = self._name
        deleted: DeletedRuns = await self._writer.submit(
            lambda tx: _reclaim.delete_runs(tx, run_ids, older_than, status, at, dry_run, name)
        )
        return deleted

    async def gc(self, *, now: datetime | None = None) -> GcResult:
        at = now if now is not None else datetime.now(UTC)
        blobs: BlobStore | None = getattr(self, "blobs", None)
        count, blob_bytes = await anyio.to_thread.run_sync(_reclaim.blob_usage, blobs)
        before = await self._db_bytes() + blob_bytes
        cached, cached_bytes, cutoff, keep = await self._writer.submit(
            lambda tx: _reclaim.gc_begin(tx, at)
        )
        deleted = freed = spared = blobs_left = 0
        if blobs is not None and count:
            for table in ("checkpoints", "stage_results"):
                after: tuple[Any, ...] | None = None
                while True:
                    page = partial(_reclaim.referenced_page, table=table, after=after)
                    found, after = await self._read(page)
                    keep |= found
                    if after is None:
                        break
            deleted, freed, spared, blobs_left = await anyio.to_thread.run_sync(
                _reclaim.sweep_blobs, blobs, keep, cutoff.timestamp()
            )
        await self._compact()
        return GcResult(
            cached_results=cached,
            cached_bytes=cached_bytes,
            blobs=deleted,
            blob_bytes=freed,
            blobs_kept=spared,
            bytes_before=before,
            bytes_after=await self._db_bytes() + blobs_left,
        )

    @abc.abstractmethod
    async def _db_bytes(self) -> int:
        """Return the bytes the database takes (files, or its tables on a server)."""

    @abc.abstractmethod
    async def _compact(self) -> None:
        """Return the space of deleted rows (``VACUUM`` or its dialect's equivalent)."""


def _start_run_again(
    tx: _sql.Tx, parts: Sequence[tuple[int, Any]], run: RunRecord, store: str
) -> None:
    """Write a new run's parts on a retry: its own row, left by a commit whose
    acknowledgement was lost, counts as inserted; another owner's row is a duplicate."""
    found = tx.fetchall("SELECT owner_id FROM runs WHERE id = ?", (run.id,))
    mine = bool(found) and run.owner_id is not None and found[0][0] == run.owner_id
    for kind, row in parts:
        if kind == RUN and mine:
            continue
        _sql.GROUP_HANDLERS[kind](tx, [row], store)


def _record_sweep_again(
    tx: _sql.Tx,
    parts: Sequence[tuple[int, Any]],
    sweep: SweepRecord,
    points: Sequence[SweepPointRecord],
    pending: Sequence[PendingRun],
    store: str,
) -> None:
    """Record a sweep on a retry: the same sweep, left by a commit whose acknowledgement
    was lost (its first pending run is there, under the same owner), counts as recorded;
    another sweep with its id is still refused."""
    if tx.fetchall("SELECT 1 FROM sweeps WHERE id = ?", (sweep.id,)):
        first = pending[0].run if pending else None
        if first is None or tx.fetchall(
            f"SELECT 1 FROM runs WHERE id = ? AND status = 'pending' AND {tx.owner_match}",
            (first.id, first.owner_id),
        ):
            return
    for kind, row in parts:
        _sql.GROUP_HANDLERS[kind](tx, [row], store)
    _sweeps.record_sweep(tx, sweep, points, store)


def _owned_running(tx: _sql.Tx, run_id: str, owner_id: str, claimed: str) -> bool:
    """Whether ``owner_id`` already holds run ``run_id`` (a claim retried after its
    commit went through unacknowledged); a claimed ``pending`` run stays pending."""
    status = "pending" if claimed == "pending" else "running"
    return bool(
        tx.fetchall(
            "SELECT 1 FROM runs WHERE id = ? AND owner_id = ? AND status = ?",
            (run_id, owner_id, status),
        )
    )


def _interrupted_by_us(
    tx: _sql.Tx, run_id: str, owner_id: str | None, finished_at: datetime
) -> bool:
    """Whether run ``run_id`` is already stored interrupted at ``finished_at`` under
    ``owner_id`` (a retry after the first commit went through unacknowledged)."""
    return bool(
        tx.fetchall(
            "SELECT 1 FROM runs WHERE id = ? AND status = 'interrupted' AND finished_at = ?"
            f" AND {tx.owner_match}",
            (run_id, tx.ts_in(finished_at), owner_id),
        )
    )
