"""Persistence of runs: the run observer that writes a run's life to a Store, and recovery.

:func:`open_persistence` wraps a :class:`~crucible_actors._core._store.Store` (or opens
one from a URL) into a :class:`Persistence`, which :func:`open_runtime` uses in three
ways:

- ``observer()`` gives each run a :class:`RunObserver` that records the run (with the
  initial Context) when it starts, commits the Context snapshot before every stage,
  records each stage attempt, and stores the outcome with the final Context, the
  artifacts and the trace events when the run ends: one commit per stage boundary
  (see :class:`_StoreObserver`). Every write is acknowledged only once durable, so a
  crash loses at most the stage that was executing, which runs again on resume.
- ``recover(runtime, on_start)`` finds runs left ``running`` by a dead process and
  resumes each from its last checkpoint (``"resume"``), marks it ``interrupted``
  (``"mark_interrupted"``) or leaves it (``"ignore"``).
- While open it registers an *owner* row (id, host, pid) and heartbeats it every
  ``heartbeat_interval`` seconds. An owner is dead when its heartbeat is older than
  ``stale_after`` seconds, or, for a store local to one host, when its process is gone
  on this host. Runs of a dead owner are claimed with a conditional update (``... WHERE
  owner = old``), so two processes never take over the same run. The heartbeat task
  stops, and the owner row is removed, when the persistence closes.

A store error raised by a hook fails the run without retrying the stage: the run
supervisor treats observer errors as run failures, outside the stage's restart loop.
Only :meth:`RunObserver.run_finished` swallows (and logs) store errors, since by then
the run's outcome is decided and the runtime must keep running.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from ._encoding import decode_context
from ._encoding import sanitize as _sanitize
from ._errors import CheckpointDecodeError, MessageError, StoreError
from ._instruments import RunObserver
from ._ir import stage_ref_name
from ._stage import coerce_stage
from ._store import (
    ArtifactRecord,
    Checkpoint,
    ExperimentRecord,
    OwnerRecord,
    RunRecord,
    StageAttempt,
    TraceEventRecord,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from ._context import Context
    from ._handle import AttemptRecord, RunHandle
    from ._ir import Experiment
    from ._runtime import Runtime
    from ._store import Store

__all__ = [
    "Persistence",
    "RecoveryReport",
    "artifacts_from_context",
    "decode_checkpoint",
    "events_from_context",
    "open_persistence",
    "owner_is_dead",
]

log = logging.getLogger("crucible_actors")

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def sanitize(value: Any) -> Any:
    """Return the JSON-safe form of ``value`` stored in records (tuples become lists).

    :func:`~crucible_actors._core._encoding.sanitize` leaves tuples as tuples, which a
    JSON column turns into lists; going through JSON once makes every store return the
    same values.
    """
    if not value and isinstance(value, dict | list | tuple):
        return {} if isinstance(value, dict) else []  # the common empty metrics/outputs
    return _json_decode(_json_encode(_sanitize(value)))


_LIST_PAGE = 500


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _pid_alive(pid: int) -> bool:
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
    pid_alive: Callable[[int], bool] = _pid_alive,
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


def decode_checkpoint(checkpoint: Checkpoint, *, store: str) -> Context:
    """Decode a stored checkpoint.

    Raises:
        CheckpointDecodeError: the bytes were written by an incompatible version.
    """
    try:
        return decode_context(checkpoint.data)
    except MessageError as exc:
        raise CheckpointDecodeError(
            f"the checkpoint of run {checkpoint.run_id!r} before stage {checkpoint.index} "
            f"does not decode ({exc}); it was probably written by an incompatible version "
            "of crucible-actors, so the run cannot be resumed",
            store=store,
        ) from exc


def _aware(ts: datetime | None) -> datetime | None:
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


def artifacts_from_context(ctx: Context) -> list[ArtifactRecord]:
    """Return the artifact records of ``ctx``: the ``artifacts`` entries with a location.

    An entry is a dict with ``location`` (and optionally ``name``, ``type``, ``format``,
    ``metadata``), or a list of such dicts; other entries are not files and are skipped.
    Keys other than those five go into ``metadata``.
    """
    out: list[ArtifactRecord] = []
    for key, value in ctx.artifacts.items():
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("location") is None:
                continue
            extra = {
                k: v
                for k, v in entry.items()
                if k not in ("name", "type", "location", "format", "metadata")
            }
            meta = entry.get("metadata")
            if isinstance(meta, dict):
                extra.update(meta)
            kind, fmt = entry.get("type"), entry.get("format")
            out.append(
                ArtifactRecord(
                    run_id=ctx.run_id,
                    name=str(entry.get("name") or key),
                    type=None if kind is None else str(kind),
                    location=str(entry["location"]),
                    format=None if fmt is None else str(fmt),
                    metadata=sanitize(extra),
                    key=str(key),
                )
            )
    return out


def events_from_context(ctx: Context) -> list[TraceEventRecord]:
    """Return the decision-trace events of ``ctx`` as records, ``seq`` from 1."""
    if ctx.trace is None:
        return []
    return [
        TraceEventRecord(
            run_id=ctx.run_id,
            seq=i,
            type=ev.type,
            stage_id=ev.stage_id,
            timestamp=_aware(ev.timestamp),
            event=sanitize(ev),
        )
        for i, ev in enumerate(ctx.trace.events, 1)
    ]


def _restore_labels(exp: Experiment) -> Experiment:
    """Name the stages that were given as objects, as they were named before encoding.

    A stored definition holds a stage object as its ``"module:qualname"`` reference, so
    an unnamed StageDef would be labelled by that reference after a resume; naming it
    after the stage keeps attempts and ``completed_stages`` consistent across the resume.
    A reference that does not import is left alone: the run then fails on it, clearly.
    """
    pipeline = list(exp.pipeline)
    changed = False
    for i, sd in enumerate(pipeline):
        if sd.name is None and isinstance(sd.stage, str):
            try:
                label = stage_ref_name(coerce_stage(sd.stage, where=sd.stage))
            except Exception:  # reported, clearly, when the stage runs
                continue
            pipeline[i] = msgspec.structs.replace(sd, name=label)
            changed = True
    return msgspec.structs.replace(exp, pipeline=pipeline) if changed else exp


class RecoveryReport(msgspec.Struct, frozen=True):
    """What :meth:`Persistence.recover` did with the orphaned runs it found."""

    resumed: list[str] = []
    interrupted: list[str] = []
    skipped: list[str] = []


class Persistence:
    """A store plus this process's owner identity; obtain one with :func:`open_persistence`."""

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
    ) -> None:
        self.store = store
        self.now = now
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self.pid_alive = pid_alive
        started = now()
        self.owner = OwnerRecord(
            id=uuid.uuid4().hex, host=host, pid=pid, started_at=started, heartbeat_at=started
        )
        self.last_recovery = RecoveryReport()
        self._resuming: set[str] = set()
        self._definitions: dict[int, tuple[Experiment, tuple[dict[str, Any], list[Any], Any]]] = {}

    def observer(self) -> RunObserver:
        """Return a fresh observer for one run."""
        return _StoreObserver(self)

    # -- recovery -----------------------------------------------------------------

    async def recover(self, runtime: Runtime, on_start: str) -> RecoveryReport:
        """Handle runs left ``running`` by dead processes, per ``on_start``.

        ``"resume"`` claims each orphan and resumes it from its last checkpoint (a run
        whose checkpoint no longer decodes is marked interrupted instead, with the
        reason as its failure); ``"mark_interrupted"`` marks it interrupted;
        ``"ignore"`` does nothing. Runs of live owners are never touched. Waits while
        the runtime's ``max_concurrent_runs`` are busy.
        """
        if on_start == "ignore":
            return self.last_recovery
        store = self.store
        running: list[RunRecord] = []
        before: str | None = None
        while True:
            page = await store.list_runs(status="running", limit=_LIST_PAGE, before=before)
            running.extend(page)
            if len(page) < _LIST_PAGE:
                break
            before = page[-1].id
        # Runs are listed before owners: an owner registers before its first run, so a
        # live owner of any listed run is in the owner list read afterwards.
        owners = {o.id: o for o in await store.list_owners()}
        now = self.now()
        dead: set[str | None] = set()
        resumed: list[str] = []
        interrupted: list[str] = []
        skipped: list[str] = []
        for run in running:
            if run.owner_id == self.owner.id:
                continue
            if not owner_is_dead(
                owners.get(run.owner_id or ""),
                now=now,
                stale_after=self.stale_after,
                host=self.owner.host,
                local=store.local,
                pid_alive=self.pid_alive,
            ):
                continue
            dead.add(run.owner_id)
            if on_start == "resume":
                if not await store.claim_run(
                    run.id, status="running", owner_id=run.owner_id, new_owner_id=self.owner.id
                ):
                    skipped.append(run.id)  # another process claimed it first
                    continue
                try:
                    await self._resume_claimed(runtime, run.id)
                except CheckpointDecodeError as exc:
                    log.warning("cannot resume run %s: %s", run.id, exc)
                    await self._interrupt(run.id, self.owner.id, exc)
                    interrupted.append(run.id)
                    continue
                resumed.append(run.id)
            elif await self._interrupt(run.id, run.owner_id, None, owners.get(run.owner_id or "")):
                interrupted.append(run.id)
            else:
                skipped.append(run.id)
        for owner_id in dead:
            if owner_id is not None and owner_id in owners:
                await store.remove_owner(owner_id)
        self.last_recovery = RecoveryReport(resumed, interrupted, skipped)
        return self.last_recovery

    async def resume_run(self, runtime: Runtime, run_id: str) -> RunHandle:
        """Resume run ``run_id`` from its last checkpoint and return its handle.

        The run may be failed, cancelled, interrupted, or running under a dead owner; a
        failed run re-runs the stage that failed.

        Raises:
            RunNotFound: no such run.
            StoreError: the run completed, is running in a live process, or another
                process claimed it first.
            CheckpointDecodeError: its checkpoint no longer decodes (the run is then
                marked interrupted with that reason).
        """
        store = self.store
        run = await store.get_run(run_id)
        if run.status == "completed":
            raise StoreError(
                f"run {run_id!r} already completed; nothing to resume", store=store.name
            )
        if run.status == "running":
            owners = {o.id: o for o in await store.list_owners()}
            owner = owners.get(run.owner_id or "")
            if run.owner_id == self.owner.id or not owner_is_dead(
                owner,
                now=self.now(),
                stale_after=self.stale_after,
                host=self.owner.host,
                local=store.local,
                pid_alive=self.pid_alive,
            ):
                where = f" in process {owner.pid} on {owner.host}" if owner is not None else ""
                raise StoreError(
                    f"run {run_id!r} is still running{where}; cancel it there first",
                    store=store.name,
                )
        if not await store.claim_run(
            run_id, status=run.status, owner_id=run.owner_id, new_owner_id=self.owner.id
        ):
            raise StoreError(
                f"run {run_id!r} was changed by another process while resuming; try again",
                store=store.name,
            )
        try:
            return await self._resume_claimed(runtime, run_id)
        except CheckpointDecodeError as exc:
            await self._interrupt(run_id, self.owner.id, exc)
            raise

    async def _resume_claimed(self, runtime: Runtime, run_id: str) -> RunHandle:
        checkpoint = await self.store.load_checkpoint(run_id)
        if checkpoint is None:
            raise CheckpointDecodeError(
                f"run {run_id!r} has no checkpoint to resume from", store=self.store.name
            )
        ctx = decode_checkpoint(checkpoint, store=self.store.name)
        experiment = _restore_labels(ctx.experiment)
        self._resuming.add(run_id)
        try:
            return await runtime.resume(experiment, run_id, checkpoint.data, checkpoint.index)
        except BaseException:
            self._resuming.discard(run_id)
            raise

    async def _interrupt(
        self,
        run_id: str,
        owner_id: str | None,
        exc: Exception | None,
        owner: OwnerRecord | None = None,
    ) -> bool:
        if exc is not None:
            failure = {"stage": None, "reason_type": type(exc).__name__, "message": str(exc)}
        else:
            who = f"pid {owner.pid} on {owner.host}" if owner is not None else "unknown"
            failure = {
                "stage": None,
                "reason_type": "Interrupted",
                "message": f"the runtime process running it ({who}) ended before it finished",
            }
        return await self.store.mark_interrupted(
            run_id, owner_id=owner_id, finished_at=self.now(), failure=failure
        )

    # -- helpers for the observer ---------------------------------------------------

    def _take_resuming(self, run_id: str) -> bool:
        if run_id in self._resuming:
            self._resuming.discard(run_id)
            return True
        return False

    def _experiment_fields(self, exp: Experiment) -> tuple[dict[str, Any], list[Any], Any]:
        """The experiment record's definition, tags and metadata, made once per object.

        Runs of one experiment then reuse them instead of sanitizing the same values
        again for every run.
        """
        hit = self._definitions.get(id(exp))
        if hit is not None and hit[0] is exp:
            return hit[1]
        fields = (sanitize(exp), list(exp.tags), sanitize(exp.metadata))
        if len(self._definitions) > 256:
            self._definitions.clear()
        self._definitions[id(exp)] = (exp, fields)
        return fields

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.heartbeat_interval)
            try:
                if not await self.store.heartbeat(self.owner.id, self.now()):
                    # Another process judged us dead and removed our row; come back, so
                    # runs started from now on are not orphaned at once.
                    await self.store.register_owner(
                        msgspec.structs.replace(self.owner, heartbeat_at=self.now())
                    )
            except StoreError as exc:
                log.warning("heartbeat of owner %s failed: %s", self.owner.id, exc)


class _StoreObserver(RunObserver):
    """Writes one run's life to the store (one instance per run).

    A *completed* attempt is not written on its own: the run supervisor checkpoints
    right after it, and the attempt commits in that checkpoint's transaction, so each
    stage boundary costs one commit. Should the process die in between, the attempt
    and the checkpoint it led to are lost together and the stage runs again on resume,
    which is consistent. Failed, timed-out and cancelled attempts are written at once.
    Likewise the final Context (the checkpoint after the last stage) commits with the
    run's outcome, so a run is never stored completed without it, nor the other way.
    """

    __slots__ = ("_final", "_last", "_p", "_pending", "_started")

    def __init__(self, persistence: Persistence) -> None:
        self._p = persistence
        self._started = False
        self._last: tuple[int, bytes] | None = None
        self._pending: list[StageAttempt] = []
        self._final: Checkpoint | None = None

    async def run_started(self, handle: RunHandle, snapshot: bytes) -> None:
        p = self._p
        now = p.now()
        exp = handle.experiment
        resume = p._take_resuming(handle.run_id) or handle.resumed_from > 0
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
        checkpoint = Checkpoint(
            run_id=handle.run_id, index=handle.resumed_from, data=snapshot, created_at=now
        )
        await p.store.start_run(run, experiment=experiment, checkpoint=checkpoint, resume=resume)
        self._started = True
        self._last = (handle.resumed_from, snapshot)

    async def checkpoint(self, handle: RunHandle, index: int, snapshot: bytes) -> None:
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
        checkpoint = Checkpoint(
            run_id=handle.run_id, index=index, data=snapshot, created_at=p.now()
        )
        if index >= len(handle.experiment.pipeline):
            self._final = checkpoint  # commits with the outcome, in run_finished
            self._last = (index, snapshot)
            return
        pending, self._pending = self._pending, []
        await p.store.save_checkpoint(checkpoint, attempts=pending)
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
        )
        if record.status == "completed":
            self._pending.append(attempt)
        else:
            await p.store.record_attempt(attempt)

    async def run_finished(self, handle: RunHandle, final: bytes | None) -> None:
        if not self._started:
            return  # run_started failed: the row may belong to another run; leave it
        p = self._p
        try:
            ctx = handle.context
            if ctx is None and self._last is not None:
                ctx = decode_context(final if final is not None else self._last[1])
            metadata: dict[str, Any] = {"resumed_from": handle.resumed_from}
            if ctx is not None:
                for key in ("completed_stages", "skipped_stages"):
                    if key in ctx.assigns:
                        metadata[key] = sanitize(ctx.assigns[key])
            run = RunRecord(
                id=handle.run_id,
                experiment_id=handle.experiment.id,
                status=handle.status.value,
                metrics=sanitize(ctx.metrics) if ctx is not None else {},
                outputs=sanitize(ctx.outputs) if ctx is not None else [],
                metadata=metadata,
                failure=sanitize(handle._failure_summary()),
                finished_at=p.now(),
                owner_id=p.owner.id,
            )
            artifacts = artifacts_from_context(ctx) if ctx is not None else []
            events = events_from_context(ctx) if ctx is not None else []
            pending, self._pending = self._pending, []
            await p.store.finish_run(
                run, artifacts=artifacts, events=events, attempts=pending, checkpoint=self._final
            )
        except StoreError as exc:
            # The outcome is decided and the handle holds it; a store that fails now
            # leaves the row ``running`` under this owner, and the next start after this
            # process ends marks it interrupted (or resumes it).
            log.error("could not store the outcome of run %s: %s", handle.run_id, exc)
        except Exception:
            log.exception("could not store the outcome of run %s", handle.run_id)


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
) -> AsyncIterator[Persistence]:
    """Open persistence on ``store`` (a Store, a store URL, a path, or a Persistence).

    A URL is opened with :func:`crucible_actors.store.open_store` and closed on exit; a
    Store object stays open (the caller owns it); a :class:`Persistence` is yielded as
    is, so a caller can share one (and its clock) with :func:`open_runtime`. ``now``
    gives the wall-clock time stored in records and compared with heartbeats.

    Raises:
        StoreError: the store cannot be opened or the owner row cannot be written.
    """
    if isinstance(store, Persistence):
        yield store
        return
    target, is_url = _coerce_store(store)
    if is_url:
        from ..store import open_store

        async with (
            open_store(target) as opened,
            open_persistence(
                opened,
                now=now,
                heartbeat_interval=heartbeat_interval,
                stale_after=stale_after,
                host=host,
                pid=pid,
                pid_alive=pid_alive,
            ) as persistence,
        ):
            yield persistence
        return
    persistence = Persistence(
        target,
        now=now or _utcnow,
        heartbeat_interval=heartbeat_interval,
        stale_after=stale_after,
        host=host if host is not None else socket.gethostname(),
        pid=pid if pid is not None else os.getpid(),
        pid_alive=pid_alive or _pid_alive,
    )
    await target.register_owner(persistence.owner)
    body_error: Exception | None = None
    try:
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
    if body_error is not None:
        raise body_error
