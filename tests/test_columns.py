"""Result columns (``metrics.<name>``, ``params.<stage>.<option>``): one syntax for the
CLI's ``runs list --columns`` and the dashboard's ``GET /api/runs?columns=``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crucible_actors._core.persistence._columns import parse_columns, run_columns
from crucible_actors._core.persistence._store import RunRecord

DEFINITION = {
    "id": "exp",
    "pipeline": [
        {"name": "load", "options": {"rows": 100}},
        {"stage": "my_stages:cv_eval", "options": {"model": "svc", "grid": {"C": 1.0}}},
        {"name": "bench", "stage": "my_stages:cv_eval", "options": {"model": "ignored"}},
    ],
}


def test_parse_columns_splits_strips_and_deduplicates() -> None:
    cols = parse_columns(" metrics.accuracy, params.cv_eval.model,,metrics.accuracy ")
    assert cols == ["metrics.accuracy", "params.cv_eval.model"]
    assert parse_columns(["metrics.a"]) == ["metrics.a"]


@pytest.mark.parametrize("bad", ["accuracy", "metrics.", "params.cv_eval", "params..x", "run.id"])
def test_parse_columns_names_a_bad_column_and_both_forms(bad: str) -> None:
    with pytest.raises(ValueError, match=r"params\.<stage label>\.<option>") as info:
        parse_columns(f"metrics.ok,{bad}")
    assert repr(bad) in str(info.value)


def test_metrics_whole_name_first_then_nested_path() -> None:
    run = RunRecord(
        id="r",
        experiment_id="exp",
        status="completed",
        metrics={"accuracy": 0.9, "bench.p": 0.01, "bench": {"t": 2.5, "p": 0.5}},
        started_at=datetime.now(UTC),
    )
    got = run_columns(run, ["metrics.accuracy", "metrics.bench.p", "metrics.bench.t", "metrics.f1"])
    assert got == {
        "metrics.accuracy": 0.9,
        "metrics.bench.p": 0.01,
        "metrics.bench.t": 2.5,
        "metrics.f1": None,
    }


def test_params_from_the_definition_by_name_reference_or_qualname() -> None:
    run: dict[str, Any] = {"metrics": {}}
    got = run_columns(
        run,
        [
            "params.load.rows",
            "params.cv_eval.model",
            "params.cv_eval.grid.C",
            "params.bench.model",
            "params.cv_eval.missing",
            "params.nope.x",
        ],
        definition=DEFINITION,
    )
    assert got == {
        "params.load.rows": 100,
        "params.cv_eval.model": "svc",
        "params.cv_eval.grid.C": 1.0,
        "params.bench.model": "ignored",
        "params.cv_eval.missing": None,
        "params.nope.x": None,
    }


def test_a_sweep_points_parameters_win_over_the_definition() -> None:
    got = run_columns(
        {"metrics": {"accuracy": 0.5}},
        ["params.cv_eval.model", "params.load.rows", "metrics.accuracy"],
        definition=DEFINITION,
        parameters={"cv_eval.model": "rf"},
    )
    assert got == {"params.cv_eval.model": "rf", "params.load.rows": 100, "metrics.accuracy": 0.5}


def test_no_definition_gives_none_not_an_error() -> None:
    assert run_columns({"metrics": None}, ["params.a.b", "metrics.x"]) == {
        "params.a.b": None,
        "metrics.x": None,
    }
