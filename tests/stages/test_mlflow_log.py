"""The MLflow bridge (``mlflow_log``), checked with the real MLflow client on a local store.

Each test logs to its own SQLite tracking database in ``tmp_path`` (``mlflow_uri``) and
reads back with ``MlflowClient``: experiment, run, params, metrics, tags, artifacts, status.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from tests.helpers import missing_extra, registry_with

pytest.importorskip("mlflow", reason=missing_extra("mlflow"))

from mlflow.tracking import MlflowClient

import crucible_actors as ca
from crucible_actors import (
    Context,
    Experiment,
    MissingDependency,
    OutputSpec,
    StageDef,
    open_runtime,
    stage,
)
from crucible_actors.stages import mlflow_log
from crucible_actors.stages.mlflow_log import (
    MlflowLogOptions,
    flatten_bench,
    flatten_metrics,
    flatten_params,
    log_handle,
    log_run,
    open_mlflow_bridge,
)

if TYPE_CHECKING:
    from pathlib import Path

# The MLflow client is slow to start and every logged run is a few SQLite transactions.
pytestmark = pytest.mark.slow

BASELINE = [0.70, 0.72, 0.69, 0.71, 0.70, 0.73]
CANDIDATE = [0.80, 0.79, 0.82, 0.81, 0.78, 0.80]


@stage("scores")
def scores(ctx: Context, opts: Any) -> Context:
    return ctx.merge_metrics(
        {"baseline": BASELINE, "candidate": CANDIDATE, "accuracy": 0.8, "eval": {"loss": 0.25}}
    )


@stage("boom")
def boom(ctx: Context, opts: Any) -> Context:
    raise RuntimeError("the model server went away")


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (scores, boom)


def _experiment(uri: str, tmp_path: Path, **log_options: Any) -> Experiment:
    return Experiment(
        id="mlflow-demo",
        tags=["nightly"],
        pipeline=[
            StageDef(name="scores"),
            StageDef(
                name="bench",
                options={
                    "data_source": "metrics",
                    "keys": ["baseline", "candidate"],
                    "tests": ["ttest", "bootstrap"],
                    "bootstrap_iterations": 500,
                    "seed": 3,
                },
            ),
            StageDef(name="report", options={"output_dir": str(tmp_path / "reports")}),
            StageDef(name="mlflow_log", options={"tracking_uri": uri, **log_options}),
        ],
        outputs=[OutputSpec(name="summary", formats=["markdown", "json"], sink="file")],
    )


async def test_a_run_is_logged_with_params_metrics_bench_artifacts_and_status(
    mlflow_uri: str, tmp_path: Path
) -> None:
    ctx = await ca.run_async(
        _experiment(mlflow_uri, tmp_path),
        registry=registry_with(*STAGES, default=True),
        run_id="r1",
    )
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("mlflow-demo")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert ctx.assigns["mlflow_run_id"] == run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "r1"
    data = run.data
    # options as params, prefixed with the stage name and flattened
    assert data.params["bench.data_source"] == "metrics"
    assert data.params["bench.keys"] == '["baseline","candidate"]'
    assert data.params["bench.bootstrap_iterations"] == "500"
    assert data.params["mlflow_log.tracking_uri"] == mlflow_uri
    # ctx.metrics numbers as metrics; a list is a series
    assert data.metrics["accuracy"] == 0.8
    assert data.metrics["eval.loss"] == 0.25
    history = client.get_metric_history(run.info.run_id, "candidate")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == CANDIDATE
    # bench figures as metrics, verdicts as tags
    bench = ctx.metrics["bench"]["results"]["test_results"]
    assert data.metrics["bench.ttest.p_value"] == pytest.approx(bench["ttest"]["p_value"])
    low, high = bench["bootstrap"]["confidence_interval"]
    assert data.metrics["bench.bootstrap.confidence_interval.low"] == pytest.approx(low)
    assert data.metrics["bench.bootstrap.confidence_interval.high"] == pytest.approx(high)
    assert data.metrics["bench.effect_size.cohens_d"] > 0
    assert data.metrics["bench.group_stats.candidate.mean"] == pytest.approx(0.80)
    assert data.tags["bench.ttest.significant"] == "true"
    assert data.tags["bench.ttest.interpretation"].startswith("Extremely significant")
    assert data.tags["bench.groups"] == "baseline,candidate"
    assert data.tags["crucible.run_id"] == "r1"
    assert data.tags["crucible.experiment_tags"] == "nightly"
    # the report's files and the experiment definition as artifacts
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"mlflow-demo-r1-summary.md", "mlflow-demo-r1-summary.json", "crucible"} <= names
    local = client.download_artifacts(run.info.run_id, "crucible/experiment.json", str(tmp_path))
    assert _read_json(local)["id"] == "mlflow-demo"


def _read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


async def test_logging_the_same_run_again_updates_its_mlflow_run(
    mlflow_uri: str, tmp_path: Path
) -> None:
    reg = registry_with(*STAGES, default=True)
    exp = _experiment(mlflow_uri, tmp_path)
    ctx = await ca.run_async(exp, registry=reg, run_id="same")
    again = log_run(ctx, MlflowLogOptions(tracking_uri=mlflow_uri), status="FAILED", duration=2.5)
    assert again == ctx.assigns["mlflow_run_id"]
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("mlflow-demo")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.metrics["crucible.duration_s"] == 2.5


async def test_log_handle_records_a_failed_run_with_status_duration_and_error(
    mlflow_uri: str,
) -> None:
    exp = Experiment(id="failing", pipeline=[StageDef(name="scores"), StageDef(name="boom")])
    opts = MlflowLogOptions(tracking_uri=mlflow_uri, experiment_name="nightly-evals")
    async with open_runtime(registry=registry_with(*STAGES, default=True)) as rt:
        handle = await rt.submit(exp, run_id="f1")
        await handle.wait()
        mlflow_run_id = await log_handle(handle, opts)
    run = MlflowClient(tracking_uri=mlflow_uri).get_run(mlflow_run_id)
    assert run.info.status == "FAILED"
    assert "the model server went away" in run.data.tags["crucible.error"]
    assert run.data.metrics["crucible.duration_s"] >= 0
    assert run.data.metrics["accuracy"] == 0.8  # the Context before the failing stage


async def test_log_handle_refuses_a_run_still_going(mlflow_uri: str) -> None:
    opened = anyio.Event()

    @stage("gate")
    async def gate(ctx: Context, opts: Any) -> Context:
        await opened.wait()
        return ctx

    reg = registry_with(*STAGES, default=True)
    reg.register(gate)
    async with open_runtime(registry=reg) as rt:
        handle = await rt.submit(Experiment(id="g", pipeline=[StageDef(name="gate")]))
        with pytest.raises(ValueError, match="needs a finished run"):
            await log_handle(handle, MlflowLogOptions(tracking_uri=mlflow_uri))
        opened.set()
        await handle.wait()


def test_a_parent_run_id_makes_a_child_run(mlflow_uri: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_uri)
    exp_id = client.create_experiment("sweep")
    parent = client.create_run(exp_id, run_name="sweep").info.run_id
    ctx = Context.new(Experiment(id="sweep", pipeline=[StageDef(name="mlflow_log")]), run_id="p1")
    child = log_run(ctx, MlflowLogOptions(tracking_uri=mlflow_uri, parent_run_id=parent))
    assert client.get_run(child).data.tags["mlflow.parentRunId"] == parent
    # or carried by the Context, as a sweep would set it per point
    ctx2 = Context.new(ctx.experiment, run_id="p2").assign("mlflow_parent_run_id", parent)
    child2 = log_run(ctx2, MlflowLogOptions(tracking_uri=mlflow_uri))
    children = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert {r.info.run_id for r in children} == {child, child2}


def test_an_experiment_id_option_logs_into_that_experiment(mlflow_uri: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_uri)
    exp_id = client.create_experiment("chosen")
    ctx = Context.new(Experiment(id="other", pipeline=[StageDef(name="mlflow_log")]))
    run_id = log_run(ctx, MlflowLogOptions(tracking_uri=mlflow_uri, experiment_id=exp_id))
    assert client.get_run(run_id).info.experiment_id == exp_id
    assert client.get_experiment_by_name("other") is None


def test_flatten_params_prefixes_stage_names_and_nests_tables() -> None:
    exp = Experiment(
        id="p",
        pipeline=[
            StageDef(name="a", options={"x": 1, "t": {"k": "v", "deep": {"n": None}}}),
            StageDef(name="a", options={"x": 2}),
            StageDef(name="b", options={"long": "y" * 7000, "bad key!": True}),
        ],
    )
    params = flatten_params(Context.new(exp))
    assert params["a.x"] == "1"
    assert params["a.t.k"] == "v"
    assert params["a.t.deep.n"] == "null"
    assert params["a.1.x"] == "2"
    assert len(params["b.long"]) == mlflow_log.MAX_PARAM_VALUE
    assert params["b.bad key_"] == "true"


def test_flatten_metrics_and_bench_split_numbers_from_verdicts() -> None:
    assert flatten_metrics(
        {"acc": 1, "ok": True, "name": "x", "nan": float("nan"), "s": [1, 2], "bench": {"a": 1}}
    ) == {"acc": [1.0], "s": [1.0, 2.0]}
    bench = {
        "tests_run": ["ttest"],
        "alpha": 0.05,
        "correction": "holm",
        "results": {
            "groups": ["a", "b"],
            "test_results": {
                "ttest": {
                    "test": "ttest",
                    "p_value": 0.01,
                    "p_value_adjusted": None,
                    "significant": True,
                    "confidence_interval": [0.1, 0.3],
                    "effect_size": {"cohens_d": 1.2, "interpretation": "large"},
                },
                "wilcoxon": {"test": "wilcoxon", "skipped": "n/a"},
            },
        },
        "group_stats": {"a": {"n": 5, "mean": 0.5}},
    }
    metrics, tags = flatten_bench(bench)
    assert metrics == {
        "bench.ttest.p_value": 0.01,
        "bench.ttest.confidence_interval.low": 0.1,
        "bench.ttest.confidence_interval.high": 0.3,
        "bench.ttest.effect_size.cohens_d": 1.2,
        "bench.group_stats.a.n": 5.0,
        "bench.group_stats.a.mean": 0.5,
    }
    assert tags == {
        "bench.ttest.significant": "true",
        "bench.ttest.effect_size.interpretation": "large",
        "bench.wilcoxon.skipped": "n/a",
        "bench.groups": "a,b",
        "bench.correction": "holm",
        "bench.alpha": "0.05",
        "bench.tests_run": "ttest",
    }


def test_without_mlflow_the_stage_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    ctx = Context.new(Experiment(id="x", pipeline=[StageDef(name="mlflow_log")]))
    with pytest.raises(MissingDependency) as info:
        log_run(ctx)
    assert "pip install 'crucible-actors[mlflow]'" in str(info.value)


async def test_the_bridge_logs_every_run_that_ends_with_its_status(mlflow_uri: str) -> None:
    opened = anyio.Event()

    @stage("gate")
    async def gate(ctx: Context, opts: Any) -> Context:
        await opened.wait()
        return ctx

    reg = registry_with(*STAGES, default=True)
    reg.register(gate)
    opts = MlflowLogOptions(tracking_uri=mlflow_uri, experiment_name="bridged")
    async with open_runtime(registry=reg) as rt, open_mlflow_bridge(rt, opts):
        ok = await rt.submit(Experiment(id="a", pipeline=[StageDef(name="scores")]), run_id="ok")
        bad = await rt.submit(Experiment(id="b", pipeline=[StageDef(name="boom")]), run_id="bad")
        held = await rt.submit(Experiment(id="c", pipeline=[StageDef(name="gate")]), run_id="held")
        await ok.wait()
        await bad.wait()
        await held.cancel()
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("bridged")
    assert experiment is not None
    runs = {
        r.data.tags["crucible.run_id"]: r for r in client.search_runs([experiment.experiment_id])
    }
    assert {k: r.info.status for k, r in runs.items()} == {
        "ok": "FINISHED",
        "bad": "FAILED",
        "held": "KILLED",
    }
    assert runs["ok"].data.metrics["accuracy"] == 0.8
    assert "crucible.duration_s" in runs["bad"].data.metrics
