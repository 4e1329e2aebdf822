"""Retry policy of the run supervisor: whether, and after what delay, a stage runs again.

Beside ``_restart.py`` (OTP's restart types and the sliding :class:`RestartIntensity`
window), this is the policy one run applies to its stages: a ``transient`` stage is
retried after an exception or a timeout, unless ``fail_on``/``retry_on`` say otherwise,
within its own window (``max_restarts`` in ``max_seconds``) and within the run-wide
budget (``Experiment.max_restarts``); a ``temporary`` stage never is. The run
supervisor (``_run.py``) asks :meth:`RunRestarts.next_delay` after each failed attempt
and either sleeps the returned delay or, on :class:`GiveUp`, fails the run.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ._errors import RestartIntensityExceeded
from ._ir import Backoff
from ._restart import RestartIntensity

if TYPE_CHECKING:
    from ._ir import Experiment, StageDef

__all__ = ["GiveUp", "RunRestarts", "backoff_delay", "describe_error", "should_retry"]


def _class_names(exc: BaseException) -> set[str]:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, BaseExceptionGroup):
        for leaf in exc.exceptions:
            names |= _class_names(leaf)
    return names


def should_retry(stage_def: StageDef, error: BaseException) -> bool:
    """Return whether the stage's policy allows retrying after ``error``.

    Only ``transient`` stages retry; ``fail_on`` names never retry, and with ``retry_on``
    set only those names do. Names match the exception's class and its bases, and every
    leaf of an exception group.
    """
    if stage_def.restart != "transient":
        return False
    if not stage_def.fail_on and not stage_def.retry_on:
        return True
    names = _class_names(error)
    if stage_def.fail_on and names.intersection(stage_def.fail_on):
        return False
    return not stage_def.retry_on or bool(names.intersection(stage_def.retry_on))


def backoff_delay(backoff: float | Backoff | None, retry: int) -> float:
    """Return the delay before retry number ``retry`` under ``backoff``."""
    if backoff is None:
        return 0.0
    if isinstance(backoff, Backoff):
        return backoff.delay(retry, random.random())
    return float(backoff)


def describe_error(exc: BaseException) -> str:
    """Return ``"Type: message"`` for ``exc`` (with every leaf of an exception group)."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = "; ".join(describe_error(e) for e in exc.exceptions)
        return f"{type(exc).__name__}: {exc.message} [{leaves}]"
    return f"{type(exc).__name__}: {exc}"


class GiveUp(Exception):
    """The policy forbids another attempt.

    Attributes:
        reason: The error the run fails with (the stage's, or the exceeded run budget).
        gave_up: Which limit was hit (``"stage restart window"``, ``"run restart
            budget"``), or None when the stage's policy does not retry at all.
    """

    def __init__(self, reason: BaseException, gave_up: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.gave_up = gave_up


class RunRestarts:
    """The restart state of one run: each stage's window and the run-wide budget."""

    __slots__ = ("_experiment", "_run_window", "_supervisor", "_windows")

    def __init__(self, experiment: Experiment, supervisor: str) -> None:
        self._experiment = experiment
        self._supervisor = supervisor
        self._windows: dict[int, RestartIntensity] | None = None
        self._run_window: RestartIntensity | None = None
        if experiment.max_restarts is not None:
            self._run_window = RestartIntensity(experiment.max_restarts, experiment.max_seconds)

    def next_delay(
        self, index: int, stage_def: StageDef, attempt: int, error: BaseException, now: float
    ) -> float:
        """Record the restart of stage ``index`` at ``now``; return the delay before it.

        Raises:
            GiveUp: the stage's policy, its window or the run's budget forbids it.
        """
        if not should_retry(stage_def, error):
            raise GiveUp(error, None)
        if self._windows is None:
            self._windows = {}
        window = self._windows.get(index)
        if window is None:
            window = self._windows[index] = RestartIntensity(
                stage_def.max_restarts, stage_def.max_seconds
            )
        if not window.record(now):
            raise GiveUp(error, "stage restart window")
        if self._run_window is not None and not self._run_window.record(now):
            exp = self._experiment
            assert exp.max_restarts is not None
            budget = RestartIntensityExceeded(
                exp.max_restarts, exp.max_seconds, supervisor=self._supervisor, last_error=error
            )
            raise GiveUp(budget, "run restart budget")
        return backoff_delay(stage_def.backoff, attempt)
