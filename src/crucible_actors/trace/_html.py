"""The HTML form of a trace: one self-contained page, nothing loaded from elsewhere.

:func:`export_html_chain` renders a chain (:class:`~crucible_actors.trace.TraceChain`)
as a page with a summary, statistics, a timeline and one card per event; the styles are
inlined and every value is HTML-escaped, so the page can be saved as a run artifact or
served as it is (the ``serve`` app's ``/api/runs/{id}/trace?format=html``). The
statistics come from the trace queries (:func:`~crucible_actors.trace.event_count`, ...)
and the text of timestamps, offsets and confidence classes from :mod:`._text`, shared
with the Markdown exporter.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import msgspec

from .._core import chain_confidence_stats, to_json_safe
from ._text import confidence_class, duration, iso, offset, type_label

if TYPE_CHECKING:
    from .._core import Context, TraceChain

__all__ = ["export_html", "export_html_chain"]


def export_html(ctx: Context) -> str | None:
    """Return the trace as a self-contained HTML page, or None without a trace."""
    return export_html_chain(ctx.trace) if ctx.trace is not None else None


_CSS = """
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  margin: 0; background: #f5f5f5; color: #333; line-height: 1.5; }
.container { max-width: 1100px; margin: 0 auto; padding: 20px; }
header, section { background: #fff; border-radius: 8px; padding: 20px 24px;
  margin-bottom: 18px; box-shadow: 0 1px 3px rgba(0,0,0,.1); }
h1 { margin: 0 0 8px; color: #2c3e50; }
h2 { margin: 0 0 12px; color: #34495e; border-bottom: 2px solid #3498db; padding-bottom: 6px; }
.metadata { display: flex; gap: 18px; flex-wrap: wrap; color: #7f8c8d; font-size: .9em; }
.stats-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr));
  gap: 12px; }
.stat-item { background: #f8f9fa; border-left: 4px solid #3498db; padding: 10px 12px;
  border-radius: 4px; }
.stat-label { color: #7f8c8d; font-size: .85em; }
.stat-value { font-size: 1.5em; font-weight: bold; color: #2c3e50; }
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
.event-type { display: inline-block; padding: 2px 10px; border-radius: 12px; font-size: .8em;
  font-weight: 600; text-transform: uppercase; letter-spacing: .5px; background: #e3f2fd;
  color: #1565c0; }
.confidence-badge { padding: 2px 10px; border-radius: 12px; font-size: .85em;
  font-weight: 600; }
.confidence-high { background: #c8e6c9; color: #2e7d32; }
.confidence-medium { background: #fff9c4; color: #f57f17; }
.confidence-low { background: #ffcdd2; color: #c62828; }
.decision { font-weight: 600; color: #2c3e50; margin-bottom: 4px; }
.reasoning { color: #555; margin-bottom: 8px; }
.alternatives { background: #fff; border-radius: 4px; padding: 8px 12px; margin-bottom: 8px; }
.alternatives-label { font-weight: 600; color: #7f8c8d; font-size: .9em; }
.alternatives ul { margin: 4px 0 0; padding-left: 20px; }
.event-meta { display: flex; gap: 14px; flex-wrap: wrap; color: #7f8c8d; font-size: .85em;
  border-top: 1px solid #ddd; padding-top: 8px; }
code { font-family: Menlo, Consolas, monospace; background: #2c3e50; color: #ecf0f1;
  padding: 1px 5px; border-radius: 3px; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _badge(confidence: float) -> str:
    cls = confidence_class(confidence)
    return f'<span class="confidence-badge confidence-{cls}">{confidence:.2f}</span>'


def export_html_chain(chain: TraceChain) -> str:
    """Return ``chain`` as one self-contained HTML page titled ``<name> - Trace``.

    The page holds a summary, statistics (counts per type, mean confidence), a timeline
    and one card per event with its reasoning, alternatives and confidence badge (high
    >= 0.8, medium >= 0.5, else low). Every value is HTML-escaped; nothing is loaded from
    elsewhere.
    """
    stats = chain_confidence_stats(chain)
    counts: dict[str, int] = {}
    for event in chain.events:
        counts[event.type] = counts.get(event.type, 0) + 1
    start = chain.events[0].timestamp if chain.events else None

    stat_items = [
        ("Total Events", str(len(chain.events))),
        ("Average Confidence", f"{stats['mean']:.2f}" if "mean" in stats else "-"),
        ("Duration", duration(chain)),
        *((type_label(t), str(n)) for t, n in counts.items()),
    ]
    stats_html = "\n".join(
        f'<div class="stat-item"><div class="stat-label">{_e(label)}</div>'
        f'<div class="stat-value">{_e(value)}</div></div>'
        for label, value in stat_items
    )

    timeline_items = []
    cards = []
    for index, event in enumerate(chain.events, 1):
        at = offset(event, start) if start is not None else ""
        timeline_items.append(
            f'<li class="{_e(event.type)}"><span class="offset">{_e(at)}</span>'
            f"<strong>{_e(type_label(event.type))}</strong> &mdash; {_e(event.decision)} "
            f"{_badge(event.confidence)}</li>"
        )
        alternatives = ""
        if event.alternatives:
            items = "".join(f"<li>{_e(alt)}</li>" for alt in event.alternatives)
            alternatives = (
                '<div class="alternatives"><div class="alternatives-label">'
                f"Alternatives Considered:</div><ul>{items}</ul></div>"
            )
        meta = [f"<span>{_e(iso(event.timestamp))}</span>"]
        if event.stage_id:
            meta.append(f"<span>Stage: {_e(event.stage_id)}</span>")
        if event.code_section:
            meta.append(f"<span>Code: <code>{_e(event.code_section)}</code></span>")
        if event.spec_reference:
            meta.append(f"<span>Spec: {_e(event.spec_reference)}</span>")
        if event.metadata:
            encoded = msgspec.json.encode(to_json_safe(event.metadata)).decode()
            meta.append(f"<span>Metadata: <code>{_e(encoded)}</code></span>")
        cards.append(
            f'<div class="event" id="event-{_e(event.id)}" data-type="{_e(event.type)}">'
            f'<div class="event-header"><span class="event-type">{_e(type_label(event.type))}'
            f"</span>{_badge(event.confidence)}</div>"
            f'<div class="decision">{index}. {_e(event.decision)}</div>'
            f'<div class="reasoning">{_e(event.reasoning)}</div>'
            f'{alternatives}<div class="event-meta">{"".join(meta)}</div></div>'
        )

    timeline = (
        f'<ol class="timeline">{"".join(timeline_items)}</ol>'
        if timeline_items
        else "<p>No events recorded.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(chain.name)} - Trace</title>
<style>{_CSS}</style>
</head>
<body>
<div class="container">
<header>
<h1>{_e(chain.name)} - Trace</h1>
<div class="metadata"><span>Chain ID: {_e(chain.id)}</span>
<span>Created: {_e(iso(chain.created_at))}</span>
<span>Events: {len(chain.events)}</span></div>
</header>
<section class="statistics"><h2>Statistics</h2><div class="stats-grid">
{stats_html}
</div></section>
<section class="timeline-section"><h2>Timeline</h2>
{timeline}
</section>
<section class="events"><h2>Events</h2>
{"".join(cards)}
</section>
</div>
</body>
</html>
"""
