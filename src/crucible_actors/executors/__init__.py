"""Executors: where a stage attempt runs, one per ``StageDef.isolation`` name.

The port they implement, :class:`Executor`, is defined in the core (its docstring is the
contract); this package holds the implementations and registers them on import:

- ``"inline"``: :class:`InlineExecutor`, in the run's own task (the default);
- ``"thread"``: :class:`ThreadExecutor`, an async stage on its own loop in a thread;
- ``"process"``: :class:`PoolExecutor`, a warm pool of worker processes, one pool per
  runtime (a killed or crashed worker is replaced);
- ``"ray"``: :class:`RayExecutor`, Ray tasks, or Ray actor pools for stages with
  ``setup()`` (extra ``ray``; :mod:`crucible_actors.executors.ray` is the only module
  that imports ``ray``, and only when a ray stage is submitted).

The inline, thread, process and ray executors registered here are templates: every
``open_runtime`` gets its own (``for_runtime``), entered before its first run and closed
after its last, so set-up stages, worker processes and a Ray it started belong to it.

Add one with :func:`register` (process-wide), or per runtime with
``open_runtime(executors={"name": executor})``; a stage selects it with
``StageDef(isolation="name")``.
"""

from __future__ import annotations

from .._core import AttemptIO as AttemptIO
from .._core import Executor as Executor
from .._core import ExecutorRegistry as ExecutorRegistry
from .._core import PreparedStage as PreparedStage
from .._core import UnknownIsolation as UnknownIsolation
from .._core import default_executors
from .inline import InlineExecutor as InlineExecutor
from .pool import PoolExecutor as PoolExecutor
from .pool import PoolStatistics as PoolStatistics
from .ray import RayExecutor as RayExecutor
from .thread import ThreadExecutor as ThreadExecutor

__all__ = [
    "AttemptIO",
    "Executor",
    "ExecutorRegistry",
    "InlineExecutor",
    "PoolExecutor",
    "PoolStatistics",
    "PreparedStage",
    "RayExecutor",
    "ThreadExecutor",
    "UnknownIsolation",
    "default_executors",
    "register",
]


def register(name: str, executor: Executor, *, replace: bool = False) -> None:
    """Register ``executor`` process-wide for stages with ``isolation=name``.

    Raises:
        TypeError: ``executor`` has no async ``run(stage, command, io)`` method.
        ValueError: ``name`` is taken and ``replace`` is False.
    """
    default_executors.register(name, executor, replace=replace)


for _name, _executor in (
    ("inline", InlineExecutor()),
    ("thread", ThreadExecutor()),
    ("process", PoolExecutor()),
    ("ray", RayExecutor()),
):
    if _name not in default_executors:
        default_executors.register(_name, _executor)
