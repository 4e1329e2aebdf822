"""``isolation="thread"``: an async stage runs on a fresh trio loop in a worker thread.

A stage that blocks without awaiting then cannot stall the runtime, and is abandoned
(its thread left to finish on its own) when the attempt times out or is cancelled. A
plain ``def run`` already runs in a worker thread, as with ``inline``. A stage with
``setup()`` is set up once per runtime, on the runtime's loop, as with ``inline``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._core import invoke_stage
from ._lifecycle import LocalExecutor

if TYPE_CHECKING:
    from .._core import AttemptIO, Context, PreparedStage, StageInfo
    from .._core import messages as msg

__all__ = ["ThreadExecutor"]


class ThreadExecutor(LocalExecutor):
    """Runs attempts in worker threads (see the module docstring)."""

    __slots__ = ()

    async def run(
        self, stage: PreparedStage, command: msg.RunStage, io: AttemptIO
    ) -> msg.AttemptDone | msg.AttemptFailed:
        """Run the attempt in a worker thread; return its reply."""
        try:
            ctx = io.begin(stage, command)
            info = stage.info
            if info.has_setup:  # set up in the runtime's process, once per runtime
                await self._setups.ensure(info.stage)
            if info.is_async:
                result = await anyio.to_thread.run_sync(
                    _run_on_own_loop, info, stage.label, ctx, stage.options, abandon_on_cancel=True
                )
            else:
                result = await invoke_stage(info, stage.label, ctx, stage.options)
            return await io.finish(stage, command, result)
        except Exception as exc:
            return io.failed(command, exc)


def _run_on_own_loop(info: StageInfo, label: str, ctx: Context, opts: Any) -> Context:
    return anyio.run(invoke_stage, info, label, ctx, opts, backend="trio")
