"""Stages used by the examples, referenced from the experiment files as ``example_stages:NAME``.

``crucible-actors run examples/<file>.toml`` puts the experiment file's directory on
``sys.path``, so these references import without installing anything; the Python
examples do the same by hand.
"""

from __future__ import annotations

from typing import Any

from crucible_actors import Context, stage, trace


@stage("seed", description="Load three question/answer examples into assigns['examples']")
def seed(ctx: Context, opts: Any) -> Context:
    """Load three examples: one clean, one without an answer, one leaking an e-mail address."""
    examples = [
        {"id": 1, "input": "What is 2 + 2?", "output": "4"},
        {"id": 2, "input": "Name the largest planet.", "output": ""},
        {"id": 3, "input": "Who wrote this? Mail ada@example.org", "output": "Ada"},
    ]
    return ctx.assign("examples", examples).put_metric("examples_loaded", len(examples))


@stage("scores", description="Record per-example accuracy of a baseline and a candidate model")
def scores(ctx: Context, opts: Any) -> Context:
    """Put two groups of scores into the metrics, for the bench stage to compare."""
    baseline = [0.71, 0.69, 0.74, 0.70, 0.72, 0.68, 0.73, 0.70, 0.71, 0.69]
    candidate = [0.78, 0.80, 0.76, 0.81, 0.79, 0.77, 0.82, 0.78, 0.80, 0.79]
    return ctx.put_metric("baseline", baseline).put_metric("candidate", candidate)


@stage("choose_model", description="Pick the model to ship and record why in the trace")
async def choose_model(ctx: Context, opts: Any) -> Context:
    """Record a hypothesis and the decision, with the alternatives that were considered."""
    ctx = trace.emit_event(
        ctx,
        "hypothesis_formed",
        "The candidate generalizes better",
        "Its validation accuracy is higher on every split",
        confidence=0.7,
    )
    ctx = trace.emit_decision(
        ctx,
        "Ship the candidate model",
        "Higher accuracy at the same latency",
        ["Keep the baseline", "Ensemble both models"],
        0.85,
    )
    return ctx.put_metric("chosen_model", "candidate")
