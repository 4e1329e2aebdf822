"""Protocols for plug-in authors: what a stage, a store and an executor implement.

- :class:`Stage`: a pipeline step (``run(ctx, opts)`` and ``describe()``).
- :class:`Store`: where runs persist (see :mod:`crucible_actors.store` for the adapters).
- :class:`BlobStore`: where a store keeps large Context values, once by content
  (``Store.blobs``), with :class:`BlobInfo`, what it lists.
- :class:`Executor`: where one stage attempt runs, selected by ``StageDef.isolation``
  (see :mod:`crucible_actors.executors`; its contract is in :class:`Executor`'s module),
  with :class:`PreparedStage` and :class:`AttemptIO`, what it is given.
"""

from ._core._blobs import BlobInfo as BlobInfo
from ._core._blobs import BlobStore as BlobStore
from ._core._executor import AttemptIO as AttemptIO
from ._core._executor import Executor as Executor
from ._core._executor import PreparedStage as PreparedStage
from ._core._stage import Stage as Stage
from ._core._store import Store as Store

__all__ = ["AttemptIO", "BlobInfo", "BlobStore", "Executor", "PreparedStage", "Stage", "Store"]
