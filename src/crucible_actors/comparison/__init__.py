"""Statistical comparison of stored runs and sweep points (``crucible-actors compare``).

:func:`compare` and :func:`compare_sweep` read runs from a Store and return a
:class:`Comparison` computed with :mod:`crucible_actors.stats` (the test chosen to fit
the data, see ``docs/statistics.md``); :func:`render`
prints it as a table, Markdown, JSON or a self-contained HTML page. scipy (extra
``bench``) is imported only when a comparison is computed.
"""

from ._compare import Comparison as Comparison
from ._compare import ComparisonError as ComparisonError
from ._compare import GroupSummary as GroupSummary
from ._compare import PairComparison as PairComparison
from ._compare import compare as compare
from ._compare import compare_sweep as compare_sweep
from ._render import FORMATS as FORMATS
from ._render import render as render

__all__ = [
    "FORMATS",
    "Comparison",
    "ComparisonError",
    "GroupSummary",
    "PairComparison",
    "compare",
    "compare_sweep",
    "render",
]
