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
    from .._core import Context, PreparedStage, StageInfo

__all__ = ["ThreadExecutor"]


class ThreadExecutor(LocalExecutor):
    """Runs attempts in worker threads (see the module docstring)."""

    __slots__ = ()

    async def _run_async(self, stage: PreparedStage, ctx: Context) -> Context:
        return await anyio.to_thread.run_sync(
            _run_on_own_loop,
            stage.info,
            stage.label,
            ctx,
            stage.options,
            abandon_on_cancel=True,
        )


def _run_on_own_loop(info: StageInfo, label: str, ctx: Context, opts: Any) -> Context:
    return anyio.run(invoke_stage, info, label, ctx, opts, backend="trio")
