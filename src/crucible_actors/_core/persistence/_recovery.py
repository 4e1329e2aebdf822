"""Crash recovery and resume: runs left ``running`` by a dead process, or interrupted.

:meth:`Recovery.recover` (called by :func:`open_runtime` with ``on_start``) finds runs
whose owner is dead (``_owner.py``) and resumes each from its last checkpoint
(``"resume"``), marks it ``interrupted`` (``"mark_interrupted"``) or leaves it
(``"ignore"``). ``"resume"`` also resumes the runs a runtime interrupted when it shut
down with ``on_shutdown="interrupt"`` (stored ``interrupted`` with a ``RuntimeShutdown``
failure); the other policies leave those interrupted. :meth:`Recovery.resume_run`
resumes one run on request. Runs are claimed with a conditional update (``... WHERE
owner = old``), so two processes never take over the same run.
:class:`~crucible_actors._core.persistence._persistence.Persistence` owns one (its
``recovery``); the resumed run is admitted through ``Runtime.resume``.

:meth:`Recovery.adopt_forever` keeps doing the same while the runtime is up (every
``adopt_interval`` seconds, ``open_runtime(on_start="resume")``): one cheap read gives
the owners of the ``running`` runs and the number of ``interrupted`` ones, and only when
one of those owners is dead (by its lease, ``_owner.py``) or runs were newly interrupted
(a runtime that shut down) does it run :meth:`Recovery.recover`. Each tick also checks this
runtime's own lease: once lost (its PostgreSQL session ended), the runs another process
took over are stopped here (fencing: the store refuses their writes anyway).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import msgspec

from .._errors import BlobError, CheckpointDecodeError, OwnershipLost, StoreError
from .._ir import stage_ref_name
from .._stage import coerce_stage
from ._owner import owner_is_dead
from ._records import decode_checkpoint

if TYPE_CHECKING:
    from collections.abc import Collection
    from datetime import datetime

    from .._context import Context
    from .._handle import RunHandle
    from .._ir import Experiment
    from .._runtime import Runtime, StartMode
    from ._persistence import Persistence
    from ._store import Checkpoint, OwnerRecord, RunRecord, Store

__all__ = ["Recovery", "RecoveryReport"]

log = logging.getLogger("crucible_actors")

_LIST_PAGE = 500

#: ``failure["reason_type"]`` of a run a runtime interrupted when it shut down.
SHUTDOWN_REASON = "RuntimeShutdown"


def interrupted_by_shutdown(run: RunRecord) -> bool:
    """Whether ``run`` is ``interrupted`` because its runtime shut down (it may resume)."""
    return (
        run.status == "interrupted"
        and isinstance(run.failure, dict)
        and run.failure.get("reason_type") == SHUTDOWN_REASON
    )


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
    """What recovery did with the orphaned (and shut-down) runs it found.

    Returned by :meth:`~crucible_actors.store.Persistence.recover`.
    """

    resumed: list[str] = []
    interrupted: list[str] = []
    skipped: list[str] = []
    #: Runs recovery could not settle (after a store error, say), by id, with the
    #: reason. They are left as they were for the next recovery, and the runtime (and
    #: ``serve``) starts anyway.
    failed: dict[str, str] = {}


def _failed(run_id: str, exc: Exception) -> str:
    """Log, in one line, that run ``run_id`` could not be recovered; return the reason."""
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    log.warning("could not recover run %s (left as it is): %s", run_id, reason)
    return reason


class Recovery:
    """Recovery and resume of orphaned runs, for one :class:`Persistence` (its
    ``recovery``): it uses that persistence's store, owner identity and clock."""

    def __init__(self, persistence: Persistence) -> None:
        self._persistence = persistence
        #: What the last :meth:`recover` did.
        self.last_recovery = RecoveryReport()
        self._interrupted_seen = 0
        #: Runs being resumed here whose resume the store observer has yet to record.
        self._resuming: set[str] = set()
        #: During :meth:`recover`: the sweeps whose runs it adopts, by sweep id (None for
        #: pending runs of no sweep): their pending points and their runs resumed here.
        self._sweeps: dict[str | None, tuple[list[tuple[int, str]], list[RunHandle]]] | None = None

    @property
    def store(self) -> Store:
        """The store recovered from (the persistence's)."""
        return self._persistence.store

    @property
    def owner(self) -> OwnerRecord:
        """This process's owner identity (the persistence's; it changes if the first
        lease id tried was taken)."""
        return self._persistence.owner

    @property
    def lost(self) -> dict[str, str | None]:
        """Runs another runtime took over from this one (shared with the observers)."""
        return self._persistence.lost

    def now(self) -> datetime:
        """The wall-clock time, by the persistence's clock."""
        return self._persistence.now()

    async def recover(self, runtime: Runtime, on_start: StartMode) -> RecoveryReport:
        """Handle runs left ``running`` by dead processes, per ``on_start``.

        ``"resume"`` claims each orphan and resumes it from its last checkpoint (a run
        whose checkpoint no longer decodes is marked interrupted instead, with the
        reason as its failure), then does the same for the runs a runtime interrupted
        when it shut down; ``"mark_interrupted"`` marks orphans interrupted;
        ``"ignore"`` does nothing. Runs of live owners are never touched, and a run
        another process claims first is skipped. A run whose recovery fails (a store
        error, say) is logged and listed in the report's ``failed``; the others go on.
        Waits while the runtime's ``max_concurrent_runs`` are busy.
        """
        if on_start == "ignore":
            return self.last_recovery
        store = self.store
        running = await self._list_runs("running")
        pending = await self._list_runs("pending")
        # Runs are listed before owners: an owner registers before its first run, so a
        # live owner of any listed run is in the owner list read afterwards.
        owners = {o.id: o for o in await store.list_owners()}
        held = await self._leases_held(
            {r.owner_id for r in [*running, *pending] if r.owner_id != self.owner.id}
            | {owner_id for owner_id in owners if owner_id != self.owner.id}
        )
        now = self.now()
        dead: set[str | None] = set()
        resumed: list[str] = []
        interrupted: list[str] = []
        skipped: list[str] = []
        failed: dict[str, str] = {}
        by_outcome = {"resumed": resumed, "interrupted": interrupted, "skipped": skipped}
        # Sweeps whose runs this pass adopts: their pending points (index, run id) and
        # the handles of their runs resumed here (filled by _resume_claimed).
        sweeps: dict[str | None, tuple[list[tuple[int, str]], list[RunHandle]]] = {}
        self._sweeps = sweeps
        for run in running:
            if run.owner_id == self.owner.id:
                continue
            if not self._is_dead(run.owner_id, owners, held, now):
                continue
            dead.add(run.owner_id)
            try:
                if on_start == "resume":
                    outcome = await self._claim_and_resume(runtime, run, "running")
                    by_outcome[outcome].append(run.id)
                elif await self._interrupt(
                    run.id, run.owner_id, None, owners.get(run.owner_id or "")
                ):
                    interrupted.append(run.id)
                else:
                    skipped.append(run.id)
            except Exception as exc:  # one run the store cannot settle must not stop the rest
                failed[run.id] = _failed(run.id, exc)
        for run in pending:  # sweep points a dead runtime recorded and never started
            if run.owner_id == self.owner.id:
                continue
            if not self._is_dead(run.owner_id, owners, held, now):
                continue
            dead.add(run.owner_id)
            try:
                if on_start == "resume":
                    if await store.claim_run(
                        run.id, status="pending", owner_id=run.owner_id, new_owner_id=self.owner.id
                    ):
                        sweep_id = run.metadata.get("sweep_id")
                        index = run.metadata.get("sweep_index", 0)
                        sweeps.setdefault(sweep_id, ([], []))[0].append((index, run.id))
                        resumed.append(run.id)
                    else:
                        skipped.append(run.id)
                elif await self._interrupt(
                    run.id, run.owner_id, None, owners.get(run.owner_id or ""), started=False
                ):
                    interrupted.append(run.id)
                else:
                    skipped.append(run.id)
            except Exception as exc:  # as above
                failed[run.id] = _failed(run.id, exc)
        try:
            if on_start == "resume":
                # Runs a shutdown interrupted. Their runtime is done with them once they are
                # stored interrupted, so its owner need not be dead; the claim, conditional
                # on the status and the owner read here, lets one process resume each.
                for run in await self._list_runs("interrupted"):
                    if not interrupted_by_shutdown(run):
                        continue
                    try:
                        outcome = await self._claim_and_resume(runtime, run, "interrupted")
                        by_outcome[outcome].append(run.id)
                    except Exception as exc:  # as above
                        failed[run.id] = _failed(run.id, exc)
        finally:
            # The pending points claimed above start even if listing interrupted runs failed.
            self._sweeps = None
            if sweeps:
                from .._sweep import adopt_points

                for sweep_id, (points, handles) in sweeps.items():
                    runtime._feeding_started()  # wait_idle() waits for the points to start
                    runtime._tg.start_soon(
                        adopt_points,
                        runtime,
                        self._persistence,
                        sweep_id,
                        points,
                        handles,
                        self._load_start,
                        name=f"sweep {sweep_id} (adopted)",
                    )
        # Dead owners' rows go too, with runs or without (one killed before its first
        # run was stored, say): live owners' never, their leases say so.
        for owner_id in owners:
            if owner_id != self.owner.id and (
                owner_id in dead or self._is_dead(owner_id, owners, held, now)
            ):
                await store.remove_owner(owner_id)
        self.last_recovery = RecoveryReport(resumed, interrupted, skipped, failed)
        return self.last_recovery

    async def _claim_and_resume(self, runtime: Runtime, run: RunRecord, status: str) -> str:
        """Claim ``run`` (stored ``status``) from its owner and resume it here.

        Returns ``"resumed"``, ``"skipped"`` (another process claimed it first) or
        ``"interrupted"`` (its checkpoint no longer decodes: marked so, with the reason).
        """
        if not await self.store.claim_run(
            run.id, status=status, owner_id=run.owner_id, new_owner_id=self.owner.id
        ):
            return "skipped"
        try:
            await self._resume_claimed(runtime, run.id)
        except CheckpointDecodeError as exc:
            log.warning("cannot resume run %s: %s", run.id, exc)
            await self._interrupt(run.id, self.owner.id, exc)
            return "interrupted"
        return "resumed"

    def _is_dead(
        self,
        owner_id: str | None,
        owners: dict[str, OwnerRecord],
        held: set[str] | None,
        now: datetime,
    ) -> bool:
        """Whether ``owner_id`` is dead, given the owner rows and the leases held."""
        return owner_is_dead(
            owners.get(owner_id or ""),
            now=now,
            stale_after=self._persistence.stale_after,
            host=self.owner.host,
            local=self.store.local,
            pid_alive=self._persistence.pid_alive,
            lease_held=None if held is None or owner_id is None else owner_id in held,
        )

    async def _leases_held(self, owner_ids: Collection[str | None]) -> set[str] | None:
        """Return which of ``owner_ids`` hold a lease, or None if the store has none."""
        query = getattr(self.store, "leases_held", None)
        if query is None:
            return None
        ids = sorted(i for i in owner_ids if i)
        if not ids:
            return set()
        held: set[str] = await query(ids)
        return held

    async def _probe(self) -> tuple[set[str | None], int]:
        """Return the owners of the ``running`` runs and the count of ``interrupted`` ones
        (one cheap read on stores that offer ``adoption_probe``)."""
        query = getattr(self.store, "adoption_probe", None)
        if query is not None:
            found: tuple[set[str | None], int] = await query()
            return found
        running = {run.owner_id for run in await self._list_runs("running")}
        running |= {run.owner_id for run in await self._list_runs("pending")}
        return running, len(await self._list_runs("interrupted"))

    async def adopt_forever(self, runtime: Runtime, interval: float) -> None:
        """Adopt, every ``interval`` seconds, the runs of owners that died; never returns.

        Each tick checks this runtime's own lease (a runtime that lost it stops the runs
        another process took over), then
        reads the owners of the ``running`` runs and the number of ``interrupted`` ones;
        when one of those owners is dead (judged as at start-up, by its lease), or more
        runs are ``interrupted`` than at the last tick (a runtime shut down with
        ``on_shutdown="interrupt"``), it runs :meth:`recover` with ``"resume"``. Store
        errors are logged and the next tick tries again.
        """
        # The first tick counts every interrupted run as new: one more pass then closes
        # the window between the start-up recovery and the first tick.
        self._interrupted_seen = 0
        hold = 0
        while True:
            await anyio.sleep(interval)
            try:
                if not await self._check_own_lease(runtime):
                    # Our session ended: the server may have restarted, ending every
                    # runtime's session at once. Give the others two ticks to take
                    # their leases again before judging any of them dead.
                    hold = 2
                    continue
                if hold:
                    hold -= 1
                    continue
                if await self._orphans_appeared():
                    report = await self.recover(runtime, "resume")
                    if report.resumed or report.interrupted:
                        log.info(
                            "adopted %d run(s) of dead runtimes: %s",
                            len(report.resumed),
                            ", ".join(report.resumed[:10]),
                        )
            except StoreError as exc:
                hold = 2  # the store may have restarted: as for a lost lease, above
                log.warning("adopting the runs of dead runtimes failed (retrying): %s", exc)

    async def _orphans_appeared(self) -> bool:
        """Whether a tick should run :meth:`recover`: a dead owner, or new interrupted runs."""
        running, interrupted = await self._probe()
        seen, self._interrupted_seen = self._interrupted_seen, interrupted
        if interrupted > seen:
            return True  # a runtime shut down leaving runs interrupted: resume them
        foreign = {owner_id for owner_id in running if owner_id != self.owner.id}
        if not foreign:
            return False
        owners = {o.id: o for o in await self.store.list_owners()}
        held = await self._leases_held(foreign)
        now = self.now()
        return any(self._is_dead(owner_id, owners, held, now) for owner_id in foreign)

    async def _check_own_lease(self, runtime: Runtime) -> bool:
        """Return False (after stopping the runs another process took over) if this
        runtime had lost its lease since the last check.

        On a store that holds leases, ``check_lease`` says whether this owner's lease is
        still held (and takes it again if it was lost and can be). After a loss, every
        run still active here whose row names another owner now is stopped (recorded
        ``interrupted`` here; its new owner continues it) and its observer writes
        nothing more; the store's fencing refuses such writes in any case.
        """
        check = getattr(self.store, "check_lease", None)
        if check is None or await check(self.owner.id):
            return True
        log.error(
            "runtime %s lost its lease on %s (its session ended); runs another process "
            "took over in the meantime stop here",
            self.owner.id,
            self.store.name,
        )
        for handle in runtime.runs():
            if handle.done or handle.run_id in self.lost:
                continue
            run = await self.store.get_run(handle.run_id)
            if run.owner_id != self.owner.id:
                self.stop_lost(runtime, handle.run_id, run.owner_id)
        return False

    def stop_lost(self, runtime: Runtime, run_id: str, owner_id: str | None) -> None:
        """Stop run ``run_id`` here: runtime ``owner_id`` took it over (logged once)."""
        if run_id in self.lost:
            return
        self.lost[run_id] = owner_id
        log.warning(
            "run %s was taken over by runtime %s (this runtime lost its lease); stopping it "
            "here without writing over its new owner",
            run_id,
            owner_id,
        )
        runtime._stop_lost(run_id, OwnershipLost(run_id, owner_id=owner_id, store=self.store.name))

    async def _list_runs(self, status: str) -> list[RunRecord]:
        """Return every run with ``status``, paging through the store."""
        found: list[RunRecord] = []
        before: str | None = None
        while True:
            page = await self.store.list_runs(status=status, limit=_LIST_PAGE, before=before)
            found.extend(page)
            if len(page) < _LIST_PAGE:
                return found
            before = page[-1].id

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
        if run.status in ("running", "pending"):
            owners = {o.id: o for o in await store.list_owners()}
            owner = owners.get(run.owner_id or "")
            held = await self._leases_held({run.owner_id} if run.owner_id else set())
            if run.owner_id == self.owner.id or not self._is_dead(
                run.owner_id, owners, held, self.now()
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
        except (CheckpointDecodeError, BlobError) as exc:
            await self._interrupt(run_id, self.owner.id, exc)
            raise

    async def _resume_claimed(self, runtime: Runtime, run_id: str) -> RunHandle:
        checkpoint, ctx = await self._load(run_id)
        experiment = _restore_labels(ctx.experiment)
        self._resuming.add(run_id)
        try:
            handle = await runtime.resume(experiment, run_id, checkpoint.data, checkpoint.index)
        except BaseException:
            self._resuming.discard(run_id)
            raise
        sweep_id = ctx.telemetry_context.get("sweep_id")
        if sweep_id is not None and self._sweeps is not None:
            # A sweep's point: it holds one of the sweep's max_concurrent slots.
            self._sweeps.setdefault(sweep_id, ([], []))[1].append(handle)
        return handle

    async def _load(self, run_id: str) -> tuple[Checkpoint, Context]:
        """Return the run's last checkpoint and its decoded Context.

        Raises:
            CheckpointDecodeError: it has none, or it does not decode.
        """
        checkpoint = await self.store.load_checkpoint(run_id)
        if checkpoint is None:
            raise CheckpointDecodeError(
                f"run {run_id!r} has no checkpoint to resume from", store=self.store.name
            )
        ctx = decode_checkpoint(
            checkpoint, store=self.store.name, blobs=getattr(self.store, "blobs", None)
        )
        return checkpoint, ctx

    async def _load_start(self, run_id: str) -> tuple[Experiment, bytes]:
        """Return the experiment and initial snapshot of a pending run (to start it)."""
        checkpoint, ctx = await self._load(run_id)
        return _restore_labels(ctx.experiment), checkpoint.data

    async def _interrupt(
        self,
        run_id: str,
        owner_id: str | None,
        exc: Exception | None,
        owner: OwnerRecord | None = None,
        *,
        started: bool = True,
    ) -> bool:
        if exc is not None:
            failure = {"stage": None, "reason_type": type(exc).__name__, "message": str(exc)}
        else:
            who = f"pid {owner.pid} on {owner.host}" if owner is not None else "unknown"
            message = (
                f"the runtime process running it ({who}) ended before it finished"
                if started
                else f"the runtime process that was to start it ({who}) ended first"
            )
            failure = {"stage": None, "reason_type": "Interrupted", "message": message}
        return await self.store.mark_interrupted(
            run_id, owner_id=owner_id, finished_at=self.now(), failure=failure
        )

    def take_resuming(self, run_id: str) -> bool:
        """Whether run ``run_id`` is being resumed by this recovery (asked once: the
        store observer records its start as a resume)."""
        if run_id in self._resuming:
            self._resuming.discard(run_id)
            return True
        return False
