"""The driver's side: :class:`RayExecutor`, its connection, actor pools and blob refs."""

from __future__ import annotations

import contextlib
import os
import sys
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import msgspec

from ..._core import (
    DEFAULT_BLOB_THRESHOLD,
    ExecutorError,
    InvalidExperiment,
    MissingDependency,
    WorkerCrashed,
    blob_digests,
    check_digest,
    cleanup_scope,
    current_codec,
)
from ..._core import messages as msg
from .._wire import decode_result
from ..pool import attempt_request, error_of
from ._config import ray_address, ray_request
from ._worker import _StageActorImpl, _task_for

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import TracebackType

    from ..._core import (
        AttemptIO,
        BlobStore,
        ExecutorSettings,
        PreparedStage,
        Registry,
        StageDef,
    )

__all__ = ["RayExecutor"]

_encode = msgspec.msgpack.Encoder().encode

_ACTOR_RESTARTS = 3
_CANCEL_WAIT = 5.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependency("ray", "isolation='ray' stages", extra="ray") from exc
    return ray


def _wake_soon() -> Callable[[Callable[[], object]], object]:
    """Return a thread-safe, non-blocking "call this on the running loop" function."""
    import asyncio

    try:
        return asyncio.get_running_loop().call_soon_threadsafe
    except RuntimeError:  # not asyncio: anyio's other backend
        import trio.lowlevel

        return trio.lowlevel.current_trio_token().run_sync_soon


async def _result(ref: Any) -> Any:
    """Wait for a Ray ObjectRef without blocking the loop or holding a thread; return it."""
    fut = ref.future()
    if not fut.done():
        event = anyio.Event()
        wake = _wake_soon()

        def done(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                wake(event.set)

        fut.add_done_callback(done)
        await event.wait()
    return fut.result()


class _ActorPool:
    """Up to ``size`` actors of one stateful stage, created on demand."""

    __slots__ = ("_idle", "_slots", "all", "created", "factory")

    def __init__(self, size: int) -> None:
        self._slots = anyio.Semaphore(size)
        self._idle: list[Any] = []
        self.all: list[Any] = []
        self.created = 0
        #: Creates one actor (set on first use, once Ray is connected).
        self.factory: Callable[[], Any] | None = None

    async def acquire(self) -> Any:
        await self._slots.acquire()
        if self._idle:
            return self._idle.pop()
        assert self.factory is not None
        actor = self.factory()
        self.all.append(actor)
        self.created += 1
        return actor

    def release(self, actor: Any) -> None:
        self._idle.append(actor)
        self._slots.release()

    def discard(self, ray: Any, actor: Any) -> None:
        with contextlib.suppress(ValueError):
            self.all.remove(actor)
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)
        self._slots.release()


class RayExecutor:
    """Runs attempts on a Ray cluster (see the module docstring).

    Args:
        address: The cluster (``"auto"``, ``"ray://head:10001"``, ``"host:6379"``); None
            resolves as :func:`~crucible_actors.executors.ray.ray_address` does, and
            starts a local Ray if nothing is set.
        runtime_env: Passed to ``ray.init`` (``working_dir``, ``py_modules``, ``pip``...).
            A local Ray started here gets ``env_vars={"PYTHONPATH": <the driver's
            sys.path>}`` unless this sets its own.
        init_options: More ``ray.init`` keywords (``num_cpus``, ``namespace``...).
        blob_cache_bytes: How many bytes of blobs this runtime keeps put in Ray's object
            store for later attempts (least recently used first out; an attempt that needs
            one again puts it again). Default 4 GiB.
    """

    __slots__ = (
        "_actor_pools",
        "_address",
        "_blob_budget",
        "_blob_held",
        "_blob_lock",
        "_blob_puts",
        "_blob_refs",
        "_cluster",
        "_connect_lock",
        "_init_options",
        "_ray",
        "_runtime_env",
        "_serializable",
        "_shipped",
        "_started",
    )

    def __init__(
        self,
        address: str | None = None,
        *,
        runtime_env: Mapping[str, Any] | None = None,
        init_options: Mapping[str, Any] | None = None,
        blob_cache_bytes: int = 4 << 30,
    ) -> None:
        self._address = address
        self._runtime_env = dict(runtime_env) if runtime_env is not None else None
        self._init_options = dict(init_options or {})
        self._ray: Any = None
        self._started = False
        self._connect_lock: anyio.Lock | None = None
        self._shipped: dict[int, tuple[Any, Any]] = {}
        self._serializable: dict[int, Any] = {}
        self._actor_pools: dict[int, tuple[Any, _ActorPool]] = {}
        self._cluster: dict[str, float] | None = None
        #: digest -> (ObjectRef, size) of the blobs put, least recently used first.
        self._blob_refs: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._blob_held = 0
        self._blob_budget = blob_cache_bytes
        self._blob_puts = 0
        self._blob_lock: anyio.Lock | None = None

    def for_runtime(self, settings: ExecutorSettings) -> RayExecutor:
        """Return a new runtime's Ray executor (``settings.ray_address`` over this one's)."""
        return RayExecutor(
            settings.ray_address or self._address,
            runtime_env=self._runtime_env,
            init_options=self._init_options,
            blob_cache_bytes=self._blob_budget,
        )

    # -- before a run is admitted ----------------------------------------------------

    def check(self, stage_def: StageDef, registry: Registry) -> None:
        """Check that a ray stage can run: the extra is installed and Ray can ship it.

        Raises:
            MissingDependency: ``ray`` is not installed (``pip install
                'crucible-actors[ray]'``).
            InvalidExperiment: Ray cannot serialize the stage object.
        """
        _import_ray()
        from ..._core import resolve_stage

        stage_obj = resolve_stage(stage_def, registry)
        key = id(stage_obj)
        if self._serializable.get(key) is stage_obj:
            return
        from ray import cloudpickle

        try:
            cloudpickle.dumps(stage_obj)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise InvalidExperiment(
                f"stage {stage_def.label!r}: stage: Ray cannot serialize "
                f"{type(stage_obj).__qualname__} to ship it to its workers "
                f"({type(exc).__name__}: {exc}); keep unpicklable state (locks, open files, "
                "connections) out of the stage object, or create it in setup()"
            ) from exc
        self._serializable[key] = stage_obj

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> RayExecutor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Tear down the stateful stages' actors; shut Ray down if this executor started it."""
        ray = self._ray
        pools, self._actor_pools = self._actor_pools, {}
        self._shipped = {}
        self._blob_refs = OrderedDict()
        self._blob_held = 0
        if ray is None:
            return
        with anyio.CancelScope(shield=True):
            actors = [a for _, pool in pools.values() for a in pool.all]
            if actors:
                refs = [a.teardown.remote() for a in actors]
                with anyio.move_on_after(_CANCEL_WAIT):
                    for ref in refs:
                        with contextlib.suppress(Exception):
                            await _result(ref)
                for actor in actors:
                    with contextlib.suppress(Exception):
                        ray.kill(actor, no_restart=True)
            if self._started:
                self._started = False
                self._ray = None
                await anyio.to_thread.run_sync(ray.shutdown)

    async def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        if self._connect_lock is None:
            self._connect_lock = anyio.Lock()
        async with self._connect_lock:
            if self._ray is not None:
                return self._ray
            ray = _import_ray()
            if not ray.is_initialized():
                address = await anyio.to_thread.run_sync(ray_address, self._address)
                options: dict[str, Any] = {"log_to_driver": True, **self._init_options}
                env = self._runtime_env
                if address is None:
                    options.setdefault("include_dashboard", False)
                    if env is None:
                        path = os.pathsep.join(p for p in sys.path if p)
                        env = {"env_vars": {"PYTHONPATH": path}}
                if env is not None:
                    options["runtime_env"] = env
                await anyio.to_thread.run_sync(lambda: ray.init(address=address, **options))
                self._started = True
            self._ray = ray
            return ray

    def statistics(self) -> dict[str, Any]:
        """Return the actors each stateful stage has (``created`` counts replacements).

        ``blob_puts`` counts the blobs put in Ray's object store, ``blobs_held`` those
        this runtime keeps there.
        """
        return {
            "connected": self._ray is not None,
            "started_ray": self._started,
            "blob_puts": self._blob_puts,
            "blobs_held": len(self._blob_refs),
            "blob_bytes_held": self._blob_held,
            "actor_pools": {
                type(stage_obj).__qualname__: {"alive": len(pool.all), "created": pool.created}
                for stage_obj, pool in self._actor_pools.values()
            },
        }

    # -- attempts -------------------------------------------------------------------

    def _task_of(self, ray: Any, stage: PreparedStage) -> Any:
        """Return the stage's Ray remote function (made once per stage object).

        The stage object is in the function's closure, so it reaches the workers the way
        Ray ships any function: exported once, cached by every worker that runs it, and
        never part of the per-attempt arguments.
        """
        stage_obj = stage.info.stage
        key = id(stage_obj)
        hit = self._shipped.get(key)
        if hit is not None and hit[0] is stage_obj:
            return hit[1]
        fn = ray.remote(max_retries=0)(_task_for(stage_obj))
        request = ray_request(stage.definition)
        if request:
            fn = fn.options(**request)
        self._shipped[key] = (stage_obj, fn)
        return fn

    def _check_fits(self, ray: Any, stage: PreparedStage, request: dict[str, Any]) -> None:
        if self._cluster is None:
            self._cluster = dict(ray.cluster_resources())
        total = self._cluster
        wanted = {k: v for k, v in request.items() if k != "resources"}
        wanted.update(request.get("resources", {}))
        for key, amount in wanted.items():
            name = {"num_cpus": "CPU", "num_gpus": "GPU"}.get(key, key)
            have = total.get(name, 0.0)
            if amount > have:
                raise ExecutorError(
                    f"stage {stage.label!r}: resources.{key} = {amount:g}, but the Ray "
                    f"cluster has {have:g} {name} in all; lower the request or add nodes "
                    "that have it",
                    stage=stage.label,
                )

    async def run(
        self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
    ) -> msg.AttemptDone | msg.AttemptFailed:
        """Run the attempt as a Ray task or on a stage actor; return its reply."""
        try:
            ray = await self._connect()
            ctx = io.begin(stage, command)
            request = ray_request(stage.definition)
            if request:
                self._check_fits(ray, stage, request)
            codec = current_codec()
            store = codec.store if codec is not None else None
            threshold = codec.threshold if codec is not None else DEFAULT_BLOB_THRESHOLD
            attempt = attempt_request(stage, command, ctx, threshold=threshold)
            digests = sorted(blob_digests(attempt.command.context)) if store else []
            refs = await self._blob_refs_for(ray, store, digests) if store else []
            args = (_encode(attempt), digests, *refs)
            if stage.info.has_setup:
                answer = await self._on_actor(ray, stage, request, args)
            else:
                answer = await self._as_task(ray, stage, request, args)
            body, made = answer if isinstance(answer, tuple) else (answer, None)
            reply = msg.decode_message(body[1:])
            if isinstance(reply, msg.AttemptDone):
                if made:
                    assert store is not None
                    await anyio.to_thread.run_sync(_store_made, store, made)
                return io.done(stage, command, decode_result(reply.context, body[0] == 1, ctx))
            assert isinstance(reply, msg.AttemptFailed)
            return io.failed(command, error_of(stage.label, reply))
        except Exception as exc:
            return io.failed(command, exc)

    async def _blob_refs_for(self, ray: Any, store: BlobStore, digests: Sequence[str]) -> list[Any]:
        """Return the ObjectRefs of ``digests``, putting those not yet in Ray's store.

        A ref dropped from the cache stays valid for the attempts already holding it
        (Ray counts references); the object is freed once the last one is done.
        """
        held = self._blob_refs
        if self._blob_lock is None:
            self._blob_lock = anyio.Lock()
        if any(d not in held for d in digests):
            async with self._blob_lock:  # two attempts needing one blob put it once
                missing = [d for d in digests if d not in held]

                def put_all() -> None:
                    import numpy as np

                    for digest in missing:
                        view = store.open(digest)
                        # A uint8 array goes into the object store as one buffer, and
                        # comes out on the worker as a read-only view of shared memory.
                        held[digest] = (ray.put(np.frombuffer(view, dtype=np.uint8)), len(view))
                        self._blob_held += len(view)
                        self._blob_puts += 1

                await anyio.to_thread.run_sync(put_all)
        refs = []
        for digest in digests:
            held.move_to_end(digest)
            refs.append(held[digest][0])
        # Over budget: forget the least recently used blobs, never this attempt's.
        while self._blob_held > self._blob_budget and len(held) > len(digests):
            _, (_, size) = held.popitem(last=False)
            self._blob_held -= size
        return refs

    async def _as_task(
        self,
        ray: Any,
        stage: PreparedStage,
        request: dict[str, Any],
        args: tuple[Any, ...],
    ) -> Any:
        ref = self._task_of(ray, stage).remote(*args)
        try:
            body = await _result(ref)
        except BaseException as exc:
            if isinstance(exc, ray.exceptions.RayError):
                raise _crash(ray, stage.label, exc, f"Ray task {ref.task_id().hex()}") from exc
            # Abandoned (timeout, cancel): stop the task where it runs.
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            # Wait (shielded, within the run's grace) until Ray reports the task gone.
            with (
                cleanup_scope(),
                anyio.move_on_after(_CANCEL_WAIT),
                contextlib.suppress(Exception),
            ):
                await _result(ref)
            raise
        assert isinstance(body, bytes | tuple)
        return body

    async def _on_actor(
        self,
        ray: Any,
        stage: PreparedStage,
        request: dict[str, Any],
        args: tuple[Any, ...],
    ) -> Any:
        stage_obj = stage.info.stage
        key = id(stage_obj)
        entry = self._actor_pools.get(key)
        if entry is None or entry[0] is not stage_obj:
            entry = self._actor_pools[key] = (stage_obj, _ActorPool(stage.definition.pool))
        pool = entry[1]
        if pool.factory is None:
            actor_cls = ray.remote(_StageActorImpl).options(
                max_restarts=_ACTOR_RESTARTS, max_task_retries=0, **request
            )
            # The stage object goes by value (not an object-store ref): a restarted actor
            # must not depend on an object that may have gone out of scope.
            pool.factory = lambda: actor_cls.remote(stage_obj)
        actor = await pool.acquire()
        try:
            answer = await _result(actor.attempt.remote(*args))
        except BaseException as exc:
            # Abandoned, or its process died mid-attempt: the next attempt gets a fresh
            # actor (Ray's own restarts cover an actor that dies between attempts).
            pool.discard(ray, actor)
            if isinstance(exc, ray.exceptions.RayError):
                raise _crash(ray, stage.label, exc, "Ray actor") from exc
            raise
        body, made = answer if isinstance(answer, tuple) else (answer, None)
        assert isinstance(body, bytes)
        if body[0] == 1:  # setup() failed: this actor is done
            pool.discard(ray, actor)
        else:
            pool.release(actor)
        return (body[1:], made) if made else body[1:]


def _store_made(store: BlobStore, made: dict[str, bytes]) -> None:
    """Write the blobs a worker made into the run's store, each checked against its digest."""
    for digest, data in made.items():
        check_digest(digest, data, store="a Ray worker's reply")
        store.put(digest, [data], len(data))


def _crash(ray: Any, label: str, exc: BaseException, worker: str) -> Exception:
    """Turn a Ray system error into WorkerCrashed (a user error into ExecutorError)."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        return ExecutorError(
            f"stage {label!r}: the Ray task failed outside the stage: {exc}", stage=label
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return WorkerCrashed(label, worker=worker, cause=f"{type(exc).__name__}: {first}")
