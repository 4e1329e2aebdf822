"""Runtime metrics through the OpenTelemetry metrics API.

``open_runtime(meter_provider=...)`` records one runtime's runs; :func:`instrument`
records every run in the process.
"""

from ._core import DURATION_BUCKETS as DURATION_BUCKETS
from ._core import METER_NAME as METER_NAME
from ._core import RuntimeMetrics as RuntimeMetrics
from ._core import instrument as instrument
from ._core import observe_store_commit as observe_store_commit

__all__ = [
    "DURATION_BUCKETS",
    "METER_NAME",
    "RuntimeMetrics",
    "instrument",
    "observe_store_commit",
]
