"""The executor port: where one stage attempt runs (``StageDef.isolation``).

The run supervisor never knows *how* a stage body runs. For every attempt it hands the
stage actor a :class:`~crucible_actors.abc.RunStage` (the Context snapshot
as bytes, the attempt's generation, index and number); the actor looks up the
:class:`Executor` registered under the stage's ``isolation`` name and awaits
:meth:`Executor.run`, which answers ``AttemptDone`` (the new Context as bytes) or
``AttemptFailed``. The executors themselves live outside ``_core``, in
:mod:`crucible_actors.executors` (``inline``, ``thread``, ``process``); ``_core`` only
defines the port and a registry, and the runtime receives the executors it uses when it
is opened (:func:`~crucible_actors.open_runtime` ``executors=``), falling back to the
process-wide :data:`default_executors` that :mod:`crucible_actors.executors` fills in
on import (importing :mod:`crucible_actors` imports it). So ``_core`` imports no
executor, and a new one (a warm process pool, ``isolation="ray"``) is added by
registering it, without touching the supervisor.

The contract every executor keeps is documented where plug-in authors read it, in
:mod:`crucible_actors.abc`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from ._errors import InvalidExperiment
from ._ir import is_isolation_name, stage_ref

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from . import _messages as msg
    from ._context import Context
    from ._handle import RunHandle
    from ._ir import Experiment, StageDef
    from ._registry import Registry
    from ._stage import StageInfo

__all__ = [
    "AttemptIO",
    "Executor",
    "ExecutorRegistry",
    "ExecutorSettings",
    "PreparedStage",
    "UnknownIsolation",
    "default_executors",
]


class PreparedStage:
    """A stage resolved for its attempts: what an executor runs.

    Attributes:
        index: The stage's position in the pipeline.
        label: The stage's label (``StageDef.label``).
        definition: The stage's :class:`~crucible_actors.StageDef` (``isolation``,
            ``timeout``, raw ``options``...).
        info: The resolved stage object (``info.stage``) and whether its ``run`` is async.
        options: The options converted for the stage (its ``Options`` Struct, or the
            mapping), as an in-process ``run(ctx, options)`` receives them.
        executor: The executor the attempts run on.
    """

    __slots__ = ("_ref", "definition", "executor", "index", "info", "label", "options")

    def __init__(
        self,
        index: int,
        label: str,
        definition: StageDef,
        info: StageInfo,
        options: Any,
        executor: Executor,
    ) -> None:
        self.index = index
        self.label = label
        self.definition = definition
        self.info = info
        self.options = options
        self.executor = executor
        self._ref: str | None = None

    @property
    def ref(self) -> str:
        """The stage's ``"module:attr"`` reference, for re-importing it in another process.

        Raises:
            ValueError: the stage is not importable by reference (a lambda, a local).
        """
        if self._ref is None:
            self._ref = stage_ref(self.info.stage)
        return self._ref


class AttemptIO(Protocol):
    """The run's side of an attempt, given to :meth:`Executor.run` (the stage actor)."""

    @property
    def handle(self) -> RunHandle:
        """The handle of the run the attempt belongs to."""
        ...

    def begin(self, stage: PreparedStage, command: msg.RunStage) -> Context:
        """Decode ``command.context`` into the attempt's Context (telemetry, trace start).

        Raises:
            Exception: the snapshot does not decode (answer it with :meth:`failed`).
        """
        ...

    def done(self, stage: PreparedStage, command: msg.RunStage, result: Context) -> msg.AttemptDone:
        """Return the reply for a successful attempt whose stage returned ``result``.

        Raises:
            Exception: ``result`` cannot be encoded (answer it with :meth:`failed`).
        """
        ...

    def failed(self, command: msg.RunStage, error: Exception) -> msg.AttemptFailed:
        """Return the reply for an attempt that raised ``error``."""
        ...

    async def finish(
        self, stage: PreparedStage, command: msg.RunStage, result: Context
    ) -> msg.AttemptDone:
        """:meth:`done`, encoding in a worker thread unless that is cheap for the loop.

        What an executor on the runtime's loop calls, so a large new value is not
        pickled, hashed and written on the loop.

        Raises:
            Exception: ``result`` cannot be encoded (answer it with :meth:`failed`).
        """
        ...


@runtime_checkable
class Executor(Protocol):
    """Runs stage attempts somewhere: in the run's task, a thread, a process, a cluster.

    See the module docstring for the full contract (what comes in, what must come out,
    how an attempt is abandoned, concurrency and lifecycle).
    """

    async def run(
        self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
    ) -> msg.AttemptDone | msg.AttemptFailed:
        """Run the attempt ``command`` of ``stage``; return its reply, never its error.

        The usual shape::

            try:
                ctx = io.begin(stage, command)
                result = ...  # run stage.info.stage on ctx with stage.options, somewhere
                return await io.finish(stage, command, result)  # io.done off the loop
            except Exception as exc:
                return io.failed(command, exc)
        """
        ...


class ExecutorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`~crucible_actors.open_runtime` tells per-runtime executors.

    Attributes:
        process_workers: Size of the warm process pool (None: the CPU count).
        ray_address: The Ray cluster to connect to (None: ``RAY_ADDRESS``, then
            ``address`` in the ``[ray]`` table of the project configuration, then a local
            Ray started on first use).
    """

    process_workers: int | None = None
    ray_address: str | None = None


class UnknownIsolation(InvalidExperiment):
    """A stage asks for an isolation no executor is registered under.

    Raised when a run is submitted, before any stage runs, not when an experiment is
    loaded: which executors exist is the runtime's (:func:`crucible_actors.executors.register`,
    ``open_runtime(executors=...)``), so a file may name one registered later. An
    :class:`~crucible_actors.errors.InvalidExperiment`, so the CLI and the service report
    it as bad input; ``stage``, ``isolation`` and ``registered`` (the names there are)
    say what was asked and what exists.
    """

    def __init__(self, stage: str, isolation: str, *, registered: Iterable[str] = ()) -> None:
        self.stage = stage
        self.isolation = isolation
        self.registered = sorted(registered)
        known = ", ".join(self.registered) or "none"
        super().__init__(
            f"stage {stage!r} asks for isolation {isolation!r}, but no executor is "
            f"registered under that name (registered: {known}); register one with "
            "crucible_actors.executors.register() or pass open_runtime(executors=...)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt with ``registered`` (keyword-only), so the message survives pickling.
        rebuild = functools.partial(type(self), registered=self.registered)
        return (rebuild, (self.stage, self.isolation))


class ExecutorRegistry(dict[str, "Executor"]):
    """Executors keyed by isolation name (``"inline"``, ``"thread"``, ``"process"``...).

    A dict (the run supervisor looks an executor up once per stage), filled through
    :meth:`register`, which checks what it is given.
    """

    __slots__ = ()

    def __init__(self, executors: Mapping[str, Executor] | None = None) -> None:
        super().__init__()
        for name, executor in (executors or {}).items():
            self.register(name, executor)

    def register(self, name: str, executor: Executor, *, replace: bool = False) -> None:
        """Register ``executor`` for ``StageDef(isolation=name)``.

        Raises:
            TypeError: ``executor`` has no async ``run(stage, command, io)``.
            ValueError: ``name`` is not a name a StageDef can give (a letter or ``_``,
                then letters, digits, ``_``, ``.`` or ``-``), or it is taken and
                ``replace`` is False.
        """
        if not is_isolation_name(name):
            raise ValueError(
                f"an executor's name must be a letter or '_', then letters, digits, '_', "
                f"'.' or '-' (what StageDef(isolation=...) accepts), got {name!r}"
            )
        if not isinstance(executor, Executor):
            raise TypeError(
                f"executor for {name!r} must have an async run(stage, command, io) method; "
                f"got {type(executor).__name__}"
            )
        if name in self and not replace:
            raise ValueError(
                f"an executor is already registered for isolation {name!r}; "
                "pass replace=True to replace it"
            )
        self[name] = executor

    def merged(self, overrides: Mapping[str, Executor] | None) -> ExecutorRegistry:
        """Return a copy of this registry with ``overrides`` registered over it."""
        merged = ExecutorRegistry(self)
        for name, executor in (overrides or {}).items():
            merged.register(name, executor, replace=True)
        return merged

    def for_runtime(
        self, settings: ExecutorSettings, *, skip: Iterable[str] = ()
    ) -> tuple[ExecutorRegistry, list[Any]]:
        """Return a copy with every template replaced by its runtime's executor.

        A template is an executor with ``for_runtime(settings)``; names in ``skip`` (about
        to be overridden) are left alone. The second item lists the executors made for
        this runtime (the runtime enters and exits them).
        """
        bound = ExecutorRegistry(self)
        made: list[Any] = []
        skipped = set(skip)
        for name, executor in self.items():
            factory = None if name in skipped else getattr(executor, "for_runtime", None)
            if factory is not None:
                own = factory(settings)
                bound.register(name, own, replace=True)
                made.append(own)
        return bound, made

    def check(self, experiment: Experiment, registry: Registry) -> None:
        """Check every enabled stage of ``experiment`` against its executor.

        Raises:
            UnknownIsolation: a stage names an isolation nothing is registered under.
            Exception: what an executor's ``check(stage_def, registry)`` raises.
        """
        for stage_def in experiment.pipeline:
            if stage_def.enabled:
                executor = self.lookup(stage_def.isolation, stage_def.label)
                check = getattr(executor, "check", None)
                if check is not None:
                    check(stage_def, registry)

    def lookup(self, name: str, label: str) -> Executor:
        """Return the executor for ``isolation=name`` of stage ``label``.

        Raises:
            UnknownIsolation: nothing is registered under ``name``.
        """
        executor = self.get(name)
        if executor is None:
            raise UnknownIsolation(label, name, registered=self)
        return executor


#: The process-wide executors a runtime falls back to; :mod:`crucible_actors.executors`
#: registers ``inline``, ``thread`` and ``process`` here when it is imported.
default_executors = ExecutorRegistry()
