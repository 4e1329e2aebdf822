"""The runtime's clock: the one backend-neutral helper that knows anyio's backends.

Everything in the core reads time from the event loop's clock, which is what
``anyio.current_time()`` returns (trio's ``MockClock`` included, so timeouts and restart
windows follow virtual time in tests). ``anyio.current_time()`` looks the backend up on
every call; the run supervisor reads the clock several times per stage, so
:func:`loop_clock` returns the running backend's clock function itself, once per run
(measured: ~0.12 µs a read on asyncio against ~1 µs through ``anyio.current_time()``,
~0.5 against ~0.9 µs on trio; at three reads a stage that is 15% of an untimed stage).
This module is the only one in ``_core`` that names ``asyncio`` or ``trio``.

It also gives the run supervisor the cancel scope a timed attempt runs under
(:func:`deadline_scope_type`): on trio, trio's own ``CancelScope``, which anyio's wraps
(measured: ~5.3 µs entering and leaving one with a deadline against ~6.9 µs for anyio's,
and three GC-tracked objects fewer while the attempt runs); on asyncio, anyio's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["DeadlineScope", "deadline_scope_type", "loop_clock"]


class DeadlineScope(Protocol):
    """A cancel scope with a deadline, as the run supervisor uses one per timed attempt."""

    @property
    def cancel_called(self) -> bool:
        """Whether the scope was cancelled (its deadline passed)."""
        ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


def loop_clock() -> Callable[[], float]:
    """Return the running event loop's clock function (what ``anyio.current_time`` reads).

    Call it from inside a running loop (asyncio, or else trio: anyio's two backends).
    """
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # not asyncio: anyio's other backend
        import trio

        return trio.current_time


def deadline_scope_type() -> Callable[..., DeadlineScope]:
    """Return the cancel scope class to use on the running loop, called ``(deadline=t)``.

    Its deadline is on the loop's clock (:func:`loop_clock`); it nests with anyio's
    scopes either way.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: anyio's other backend
        import trio

        return trio.CancelScope
    return anyio.CancelScope
