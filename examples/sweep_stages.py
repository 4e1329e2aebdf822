"""Stages of the sweep example (``examples/sweep.toml``): a question set and a fake model.

``call_model`` stands in for an expensive model call: each example's score depends on the
model, the temperature, how hard the question is and the run's seed
(``ctx.telemetry_context["seed"]``, distinct for every repeat of a sweep point), so runs
differ the way real evaluations do, reproducibly.
"""

from __future__ import annotations

import random

import msgspec

from crucible_actors import Context, stage

QUALITY = {"small": 0.62, "large": 0.74}


@stage("questions", description="Load 40 questions of varying difficulty")
def questions(ctx: Context, opts: object) -> Context:
    """Put 40 examples with an ``id`` and a ``difficulty`` into assigns['examples']."""
    rng = random.Random(0)
    examples = [{"id": f"q{i:02d}", "difficulty": round(rng.random(), 3)} for i in range(40)]
    return ctx.assign("examples", examples)


class ModelOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Options of ``call_model``."""

    model: str = "small"
    temperature: float = 0.0


@stage("call_model", description="Answer every question; score each answer", options=ModelOptions)
def call_model(ctx: Context, opts: ModelOptions) -> Context:
    """Score each example in [0, 1]; outputs get ``{"id", "score"}``, metrics the mean."""
    seed = int(ctx.telemetry_context.get("seed", 0))
    scored = []
    for ex in ctx.assigns["examples"]:
        rng = random.Random(f"{seed}:{ex['id']}")
        base = QUALITY[opts.model] - 0.25 * ex["difficulty"] - 0.08 * opts.temperature
        noise = rng.gauss(0, 0.05 + 0.1 * opts.temperature)
        scored.append({"id": ex["id"], "score": round(min(1.0, max(0.0, base + noise)), 4)})
    mean = sum(s["score"] for s in scored) / len(scored)
    return ctx.add_outputs(scored).put_metric("accuracy", round(mean, 4))
