"""The core pipeline: validate -> seed -> data_checks -> guardrails -> report to stdout.

Loads ``core_pipeline.toml`` and runs it with the default registry (the built-in stages).
The seed stage loads three examples; data_checks flags the one without an answer and
the pattern scanner flags the e-mail address in another. Run from anywhere:

    python examples/01_core_pipeline.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import crucible_actors

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # "example_stages:seed" imports from here, as with the CLI


def main() -> int:
    experiment = crucible_actors.load_experiment(HERE / "core_pipeline.toml")
    ctx = crucible_actors.run(experiment)

    print("validation: ", ctx.metrics["validation"])
    print("data checks:", ctx.metrics["data_checks"])
    for issue in ctx.assigns["data_issues"]:
        print(f"  example {issue['example']['id']} is missing {', '.join(issue['missing'])}")
    print("guardrails: ", ctx.metrics["guardrails"])
    for v in ctx.assigns["guardrail_violations"]:
        print(f"  example #{v['example']} field {v['field']!r}: {v['kind']} at {v['span']}")

    if ctx.metrics["validation"] != {"status": "passed"}:
        print("unexpected validation result", file=sys.stderr)
        return 1
    found = (
        ctx.metrics["data_checks"]["missing_required"],
        ctx.metrics["guardrails"]["violations"],
    )
    if found != (1, 1):
        print("unexpected check results", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
