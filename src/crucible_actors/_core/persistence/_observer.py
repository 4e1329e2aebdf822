"""The store observer: one run's life written to a Store.

:class:`StoreObserver` implements the run supervisor's
:class:`~crucible_actors._core._instruments.RunObserver` hooks for one run, on behalf of
a :class:`~crucible_actors._core.persistence._persistence.Persistence` (which owns the
store, the clock and this process's owner id). It records the run (with the initial
Context, unless recovery resumed it from the checkpoint the store already holds) and its
provenance (``_provenance.py``) when it starts, commits the Context snapshot before
every stage, records each stage attempt, and stores the outcome with the final Context,
the artifacts and the trace events when the run ends: one commit per stage boundary.

The outcome is kept until it is stored (``run_finished``): a store that is unavailable
(connection lost, disk full) is retried with backoff until the write lands or the run's
grace deadline passes (the runtime is closing); an outcome that cannot be encoded (a
metric nested too deeply) is stored as ``failed`` with a short reason instead, and the
handle says so too. An outcome that still could not be stored ends the handle
``interrupted`` with :class:`~crucible_actors._core._errors.OutcomeNotStored`, never
``completed``: the store and the caller never disagree on a finished run.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio

from .._encoding import decode_context, to_json_safe
from .._errors import (
    MessageError,
    OutcomeNotStored,
    OwnershipLost,
    ResumeLimitExceeded,
    RunNotFound,
    StageFailed,
    StoreUnavailable,
)
from .._handle import RunStatus
from .._instruments import RunObserver
from ._records import artifacts_from_context, events_from_context
from ._store import Checkpoint, ExperimentRecord, RunRecord, StageAttempt

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._handle import AttemptRecord, RunHandle
    from ._persistence import Persistence
    from ._store import ArtifactRecord, TraceEventRecord

__all__ = ["StoreObserver"]

log = logging.getLogger("crucible_actors")

#: Seconds before the first retry of an outcome write, and the cap of the backoff.
RETRY_FIRST = 0.05
RETRY_MAX = 2.0
#: Seconds an outcome write is retried for on a store that does not say how long its
#: own writes retry (``retry_for``); a store that does retried that long already.
RETRY_FOR = 60.0
#: Longest stored failure message and store-error text quoted in a reason.
_MESSAGE_MAX = 2000
#: Statuses an unencodable outcome keeps (a completed one becomes failed).
_KEPT = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED})


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
        if self._started:
            return  # Runtime.submit recorded it before starting the run's task
        p = self._p
        now = p.now()
        exp = handle.experiment
        # Recovery resumes from the store's own checkpoint: the store holds these bytes.
        recovered = p.recovery.take_resuming(handle.run_id)
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
        # A resumed run keeps the provenance of its first start (the store leaves it).
        recorder = p.provenance
        provenance = (
            await recorder.for_run(exp, snapshot, definition)
            if recorder is not None and not resume
            else None
        )
        count = 0
        if resume:
            # This resume's number, from the row the claim gave this runtime: stored as
            # is (not incremented), so a write the store retries counts it once.
            try:
                count = (await p.store.get_run(handle.run_id)).resume_count + 1
            except RunNotFound:
                count = 1
        run = RunRecord(
            id=handle.run_id,
            experiment_id=exp.id,
            status="running",
            metadata={"resumed_from": handle.resumed_from},
            started_at=now,
            owner_id=p.owner.id,
            provenance=provenance,
            resume_count=count,
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
        if resume and p.max_resumes is not None and count > p.max_resumes:
            # The store counted this resume in the row; a run that never finishes is
            # failed rather than resumed at every start forever.
            raise ResumeLimitExceeded(handle.run_id, resumes=count, limit=p.max_resumes)

    async def pending_started(self, handle: RunHandle, snapshot: bytes) -> None:
        """Start the run from its ``pending`` row (a sweep point recorded with its sweep).

        The row and its initial checkpoint exist already; the conditional update starts
        it only while this runtime owns it.

        Raises:
            OwnershipLost: another runtime took the point over (this one lost its lease).
        """
        p = self._p
        start: Any = getattr(p.store, "start_pending", None)  # optional (see Store)
        assert start is not None, "pending runs exist only on stores with start_pending"
        recorder = p.provenance
        provenance = None
        if recorder is not None:
            definition = p._experiment_fields(handle.experiment)[0]
            provenance = await recorder.for_run(handle.experiment, snapshot, definition)
        if not await start(
            handle.run_id,
            owner_id=p.owner.id,
            started_at=p.now(),
            metadata={"resumed_from": handle.resumed_from},
            provenance=provenance,
        ):
            owner: str | None = None
            with contextlib.suppress(RunNotFound):
                owner = (await p.store.get_run(handle.run_id)).owner_id
            raise OwnershipLost(handle.run_id, owner_id=owner, store=p.store.name)
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
        pending, self._pending = self._pending, []
        try:
            run, artifacts, events = self._outcome(handle, final)
        except Exception as exc:  # the outcome does not encode: store the run failed
            reason = _describe(exc)
            log.error(
                "run %s: its outcome cannot be stored (%s); storing it failed",
                handle.run_id,
                reason,
            )
            await self._store(
                handle, self._unencodable(handle, reason), [], [], pending, None, reason
            )
            return
        await self._store(handle, run, artifacts, events, pending, self._final, None)

    def _outcome(
        self, handle: RunHandle, final: bytes | None
    ) -> tuple[RunRecord, list[ArtifactRecord], list[TraceEventRecord]]:
        """The run's row, artifacts and events as stored (raises if they do not encode)."""
        p = self._p
        ctx = handle.context
        if ctx is None and self._last is not None:
            ctx = decode_context(final if final is not None else self._last[1])
        metadata: dict[str, Any] = {"resumed_from": handle.resumed_from}
        if ctx is not None:
            for key in ("completed_stages", "skipped_stages"):
                if key in ctx.assigns:
                    metadata[key] = _stored(f"assigns[{key!r}]", ctx.assigns[key])
        run = RunRecord(
            id=handle.run_id,
            experiment_id=handle.experiment.id,
            status=handle.status.value,
            metrics=_stored("metrics", ctx.metrics) if ctx is not None else {},
            outputs=_stored("outputs", ctx.outputs) if ctx is not None else [],
            metadata=metadata,
            failure=_short_failure(_stored("failure", handle.failure)),
            finished_at=p.now(),
            owner_id=p.owner.id,
        )
        artifacts = _stored_part("artifacts", artifacts_from_context, ctx)
        events = _stored_part("trace events", events_from_context, ctx)
        return run, artifacts, events

    def _unencodable(self, handle: RunHandle, reason: str) -> RunRecord:
        """The row of a run whose outcome does not encode: failed, saying why."""
        p = self._p
        summary = handle.failure
        if handle.status is RunStatus.COMPLETED or summary is None:
            summary = {
                "stage": None,
                "reason_type": "MessageError",
                "message": f"the run's outcome cannot be stored: {reason}",
                "attempts": 1,
            }
        else:  # keep why it failed (or was cancelled), say what could not be kept
            summary = {
                **summary,
                "message": f"{summary.get('message')} (outcome not stored: {reason})",
            }
        return RunRecord(
            id=handle.run_id,
            experiment_id=handle.experiment.id,
            status=handle.status.value if handle.status in _KEPT else RunStatus.FAILED.value,
            metadata={"resumed_from": handle.resumed_from},
            failure=_short_failure(to_json_safe(summary, finite=True)),
            finished_at=p.now(),
            owner_id=p.owner.id,
        )

    async def _store(
        self,
        handle: RunHandle,
        run: RunRecord,
        artifacts: Sequence[ArtifactRecord],
        events: Sequence[TraceEventRecord],
        attempts: Sequence[StageAttempt],
        checkpoint: Checkpoint | None,
        unencodable: str | None,
    ) -> None:
        """Write the outcome until it lands; make the handle say what the store says.

        Shielded: the outcome is decided and must not be dropped halfway by a cancel;
        retries stop at the handle's grace deadline (set when the runtime closes or the
        run is cancelled).
        """
        p = self._p
        delay = RETRY_FIRST
        # One bound, the store's: its writes already retried a transient fault for
        # ``retry_for`` seconds before raising; the outcome gets as long again, then is
        # reported not stored (sooner if the runtime closes or the run is cancelled).
        bound: float = getattr(p.store, "retry_for", RETRY_FOR)
        give_up: float | None = None
        retried = 0
        with anyio.CancelScope(shield=True):
            while True:
                try:
                    await p.store.finish_run(
                        run,
                        artifacts=artifacts,
                        events=events,
                        attempts=attempts,
                        checkpoint=checkpoint,
                    )
                except StoreUnavailable as exc:  # transient: keep the outcome, retry
                    now = anyio.current_time()
                    if give_up is None:
                        give_up = now + bound
                    left = min(handle.grace_deadline, give_up) - now
                    if left <= 0:
                        self._not_stored(handle, exc)
                        return
                    if not retried:
                        log.warning(
                            "run %s: storing its outcome failed (%s); retrying until it is stored",
                            handle.run_id,
                            _clip(str(exc)),
                        )
                    retried += 1
                    await anyio.sleep(min(delay, left))
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                except OwnershipLost as exc:  # another runtime owns the run: not ours to write
                    self._taken_over(handle, exc)
                    self._not_stored(handle, exc)
                    return
                except Exception as exc:  # a StoreError, or a store's own encoding error
                    if unencodable is None:
                        # Refused for good: perhaps for its content (a value the driver
                        # cannot write), so store the run failed without it. A run
                        # another runtime took over is refused again, and reported.
                        unencodable = _describe(exc)
                        log.error(
                            "run %s: the store refused its outcome (%s); storing it failed",
                            handle.run_id,
                            unencodable,
                        )
                        run = self._unencodable(handle, unencodable)
                        artifacts, events = [], []
                        checkpoint = None
                        continue
                    self._not_stored(handle, exc)
                    return
                if retried:
                    log.warning(
                        "run %s: its outcome was stored after %d retries", handle.run_id, retried
                    )
                if unencodable is not None:
                    self._mark_unencodable(handle, run)
                return

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

    def _mark_unencodable(self, handle: RunHandle, run: RunRecord) -> None:
        """Make the handle agree with the failed row stored instead of its outcome."""
        if handle.status.value == run.status:
            return  # already failed (or cancelled): the reason is in the row
        failure = run.failure or {}
        reason = MessageError(str(failure.get("message")))
        handle._replace_outcome(
            RunStatus.FAILED, StageFailed("<outcome>", reason, None, run_id=handle.run_id)
        )

    def _not_stored(self, handle: RunHandle, exc: Exception) -> None:
        """Report on the handle that the outcome never reached the store."""
        outcome = handle.status.value
        log.error(
            "run %s: its outcome (%s) could not be stored: %s",
            handle.run_id,
            outcome,
            _clip(str(exc)),
        )
        err = OutcomeNotStored(handle.run_id, outcome, _clip(str(exc)), store=self._p.store.name)
        err.__cause__ = exc
        handle._replace_outcome(RunStatus.INTERRUPTED, err)


def _clip(text: str, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    """A one-line reason for an outcome that does not encode."""
    if isinstance(exc, MessageError):
        return _clip(str(exc))
    hint = " (a value nested too deeply?)" if isinstance(exc, RecursionError) else ""
    return _clip(f"{type(exc).__name__}: {exc}") + hint


def _stored(part: str, value: Any) -> Any:
    try:
        return to_json_safe(value, finite=True)
    except MessageError:
        raise
    except Exception as exc:  # RecursionError, ...: name the part
        raise MessageError(f"{part}: {_describe(exc)}") from exc


def _stored_part(part: str, fn: Any, ctx: Any) -> Any:
    if ctx is None:
        return []
    try:
        return fn(ctx)
    except MessageError:
        raise
    except Exception as exc:
        raise MessageError(f"{part}: {_describe(exc)}") from exc


def _short_failure(failure: dict[str, Any] | None) -> dict[str, Any] | None:
    """``failure`` with its message cut to a readable length (tracebacks can be huge)."""
    if failure is None:
        return None
    message = failure.get("message")
    if isinstance(message, str) and len(message) > _MESSAGE_MAX:
        cut = len(message) - _MESSAGE_MAX
        return {**failure, "message": f"{message[:_MESSAGE_MAX]}... ({cut} more characters)"}
    return failure
