"""Stages of the digits example (``examples/digits.toml``): real models on real data.

``load`` reads scikit-learn's handwritten digits (1,797 8x8 images; the data set ships
with scikit-learn, nothing is downloaded) and puts the pixels ``X`` (a float64 array,
1797 x 64) and the labels ``y`` into the Context once. The arrays travel between stages
as they are: the runtime stores each once, by content, beside the SQLite file, and the
next stage gets them back read-only (copy to modify).

``cross_validate`` fits one model with k-fold cross-validation (the same folds for every
model, so the models are compared on the same splits) and predicts every example once,
from the fold that held it out. Its outputs are one item per example,
``{"id": "digit-0042", "correct": 0 or 1}``, which ``crucible-actors compare --sweep ID
--pair-by id`` pairs across the sweep's points; its metrics are the accuracy over all
examples and per fold.

Needs the ``examples`` extra: ``pip install 'crucible-actors[examples]'``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from crucible_actors import Context, stage

if TYPE_CHECKING:
    import numpy as np

MODELS = ("logistic", "forest", "knn")


class LoadOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Options of ``load``: ``limit`` keeps the first N examples (0: all 1,797)."""

    limit: int = 0


@stage(
    "load",
    description="Load scikit-learn's digits: pixels X and labels y, once",
    options=LoadOptions,
)
def load(ctx: Context, opts: LoadOptions) -> Context:
    """Put ``X`` (float64, n x 64), ``y`` (int64, n) and ``ids`` into the assigns."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    if opts.limit:
        X, y = X[: opts.limit], y[: opts.limit]
    ids = [f"digit-{i:04d}" for i in range(len(y))]
    return ctx.assign("X", X).assign("y", y).assign("ids", ids)


class CrossValidateOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Options of ``cross_validate``.

    Attributes:
        model: ``logistic`` (scaled logistic regression), ``forest`` (a 100-tree random
            forest) or ``knn`` (3 nearest neighbours).
        folds: the number of cross-validation folds (at least 2).
        shuffle_seed: seeds the fold assignment; every model of a sweep uses the same one,
            so all of them are scored on the same splits.
    """

    model: str = "logistic"
    folds: int = 5
    shuffle_seed: int = 0


def make_model(name: str) -> Any:
    """Return a fresh, unfitted scikit-learn classifier called ``name`` (see ``MODELS``)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if name == "forest":
        return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=3)
    raise ValueError(
        f"cross_validate: unknown model {name!r}; expected one of {', '.join(MODELS)} "
        "(set cross_validate.model in the experiment file)"
    )


@stage(
    "cross_validate",
    description="k-fold cross-validation of one model; one 0/1 score per example",
    options=CrossValidateOptions,
)
def cross_validate(ctx: Context, opts: CrossValidateOptions) -> Context:
    """Predict every example from the fold that held it out; score each one 0 or 1."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    X: np.ndarray = ctx.assigns["X"]  # read-only: it came from the previous stage
    y: np.ndarray = ctx.assigns["y"]
    ids: list[str] = ctx.assigns["ids"]
    predicted = np.empty_like(y)
    fold_accuracy = []
    started = time.perf_counter()
    splits = StratifiedKFold(n_splits=opts.folds, shuffle=True, random_state=opts.shuffle_seed)
    for train, test in splits.split(X, y):
        model = make_model(opts.model).fit(X[train], y[train])
        predicted[test] = model.predict(X[test])
        fold_accuracy.append(round(float(np.mean(predicted[test] == y[test])), 4))
    correct = (predicted == y).astype(np.int64)
    return (
        ctx.add_outputs(
            {"id": i, "correct": int(c)} for i, c in zip(ids, correct.tolist(), strict=True)
        )
        .assign("predicted", predicted)
        .put_metric("accuracy", round(float(correct.mean()), 4))
        .put_metric("fold_accuracy", fold_accuracy)
        .put_metric("seconds", round(time.perf_counter() - started, 3))
    )
