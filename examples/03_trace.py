"""Record a decision with its alternatives in the trace, and export the trace as HTML.

Runs ``trace.toml`` with tracing on (inside an event loop, with ``run_async``): the runtime
records each stage's start and completion, and the ``choose_model`` stage adds a
hypothesis and a decision. The trace is saved as JSON, loaded back, and exported as a
self-contained HTML page into a temporary directory (or the directory given as the first
argument). Run from anywhere:

    python examples/03_trace.py [OUTPUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio

import crucible_actors
from crucible_actors import trace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # "example_stages:..." imports from here, as with the CLI


async def main(out_dir: Path) -> int:
    experiment = crucible_actors.load_experiment(HERE / "trace.toml")
    ctx = await crucible_actors.run_async(experiment, enable_trace=True)

    decision = trace.filter_events(ctx, "decision_made")[0]
    print(f"decision: {decision.decision} (confidence {decision.confidence})")
    print(f"  alternatives: {', '.join(decision.alternatives)}")
    print(f"events: {trace.event_count(ctx)}, confidence: {trace.confidence_stats(ctx)}")

    saved = await trace.save_trace(ctx, out_dir / "trace.json")
    chain = await trace.load_trace(saved)
    page = out_dir / "trace.html"
    await anyio.Path(page).write_text(trace.export_html_chain(chain), encoding="utf-8")
    print(f"trace saved to {saved}")
    print(f"HTML timeline written to {page}")
    # 3 stages x (start + complete) + the hypothesis + the decision
    return 0 if trace.event_count(ctx) == 8 and chain == ctx.trace else 1


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="trace-"))
    sys.exit(anyio.run(main, target))
