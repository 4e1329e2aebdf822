"""Protocols for plug-in authors: what a stage, a store and an executor implement.

- :class:`Stage`: a pipeline step (``run(ctx, opts)`` and ``describe()``).
- :class:`Store`: where runs persist (see :mod:`crucible_actors.store` for the adapters).
- :class:`BlobStore`: where a store keeps large Context values, once by content
  (``Store.blobs``), with :class:`BlobInfo`, what it lists.
- :class:`Executor`: where one stage attempt runs, selected by ``StageDef.isolation``
  (see :mod:`crucible_actors.executors` for the built-in ones), with
  :class:`PreparedStage` and :class:`AttemptIO`, what it is given, and the messages it
  receives and answers: :class:`RunStage` in, :class:`AttemptDone` or
  :class:`AttemptFailed` out (:func:`encode_message` and :func:`decode_message` carry
  them across a process boundary). Register one with
  ``crucible_actors.executors.default_executors.register(name, executor)`` (or pass
  ``open_runtime(executors={name: executor})``); ``StageDef.isolation = name`` then
  selects it, in Python and in experiment files.

Writing an executor: the contract of :meth:`Executor.run`.

- **In**: the :class:`PreparedStage` (resolved once per stage, before its first attempt:
  the stage object, its converted options, its ``"module:attr"`` reference and its
  :class:`~crucible_actors.StageDef`), the ``RunStage`` command, and the
  :class:`AttemptIO` of the run (the stage actor), whose ``begin`` decodes the snapshot
  into the attempt's Context (telemetry context and trace start included) and whose
  ``done``/``failed`` build the reply (stage marked complete, trace, encoding).
- **Out**: exactly one ``AttemptDone`` or ``AttemptFailed`` for ``command.generation``. A
  stage's exception is never raised out of ``run``; it becomes ``io.failed(command,
  exc)``. Only cancellation (and ``KeyboardInterrupt``/``SystemExit``) propagates.
- **Abandon**: an attempt is abandoned by cancelling the task awaiting ``run`` (its
  timeout's cancel scope, or the run's cancellation). The executor must then give up the
  attempt's resources before re-raising (kill the worker process, ``ray.cancel``, leave a
  blocked thread behind) and may take at most the run's grace for it (wrap any await in
  :func:`~crucible_actors.cleanup_scope`). An answer given after the attempt's
  deadline fired is dropped by the supervisor as late, so an executor never has to
  filter them.
- **Concurrency**: one executor object serves every run of the runtime concurrently;
  ``run`` must be reentrant. State belongs to the executor (a pool of workers keyed by
  :attr:`PreparedStage.ref` gives *stateful stages*: set up once per worker, reused by
  later attempts of the same stage), never to the ``PreparedStage``.
- **Lifecycle**: an executor that holds resources (a pool, a cluster connection) is an
  async context manager; :func:`~crucible_actors.open_runtime` enters every executor it
  is given that has ``__aenter__`` before the first run and exits it after the last.
- **Per runtime** (optional): a process-wide executor with ``for_runtime(settings)``
  is a template: each :func:`~crucible_actors.open_runtime` calls it with the runtime's
  :class:`ExecutorSettings` and uses (and enters, and exits) the executor it returns, so
  a warm process pool or a Ray connection belongs to one runtime.
- **Check** (optional): ``check(stage_def, registry)`` is called for every enabled stage
  when a run is submitted, before it is admitted; it raises what the executor can tell
  from the definition alone (a missing extra, a stage it cannot ship), so such a run
  fails before any stage runs.
"""

from ._core import AttemptDone as AttemptDone
from ._core import AttemptFailed as AttemptFailed
from ._core import AttemptIO as AttemptIO
from ._core import BlobInfo as BlobInfo
from ._core import BlobStore as BlobStore
from ._core import Executor as Executor
from ._core import ExecutorSettings as ExecutorSettings
from ._core import Message as Message
from ._core import PreparedStage as PreparedStage
from ._core import RunStage as RunStage
from ._core import Stage as Stage
from ._core import Store as Store
from ._core import decode_message as decode_message
from ._core import encode_message as encode_message

__all__ = [
    "AttemptDone",
    "AttemptFailed",
    "AttemptIO",
    "BlobInfo",
    "BlobStore",
    "Executor",
    "ExecutorSettings",
    "Message",
    "PreparedStage",
    "RunStage",
    "Stage",
    "Store",
    "decode_message",
    "encode_message",
]
