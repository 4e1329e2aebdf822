"""Statistical comparison of stored runs and sweep points (``crucible-actors compare``).

:func:`compare` and :func:`compare_sweep` read runs from a Store and return a
:class:`Comparison` computed with :mod:`crucible_actors.stats` (the test chosen to fit
the data, see ``docs/statistics.md``); :class:`CompareOptions` says how to compare;
:func:`render` prints a comparison as a table, Markdown, JSON or a self-contained HTML
page. scipy (extra ``bench``) is imported only when a comparison is computed.

Inside: :mod:`._compare` (the entry points: reading runs and sweeps), :mod:`._analysis`
(computing: pairing, tests, groups), :mod:`._scores` (the scores of a run),
:mod:`._design` (which test fits), :mod:`._verdict` (the sentences), :mod:`._result`
(the result types) and :mod:`._render` (the formats).
"""

from ._compare import compare as compare
from ._compare import compare_sweep as compare_sweep
from ._options import REPEATS as REPEATS
from ._options import CompareChanges as CompareChanges
from ._options import CompareOptions as CompareOptions
from ._options import Repeats as Repeats
from ._render import FORMATS as FORMATS
from ._render import Format as Format
from ._render import render as render
from ._result import Comparison as Comparison
from ._result import ComparisonError as ComparisonError
from ._result import GroupSummary as GroupSummary
from ._result import PairComparison as PairComparison

__all__ = [
    "FORMATS",
    "REPEATS",
    "CompareChanges",
    "CompareOptions",
    "Comparison",
    "ComparisonError",
    "Format",
    "GroupSummary",
    "PairComparison",
    "Repeats",
    "compare",
    "compare_sweep",
    "render",
]
