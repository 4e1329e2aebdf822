"""Cross-validate three classifiers on scikit-learn's digits, then compare them per example.

``digits.toml`` loads the digits once (numpy arrays in the Context), then sweeps
``cross_validate`` over logistic regression, a random forest and k-NN with 5-fold
cross-validation, into a throwaway SQLite store; ``compare_sweep`` pairs the 1,797
per-example 0/1 scores by ``id`` and tests every model against the best. Needs the
``examples`` extra (scikit-learn); run from anywhere:

    python examples/05_digits.py
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import anyio

import crucible_actors as ca
from crucible_actors.comparison import render

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # "digits_stages:load" imports from here, as with the CLI


def blob_bytes(db: Path) -> tuple[int, int]:
    """Return (files, bytes) of the blob directory beside the SQLite file ``db``."""
    files = [p for p in Path(f"{db}.blobs").rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


async def main(db: Path) -> int:
    experiment = ca.load_experiment(HERE / "digits.toml")
    async with ca.open_runtime(store=f"sqlite:///{db}") as rt:
        sweep = await rt.submit_sweep(experiment)
        counts = await sweep.wait()
        print(f"sweep {sweep.sweep_id}: {sweep.status} {counts}")
        for point in sweep.points:
            run = sweep.run_handle(point.index)
            ctx = run.context if run is not None else None
            if ctx is None:
                continue
            model = point.parameters["cross_validate.model"]
            folds = ctx.metrics["fold_accuracy"]
            print(f"  {model:<9} accuracy {ctx.metrics['accuracy']:.4f}  per fold {folds}")
        result = await ca.compare_sweep(rt.store, sweep.sweep_id, pair_by="id")
    files, size = blob_bytes(db)
    print(
        f"blobs beside the store: {files} file(s), {size / 1e6:.2f} MB "
        "(three runs each assigned X, 0.92 MB: stored by content, not per run)"
    )
    print(render(result, "table"))
    return 0 if sweep.status == "completed" and len(result.ranking) == 3 else 1


if __name__ == "__main__":
    if importlib.util.find_spec("sklearn") is None or importlib.util.find_spec("scipy") is None:
        print(
            "skipped: the digits example needs scikit-learn and scipy; install them with: "
            "pip install 'crucible-actors[examples]'"
        )
        sys.exit(0)
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(anyio.run(main, Path(tmp) / "digits.db", backend="trio"))
