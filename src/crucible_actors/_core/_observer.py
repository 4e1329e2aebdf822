"""The store observer: one run's life written to a Store.

:class:`StoreObserver` implements the run supervisor's
:class:`~crucible_actors._core._instruments.RunObserver` hooks for one run, on behalf of
a :class:`~crucible_actors._core._persist.Persistence` (which owns the store, the clock
and this process's owner id). It records the run (with the initial Context, unless
recovery resumed it from the checkpoint the store already holds) when it starts, commits
the Context snapshot before every stage, records each stage attempt, and stores the
outcome with the final Context, the artifacts and the trace events when the run ends:
one commit per stage boundary.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ._encoding import decode_context
from ._errors import OwnershipLost, StoreError
from ._instruments import RunObserver
from ._records import artifacts_from_context, as_stored_json, events_from_context
from ._store import Checkpoint, ExperimentRecord, RunRecord, StageAttempt

if TYPE_CHECKING:
    from ._handle import AttemptRecord, RunHandle
    from ._persist import Persistence

__all__ = ["StoreObserver"]

log = logging.getLogger("crucible_actors")


class StoreObserver(RunObserver):
    """Writes one run's life to the store (one instance per run).

    A *completed* attempt is not written on its own: the run supervisor checkpoints
    right after it, and the attempt commits in that checkpoint's transaction, so each
    stage boundary costs one commit. Should the process die in between, the attempt
    and the checkpoint it led to are lost together and the stage runs again on resume,
    which is consistent. Failed, timed-out and cancelled attempts are written at once.
    Likewise the final Context (the checkpoint after the last stage) commits with the
    run's outcome, so a run is never stored completed without it, nor the other way.

    The checkpoint after a stage served from the result cache is not written: a resume
    from the checkpoint before it finds the same cached result again, so the commit
    would buy nothing (a re-run of a cached sweep would pay one per stage). The hit's
    attempt record waits in the pending list for the next commit.
    """

    __slots__ = ("_after_hit", "_final", "_last", "_p", "_pending", "_started")

    def __init__(self, persistence: Persistence) -> None:
        self._p = persistence
        self._started = False
        self._last: tuple[int, bytes] | None = None
        self._pending: list[StageAttempt] = []
        self._final: Checkpoint | None = None
        self._after_hit = False

    async def run_started(self, handle: RunHandle, snapshot: bytes) -> None:
        p = self._p
        now = p.now()
        exp = handle.experiment
        # Recovery resumes from the store's own checkpoint: the store holds these bytes.
        recovered = p._take_resuming(handle.run_id)
        resume = recovered or handle.resumed_from > 0
        definition, tags, metadata = p._experiment_fields(exp)
        experiment = ExperimentRecord(
            id=exp.id,
            definition=definition,
            owner=exp.owner,
            tags=tags,
            metadata=metadata,
            created_at=now,
            updated_at=now,
        )
        run = RunRecord(
            id=handle.run_id,
            experiment_id=exp.id,
            status="running",
            metadata={"resumed_from": handle.resumed_from},
            started_at=now,
            owner_id=p.owner.id,
        )
        checkpoint = (
            None
            if recovered
            else Checkpoint(
                run_id=handle.run_id, index=handle.resumed_from, data=snapshot, created_at=now
            )
        )
        await p.store.start_run(run, experiment=experiment, checkpoint=checkpoint, resume=resume)
        self._started = True
        self._last = (handle.resumed_from, snapshot)

    async def checkpoint(self, handle: RunHandle, index: int, snapshot: bytes) -> None:
        if self._after_hit:
            self._after_hit = False
            if index < len(handle.experiment.pipeline):
                return  # the stage before was a cache hit: see the class docstring
        last = self._last
        # run_started already committed the snapshot before the first stage.
        if (
            not self._pending
            and last is not None
            and last[0] == index
            and (last[1] is snapshot or last[1] == snapshot)
        ):
            return
        p = self._p
        if handle.run_id in p.lost:
            return  # another runtime took the run over: it stops here, writing nothing
        checkpoint = Checkpoint(
            run_id=handle.run_id,
            index=index,
            data=snapshot,
            created_at=p.now(),
            owner_id=p.owner.id,
        )
        if index >= len(handle.experiment.pipeline):
            self._final = checkpoint  # commits with the outcome, in run_finished
            self._last = (index, snapshot)
            return
        # The attempts stay pending until the write returns: a write cancelled by a
        # shutdown is retried with them when the interrupted run checkpoints.
        try:
            await p.store.save_checkpoint(checkpoint, attempts=self._pending)
        except OwnershipLost as exc:
            self._taken_over(handle, exc)
            raise
        self._pending = []
        self._last = (index, snapshot)

    async def attempt_finished(self, handle: RunHandle, record: AttemptRecord) -> None:
        p = self._p
        now = p.now()
        duration = None if record.finished is None else max(0.0, record.finished - record.started)
        attempt = StageAttempt(
            run_id=handle.run_id,
            index=record.index,
            stage=record.stage,
            attempt=record.attempt,
            status=record.status,
            started_at=now - timedelta(seconds=duration or 0.0),
            finished_at=now,
            duration=duration,
            error=record.error,
            cache_hit=record.cache_hit,
            owner_id=p.owner.id,
        )
        if handle.run_id in p.lost:
            return  # another runtime took the run over: nothing more is written
        if record.status == "completed":
            self._pending.append(attempt)
            self._after_hit = record.cache_hit
        else:
            try:
                await p.store.record_attempt(attempt)
            except OwnershipLost as exc:
                self._taken_over(handle, exc)
                raise

    async def run_finished(self, handle: RunHandle, final: bytes | None) -> None:
        if not self._started:
            return  # run_started failed: the row may belong to another run; leave it
        p = self._p
        if handle.run_id in p.lost:
            return  # taken over by another runtime (logged then): not written over
        try:
            ctx = handle.context
            if ctx is None and self._last is not None:
                ctx = decode_context(final if final is not None else self._last[1])
            metadata: dict[str, Any] = {"resumed_from": handle.resumed_from}
            if ctx is not None:
                for key in ("completed_stages", "skipped_stages"):
                    if key in ctx.assigns:
                        metadata[key] = as_stored_json(ctx.assigns[key])
            run = RunRecord(
                id=handle.run_id,
                experiment_id=handle.experiment.id,
                status=handle.status.value,
                metrics=as_stored_json(ctx.metrics) if ctx is not None else {},
                outputs=as_stored_json(ctx.outputs) if ctx is not None else [],
                metadata=metadata,
                failure=as_stored_json(handle._failure_summary()),
                finished_at=p.now(),
                owner_id=p.owner.id,
            )
            artifacts = artifacts_from_context(ctx) if ctx is not None else []
            events = events_from_context(ctx) if ctx is not None else []
            pending, self._pending = self._pending, []
            await p.store.finish_run(
                run, artifacts=artifacts, events=events, attempts=pending, checkpoint=self._final
            )
        except OwnershipLost as exc:
            self._taken_over(handle, exc)
        except StoreError as exc:
            # The outcome is decided and the handle holds it; a store that fails now
            # leaves the row ``running`` under this owner, and the next start after this
            # process ends marks it interrupted (or resumes it).
            log.error("could not store the outcome of run %s: %s", handle.run_id, exc)
        except Exception:
            log.exception("could not store the outcome of run %s", handle.run_id)

    def _taken_over(self, handle: RunHandle, exc: OwnershipLost) -> None:
        """Record (and log, once) that another runtime owns the run now: stop writing."""
        lost = self._p.lost
        if handle.run_id in lost:
            return
        lost[handle.run_id] = exc.owner_id
        log.warning(
            "run %s stops here: runtime %s took it over after this runtime lost its lease "
            "on the store; nothing more of it is written from here",
            handle.run_id,
            exc.owner_id,
        )
