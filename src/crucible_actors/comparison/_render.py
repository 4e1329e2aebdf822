"""Render a :class:`~._compare.Comparison`: a text table, Markdown, JSON, or an HTML page.

The HTML page is self-contained (inline CSS and SVG, no script, no external request; the
page shell, stylesheet, tables and cells are the shared rendering kit's,
:mod:`crucible_actors._render_kit`, as for the report stage and traces): a
distribution plot of each group's scores (dots, quartile box, mean), a forest plot of
the mean differences against the baseline with their intervals, and, when paired, the
per-example differences of each comparison. The dashboard serves the same page.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, TypeAlias, get_args

import msgspec

from .._render_kit import escape, html_table, md_table, number, page
from ._verdict import EFFECT_SYMBOLS

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._result import Comparison, PairComparison

__all__ = ["FORMATS", "Format", "render"]

#: An output format of :func:`render`.
Format: TypeAlias = Literal["table", "markdown", "json", "html"]
FORMATS: tuple[Format, ...] = get_args(Format)


def _ci(ci: Sequence[float | None] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "-"
    return f"[{number(ci[0], 3)}, {number(ci[1], 3)}]"


def _p(c: PairComparison) -> str:
    return (
        "-"
        if c.p_value is None
        else (f"{c.p_value:.2e}" if c.p_value < 1e-4 else f"{c.p_value:.4f}")
    )


def _group_rows(cmp: Comparison) -> tuple[list[str], list[list[str]]]:
    level = f"{round(cmp.confidence_level * 100)}% CI"
    headers = ["RANK", "GROUP", "N", "MEAN", "SD", level, "RUNS"]
    if any(g.seed_sd is not None for g in cmp.groups):
        headers.append("SEED SD")
    rank = {label: i + 1 for i, label in enumerate(cmp.ranking)}
    rows = [
        [
            str(rank[g.label]),
            g.label,
            str(g.n),
            number(g.mean),
            number(g.std),
            _ci(g.confidence_interval),
            str(len(g.run_ids)),
            *([number(g.seed_sd, 3)] if len(headers) > 7 else []),
        ]
        for g in sorted(cmp.groups, key=lambda g: rank[g.label])
    ]
    return headers, rows


def _diff(x: float | None, binary: bool) -> str:
    if x is None:
        return "-"
    return f"{x * 100:+.1f} pt" if binary else number(x)


def _diff_ci(ci: Sequence[float | None] | None, binary: bool) -> str:
    if not binary or not ci or ci[0] is None or ci[1] is None:
        return _ci(ci)
    return f"[{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}] pt"


def _pair_rows(cmp: Comparison) -> tuple[list[str], list[list[str]]]:
    level = f"{round(cmp.confidence_level * 100)}% CI"
    headers = ["CANDIDATE", "BASELINE", "DIFF", level, "TEST", "p", "SIG", "EFFECT", "MDE"]
    rows = []
    for c in cmp.comparisons:
        eff = c.effect_size
        symbol = EFFECT_SYMBOLS.get(str(eff.get("name")), str(eff.get("name")))
        test = c.test or "-"
        if c.discordant is not None:
            test += f" b={c.discordant[0]} c={c.discordant[1]}"
        rows.append(
            [
                c.candidate,
                c.baseline,
                _diff(c.mean_difference, cmp.binary),
                _diff_ci(c.mean_difference_ci, cmp.binary),
                test,
                _p(c),
                "yes" if c.significant else "no",
                f"{symbol} = {number(eff.get('value'), 3)} {eff.get('interpretation')}",
                _diff(c.minimum_detectable_effect, cmp.binary).lstrip("+"),
            ]
        )
    return headers, rows


def _tests_line(cmp: Comparison) -> str:
    return f"metric {cmp.metric}, {cmp.design}; alpha {cmp.alpha:g}"


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), *rows]
    )


def _notes(cmp: Comparison) -> list[str]:
    out = list(cmp.notes)
    if cmp.omnibus is not None:
        out.append(str(cmp.omnibus["verdict"]))
    for label, n in cmp.dropped.items():
        what = "" if label == "incomplete points" else "unpaired examples of "
        out.append(f"left out: {n} {what}{label}")
    out += [f"warning: {w}" for w in cmp.warnings]
    return out


def render_table(cmp: Comparison) -> str:
    """Return the comparison as plain-text tables and verdict lines."""
    title = f"sweep {cmp.sweep_id}" if cmp.sweep_id else "runs"
    parts = [f"compare {title}: {_tests_line(cmp)}", "", _text_table(*_group_rows(cmp)), ""]
    parts += [_text_table(*_pair_rows(cmp)), ""]
    parts += [c.verdict for c in cmp.comparisons] if len(cmp.comparisons) > 1 else []
    parts += _notes(cmp)
    parts.append(cmp.verdict)
    return "\n".join(parts) + "\n"


def render_markdown(cmp: Comparison) -> str:
    """Return the comparison as a Markdown section."""
    title = f"sweep `{cmp.sweep_id}`" if cmp.sweep_id else "runs"
    parts = [
        f"## Comparison of {title}",
        "",
        _tests_line(cmp) + ".",
        "",
        "\n".join(md_table(*_group_rows(cmp))),
    ]
    parts += ["", "\n".join(md_table(*_pair_rows(cmp))), ""]
    parts += [f"- {c.verdict}" for c in cmp.comparisons]
    parts += [f"- {n}" for n in _notes(cmp)]
    parts += ["", f"**Verdict:** {cmp.verdict}"]
    return "\n".join(parts) + "\n"


def render_json(cmp: Comparison) -> str:
    """Return the comparison as a JSON document (the Comparison's fields)."""
    return msgspec.json.format(msgspec.json.encode(cmp), indent=2).decode() + "\n"


# -- SVG ------------------------------------------------------------------------------

_W = 720
_LEFT = 200
_RIGHT = 30
_ROW = 34
_PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f")


def _scale(lo: float, hi: float) -> tuple[float, float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _x(v: float, lo: float, hi: float) -> float:
    return _LEFT + (v - lo) / (hi - lo) * (_W - _LEFT - _RIGHT)


def _axis(lo: float, hi: float, y: float) -> list[str]:
    out = [f'<line x1="{_LEFT}" y1="{y}" x2="{_W - _RIGHT}" y2="{y}" stroke="#888"/>']
    for i in range(5):
        v = lo + (hi - lo) * (i / 4)
        x = _x(v, lo, hi)
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#888"/>')
        out.append(
            f'<text x="{x:.1f}" y="{y + 16}" font-size="11" text-anchor="middle">{v:.3g}</text>'
        )
    return out


def _quantile(sorted_xs: Sequence[float], q: float) -> float:
    pos = (len(sorted_xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def _label(text: str, y: float) -> str:
    shown = text if len(text) <= 26 else text[:25] + "\u2026"
    return (
        f'<text x="{_LEFT - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">'
        f"<title>{escape(text)}</title>{escape(shown)}</text>"
    )


def svg_distributions(cmp: Comparison) -> str:
    """Return an SVG of each group's scores: jittered dots, the quartile box and the mean."""
    values = [v for g in cmp.groups for v in g.scores]
    lo, hi = _scale(min(values), max(values))
    height = 20 + _ROW * len(cmp.groups) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot distributions" width="{_W}" '
        f'height="{height}" viewBox="0 0 {_W} {height}" role="img" '
        f'aria-label="{escape(cmp.metric)} per group">'
    ]
    for i, g in enumerate(cmp.groups):
        y = 20 + _ROW * i + _ROW / 2
        color = _PALETTE[i % len(_PALETTE)]
        parts.append(_label(g.label, y))
        xs = sorted(g.scores)
        q1, med, q3 = (_quantile(xs, q) for q in (0.25, 0.5, 0.75))
        parts.append(
            f'<rect x="{_x(q1, lo, hi):.1f}" y="{y - 9:.1f}" '
            f'width="{max(1.0, _x(q3, lo, hi) - _x(q1, lo, hi)):.1f}" height="18" '
            f'fill="{color}" fill-opacity="0.12" stroke="{color}"/>'
        )
        parts.append(
            f'<line x1="{_x(med, lo, hi):.1f}" y1="{y - 9:.1f}" x2="{_x(med, lo, hi):.1f}" '
            f'y2="{y + 9:.1f}" stroke="{color}" stroke-width="2"/>'
        )
        for j, v in enumerate(g.scores):
            jitter = ((j * 7919) % 13 - 6) * 1.1
            parts.append(
                f'<circle class="dot" cx="{_x(v, lo, hi):.1f}" cy="{y + jitter:.1f}" r="2.2" '
                f'fill="{color}" fill-opacity="0.55"/>'
            )
        if g.mean is not None:
            mx = _x(g.mean, lo, hi)
            parts.append(
                f'<path d="M{mx:.1f},{y - 6:.1f} l5,6 l-5,6 l-5,-6 z" fill="#111">'
                f"<title>mean {g.mean:.4g}</title></path>"
            )
    parts += _axis(lo, hi, 20 + _ROW * len(cmp.groups) + 4)
    parts.append("</svg>")
    return "".join(parts)


def svg_differences(cmp: Comparison) -> str:
    """Return an SVG forest plot: each comparison's mean difference and interval vs 0."""
    points: list[float] = [0.0]
    for c in cmp.comparisons:
        points += [v for v in (c.mean_difference, *(c.mean_difference_ci or ())) if v is not None]
    lo, hi = _scale(min(points), max(points))
    height = 20 + _ROW * len(cmp.comparisons) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot differences" width="{_W}" '
        f'height="{height}" viewBox="0 0 {_W} {height}" role="img" '
        f'aria-label="differences against the baseline">'
    ]
    zero = _x(0.0, lo, hi)
    parts.append(
        f'<line x1="{zero:.1f}" y1="10" x2="{zero:.1f}" y2="{height - 26}" stroke="#999" '
        'stroke-dasharray="4 3"/>'
    )
    for i, c in enumerate(cmp.comparisons):
        y = 20 + _ROW * i + _ROW / 2
        parts.append(_label(c.candidate, y))
        color = "#059669" if c.significant else "#6b7280"
        ci = c.mean_difference_ci
        if ci and ci[0] is not None and ci[1] is not None:
            parts.append(
                f'<line x1="{_x(ci[0], lo, hi):.1f}" y1="{y}" x2="{_x(ci[1], lo, hi):.1f}" '
                f'y2="{y}" stroke="{color}" stroke-width="3"/>'
            )
        if c.mean_difference is not None:
            parts.append(
                f'<circle class="diff" cx="{_x(c.mean_difference, lo, hi):.1f}" cy="{y}" r="5" '
                f'fill="{color}"><title>{c.mean_difference:.4g}</title></circle>'
            )
    parts += _axis(lo, hi, 20 + _ROW * len(cmp.comparisons) + 4)
    parts.append("</svg>")
    return "".join(parts)


def svg_paired(cmp: Comparison, c: PairComparison) -> str:
    """Return an SVG of the per-example differences (candidate - baseline) of one comparison."""
    by_label = {g.label: g for g in cmp.groups}
    base, cand = by_label[c.baseline], by_label[c.candidate]
    diffs = [y - x for x, y in zip(base.scores, cand.scores, strict=True)]
    lo, hi = _scale(min([*diffs, 0.0]), max([*diffs, 0.0]))
    height = 90
    y = 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot paired" width="{_W}" '
        f'height="{height}" viewBox="0 0 {_W} {height}" role="img" '
        f'aria-label="per-example differences">',
        _label(f"{c.candidate} \u2212 {c.baseline}", y),
    ]
    zero = _x(0.0, lo, hi)
    parts.append(
        f'<line x1="{zero:.1f}" y1="12" x2="{zero:.1f}" y2="62" stroke="#999" '
        'stroke-dasharray="4 3"/>'
    )
    for j, (key, d) in enumerate(zip(cmp.keys, diffs, strict=True)):
        jitter = ((j * 7919) % 17 - 8) * 1.5
        color = "#059669" if d > 0 else ("#dc2626" if d < 0 else "#6b7280")
        parts.append(
            f'<circle class="pair" cx="{_x(d, lo, hi):.1f}" cy="{y + jitter:.1f}" r="2.6" '
            f'fill="{color}" fill-opacity="0.7">'
            f"<title>{escape(str(key))}: {d:.4g}</title></circle>"
        )
    parts += _axis(lo, hi, 68)
    parts.append("</svg>")
    return "".join(parts)


def render_html(cmp: Comparison, *, title: str | None = None) -> str:
    """Return a self-contained HTML page of the comparison with inline SVG plots."""
    heading = title or (f"Sweep {cmp.sweep_id}" if cmp.sweep_id else "Comparison of runs")
    parts = [
        f"<header><h1>{escape(heading)}</h1>",
        f'<p class="verdict" id="verdict">{escape(cmp.verdict)}</p>',
        f'<p class="note">{escape(_tests_line(cmp))}</p></header>',
        "<section><h2>Groups</h2>",
        html_table(*_group_rows(cmp), "groups"),
        f"<h2>Distribution of {escape(cmp.metric)}</h2>",
        svg_distributions(cmp),
        "</section><section><h2>Differences against the baseline</h2>",
        html_table(*_pair_rows(cmp), "comparisons"),
        svg_differences(cmp),
    ]
    parts += [f'<p class="note">{escape(c.verdict)}</p>' for c in cmp.comparisons]
    parts.append("</section>")
    if cmp.paired:
        parts.append("<section><h2>Per-example differences</h2>")
        parts += [svg_paired(cmp, c) for c in cmp.comparisons]
        parts.append("</section>")
    notes = _notes(cmp)
    if notes:
        parts.append("<section>")
        parts += [f'<p class="note">{escape(n)}</p>' for n in notes]
        parts.append("</section>")
    return page(heading, "".join(parts))


def render(cmp: Comparison, format: Format = "table") -> str:
    """Return ``cmp`` in ``format``: one of :data:`FORMATS`.

    Raises:
        ValueError: an unknown format.
    """
    renderers: dict[str, Callable[[Comparison], str]] = {
        "table": render_table,
        "markdown": render_markdown,
        "json": render_json,
        "html": render_html,
    }
    fn = renderers.get(format)
    if fn is None:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    return fn(cmp)
