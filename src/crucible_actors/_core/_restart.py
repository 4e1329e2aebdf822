"""Restart decisions: restart types, strategies and the restart-intensity window.

Everything here is pure: no event loop, no clock of its own. The user-level
:class:`~crucible_actors.supervisor.Supervisor` and the run supervisor (``_run.py``,
``_retry.py``) feed :class:`RestartIntensity` the times they read from the loop's clock,
so under trio's ``MockClock`` the window follows virtual time exactly.

The rules are OTP's:

- a ``permanent`` child is always restarted, even after a normal return;
- a ``transient`` child is restarted only after an abnormal exit (an exception);
- a ``temporary`` child is never restarted;
- restart intensity is counted per supervisor, across all of its children, in a sliding
  window: more than ``max_restarts`` restarts within ``max_seconds`` means give up.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

__all__ = [
    "RestartIntensity",
    "RestartStatistics",
    "RestartType",
    "Strategy",
    "should_restart",
]


class RestartType(enum.StrEnum):
    """When a supervisor restarts a child that has ended (OTP's ``restart`` flag)."""

    PERMANENT = "permanent"
    """Always restart, whether the child returned or raised."""
    TRANSIENT = "transient"
    """Restart only after an abnormal exit (an exception); a normal return is final."""
    TEMPORARY = "temporary"
    """Never restart."""


class Strategy(enum.StrEnum):
    """Which children a supervisor restarts when one of them must be restarted."""

    ONE_FOR_ONE = "one_for_one"
    """Restart only the child that ended; its siblings are left alone."""
    ONE_FOR_ALL = "one_for_all"
    """Stop every other child (in reverse start order), then restart them all in order."""
    REST_FOR_ONE = "rest_for_one"
    """Stop the children started after the one that ended, then restart it and them."""


def should_restart(restart: RestartType, error: BaseException | None) -> bool:
    """Decide whether a child that ended should be restarted.

    ``error`` is the exception the child raised, or ``None`` after a normal return.
    Cancellation is not an exit in this sense: a cancelled child was stopped by its
    supervisor or by an enclosing scope, and callers must not ask.
    """
    if restart is RestartType.PERMANENT:
        return True
    if restart is RestartType.TRANSIENT:
        return error is not None
    return False


@dataclass(frozen=True, slots=True)
class RestartStatistics:
    """A snapshot of a :class:`RestartIntensity`, taken by ``statistics()``."""

    max_restarts: int
    max_seconds: float
    total_restarts: int
    """Restarts recorded since creation or the last ``reset()``."""
    recent: tuple[float, ...]
    """Times of the restarts inside the window as of the last ``record()``, oldest first.

    At most ``max_restarts + 1`` are kept: more cannot change any decision.
    """


class RestartIntensity:
    """Count restarts in a sliding window and say when there were too many.

    A restart recorded at ``now`` is judged against the restarts in the half-open window
    ``(now - max_seconds, now]``: a restart exactly ``max_seconds`` old has left the window.
    (OTP keeps it, comparing whole seconds with ``>=``; with float clocks the boundary is a
    single instant, and the half-open window means "sleep ``max_seconds`` between failures"
    never gives up.) Intensity is exceeded when the window holds more than ``max_restarts``
    restarts, so ``max_restarts=0`` gives up on the first restart.

    Only the newest ``max_restarts + 1`` times are kept (a bounded deque), so ``record``
    costs O(1) amortised and memory does not grow with the number of failures.

    Raises:
        ValueError: ``max_restarts`` is negative or ``max_seconds`` is not positive.
    """

    __slots__ = ("_max_restarts", "_max_seconds", "_times", "_total")

    def __init__(self, max_restarts: int, max_seconds: float) -> None:
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {max_restarts!r}")
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}")
        self._max_restarts = max_restarts
        self._max_seconds = max_seconds
        self._times: deque[float] = deque(maxlen=max_restarts + 1)
        self._total = 0

    @property
    def max_restarts(self) -> int:
        return self._max_restarts

    @property
    def max_seconds(self) -> float:
        return self._max_seconds

    def record(self, now: float) -> bool:
        """Record a restart at time ``now``; return ``False`` if it exceeds the intensity.

        ``now`` must not go backwards between calls (read it from ``anyio.current_time()``).
        Recording goes on after a ``False``: the caller decides whether to give up.

        Raises:
            ValueError: ``now`` is earlier than the previously recorded restart.
        """
        times = self._times
        if times and now < times[-1]:
            raise ValueError(
                f"restart times must not go backwards: got {now!r} after {times[-1]!r}"
            )
        times.append(now)
        self._total += 1
        threshold = now - self._max_seconds
        # `times` can empty out only when max_seconds vanishes next to `now` in float.
        while times and times[0] <= threshold:
            times.popleft()
        return len(times) <= self._max_restarts

    def reset(self) -> None:
        """Forget every recorded restart, as if freshly created."""
        self._times.clear()
        self._total = 0

    def statistics(self) -> RestartStatistics:
        """Return a frozen snapshot of the counters."""
        return RestartStatistics(
            max_restarts=self._max_restarts,
            max_seconds=self._max_seconds,
            total_restarts=self._total,
            recent=tuple(self._times),
        )

    def __repr__(self) -> str:
        return (
            f"RestartIntensity(max_restarts={self._max_restarts!r}, "
            f"max_seconds={self._max_seconds!r})"
        )
