"""The Store port: what the runtime persists and how the CLI and ``serve`` read it back.

A store keeps experiments, runs (``id`` is the run's ``run_id``), stage attempts, Context
checkpoints, artifacts and trace events, plus the *owner* rows that say which runtime
process is executing which run. The store observer (``_observer.py``) turns a run's life
into calls on this protocol; the adapters in :mod:`crucible_actors.store` (memory,
SQLite, PostgreSQL) implement it, and a host may pass its own.

Every method is async and must work under trio and asyncio. Each write method is one
atomic transaction and returns only once it is durable, so an acknowledged write is
never lost. Records are msgspec Structs whose free-form values (``metrics``,
``outputs``, ``metadata``, ``definition``) are already JSON-safe: the persistence layer
runs them through :func:`~crucible_actors._core._encoding.to_json_safe` (``finite=True``)
first. Timestamps are timezone-aware UTC datetimes.

Errors: every method raises a :class:`~crucible_actors.errors.StoreError` subclass on
failure (:class:`StoreUnavailable` for an unreachable server or a full disk,
:class:`StoreCorrupt` for data the store did not write); ``get_run`` raises
:class:`RunNotFound`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeAlias

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import timedelta

    from ._blobs import BlobStore

__all__ = [
    "LIVE_STATUSES",
    "RUN_STATUSES",
    "ArtifactRecord",
    "CachedResult",
    "Checkpoint",
    "DefinitionRecord",
    "DeletedRuns",
    "Durability",
    "EnvironmentRecord",
    "ExperimentRecord",
    "GcResult",
    "OwnerRecord",
    "PendingRun",
    "RunRecord",
    "StageAttempt",
    "Store",
    "SweepPointRecord",
    "SweepRecord",
    "TraceEventRecord",
]

#: What an acknowledged write survives (``durability=`` of the SQLite store and of a blob
#: directory): ``process``, the process being killed; ``power``, a power loss too.
Durability: TypeAlias = Literal["process", "power"]

#: The values of ``RunRecord.status``, as stored.
RUN_STATUSES: Final = ("pending", "running", "completed", "failed", "cancelled", "interrupted")

#: The statuses of runs that may still write: ``delete_runs`` refuses them, ``gc`` spares
#: the blobs they may be writing.
LIVE_STATUSES: Final = ("pending", "running")


class ExperimentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An experiment definition as stored (upserted by ``id`` each time it runs).

    ``definition`` is the JSON-safe Experiment; stage objects appear in it as their
    ``"module:qualname"`` reference strings.
    """

    id: str
    definition: dict[str, Any]
    owner: str | None = None
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    created_at: datetime
    updated_at: datetime


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One run. ``status`` is one of :data:`RUN_STATUSES`.

    ``failure`` holds ``stage``, ``reason_type``, ``message`` and ``attempts`` for a run
    that failed (or ``stage``/``reason_type``/``message`` for one cancelled or
    interrupted). ``owner_id`` names the runtime process executing (or last executing)
    the run; recovery compares it to the live owners. ``resume_count`` counts the times
    ``start_run(resume=True)`` restarted it (the caller numbers each resume; a run resumed
    too often without finishing is failed, see ``open_persistence(max_resumes=...)``).
    ``provenance`` is what produced the run, as recorded when it first started
    (:doc:`/provenance`): ``{"environment": id, "definition": id,
    "stages": {label: code fingerprint}, "inputs": {key: digest}}``, the environment and
    the experiment definition the run executed each stored once by content (as an
    :class:`EnvironmentRecord` and a :class:`DefinitionRecord`); None for runs recorded
    without it.

    A ``pending`` run is a sweep point recorded with its sweep and not started yet: it
    has its initial checkpoint, no ``started_at``, and ``owner_id`` names the runtime
    that will start it (``metadata`` holds ``sweep_id`` and ``sweep_index``).
    """

    id: str
    experiment_id: str
    status: str
    metrics: dict[str, Any] = {}
    outputs: list[Any] = []
    metadata: dict[str, Any] = {}
    failure: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    owner_id: str | None = None
    resume_count: int = 0
    provenance: dict[str, Any] | None = None


class EnvironmentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The environment part of runs' provenance, stored once by content.

    ``id`` is the digest of ``record`` (``python``, ``crucible_actors``, ``platform``,
    ``host``, ``packages`` and ``git``; see :doc:`/provenance`);
    runs refer to it from ``RunRecord.provenance["environment"]``.
    """

    id: str
    record: dict[str, Any]
    created_at: datetime


class DefinitionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An experiment definition as one run executed it, stored once by content.

    ``id`` is the digest of ``definition`` (``ExperimentRecord.definition``'s JSON-safe
    form, encoded with sorted keys; see :doc:`/provenance`); runs refer to it from
    ``RunRecord.provenance["definition"]``. Unlike the :class:`ExperimentRecord`, which
    the next submission of the same experiment id overwrites, it never changes.
    """

    id: str
    definition: dict[str, Any]
    created_at: datetime


class StageAttempt(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One attempt at one stage; ``status``: completed, failed, timeout or cancelled.

    ``cache_hit`` is True for a completed attempt whose result came from the stage
    result cache (the stage did not run).
    """

    run_id: str
    index: int
    stage: str
    attempt: int
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    duration: float | None = None
    error: str | None = None
    cache_hit: bool = False
    #: The owner writing it. A store that fences writes applies it only while the run
    #: is still this owner's (not stored; None on records read back).
    owner_id: str | None = None


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The msgpack Context of run ``run_id`` before stage ``index``.

    ``index == len(pipeline)`` is the Context after the last stage.
    """

    run_id: str
    index: int
    data: bytes
    created_at: datetime
    #: The owner writing it. A store that fences writes applies it only while the run
    #: is still this owner's (not stored; None on records read back).
    owner_id: str | None = None


class ArtifactRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A file or object a run produced, from the final Context's ``artifacts``.

    ``key`` is the entry's key in ``Context.artifacts`` (several records may share a
    ``name``, e.g. one report in several formats).
    """

    run_id: str
    name: str
    type: str | None = None
    location: str
    format: str | None = None
    metadata: dict[str, Any] = {}
    key: str = ""


class TraceEventRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One decision-trace event of a run; ``seq`` counts from 1 in trace order.

    ``event`` is the whole JSON-safe :class:`~crucible_actors._core._trace_chain.TraceEvent`.
    """

    run_id: str
    seq: int
    type: str
    stage_id: str | None = None
    timestamp: datetime | None = None
    event: dict[str, Any] = {}


class OwnerRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A runtime process that executes runs.

    ``lease`` says how another process tells whether it is alive without trusting
    clocks (``_owner.py``): ``"pid:<boot id>:<start time>"`` for a process on a store
    local to one host (its pid is alive and still the same process), or the kind of
    lease the store holds for it (``"pg_advisory_lock"``: a session-level advisory lock
    the server releases when the session dies). None (rows written by older versions):
    only the heartbeat says.
    """

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    lease: str | None = None


class SweepRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One sweep: ``sweep`` is the JSON-safe ``Experiment.sweep``, ``runs`` how many it has.

    ``status`` is ``running`` until the last run ended, then ``completed`` (every run
    completed), ``failed`` or ``cancelled``.
    """

    id: str
    experiment_id: str
    sweep: dict[str, Any]
    runs: int
    status: str = "running"
    created_at: datetime
    finished_at: datetime | None = None


class SweepPointRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One run of a sweep: repeat ``repeat`` of point ``point``, at position ``index``.

    ``parameters`` maps option paths to this point's values; ``seed`` is the run's
    ``ctx.telemetry_context["seed"]``.
    """

    sweep_id: str
    index: int
    point: int
    repeat: int
    run_id: str
    parameters: dict[str, Any]
    seed: int


class PendingRun(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A sweep point recorded with its sweep before it starts (:meth:`Store.record_sweep`).

    ``run`` has status ``pending``; ``checkpoint`` is its initial Context (index 0), all a
    runtime needs to start it, here or, after this process died, in the one adopting it.
    """

    run: RunRecord
    checkpoint: Checkpoint


class CachedResult(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One entry of the stage result cache: what stage ``stage`` produced from one input.

    ``key`` is the hex digest the runtime computes from the stage, its ``version``, its
    code fingerprint, its options and its input Context
    (:doc:`/sweeps`); ``result`` the msgpack map of the Context
    fields the stage changed; ``size`` its length in bytes; ``run_id`` the run that
    computed it; ``code`` the stage's code fingerprint (``""`` for entries stored before
    fingerprints were kept). Listings leave ``result`` empty.
    """

    key: str
    stage: str
    version: str
    result: bytes = b""
    size: int
    run_id: str
    created_at: datetime
    code: str = ""


class DeletedRuns(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`Store.delete_runs` deleted (or, with ``dry_run``, would delete).

    ``run_ids`` are the runs deleted, in store order; ``skipped`` those a filter matched
    but that were left alone because they are ``running`` or ``pending``. The counts are
    the rows deleted with them; ``checkpoint_bytes`` the bytes of their checkpoints
    (returned to the file system by the next :meth:`Store.gc`). ``sweeps`` counts the
    sweeps deleted because none of their points was left.
    """

    run_ids: list[str] = []
    skipped: list[str] = []
    attempts: int = 0
    checkpoints: int = 0
    checkpoint_bytes: int = 0
    events: int = 0
    artifacts: int = 0
    sweep_points: int = 0
    sweeps: int = 0


class GcResult(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`Store.gc` deleted and the space it returned.

    ``cached_results`` are the stage results deleted because the run that computed them
    no longer exists; ``blobs`` / ``blob_bytes`` the blobs no checkpoint or cached result
    names any more (and partial blob files a killed writer left); ``blobs_kept`` the
    unreferenced blobs spared because they are newer than the start of the oldest
    running run (they may belong to a checkpoint not yet committed). ``bytes_before`` /
    ``bytes_after`` are the store's size (database plus blobs) around the collection;
    :attr:`freed` their difference.
    """

    cached_results: int = 0
    cached_bytes: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    blobs_kept: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    @property
    def freed(self) -> int:
        """The bytes the collection returned (never negative)."""
        return max(0, self.bytes_before - self.bytes_after)


class Store(Protocol):
    """Persistence for runs; see the module docstring for the shared contract.

    ``local`` is True when every process using the store runs on one host (SQLite,
    memory): recovery may then also treat an owner whose process id is gone as dead.

    Optional lease methods (looked up with ``getattr``; recovery says how they are
    used): ``lease_kind`` (a str stored in
    :attr:`~crucible_actors.store.OwnerRecord.lease`), ``async acquire_lease(owner_id) ->
    bool`` (False: another live session holds that owner's lease), ``async
    check_lease(owner_id) -> bool`` (False: the lease was lost, e.g. the session died; it is
    taken again if it can be), ``async release_lease(owner_id)`` and ``async
    leases_held(owner_ids) -> set[str]``. ``async adoption_probe() -> tuple[set[str | None],
    int]`` returns the owners of the ``running`` and ``pending`` runs and the number of
    ``interrupted`` runs, cheaply (the adoption tick asks every second or so). ``async
    start_pending(run_id, *, owner_id, started_at, metadata, provenance=None) -> bool``
    starts a ``pending`` run (sets it ``running`` with ``started_at``, ``metadata`` and,
    when given, ``provenance``) only while ``owner_id`` still owns it, False otherwise; a
    store with it takes a sweep's points as ``pending`` runs in :meth:`record_sweep`
    (without it, each point's row is written as it starts). Optional provenance methods
    (looked up with ``getattr``; a store without them records runs without their
    environment): ``async put_environment(env: EnvironmentRecord) -> bool`` stores an
    environment unless its id exists (True if it was new), and ``async
    get_environment(env_id) -> EnvironmentRecord | None``; likewise ``async
    put_definition(definition: DefinitionRecord) -> bool`` and ``async get_definitions(ids:
    Sequence[str]) -> dict[str, DefinitionRecord]`` (those of ``ids`` that are stored, read
    at once) for the runs' own experiment definitions. A store that fences writes also
    applies ``save_checkpoint`` and ``record_attempt`` only while ``owner_id`` of the record
    (when set) still owns the run, raising :class:`~crucible_actors.errors.OwnershipLost`
    otherwise.
    """

    @property
    def name(self) -> str:
        """A printable name of the store (its URL without secrets)."""
        ...

    @property
    def local(self) -> bool:
        """Whether all users of this store share one host."""
        ...

    @property
    def blobs(self) -> BlobStore | None:
        """Where the runs' large Context values live, stored once by content.

        A blob is written (durably, at the store's level) before a checkpoint or cached
        result referring to it. ``None`` (or no attribute, for a host's own store) means
        the store cannot hold blobs: the runtime then keeps large values inline in the
        checkpoints and cached results.
        """
        ...

    # -- writes: each one transaction, durable when it returns ----------------------

    async def start_run(
        self,
        run: RunRecord,
        *,
        experiment: ExperimentRecord,
        checkpoint: Checkpoint | None = None,
        resume: bool = False,
    ) -> None:
        """Upsert ``experiment``, record ``run`` as running and save ``checkpoint``.

        With ``resume`` the existing row is updated (status, owner; ``started_at`` and
        the earlier attempts are kept) and its ``resume_count`` is set to
        ``run.resume_count``: the caller numbers the resume (the stored count plus one),
        so a write retried after its commit's answer was lost counts it once. Without
        ``resume`` the run must be new.

        Raises:
            StoreError: ``resume`` is false and a run with this id already exists.
        """
        ...

    async def save_checkpoint(
        self, checkpoint: Checkpoint, *, attempts: Sequence[StageAttempt] = ()
    ) -> None:
        """Save (or replace) the checkpoint of ``checkpoint.run_id`` at its index.

        ``attempts`` are saved in the same transaction (as by :meth:`record_attempt`):
        the attempt that produced a checkpoint commits with it, at one cost.
        """
        ...

    async def record_attempt(self, attempt: StageAttempt) -> None:
        """Save (or replace) one stage attempt."""
        ...

    async def finish_run(
        self,
        run: RunRecord,
        *,
        artifacts: Sequence[ArtifactRecord],
        events: Sequence[TraceEventRecord],
        attempts: Sequence[StageAttempt] = (),
        checkpoint: Checkpoint | None = None,
    ) -> None:
        """Store the outcome of ``run`` and replace its artifacts and trace events.

        Updates status, metrics, outputs, metadata, failure and ``finished_at``, and
        saves ``attempts`` and ``checkpoint`` (the final Context) as
        :meth:`record_attempt` and :meth:`save_checkpoint` do, in the same transaction.
        The update only applies while ``run.owner_id`` still owns the run (a process
        that lost its run to another cannot overwrite it).

        Raises:
            RunNotFound: no such run.
            StoreError: another owner has taken the run over.
        """
        ...

    async def claim_run(
        self, run_id: str, *, status: str, owner_id: str | None, new_owner_id: str
    ) -> bool:
        """Atomically take run ``run_id`` over if it still has ``status`` and ``owner_id``.

        On success the run is owned by ``new_owner_id`` and ``running`` (a ``pending``
        run stays ``pending``: it has not started; ``start_pending`` starts it), and
        True is returned; False means another process changed it first.
        """
        ...

    async def mark_interrupted(
        self,
        run_id: str,
        *,
        owner_id: str | None,
        finished_at: datetime,
        failure: dict[str, Any] | None = None,
    ) -> bool:
        """Atomically mark a ``running`` (or ``pending``) run owned by ``owner_id`` as
        ``interrupted``."""
        ...

    async def register_owner(self, owner: OwnerRecord) -> None:
        """Insert (or replace) an owner row."""
        ...

    async def heartbeat(self, owner_id: str, at: datetime) -> bool:
        """Set the owner's ``heartbeat_at``; False when its row no longer exists."""
        ...

    async def remove_owner(self, owner_id: str) -> None:
        """Delete the owner row (its runs become orphans if any still run)."""
        ...

    async def record_sweep(
        self,
        sweep: SweepRecord,
        *,
        points: Sequence[SweepPointRecord],
        experiment: ExperimentRecord | None = None,
        pending: Sequence[PendingRun] = (),
    ) -> None:
        """Store a new sweep and all its points (run ids known before the runs start).

        With ``pending`` (a store that has ``start_pending``), the points' runs are
        recorded too, ``pending`` with their initial checkpoints, and ``experiment`` is
        upserted, all in the same transaction: every point of an acknowledged sweep is
        durable, and a runtime that adopts them after a crash can start them.

        Raises:
            StoreError: a sweep with this id already exists.
        """
        ...

    async def finish_sweep(self, sweep_id: str, *, status: str, finished_at: datetime) -> None:
        """Set the sweep's final ``status`` and ``finished_at``.

        Raises:
            StoreError: no such sweep.
        """
        ...

    async def put_cached_result(self, result: CachedResult) -> bool:
        """Store ``result`` unless its key is taken; return whether it was stored.

        Two runtimes that computed the same key store it once: the first write wins and
        the second returns False (no error).
        """
        ...

    async def clear_cached_results(self, *, stage: str | None = None) -> int:
        """Delete the cached results (of ``stage`` only, if given); return how many."""
        ...

    # -- queries --------------------------------------------------------------------

    async def get_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        """Return the experiment, or None when it was never stored."""
        ...

    async def list_experiments(self, *, limit: int = 50) -> list[ExperimentRecord]:
        """Return experiments, most recently updated first."""
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """Return the run.

        Raises:
            RunNotFound: no run has this id.
        """
        ...

    async def list_runs(
        self,
        *,
        experiment_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[RunRecord]:
        """Return runs newest first (insertion order), filtered, at most ``limit``.

        ``before`` is a run id: the page holds the runs stored before it, so passing
        the last id of one page fetches the next.

        Raises:
            RunNotFound: ``before`` names no run.
        """
        ...

    async def list_attempts(self, run_id: str) -> list[StageAttempt]:
        """Return the run's attempts ordered by stage index, then attempt."""
        ...

    async def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """Return the run's artifacts in the order the Context listed them."""
        ...

    async def load_checkpoint(self, run_id: str) -> Checkpoint | None:
        """Return the run's checkpoint with the highest index, or None."""
        ...

    async def list_events(self, run_id: str, *, after: int | None = None) -> list[TraceEventRecord]:
        """Return the run's trace events in order; ``after`` skips those with ``seq <= after``."""
        ...

    async def list_owners(self) -> list[OwnerRecord]:
        """Return every registered owner."""
        ...

    async def get_sweep(self, sweep_id: str) -> SweepRecord | None:
        """Return the sweep, or None when no sweep has this id."""
        ...

    async def list_sweeps(
        self, *, experiment_id: str | None = None, limit: int = 50
    ) -> list[SweepRecord]:
        """Return sweeps, newest first, at most ``limit``."""
        ...

    async def list_sweep_points(self, sweep_id: str) -> list[SweepPointRecord]:
        """Return the sweep's points ordered by ``index`` (empty for an unknown sweep)."""
        ...

    async def get_cached_result(self, key: str) -> CachedResult | None:
        """Return the cached result stored under ``key`` (with its bytes), or None."""
        ...

    async def list_cached_results(
        self, *, stage: str | None = None, limit: int = 100
    ) -> list[CachedResult]:
        """Return cached results (of ``stage`` only, if given), newest first, without
        their bytes (``result`` is empty; ``size`` says how long it is)."""
        ...

    # -- deleting and reclaiming space ------------------------------------------------

    async def delete_runs(
        self,
        run_ids: Sequence[str] = (),
        *,
        older_than: timedelta | None = None,
        status: str | None = None,
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> DeletedRuns:
        """Delete runs with their attempts, checkpoints, events, artifacts and sweep points.

        Either name the runs (``run_ids``) or select them: ``status`` and/or
        ``older_than`` (runs that finished, or started if they never finished, more
        than ``older_than`` before ``now``, default the current UTC time). Everything
        happens in one transaction. Named runs are all deleted or none: an unknown id
        or a run that is ``running`` or ``pending`` fails the call. Selected runs that
        are running or pending are left alone and listed in ``skipped``. With
        ``dry_run`` nothing is deleted; the result says what would be. Blobs and
        cached results the runs referred to stay until :meth:`gc`.

        Raises:
            ValueError: both ``run_ids`` and a filter, neither, or a live ``status``.
            RunNotFound: a named run does not exist.
            RunStillRunning: a named run is running or pending.
        """
        ...

    async def gc(self, *, now: datetime | None = None) -> GcResult:
        """Delete what no run needs any more and return the space to the file system.

        Deletes the cached results whose run (``CachedResult.run_id``) no longer exists
        (results of kept runs stay: ``crucible-actors cache clear`` drops those), then
        every blob that no checkpoint and no cached result names, except blobs newer
        than the start of the oldest ``running`` or ``pending`` run (or than ``now``,
        the collection's start, when none runs), less a slack of 2 s while a runtime
        is registered on the store: a running run may have written a blob whose
        checkpoint is not committed yet. Then compacts the database (SQLite:
        ``VACUUM`` and a truncating WAL checkpoint; PostgreSQL: ``VACUUM`` of the
        tables touched, which makes the space reusable rather than returning it).
        """
        ...
