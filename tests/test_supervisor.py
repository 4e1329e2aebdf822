"""Tests for Supervisor: restart types, strategies, intensity, shutdown and dynamic children.

Every test runs on asyncio and trio. Children and the test body order themselves with
events; tests about elapsed time live in ``TestVirtualTime``, on trio's MockClock, and
their asyncio counterparts use events in place of time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio
import pytest
from trio.testing import MockClock

from crucible_actors._core._errors import RestartIntensityExceeded
from crucible_actors.supervisor import (
    BRUTAL_KILL,
    ChildSpec,
    ChildState,
    RestartType,
    Strategy,
    Supervisor,
)

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

LONG = 3600.0
"""A restart window or shutdown grace that no test reaches in real time."""

RUNNING = ChildState.RUNNING
TERMINATED = ChildState.TERMINATED


class Boom(Exception):
    """The failure the test children raise."""


class Fatal(BaseException):
    """An error that is not an ``Exception``, like ``KeyboardInterrupt``."""


class Worker:
    """A child that logs its life and ends when the test tells it to."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.starts = 0
        self.ready = 0
        self._ready_changed = anyio.Event()
        self._exit = anyio.Event()
        self._crash = False

    def spec(self, **options: Any) -> ChildSpec:
        return ChildSpec(self.name, self, **options)

    async def __call__(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self.starts += 1
        self.log.append(f"start {self.name}")
        self._exit = anyio.Event()
        self._crash = False
        task_status.started()
        self.ready += 1
        self._ready_changed.set()
        self._ready_changed = anyio.Event()
        try:
            await self._exit.wait()
        except anyio.get_cancelled_exc_class():
            self.log.append(f"stop {self.name}")
            raise
        if self._crash:
            self.log.append(f"crash {self.name}")
            raise Boom(self.name)
        self.log.append(f"return {self.name}")

    def crash(self) -> None:
        """Make the current attempt raise ``Boom``."""
        self._crash = True
        self._exit.set()

    def finish(self) -> None:
        """Make the current attempt return normally."""
        self._exit.set()

    async def wait_ready(self, count: int) -> None:
        """Wait until the child has called ``task_status.started()`` ``count`` times."""
        while self.ready < count:
            await self._ready_changed.wait()


def workers(names: str, log: list[str]) -> list[Worker]:
    return [Worker(name, log) for name in names]


ChildFn = Callable[..., Awaitable[None]]


# -- restart types --------------------------------------------------------------------


@pytest.mark.parametrize("crash", [False, True], ids=["after-return", "after-crash"])
async def test_permanent_child_is_restarted_after_any_exit(crash: bool) -> None:
    log: list[str] = []
    (w,) = workers("w", log)
    async with Supervisor([w.spec(restart="permanent")], max_seconds=LONG) as sup:
        if crash:
            w.crash()
        else:
            w.finish()
        await w.wait_ready(2)
        assert sup.which_children() == [("w", RUNNING)]
    assert w.starts == 2


async def test_transient_child_is_restarted_after_crash() -> None:
    log: list[str] = []
    (w,) = workers("w", log)
    async with Supervisor([w.spec(restart="transient")], max_seconds=LONG) as sup:
        w.crash()
        await w.wait_ready(2)
        assert sup.which_children() == [("w", RUNNING)]
    assert log == ["start w", "crash w", "start w", "stop w"]


async def test_transient_child_is_not_restarted_after_clean_exit() -> None:
    log: list[str] = []
    (w,) = workers("w", log)
    async with Supervisor([w.spec(restart="transient")], max_seconds=LONG) as sup:
        w.finish()
        await sup.wait()
        assert sup.which_children() == [("w", TERMINATED)]
    assert w.starts == 1
    assert sup.statistics().restarts.total_restarts == 0


@pytest.mark.parametrize("crash", [False, True], ids=["after-return", "after-crash"])
async def test_temporary_child_is_never_restarted_and_is_dropped(crash: bool) -> None:
    log: list[str] = []
    (w,) = workers("w", log)
    async with Supervisor([w.spec(restart="temporary")], max_seconds=LONG) as sup:
        if crash:
            w.crash()
        else:
            w.finish()
        await sup.wait()
        assert sup.which_children() == []
    assert w.starts == 1
    assert sup.statistics().restarts.total_restarts == 0


async def test_child_returning_without_started_counts_as_a_clean_exit() -> None:
    async def quick(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        pass

    async with Supervisor([ChildSpec("quick", quick, restart="transient")]) as sup:
        await sup.wait()
        assert sup.which_children() == [("quick", TERMINATED)]


# -- strategies -----------------------------------------------------------------------


async def test_one_for_one_restarts_only_the_failed_child() -> None:
    log: list[str] = []
    a, b, c = workers("abc", log)
    children = [a.spec(), b.spec(), c.spec()]
    async with Supervisor(children, strategy="one_for_one", max_seconds=LONG):
        b.crash()
        await b.wait_ready(2)
        assert (a.starts, b.starts, c.starts) == (1, 2, 1)
    assert log[3:5] == ["crash b", "start b"]


async def test_one_for_all_stops_the_others_in_reverse_then_restarts_all_in_order() -> None:
    log: list[str] = []
    a, b, c = workers("abc", log)
    children = [a.spec(), b.spec(), c.spec()]
    async with Supervisor(children, strategy=Strategy.ONE_FOR_ALL, max_seconds=LONG):
        b.crash()
        await c.wait_ready(2)
        assert (a.starts, b.starts, c.starts) == (2, 2, 2)
    assert log[3:9] == ["crash b", "stop c", "stop a", "start a", "start b", "start c"]


async def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it() -> None:
    log: list[str] = []
    a, b, c = workers("abc", log)
    children = [a.spec(), b.spec(), c.spec()]
    async with Supervisor(children, strategy="rest_for_one", max_seconds=LONG):
        b.crash()
        await c.wait_ready(2)
        assert (a.starts, b.starts, c.starts) == (1, 2, 2)
    assert log[3:7] == ["crash b", "stop c", "start b", "start c"]


async def test_group_restart_drops_temporary_children_and_reruns_ended_transient_ones() -> None:
    log: list[str] = []
    temp, done, w = workers("tdw", log)
    children = [temp.spec(restart="temporary"), done.spec(restart="transient"), w.spec()]
    async with Supervisor(children, strategy="one_for_all", max_seconds=LONG) as sup:
        done.finish()
        await anyio.wait_all_tasks_blocked()
        assert sup.which_children()[1] == ("d", TERMINATED)
        w.crash()
        await w.wait_ready(2)
        assert sup.which_children() == [("d", RUNNING), ("w", RUNNING)]
    assert (temp.starts, done.starts, w.starts) == (1, 2, 2)
    assert "stop t" in log


# -- restart intensity ----------------------------------------------------------------


async def test_exceeding_intensity_stops_children_in_reverse_and_raises_from_wait() -> None:
    log: list[str] = []
    a, b, c = workers("abc", log)
    sup = Supervisor(
        [a.spec(), b.spec(), c.spec()], max_restarts=1, max_seconds=LONG, name="pipeline"
    )

    async def crash_twice() -> None:
        async with sup:
            b.crash()
            await b.wait_ready(2)
            b.crash()
            await sup.wait()

    with pytest.raises(RestartIntensityExceeded) as info:
        await crash_twice()
    assert log[-3:] == ["crash b", "stop c", "stop a"]
    error = info.value
    assert isinstance(error.__cause__, Boom)
    assert error.last_error is error.__cause__
    assert (error.supervisor, error.max_restarts, error.max_seconds) == ("pipeline", 1, LONG)
    assert sup.which_children() == [("a", TERMINATED), ("b", TERMINATED), ("c", TERMINATED)]


async def test_exceeding_intensity_cancels_a_body_not_in_wait_and_raises_from_exit() -> None:
    log: list[str] = []
    (w,) = workers("w", log)

    async def crash_without_waiting() -> None:
        async with Supervisor([w.spec()], max_restarts=0, max_seconds=LONG):
            w.crash()
            await anyio.sleep_forever()

    with pytest.raises(RestartIntensityExceeded):
        await crash_without_waiting()
    assert log == ["start w", "crash w"]


async def test_exit_does_not_raise_again_after_wait_raised() -> None:
    log: list[str] = []
    (w,) = workers("w", log)
    async with Supervisor([w.spec()], max_restarts=0, max_seconds=LONG) as sup:
        w.crash()
        with pytest.raises(RestartIntensityExceeded):
            await sup.wait()
    with pytest.raises(RestartIntensityExceeded):
        await sup.wait()


async def test_restarts_of_different_children_share_one_intensity() -> None:
    log: list[str] = []
    a, b = workers("ab", log)

    async def crash_each_once() -> None:
        async with Supervisor([a.spec(), b.spec()], max_restarts=1, max_seconds=LONG) as sup:
            a.crash()
            await a.wait_ready(2)
            b.crash()
            await sup.wait()

    with pytest.raises(RestartIntensityExceeded):
        await crash_each_once()
    assert (a.starts, b.starts) == (2, 1)


def _fail_restart(attempts: list[int]) -> ChildFn:
    """A child that crashes once started, then fails its next start, then runs."""

    async def child(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 2:
            raise Boom("restart failed")
        task_status.started()
        if len(attempts) == 1:
            raise Boom("crashed")
        await anyio.sleep_forever()

    return child


async def test_failed_restart_counts_as_another_restart() -> None:
    attempts: list[int] = []
    spec = ChildSpec("flaky", _fail_restart(attempts))
    async with Supervisor([spec], max_restarts=2, max_seconds=LONG) as sup:
        while len(attempts) < 3:
            await anyio.wait_all_tasks_blocked()
        assert sup.which_children() == [("flaky", RUNNING)]
        assert sup.statistics().restarts.total_restarts == 2


async def test_failed_restart_can_exceed_intensity() -> None:
    attempts: list[int] = []
    spec = ChildSpec("flaky", _fail_restart(attempts))
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor([spec], max_restarts=1, max_seconds=LONG) as sup:
            await sup.wait()
    assert str(info.value.last_error) == "restart failed"
    assert attempts == [1, 2]


# -- shutdown -------------------------------------------------------------------------


def _logging_child(name: str, log: list[str], cleanup: ChildFn | None = None) -> ChildFn:
    """A child that runs until cancelled, then logs and runs ``cleanup`` shielded."""

    async def child(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            log.append(f"stop {name}")
            if cleanup is not None:
                with anyio.CancelScope(shield=True):
                    await cleanup()
                log.append(f"cleaned {name}")

    return child


async def test_leaving_stops_children_in_reverse_start_order() -> None:
    log: list[str] = []
    names = "abcd"
    async with Supervisor([ChildSpec(n, _logging_child(n, log)) for n in names]) as sup:
        assert sup.which_children() == [(n, RUNNING) for n in names]
    assert log == ["stop d", "stop c", "stop b", "stop a"]
    assert sup.which_children() == [(n, TERMINATED) for n in names]


async def test_stopping_waits_for_a_cleanup_within_its_grace() -> None:
    log: list[str] = []
    release = anyio.Event()

    async def cleanup() -> None:
        await release.wait()

    async def release_when_cleaning() -> None:
        while "stop slow" not in log:
            await anyio.wait_all_tasks_blocked()
        log.append("release")
        release.set()

    children = [
        ChildSpec("a", _logging_child("a", log)),
        ChildSpec("slow", _logging_child("slow", log, cleanup), shutdown=LONG),
    ]
    async with anyio.create_task_group() as tg, Supervisor(children):
        tg.start_soon(release_when_cleaning)
    assert log == ["stop slow", "release", "cleaned slow", "stop a"]


@pytest.mark.parametrize("shutdown", [0, BRUTAL_KILL], ids=["zero-grace", "brutal-kill"])
async def test_stopping_moves_on_without_waiting_past_the_grace(
    shutdown: float | Literal["brutal_kill"],
) -> None:
    log: list[str] = []
    release = anyio.Event()

    async def cleanup() -> None:
        await release.wait()

    async def a(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            log.append("stop a")
            release.set()  # only reached if the supervisor did not wait for "slow"

    children = [
        ChildSpec("a", a),
        ChildSpec("slow", _logging_child("slow", log, cleanup), shutdown=shutdown),
    ]
    async with Supervisor(children):
        pass
    # The abandoned cleanup still ran to its end: the task group joins it.
    assert log.index("stop a") < log.index("cleaned slow")


async def test_failed_start_on_enter_stops_started_children_and_raises() -> None:
    log: list[str] = []

    async def broken(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        raise Boom("cannot start")

    children = [
        ChildSpec("a", _logging_child("a", log)),
        ChildSpec("broken", broken),
        ChildSpec("c", _logging_child("c", log)),
    ]
    sup = Supervisor(children)
    with pytest.raises(Boom, match="cannot start"):
        async with sup:
            pytest.fail("the body must not run")
    assert log == ["stop a"]
    assert sup.which_children() == [("a", TERMINATED), ("broken", TERMINATED)]


# -- cancellation and fatal errors ----------------------------------------------------


async def test_cancelling_the_enclosing_scope_stops_children_in_reverse_without_restarts() -> None:
    log: list[str] = []
    a, b, c = workers("abc", log)
    with anyio.CancelScope() as outer:
        async with Supervisor([a.spec(), b.spec(), c.spec()], max_restarts=0) as sup:
            outer.cancel()
            await anyio.sleep_forever()
    assert outer.cancelled_caught
    assert log[3:] == ["stop c", "stop b", "stop a"]
    assert sup.statistics().restarts.total_restarts == 0


async def test_cancellation_while_entering_stops_started_children() -> None:
    log: list[str] = []
    outer = anyio.CancelScope()

    async def never_ready(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        outer.cancel()
        await anyio.sleep_forever()

    sup = Supervisor([ChildSpec("a", _logging_child("a", log)), ChildSpec("b", never_ready)])
    with outer:
        async with sup:
            pytest.fail("the body must not run")
    assert outer.cancelled_caught
    assert log == ["stop a"]
    assert sup.statistics().restarts.total_restarts == 0
    assert sup.which_children() == [("a", TERMINATED), ("b", TERMINATED)]


async def test_error_that_is_not_an_exception_propagates_and_stops_siblings() -> None:
    log: list[str] = []
    a, c = workers("ac", log)

    async def fatal(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await anyio.lowlevel.checkpoint()
        raise Fatal

    sup = Supervisor([a.spec(), ChildSpec("fatal", fatal), c.spec()], max_seconds=LONG)
    with pytest.RaisesGroup(Fatal):
        async with sup:
            await sup.wait()
    assert log[2:] == ["stop c", "stop a"]
    assert sup.statistics().restarts.total_restarts == 0


# On asyncio a task raising KeyboardInterrupt escapes the event loop itself (and pytest's
# run with it), so the real KeyboardInterrupt is tested on trio; Fatal covers asyncio.
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_keyboard_interrupt_from_a_child_is_not_swallowed() -> None:
    log: list[str] = []
    (a,) = workers("a", log)

    async def interrupted(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await anyio.lowlevel.checkpoint()
        raise KeyboardInterrupt

    sup = Supervisor([a.spec(), ChildSpec("ki", interrupted)], max_seconds=LONG)
    with pytest.RaisesGroup(KeyboardInterrupt):
        async with sup:
            await sup.wait()
    assert log == ["start a", "stop a"]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_keyboard_interrupt_while_starting_propagates_from_enter() -> None:
    log: list[str] = []

    async def interrupted(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        raise KeyboardInterrupt

    children = [ChildSpec("a", _logging_child("a", log)), ChildSpec("ki", interrupted)]
    with pytest.raises(KeyboardInterrupt):
        async with Supervisor(children):
            pytest.fail("the body must not run")
    assert log == ["stop a"]


# -- dynamic children -----------------------------------------------------------------


async def test_start_child_adds_a_ready_child_last_and_returns_its_start_value() -> None:
    log: list[str] = []
    (a,) = workers("a", log)

    async def dynamic(*, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started("hello")
        await anyio.sleep_forever()

    async with Supervisor([a.spec()]) as sup:
        assert await sup.start_child(ChildSpec("d", dynamic)) == "hello"
        assert sup.which_children() == [("a", RUNNING), ("d", RUNNING)]


async def test_dynamic_child_counts_as_started_later_for_rest_for_one() -> None:
    log: list[str] = []
    a, d = workers("ad", log)
    async with Supervisor([a.spec()], strategy="rest_for_one", max_seconds=LONG) as sup:
        await sup.start_child(d.spec())
        a.crash()
        await d.wait_ready(2)
    assert log[2:6] == ["crash a", "stop d", "start a", "start d"]


async def test_start_child_with_the_id_of_a_live_child_is_rejected() -> None:
    log: list[str] = []
    (a,) = workers("a", log)
    async with Supervisor([a.spec()]) as sup:
        with pytest.raises(ValueError, match="already has a child 'a'"):
            await sup.start_child(ChildSpec("a", _logging_child("a2", log)))
    assert a.starts == 1


async def test_failed_start_child_raises_and_leaves_no_child() -> None:
    async def broken(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        raise Boom("cannot start")

    async with Supervisor() as sup:
        with pytest.raises(Boom):
            await sup.start_child(ChildSpec("broken", broken))
        assert sup.which_children() == []
        assert sup.statistics().restarts.total_restarts == 0


async def test_start_child_replaces_a_terminated_child_with_the_same_id() -> None:
    log: list[str] = []
    first, second = Worker("w", log), Worker("w", log)
    async with Supervisor([first.spec(restart="transient")]) as sup:
        first.finish()
        await sup.wait()
        await sup.start_child(second.spec())
        assert sup.which_children() == [("w", RUNNING)]
    assert (first.starts, second.starts) == (1, 1)


async def test_terminate_child_stops_it_without_restart_and_forgets_it() -> None:
    log: list[str] = []
    a, b = workers("ab", log)
    async with Supervisor([a.spec(), b.spec(restart="permanent")]) as sup:
        await sup.terminate_child("b")
        assert log[-1] == "stop b"
        assert sup.which_children() == [("a", RUNNING)]
        assert sup.statistics().restarts.total_restarts == 0
        await sup.start_child(Worker("b", log).spec())
        assert sup.which_children() == [("a", RUNNING), ("b", RUNNING)]
    assert b.starts == 1


async def test_terminate_unknown_child_raises_key_error() -> None:
    async with Supervisor() as sup:
        with pytest.raises(KeyError, match="no child 'ghost'"):
            await sup.terminate_child("ghost")


async def test_dynamic_calls_outside_the_context_raise_runtime_error() -> None:
    sup = Supervisor()
    with pytest.raises(RuntimeError, match="not running"):
        await sup.start_child(ChildSpec("a", _logging_child("a", [])))
    with pytest.raises(RuntimeError, match="not running"):
        await sup.wait()


# -- which_children and wait ----------------------------------------------------------


async def test_which_children_reports_starting_while_a_child_gets_ready() -> None:
    seen: list[list[tuple[str, ChildState]]] = []
    sup: Supervisor

    async def b(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        seen.append(sup.which_children())
        task_status.started()
        seen.append(sup.which_children())
        await anyio.sleep_forever()

    sup = Supervisor([ChildSpec("a", _logging_child("a", [])), ChildSpec("b", b)])
    async with sup:
        pass
    assert seen == [
        [("a", RUNNING), ("b", ChildState.STARTING)],
        [("a", RUNNING), ("b", RUNNING)],
    ]


async def test_which_children_reports_restarting_while_a_child_is_started_again() -> None:
    seen: list[list[tuple[str, ChildState]]] = []
    sup: Supervisor

    async def w(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        seen.append(sup.which_children())
        task_status.started()
        if len(seen) == 1:
            raise Boom
        await anyio.sleep_forever()

    sup = Supervisor([ChildSpec("w", w)], max_seconds=LONG)
    async with sup:
        while len(seen) < 2:
            await anyio.wait_all_tasks_blocked()
        assert sup.which_children() == [("w", RUNNING)]
    assert seen == [[("w", ChildState.STARTING)], [("w", ChildState.RESTARTING)]]


async def test_which_children_reports_stopping_during_cleanup_then_terminated() -> None:
    seen: list[list[tuple[str, ChildState]]] = []
    sup: Supervisor

    async def cleanup() -> None:
        seen.append(sup.which_children())

    sup = Supervisor(
        [ChildSpec("a", _logging_child("a", [])), ChildSpec("b", _logging_child("b", [], cleanup))]
    )
    async with sup:
        pass
    assert seen == [[("a", RUNNING), ("b", ChildState.STOPPING)]]
    assert sup.which_children() == [("a", TERMINATED), ("b", TERMINATED)]


async def test_wait_returns_once_every_child_has_ended_for_good() -> None:
    log: list[str] = []
    t, tmp = workers("tm", log)
    sup = Supervisor([t.spec(restart="transient"), tmp.spec(restart="temporary")])
    async with sup, anyio.create_task_group() as tg:
        tg.start_soon(sup.wait)
        t.finish()
        tmp.crash()
    assert sup.which_children() == [("t", TERMINATED)]


async def test_wait_without_children_returns_at_once() -> None:
    with anyio.fail_after(5):  # a regression fails here instead of hanging the suite
        async with Supervisor() as sup:
            await sup.wait()


async def test_statistics_snapshot_names_the_supervisor_and_its_children() -> None:
    log: list[str] = []
    (w,) = workers("w", log)
    async with Supervisor([w.spec()], strategy="one_for_all", name="root") as sup:
        stats = sup.statistics()
    assert (stats.name, stats.strategy, stats.children) == (
        "root",
        "one_for_all",
        (("w", RUNNING),),
    )
    assert stats.restarts.total_restarts == 0


# -- configuration --------------------------------------------------------------------


def test_child_spec_accepts_strings_for_its_options() -> None:
    spec = ChildSpec("w", _logging_child("w", []), restart="temporary", shutdown="brutal_kill")
    assert spec.restart is RestartType.TEMPORARY
    assert spec.shutdown == BRUTAL_KILL
    default = ChildSpec("w", _logging_child("w", []))
    assert (default.restart, default.shutdown) == (RestartType.PERMANENT, 5.0)


@pytest.mark.parametrize(
    "options",
    [{"restart": "sometimes"}, {"shutdown": -1}, {"shutdown": "later"}, {"shutdown": True}],
    ids=["unknown-restart", "negative-grace", "unknown-shutdown", "bool-grace"],
)
def test_child_spec_rejects_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="child 'w'"):
        ChildSpec("w", _logging_child("w", []), **options)


def test_supervisor_rejects_unknown_strategy_and_duplicate_ids() -> None:
    with pytest.raises(ValueError, match="strategy must be one of"):
        Supervisor(strategy="all_for_one")  # type: ignore[arg-type]
    spec = ChildSpec("w", _logging_child("w", []))
    with pytest.raises(ValueError, match="duplicate child id 'w'"):
        Supervisor([spec, spec])


async def test_supervisor_can_be_entered_only_once() -> None:
    sup = Supervisor()
    async with sup:
        pass
    with pytest.raises(RuntimeError, match="only once"):
        async with sup:
            pass


# -- virtual time ---------------------------------------------------------------------


def _timed_child(name: str, log: list[tuple[str, float]], cleanup: float = 0.0) -> ChildFn:
    """A child that runs until cancelled, then spends ``cleanup`` seconds shielded."""

    async def child(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            log.append((f"stop {name}", anyio.current_time()))
            if cleanup:
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(cleanup)
                log.append((f"cleaned {name}", anyio.current_time()))

    return child


class TestVirtualTime:
    """Timing behaviour, checked to the exact virtual second on trio's MockClock."""

    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        return ("trio", {"clock": MockClock(autojump_threshold=0)})

    async def test_failures_spread_beyond_the_window_never_give_up(self) -> None:
        log: list[str] = []
        (w,) = workers("w", log)
        async with Supervisor([w.spec()], max_restarts=1, max_seconds=5) as sup:
            for restarts in range(1, 11):
                await anyio.sleep(5)
                w.crash()
                await w.wait_ready(restarts + 1)
            assert sup.which_children() == [("w", RUNNING)]
        assert anyio.current_time() == 50.0
        assert w.starts == 11

    async def test_second_failure_inside_the_window_gives_up_at_once(self) -> None:
        log: list[str] = []
        (w,) = workers("w", log)

        async def crash_twice() -> None:
            async with Supervisor([w.spec()], max_restarts=1, max_seconds=5) as sup:
                w.crash()
                await w.wait_ready(2)
                await anyio.sleep(4.5)
                w.crash()
                await sup.wait()

        with pytest.raises(RestartIntensityExceeded):
            await crash_twice()
        assert anyio.current_time() == 4.5

    async def test_cleanup_within_its_grace_finishes_before_the_next_child_stops(self) -> None:
        log: list[tuple[str, float]] = []
        children = [
            ChildSpec("a", _timed_child("a", log)),
            ChildSpec("slow", _timed_child("slow", log, cleanup=3), shutdown=5),
        ]
        async with Supervisor(children):
            pass
        assert log == [("stop slow", 0.0), ("cleaned slow", 3.0), ("stop a", 3.0)]
        assert anyio.current_time() == 3.0

    async def test_cleanup_beyond_its_grace_is_abandoned_at_the_grace(self) -> None:
        log: list[tuple[str, float]] = []
        children = [
            ChildSpec("a", _timed_child("a", log)),
            ChildSpec("slow", _timed_child("slow", log, cleanup=10), shutdown=2),
        ]
        async with Supervisor(children):
            pass
        # Stopping moved on at the grace; the task group still joined the shielded cleanup.
        assert log == [("stop slow", 0.0), ("stop a", 2.0), ("cleaned slow", 10.0)]
        assert anyio.current_time() == 10.0

    async def test_brutal_kill_moves_on_without_waiting(self) -> None:
        log: list[tuple[str, float]] = []
        children = [
            ChildSpec("a", _timed_child("a", log, cleanup=1)),
            ChildSpec("slow", _timed_child("slow", log, cleanup=10), shutdown=BRUTAL_KILL),
        ]
        async with Supervisor(children):
            pass
        # Both cancelled at once; which one the scheduler runs first is not ours to say.
        assert sorted(log) == [
            ("cleaned a", 1.0),
            ("cleaned slow", 10.0),
            ("stop a", 0.0),
            ("stop slow", 0.0),
        ]
        assert anyio.current_time() == 10.0

    async def test_giving_up_stops_children_with_their_graces(self) -> None:
        log: list[tuple[str, float]] = []
        attempts: list[int] = []
        children = [
            ChildSpec("a", _timed_child("a", log, cleanup=1)),
            ChildSpec("flaky", _fail_restart(attempts)),
            ChildSpec("c", _timed_child("c", log, cleanup=2)),
        ]
        with pytest.raises(RestartIntensityExceeded):
            async with Supervisor(children, max_restarts=1, max_seconds=5) as sup:
                await sup.wait()
        assert log == [
            ("stop c", 0.0),
            ("cleaned c", 2.0),
            ("stop a", 2.0),
            ("cleaned a", 3.0),
        ]
