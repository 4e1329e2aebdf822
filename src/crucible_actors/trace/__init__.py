"""Decision traces: record what a run decided and why, and export the record.

A trace is a :class:`TraceChain` carried in
``Context.trace``. ``crucible_actors.run(..., enable_trace=True)`` starts one and the run
supervisor adds ``stage_start``/``stage_complete``/``stage_failed`` events around every
stage; inside a stage, :func:`emit_decision` and :func:`emit_event` add the stage's own
reasoning. Like every Context helper, the emitters return a NEW Context; with no trace on
the Context they return it unchanged, so stages can emit unconditionally.

The exporters render a chain as JSON (the format :func:`save_trace`/:func:`load_trace`
round-trip), as one self-contained HTML page (no external scripts, styles or fonts) and
as Markdown. The ``*_chain`` variants take a bare chain, for traces loaded from a store.

The chain's types, emitters and queries live in the core (the runtime needs them without
this package); this package re-exports them and adds the exporters. It mirrors the
reference's ``Crucible.TraceIntegration`` (wording of the stage events included) and is
pure Python: it needs no extra.
"""

from .._core import EVENT_TYPES as EVENT_TYPES
from .._core import TraceChain as TraceChain
from .._core import TraceEvent as TraceEvent
from .._core import confidence_stats as confidence_stats
from .._core import emit_decision as emit_decision
from .._core import emit_event as emit_event
from .._core import emit_stage_complete as emit_stage_complete
from .._core import emit_stage_failed as emit_stage_failed
from .._core import emit_stage_start as emit_stage_start
from .._core import event_count as event_count
from .._core import filter_events as filter_events
from .._core import init_trace as init_trace
from .._core import last_event as last_event
from .._core import tracing_enabled as tracing_enabled
from ._html import export_html as export_html
from ._html import export_html_chain as export_html_chain
from ._json import export_json as export_json
from ._json import export_json_chain as export_json_chain
from ._json import load_trace as load_trace
from ._json import save_trace as save_trace
from ._markdown import export_markdown as export_markdown
from ._markdown import export_markdown_chain as export_markdown_chain

__all__ = [
    "EVENT_TYPES",
    "TraceChain",
    "TraceEvent",
    "confidence_stats",
    "emit_decision",
    "emit_event",
    "emit_stage_complete",
    "emit_stage_failed",
    "emit_stage_start",
    "event_count",
    "export_html",
    "export_html_chain",
    "export_json",
    "export_json_chain",
    "export_markdown",
    "export_markdown_chain",
    "filter_events",
    "init_trace",
    "last_event",
    "load_trace",
    "save_trace",
    "tracing_enabled",
]
