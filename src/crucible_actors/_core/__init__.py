"""The core's facade: every name the adapters (store, stages, executors, serve, cli, ...) use.

Modules outside ``_core`` import from here, never from a ``_core._x`` module
(``tests/test_architecture.py`` holds that line). Inside ``_core`` modules import
each other directly. Public names are re-exported again by the public modules
(``crucible_actors``, ``crucible_actors.abc``, ``crucible_actors.errors``, ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _messages as messages  # noqa: F401  (the executor wire, as a namespace)
from . import _telemetry as telemetry  # noqa: F401  (the event API, as a namespace)
from ._actor import cleanup_scope as cleanup_scope
from ._config import ConfigFileError as ConfigFileError
from ._config import find_config as find_config
from ._context import Context as Context
from ._data import DEFAULT_BLOB_THRESHOLD as DEFAULT_BLOB_THRESHOLD
from ._data import blob_digests as blob_digests
from ._data import current_codec as current_codec
from ._data import externalize as externalize
from ._data import inline_blobs as inline_blobs
from ._data import use_blob_store as use_blob_store
from ._encoding import context_to_json as context_to_json
from ._encoding import decode_context as decode_context
from ._encoding import decode_context_with as decode_context_with
from ._encoding import encode_context as encode_context
from ._encoding import to_json_safe as to_json_safe
from ._entry import AsyncBackend as AsyncBackend
from ._entry import run as run
from ._entry import run_async as run_async
from ._errors import BlobCorrupt as BlobCorrupt
from ._errors import BlobError as BlobError
from ._errors import BlobMissing as BlobMissing
from ._errors import CheckpointDecodeError as CheckpointDecodeError
from ._errors import CrucibleError as CrucibleError
from ._errors import DataChecksFailed as DataChecksFailed
from ._errors import DuplicateStage as DuplicateStage
from ._errors import EncodeError as EncodeError
from ._errors import ExecutorError as ExecutorError
from ._errors import GuardrailViolation as GuardrailViolation
from ._errors import InvalidExperiment as InvalidExperiment
from ._errors import InvalidOptions as InvalidOptions
from ._errors import MessageError as MessageError
from ._errors import MissingDependency as MissingDependency
from ._errors import OutcomeNotStored as OutcomeNotStored
from ._errors import OwnershipLost as OwnershipLost
from ._errors import RestartIntensityExceeded as RestartIntensityExceeded
from ._errors import ResumeLimitExceeded as ResumeLimitExceeded
from ._errors import RunCancelled as RunCancelled
from ._errors import RunNotFound as RunNotFound
from ._errors import RunStillRunning as RunStillRunning
from ._errors import RuntimeShutdown as RuntimeShutdown
from ._errors import SchemaError as SchemaError
from ._errors import StageFailed as StageFailed
from ._errors import StageTimeout as StageTimeout
from ._errors import StoreCorrupt as StoreCorrupt
from ._errors import StoreError as StoreError
from ._errors import StoreUnavailable as StoreUnavailable
from ._errors import UnknownStage as UnknownStage
from ._errors import ValidationFailed as ValidationFailed
from ._errors import WorkerCrashed as WorkerCrashed
from ._executor import AttemptIO as AttemptIO
from ._executor import Executor as Executor
from ._executor import ExecutorRegistry as ExecutorRegistry
from ._executor import ExecutorSettings as ExecutorSettings
from ._executor import PreparedStage as PreparedStage
from ._executor import UnknownIsolation as UnknownIsolation
from ._executor import default_executors as default_executors
from ._handle import AttemptRecord as AttemptRecord
from ._handle import RunEvent as RunEvent
from ._handle import RunHandle as RunHandle
from ._handle import RunStatus as RunStatus
from ._invoke import ValidateMode as ValidateMode
from ._invoke import checked_result as checked_result
from ._invoke import invoke_stage as invoke_stage
from ._invoke import resolve_stage as resolve_stage
from ._ir import RAY_RESOURCES as RAY_RESOURCES
from ._ir import BackendRef as BackendRef
from ._ir import Backoff as Backoff
from ._ir import CacheConfig as CacheConfig
from ._ir import DatasetRef as DatasetRef
from ._ir import Experiment as Experiment
from ._ir import OutputSpec as OutputSpec
from ._ir import ReliabilityConfig as ReliabilityConfig
from ._ir import StageDef as StageDef
from ._ir import StatsConfig as StatsConfig
from ._ir import Sweep as Sweep
from ._ir_load import experiment_from_mapping as experiment_from_mapping
from ._ir_load import load_experiment as load_experiment
from ._ir_refs import describe_validation_error as describe_validation_error
from ._ir_refs import stage_ref as stage_ref
from ._messages import AttemptDone as AttemptDone
from ._messages import AttemptFailed as AttemptFailed
from ._messages import Message as Message
from ._messages import RunStage as RunStage
from ._messages import decode_message as decode_message
from ._messages import encode_message as encode_message
from ._provenance import load_definitions as load_definitions
from ._provenance import load_provenance as load_provenance
from ._provenance import provenance_diff as provenance_diff
from ._provenance import provenance_view as provenance_view
from ._provenance import provenance_warnings as provenance_warnings
from ._registry import Registry as Registry
from ._registry import current_registry as current_registry
from ._restart import RestartIntensity as RestartIntensity
from ._restart import RestartStatistics as RestartStatistics
from ._restart import RestartType as RestartType
from ._restart import Strategy as Strategy
from ._restart import should_restart as should_restart
from ._runtime import Runtime as Runtime
from ._runtime import RuntimeStatistics as RuntimeStatistics
from ._runtime import ShutdownMode as ShutdownMode
from ._runtime import StartMode as StartMode
from ._runtime import open_runtime as open_runtime
from ._schema import format_type_spec as format_type_spec
from ._schema import normalize_schema as normalize_schema
from ._schema import valid_type_spec as valid_type_spec
from ._schema import validate_schema as validate_schema
from ._schema_options import validate_options as validate_options
from ._schema_struct import schema_from_struct as schema_from_struct
from ._stage import Stage as Stage
from ._stage import StageInfo as StageInfo
from ._stage import coerce_stage as coerce_stage
from ._stage import load_stage_ref as load_stage_ref
from ._stage import stage as stage
from ._stage import stage_info as stage_info
from ._sweep import SweepHandle as SweepHandle
from ._sweep import SweepPoint as SweepPoint
from ._sweep import SweepStatistics as SweepStatistics
from ._telemetry import EVENTS as EVENTS
from ._telemetry import attach as attach
from ._telemetry import detach as detach
from ._telemetry import list_handlers as list_handlers
from ._trace_chain import EVENT_TYPES as EVENT_TYPES
from ._trace_chain import TraceChain as TraceChain
from ._trace_chain import TraceEvent as TraceEvent
from ._trace_emit import emit_decision as emit_decision
from ._trace_emit import emit_event as emit_event
from ._trace_emit import emit_stage_complete as emit_stage_complete
from ._trace_emit import emit_stage_failed as emit_stage_failed
from ._trace_emit import emit_stage_start as emit_stage_start
from ._trace_emit import init_trace as init_trace
from ._trace_query import chain_confidence_stats as chain_confidence_stats
from ._trace_query import confidence_stats as confidence_stats
from ._trace_query import event_count as event_count
from ._trace_query import filter_events as filter_events
from ._trace_query import last_event as last_event
from ._trace_query import tracing_enabled as tracing_enabled
from .persistence._blobs import DIGEST_LENGTH as DIGEST_LENGTH
from .persistence._blobs import BlobInfo as BlobInfo
from .persistence._blobs import BlobStore as BlobStore
from .persistence._blobs import MemoryBlobStore as MemoryBlobStore
from .persistence._blobs import check_digest as check_digest
from .persistence._blobs import is_digest as is_digest
from .persistence._blobs import new_hasher as new_hasher
from .persistence._columns import parse_columns as parse_columns
from .persistence._columns import run_columns as run_columns
from .persistence._persistence import Persistence as Persistence
from .persistence._persistence import RecoveryReport as RecoveryReport
from .persistence._persistence import open_persistence as open_persistence
from .persistence._persistence import set_store_opener as set_store_opener
from .persistence._records import artifacts_from_context as artifacts_from_context
from .persistence._records import decode_checkpoint as decode_checkpoint
from .persistence._store import LIVE_STATUSES as LIVE_STATUSES
from .persistence._store import RUN_STATUSES as RUN_STATUSES
from .persistence._store import ArtifactRecord as ArtifactRecord
from .persistence._store import CachedResult as CachedResult
from .persistence._store import Checkpoint as Checkpoint
from .persistence._store import DefinitionRecord as DefinitionRecord
from .persistence._store import DeletedRuns as DeletedRuns
from .persistence._store import Durability as Durability
from .persistence._store import EnvironmentRecord as EnvironmentRecord
from .persistence._store import ExperimentRecord as ExperimentRecord
from .persistence._store import GcResult as GcResult
from .persistence._store import OwnerRecord as OwnerRecord
from .persistence._store import PendingRun as PendingRun
from .persistence._store import RunRecord as RunRecord
from .persistence._store import StageAttempt as StageAttempt
from .persistence._store import Store as Store
from .persistence._store import SweepPointRecord as SweepPointRecord
from .persistence._store import SweepRecord as SweepRecord
from .persistence._store import TraceEventRecord as TraceEventRecord

# The metrics instruments import OpenTelemetry, which ``import crucible_actors`` must not
# pay for: their names are loaded on first use (PEP 562), typed as if imported.
if TYPE_CHECKING:
    from ._metrics import DURATION_BUCKETS as DURATION_BUCKETS
    from ._metrics import METER_NAME as METER_NAME
    from ._metrics import RuntimeMetrics as RuntimeMetrics
    from ._metrics import instrument as instrument
    from ._metrics import observe_store_commit as observe_store_commit

_LAZY = dict.fromkeys(
    ("DURATION_BUCKETS", "METER_NAME", "RuntimeMetrics", "instrument", "observe_store_commit"),
    "._metrics",
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
