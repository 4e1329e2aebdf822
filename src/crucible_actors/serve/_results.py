"""Results for the dashboard: run columns, sorting and filtering, sweep pages and outputs.

:class:`Results` belongs to one :class:`~._service.Service`. It answers the parts of the
API that look at what runs produced rather than how they ran:

- the columns of ``GET /api/runs?columns=...`` (a run's metrics and parameters, read by
  the core's ``run_columns`` from the run's metrics, its own stored definition and its
  sweep point), and the server-side sort and filters;
- ``GET /api/runs/columns``: the column paths the recent runs have;
- ``GET /api/sweeps/{id}``: a sweep's points with their runs' metrics, repeats
  summarised as mean, standard deviation and count;
- ``GET /api/runs/{id}/outputs``: a page of a run's per-example outputs, searched.

Which sweep a run belongs to is read from the store's sweep tables once per sweep and
kept: a sweep's points never change after it is recorded, so the index only grows by the
sweeps recorded since the last look (one cheap query per request that needs it).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Final

import msgspec

from .._core import load_definitions, parse_columns, run_columns
from ._errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .._core import RunRecord, Store, SweepPointRecord, SweepRecord

__all__ = [
    "MAX_SCAN",
    "RUN_FIELDS",
    "Filter",
    "Results",
    "SweepIndex",
    "available_columns",
    "check_column",
    "matches",
    "page_outputs",
    "parse_columns_param",
    "parse_filter",
    "parse_sort",
    "sort_key",
    "summarise",
]

#: Runs a sorted or filtered listing reads at most (newest first); the answer says when
#: it stopped early (``truncated``).
MAX_SCAN: Final = 50_000

#: RunSummary fields the runs list can also sort and filter by.
RUN_FIELDS: Final = ("id", "experiment_id", "status", "started_at", "finished_at", "duration")

_FILTER = re.compile(r"^(?P<col>[^<>=!~]+?)\s*(?P<op>>=|<=|!=|=|>|<|~)\s*(?P<value>.*)$", re.S)
_OPS: Final = (">=", "<=", "!=", "=", ">", "<", "~")
_json = msgspec.json.Encoder()


#: Columns one runs-list request may ask for.
MAX_COLUMNS: Final = 50


def _bad(message: str) -> ApiError:
    return ApiError(422, message[:300], type="InvalidParameter")


def check_column(path: str, what: str) -> str:
    """Return ``path`` if it is a run field or a valid column path, else raise a 422."""
    if path in RUN_FIELDS:
        return path
    try:
        parse_columns([path])
    except ValueError as exc:
        raise _bad(f"{what}: {exc}; or one of {', '.join(RUN_FIELDS)}") from exc
    return path


def parse_columns_param(values: Iterable[str]) -> list[str]:
    """Return the column paths of ``columns`` query values (comma-separated or repeated).

    Raises:
        ApiError: 422 naming the malformed path and the accepted forms.
    """
    try:
        paths = parse_columns(",".join(values))
    except ValueError as exc:
        raise _bad(f"columns: {exc}") from exc
    if len(paths) > MAX_COLUMNS:
        raise _bad(f"columns: at most {MAX_COLUMNS} columns, got {len(paths)}; choose fewer")
    return paths


def parse_sort(value: str | None) -> tuple[str | None, bool]:
    """Return ``(column, descending)`` of a ``sort`` value (``-`` first: descending)."""
    if not value:
        return None, False
    descending = value.startswith("-")
    column = value[1:] if descending else value
    return check_column(column, "sort"), descending


class Filter(msgspec.Struct, frozen=True):
    """One ``filter`` of the runs list: ``column op value``."""

    column: str
    op: str
    value: str


def parse_filter(text: str) -> Filter:
    """Parse ``<column><op><value>``, op one of ``= != > >= < <= ~`` (``~``: contains).

    Raises:
        ApiError: 422 when ``text`` has no operator or names a bad column.
    """
    found = _FILTER.match(text.strip())
    if found is None:
        raise _bad(
            f"filter: expected <column><op><value> with op one of {' '.join(_OPS)} "
            f"(e.g. metrics.accuracy>=0.9), got {text!r}"
        )
    column = check_column(found["col"].strip(), "filter")
    return Filter(column, found["op"], found["value"].strip())


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return _json.encode(value).decode()


def matches(value: Any, flt: Filter) -> bool:
    """Whether a cell ``value`` passes ``flt``.

    Numbers compare as numbers when the filter value is one; everything else compares
    as text, case-insensitively. A missing value passes only ``!=``.
    """
    if value is None:
        return flt.op == "!="
    op = flt.op
    if op == "~":
        return flt.value.lower() in _text(value).lower()
    number = _number(value)
    try:
        wanted: float | None = float(flt.value)
    except ValueError:
        wanted = None
    if number is not None and wanted is not None:
        left: Any = number
        right: Any = wanted
    else:
        left, right = _text(value).lower(), flt.value.lower()
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    return bool(left <= right)


def sort_key(value: Any) -> tuple[int, float, str]:
    """Order cells: numbers (and booleans) by value, then text; a missing value sorts last."""
    if value is None:
        return (2, 0.0, "")
    number = _number(value)
    if number is None and isinstance(value, bool):
        number = float(value)
    if number is not None and not math.isnan(number):
        return (0, number, "")
    return (1, 0.0, _text(value))


def summarise(values: Sequence[Any]) -> dict[str, Any] | None:
    """Return ``{"mean", "sd", "n", "min", "max"}`` of the numbers among ``values``.

    ``sd`` is the sample standard deviation (None for a single value); None when no value
    is a number.
    """
    numbers = [v for v in (_number(x) for x in values) if v is not None and math.isfinite(v)]
    n = len(numbers)
    if n == 0:
        return None
    mean = math.fsum(numbers) / n
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in numbers) / (n - 1)) if n > 1 else None
    return {"mean": mean, "sd": sd, "n": n, "min": min(numbers), "max": max(numbers)}


def _numeric_leaves(value: Any, prefix: str, out: dict[str, None]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _numeric_leaves(inner, f"{prefix}.{key}" if prefix else str(key), out)
    elif _number(value) is not None and prefix:
        out[prefix] = None


def _option_leaves(value: Any, prefix: str, out: dict[str, None]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _option_leaves(inner, f"{prefix}.{key}", out)
    else:
        out[prefix] = None


def available_columns(
    rows: Iterable[tuple[Any, dict[str, Any] | None, dict[str, Any] | None]],
) -> dict[str, Any]:
    """Return the column paths of runs given as ``(metrics, definition, sweep parameters)``.

    ``metrics``: the paths of numeric metrics (nested tables flattened with dots);
    ``params``: the options the definitions set, except the swept ones; ``sweep``: the
    swept options. Each list is sorted.
    """
    metrics: dict[str, None] = {}
    params: dict[str, None] = {}
    swept: dict[str, None] = {}
    seen: set[int] = set()
    for run_metrics, definition, parameters in rows:
        _numeric_leaves(run_metrics, "", metrics)
        for path in parameters or {}:
            swept[f"params.{path}"] = None
        if definition is None or id(definition) in seen:
            continue
        seen.add(id(definition))
        for entry in definition.get("pipeline") or []:
            label = _label(entry)
            options = entry.get("options") if label is not None else None
            if isinstance(options, dict):
                for key, value in options.items():
                    _option_leaves(value, f"params.{label}.{key}", params)
    for path in swept:
        params.pop(path, None)
    return {
        "metrics": [f"metrics.{m}" for m in sorted(metrics)],
        "params": sorted(params),
        "sweep": sorted(swept),
    }


class SweepIndex:
    """Which sweep point each run is, for the sweeps recorded in one store (grows only)."""

    def __init__(self) -> None:
        self.by_run: dict[str, SweepPointRecord] = {}
        self.sweeps: dict[str, SweepRecord] = {}

    async def refresh(self, store: Store) -> None:
        """Read the points of the sweeps recorded since the last refresh."""
        limit = 100
        while True:
            found = await store.list_sweeps(limit=limit)
            new = [s for s in found if s.id not in self.sweeps]
            if len(new) < len(found) or len(found) < limit:
                break
            limit *= 10  # every sweep on the page was new: older ones may be too
        for sweep in reversed(new):
            for point in await store.list_sweep_points(sweep.id):
                self.by_run[point.run_id] = point
            self.sweeps[sweep.id] = sweep


class Results:
    """Columns, sweeps and outputs of one service's store (see the module docstring)."""

    def __init__(self) -> None:
        self.index = SweepIndex()

    async def columns_of(
        self, store: Store, records: Sequence[RunRecord], paths: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Return, per run, ``{path: value}`` for ``paths`` (None where a run has none).

        Options come from each run's own stored definition (see
        ``load_definitions``: one read for all
        the distinct definitions), or its sweep point for the options the sweep varies;
        a run whose requested options are all swept needs no definition.
        """
        if not paths:
            return [{} for _ in records]
        await self.index.refresh(store)
        params = [p.partition(".")[2] for p in paths if p.startswith("params.")]
        points = [self.index.by_run.get(r.id) for r in records]
        needs = [
            i
            for i, point in enumerate(points)
            if any(point is None or p not in point.parameters for p in params)
        ]
        loaded = await load_definitions(store, [records[i] for i in needs])
        definitions: dict[int, dict[str, Any] | None] = dict(zip(needs, loaded, strict=True))
        return [
            run_columns(
                record,
                paths,
                definition=definitions.get(i),
                parameters=point.parameters if point is not None else None,
            )
            for i, (record, point) in enumerate(zip(records, points, strict=True))
        ]

    async def available(self, store: Store, records: Sequence[RunRecord]) -> dict[str, Any]:
        """Return the column paths ``records`` have (see :func:`available_columns`)."""
        await self.index.refresh(store)
        definitions = await load_definitions(store, records)
        rows = []
        for record, definition in zip(records, definitions, strict=True):
            point = self.index.by_run.get(record.id)
            rows.append(
                (record.metrics, definition, point.parameters if point is not None else None)
            )
        return available_columns(rows)

    async def sweep_of(self, store: Store, run_id: str) -> SweepPointRecord | None:
        """Return the sweep point ``run_id`` was, or None when it is not part of a sweep."""
        await self.index.refresh(store)
        return self.index.by_run.get(run_id)

    async def sweep_ids(self, store: Store, run_ids: Iterable[str]) -> dict[str, str]:
        """Return ``{run id: sweep id}`` for the runs among ``run_ids`` that are in a sweep."""
        await self.index.refresh(store)
        by_run = self.index.by_run
        return {r: by_run[r].sweep_id for r in run_ids if r in by_run}

    async def sweep(self, store: Store, sweep_id: str) -> dict[str, Any]:
        """Return the SweepDetail of ``sweep_id`` (404 when unknown)."""
        sweep = await store.get_sweep(sweep_id)
        if sweep is None:
            raise ApiError(
                404,
                f"no sweep with id {sweep_id!r}"[:300],
                type="SweepNotFound",
                details={"sweep_id": sweep_id},
            )
        points = await store.list_sweep_points(sweep_id)
        runs: dict[str, RunRecord | None] = {}
        for p in points:
            runs[p.run_id] = await _get_run(store, p.run_id)
        by_point: dict[int, list[SweepPointRecord]] = {}
        for p in points:
            by_point.setdefault(p.point, []).append(p)
        metric_names: dict[str, None] = {}
        for record in runs.values():
            if record is not None:
                _numeric_leaves(record.metrics, "", metric_names)
        names = sorted(metric_names)
        out_points = []
        for point, members in sorted(by_point.items()):
            members.sort(key=lambda p: p.repeat)
            member_runs: list[dict[str, Any]] = []
            for p in members:
                record = runs[p.run_id]
                values = (
                    run_columns(record, [f"metrics.{m}" for m in names])
                    if record is not None
                    else {}
                )
                member_runs.append(
                    {
                        "run_id": p.run_id,
                        "repeat": p.repeat,
                        "seed": p.seed,
                        "status": record.status if record is not None else "deleted",
                        "metrics": {m: values.get(f"metrics.{m}") for m in names},
                    }
                )
            completed = [r for r in member_runs if r["status"] == "completed"]
            out_points.append(
                {
                    "point": point,
                    "parameters": members[0].parameters,
                    "runs": member_runs,
                    "summary": {m: summarise([r["metrics"][m] for r in completed]) for m in names},
                }
            )
        definition = sweep.sweep
        return {
            "id": sweep.id,
            "experiment_id": sweep.experiment_id,
            "status": sweep.status,
            "runs": sweep.runs,
            "created_at": _iso(sweep.created_at),
            "finished_at": _iso(sweep.finished_at),
            "mode": definition.get("mode", "grid"),
            "repeats": definition.get("repeats", 1),
            "parameters": definition.get("parameters", {}),
            "metrics": names,
            "points": out_points,
        }


async def _get_run(store: Store, run_id: str) -> RunRecord | None:
    from .._core import RunNotFound

    try:
        return await store.get_run(run_id)
    except RunNotFound:
        return None


def _iso(value: Any) -> str | None:
    from ._views import iso

    return iso(value)


def _label(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    name = entry.get("name")
    if isinstance(name, str) and name:
        return name
    stage = entry.get("stage")
    if not isinstance(stage, str) or not stage:
        return None
    return stage.rpartition(":")[2].rpartition(".")[2] or stage


def page_outputs(
    outputs: Sequence[Any], *, offset: int, limit: int, query: str | None
) -> dict[str, Any]:
    """Return one page of ``outputs`` (those containing ``query``, case-insensitively).

    Each entry is ``{"index", "value"}``, ``index`` its position among all the outputs;
    ``fields`` lists the keys of the mapping outputs on the page, in first-seen order.
    """
    if query:
        needle = query.lower()
        picked = [
            (i, o)
            for i, o in enumerate(outputs)
            if needle in (o.lower() if isinstance(o, str) else _json.encode(o).decode().lower())
        ]
    else:
        picked = list(enumerate(outputs))
    page = picked[offset : offset + limit]
    fields: dict[str, None] = {}
    for _, value in page:
        if isinstance(value, dict):
            fields.update(dict.fromkeys(map(str, value)))
    return {
        "total": len(outputs),
        "matched": len(picked),
        "offset": offset,
        "limit": limit,
        "query": query or "",
        "fields": list(fields),
        "outputs": [{"index": i, "value": v} for i, v in page],
    }
