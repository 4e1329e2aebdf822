"""Sweeps: one experiment run over a grid (or a zip) of option values, each point a run.

:class:`~crucible_actors._core._ir.Sweep` (``Experiment.sweep``) names option paths and
their values. This module turns it into points (:func:`expand`), checks every path
against the registry's schema of its stage before anything runs
(:func:`check_sweep_options`), builds each point's Experiment (:func:`point_experiment`)
and feeds the points to a :class:`~crucible_actors._core._runtime.Runtime` as ordinary
runs, at most ``max_concurrent`` at a time (:func:`submit_sweep`, reached through
:meth:`Runtime.submit_sweep`). A :class:`SweepHandle` follows them.

Every point run carries ``ctx.telemetry_context["seed"]`` (``sweep.seed`` plus the run's
position, so repeats differ), ``["sweep_id"]`` and ``["sweep_point"]``. With a store, the
sweep and its points (run id, parameters, seed) are recorded before the first run starts,
and the sweep's outcome once the last one ends.

Durability (``docs/design/0008-durable-sweeps.md``): on a store that keeps ``pending`` runs
(``start_pending``), every point is recorded, in the sweep's own transaction, as a
``pending`` run with its initial checkpoint and this runtime as its owner, so an
acknowledged sweep survives a crash of this process whole. The feeder then starts the
pending rows (``pending`` to ``running``, conditional on still owning them) as
``max_concurrent`` allows. A runtime that adopts a dead owner's runs (``on_start="resume"``,
continuous adoption) claims its pending points too and feeds them the same way
(:func:`adopt_points`), counting the sweep's runs it resumed against ``max_concurrent``, and
records the sweep's outcome once every point ended. Closing the runtime cancels the points
not started (stored ``cancelled``), or with ``on_shutdown="interrupt"`` leaves them
``pending`` for the next ``on_start="resume"``.
"""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import anyio
import msgspec

from ._encoding import to_json_safe
from ._errors import CrucibleError, InvalidExperiment, OwnershipLost
from ._ids import new_run_id
from ._invoke import check_validate_mode
from .persistence._store import (
    LIVE_STATUSES,
    Checkpoint,
    ExperimentRecord,
    PendingRun,
    RunRecord,
    SweepPointRecord,
    SweepRecord,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from anyio.abc import TaskGroup

    from ._handle import RunHandle
    from ._invoke import ValidateMode
    from ._ir import Experiment, StageDef, Sweep
    from ._registry import Registry
    from ._runtime import Runtime

__all__ = [
    "LARGE_SWEEP",
    "SweepHandle",
    "SweepPoint",
    "SweepStatistics",
    "adopt_points",
    "check_sweep_options",
    "expand",
    "point_experiment",
    "submit_sweep",
]

log = logging.getLogger("crucible_actors.sweep")

#: Sweeps with more runs than this need ``confirm_large=True`` (the CLI's ``--yes``).
LARGE_SWEEP: Final = 10_000


class SweepPoint(msgspec.Struct, frozen=True, gc=False):
    """One run of a sweep: point ``point``, repeat ``repeat``, at position ``index``."""

    index: int
    point: int
    repeat: int
    parameters: dict[str, Any]
    seed: int
    run_id: str


class SweepStatistics(msgspec.Struct, frozen=True):
    """A snapshot of a sweep's progress."""

    total: int
    submitted: int
    finished: int
    by_status: dict[str, int]


def expand(sweep: Sweep) -> list[dict[str, Any]]:
    """Return the points of ``sweep`` (without repeats), each a ``{path: value}`` dict.

    Grid points vary the last path fastest, in the order the paths were given.
    """
    paths = list(sweep.parameters)
    lists = [sweep.parameters[p] for p in paths]
    combos = zip(*lists, strict=True) if sweep.mode == "zip" else itertools.product(*lists)
    return [dict(zip(paths, combo, strict=True)) for combo in combos]


def _set_path(options: dict[str, Any], keys: Sequence[str], value: Any) -> dict[str, Any]:
    """Return a copy of ``options`` with ``options[k0][k1]... = value`` (copies on the way)."""
    out = dict(options)
    if len(keys) == 1:
        out[keys[0]] = value
        return out
    inner = out.get(keys[0])
    out[keys[0]] = _set_path(dict(inner) if isinstance(inner, dict) else {}, keys[1:], value)
    return out


def point_experiment(experiment: Experiment, parameters: Mapping[str, Any]) -> Experiment:
    """Return ``experiment`` with the options of one point set, and no sweep."""
    by_stage: dict[str, list[tuple[list[str], Any]]] = {}
    for path, value in parameters.items():
        stage, _, option = path.partition(".")
        by_stage.setdefault(stage, []).append((option.split("."), value))
    pipeline: list[StageDef] = []
    for sd in experiment.pipeline:
        changes = by_stage.get(sd.label)
        if changes:
            options = dict(sd.options or {})
            for keys, value in changes:
                options = _set_path(options, keys, value)
            sd = msgspec.structs.replace(sd, options=options)
        pipeline.append(sd)
    return msgspec.structs.replace(experiment, pipeline=pipeline, sweep=None)


def check_sweep_options(experiment: Experiment, registry: Registry) -> None:
    """Check that every sweep path names an option of its stage's schema, and each value fits.

    Raises:
        InvalidExperiment: listing every path whose stage cannot be resolved, whose option
            the stage's schema does not declare, or whose value has the wrong type.
    """
    from ._ir import stage_ref
    from ._registry import _check_stage
    from ._schema_options import validate_options
    from ._stage import coerce_stage

    sweep = experiment.sweep
    if sweep is None:
        raise InvalidExperiment(f"experiment {experiment.id!r} has no sweep", source=None)
    errors: list[str] = []
    schemas: dict[str, dict[str, Any] | None] = {}
    for sd in experiment.pipeline:
        label = sd.label
        if label in schemas:
            continue
        try:
            if sd.stage is not None and sd.stage != "":
                where = sd.stage if isinstance(sd.stage, str) else stage_ref(sd.stage)
                schemas[label] = _check_stage(coerce_stage(sd.stage, where=where), label)
            else:
                assert sd.name is not None  # StageDef guarantees a name or a stage
                schemas[label] = registry.schema(sd.name)
        except (CrucibleError, ImportError, TypeError) as exc:
            schemas[label] = None
            if any(p.partition(".")[0] == label for p in sweep.parameters):
                errors.append(f"sweep: stage {label!r} cannot be resolved: {exc}")
    for path, values in sweep.parameters.items():
        stage, _, option = path.partition(".")
        schema = schemas.get(stage)
        if schema is None:
            continue  # reported above, or by Experiment's own check
        top = option.split(".")[0]
        declared = [*schema.get("required", ()), *schema.get("optional", ())]
        declared += [k for k in schema.get("types", {}) if k not in declared]
        if top not in declared:
            known = ", ".join(sorted(map(str, declared))) or "none"
            errors.append(
                f"sweep.{path}: stage {stage!r} has no option {top!r} in its schema "
                f"(options: {known}); fix the path or declare the option"
            )
            continue
        if "." in option:
            continue  # a nested value: the stage's own check sees the whole option
        for i, value in enumerate(values):
            for problem in validate_options({top: value}, schema):
                if not problem.startswith("missing required option"):
                    errors.append(f"sweep.{path}[{i}]: {problem}")
    if errors:
        raise InvalidExperiment(errors)


def plan(experiment: Experiment, *, id_factory: Any = new_run_id) -> list[SweepPoint]:
    """Return every run of the experiment's sweep, in submission order."""
    sweep = experiment.sweep
    assert sweep is not None
    out: list[SweepPoint] = []
    for point, params in enumerate(expand(sweep)):
        for repeat in range(sweep.repeats):
            index = point * sweep.repeats + repeat
            out.append(
                SweepPoint(
                    index=index,
                    point=point,
                    repeat=repeat,
                    parameters=params,
                    seed=sweep.seed + index,
                    run_id=id_factory(),
                )
            )
    return out


class SweepHandle:
    """The runs of one sweep; returned by :meth:`Runtime.submit_sweep`.

    ``points`` lists every run (its parameters, seed and run id) from the start; the
    run handles appear in :meth:`runs` as they are admitted.
    """

    def __init__(self, sweep_id: str, experiment: Experiment, points: list[SweepPoint]) -> None:
        #: The sweep's id, as the store and ``runs list --sweep`` know it.
        self.sweep_id = sweep_id
        #: The experiment the sweep expands (its ``sweep`` set).
        self.experiment = experiment
        #: Every run of the sweep, in order (parameters, repeat, seed and run id each).
        self.points = points
        self._handles: list[RunHandle | None] = [None] * len(points)
        self._errors: dict[int, Exception] = {}
        #: Points another runtime took over before they started here (lost lease).
        self._lost: set[int] = set()
        #: The status points never started here end with: ``cancelled``, or
        #: ``interrupted`` when the runtime closed leaving them pending (resumable).
        self._unstarted = "cancelled"
        self._submitted = 0
        self._counts: dict[str, int] | None = None  # set once every run has ended
        self._done = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._cancelled = False

    def __repr__(self) -> str:
        done = self.statistics().finished
        return f"<SweepHandle {self.sweep_id} {done}/{len(self.points)} finished>"

    @property
    def done(self) -> bool:
        """Whether every run has ended (or was never started because of a cancel)."""
        return self._done.is_set()

    def runs(self) -> list[RunHandle]:
        """Return the handles of the runs admitted so far, in point order."""
        return [h for h in self._handles if h is not None]

    def run_handle(self, index: int) -> RunHandle | None:
        """Return the handle of run ``index`` of :attr:`points`, None until admitted."""
        return self._handles[index]

    def errors(self) -> dict[int, Exception]:
        """Return the runs that could not be submitted, by index into :attr:`points`."""
        return dict(self._errors)

    def statistics(self) -> SweepStatistics:
        """Return a frozen snapshot of the sweep's progress."""
        counts = self._counts if self._counts is not None else self._tally(final=False)
        return SweepStatistics(
            total=len(self.points),
            submitted=self._submitted,
            finished=sum(n for status, n in counts.items() if status not in _LIVE),
            by_status=dict(counts),
        )

    async def wait(self) -> dict[str, int]:
        """Wait until every run has ended; return how many ended in each status."""
        await self._done.wait()
        assert self._counts is not None
        return dict(self._counts)

    async def cancel(self) -> None:
        """Stop submitting points and cancel the runs still going; wait for them to end."""
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()
        for handle in self.runs():
            if not handle.done:
                await handle.cancel()
        await self._done.wait()

    @property
    def status(self) -> str:
        """``running`` until done; then ``completed`` if every run completed, ``cancelled``
        after :meth:`cancel`, else ``failed``."""
        if not self.done:
            return "running"
        if self._cancelled:
            return "cancelled"
        assert self._counts is not None
        ok = self._counts.get("completed", 0) == len(self.points)
        return "completed" if ok else "failed"

    # -- internals -------------------------------------------------------------------

    def _tally(self, *, final: bool) -> dict[str, int]:
        """Count the runs by status; points not submitted are ``cancelled`` once final."""
        counts: dict[str, int] = {}
        for i, run in enumerate(self._handles):
            if i in self._errors:
                status = "failed"
            elif i in self._lost:
                status = "interrupted"
            elif run is None:
                if not final:
                    continue
                status = self._unstarted
            else:
                status = run.status.value
            counts[status] = counts.get(status, 0) + 1
        return counts

    def _settle(self) -> None:
        """Take the final counts once feeding and waiting ended; mark the sweep done."""
        self._counts = self._tally(final=True)
        self._done.set()


_LIVE: Final = ("pending", "running")

#: Tasks submitting a sweep's points at once (their row writes share group commits).
_FEEDERS: Final = 16


async def submit_sweep(
    runtime: Runtime,
    task_group: TaskGroup,
    experiment: Experiment,
    *,
    sweep_id: str | None = None,
    assigns: Mapping[str, Any] | None = None,
    validate_options: ValidateMode = "off",
    enable_trace: bool = False,
    persist: bool = True,
    max_concurrent: int | None = None,
    confirm_large: bool = False,
    cache: bool = True,
) -> SweepHandle:
    """Check ``experiment.sweep``, record it, and start feeding its points to ``runtime``.

    Returns once the sweep is recorded; the runs start in ``task_group`` in the
    background, at most ``max_concurrent`` at once (the runtime's own
    ``max_concurrent_runs`` applies too).

    Raises:
        InvalidExperiment: no sweep, a path naming no option of its stage, a value of
            the wrong type, or more than :data:`LARGE_SWEEP` runs without
            ``confirm_large``; nothing has run then.
        ValueError: ``max_concurrent`` is not positive.
        StoreError: the store could not record the sweep.
    """
    exp = experiment
    sweep = exp.sweep
    if sweep is None:
        raise InvalidExperiment(
            f"experiment {exp.id!r} has no sweep; add a [sweep] table or use submit()"
        )
    if max_concurrent is not None and max_concurrent < 1:
        raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent!r}")
    total = sweep.size * sweep.repeats
    if total > LARGE_SWEEP and not confirm_large:
        raise InvalidExperiment(
            f"sweep: {sweep.size} points x {sweep.repeats} repeats = {total} runs, more than "
            f"{LARGE_SWEEP}; pass --yes (confirm_large=True) to run them all"
        )
    check_sweep_options(exp, runtime.registry)
    mode = check_validate_mode(validate_options)
    sid = sweep_id if sweep_id is not None else new_run_id()
    points = plan(exp)
    handle = SweepHandle(sid, exp, points)
    experiments = [point_experiment(exp, params) for params in expand(sweep)]
    store = runtime.store if persist else None
    if store is not None and not callable(getattr(store, "record_sweep", None)):
        raise CrucibleError(
            f"the store {getattr(store, 'name', store)!r} cannot record sweeps (it has no "
            "record_sweep method; see the Store protocol); upgrade it or pass persist=False"
        )
    persistence = runtime._persistence if store is not None else None
    # Every point durable at acknowledgement: on a store that keeps pending runs.
    durable = persistence is not None and callable(getattr(store, "start_pending", None))
    snapshots: list[bytes | None] = []
    if durable:
        for point_exp in experiments:  # what submit() checks, before anything is stored
            runtime.executors.check(point_exp, runtime.registry)
        snapshots = [
            runtime._initial_snapshot(
                experiments[p.point], p.run_id, assigns, _telemetry(sid, p), enable_trace
            )
            for p in points
        ]
    if store is not None:
        now = datetime.now(UTC)
        record = SweepRecord(
            id=sid,
            experiment_id=exp.id,
            sweep=to_json_safe(
                {
                    "parameters": sweep.parameters,
                    # The order of the paths, which a jsonb column does not keep.
                    "paths": list(sweep.parameters),
                    "mode": sweep.mode,
                    "repeats": sweep.repeats,
                    "seed": sweep.seed,
                    # How its points start, for a runtime that adopts them after a crash.
                    "options": {
                        "max_concurrent": max_concurrent,
                        "validate_options": mode,
                        "cache": cache,
                    },
                }
            ),
            runs=total,
            status="running",
            created_at=now,
        )
        point_records = [
            SweepPointRecord(
                sweep_id=sid,
                index=p.index,
                point=p.point,
                repeat=p.repeat,
                run_id=p.run_id,
                parameters=to_json_safe(p.parameters),
                seed=p.seed,
            )
            for p in points
        ]
        if durable:
            assert persistence is not None
            owner = persistence.owner.id
            definition, tags, metadata = persistence._experiment_fields(exp)
            await store.record_sweep(
                record,
                points=point_records,
                experiment=ExperimentRecord(
                    id=exp.id,
                    definition=definition,
                    owner=exp.owner,
                    tags=tags,
                    metadata=metadata,
                    created_at=now,
                    updated_at=now,
                ),
                pending=[
                    PendingRun(
                        run=RunRecord(
                            id=p.run_id,
                            experiment_id=exp.id,
                            status="pending",
                            metadata={"sweep_id": sid, "sweep_index": p.index},
                            owner_id=owner,
                        ),
                        checkpoint=Checkpoint(
                            run_id=p.run_id, index=0, data=snapshot, created_at=now
                        ),
                    )
                    for p, snapshot in zip(points, snapshots, strict=True)
                    if snapshot is not None
                ],
            )
        else:
            await store.record_sweep(record, points=point_records)

    async def start(point: SweepPoint) -> RunHandle:
        if durable:
            snapshot = snapshots[point.index]
            assert snapshot is not None
            snapshots[point.index] = None  # started: the store holds it now
            return await runtime._start_pending(
                experiments[point.point], point.run_id, snapshot, mode, cache
            )
        return await runtime.submit(
            experiments[point.point],
            run_id=point.run_id,
            telemetry=_telemetry(sid, point),
            assigns=assigns,
            validate_options=validate_options,
            enable_trace=enable_trace,
            persist=persist,
            cache=cache,
        )

    runtime._feeding_started()  # wait_idle() waits for the points not started yet
    task_group.start_soon(
        _feed,
        runtime,
        handle,
        start,
        store,
        durable,
        max_concurrent,
        name=f"sweep {sid}",
    )
    return handle


def _telemetry(sweep_id: str, point: SweepPoint) -> dict[str, Any]:
    return {"seed": point.seed, "sweep_id": sweep_id, "sweep_point": point.point}


async def _release_when_done(slots: anyio.Semaphore, run: RunHandle) -> None:
    try:
        await run.wait()
    finally:
        slots.release()


async def _feed(
    runtime: Runtime,
    handle: SweepHandle,
    start: Callable[[SweepPoint], Awaitable[RunHandle]],
    store: Any,
    durable: bool,
    max_concurrent: int | None,
) -> None:
    slots = anyio.Semaphore(max_concurrent) if max_concurrent else None
    todo = iter(handle.points)  # shared by the feeders: each point is taken once

    async def feeder(tg: TaskGroup) -> None:
        for point in todo:
            if slots is not None:
                await slots.acquire()
            if not runtime.accepting:  # closing: the points left are settled below
                if slots is not None:
                    slots.release()
                return
            try:
                run = await start(point)
            except OwnershipLost as exc:  # another runtime adopted it (lost lease)
                if slots is not None:
                    slots.release()
                handle._lost.add(point.index)
                log.warning(
                    "sweep %s: run %d not started here: %s", handle.sweep_id, point.index, exc
                )
                continue
            except Exception as exc:
                if slots is not None:
                    slots.release()
                if not runtime.accepting:
                    return
                handle._errors[point.index] = exc
                log.error("sweep %s: run %d not submitted: %s", handle.sweep_id, point.index, exc)
                if durable:
                    await _end_unstarted(runtime, [point.run_id], "failed", f"not started: {exc}")
                continue
            handle._handles[point.index] = run
            handle._submitted += 1
            if handle._cancelled:
                # Cancelled while the run's row was being started (that write is
                # shielded): cancel() did not see this run; stop it here.
                tg.start_soon(run.cancel)
            if slots is not None:  # a slot frees when its run ends
                tg.start_soon(_release_when_done, slots, run)

    try:
        async with anyio.create_task_group() as tg:
            # Only the feeders are cancelled by SweepHandle.cancel: the runs they started
            # are cancelled one by one and still waited for below.
            with anyio.CancelScope() as scope:
                handle._scope = scope
                # Each start returns once the run's row is committed: several feeders
                # let the rows of consecutive points share a commit.
                async with anyio.create_task_group() as feeders:
                    for _ in range(min(_FEEDERS, len(handle.points))):
                        feeders.start_soon(feeder, tg)
        # Without a bound nothing waits per run: the runs are awaited in order here.
        for run in handle.runs():
            await run.wait()
    finally:
        with anyio.CancelScope(shield=True):
            try:
                if durable:
                    await _settle_unstarted(runtime, handle)
                handle._settle()
                # Points left pending for the next resume: the sweep goes on there, and
                # the runtime that finishes its last point records its outcome.
                if store is not None and handle._unstarted != "interrupted":
                    try:
                        await store.finish_sweep(
                            handle.sweep_id, status=handle.status, finished_at=datetime.now(UTC)
                        )
                    except Exception as exc:
                        log.error(
                            "could not store the outcome of sweep %s: %s", handle.sweep_id, exc
                        )
            finally:
                runtime._feeding_ended()


async def _settle_unstarted(runtime: Runtime, handle: SweepHandle) -> None:
    """Store the outcome of the pending points that never started here.

    Cancelled with the sweep, or by a runtime closing with ``on_shutdown="cancel"``;
    left ``pending`` (resumable by the next ``on_start="resume"``) by one closing with
    ``on_shutdown="interrupt"``.
    """
    left = [
        p.run_id
        for p in handle.points
        if handle._handles[p.index] is None
        and p.index not in handle._errors
        and p.index not in handle._lost
    ]
    if not left:
        return
    if not handle._cancelled and runtime._interrupt_on_shutdown:
        handle._unstarted = "interrupted"
        log.info(
            "sweep %s: %d point(s) not started are left pending for the next on_start='resume'",
            handle.sweep_id,
            len(left),
        )
        return
    why = "the sweep was cancelled" if handle._cancelled else "the runtime shut down"
    await _end_unstarted(runtime, left, "cancelled", f"{why} before this point started")


async def _end_unstarted(
    runtime: Runtime, run_ids: Sequence[str], status: str, message: str
) -> None:
    """Store pending runs of this runtime as ``status`` (best effort: logged if not)."""
    persistence = runtime._persistence
    if persistence is None:
        return
    store = persistence.store
    now = persistence.now()
    failure = {"stage": None, "reason_type": "NotStarted", "message": message}

    async def end(run_id: str) -> None:
        try:
            await store.finish_run(
                RunRecord(
                    id=run_id,
                    experiment_id="",  # not written: finish_run keeps the stored one
                    status=status,
                    failure=failure,
                    finished_at=now,
                    owner_id=persistence.owner.id,
                ),
                artifacts=[],
                events=[],
            )
        except OwnershipLost:
            pass  # another runtime adopted it: its outcome is that runtime's to store
        except Exception as exc:
            log.error("could not store run %s as %s: %s", run_id, status, exc)

    async with anyio.create_task_group() as tg:
        for run_id in run_ids:
            tg.start_soon(end, run_id)


async def adopt_points(
    runtime: Runtime,
    persistence: Any,
    sweep_id: str | None,
    pending: Sequence[tuple[int, str]],
    resumed: Sequence[RunHandle],
    load: Callable[[str], Awaitable[tuple[Experiment, bytes]]],
) -> None:
    """Start the ``pending`` points of sweep ``sweep_id`` this runtime claimed from a dead
    owner, as the sweep's ``max_concurrent`` allows; store the sweep's outcome at the end.

    ``pending`` are (index, run id) pairs; ``resumed`` the handles of the sweep's runs
    recovery resumed here, which hold slots of ``max_concurrent`` until they end.
    ``load(run_id)`` returns a point's experiment and initial snapshot. Runs in the
    runtime's task group (the caller counted it with ``runtime._feeding_started()``);
    store errors are logged, never raised.
    """
    try:
        await _adopt_points(runtime, persistence, sweep_id, pending, resumed, load)
    finally:
        runtime._feeding_ended()


async def _adopt_points(
    runtime: Runtime,
    persistence: Any,
    sweep_id: str | None,
    pending: Sequence[tuple[int, str]],
    resumed: Sequence[RunHandle],
    load: Callable[[str], Awaitable[tuple[Experiment, bytes]]],
) -> None:
    store = persistence.store
    record = None
    try:
        if sweep_id is not None:
            record = await store.get_sweep(sweep_id)
    except Exception as exc:
        log.error("sweep %s: could not read it to adopt its points: %s", sweep_id, exc)
    options = (record.sweep.get("options") if record is not None else None) or {}
    limit = options.get("max_concurrent")
    slots = anyio.Semaphore(limit) if isinstance(limit, int) and limit > 0 else None
    try:
        mode = check_validate_mode(options.get("validate_options", "off"))
    except ValueError:
        mode = check_validate_mode("off")
    cache = options.get("cache", True) is not False
    started: list[RunHandle] = []
    if pending:
        log.info("sweep %s: adopting %d point(s) not started yet", sweep_id, len(pending))
    async with anyio.create_task_group() as tg:
        for run in resumed:
            if slots is not None:
                await slots.acquire()
                tg.start_soon(_release_when_done, slots, run)
        todo = iter(sorted(pending))

        async def feeder() -> None:
            for _, run_id in todo:
                if slots is not None:
                    await slots.acquire()
                try:
                    if not runtime.accepting:
                        raise _Closing
                    experiment, snapshot = await load(run_id)
                    run = await runtime._start_pending(experiment, run_id, snapshot, mode, cache)
                except _Closing:
                    if slots is not None:
                        slots.release()
                    return  # left pending: the next runtime adopts it
                except OwnershipLost:
                    if slots is not None:
                        slots.release()
                    continue  # another runtime claimed it since
                except Exception as exc:
                    if slots is not None:
                        slots.release()
                    if not runtime.accepting:
                        return
                    log.error("sweep %s: adopted run %s not started: %s", sweep_id, run_id, exc)
                    await _end_unstarted(runtime, [run_id], "failed", f"not started: {exc}")
                    continue
                started.append(run)
                if slots is not None:
                    tg.start_soon(_release_when_done, slots, run)

        async with anyio.create_task_group() as feeders:
            for _ in range(min(_FEEDERS, len(pending))):
                feeders.start_soon(feeder)
    for run in [*resumed, *started]:
        await run.wait()
    if sweep_id is not None:
        with anyio.CancelScope(shield=True):
            await _finish_if_done(store, sweep_id)


class _Closing(Exception):
    """The runtime began closing: stop starting points."""


async def _finish_if_done(store: Any, sweep_id: str) -> None:
    """Store the sweep's outcome if every one of its points has ended."""
    try:
        statuses = [
            (await store.get_run(p.run_id)).status for p in await store.list_sweep_points(sweep_id)
        ]
        if not statuses or any(s in LIVE_STATUSES for s in statuses):
            return
        status = "completed" if all(s == "completed" for s in statuses) else "failed"
        await store.finish_sweep(sweep_id, status=status, finished_at=datetime.now(UTC))
    except Exception as exc:
        log.error("could not store the outcome of sweep %s: %s", sweep_id, exc)
