"""crucible-actors: a supervised, actor-style runtime for ML experiment pipelines.

An :class:`Experiment` is a pipeline of stages that thread one :class:`Context`; the
runtime runs each pipeline as a supervised task group with restarts, timeouts,
cancellation, persistence and OpenTelemetry spans. Start with :func:`run` (blocking),
:func:`run_async` (inside a trio or asyncio loop) or :func:`open_runtime` (many runs).
"""

from . import _adapters as _adapters  # the default executors and store opener
from . import executors as executors
from ._core._actor import cleanup_scope as cleanup_scope
from ._core._context import Context as Context
from ._core._errors import (
    CrucibleError as CrucibleError,
)
from ._core._errors import (
    DuplicateStage as DuplicateStage,
)
from ._core._errors import (
    EncodeError as EncodeError,
)
from ._core._errors import (
    InvalidExperiment as InvalidExperiment,
)
from ._core._errors import (
    InvalidOptions as InvalidOptions,
)
from ._core._errors import (
    MissingDependency as MissingDependency,
)
from ._core._errors import (
    RestartIntensityExceeded as RestartIntensityExceeded,
)
from ._core._errors import (
    RunCancelled as RunCancelled,
)
from ._core._errors import (
    RuntimeShutdown as RuntimeShutdown,
)
from ._core._errors import (
    SchemaError as SchemaError,
)
from ._core._errors import (
    StageFailed as StageFailed,
)
from ._core._errors import (
    StageTimeout as StageTimeout,
)
from ._core._errors import (
    UnknownStage as UnknownStage,
)
from ._core._handle import RunEvent as RunEvent
from ._core._handle import RunHandle as RunHandle
from ._core._handle import RunStatus as RunStatus
from ._core._ir import BackendRef as BackendRef
from ._core._ir import Backoff as Backoff
from ._core._ir import CacheConfig as CacheConfig
from ._core._ir import DatasetRef as DatasetRef
from ._core._ir import Experiment as Experiment
from ._core._ir import OutputSpec as OutputSpec
from ._core._ir import ReliabilityConfig as ReliabilityConfig
from ._core._ir import StageDef as StageDef
from ._core._ir import StatsConfig as StatsConfig
from ._core._ir import Sweep as Sweep
from ._core._ir_load import load_experiment as load_experiment
from ._core._registry import Registry as Registry
from ._core._runner import run as run
from ._core._runner import run_async as run_async
from ._core._runtime import Runtime as Runtime
from ._core._runtime import open_runtime as open_runtime
from ._core._stage import Stage as Stage
from ._core._stage import stage as stage
from ._core._sweep import SweepHandle as SweepHandle
from .comparison import Comparison as Comparison
from .comparison import compare as compare
from .comparison import compare_sweep as compare_sweep

# The one place the version is written: pyproject.toml reads it (tool.hatch.version).
__version__ = "0.1.0"

__all__ = [
    "BackendRef",
    "Backoff",
    "CacheConfig",
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
    "SchemaError",
    "Stage",
    "StageDef",
    "StageFailed",
    "StageTimeout",
    "StatsConfig",
    "Sweep",
    "SweepHandle",
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
