"""``isolation="inline"``: the attempt runs in the run's own task, on the runtime's loop.

An async ``run`` is awaited directly (no task, no thread: the run hot path); a plain
``def run`` goes to a worker thread, abandoned rather than waited for on cancellation.
A stage with ``setup()`` is set up once per runtime, before its first attempt, and torn
down when the runtime closes (each runtime gets its own executor:
:meth:`InlineExecutor.for_runtime`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core import checked_result
from ._lifecycle import LocalExecutor

if TYPE_CHECKING:
    from .._core import Context, PreparedStage

__all__ = ["InlineExecutor"]


class InlineExecutor(LocalExecutor):
    """Runs attempts on the caller's loop (see the module docstring)."""

    __slots__ = ()

    async def _run_async(self, stage: PreparedStage, ctx: Context) -> Context:
        # Awaited right here: no task, no thread (the run hot path).
        return checked_result(stage.label, await stage.info.stage.run(ctx, stage.options))  # type: ignore[misc]
