"""Supervisor: OTP-style supervision of anyio tasks, a user-level utility.

Why it lives here and not in ``_core``: the runtime has one supervision tree, Runtime
(a dynamic supervisor of temporary run children, ``_core/_runtime.py``) → RunSupervisor
(``rest_for_one`` over the stages of one run, ``_core/_run.py``) → stage actor. Building
that tree on this generic Supervisor would route every run through a manager task and a
child wrapper, which the tuned run hot path (a few microseconds per stage, no task per
untimed stage) cannot afford, and a run is not a set of long-lived children anyway: it
is one threaded sequence of attempts restarted from a Context snapshot. So the core keeps
its own tree, and this module is what it offers *users* for their own long-lived tasks
(pollers, servers, workers beside the runtime), sharing only the restart rules
(``_core/_restart.py``: restart types, strategies, the intensity window) with the run
supervisor. There is one concept of supervision in the core; this is a utility on top.

A :class:`Supervisor` is an async context manager that owns a task group of children, each
described by a :class:`ChildSpec`. It starts them in order, restarts them by their
:class:`RestartType` and its :class:`Strategy`, gives up with
:class:`~crucible_actors.errors.RestartIntensityExceeded` when :class:`RestartIntensity` says
so, and stops them in reverse order with each child's shutdown grace. The restart rules
themselves live in ``_restart.py``; this module only feeds them exits and times.

Structured concurrency would turn one child's exception into the cancellation of every
sibling, so each child runs inside a wrapper that catches ``Exception`` (never
``BaseException``) and reports the exit to a manager task, which applies the strategy.
Cancellation is never caught and never counted as a failure. ``KeyboardInterrupt``,
``SystemExit`` and other non-``Exception`` errors escape the wrapper and end the supervisor
the anyio way: they come out of ``__aexit__`` inside a ``BaseExceptionGroup``.

Once ready, a child is shielded from cancellation coming from outside the supervisor, so
that leaving the context, even because an enclosing scope was cancelled, stops the children
one by one in reverse order. A shielded cleanup that outlasts its grace is abandoned: the
supervisor stops waiting and moves on to the next child, but the task group still joins the
abandoned task before ``__aexit__`` returns, since anyio can neither interrupt a shielded
scope nor leave a task behind.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeVar

import anyio

from .._core import (
    RestartIntensity,
    RestartIntensityExceeded,
    RestartStatistics,
    RestartType,
    Strategy,
    should_restart,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from types import TracebackType

    from anyio.abc import TaskGroup, TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = [
    "BRUTAL_KILL",
    "ChildSpec",
    "ChildState",
    "Supervisor",
    "SupervisorStatistics",
]

BRUTAL_KILL: Final = "brutal_kill"
"""``ChildSpec.shutdown`` value: cancel the child and do not wait for it at all."""

_E = TypeVar("_E", bound=enum.Enum)


def _coerce(enum_type: type[_E], value: object, what: str) -> _E:
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in enum_type)
        raise ValueError(f"{what} must be one of {choices}, got {value!r}") from None


class ChildState(enum.StrEnum):
    """Where a child is in its life, as reported by :meth:`Supervisor.which_children`."""

    STARTING = "starting"
    """Starting for the first time; running, but ``task_status.started()`` not yet called."""
    RUNNING = "running"
    """Started and running."""
    RESTARTING = "restarting"
    """Ended or stopped, and being started again (until it calls ``started()``)."""
    STOPPING = "stopping"
    """Cancelled by its supervisor, within its shutdown grace."""
    TERMINATED = "terminated"
    """Ended for good; no restart is pending."""


@dataclass(frozen=True, slots=True, init=False)
class ChildSpec:
    """Describe one child of a :class:`Supervisor`: how to start it and when to restart it.

    ``start`` is an async callable called as ``start(task_status=...)``; it calls
    ``task_status.started()`` once it is ready (the anyio ``TaskGroup.start`` protocol).
    Bind other arguments with ``functools.partial``. An exception raised before
    ``started()`` is a failed start; a return without ``started()`` counts as a start
    followed at once by a normal exit.

    ``restart`` is a :class:`RestartType` or its string value. ``shutdown`` is the grace,
    in seconds, that stopping the child waits for it after cancelling it (``math.inf``
    waits for as long as it takes), or ``"brutal_kill"`` to cancel it and move on at once.
    OTP's default grace for workers is 5 s.

    Raises:
        ValueError: an unknown ``restart`` or a negative or malformed ``shutdown``.
    """

    id: str
    start: Callable[..., Awaitable[object]]
    restart: RestartType
    shutdown: float | Literal["brutal_kill"]

    def __init__(
        self,
        id: str,
        start: Callable[..., Awaitable[object]],
        *,
        restart: RestartType | Literal["permanent", "transient", "temporary"] = (
            RestartType.PERMANENT
        ),
        shutdown: float | Literal["brutal_kill"] = 5.0,
    ) -> None:
        if shutdown != BRUTAL_KILL and (
            isinstance(shutdown, bool) or not isinstance(shutdown, int | float) or not shutdown >= 0
        ):
            raise ValueError(
                f"child {id!r}: shutdown must be a number of seconds >= 0 or "
                f"'brutal_kill', got {shutdown!r}"
            )
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "restart", _coerce(RestartType, restart, f"child {id!r}: restart"))
        object.__setattr__(self, "shutdown", shutdown)


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """A snapshot of a :class:`Supervisor`, taken by :meth:`Supervisor.statistics`."""

    name: str
    strategy: Strategy
    children: tuple[tuple[str, ChildState], ...]
    restarts: RestartStatistics


class _Child:
    """A supervisor's record of one child; ``scope`` and ``done`` belong to the current attempt."""

    __slots__ = ("done", "generation", "scope", "spec", "state")

    def __init__(self, spec: ChildSpec, state: ChildState) -> None:
        self.spec = spec
        self.state = state
        self.generation = 0
        self.scope: anyio.CancelScope | None = None
        self.done: anyio.Event | None = None


class _ChildStatus:
    """The ``task_status`` a child sees: forwards ``started()`` and tells the supervisor."""

    __slots__ = ("_on_started", "_parent", "called")

    def __init__(self, parent: TaskStatus[Any], on_started: Callable[[], None]) -> None:
        self._parent = parent
        self._on_started = on_started
        self.called = False

    def started(self, value: object = None) -> None:
        if self.called:
            raise RuntimeError("task_status.started() was already called")
        self.called = True
        self._on_started()
        self._parent.started(value)


_Exit = tuple[_Child, int, Exception | None]

_NOT_STARTED: Final = object()


@dataclass(eq=False)
class _Running:
    """What a supervisor holds while entered; everything here is bound to the event loop."""

    task_group: TaskGroup
    lock: anyio.Lock
    exits_send: MemoryObjectSendStream[_Exit]
    exits_receive: MemoryObjectReceiveStream[_Exit]
    changed: anyio.Event = field(default_factory=anyio.Event)
    manager_scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    manager_done: anyio.Event = field(default_factory=anyio.Event)
    body_scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    start_scopes: set[anyio.CancelScope] = field(default_factory=set)


class Supervisor:
    """Run children under OTP supervision rules, inside the caller's event loop.

    Entering starts the children in order, each awaited until it calls
    ``task_status.started()``; if one fails to start, those already started are stopped
    in reverse order and its exception propagates. Leaving stops every child in reverse
    order, each with its shutdown grace, whether the body returned, raised or was
    cancelled.

    A child that ends is restarted by its restart type (``permanent``: always,
    ``transient``: only after an exception, ``temporary``: never) and the ``strategy``
    (``one_for_one``: only it; ``one_for_all``: all children; ``rest_for_one``: it and
    the children started after it), the others being stopped in reverse order first. As
    in OTP, a group restart also starts again non-temporary children that had ended, and
    drops temporary ones. Each restart is counted in one sliding window for the whole
    supervisor; more than ``max_restarts`` within ``max_seconds`` stops all children in
    reverse order and raises :class:`~crucible_actors.errors.RestartIntensityExceeded`
    from :meth:`wait`. If no
    task is in :meth:`wait` at that moment, the body is cancelled instead, and
    ``__aexit__`` raises the error unless :meth:`wait` already did.

    A supervisor can be entered only once.

    Raises:
        ValueError: an unknown ``strategy``, duplicate child ids, or bad intensity limits.
    """

    def __init__(
        self,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy | Literal["one_for_one", "one_for_all", "rest_for_one"] = (
            Strategy.ONE_FOR_ONE
        ),
        max_restarts: int = 1,
        max_seconds: float = 5,
        name: str = "supervisor",
    ) -> None:
        self._specs = list(children)
        seen: set[str] = set()
        for spec in self._specs:
            if spec.id in seen:
                raise ValueError(f"supervisor {name!r}: duplicate child id {spec.id!r}")
            seen.add(spec.id)
        self._name = name
        self._strategy = _coerce(Strategy, strategy, f"supervisor {name!r}: strategy")
        self._intensity = RestartIntensity(max_restarts, max_seconds)
        # Insertion order is start order, which rest_for_one and shutdown rely on.
        self._children: dict[str, _Child] = {}
        self._live = 0
        self._running: _Running | None = None
        self._entered = False
        self._closing = False
        self._error: RestartIntensityExceeded | None = None
        self._error_seen = False
        self._waiters = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    def __repr__(self) -> str:
        return f"<Supervisor {self._name!r} {self._strategy.value} children={len(self._children)}>"

    # -- public API ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError(f"supervisor {self._name!r} can be entered only once")
        self._entered = True
        send, receive = anyio.create_memory_object_stream[_Exit](math.inf)
        running = _Running(anyio.create_task_group(), anyio.Lock(), send, receive)
        self._running = running
        await running.task_group.__aenter__()
        try:
            await running.task_group.start(self._manage, running)
            async with running.lock:
                for spec in self._specs:
                    child = _Child(spec, ChildState.STARTING)
                    self._add(child)
                    await self._start_attempt(running, child)
        except BaseException:
            await self._shutdown(running)
            raise
        running.body_scope.__enter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        running = self._require_running()
        # Swallows only the cancellation we caused when giving up with nobody in wait().
        # (Trio's scopes answer True when there is no exception at all.)
        swallowed = bool(running.body_scope.__exit__(exc_type, exc, tb)) and exc is not None
        await self._shutdown(running)
        error = self._error
        if error is not None and exc is not error and (swallowed or not self._error_seen):
            self._error_seen = True
            raise error
        return swallowed

    async def wait(self) -> None:
        """Wait until every child has ended for good.

        Permanent children never end for good, so with one this waits until the
        supervisor gives up or is left. With no children it returns at once.

        Raises:
            RestartIntensityExceeded: the supervisor gave up (its children are stopped).
            RuntimeError: the supervisor was never entered.
        """
        running = self._require_running()
        self._waiters += 1
        try:
            while True:
                if self._error is not None:
                    self._error_seen = True
                    raise self._error
                if not self._live:
                    return
                await running.changed.wait()
        finally:
            self._waiters -= 1

    async def start_child(self, spec: ChildSpec) -> object:
        """Start a new child after the existing ones and wait until it is ready.

        A terminated child with the same id is replaced. Returns the value the child
        passed to ``task_status.started()``. A failed start leaves no child behind.

        Raises:
            ValueError: a live child already has this id.
            RuntimeError: the supervisor is not running, or stopped before the child was
                ready.
            Exception: whatever the child raised before calling ``started()``.
        """
        running = self._require_running()
        async with running.lock:
            if self._closing:
                raise RuntimeError(f"supervisor {self._name!r} is stopped; cannot start children")
            existing = self._children.get(spec.id)
            if existing is not None:
                if existing.state is not ChildState.TERMINATED:
                    raise ValueError(
                        f"supervisor {self._name!r} already has a child {spec.id!r} "
                        f"({existing.state.value}); terminate it first"
                    )
                self._remove(existing)
            child = _Child(spec, ChildState.STARTING)
            self._add(child)
            try:
                value = await self._start_attempt(running, child)
            except BaseException:
                self._remove(child)
                raise
            if value is _NOT_STARTED:
                self._remove(child)
                raise RuntimeError(
                    f"supervisor {self._name!r} stopped before child {spec.id!r} was ready"
                )
            return value

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child (cancel it, wait up to its grace) and remove it from the supervisor.

        The child is not restarted and no longer listed; its id can be reused by
        :meth:`start_child`.

        Raises:
            KeyError: no child has this id.
            RuntimeError: the supervisor is not running.
        """
        running = self._require_running()
        async with running.lock:
            child = self._children.get(child_id)
            if child is None:
                raise KeyError(f"supervisor {self._name!r} has no child {child_id!r}")
            await self._stop(child)
            self._remove(child)

    def which_children(self) -> list[tuple[str, ChildState]]:
        """List ``(id, state)`` for each child, in start order."""
        return [(child.spec.id, child.state) for child in self._children.values()]

    def statistics(self) -> SupervisorStatistics:
        """Return a frozen snapshot of the children's states and the restart counters."""
        return SupervisorStatistics(
            name=self._name,
            strategy=self._strategy,
            children=tuple(self.which_children()),
            restarts=self._intensity.statistics(),
        )

    # -- children bookkeeping -----------------------------------------------------------

    def _require_running(self) -> _Running:
        if self._running is None:
            raise RuntimeError(f"supervisor {self._name!r} is not running; use 'async with'")
        return self._running

    def _add(self, child: _Child) -> None:
        self._children[child.spec.id] = child
        if child.state is not ChildState.TERMINATED:
            self._live += 1
            self._notify()

    def _remove(self, child: _Child) -> None:
        del self._children[child.spec.id]
        self._set_state(child, ChildState.TERMINATED)

    def _set_state(self, child: _Child, state: ChildState) -> None:
        # Every state but TERMINATED is live, STOPPING included: wait() must not return
        # while a child is still being stopped.
        was_live = child.state is not ChildState.TERMINATED
        child.state = state
        is_live = state is not ChildState.TERMINATED
        if was_live != is_live:
            self._live += 1 if is_live else -1
            self._notify()

    def _notify(self) -> None:
        running = self._running
        if running is not None:
            running.changed.set()
            running.changed = anyio.Event()

    # -- attempts -----------------------------------------------------------------------

    async def _start_attempt(self, running: _Running, child: _Child) -> object:
        """Start a new attempt of ``child`` and return its start value.

        Returns ``_NOT_STARTED`` if shutdown interrupted the start. Exceptions the child
        raises before ``started()`` propagate.
        """
        child.generation += 1
        child.scope = scope = anyio.CancelScope()
        child.done = done = anyio.Event()
        with anyio.CancelScope() as start_scope:
            if self._closing:
                start_scope.cancel()
            running.start_scopes.add(start_scope)
            try:
                return await running.task_group.start(
                    self._run_attempt, running, child, child.generation, scope, done
                )
            finally:
                running.start_scopes.discard(start_scope)
        self._set_state(child, ChildState.TERMINATED)
        return _NOT_STARTED

    def _mark_started(self, child: _Child, generation: int, scope: anyio.CancelScope) -> None:
        # From now on only the supervisor stops this attempt: outside cancellation reaches
        # the body, whose __aexit__ then stops the children in order. Unless the starter
        # is being cancelled: then TaskGroup.start does not hand the task over to the group
        # but waits for it to exit, which a shielded child never would.
        if anyio.current_effective_deadline() != -math.inf:
            scope.shield = True
        if child.generation == generation and child.state in (
            ChildState.STARTING,
            ChildState.RESTARTING,
        ):
            self._set_state(child, ChildState.RUNNING)

    async def _run_attempt(
        self,
        running: _Running,
        child: _Child,
        generation: int,
        scope: anyio.CancelScope,
        done: anyio.Event,
        *,
        task_status: TaskStatus[Any] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        status = _ChildStatus(
            task_status, functools.partial(self._mark_started, child, generation, scope)
        )
        error: Exception | None = None
        try:
            with scope:
                try:
                    await child.spec.start(task_status=status)
                except Exception as exc:
                    if not status.called:
                        raise  # a failed start: TaskGroup.start raises it in the starter
                    error = exc
                if not status.called:
                    status.started()
        finally:
            done.set()
        if scope.cancel_called or self._closing:
            return  # stopped on purpose: not an exit to act on
        running.exits_send.send_nowait((child, generation, error))

    async def _stop(self, child: _Child) -> None:
        """Cancel the child's attempt and wait for it to end, up to its shutdown grace."""
        scope, done = child.scope, child.done
        if scope is None or done is None or done.is_set():
            return
        self._set_state(child, ChildState.STOPPING)
        scope.cancel()
        shutdown = child.spec.shutdown
        if shutdown == BRUTAL_KILL:
            return
        # Shielded: stopping must complete even when the caller is being cancelled.
        with anyio.move_on_after(shutdown, shield=True):
            await done.wait()

    async def _stop_all(self) -> None:
        for child in reversed(list(self._children.values())):
            await self._stop(child)
            self._set_state(child, ChildState.TERMINATED)

    # -- the manager --------------------------------------------------------------------

    async def _manage(
        self, running: _Running, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Apply the restart rules to exits, one at a time, until shutdown."""
        try:
            with running.manager_scope:
                running.manager_scope.shield = True  # only _shutdown() stops the manager
                task_status.started()
                async for child, generation, error in running.exits_receive:
                    async with running.lock:
                        if self._closing:
                            return
                        await self._handle_exit(running, child, generation, error)
        finally:
            running.manager_done.set()

    async def _handle_exit(
        self, running: _Running, child: _Child, generation: int, error: Exception | None
    ) -> None:
        if self._children.get(child.spec.id) is not child or child.generation != generation:
            return  # a stale report from an attempt that was already replaced
        if not should_restart(child.spec.restart, error):
            if child.spec.restart is RestartType.TEMPORARY:
                self._remove(child)
            else:
                self._set_state(child, ChildState.TERMINATED)
            return
        failed: _Child = child
        while True:
            if not self._intensity.record(anyio.current_time()):
                await self._give_up(running, error)
                return
            affected = self._affected(failed)
            for other in reversed(affected):
                if other is not failed:
                    await self._stop(other)
            restarting: list[_Child] = []
            for other in affected:
                if other.spec.restart is RestartType.TEMPORARY and other is not failed:
                    self._remove(other)
                else:
                    self._set_state(other, ChildState.RESTARTING)
                    restarting.append(other)
            for other in restarting:
                try:
                    if await self._start_attempt(running, other) is _NOT_STARTED:
                        return
                except Exception as exc:
                    # OTP: a failed restart counts as another restart of that child.
                    failed, error = other, exc
                    break
            else:
                return

    def _affected(self, failed: _Child) -> list[_Child]:
        if self._strategy is Strategy.ONE_FOR_ONE:
            return [failed]
        children = list(self._children.values())
        if self._strategy is Strategy.ONE_FOR_ALL:
            return children
        return children[children.index(failed) :]

    async def _give_up(self, running: _Running, last_error: Exception | None) -> None:
        self._closing = True
        await self._stop_all()
        error = RestartIntensityExceeded(
            self._intensity.max_restarts,
            self._intensity.max_seconds,
            supervisor=self._name,
            last_error=last_error,
        )
        error.__cause__ = last_error
        self._error = error
        self._notify()
        if not self._waiters:
            running.body_scope.cancel()

    # -- shutdown -----------------------------------------------------------------------

    async def _shutdown(self, running: _Running) -> None:
        """Stop the manager and every child (reverse order), then join the task group."""
        self._closing = True
        running.manager_scope.cancel()
        for scope in running.start_scopes:
            scope.cancel()
        try:
            with anyio.CancelScope(shield=True):
                await running.manager_done.wait()
                async with running.lock:
                    await self._stop_all()
        finally:
            running.exits_send.close()
            running.exits_receive.close()
            # Joining must not be interrupted by an outer cancellation (the children are
            # stopped already, only abandoned cleanups remain), so that the body's own
            # exception is what propagates.
            running.task_group.cancel_scope.shield = True
            await running.task_group.__aexit__(None, None, None)
