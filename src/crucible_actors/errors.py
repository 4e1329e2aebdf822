"""The exception tree of crucible-actors (see :mod:`crucible_actors._core._errors`)."""

from ._core._errors import BlobCorrupt as BlobCorrupt
from ._core._errors import BlobError as BlobError
from ._core._errors import BlobMissing as BlobMissing
from ._core._errors import CheckpointDecodeError as CheckpointDecodeError
from ._core._errors import CrucibleError as CrucibleError
from ._core._errors import DataChecksFailed as DataChecksFailed
from ._core._errors import DuplicateStage as DuplicateStage
from ._core._errors import EncodeError as EncodeError
from ._core._errors import ExecutorError as ExecutorError
from ._core._errors import GuardrailViolation as GuardrailViolation
from ._core._errors import InvalidExperiment as InvalidExperiment
from ._core._errors import InvalidOptions as InvalidOptions
from ._core._errors import MessageError as MessageError
from ._core._errors import MissingDependency as MissingDependency
from ._core._errors import OutcomeNotStored as OutcomeNotStored
from ._core._errors import OwnershipLost as OwnershipLost
from ._core._errors import RestartIntensityExceeded as RestartIntensityExceeded
from ._core._errors import ResumeLimitExceeded as ResumeLimitExceeded
from ._core._errors import RunCancelled as RunCancelled
from ._core._errors import RunNotFound as RunNotFound
from ._core._errors import RunStillRunning as RunStillRunning
from ._core._errors import RuntimeShutdown as RuntimeShutdown
from ._core._errors import SchemaError as SchemaError
from ._core._errors import StageFailed as StageFailed
from ._core._errors import StageTimeout as StageTimeout
from ._core._errors import StoreCorrupt as StoreCorrupt
from ._core._errors import StoreError as StoreError
from ._core._errors import StoreUnavailable as StoreUnavailable
from ._core._errors import UnknownStage as UnknownStage
from ._core._errors import ValidationFailed as ValidationFailed
from ._core._errors import WorkerCrashed as WorkerCrashed

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
