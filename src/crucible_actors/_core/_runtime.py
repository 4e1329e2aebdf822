"""The runtime: the root of the supervision tree, a dynamic supervisor whose children are runs.

Runs are *temporary* children: a failed run is recorded and never restarted by the root,
and never disturbs its siblings (each run's wrapper catches its own errors, so the
task group's cancel-all-on-error rule never fires for a run). ``max_concurrent_runs``
caps how many runs execute at once; :meth:`Runtime.submit` waits for admission.
Leaving :func:`open_runtime` cancels the runs still going, in parallel, giving stage
cleanup (see :func:`cleanup_scope`) ``shutdown_grace`` seconds; with
``on_shutdown="interrupt"`` they end ``interrupted`` instead of ``cancelled``, resumable
from their last checkpoint by the next ``open_runtime(on_start="resume")`` on the store.
"""

from __future__ import annotations

from collections import deque
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

import anyio
import anyio.lowlevel
import msgspec

from ._context import Context
from ._data import DEFAULT_BLOB_THRESHOLD, blob_codec, reset_codec, set_codec
from ._encoding import encode_context
from ._errors import CrucibleError
from ._executor import ExecutorRegistry, ExecutorSettings, default_executors
from ._handle import RunHandle
from ._ids import new_run_id
from ._invoke import ValidateMode, check_validate_mode
from ._ir import Experiment
from ._ir_load import experiment_from_mapping, load_experiment
from ._lag import LagMonitor
from ._registry import Registry
from ._run_supervisor import RunSupervisor, unwrap_fatal
from ._trace_chain import new_chain
from .persistence._blobs import MemoryBlobStore

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Callable, Mapping

    from anyio.abc import TaskGroup
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ._cache import StageCache
    from ._data import BlobCodec
    from ._executor import Executor
    from ._instruments import RunObserver
    from ._metrics import RuntimeMetrics
    from ._sweep import SweepHandle
    from .persistence._blobs import BlobStore
    from .persistence._persistence import Persistence
    from .persistence._recovery import RecoveryReport
    from .persistence._store import Store

__all__ = [
    "Runtime",
    "RuntimeStatistics",
    "ShutdownMode",
    "StartMode",
    "coerce_experiment",
    "open_runtime",
]

#: What opening a runtime does to the runs a dead process left ``running``: resume them
#: (and the runs a shutdown interrupted), mark them ``interrupted``, or leave them.
StartMode: TypeAlias = Literal["mark_interrupted", "resume", "ignore"]
#: What closing a runtime does to the runs still going: record them ``cancelled``, or
#: ``interrupted`` with their last checkpoint, for ``on_start="resume"`` to continue.
ShutdownMode: TypeAlias = Literal["cancel", "interrupt"]


def coerce_experiment(experiment: Experiment | Mapping[str, Any] | str | Path) -> Experiment:
    """Accept an Experiment, a JSON-like mapping, or a path to an experiment file."""
    if isinstance(experiment, Experiment):
        return experiment
    if isinstance(experiment, str | Path):
        return load_experiment(experiment)
    return experiment_from_mapping(dict(experiment))


class RuntimeStatistics(msgspec.Struct, frozen=True):
    """A snapshot of the runtime's counters."""

    active: int
    waiting: int
    submitted: int
    by_status: dict[str, int]
    max_concurrent_runs: int | None


class Runtime:
    """Accepts runs and supervises them; obtain one with :func:`open_runtime`."""

    def __init__(
        self,
        task_group: TaskGroup,
        *,
        registry: Registry,
        executors: ExecutorRegistry | None = None,
        observer_factory: Any = None,
        max_concurrent_runs: int | None,
        recorder: Any,
        shutdown_grace: float,
        keep_finished: int,
        on_shutdown: ShutdownMode = "cancel",
    ) -> None:
        self._tg = task_group
        self.registry = registry
        #: The executors stages run on, by isolation name.
        self.executors = executors if executors is not None else default_executors
        self._observer_factory = observer_factory
        self._limit = max_concurrent_runs
        self._slots = anyio.Semaphore(max_concurrent_runs) if max_concurrent_runs else None
        self._recorder = recorder
        self._grace = shutdown_grace
        self._interrupt_on_shutdown = on_shutdown == "interrupt"
        self._active: dict[str, RunHandle] = {}
        self._finished: deque[RunHandle] = deque(maxlen=keep_finished)
        self._by_id: dict[str, RunHandle] = {}
        self._waiting = 0
        #: Sweeps still starting points here (their own or adopted): see wait_idle.
        self._feeding = 0
        self._submitted = 0
        self._counts: dict[str, int] = {}
        self._idle = anyio.Event()
        self._idle.set()
        self._closing = False
        self._on_exit = self._run_exited  # one bound method shared by every run
        #: The store runs persist to (a Store), or None when nothing is persisted.
        self.store: Any = None
        #: The store with this runtime's owner identity (a Persistence), or None.
        self._persistence: Any = None
        #: The stage result cache (in ``store``), or None without a store that has one.
        self.cache: StageCache | None = None
        #: Where runs store large Context values (``store.blobs``; in memory without a
        #: store) and the size above which a value goes there; see :meth:`use_blobs`.
        self.codec: BlobCodec = blob_codec(None)
        #: What start-up recovery did (``on_start``), its ``failed`` runs included; None
        #: without a store.
        self.recovery: RecoveryReport | None = None
        #: Warns when a stage blocks the event loop (see ``_lag.py``).
        self.lag_monitor = LagMonitor()

    # -- public API ------------------------------------------------------------------

    async def submit(
        self,
        experiment: Experiment | Mapping[str, Any] | str | Path,
        *,
        run_id: str | None = None,
        assigns: Mapping[str, Any] | None = None,
        validate_options: ValidateMode = "off",
        enable_trace: bool = False,
        persist: bool = True,
        telemetry: Mapping[str, Any] | None = None,
        cache: bool = True,
    ) -> RunHandle:
        """Admit a run of ``experiment`` and return its handle once it is admitted.

        Waits while ``max_concurrent_runs`` runs are executing. With a store (and
        ``persist``), returns only once the run's row is committed at the store's
        durability level: an acknowledged run survives a crash of this process the
        moment ``submit`` returns (concurrent submits share one commit). ``telemetry`` seeds
        ``ctx.telemetry_context`` (a sweep puts each run's ``seed`` there). With
        ``cache=False`` the run neither looks up nor stores stage results (the CLI's
        ``--no-cache``); otherwise the stages its experiment caches use the runtime's
        store (see :doc:`the stage result cache </sweeps>`).

        Raises:
            ValueError: bad ``validate_options`` or a ``run_id`` already in use.
            EncodeError: ``assigns`` holds a value that cannot be encoded.
            InvalidExperiment: ``experiment`` is malformed.
            CrucibleError: the runtime is shutting down.
            StoreError: the store could not record the run (nothing runs then).
        """
        if self._closing:
            raise CrucibleError("the runtime is shutting down and accepts no new runs")
        mode = check_validate_mode(validate_options)
        exp = coerce_experiment(experiment)
        self.executors.check(exp, self.registry)
        rid = run_id if run_id is not None else new_run_id()
        if rid in self._active:
            raise ValueError(f"run id {rid!r} is already running; pass a different run_id")
        snapshot = self._initial_snapshot(exp, rid, assigns, telemetry, enable_trace)
        return await self._admit(exp, rid, mode, snapshot, 0, persist, cache, durable=True)

    async def submit_sweep(
        self,
        experiment: Experiment | Mapping[str, Any] | str | Path,
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
        """Check and record ``experiment.sweep``, start its runs, and return their handle.

        See :doc:`/sweeps` for the options, and the errors below;
        ``cache`` is :meth:`submit`'s, for every run.
        """
        from ._sweep import submit_sweep

        return await submit_sweep(
            self,
            self._tg,
            coerce_experiment(experiment),
            sweep_id=sweep_id,
            assigns=assigns,
            validate_options=validate_options,
            enable_trace=enable_trace,
            persist=persist,
            max_concurrent=max_concurrent,
            confirm_large=confirm_large,
            cache=cache,
        )

    async def resume(
        self,
        experiment: Experiment,
        run_id: str,
        snapshot: bytes,
        start_index: int,
        *,
        validate_options: ValidateMode = "off",
    ) -> RunHandle:
        """Continue a run from the checkpoint ``snapshot`` taken before ``start_index``.

        Stages before ``start_index`` are not re-run.
        """
        mode = check_validate_mode(validate_options)
        return await self._admit(experiment, run_id, mode, snapshot, start_index, True)

    def _initial_snapshot(
        self,
        exp: Experiment,
        run_id: str,
        assigns: Mapping[str, Any] | None,
        telemetry: Mapping[str, Any] | None,
        enable_trace: bool,
    ) -> bytes:
        """Encode the Context a new run of ``exp`` starts from (what its first checkpoint
        holds)."""
        ctx = Context.new(exp, run_id=run_id, assigns=assigns)
        if telemetry:
            ctx = msgspec.structs.replace(ctx, telemetry_context=dict(telemetry))
        if enable_trace:
            ctx = msgspec.structs.replace(ctx, trace=new_chain(exp.name or exp.id))
        token = set_codec(self.codec)
        try:
            return encode_context(ctx)
        finally:
            reset_codec(token)

    async def _start_pending(
        self, exp: Experiment, run_id: str, snapshot: bytes, mode: ValidateMode, cache: bool
    ) -> RunHandle:
        """Start the ``pending`` run ``run_id`` its sweep recorded (its row and initial
        checkpoint ``snapshot`` are stored); return once it is ``running`` in the store.

        Raises:
            CrucibleError: the runtime is shutting down.
            OwnershipLost: another runtime took the run over.
            StoreError: the store could not start it.
        """
        if self._closing:
            raise CrucibleError("the runtime is shutting down and accepts no new runs")
        return await self._admit(
            exp, run_id, mode, snapshot, 0, True, cache, durable=True, pending=True
        )

    def runs(self) -> list[RunHandle]:
        """Return the handles of the active runs and the most recently finished ones."""
        return [*self._active.values(), *self._finished]

    def get(self, run_id: str) -> RunHandle | None:
        """Return the handle of run ``run_id`` if this runtime still holds it."""
        return self._by_id.get(run_id)

    def forget(self, run_id: str) -> bool:
        """Drop the handle of the finished run ``run_id`` (a run deleted from the store).

        Returns whether a handle was dropped; an active run's handle is kept.
        """
        handle = self._by_id.get(run_id)
        if handle is None or run_id in self._active or not handle.done:
            return False
        del self._by_id[run_id]
        if handle in self._finished:
            self._finished.remove(handle)
        return True

    async def wait_idle(self) -> None:
        """Wait until no run is active or waiting for admission, and no sweep (submitted
        here, or adopted from a dead process by ``on_start="resume"``) has points left to
        start."""
        while self._active or self._waiting or self._feeding:
            await self._idle.wait()

    def _feeding_started(self) -> None:
        """A sweep begins feeding points: the runtime is not idle until it ends."""
        self._feeding += 1
        if self._idle.is_set():
            self._idle = anyio.Event()

    def _feeding_ended(self) -> None:
        self._feeding -= 1
        if not self._active and not self._waiting and not self._feeding:
            self._idle.set()

    @property
    def accepting(self) -> bool:
        """Whether :meth:`submit` admits new runs (False once the runtime is closing)."""
        return not self._closing

    def statistics(self) -> RuntimeStatistics:
        """Return a frozen snapshot of the runtime's counters."""
        return RuntimeStatistics(
            active=len(self._active),
            waiting=self._waiting,
            submitted=self._submitted,
            by_status=dict(self._counts),
            max_concurrent_runs=self._limit,
        )

    def use_blobs(
        self,
        store: BlobStore | None,
        threshold: int = DEFAULT_BLOB_THRESHOLD,
        *,
        resolve: Callable[[], int] | None = None,
    ) -> None:
        """Store runs' values larger than ``threshold`` bytes in ``store`` (None: inline).

        ``resolve`` looks the threshold up when it is first needed instead.
        """
        self.codec = blob_codec(store, threshold, resolve=resolve)

    # -- internals -------------------------------------------------------------------

    async def _admit(
        self,
        exp: Experiment,
        run_id: str,
        mode: ValidateMode,
        snapshot: bytes,
        start_index: int,
        persist: bool,
        cache: bool = True,
        *,
        durable: bool = False,
        pending: bool = False,
    ) -> RunHandle:
        """Start a run; with ``durable``, record its row before its task starts (with
        ``pending``, start the ``pending`` row its sweep recorded instead).

        A durable admission writes the row in the caller's task (shielded: a cancelled
        caller still leaves a committed row behind, so the run is started anyway and
        reaches a terminal state) and raises the store's error instead of starting a
        run the store does not know. Resumed runs already have their row: their task
        records the restart.
        """
        handle = RunHandle(run_id, exp, resumed_from=start_index)
        observer: RunObserver | None = None
        if persist and self._observer_factory is not None:
            observer = self._observer_factory()
        supervisor = RunSupervisor(
            handle,
            registry=self.registry,
            executors=self.executors,
            validate_mode=mode,
            snapshot=snapshot,
            start_index=start_index,
            observer=observer,
            recorder=self._recorder,
            otel_parent=self._capture_parent(),
            on_exit=self._on_exit,
            cache=self.cache.for_run(exp) if cache and self.cache is not None else None,
            codec=self.codec,
        )
        if self._slots is not None:
            self._waiting += 1
            self._idle = anyio.Event() if self._idle.is_set() else self._idle
            try:
                await self._slots.acquire()
            finally:
                self._waiting -= 1
        if durable and observer is not None:
            try:
                # A caller cancelled already starts no write (the write itself is shielded).
                await anyio.lowlevel.checkpoint_if_cancelled()
                with anyio.CancelScope(shield=True):
                    if pending:
                        await observer.pending_started(handle, snapshot)
                    else:
                        await observer.run_started(handle, snapshot)
            except BaseException:
                if self._slots is not None:
                    self._slots.release()
                raise
        self._submitted += 1
        self._active[run_id] = handle
        self._by_id[run_id] = handle
        if self._idle.is_set():
            self._idle = anyio.Event()
        # The task's own cancel scope is the run's: ``RunHandle.cancel`` cancels the task.
        handle._attach_task(self._tg.start_soon(supervisor.execute, name=f"run {run_id}"))
        if self._closing and durable:
            # Admitted while the runtime began closing (the row write above yielded):
            # the shutdown did not see this run, so give it the same treatment.
            self._stop(handle, anyio.current_time() + self._grace)
        return handle

    def _capture_parent(self) -> Any:
        if self._recorder is None:
            return None
        from ._spans import capture_parent

        return capture_parent()

    def _run_exited(self, handle: RunHandle) -> None:
        """Bookkeeping once a run's task is ending (called by its supervisor)."""
        if self._slots is not None:
            self._slots.release()
        self._active.pop(handle.run_id, None)
        finished = self._finished
        if finished.maxlen is not None and len(finished) == finished.maxlen:
            # The oldest finished handle is about to be pushed out: forget its id too,
            # unless a newer run (a resume) holds it now.
            oldest = finished[0] if finished.maxlen else handle
            if self._by_id.get(oldest.run_id) is oldest:
                del self._by_id[oldest.run_id]
        finished.append(handle)
        self._counts[handle.status.value] = self._counts.get(handle.status.value, 0) + 1
        if not self._active and not self._waiting and not self._feeding:
            self._idle.set()

    async def _shutdown(self) -> None:
        self._closing = True
        deadline = anyio.current_time() + self._grace
        for handle in list(self._active.values()):
            self._stop(handle, deadline)

    def _stop(self, handle: RunHandle, deadline: float) -> None:
        """Cancel (or interrupt) one run for the shutdown, cleanup until ``deadline``."""
        handle._shut_down(deadline, interrupt=self._interrupt_on_shutdown)

    def _stop_lost(self, run_id: str, reason: Exception) -> None:
        """Stop run ``run_id``, which another runtime took over: it ends ``interrupted``
        here with ``reason``, and its (fenced) writes no longer reach the store."""
        handle = self._active.get(run_id)
        if handle is not None:
            handle._taken_over(reason, anyio.current_time() + self._grace)


@asynccontextmanager
async def open_runtime(
    *,
    registry: Registry | None = None,
    store: Store | Persistence | str | os.PathLike[str] | None = None,
    max_concurrent_runs: int | None = None,
    tracer_provider: TracerProvider | None = None,
    shutdown_grace: float = 10.0,
    keep_finished: int = 10_000,
    on_start: StartMode = "mark_interrupted",
    executors: Mapping[str, Executor] | None = None,
    meter_provider: MeterProvider | None = None,
    process_workers: int | None = None,
    ray_address: str | None = None,
    on_shutdown: ShutdownMode = "cancel",
    blob_threshold: int | None = None,
    adopt: bool = True,
    adopt_interval: float = 1.5,
    watch_loop: bool = True,
    provenance: bool = True,
) -> AsyncIterator[Runtime]:
    """Open a runtime in the caller's trio or asyncio loop and yield it.

    ``registry`` defaults to :meth:`Registry.default`. ``store`` is a Store or a store
    URL; runs persist only when one is given. ``tracer_provider`` turns OpenTelemetry
    spans on (a globally installed SDK provider does too). On exit, runs still going are
    cancelled in parallel; their :func:`cleanup_scope` blocks get ``shutdown_grace``
    seconds. ``on_shutdown`` says how those runs end: ``"cancel"`` (the default) records
    them ``cancelled``; ``"interrupt"`` records them ``interrupted`` with their last
    checkpoint (their handles raise :class:`RuntimeShutdown`), and the next
    ``on_start="resume"`` on the same store continues them without re-running the stages
    they completed. A run cancelled on request stays ``cancelled`` either way.
    ``on_start`` says what happens, before the runtime is yielded, to the runs a dead
    process left ``running``: ``"mark_interrupted"`` (the default) marks them
    ``interrupted``, ``"resume"`` resumes them from their last checkpoint (and the runs a
    shutdown interrupted too), ``"ignore"`` leaves them. ``keep_finished`` bounds how many
    finished handles :meth:`Runtime.runs` remembers. ``executors`` registers executors by
    isolation name over the process-wide ones (:mod:`crucible_actors.executors`); those
    that are async context managers are entered before the first run and exited after the
    last.
    ``meter_provider`` records this runtime's runs as OpenTelemetry metrics
    (:mod:`crucible_actors.metrics`) until the runtime closes. ``process_workers`` sizes
    the runtime's warm process pool (default: the CPU count); ``ray_address`` names the Ray
    cluster ``isolation="ray"`` stages run on (default: ``RAY_ADDRESS``, ``[ray] address``
    in ``crucible.toml``, else a local Ray started on first use and stopped on exit).
    ``blob_threshold`` is the size in bytes above which a Context value is stored once by
    content in the store's blob store (``x.db.blobs/`` beside a SQLite file; in memory
    without a store) and referenced from checkpoints, cached results and executor
    messages (default: ``[runtime] blob_threshold`` in ``crucible.toml``, else 65536).
    With ``on_start="resume"`` and ``adopt`` (the default) the runtime keeps adopting,
    every ``adopt_interval`` seconds while it is open, the runs of processes that die
    (judged by their lease, not by clocks: see the README's Guarantees) or shut down
    leaving runs ``interrupted``; ``adopt=False`` resumes only at start-up.
    ``watch_loop`` (default on) runs the event-loop lag monitor, which logs a stage that
    blocks the loop (and so every other run) for a second or more; ``run_async`` turns it
    off, since the one run it owns is the only one a block could delay.
    ``provenance`` (default on, with a store) records with each new run what produced it
    (versions, packages, platform, host, git commit, stage code fingerprints, input
    digests; see :doc:`/provenance`).

    Raises:
        ValueError: ``max_concurrent_runs`` or ``process_workers`` is not positive,
            ``blob_threshold`` is negative, ``on_start`` or ``on_shutdown`` is unknown, or
            ``adopt_interval`` is not positive.
    """
    if max_concurrent_runs is not None and max_concurrent_runs < 1:
        raise ValueError(f"max_concurrent_runs must be >= 1, got {max_concurrent_runs!r}")
    if process_workers is not None and process_workers < 1:
        raise ValueError(f"process_workers must be >= 1, got {process_workers!r}")
    if on_start not in get_args(StartMode):
        raise ValueError(
            f"on_start must be 'resume', 'mark_interrupted' or 'ignore'; got {on_start!r}"
        )
    if not adopt_interval > 0:
        raise ValueError(f"adopt_interval must be > 0 seconds, got {adopt_interval!r}")
    if on_shutdown not in get_args(ShutdownMode):
        raise ValueError(f"on_shutdown must be 'cancel' or 'interrupt'; got {on_shutdown!r}")
    if blob_threshold is not None:
        _check_threshold(blob_threshold, "blob_threshold")
    from ._spans import make_recorder

    reg = registry if registry is not None else Registry.default()
    settings = ExecutorSettings(process_workers=process_workers, ray_address=ray_address)
    execs, own = default_executors.for_runtime(settings, skip=executors or ())
    if executors:
        execs = execs.merged(executors)
    recorder = make_recorder(tracer_provider)
    # Errors from the caller's block are re-raised as they are once every task group
    # below has closed (task groups would wrap them in ExceptionGroups); an interrupt or
    # exit comes out bare too.
    body_error: Exception | None = None
    with unwrap_fatal():
        async with (
            _enter_executors([*own, *(executors or {}).values()]),
            _open_store_adapter(store) as adapter,
            anyio.create_task_group() as tg,
        ):
            rt = Runtime(
                tg,
                registry=reg,
                executors=execs,
                observer_factory=adapter.observer if adapter is not None else None,
                max_concurrent_runs=max_concurrent_runs,
                recorder=recorder,
                shutdown_grace=shutdown_grace,
                keep_finished=keep_finished,
                on_shutdown=on_shutdown,
            )
            rt.store = adapter.store if adapter is not None else None
            rt._persistence = adapter
            # A store without blobs (a host's own) keeps large values inline. Without an
            # argument, crucible.toml is read when a run first needs the threshold: a
            # short run of small values never pays for the lookup.
            rt.use_blobs(
                getattr(rt.store, "blobs", None) if rt.store is not None else MemoryBlobStore(),
                blob_threshold if blob_threshold is not None else DEFAULT_BLOB_THRESHOLD,
                resolve=None if blob_threshold is not None else _configured_threshold,
            )
            if adapter is not None and provenance:
                from ._provenance import ProvenanceRecorder

                adapter.provenance = ProvenanceRecorder(adapter.store, reg, adapter.now)
            if adapter is not None and callable(getattr(rt.store, "get_cached_result", None)):
                from ._cache import StageCache

                rt.cache = StageCache(rt.store, now=adapter.now)
            metrics = _record_metrics(meter_provider, rt)
            if watch_loop:
                tg.start_soon(rt.lag_monitor.run, name="crucible event-loop lag monitor")
            adopting = anyio.CancelScope()
            try:
                if adapter is not None:
                    rt.recovery = await adapter.recover(rt, on_start)
                    if adopt and on_start == "resume":
                        tg.start_soon(
                            _adopt, adopting, adapter, rt, adopt_interval, name="crucible adoption"
                        )
                try:
                    yield rt
                except Exception as exc:
                    body_error = exc
                finally:
                    adopting.cancel()  # adopts nothing while the runs shut down
                    await rt._shutdown()
            finally:
                rt.lag_monitor.stop()
                if metrics is not None:
                    metrics.close()
    if body_error is not None:
        raise body_error


def _check_threshold(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{source} must be a number of bytes >= 0, got {value!r}")
    return value


def _configured_threshold() -> int:
    """Return ``[runtime] blob_threshold`` from crucible.toml, else 65536.

    Raises:
        ValueError: the value is not a number of bytes, or the file is unreadable.
    """
    from ._config import find_config

    config = find_config()
    value = None if config is None else config.table("runtime").get("blob_threshold")
    if value is None:
        return DEFAULT_BLOB_THRESHOLD
    assert config is not None
    return _check_threshold(value, f"{config.path}: {config.table_name('runtime')} blob_threshold")


async def _adopt(scope: anyio.CancelScope, adapter: Any, rt: Runtime, interval: float) -> None:
    with scope:
        await adapter.adopt_forever(rt, interval)


def _record_metrics(meter_provider: Any, rt: Runtime) -> RuntimeMetrics | None:
    """Attach metrics on ``meter_provider`` counting only ``rt``'s runs (None: no provider)."""
    if meter_provider is None:
        return None
    from ._metrics import RuntimeMetrics

    def ours(metadata: Mapping[str, Any]) -> bool:
        return rt.get(str(metadata.get("run_id"))) is not None

    return RuntimeMetrics(meter_provider, accept=ours).attach()


@asynccontextmanager
async def _enter_executors(executors: list[Any]) -> AsyncIterator[None]:
    """Enter the given executors that are async context managers, exit them in reverse."""
    if not executors:
        yield
        return
    async with AsyncExitStack() as stack:
        for executor in executors:
            if hasattr(executor, "__aenter__"):
                await stack.enter_async_context(executor)
        yield


@asynccontextmanager
async def _open_store_adapter(store: Any) -> AsyncIterator[Any]:
    """Yield a persistence adapter for ``store`` (a Store, a URL, or None)."""
    if store is None:
        yield None
        return
    from .persistence._persistence import open_persistence

    async with open_persistence(store) as adapter:
        yield adapter
