"""The ``bench`` stage: statistical comparison of numeric groups (extra ``bench``).

The stage collects ``{group: [numbers]}`` from the Context, hands it to
:func:`crucible_actors.stats.analyze` (scipy) in a worker thread, and stores
``metrics["bench"] = {"tests_run", "alpha", "correction", "results", "group_stats",
"timestamp"}``. ``results`` is exactly what ``analyze`` returns; ``group_stats`` adds the
size, mean, standard deviation and t confidence interval of every group, which the
``report`` stage plots.

Where the groups come from (``data_source``):

- ``"outputs"`` (default): the dict items of ``ctx.outputs``, grouped by ``group_by``
  (default ``prompt``); an item's value is ``score_key``, or by default the first numeric
  of ``score``, ``accuracy``, ``loss``. Items without the group key (or with ``None``
  there) form one group of their own, named ``"nil"`` after CrucibleFramework's ``nil`` key, so
  unlabelled scores still get ``n``, ``mean``, ``std`` and a confidence interval. Items with
  no number are skipped, and a warning on the ``crucible_actors`` logger counts them.
- ``"metrics"``: the metrics named in ``keys``, each a list of numbers; by default every
  metric that is a non-empty list of numbers.
- a callable ``(ctx) -> {group: [numbers]}`` (sync or async) or a ``"pkg.mod:attr"``
  reference to one.

Settings resolve as stage option, then ``experiment.reliability.stats`` (``seed`` and
``equal_var`` from its ``options`` table), then the defaults: alpha 0.05, tests
``["ttest"]``, correction ``none``, 10 000 bootstrap iterations, confidence level 0.95.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread
import msgspec

from .. import stats as _stats
from .._core import Stage
from ..stats import Correction, _groups
from ._plugins import call_plugin, describe_plugin, load_ref

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._core import Context, StatsConfig

__all__ = ["MISSING_GROUP", "BenchOptions", "BenchStage"]

log = logging.getLogger("crucible_actors")

TestName = Literal[
    "ttest", "paired_ttest", "wilcoxon", "mann_whitney", "bootstrap", "anova", "kruskal_wallis"
]

DEFAULT_TESTS = ("ttest",)
DEFAULT_ALPHA = 0.05
DEFAULT_CORRECTION = "none"
DEFAULT_BOOTSTRAP_ITERATIONS = 10_000
DEFAULT_CONFIDENCE_LEVEL = 0.95
SCORE_KEYS = ("score", "accuracy", "loss")
MISSING_GROUP = "nil"
"""The group of ``outputs`` items that have no ``group_by`` key (CrucibleFramework's ``nil``)."""


def _check_unit_interval(name: str, value: float | None) -> None:
    if value is not None and not 0 < value < 1:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")


class BenchOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Options of the ``bench`` stage; None means "from the experiment, else the default".

    See the module docstring for ``data_source``, ``group_by``, ``score_key`` and ``keys``.
    """

    tests: list[TestName] | None = None
    alpha: float | None = None
    data_source: Any = "outputs"
    group_by: str = "prompt"
    score_key: str | None = None
    keys: list[str] | None = None
    correction: Correction | None = None
    bootstrap_iterations: int | None = None
    seed: int | None = None
    equal_var: bool | None = None
    confidence_level: float | None = None

    def __post_init__(self) -> None:
        source = self.data_source
        if isinstance(source, str):
            module, sep, attr = source.partition(":")
            if source not in ("outputs", "metrics") and not (sep and module and attr):
                raise ValueError(
                    "data_source: expected 'outputs', 'metrics', a callable or a "
                    f"'pkg.mod:attr' reference, got {source!r}"
                )
        elif not callable(source):
            raise TypeError(
                "data_source: expected 'outputs', 'metrics', a callable or a "
                f"'pkg.mod:attr' reference, got {source!r}"
            )
        _check_unit_interval("alpha", self.alpha)
        _check_unit_interval("confidence_level", self.confidence_level)
        if self.bootstrap_iterations is not None and self.bootstrap_iterations < 1:
            raise ValueError(
                f"bootstrap_iterations must be a positive int, got {self.bootstrap_iterations!r}"
            )
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"seed must be a non-negative int or None, got {self.seed!r}")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The settings a bench run used, after resolving options, experiment and defaults."""

    tests: list[str]
    alpha: float
    correction: str
    bootstrap_iterations: int
    seed: int | None
    equal_var: bool
    confidence_level: float


def resolve_settings(opts: BenchOptions, stats: StatsConfig | None) -> Settings:
    """Apply the precedence stage option > ``reliability.stats`` > default."""
    extra: Mapping[str, Any] = (stats.options or {}) if stats is not None else {}

    def pick(option: Any, from_stats: Any, default: Any) -> Any:
        if option is not None:
            return option
        if from_stats is not None:
            return from_stats
        return default

    return Settings(
        tests=list(pick(opts.tests, stats.tests if stats else None, DEFAULT_TESTS)),
        alpha=float(pick(opts.alpha, stats.alpha if stats else None, DEFAULT_ALPHA)),
        correction=str(
            pick(
                opts.correction,
                stats.multiple_testing_correction if stats else None,
                DEFAULT_CORRECTION,
            )
        ),
        bootstrap_iterations=int(
            pick(
                opts.bootstrap_iterations,
                stats.bootstrap_iterations if stats else None,
                DEFAULT_BOOTSTRAP_ITERATIONS,
            )
        ),
        seed=pick(opts.seed, extra.get("seed"), None),
        equal_var=bool(pick(opts.equal_var, extra.get("equal_var"), False)),
        confidence_level=float(
            pick(
                opts.confidence_level,
                stats.confidence_level if stats else None,
                DEFAULT_CONFIDENCE_LEVEL,
            )
        ),
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_number_list(value: object) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(_is_number(v) for v in value)


def groups_from_outputs(
    outputs: Sequence[Any], group_by: str, score_key: str | None
) -> dict[str, list[float]]:
    """Group the numeric scores of the dict items of ``outputs`` by ``group_by``.

    An item without ``group_by`` (or with ``None`` there) joins the :data:`MISSING_GROUP`
    group; items that are not dicts or hold no number are skipped, with a logged warning.
    """
    groups: dict[str, list[float]] = {}
    keys = (score_key,) if score_key is not None else SCORE_KEYS
    skipped = 0
    for item in outputs:
        if not isinstance(item, Mapping):
            skipped += 1
            continue
        score = next((item[k] for k in keys if _is_number(item.get(k))), None)
        if score is None:
            skipped += 1
            continue
        label = item.get(group_by)
        groups.setdefault(MISSING_GROUP if label is None else str(label), []).append(float(score))
    if skipped:
        log.warning(
            "bench: skipped %d of %d output(s) with no numeric %s; give score_key to choose "
            "the field",
            skipped,
            len(outputs),
            " or ".join(repr(k) for k in keys),
        )
    return groups


def groups_from_metrics(
    metrics: Mapping[str, Any], keys: Sequence[str] | None
) -> dict[str, list[float]]:
    """Return the metrics named in ``keys`` (default: every list-of-numbers metric).

    Raises:
        ValueError: a named metric is absent or is not a list of numbers.
    """
    if keys is None:
        return {k: [float(x) for x in v] for k, v in metrics.items() if _is_number_list(v)}
    groups: dict[str, list[float]] = {}
    for key in keys:
        if key not in metrics:
            known = ", ".join(sorted(metrics)) or "(none)"
            raise ValueError(f"metric {key!r} not found; metrics present: {known}")
        value = metrics[key]
        if not _is_number_list(value):
            raise ValueError(f"metric {key!r} is not a list of numbers: {value!r}")
        groups[key] = [float(x) for x in value]
    return groups


def _groups_from_callable(result: object, source: object) -> dict[str, list[float]]:
    if not isinstance(result, Mapping):
        raise TypeError(
            f"bench data_source {describe_plugin(source)} returned {type(result).__name__}, "
            "expected a mapping of group name to a list of numbers"
        )
    return {str(name): list(values) for name, values in result.items()}


def compute(groups: Mapping[str, Sequence[float]], settings: Settings) -> dict[str, Any]:
    """Run the analysis and the per-group summary (blocking: call it in a worker thread)."""
    results = _stats.analyze(
        groups,
        tests=settings.tests,
        alpha=settings.alpha,
        correction=settings.correction,
        bootstrap_iterations=settings.bootstrap_iterations,
        seed=settings.seed,
        equal_var=settings.equal_var,
        confidence_level=settings.confidence_level,
    )
    group_stats: dict[str, Any] = {}
    if not results.get("no_data"):
        for name in sorted(groups):
            summary = _groups._describe_one(
                name, [float(v) for v in groups[name]], settings.confidence_level
            )
            summary.pop("tests_skipped", None)
            summary.pop("group", None)
            group_stats[name] = summary
    return {"results": results, "group_stats": group_stats}


class BenchStage(Stage):
    """Compare numeric groups with statistical tests; see the module docstring.

    Raises:
        MissingDependency: scipy is not installed (``pip install 'crucible-actors[bench]'``).
        ValueError: bad settings, or a group with fewer than 2 values (from ``analyze``).
        TypeError: a ``data_source`` callable returned something other than a mapping.
    """

    name = "bench"
    description = (
        "Statistical benchmarking of groups: t-tests, non-parametric tests, bootstrap, ANOVA"
    )
    Options = BenchOptions

    def __init__(self, *, now: Callable[[], datetime] | None = None) -> None:
        self._now = now if now is not None else functools.partial(datetime.now, UTC)

    async def run(self, ctx: Context, opts: BenchOptions) -> Context:
        """Collect the groups, analyze them and store ``metrics["bench"]``."""
        await anyio.to_thread.run_sync(_stats.require_scipy)
        reliability = ctx.experiment.reliability
        settings = resolve_settings(opts, reliability.stats if reliability else None)
        groups = await self._collect(ctx, opts)
        computed = await anyio.to_thread.run_sync(compute, groups, settings)
        return ctx.put_metric(
            "bench",
            {
                "tests_run": settings.tests,
                "alpha": settings.alpha,
                "correction": settings.correction,
                "results": computed["results"],
                "group_stats": computed["group_stats"],
                "timestamp": self._now().isoformat(),
            },
        )

    async def _collect(self, ctx: Context, opts: BenchOptions) -> dict[str, list[float]]:
        source = opts.data_source
        if source == "outputs":
            return groups_from_outputs(ctx.outputs, opts.group_by, opts.score_key)
        if source == "metrics":
            return groups_from_metrics(ctx.metrics, opts.keys)
        if isinstance(source, str):
            source = await anyio.to_thread.run_sync(
                functools.partial(load_ref, source, option="data_source")
            )
        if not callable(source):
            raise TypeError(
                f"bench data_source {describe_plugin(source)} is not callable; "
                "give a function (ctx) -> {group: [numbers]}"
            )
        return _groups_from_callable(await call_plugin(source, ctx), source)
