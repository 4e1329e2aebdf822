"""The rendering kit: the page shell, the stylesheet and the cells every report shares.

Three outputs render for people: the ``report`` stage (:mod:`crucible_actors.stages`),
the trace exporters (:mod:`crucible_actors.trace`) and the comparison of runs
(:mod:`crucible_actors.comparison`). They draw from this one kit, so they look alike
and escape alike:

- :func:`page` wraps a body in one self-contained HTML page: doctype, charset, viewport,
  title and the one stylesheet (:data:`CSS`) inlined; no script, font or style is ever
  fetched, so a page can be saved as an artifact or served under
  ``default-src 'none'; style-src 'unsafe-inline'``;
- :func:`escape` is the HTML escaping of every value (``None`` is empty);
- :func:`html_table`, :func:`cards` and :func:`md_table` build the tables and summary
  cards; :func:`md_cell` makes text safe inside a Markdown table cell;
- :func:`number` is the short text of a figure (4 significant digits by default).

Each output keeps its own content and plots; only the shell, the styles and the cells
live here. Pure functions, no IO. The dashboard (``serve/static``) has its own
stylesheet, as an application rather than a document.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["CSS", "cards", "escape", "html_table", "md_cell", "md_table", "number", "page"]

#: The one stylesheet of every page: the shell, the tables and cards, and the classes of
#: each output (report stage list and plot, trace timeline and events, comparison verdict).
CSS: Final = """
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0;
  background: #f4f6f8; color: #2c3e50; line-height: 1.5; }
main { max-width: 1100px; margin: 0 auto; padding: 20px; }
header, section { background: #fff; border-radius: 8px; padding: 18px 24px; margin-bottom: 18px;
  box-shadow: 0 1px 3px rgba(0,0,0,.1); }
h1 { margin: 0 0 6px; } h2 { margin: 0 0 12px; border-bottom: 2px solid #3498db;
  padding-bottom: 6px; } h3 { margin: 16px 0 8px; }
.muted, .note { color: #7f8c8d; }
code, .mono { font-family: Menlo, Consolas, monospace; }
code { background: #eceff1; padding: 1px 5px; border-radius: 3px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px;
  margin-top: 12px; }
.card { background: #f8f9fa; border-left: 4px solid #3498db; padding: 8px 12px;
  border-radius: 4px; overflow-wrap: anywhere; }
.card .label { color: #7f8c8d; font-size: .85em; } .card .value { font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: .92em; margin: 8px 0; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e1e4e8;
  vertical-align: top; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
th { background: #f8f9fa; }
.badge, .confidence-badge, .event-type { display: inline-block; padding: 1px 10px;
  border-radius: 10px; font-size: .8em; font-weight: 600; text-align: center;
  background: #eceff1; }
.badge.completed, .confidence-high { background: #c8e6c9; color: #2e7d32; }
.badge.skipped, .confidence-medium { background: #fff9c4; color: #f57f17; }
.confidence-low { background: #ffcdd2; color: #c62828; }
.event-type { text-transform: uppercase; letter-spacing: .5px; background: #e3f2fd;
  color: #1565c0; }
.verdict { background: #f0fdf4; border-left: 4px solid #059669; padding: 8px 12px;
  border-radius: 4px; }
ol.stages { list-style: none; margin: 0; padding: 0; }
ol.stages li { display: grid; grid-template-columns: 2.5em 1fr 8em 7em; gap: 8px;
  align-items: center; padding: 6px 8px; border-left: 4px solid #bdc3c7; margin-bottom: 6px;
  background: #f8f9fa; border-radius: 4px; }
ol.stages li.completed { border-left-color: #2e7d32; }
ol.stages li.skipped { border-left-color: #f57f17; }
.duration { font-family: Menlo, Consolas, monospace; color: #7f8c8d; text-align: right; }
ol.timeline { list-style: none; margin: 0; padding: 0 0 0 18px; border-left: 3px solid #3498db; }
ol.timeline li { position: relative; padding: 4px 0 10px 12px; }
ol.timeline li::before { content: ""; position: absolute; left: -26px; top: 10px; width: 12px;
  height: 12px; border-radius: 50%; background: #3498db; border: 2px solid #fff; }
ol.timeline li.stage_failed::before { background: #c62828; }
.offset { font-family: Menlo, Consolas, monospace; color: #7f8c8d; font-size: .85em;
  margin-right: 8px; }
.event { border-left: 4px solid #3498db; background: #f8f9fa; border-radius: 4px;
  padding: 14px 16px; margin-bottom: 14px; }
.event-header { display: flex; justify-content: space-between; align-items: center;
  margin-bottom: 8px; }
.decision { font-weight: 600; margin-bottom: 4px; }
.reasoning { color: #555; margin-bottom: 8px; }
.alternatives { background: #fff; border-radius: 4px; padding: 8px 12px; margin-bottom: 8px; }
.alternatives-label { font-weight: 600; color: #7f8c8d; font-size: .9em; }
.alternatives ul { margin: 4px 0 0; padding-left: 20px; }
.event-meta { display: flex; gap: 14px; flex-wrap: wrap; color: #7f8c8d; font-size: .85em;
  border-top: 1px solid #ddd; padding-top: 8px; }
svg.plot { display: block; margin: 10px 0; background: #fff; max-width: 100%; height: auto; }
svg.means .axis { stroke: #7f8c8d; stroke-width: 1; }
svg.means .grid { stroke: #eceff1; stroke-width: 1; }
svg.means .ci { stroke: #1565c0; stroke-width: 2; }
svg.means .mean { fill: #c62828; }
svg.means text { font-size: 11px; fill: #2c3e50; }
svg.means .tick, svg.means .value { fill: #7f8c8d; }
"""


def escape(value: object) -> str:
    """Return ``value`` as HTML text, quotes included; ``None`` is the empty string."""
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str) -> str:
    """Return one self-contained HTML page: ``title`` escaped, ``body`` (HTML) in ``<main>``.

    The page inlines :data:`CSS` and loads nothing: no script, stylesheet or font.
    """
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""


def html_table(header: Sequence[str], rows: Iterable[Sequence[object]], cls: str = "") -> str:
    """Return an HTML table of ``rows`` under ``header``; every cell is escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    klass = f' class="{escape(cls)}"' if cls else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cards(items: Iterable[tuple[object, object]]) -> str:
    """Return ``(label, value)`` pairs as a grid of summary cards; both are escaped."""
    inner = "".join(
        f'<div class="card"><div class="label">{escape(k)}</div>'
        f'<div class="value">{escape(v)}</div></div>'
        for k, v in items
    )
    return f'<div class="cards">{inner}</div>'


def md_cell(value: object) -> str:
    """Return ``value`` as text safe inside a Markdown table cell (``None`` is empty).

    Backslashes and ``|`` are escaped and line breaks become spaces, so no value can
    end a cell or a row early.
    """
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Return the lines of a Markdown table; every cell, header included, is :func:`md_cell`'d."""
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines


def number(value: object, digits: int = 4) -> str:
    """Return the short text of a figure: ``digits`` significant digits for a float.

    ``None`` is ``-``, booleans ``true``/``false``, NaN ``NaN`` and infinities ``inf``/``-inf``;
    anything else its ``str``.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)
