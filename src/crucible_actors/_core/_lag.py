"""The event-loop lag monitor: notices code that blocks the loop, and names the stage.

Every run shares one event loop, so a stage that does not await (a CPU loop or a
blocking call inside ``async def run``, on the default ``isolation="inline"``) stops
every other run for as long as it runs: their timeouts, heartbeats and HTTP answers all
wait (one stage blocking for 5 s turns the other runs' 1 s timeouts into 10 s). The
runtime cannot interrupt such a stage; it can say so
(``docs/design/0005-lag-monitor.md``).

:class:`LagMonitor` is one cheap task per runtime: it sleeps ``interval`` seconds and
measures how late it wakes. When late by ``threshold`` or more it logs one warning, and
names the stage when it knows which: the run supervisor reports an inline attempt that
lasted ``threshold`` or more (:func:`note_long_attempt`, one comparison per attempt on
the hot path), and an attempt that finished after the monitor should have woken ran
while the loop was blocked, so it is the one that blocked it. The supervisor also keeps
the inline attempts executing right now (:func:`inline_started` /
:func:`inline_ended`, one dict write each): when no attempt finished during the block,
the ones still executing on this loop when the lag is seen are named instead (a stage
that blocked, then awaited, is among them; with several, the warning lists them all).

Time is the loop's clock (``anyio.current_time()``), so tests drive it with trio's
``MockClock``: a stage that calls ``clock.jump(5)`` without awaiting blocks the loop for
five virtual seconds. Decisions are pure (:func:`describe_lag`).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import anyio
import anyio.lowlevel

__all__ = [
    "LAG_THRESHOLD",
    "InlineAttempt",
    "LagMonitor",
    "LongAttempt",
    "describe_lag",
    "inline_ended",
    "inline_started",
    "note_long_attempt",
]

log = logging.getLogger("crucible_actors")

#: Seconds late (and seconds an inline attempt lasts) that count as a blocked loop.
LAG_THRESHOLD = 1.0


class LongAttempt(NamedTuple):
    """An inline attempt that lasted :data:`LAG_THRESHOLD` or more, on the loop ``token``."""

    stage: str
    run_id: str
    started: float
    finished: float
    token: object


#: The latest long inline attempt of any loop (see :func:`note_long_attempt`).
_latest: LongAttempt | None = None


class InlineAttempt(NamedTuple):
    """An inline attempt executing now: stage ``stage`` of run ``run_id`` on loop ``token``."""

    stage: str
    run_id: str
    started: float
    token: object


#: The inline attempts executing now, by their run supervisor (one attempt at a time
#: per run).
_executing: dict[object, InlineAttempt] = {}


def inline_started(owner: object, stage: str, run_id: str, started: float) -> None:
    """Record that ``owner`` (a run supervisor) began an inline attempt of ``stage``."""
    _executing[owner] = InlineAttempt(stage, run_id, started, anyio.lowlevel.current_token())


def inline_ended(owner: object) -> None:
    """Record that ``owner``'s inline attempt ended (however it ended)."""
    _executing.pop(owner, None)


def note_long_attempt(stage: str, run_id: str, started: float, finished: float) -> None:
    """Record that an inline attempt of ``stage`` ran from ``started`` to ``finished``.

    Called by the run supervisor only for attempts of :data:`LAG_THRESHOLD` or more.
    """
    global _latest
    _latest = LongAttempt(stage, run_id, started, finished, anyio.lowlevel.current_token())


def describe_lag(
    expected: float,
    woke: float,
    attempt: LongAttempt | None,
    executing: list[InlineAttempt] | tuple[InlineAttempt, ...] = (),
) -> str:
    """Return the warning for a monitor due at ``expected`` that woke at ``woke``.

    ``attempt`` (the latest long inline attempt on this loop) is named as the cause when
    it finished after ``expected``: it was running while the monitor waited for the loop.
    Otherwise the inline attempts ``executing`` on this loop that began before ``woke``
    are named: one of them held the loop (the only one, when there is one).
    """
    late = woke - expected
    head = f"the event loop was blocked for {late:.1f} s"
    fix = "give it isolation='thread' or 'process', or make it await"
    if attempt is not None and attempt.finished > expected:
        return (
            f"{head} by stage {attempt.stage!r} of run {attempt.run_id}, which ran "
            f"{attempt.finished - attempt.started:.1f} s inline without awaiting; every other "
            f"run waited ({fix})"
        )
    during = sorted((a for a in executing if a.started < woke), key=lambda a: a.started)
    if len(during) == 1:
        (one,) = during
        return (
            f"{head} by stage {one.stage!r} of run {one.run_id}, executing inline for "
            f"{woke - one.started:.1f} s so far without awaiting in time; every other run "
            f"waited ({fix})"
        )
    if during:
        shown = ", ".join(f"{a.stage!r} of run {a.run_id}" for a in during[:5])
        more = f" and {len(during) - 5} more" if len(during) > 5 else ""
        return (
            f"{head} by one of the stages executing inline: {shown}{more}; every other run "
            f"waited ({fix})"
        )
    return (
        f"{head}: code that does not await held it (no inline stage was executing: "
        "look for blocking calls in the host application or in a callback)"
    )


class LagMonitor:
    """Sleep ``interval`` seconds at a time; warn when a wake-up is ``threshold`` late.

    ``lags`` counts the warnings, ``worst`` is the largest lag seen (seconds).
    """

    def __init__(self, *, interval: float = 0.5, threshold: float = LAG_THRESHOLD) -> None:
        self.interval = interval
        self.threshold = threshold
        self.lags = 0
        self.worst = 0.0
        self._scope: anyio.CancelScope | None = None
        self._stopped = False

    async def run(self) -> None:
        """Watch the loop until :meth:`stop` is called (or the task is cancelled)."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._stopped:
                scope.cancel()
            token = anyio.lowlevel.current_token()
            while True:
                expected = anyio.current_time() + self.interval
                await anyio.sleep(self.interval)
                woke = anyio.current_time()
                late = woke - expected
                if late < self.threshold:
                    continue
                self.lags += 1
                self.worst = max(self.worst, late)
                attempt = _latest if _latest is not None and _latest.token == token else None
                executing = [a for a in _executing.values() if a.token == token]
                log.warning("%s", describe_lag(expected, woke, attempt, executing))

    def stop(self) -> None:
        """Stop watching (the task then returns)."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()
