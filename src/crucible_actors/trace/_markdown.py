"""The Markdown form of a trace: a summary, an event table and a section per event.

:func:`export_markdown_chain` renders a chain
(:class:`~crucible_actors.trace.TraceChain`) as text that reads well in a terminal, a
pull request or a report; every value that lands in a table cell is escaped (the
rendering kit's :func:`~crucible_actors._render_kit.md_cell`) so a ``|`` or a newline in
a decision cannot break the table. The summary comes from the trace
queries (:func:`~crucible_actors.trace.event_count`, ...) and the text of timestamps,
offsets and confidence classes from :mod:`._text`, shared with the HTML exporter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core import chain_confidence_stats
from .._render_kit import md_cell as _md
from ._text import confidence_class, iso, offset

if TYPE_CHECKING:
    from .._core import Context, TraceChain

__all__ = ["export_markdown", "export_markdown_chain"]


def export_markdown(ctx: Context) -> str | None:
    """Return the trace as Markdown, or None without a trace."""
    return export_markdown_chain(ctx.trace) if ctx.trace is not None else None


def export_markdown_chain(chain: TraceChain) -> str:
    """Return ``chain`` as Markdown: a summary, an event table and one section per event."""
    stats = chain_confidence_stats(chain)
    lines = [
        f"# {_md(chain.name)} - Trace",
        "",
        f"- Chain ID: `{chain.id}`",
        f"- Created: {iso(chain.created_at)}",
        f"- Events: {len(chain.events)}",
    ]
    if "mean" in stats:
        lines.append(f"- Confidence: mean {stats['mean']}, min {stats['min']}, max {stats['max']}")
    if not chain.events:
        return "\n".join([*lines, "", "No events recorded.", ""])
    start = chain.events[0].timestamp
    lines += [
        "",
        "| # | Offset | Type | Stage | Decision | Confidence |",
        "|---:|---|---|---|---|---:|",
    ]
    for index, event in enumerate(chain.events, 1):
        lines.append(
            f"| {index} | {offset(event, start)} | {_md(event.type)} | {_md(event.stage_id)} "
            f"| {_md(event.decision)} | {event.confidence:.2f} |"
        )
    lines += ["", "## Events"]
    for index, event in enumerate(chain.events, 1):
        lines += [
            "",
            f"### {index}. {_md(event.decision)}",
            "",
            f"- Type: {event.type}",
            f"- Time: {iso(event.timestamp)}",
            f"- Confidence: {event.confidence:.2f} ({confidence_class(event.confidence)})",
            f"- Reasoning: {_md(event.reasoning)}",
        ]
        if event.stage_id:
            lines.append(f"- Stage: {_md(event.stage_id)}")
        if event.alternatives:
            lines.append("- Alternatives considered:")
            lines += [f"  - {_md(alt)}" for alt in event.alternatives]
        if event.code_section:
            lines.append(f"- Code: `{event.code_section}`")
        if event.spec_reference:
            lines.append(f"- Spec: {_md(event.spec_reference)}")
    lines.append("")
    return "\n".join(lines)
