"""Runtime metrics through the OpenTelemetry metrics API (see :mod:`._core._metrics`).

``open_runtime(meter_provider=...)`` records one runtime's runs; :func:`instrument`
records every run in the process.
"""

from ._core._metrics import DURATION_BUCKETS as DURATION_BUCKETS
from ._core._metrics import METER_NAME as METER_NAME
from ._core._metrics import RuntimeMetrics as RuntimeMetrics
from ._core._metrics import instrument as instrument
from ._core._metrics import observe_store_commit as observe_store_commit

__all__ = [
    "DURATION_BUCKETS",
    "METER_NAME",
    "RuntimeMetrics",
    "instrument",
    "observe_store_commit",
]
