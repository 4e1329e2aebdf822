"""The experiment IR: :class:`Experiment`, :class:`StageDef` and friends, and the loader."""

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

__all__ = [
    "BackendRef",
    "Backoff",
    "CacheConfig",
    "DatasetRef",
    "Experiment",
    "OutputSpec",
    "ReliabilityConfig",
    "StageDef",
    "StatsConfig",
    "Sweep",
    "load_experiment",
]
