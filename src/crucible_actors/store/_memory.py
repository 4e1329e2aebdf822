"""MemoryStore: the Store contract in plain dicts, for tests and throwaway runs.

It passes the same contract suite as the SQL stores. Nothing survives the process, and
every "write" is trivially durable. Each method yields to the event loop once, so
callers see the same scheduling points as with a real store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.lowlevel
import msgspec

from .._core import (
    LIVE_STATUSES,
    DeletedRuns,
    GcResult,
    MemoryBlobStore,
    OwnershipLost,
    RunNotFound,
    RunStillRunning,
    StoreError,
)
from ._reclaim import blob_usage, check_delete_args, cutoff, digests_in, sweep_blobs

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import timedelta

    from .._core import (
        ArtifactRecord,
        BlobStore,
        CachedResult,
        Checkpoint,
        DefinitionRecord,
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

__all__ = ["MemoryStore"]

_replace = msgspec.structs.replace

_Owned = TypeVar("_Owned", "Checkpoint", "StageAttempt")


def _unowned(record: _Owned) -> _Owned:
    """The record as stored: ``owner_id`` only fences the write, it is not kept."""
    return record if record.owner_id is None else _replace(record, owner_id=None)


class MemoryStore:
    """A Store kept in memory; pass it as ``open_runtime(store=MemoryStore())``."""

    local = True

    def __init__(self, name: str = "memory://") -> None:
        self._name = name
        self._experiments: dict[str, ExperimentRecord] = {}
        self._runs: dict[str, RunRecord] = {}
        self._seq: dict[str, int] = {}
        self._next_seq = 0
        self._attempts: dict[str, dict[tuple[int, int], StageAttempt]] = {}
        self._checkpoints: dict[str, dict[int, Checkpoint]] = {}
        self._artifacts: dict[str, list[ArtifactRecord]] = {}
        self._events: dict[str, list[TraceEventRecord]] = {}
        self._owners: dict[str, OwnerRecord] = {}
        self._sweeps: dict[str, SweepRecord] = {}  # insertion order is the store order
        self._sweep_points: dict[str, list[SweepPointRecord]] = {}
        self._results: dict[str, CachedResult] = {}  # insertion order is the store order
        self._environments: dict[str, EnvironmentRecord] = {}
        self._definitions: dict[str, DefinitionRecord] = {}
        #: Where large Context values live (in memory too).
        self.blobs: BlobStore = MemoryBlobStore()

    def __repr__(self) -> str:
        return f"<MemoryStore {self._name} runs={len(self._runs)}>"

    @property
    def name(self) -> str:
        """The store's name (``memory://`` unless given)."""
        return self._name

    # -- writes -------------------------------------------------------------------

    async def start_run(
        self,
        run: RunRecord,
        *,
        experiment: ExperimentRecord,
        checkpoint: Checkpoint | None = None,
        resume: bool = False,
    ) -> None:
        await anyio.lowlevel.checkpoint()
        existing = self._runs.get(run.id)
        if existing is not None and not resume:
            raise StoreError(
                f"a run with id {run.id!r} already exists; resume it with "
                f"'crucible-actors runs resume {run.id}' or choose another run_id",
                store=self._name,
            )
        old = self._experiments.get(experiment.id)
        if old is not None:
            experiment = _replace(experiment, created_at=old.created_at)
        self._experiments[experiment.id] = experiment
        if existing is not None:
            self._runs[run.id] = _replace(
                existing,
                status=run.status,
                owner_id=run.owner_id,
                metadata=run.metadata,
                failure=None,
                finished_at=None,
                resume_count=run.resume_count,
            )
        else:
            self._runs[run.id] = run
            self._next_seq += 1
            self._seq[run.id] = self._next_seq
        if checkpoint is not None:
            self._checkpoints.setdefault(run.id, {})[checkpoint.index] = checkpoint

    async def save_checkpoint(
        self, checkpoint: Checkpoint, *, attempts: Sequence[StageAttempt] = ()
    ) -> None:
        await anyio.lowlevel.checkpoint()
        self._fence(checkpoint.run_id, checkpoint.owner_id)
        for attempt in attempts:
            self._attempts.setdefault(attempt.run_id, {})[(attempt.index, attempt.attempt)] = (
                _unowned(attempt)
            )
        self._checkpoints.setdefault(checkpoint.run_id, {})[checkpoint.index] = _unowned(checkpoint)

    async def record_attempt(self, attempt: StageAttempt) -> None:
        await anyio.lowlevel.checkpoint()
        self._fence(attempt.run_id, attempt.owner_id)
        self._attempts.setdefault(attempt.run_id, {})[(attempt.index, attempt.attempt)] = _unowned(
            attempt
        )

    async def finish_run(
        self,
        run: RunRecord,
        *,
        artifacts: Sequence[ArtifactRecord],
        events: Sequence[TraceEventRecord],
        attempts: Sequence[StageAttempt] = (),
        checkpoint: Checkpoint | None = None,
    ) -> None:
        await anyio.lowlevel.checkpoint()
        existing = self._runs.get(run.id)
        if existing is None:
            raise RunNotFound(run.id, store=self._name)
        if existing.owner_id != run.owner_id:
            raise OwnershipLost(run.id, owner_id=existing.owner_id, store=self._name)
        self._runs[run.id] = _replace(
            existing,
            status=run.status,
            metrics=run.metrics,
            outputs=run.outputs,
            metadata=run.metadata,
            failure=run.failure,
            finished_at=run.finished_at,
        )
        for attempt in attempts:
            self._attempts.setdefault(attempt.run_id, {})[(attempt.index, attempt.attempt)] = (
                _unowned(attempt)
            )
        if checkpoint is not None:
            self._checkpoints.setdefault(run.id, {})[checkpoint.index] = _unowned(checkpoint)
        self._artifacts[run.id] = list(artifacts)
        self._events[run.id] = list(events)

    async def claim_run(
        self, run_id: str, *, status: str, owner_id: str | None, new_owner_id: str
    ) -> bool:
        await anyio.lowlevel.checkpoint()
        run = self._runs.get(run_id)
        if run is None or run.status != status or run.owner_id != owner_id:
            return False
        claimed = "pending" if status == "pending" else "running"
        self._runs[run_id] = _replace(run, status=claimed, owner_id=new_owner_id)
        return True

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
        await anyio.lowlevel.checkpoint()
        run = self._runs.get(run_id)
        if run is None or run.status != "pending" or run.owner_id != owner_id:
            return False
        self._runs[run_id] = _replace(
            run,
            status="running",
            started_at=started_at,
            metadata=metadata,
            provenance=run.provenance if provenance is None else provenance,
        )
        return True

    async def mark_interrupted(
        self,
        run_id: str,
        *,
        owner_id: str | None,
        finished_at: datetime,
        failure: dict[str, Any] | None = None,
    ) -> bool:
        await anyio.lowlevel.checkpoint()
        run = self._runs.get(run_id)
        if run is None or run.status not in LIVE_STATUSES or run.owner_id != owner_id:
            return False
        self._runs[run_id] = _replace(
            run, status="interrupted", finished_at=finished_at, failure=failure
        )
        return True

    async def register_owner(self, owner: OwnerRecord) -> None:
        await anyio.lowlevel.checkpoint()
        old = self._owners.get(owner.id)
        self._owners[owner.id] = (
            owner if old is None else _replace(old, heartbeat_at=owner.heartbeat_at)
        )

    async def heartbeat(self, owner_id: str, at: datetime) -> bool:
        await anyio.lowlevel.checkpoint()
        owner = self._owners.get(owner_id)
        if owner is None:
            return False
        self._owners[owner_id] = _replace(owner, heartbeat_at=at)
        return True

    async def remove_owner(self, owner_id: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._owners.pop(owner_id, None)

    async def record_sweep(
        self,
        sweep: SweepRecord,
        *,
        points: Sequence[SweepPointRecord],
        experiment: ExperimentRecord | None = None,
        pending: Sequence[PendingRun] = (),
    ) -> None:
        await anyio.lowlevel.checkpoint()
        if sweep.id in self._sweeps:
            raise StoreError(
                f"a sweep with id {sweep.id!r} already exists; choose another sweep_id",
                store=self._name,
            )
        taken = next((p.run.id for p in pending if p.run.id in self._runs), None)
        if taken is not None:
            raise StoreError(
                f"a run with id {taken!r} already exists; choose another sweep_id",
                store=self._name,
            )
        if experiment is not None:
            old = self._experiments.get(experiment.id)
            if old is not None:
                experiment = _replace(experiment, created_at=old.created_at)
            self._experiments[experiment.id] = experiment
        for p in pending:
            self._runs[p.run.id] = p.run
            self._next_seq += 1
            self._seq[p.run.id] = self._next_seq
            self._checkpoints.setdefault(p.run.id, {})[p.checkpoint.index] = p.checkpoint
        self._sweeps[sweep.id] = sweep
        self._sweep_points[sweep.id] = sorted(points, key=lambda p: p.index)

    async def finish_sweep(self, sweep_id: str, *, status: str, finished_at: datetime) -> None:
        await anyio.lowlevel.checkpoint()
        sweep = self._sweeps.get(sweep_id)
        if sweep is None:
            raise StoreError(f"no sweep with id {sweep_id!r} to finish", store=self._name)
        self._sweeps[sweep_id] = _replace(sweep, status=status, finished_at=finished_at)

    async def put_cached_result(self, result: CachedResult) -> bool:
        await anyio.lowlevel.checkpoint()
        if result.key in self._results:
            return False
        self._results[result.key] = result
        return True

    async def put_environment(self, env: EnvironmentRecord) -> bool:
        await anyio.lowlevel.checkpoint()
        if env.id in self._environments:
            return False
        self._environments[env.id] = env
        return True

    async def put_definition(self, definition: DefinitionRecord) -> bool:
        await anyio.lowlevel.checkpoint()
        if definition.id in self._definitions:
            return False
        self._definitions[definition.id] = definition
        return True

    async def clear_cached_results(self, *, stage: str | None = None) -> int:
        await anyio.lowlevel.checkpoint()
        gone = [k for k, r in self._results.items() if stage is None or r.stage == stage]
        for key in gone:
            del self._results[key]
        return len(gone)

    # -- queries --------------------------------------------------------------------

    async def get_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        await anyio.lowlevel.checkpoint()
        return self._experiments.get(experiment_id)

    async def list_experiments(self, *, limit: int = 50) -> list[ExperimentRecord]:
        await anyio.lowlevel.checkpoint()
        found = sorted(self._experiments.values(), key=lambda e: e.id)
        found.sort(key=lambda e: e.updated_at, reverse=True)
        return found[:limit]

    async def get_run(self, run_id: str) -> RunRecord:
        await anyio.lowlevel.checkpoint()
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id, store=self._name)
        return run

    async def list_runs(
        self,
        *,
        experiment_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[RunRecord]:
        await anyio.lowlevel.checkpoint()
        bound = None
        if before is not None:
            if before not in self._seq:
                raise RunNotFound(before, store=self._name)
            bound = self._seq[before]
        out: list[RunRecord] = []
        for run_id in sorted(self._seq, key=self._seq.__getitem__, reverse=True):
            if bound is not None and self._seq[run_id] >= bound:
                continue
            run = self._runs[run_id]
            if experiment_id is not None and run.experiment_id != experiment_id:
                continue
            if status is not None and run.status != status:
                continue
            out.append(run)
            if len(out) >= limit:
                break
        return out

    async def list_attempts(self, run_id: str) -> list[StageAttempt]:
        await anyio.lowlevel.checkpoint()
        attempts = self._attempts.get(run_id, {})
        return [attempts[k] for k in sorted(attempts)]

    async def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        await anyio.lowlevel.checkpoint()
        return list(self._artifacts.get(run_id, ()))

    async def load_checkpoint(self, run_id: str) -> Checkpoint | None:
        await anyio.lowlevel.checkpoint()
        checkpoints = self._checkpoints.get(run_id)
        if not checkpoints:
            return None
        return checkpoints[max(checkpoints)]

    async def list_events(self, run_id: str, *, after: int | None = None) -> list[TraceEventRecord]:
        await anyio.lowlevel.checkpoint()
        floor = after if after is not None else 0
        return [e for e in self._events.get(run_id, ()) if e.seq > floor]

    async def list_owners(self) -> list[OwnerRecord]:
        await anyio.lowlevel.checkpoint()
        return [self._owners[k] for k in sorted(self._owners)]

    async def get_sweep(self, sweep_id: str) -> SweepRecord | None:
        await anyio.lowlevel.checkpoint()
        return self._sweeps.get(sweep_id)

    async def list_sweeps(
        self, *, experiment_id: str | None = None, limit: int = 50
    ) -> list[SweepRecord]:
        await anyio.lowlevel.checkpoint()
        found = [
            s
            for s in reversed(self._sweeps.values())
            if experiment_id is None or s.experiment_id == experiment_id
        ]
        return found[:limit]

    async def list_sweep_points(self, sweep_id: str) -> list[SweepPointRecord]:
        await anyio.lowlevel.checkpoint()
        return list(self._sweep_points.get(sweep_id, ()))

    async def get_cached_result(self, key: str) -> CachedResult | None:
        await anyio.lowlevel.checkpoint()
        return self._results.get(key)

    async def get_environment(self, env_id: str) -> EnvironmentRecord | None:
        await anyio.lowlevel.checkpoint()
        return self._environments.get(env_id)

    async def get_definitions(self, ids: Sequence[str]) -> dict[str, DefinitionRecord]:
        await anyio.lowlevel.checkpoint()
        return {i: self._definitions[i] for i in ids if i in self._definitions}

    async def list_cached_results(
        self, *, stage: str | None = None, limit: int = 100
    ) -> list[CachedResult]:
        await anyio.lowlevel.checkpoint()
        found = [
            _replace(r, result=b"")
            for r in reversed(self._results.values())
            if stage is None or r.stage == stage
        ]
        return found[:limit]

    schema_version = 0

    async def migrate(self) -> list[str]:
        """Do nothing: a memory store has no schema. Returns no migration names."""
        await anyio.lowlevel.checkpoint()
        return []

    # -- deleting runs and reclaiming space (the SQL stores' rules: see store._reclaim) ----

    async def delete_runs(
        self,
        run_ids: Sequence[str] = (),
        *,
        older_than: timedelta | None = None,
        status: str | None = None,
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> DeletedRuns:
        """Delete runs and every record of them; see ``Store.delete_runs``."""
        check_delete_args(run_ids, older_than, status)
        await anyio.lowlevel.checkpoint()
        skipped: list[str] = []
        if run_ids:
            targets = list(dict.fromkeys(run_ids))
            for run_id in targets:
                if run_id not in self._runs:
                    raise RunNotFound(run_id, store=self._name)
            for run_id in targets:
                if self._runs[run_id].status in LIVE_STATUSES:
                    raise RunStillRunning(
                        run_id, status=self._runs[run_id].status, store=self._name
                    )
        else:
            at = now if now is not None else datetime.now(UTC)
            bound = None if older_than is None else at - older_than
            targets = []
            for run_id in sorted(self._seq, key=self._seq.__getitem__):
                run = self._runs[run_id]
                when = run.finished_at or run.started_at
                if status is not None and run.status != status:
                    continue
                if bound is not None and (when is None or when >= bound):
                    continue
                (skipped if run.status in LIVE_STATUSES else targets).append(run_id)
        if not targets:
            return DeletedRuns(skipped=skipped)
        gone = set(targets)
        touched = {
            sweep_id
            for sweep_id, points in self._sweep_points.items()
            if any(p.run_id in gone for p in points)
        }
        emptied = sorted(s for s in touched if all(p.run_id in gone for p in self._sweep_points[s]))
        result = DeletedRuns(
            run_ids=targets,
            skipped=skipped,
            attempts=sum(len(self._attempts.get(r, {})) for r in targets),
            checkpoints=sum(len(self._checkpoints.get(r, {})) for r in targets),
            checkpoint_bytes=sum(
                len(c.data) for r in targets for c in self._checkpoints.get(r, {}).values()
            ),
            events=sum(len(self._events.get(r, ())) for r in targets),
            artifacts=sum(len(self._artifacts.get(r, ())) for r in targets),
            sweep_points=sum(1 for s in touched for p in self._sweep_points[s] if p.run_id in gone),
            sweeps=len(emptied),
        )
        if dry_run:
            return result
        for run_id in targets:
            del self._runs[run_id]
            del self._seq[run_id]
            for table in (self._attempts, self._checkpoints, self._artifacts, self._events):
                table.pop(run_id, None)
        for sweep_id in touched:
            self._sweep_points[sweep_id] = [
                p for p in self._sweep_points[sweep_id] if p.run_id not in gone
            ]
        for sweep_id in emptied:
            del self._sweep_points[sweep_id]
            del self._sweeps[sweep_id]
        return result

    async def gc(self, *, now: datetime | None = None) -> GcResult:
        """Delete orphaned cached results and unreferenced blobs; see ``Store.gc``."""
        await anyio.lowlevel.checkpoint()
        at = now if now is not None else datetime.now(UTC)
        blobs: BlobStore | None = getattr(self, "blobs", None)
        before = self._bytes(blobs)
        live = [r for r in self._runs.values() if r.status in LIVE_STATUSES]
        starts = [at if r.started_at is None else r.started_at for r in live]
        before_cutoff = cutoff(at, min(starts, default=None), len(self._owners))
        orphans = [r for r in self._results.values() if r.run_id not in self._runs]
        keep: set[str] = set()
        for r in orphans:
            del self._results[r.key]
            if live:  # a live run may have hit it and not committed its checkpoint yet
                keep |= digests_in(r.result)
        deleted = freed = spared = 0
        if blobs is not None and blob_usage(blobs)[0]:
            for checkpoints in self._checkpoints.values():
                for c in checkpoints.values():
                    keep |= digests_in(c.data)
            for r in self._results.values():
                keep |= digests_in(r.result)
            deleted, freed, spared, _ = sweep_blobs(blobs, keep, before_cutoff.timestamp())
        return GcResult(
            cached_results=len(orphans),
            cached_bytes=sum(r.size for r in orphans),
            blobs=deleted,
            blob_bytes=freed,
            blobs_kept=spared,
            bytes_before=before,
            bytes_after=self._bytes(blobs),
        )

    def _bytes(self, blobs: BlobStore | None) -> int:
        """The bytes of the checkpoints, cached results and blobs held."""
        held = sum(len(c.data) for cs in self._checkpoints.values() for c in cs.values())
        held += sum(len(r.result) for r in self._results.values())
        return held + blob_usage(blobs)[1]

    def _fence(self, run_id: str, owner_id: str | None) -> None:
        """Refuse a write by ``owner_id`` to a run another owner holds now (fencing)."""
        run = self._runs.get(run_id)
        if owner_id is not None and run is not None and run.owner_id != owner_id:
            raise OwnershipLost(run_id, owner_id=run.owner_id, store=self._name)

    async def adoption_probe(self) -> tuple[set[str | None], int]:
        """Return the owners of the ``running`` and ``pending`` runs and how many runs are
        ``interrupted``."""
        await anyio.lowlevel.checkpoint()
        runs = self._runs.values()
        owners = {run.owner_id for run in runs if run.status in LIVE_STATUSES}
        return owners, sum(1 for run in runs if run.status == "interrupted")
