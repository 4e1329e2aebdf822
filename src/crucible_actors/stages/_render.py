"""Renderers of the ``report`` stage: a Context to Markdown, JSON, HTML or CSV text.

Pure functions, no IO. All four read the same summary of the run (:func:`stage_rows`, the
metrics, the ``bench`` metric), so the formats agree with each other:

- Markdown: headings and tables for the run, the stages, the metrics and the bench results;
- JSON: the run as data, made JSON-safe first (tuples, sets, enums, datetimes, odd
  objects and non-string keys never make it fail);
- HTML: one self-contained page (inline CSS and SVG, no script, nothing fetched) with
  every value escaped; the page shell, stylesheet, tables and cells are the shared
  rendering kit's (:mod:`crucible_actors._render_kit`), as for traces and comparisons;
- CSV: ``metric,value`` rows with nested keys and list indices joined by dots.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec

from .._core import to_json_safe
from .._render_kit import cards, html_table, md_cell, md_table, number, page
from .._render_kit import escape as _e

if TYPE_CHECKING:
    from .._core import Context

__all__ = [
    "EXTENSIONS",
    "RENDERERS",
    "flatten",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "stage_rows",
]

_MAX_CELL = 200


# --- the shared summary ------------------------------------------------------------------


def _stage_durations(ctx: Context) -> dict[str, float]:
    """Return seconds per stage from the trace's start/complete events (empty without one)."""
    if ctx.trace is None:
        return {}
    started: dict[str, Any] = {}
    durations: dict[str, float] = {}
    for event in ctx.trace.events:
        if event.stage_id is None:
            continue
        if event.type in ("stage_start", "stage_started"):
            started[event.stage_id] = event.timestamp
        elif event.type in ("stage_complete", "stage_completed", "stage_failed"):
            begin = started.get(event.stage_id)
            if begin is not None:
                try:
                    durations[event.stage_id] = (event.timestamp - begin).total_seconds()
                except TypeError:  # naive and aware timestamps mixed in a hand-built trace
                    continue
    return durations


def stage_rows(ctx: Context) -> list[dict[str, Any]]:
    """Return ``{"index", "stage", "status", "duration", "this_stage"}`` per StageDef, in order.

    ``status`` is ``completed``, ``skipped`` or ``pending``; ``duration`` is in seconds when
    the run was traced, else None. Inside a run the stage rendering the report (the one in
    ``ctx.telemetry_context["stage"]``) is ``completed`` with ``this_stage`` true: the
    report is its last act, and a report that cannot be delivered fails that stage, so a
    delivered report never describes its own stage as still running.
    """
    completed = set(ctx.completed_stages())
    skipped = set(ctx.assigns.get("skipped_stages", ()))
    current = ctx.telemetry_context.get("stage")
    durations = _stage_durations(ctx)
    rows = []
    for index, stage_def in enumerate(ctx.experiment.pipeline, 1):
        label = stage_def.label
        if label in completed or label == current:
            status = "completed"
        elif label in skipped or not stage_def.enabled:
            status = "skipped"
        else:
            status = "pending"
        rows.append(
            {
                "index": index,
                "stage": label,
                "status": status,
                "duration": durations.get(label),
                "this_stage": label == current,
            }
        )
    return rows


def _completed_text(rows: list[dict[str, Any]]) -> str:
    """Return ``"5 of 5"``, with ``" (1 skipped)"`` when stages were skipped."""
    done = sum(1 for r in rows if r["status"] == "completed")
    skipped = sum(1 for r in rows if r["status"] == "skipped")
    return f"{done} of {len(rows)}" + (f" ({skipped} skipped)" if skipped else "")


def _status_text(row: Mapping[str, Any]) -> str:
    return f"{row['status']} (this stage)" if row["this_stage"] else str(row["status"])


def _duration_text(seconds: float | None) -> str:
    return f"{seconds:.3f} s" if seconds is not None else "-"


def _bench(ctx: Context) -> Mapping[str, Any] | None:
    bench = ctx.metrics.get("bench")
    if isinstance(bench, Mapping) and isinstance(bench.get("results"), Mapping):
        return bench
    return None


def _plain_metrics(ctx: Context) -> dict[str, Any]:
    """The metrics without the ``bench`` result, which has its own section."""
    bench = _bench(ctx)
    return {k: v for k, v in ctx.metrics.items() if not (k == "bench" and bench is not None)}


def flatten(value: Any, prefix: str = "", *, lists: bool = False) -> list[tuple[str, Any]]:
    """Return ``(dotted key, leaf)`` pairs; lists are leaves unless ``lists`` is true.

    An empty mapping or list is a leaf, except at the top, where it gives no pairs.
    """
    if not prefix and isinstance(value, Mapping | list | tuple) and not value:
        return []
    if isinstance(value, Mapping) and value:
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out += flatten(item, f"{prefix}.{key}" if prefix else str(key), lists=lists)
        return out
    if lists and isinstance(value, list | tuple) and value:
        out = []
        for index, item in enumerate(value):
            out += flatten(item, f"{prefix}.{index}" if prefix else str(index), lists=lists)
        return out
    return [(prefix, value)]


def _compact_json(value: Any) -> str:
    return msgspec.json.encode(to_json_safe(value)).decode()


def _cell(value: Any) -> str:
    """Return a short human-readable rendering of a metric value."""
    if value is None or isinstance(value, bool | int | float):
        text = number(value, 6)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list | tuple) and all(
        v is None or isinstance(v, bool | int | float | str) for v in value
    ):
        shown = ", ".join(number(v, 6) if not isinstance(v, str) else v for v in value[:10])
        more = f", ... ({len(value)} items)" if len(value) > 10 else ""
        text = f"[{shown}{more}]"
    else:
        text = _compact_json(value)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 3] + "..."


# --- bench -----------------------------------------------------------------------------


def _group_points(bench: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    stats = bench.get("group_stats")
    if isinstance(stats, Mapping) and stats:
        return [(str(name), s) for name, s in stats.items() if isinstance(s, Mapping)]
    results = bench["results"]
    if "group" in results and "mean" in results:
        return [(str(results["group"]), results)]
    return []


def _ci_text(ci: Any) -> str:
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"[{number(ci[0])}, {number(ci[1])}]"
    return "-"


def _test_rows(results: Mapping[str, Any]) -> list[list[str]]:
    tests = results.get("test_results")
    if not isinstance(tests, Mapping):
        return []
    rows = []
    for name, entry in tests.items():
        if not isinstance(entry, Mapping):
            continue
        if "skipped" in entry:
            rows.append([str(name), "-", "-", "-", "-", f"skipped: {entry['skipped']}"])
            continue
        rows.append(
            [
                str(name),
                number(entry.get("statistic")),
                number(entry.get("p_value")),
                number(entry.get("p_value_adjusted")) if "p_value_adjusted" in entry else "-",
                "yes" if entry.get("significant") else "no",
                str(entry.get("interpretation", "")),
            ]
        )
    return rows


_TEST_HEADER: Final = [
    "Test",
    "Statistic",
    "p-value",
    "Adjusted p",
    "Significant",
    "Interpretation",
]
_GROUP_HEADER: Final = ["Group", "n", "Mean", "Std", "Confidence interval"]


def _group_rows(bench: Mapping[str, Any]) -> list[list[str]]:
    return [
        [
            name,
            number(s.get("n")),
            number(s.get("mean")),
            number(s.get("std")),
            _ci_text(s.get("confidence_interval")),
        ]
        for name, s in _group_points(bench)
    ]


def _effect_rows(results: Mapping[str, Any]) -> list[list[str]]:
    effect = results.get("effect_size")
    if not isinstance(effect, Mapping):
        return []
    return [[str(k), v if isinstance(v, str) else number(v)] for k, v in effect.items()]


def _bench_summary(bench: Mapping[str, Any]) -> str:
    tests = bench.get("tests_run")
    names = ", ".join(map(str, tests)) if isinstance(tests, list | tuple) else str(tests)
    parts = [f"tests: {names}", f"alpha: {number(bench.get('alpha'))}"]
    if "correction" in bench:
        parts.append(f"correction: {bench['correction']}")
    return "; ".join(parts)


# --- markdown --------------------------------------------------------------------------------


def _title(ctx: Context) -> str:
    return ctx.experiment.name or ctx.experiment_id


def render_markdown(ctx: Context) -> str:
    """Render the run as Markdown: summary, stages, metrics and bench tables."""
    rows = stage_rows(ctx)
    lines = [f"# Experiment {md_cell(_title(ctx))}", ""]
    if ctx.experiment.description:
        lines += [md_cell(ctx.experiment.description), ""]
    lines += md_table(
        ["Field", "Value"],
        [
            ["Experiment", ctx.experiment_id],
            ["Run", ctx.run_id],
            ["Stages completed", _completed_text(rows)],
        ],
    )
    lines += ["", "## Stages", ""]
    timed = any(r["duration"] is not None for r in rows)
    header = ["#", "Stage", "Status", *(["Duration"] if timed else [])]
    stage_table = [
        [
            str(r["index"]),
            r["stage"],
            _status_text(r),
            *([_duration_text(r["duration"])] if timed else []),
        ]
        for r in rows
    ]
    lines += md_table(header, stage_table)
    lines += ["", "## Metrics", ""]
    metrics = flatten(_plain_metrics(ctx))
    if metrics:
        lines += md_table(["Metric", "Value"], [[k, _cell(v)] for k, v in metrics])
    else:
        lines.append("No metrics recorded.")
    lines.append("")
    bench = _bench(ctx)
    if bench is not None:
        lines += ["## Bench results", "", md_cell(_bench_summary(bench)), ""]
        results = bench["results"]
        if results.get("no_data"):
            lines += ["No data available for analysis.", ""]
        group_rows = _group_rows(bench)
        if group_rows:
            lines += ["### Groups", "", *md_table(_GROUP_HEADER, group_rows), ""]
        if "tests_skipped" in results:
            lines += [md_cell(results["tests_skipped"]), ""]
        test_rows = _test_rows(results)
        if test_rows:
            lines += ["### Tests", "", *md_table(_TEST_HEADER, test_rows), ""]
        effect_rows = _effect_rows(results)
        if effect_rows:
            lines += ["### Effect size", "", *md_table(["Measure", "Value"], effect_rows), ""]
    lines += ["## Outputs", "", f"{len(ctx.outputs)} output(s) recorded before this report."]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- json ------------------------------------------------------------------------------------


def render_json(ctx: Context) -> str:
    """Render the run as indented JSON; odd values are made JSON-safe, never fatal."""
    document = {
        "experiment_id": ctx.experiment_id,
        "run_id": ctx.run_id,
        "experiment": {
            "id": ctx.experiment.id,
            "name": ctx.experiment.name,
            "description": ctx.experiment.description,
        },
        "stages": stage_rows(ctx),
        "metrics": {str(k): to_json_safe(v) for k, v in ctx.metrics.items()},
        "outputs": [to_json_safe(item) for item in ctx.outputs],
        "artifacts": {str(k): to_json_safe(v) for k, v in ctx.artifacts.items()},
    }
    return msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n"


# --- csv -------------------------------------------------------------------------------------


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int | str):
        return str(value) if not isinstance(value, float) else repr(value)
    if isinstance(value, Mapping | list | tuple):  # only empty ones reach here
        return _compact_json(value)
    return str(to_json_safe(value))


def render_csv(ctx: Context) -> str:
    """Render the metrics as ``metric,value`` rows, nested keys and indices dotted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "value"])
    for key, value in flatten(to_json_safe(ctx.metrics), lists=True):
        writer.writerow([key, _csv_value(value)])
    return buffer.getvalue()


# --- html ------------------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def svg_means(points: list[tuple[str, Mapping[str, Any]]]) -> str:
    """Return an inline SVG plotting each group's mean with its confidence interval."""
    marks = []
    for name, s in points:
        mean = _finite(s.get("mean"))
        if mean is None:
            continue
        ci = s.get("confidence_interval")
        lo = hi = None
        if isinstance(ci, list | tuple) and len(ci) == 2:
            lo, hi = _finite(ci[0]), _finite(ci[1])
        marks.append((name, mean, lo, hi))
    if not marks:
        return ""
    values = [v for _, m, lo, hi in marks for v in (m, lo, hi) if v is not None]
    vmin, vmax = min(values), max(values)
    if vmax == vmin:
        vmin, vmax = vmin - (abs(vmin) or 1.0) * 0.5, vmax + (abs(vmax) or 1.0) * 0.5
    pad = (vmax - vmin) * 0.1
    vmin, vmax = vmin - pad, vmax + pad
    n = len(marks)
    width, height = max(320, 90 + 130 * n), 270
    left, right, top, bottom = 70, width - 20, 16, height - 46

    def y(v: float) -> float:
        return bottom - (v - vmin) / (vmax - vmin) * (bottom - top)

    label = "Group means with confidence intervals"
    parts = [
        f'<svg class="plot means" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{label}"><title>{label}</title>',
    ]
    for step in range(5):
        value = vmin + (vmax - vmin) * step / 4
        ty = y(value)
        parts.append(
            f'<line class="grid" x1="{left}" y1="{ty:.1f}" x2="{right}" y2="{ty:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end">'
            f"{_e(number(value, 3))}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>'
        f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>'
    )
    slot = (right - left) / n
    for i, (name, mean, lo, hi) in enumerate(marks):
        cx = left + slot * (i + 0.5)
        if lo is not None and hi is not None:
            parts.append(
                f'<line class="ci" x1="{cx:.1f}" y1="{y(lo):.1f}" x2="{cx:.1f}" y2="{y(hi):.1f}"/>'
                f'<line class="ci" x1="{cx - 9:.1f}" y1="{y(lo):.1f}" x2="{cx + 9:.1f}" '
                f'y2="{y(lo):.1f}"/><line class="ci" x1="{cx - 9:.1f}" y1="{y(hi):.1f}" '
                f'x2="{cx + 9:.1f}" y2="{y(hi):.1f}"/>'
            )
        tip = f"{name}: mean {number(mean)}, CI {_ci_text([lo, hi]) if lo is not None else '-'}"
        short = name if len(name) <= 18 else name[:17] + "\u2026"
        parts.append(
            f'<circle class="mean" cx="{cx:.1f}" cy="{y(mean):.1f}" r="5"><title>{_e(tip)}'
            f'</title></circle><text class="label" x="{cx:.1f}" y="{bottom + 18}" '
            f'text-anchor="middle">{_e(short)}</text>'
            f'<text class="value" x="{cx:.1f}" y="{bottom + 34}" text-anchor="middle">'
            f"{_e(number(mean))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _bench_html(bench: Mapping[str, Any]) -> str:
    results = bench["results"]
    parts = ["<section><h2>Bench results</h2>", f'<p class="muted">{_e(_bench_summary(bench))}</p>']
    if results.get("no_data"):
        parts.append("<p>No data available for analysis.</p>")
    points = _group_points(bench)
    if points:
        parts.append("<h3>Groups</h3>")
        parts.append(html_table(_GROUP_HEADER, _group_rows(bench)))
        parts.append(f"<figure>{svg_means(points)}</figure>")
    if "tests_skipped" in results:
        parts.append(f"<p>{_e(results['tests_skipped'])}</p>")
    test_rows = _test_rows(results)
    if test_rows:
        parts += ["<h3>Tests</h3>", html_table(_TEST_HEADER, test_rows)]
    effect_rows = _effect_rows(results)
    if effect_rows:
        parts += ["<h3>Effect size</h3>", html_table(["Measure", "Value"], effect_rows)]
    parts.append("</section>")
    return "".join(parts)


def render_html(ctx: Context) -> str:
    """Render the run as one self-contained HTML page; every value is escaped."""
    rows = stage_rows(ctx)
    title = _title(ctx)
    summary = cards(
        [
            ("Experiment", ctx.experiment_id),
            ("Run", ctx.run_id),
            ("Stages completed", _completed_text(rows)),
            ("Metrics", str(len(ctx.metrics))),
        ]
    )
    timeline = "".join(
        f'<li class="{_e(r["status"])}"><span class="muted">{r["index"]}</span>'
        f"<span>{_e(r['stage'])}</span>"
        f'<span class="badge {_e(r["status"])}">{_e(_status_text(r))}</span>'
        f'<span class="duration">{_duration_text(r["duration"])}</span></li>'
        for r in rows
    )
    metrics = flatten(_plain_metrics(ctx))
    metrics_html = (
        html_table(["Metric", "Value"], [[k, _cell(v)] for k, v in metrics])
        if metrics
        else "<p>No metrics recorded.</p>"
    )
    bench = _bench(ctx)
    description = (
        f'<p class="muted">{_e(ctx.experiment.description)}</p>'
        if ctx.experiment.description
        else ""
    )
    body = f"""<header><h1>Experiment {_e(title)}</h1>{description}{summary}</header>
<section><h2>Stage timeline</h2><ol class="stages">{timeline}</ol></section>
<section><h2>Metrics</h2>{metrics_html}</section>
{_bench_html(bench) if bench is not None else ""}
<section><h2>Outputs</h2><p>{len(ctx.outputs)} output(s) recorded before this report.</p>
</section>"""
    return page(f"{title} - Report", body)


RENDERERS: Final[dict[str, Callable[[Context], str]]] = {
    "markdown": render_markdown,
    "json": render_json,
    "html": render_html,
    "csv": render_csv,
}

#: File extension per format.
EXTENSIONS: Final = {"markdown": "md", "json": "json", "html": "html", "csv": "csv"}
