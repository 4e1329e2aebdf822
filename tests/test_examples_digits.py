"""The digits example's stages on a small subset: arrays in the Context, per-example scores.

``examples/digits.toml`` with 200 examples, 2 folds and 2 models, run as a sweep into a
real SQLite store: every run's outputs are one 0/1 score per example with its ``id``,
its metrics agree with them, the arrays come back as arrays, and ``compare_sweep``
pairs the two models on all 200 ids.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import missing_extra

import crucible_actors as ca

np = pytest.importorskip("numpy", reason=missing_extra("examples"))
pytest.importorskip("scipy", reason=missing_extra("examples"))
datasets = pytest.importorskip("sklearn.datasets", reason=missing_extra("examples"))

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.slow


def small_experiment(limit: int = 200, folds: int = 2) -> dict[str, Any]:
    """The example's experiment file, cut down: ``limit`` examples, ``folds`` folds, 2 models."""
    doc = tomllib.loads((EXAMPLES / "digits.toml").read_text(encoding="utf-8"))
    load, cv = doc["pipeline"]
    assert (load["name"], cv["name"]) == ("load", "cross_validate")
    load["options"] = {"limit": limit}
    cv["options"] = {**cv.get("options", {}), "folds": folds}
    doc["sweep"]["cross_validate.model"] = ["logistic", "knn"]
    return doc


@pytest.fixture
def stages_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``digits_stages:NAME`` importable, as ``crucible-actors run`` does."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.delitem(sys.modules, "digits_stages", raising=False)


@pytest.mark.usefixtures("stages_on_path")
async def test_sweep_scores_every_example_and_compare_pairs_them(tmp_path: Path) -> None:
    X, y = datasets.load_digits(return_X_y=True)
    ids = [f"digit-{i:04d}" for i in range(200)]
    async with ca.open_runtime(store=f"sqlite:///{tmp_path}/digits.db") as rt:
        sweep = await rt.submit_sweep(small_experiment())
        assert await sweep.wait() == {"completed": 2}
        models = []
        for point in sweep.points:
            run = sweep.run_handle(point.index)
            assert run is not None
            assert run.context is not None
            ctx = run.context
            models.append(point.parameters["cross_validate.model"])
            # The arrays load put in come back as arrays, equal to the data set's.
            assert isinstance(ctx.assigns["X"], np.ndarray)
            assert ctx.assigns["X"].dtype == np.float64
            np.testing.assert_array_equal(ctx.assigns["X"], X[:200])
            np.testing.assert_array_equal(ctx.assigns["y"], y[:200])
            predicted = ctx.assigns["predicted"]
            assert isinstance(predicted, np.ndarray)
            assert predicted.shape == (200,)
            # One output per example, in order, scored 0 or 1 against the labels.
            assert [o["id"] for o in ctx.outputs] == ids
            correct = [o["correct"] for o in ctx.outputs]
            assert correct == (predicted == y[:200]).astype(int).tolist()
            assert ctx.metrics["accuracy"] == pytest.approx(sum(correct) / 200, abs=1e-4)
            assert len(ctx.metrics["fold_accuracy"]) == 2
            assert 0.8 < ctx.metrics["accuracy"] <= 1.0  # real models on real digits
        assert models == ["logistic", "knn"]
        result = await ca.compare_sweep(rt.store, sweep.sweep_id, pair_by="id")
    assert result.metric == "correct"
    assert result.paired
    assert result.pair_by == "id"
    assert sorted(result.keys) == ids
    assert sorted(g.n for g in result.groups) == [200, 200]
    assert {g.parameters["cross_validate.model"] for g in result.groups} == {"logistic", "knn"}
    assert len(result.comparisons) == 1
    assert result.comparisons[0].n == 200


@pytest.mark.usefixtures("stages_on_path")
def test_one_run_through_ca_run(tmp_path: Path) -> None:
    doc = small_experiment(limit=120, folds=3)
    del doc["sweep"]
    doc["pipeline"][1]["options"]["model"] = "forest"
    ctx = ca.run(doc, store=f"sqlite:///{tmp_path}/one.db")
    assert len(ctx.outputs) == 120
    assert {o["correct"] for o in ctx.outputs} <= {0, 1}
    assert len(ctx.metrics["fold_accuracy"]) == 3
    assert ctx.assigns["X"].shape == (120, 64)


@pytest.mark.usefixtures("stages_on_path")
def test_unknown_model_fails_the_stage_naming_the_choices(tmp_path: Path) -> None:
    doc = small_experiment(limit=60)
    del doc["sweep"]
    doc["pipeline"][1]["options"]["model"] = "svm"
    with pytest.raises(ca.StageFailed) as info:
        ca.run(doc, persist=False)
    assert info.value.stage == "cross_validate"
    assert "unknown model 'svm'; expected one of logistic, forest, knn" in str(info.value.reason)


@pytest.mark.usefixtures("stages_on_path")
def test_x_is_stored_once_and_read_only_downstream(tmp_path: Path) -> None:
    doc = small_experiment(limit=400, folds=2)  # X: 400 x 64 float64, 205 KB: a blob
    del doc["sweep"]
    ctx = ca.run(doc, store=f"sqlite:///{tmp_path}/x.db")
    assert ctx.assigns["X"].flags.writeable is False
    blobs = [p for p in (tmp_path / "x.db.blobs").rglob("*") if p.is_file()]
    assert len([p for p in blobs if p.stat().st_size >= 400 * 64 * 8]) == 1
