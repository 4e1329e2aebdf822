"""The built-in stages: ``validate``, ``data_checks``, ``guardrails``, ``bench``, ``report``,
``mlflow_log``.

Each declares its options as a msgspec Struct (``Options``), from which ``describe()``,
option validation and ``crucible-actors stages`` derive.
:meth:`~crucible_actors.Registry.default` registers them by name; the guardrail adapters
:class:`NoopAdapter` (the default) and :class:`PatternScanner` are exported for
``[guardrails] adapter`` and the ``adapter`` option. ``bench`` needs the ``bench`` extra
(scipy) and ``mlflow_log`` the ``mlflow`` extra, each only when it runs.
"""

from ._patterns import NoopAdapter as NoopAdapter
from ._patterns import PatternScanner as PatternScanner
from .bench import BenchStage as BenchStage
from .data_checks import DataChecksStage as DataChecksStage
from .guardrails import GuardrailsStage as GuardrailsStage
from .mlflow_log import MlflowLogStage as MlflowLogStage
from .report import ReportStage as ReportStage
from .validate import ValidateStage as ValidateStage

__all__ = [
    "BenchStage",
    "DataChecksStage",
    "GuardrailsStage",
    "MlflowLogStage",
    "NoopAdapter",
    "PatternScanner",
    "ReportStage",
    "ValidateStage",
]
