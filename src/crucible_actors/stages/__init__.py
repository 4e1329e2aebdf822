"""The built-in stages: ``validate``, ``data_checks``, ``guardrails``, ``bench``, ``report``.

Each declares its options as a msgspec Struct (``Options``), from which ``describe()``,
option validation and ``crucible-actors stages`` derive. :meth:`Registry.default` registers
them by name; the guardrail adapters :class:`NoopAdapter` (the default) and
:class:`PatternScanner` are exported for ``[guardrails] adapter`` and the ``adapter`` option.
``bench`` needs the ``bench`` extra (scipy) only when it runs.
"""

from ._patterns import NoopAdapter as NoopAdapter
from ._patterns import PatternScanner as PatternScanner
from .bench import BenchStage as BenchStage
from .data_checks import DataChecksStage as DataChecksStage
from .guardrails import GuardrailsStage as GuardrailsStage
from .report import ReportStage as ReportStage
from .validate import ValidateStage as ValidateStage

__all__ = [
    "BenchStage",
    "DataChecksStage",
    "GuardrailsStage",
    "NoopAdapter",
    "PatternScanner",
    "ReportStage",
    "ValidateStage",
]
