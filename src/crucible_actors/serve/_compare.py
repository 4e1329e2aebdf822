"""``GET /api/compare``: the comparison of stored runs (or a sweep's points) over HTTP.

Query: ``runs`` (run ids, comma-separated or repeated; the first is the baseline) or
``sweep`` (a sweep id), and optionally ``metric``, ``pair_by``, ``unpaired``,
``cluster_by``, ``repeats`` (``seeds``/``samples``), ``cv_ratio``, ``correction``,
``alpha``, ``lower_is_better`` and ``format`` (``json``, the default, or ``html``: the same
self-contained page ``crucible-actors compare --format html`` writes, which the
dashboard's compare view shows). Bad input answers 422 (``ComparisonError``), unknown runs
and sweeps 404, a service without a store 503.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import HTMLResponse, Response

from ..comparison import REPEATS, CompareOptions
from ..stats import CORRECTIONS
from ._endpoint import param
from ._errors import ApiError

if TYPE_CHECKING:
    from starlette.datastructures import QueryParams

    from ._service import Service

__all__ = ["COMPARE_PARAMETERS", "compare_answer"]

#: The query parameters, as OpenAPI parameter objects.
COMPARE_PARAMETERS = [
    *(
        param(name)
        for name in (
            "runs",
            "sweep",
            "metric",
            "pair_by",
            "cluster_by",
            "cv_ratio",
            "correction",
            "alpha",
        )
    ),
    param("lower_is_better", schema={"type": "boolean"}),
    param("unpaired", schema={"type": "boolean"}),
    param("repeats", schema={"enum": list(REPEATS)}),
    param("format", schema={"enum": ["json", "html"]}),
]

_MAX_RUNS = 50


def _bad(message: str) -> ApiError:
    return ApiError(422, message[:300], type="InvalidParameter")


def _number(q: QueryParams, name: str, default: str | None) -> tuple[str | None, float]:
    """Return the parameter's text and its value (-1.0 when it is not a number)."""
    text = q.get(name) or default
    if text is None:
        return None, -1.0
    try:
        return text, float(text)
    except ValueError:
        return text, -1.0


def _options(q: QueryParams) -> CompareOptions:
    correction = q.get("correction") or "holm"
    if correction not in CORRECTIONS:
        raise _bad(f"correction: expected one of {', '.join(CORRECTIONS)}, got {correction!r}")
    alpha_text, alpha = _number(q, "alpha", "0.05")
    if not 0 < alpha < 1:
        raise _bad(f"alpha: expected a number strictly between 0 and 1, got {alpha_text!r}")
    repeats = q.get("repeats") or "seeds"
    if repeats not in REPEATS:
        raise _bad(f"repeats: expected 'seeds' or 'samples', got {repeats!r}")
    ratio_text, ratio = _number(q, "cv_ratio", None)
    if ratio_text is not None and not 0 < ratio < 1e9:
        raise _bad(f"cv_ratio: expected n_test / n_train > 0, got {ratio_text!r}")
    return CompareOptions(
        metric=q.get("metric") or None,
        pair_by=q.get("pair_by") or None,
        unpaired=_flag(q.get("unpaired")),
        cluster_by=q.get("cluster_by") or None,
        repeats=repeats,
        test_train_ratio=ratio if ratio_text is not None else None,
        correction=correction,
        alpha=alpha,
        higher_is_better=not _flag(q.get("lower_is_better")),
    )


def _flag(value: str | None) -> bool:
    return (value or "false").lower() in ("1", "true", "on", "yes")


async def compare_answer(service: Service, q: QueryParams) -> Response:
    """Answer ``GET /api/compare`` with query parameters ``q`` for ``service``."""
    from ..comparison import ComparisonError, compare, compare_sweep, render
    from ..comparison._render import render_html

    fmt = q.get("format") or "json"
    if fmt not in ("json", "html"):
        raise _bad(f"format: expected 'json' or 'html', got {fmt!r}")
    run_ids = [r.strip() for value in q.getlist("runs") for r in value.split(",") if r.strip()]
    sweep = q.get("sweep") or None
    if bool(run_ids) == bool(sweep):
        raise _bad("give either runs (two or more run ids) or sweep (a sweep id)")
    if len(run_ids) > _MAX_RUNS:
        raise _bad(f"runs: at most {_MAX_RUNS} runs per comparison, got {len(run_ids)}")
    options = _options(q)
    store = service.store
    if store is None:
        raise ApiError(503, "comparing runs needs a store; start serve with one", type="NoStore")
    if sweep is not None and await store.get_sweep(sweep) is None:
        raise ApiError(404, f"no sweep {sweep!r}", type="SweepNotFound")
    try:
        if sweep is not None:
            result = await compare_sweep(store, sweep, options)
        else:
            result = await compare(store, run_ids, options)
    except ComparisonError as exc:
        raise ApiError(422, str(exc), type="ComparisonError") from exc
    except ValueError as exc:  # an option the statistics refuse
        raise _bad(str(exc)) from exc
    if fmt == "html":
        return HTMLResponse(
            render_html(result),
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )
    return Response(render(result, "json"), media_type="application/json")
