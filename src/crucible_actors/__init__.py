"""crucible-actors: a supervised, actor-style runtime for ML experiment pipelines.

An :class:`Experiment` is a pipeline of stages that thread one :class:`Context`; the
runtime runs each pipeline as a supervised task group with restarts, timeouts,
cancellation, persistence and OpenTelemetry spans. Start with :func:`run` (blocking),
:func:`run_async` (inside a trio or asyncio loop) or :func:`open_runtime` (many runs).
"""

from . import _adapters as _adapters  # the default executors and store opener
from . import executors as executors
from ._core import AttemptRecord as AttemptRecord
from ._core import BackendRef as BackendRef
from ._core import Backoff as Backoff
from ._core import CacheConfig as CacheConfig
from ._core import Context as Context
from ._core import CrucibleError as CrucibleError
from ._core import DatasetRef as DatasetRef
from ._core import DuplicateStage as DuplicateStage
from ._core import EncodeError as EncodeError
from ._core import Experiment as Experiment
from ._core import InvalidExperiment as InvalidExperiment
from ._core import InvalidOptions as InvalidOptions
from ._core import MissingDependency as MissingDependency
from ._core import OutputSpec as OutputSpec
from ._core import Registry as Registry
from ._core import ReliabilityConfig as ReliabilityConfig
from ._core import RestartIntensityExceeded as RestartIntensityExceeded
from ._core import RunCancelled as RunCancelled
from ._core import RunEvent as RunEvent
from ._core import RunHandle as RunHandle
from ._core import RunStatus as RunStatus
from ._core import Runtime as Runtime
from ._core import RuntimeShutdown as RuntimeShutdown
from ._core import RuntimeStatistics as RuntimeStatistics
from ._core import SchemaError as SchemaError
from ._core import Stage as Stage
from ._core import StageDef as StageDef
from ._core import StageFailed as StageFailed
from ._core import StageTimeout as StageTimeout
from ._core import StatsConfig as StatsConfig
from ._core import Sweep as Sweep
from ._core import SweepHandle as SweepHandle
from ._core import SweepPoint as SweepPoint
from ._core import SweepStatistics as SweepStatistics
from ._core import UnknownStage as UnknownStage
from ._core import cleanup_scope as cleanup_scope
from ._core import load_experiment as load_experiment
from ._core import open_runtime as open_runtime
from ._core import run as run
from ._core import run_async as run_async
from ._core import stage as stage
from .comparison import CompareOptions as CompareOptions
from .comparison import Comparison as Comparison
from .comparison import compare as compare
from .comparison import compare_sweep as compare_sweep

# The one place the version is written: pyproject.toml reads it (tool.hatch.version).
__version__ = "0.1.0"

__all__ = [
    "AttemptRecord",
    "BackendRef",
    "Backoff",
    "CacheConfig",
    "CompareOptions",
    "Comparison",
    "Context",
    "CrucibleError",
    "DatasetRef",
    "DuplicateStage",
    "EncodeError",
    "Experiment",
    "InvalidExperiment",
    "InvalidOptions",
    "MissingDependency",
    "OutputSpec",
    "Registry",
    "ReliabilityConfig",
    "RestartIntensityExceeded",
    "RunCancelled",
    "RunEvent",
    "RunHandle",
    "RunStatus",
    "Runtime",
    "RuntimeShutdown",
    "RuntimeStatistics",
    "SchemaError",
    "Stage",
    "StageDef",
    "StageFailed",
    "StageTimeout",
    "StatsConfig",
    "Sweep",
    "SweepHandle",
    "SweepPoint",
    "SweepStatistics",
    "UnknownStage",
    "cleanup_scope",
    "compare",
    "compare_sweep",
    "load_experiment",
    "open_runtime",
    "run",
    "run_async",
    "stage",
]
