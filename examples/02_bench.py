"""Compare two groups of scores with the bench stage (needs the ``bench`` extra: scipy).

``bench.toml`` records a baseline's and a candidate's accuracies, then runs a t-test, a
Mann-Whitney test and a seeded bootstrap, configured in ``[reliability.stats]``. Without
scipy the example says how to install it and exits cleanly. Run from anywhere:

    python examples/02_bench.py
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import crucible_actors

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # "example_stages:scores" imports from here, as with the CLI

INSTALL = "pip install 'crucible-actors[bench]'"


def main() -> int:
    if importlib.util.find_spec("scipy") is None:
        print(f"skipped: the bench stage needs scipy; install it with: {INSTALL}")
        return 0
    experiment = crucible_actors.load_experiment(HERE / "bench.toml")
    try:
        ctx = crucible_actors.run(experiment)
    except crucible_actors.StageFailed as exc:
        if isinstance(exc.reason, crucible_actors.MissingDependency):
            print(f"skipped: {exc.reason}")
            return 0
        raise

    bench = ctx.metrics["bench"]
    results = bench["results"]
    print(f"groups: {results['groups']}, alpha {bench['alpha']}")
    for name, test in results["test_results"].items():
        print(f"  {name:<13} p = {test['p_value']:.4g}  {test['interpretation']}")
    effect = results["effect_size"]
    print(f"  Cohen's d = {effect['cohens_d']:.2f} ({effect['interpretation']})")
    return 0 if results["test_results"]["ttest"]["significant"] else 1


if __name__ == "__main__":
    sys.exit(main())
