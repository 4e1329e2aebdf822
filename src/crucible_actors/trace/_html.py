"""The HTML form of a trace: one self-contained page, nothing loaded from elsewhere.

:func:`export_html_chain` renders a chain (:class:`~crucible_actors.trace.TraceChain`)
as a page with a summary, statistics, a timeline and one card per event; the page shell,
the inlined stylesheet and the escaping are the shared rendering kit's
(:mod:`crucible_actors._render_kit`), so the page can be saved as a run artifact or
served as it is (the ``serve`` app's ``/api/runs/{id}/trace?format=html``). The
statistics come from the trace queries (:func:`~crucible_actors.trace.event_count`, ...)
and the text of timestamps, offsets and confidence classes from :mod:`._text`, shared
with the Markdown exporter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from .._core import chain_confidence_stats, to_json_safe
from .._render_kit import cards, page
from .._render_kit import escape as _e
from ._text import confidence_class, duration, iso, offset, type_label

if TYPE_CHECKING:
    from .._core import Context, TraceChain

__all__ = ["export_html", "export_html_chain"]


def export_html(ctx: Context) -> str | None:
    """Return the trace as a self-contained HTML page, or None without a trace."""
    return export_html_chain(ctx.trace) if ctx.trace is not None else None


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

    timeline_items = []
    event_cards = []
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
        event_cards.append(
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
    body = f"""<header>
<h1>{_e(chain.name)} - Trace</h1>
<p class="muted">Chain ID: {_e(chain.id)} &middot; Created: {_e(iso(chain.created_at))}
&middot; Events: {len(chain.events)}</p>
</header>
<section class="statistics"><h2>Statistics</h2>{cards(stat_items)}</section>
<section class="timeline-section"><h2>Timeline</h2>
{timeline}
</section>
<section class="events"><h2>Events</h2>
{"".join(event_cards)}
</section>"""
    return page(f"{chain.name} - Trace", body)
