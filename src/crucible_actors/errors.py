"""The exception tree of crucible-actors (:class:`CrucibleError` and its subclasses)."""

from ._core import BlobCorrupt as BlobCorrupt
from ._core import BlobError as BlobError
from ._core import BlobMissing as BlobMissing
from ._core import CheckpointDecodeError as CheckpointDecodeError
from ._core import CrucibleError as CrucibleError
from ._core import DataChecksFailed as DataChecksFailed
from ._core import DuplicateStage as DuplicateStage
from ._core import EncodeError as EncodeError
from ._core import ExecutorError as ExecutorError
from ._core import GuardrailViolation as GuardrailViolation
from ._core import InvalidExperiment as InvalidExperiment
from ._core import InvalidOptions as InvalidOptions
from ._core import MessageError as MessageError
from ._core import MissingDependency as MissingDependency
from ._core import OutcomeNotStored as OutcomeNotStored
from ._core import OwnershipLost as OwnershipLost
from ._core import RestartIntensityExceeded as RestartIntensityExceeded
from ._core import ResumeLimitExceeded as ResumeLimitExceeded
from ._core import RunCancelled as RunCancelled
from ._core import RunNotFound as RunNotFound
from ._core import RunStillRunning as RunStillRunning
from ._core import RuntimeShutdown as RuntimeShutdown
from ._core import SchemaError as SchemaError
from ._core import StageFailed as StageFailed
from ._core import StageTimeout as StageTimeout
from ._core import StoreCorrupt as StoreCorrupt
from ._core import StoreError as StoreError
from ._core import StoreUnavailable as StoreUnavailable
from ._core import UnknownStage as UnknownStage
from ._core import ValidationFailed as ValidationFailed
from ._core import WorkerCrashed as WorkerCrashed

__all__ = [
    "BlobCorrupt",
    "BlobError",
    "BlobMissing",
    "CheckpointDecodeError",
    "CrucibleError",
    "DataChecksFailed",
    "DuplicateStage",
    "EncodeError",
    "ExecutorError",
    "GuardrailViolation",
    "InvalidExperiment",
    "InvalidOptions",
    "MessageError",
    "MissingDependency",
    "OutcomeNotStored",
    "OwnershipLost",
    "RestartIntensityExceeded",
    "ResumeLimitExceeded",
    "RunCancelled",
    "RunNotFound",
    "RunStillRunning",
    "RuntimeShutdown",
    "SchemaError",
    "StageFailed",
    "StageTimeout",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "UnknownStage",
    "ValidationFailed",
    "WorkerCrashed",
]
