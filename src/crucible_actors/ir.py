"""The experiment IR: :class:`Experiment`, :class:`StageDef` and friends, and the loader."""

from ._core import BackendRef as BackendRef
from ._core import Backoff as Backoff
from ._core import CacheConfig as CacheConfig
from ._core import DatasetRef as DatasetRef
from ._core import Experiment as Experiment
from ._core import OutputSpec as OutputSpec
from ._core import ReliabilityConfig as ReliabilityConfig
from ._core import StageDef as StageDef
from ._core import StatsConfig as StatsConfig
from ._core import Sweep as Sweep
from ._core import load_experiment as load_experiment

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
