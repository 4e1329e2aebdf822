"""``isolation="inline"``: the attempt runs in the run's own task, on the runtime's loop.

An async ``run`` is awaited directly (no task, no thread: the run hot path); a plain
``def run`` goes to a worker thread, abandoned rather than waited for on cancellation.
A stage with ``setup()`` is set up once per runtime, before its first attempt, and torn
down when the runtime closes (each runtime gets its own executor:
:meth:`InlineExecutor.for_runtime`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core import checked_result, invoke_stage
from ._lifecycle import LocalExecutor

if TYPE_CHECKING:
    from .._core import AttemptIO, PreparedStage
    from .._core import messages as msg

__all__ = ["InlineExecutor"]


class InlineExecutor(LocalExecutor):
    """Runs attempts on the caller's loop (see the module docstring)."""

    __slots__ = ()

    async def run(
        self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
    ) -> msg.AttemptDone | msg.AttemptFailed:
        """Run the attempt in the calling task; return its reply."""
        try:
            ctx = io.begin(stage, command)
            info = stage.info
            if info.has_setup:
                await self._setups.ensure(info.stage)
            if info.is_async:
                result = checked_result(stage.label, await info.stage.run(ctx, stage.options))  # type: ignore[misc]
            else:
                result = await invoke_stage(info, stage.label, ctx, stage.options)
            return await io.finish(stage, command, result)
        except Exception as exc:
            return io.failed(command, exc)
