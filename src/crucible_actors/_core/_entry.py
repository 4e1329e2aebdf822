"""Entry points that run one experiment: :func:`run_async` and the blocking :func:`run`.

Semantics follow CrucibleFramework's ``Pipeline.Runner``: stages run in pipeline order,
threading one Context; a disabled stage is skipped and listed in
``assigns["skipped_stages"]``; any failure stops the run with :class:`StageFailed`
carrying the Context from before the failing stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import anyio

from ._invoke import ValidateMode, check_validate_mode
from ._runtime import coerce_experiment, open_runtime

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping
    from pathlib import Path

    from ._context import Context
    from ._executor import Executor
    from ._ir import Experiment
    from ._registry import Registry
    from .persistence._persistence import Persistence
    from .persistence._store import Store

__all__ = ["AsyncBackend", "coerce_experiment", "run", "run_async"]

#: The event loop :func:`run` starts (anyio's backend names).
AsyncBackend: TypeAlias = Literal["trio", "asyncio"]


async def run_async(
    experiment: Experiment | Mapping[str, Any] | str | Path,
    *,
    registry: Registry | None = None,
    run_id: str | None = None,
    assigns: Mapping[str, Any] | None = None,
    validate_options: ValidateMode = "off",
    enable_trace: bool = False,
    store: Store | Persistence | str | os.PathLike[str] | None = None,
    persist: bool = True,
    executors: Mapping[str, Executor] | None = None,
    cache: bool = True,
    blob_threshold: int | None = None,
) -> Context:
    """Run ``experiment`` inside the caller's trio or asyncio loop and return the final Context.

    Uses a private runtime for this one run (see :func:`open_runtime` to share one);
    ``executors`` is passed to it (executors by isolation name over the default ones).
    With a ``store``, stages the experiment caches use its result cache unless ``cache``
    is False (:meth:`Runtime.submit`). ``blob_threshold`` is :func:`open_runtime`'s.

    Raises:
        ValueError: ``validate_options`` is not ``"off"``, ``"warn"`` or ``"error"``.
        StageFailed: a stage failed; ``.context`` is the Context from before it.
        RunCancelled: the run was cancelled from elsewhere (not by cancelling this call,
            which propagates the cancellation as usual).
    """
    check_validate_mode(validate_options)
    exp = coerce_experiment(experiment)
    # One run: no other run for a blocked loop to delay, so no lag monitor task.
    async with open_runtime(
        registry=registry,
        store=store,
        executors=executors,
        blob_threshold=blob_threshold,
        watch_loop=False,
    ) as rt:
        handle = await rt.submit(
            exp,
            run_id=run_id,
            assigns=assigns,
            validate_options=validate_options,
            enable_trace=enable_trace,
            persist=persist,
            cache=cache,
        )
        await handle.wait()
    # Raised outside the runtime's task group, so a failure is a plain StageFailed.
    return await handle.result()


def run(
    experiment: Experiment | Mapping[str, Any] | str | Path,
    *,
    registry: Registry | None = None,
    run_id: str | None = None,
    assigns: Mapping[str, Any] | None = None,
    validate_options: ValidateMode = "off",
    enable_trace: bool = False,
    store: Store | Persistence | str | os.PathLike[str] | None = None,
    persist: bool = True,
    executors: Mapping[str, Executor] | None = None,
    cache: bool = True,
    backend: AsyncBackend = "trio",
    blob_threshold: int | None = None,
) -> Context:
    """Run ``experiment`` to completion on a new event loop (``backend``: trio or asyncio).

    For scripts. Inside async code use :func:`run_async`, which never starts a second loop.
    Takes the same keywords as :func:`run_async`, and raises the same errors.
    """

    async def main() -> Context:
        return await run_async(
            experiment,
            registry=registry,
            run_id=run_id,
            assigns=assigns,
            validate_options=validate_options,
            enable_trace=enable_trace,
            store=store,
            persist=persist,
            executors=executors,
            cache=cache,
            blob_threshold=blob_threshold,
        )

    return anyio.run(main, backend=backend)
