"""The results API: run columns, sort and filter, available columns, sweeps, outputs.

A real runtime over a SQLite file runs a small sweep of a ``score`` stage (metric
``accuracy`` from its options and the run's seed, one output per example) and the app is
asked about it in-process, on both anyio backends.
"""

from __future__ import annotations

import statistics
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import pytest
from tests.helpers import registry_with

from crucible_actors import Context, Stage, open_runtime
from crucible_actors.serve import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from crucible_actors import Runtime


class Score(Stage):
    """Metric ``accuracy`` = base[model] + lr/10 + seed/1000; outputs ``examples`` rows."""

    name = "score"

    class Options(msgspec.Struct):
        model: str = "small"
        lr: float = 0.1
        examples: int = 3

    async def run(self, ctx: Context, opts: Any) -> Context:
        seed = int(ctx.telemetry_context.get("seed", 0))
        base = {"small": 0.5, "large": 0.7}[opts.model]
        accuracy = round(base + opts.lr / 10 + seed / 1000, 6)
        rows = [
            {"id": f"q{i:03d}", "answer": f"{opts.model}-{i}", "score": i % 2}
            for i in range(opts.examples)
        ]
        return (
            ctx.add_outputs(rows)
            .put_metric("accuracy", accuracy)
            .put_metric("detail", {"loss": 1 - accuracy})
        )


SWEEP = {
    "id": "grid",
    "pipeline": [{"name": "score", "options": {"examples": 3}}],
    "sweep": {
        "mode": "grid",
        "repeats": 2,
        "seed": 0,
        "parameters": {"score.model": ["small", "large"], "score.lr": [0.1, 0.5]},
    },
}


@asynccontextmanager
async def _app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    reg = registry_with(Score)
    async with open_runtime(registry=reg, store=f"sqlite:///{tmp_path / 'r.db'}") as rt:
        transport = httpx.ASGITransport(app=create_app(rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, rt


async def _sweep(rt: Runtime) -> tuple[str, list[str]]:
    handle = await rt.submit_sweep(SWEEP)
    await handle.wait()
    return handle.sweep_id, [p.run_id for p in handle.points]


async def _stored_sweep(tmp_path: Path) -> tuple[str, list[str]]:
    """Run the sweep in a runtime that then closes (the sweep's outcome is stored)."""
    reg = registry_with(Score)
    async with open_runtime(registry=reg, store=f"sqlite:///{tmp_path / 'r.db'}") as rt:
        return await _sweep(rt)


async def test_runs_list_returns_chosen_metric_and_parameter_columns(tmp_path: Path) -> None:
    async with _app(tmp_path) as (client, rt):
        sweep_id, run_ids = await _sweep(rt)
        single = await rt.submit(
            {"id": "one", "pipeline": [{"name": "score", "options": {"model": "large"}}]}
        )
        await single.wait()
        resp = await client.get(
            "/api/runs",
            params={"columns": "metrics.accuracy,params.score.model,params.score.lr"},
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["columns"] == ["metrics.accuracy", "params.score.model", "params.score.lr"]
        rows = {r["id"]: r for r in body["runs"]}
        assert len(rows) == 9
        # The single run: its definition's option; lr left to the stage's default (unknown).
        assert rows[single.run_id]["columns"] == {
            "metrics.accuracy": 0.71,
            "params.score.model": "large",
            "params.score.lr": None,
        }
        assert rows[single.run_id]["sweep_id"] is None
        # Sweep runs: their own point's values, and the sweep they belong to.
        points = [("small", 0.1), ("small", 0.1), ("small", 0.5), ("small", 0.5)]
        points += [("large", 0.1), ("large", 0.1), ("large", 0.5), ("large", 0.5)]
        for index, (run_id, (model, lr)) in enumerate(zip(run_ids, points, strict=True)):
            cells = rows[run_id]["columns"]
            base = {"small": 0.5, "large": 0.7}[model]
            assert cells["params.score.model"] == model
            assert cells["params.score.lr"] == lr
            assert cells["metrics.accuracy"] == pytest.approx(base + lr / 10 + index / 1000)
            assert rows[run_id]["sweep_id"] == sweep_id
        # Nested metrics by dotted path.
        resp = await client.get("/api/runs", params={"columns": "metrics.detail.loss"})
        loss = {r["id"]: r["columns"]["metrics.detail.loss"] for r in resp.json()["runs"]}
        assert loss[single.run_id] == pytest.approx(0.29)


async def test_runs_list_sorts_and_filters_by_a_column_server_side(tmp_path: Path) -> None:
    async with _app(tmp_path) as (client, rt):
        _, run_ids = await _sweep(rt)
        resp = await client.get(
            "/api/runs",
            params={"columns": "metrics.accuracy", "sort": "-metrics.accuracy", "limit": "3"},
        )
        body = resp.json()
        accuracies = [r["columns"]["metrics.accuracy"] for r in body["runs"]]
        assert accuracies == sorted(accuracies, reverse=True)
        assert [r["id"] for r in body["runs"]] == [run_ids[7], run_ids[6], run_ids[5]]
        assert (body["total"], body["offset"], body["next_offset"]) == (8, 0, 3)
        assert body["truncated"] is False
        # The next pages continue the same order.
        seen = [r["id"] for r in body["runs"]]
        offset = body["next_offset"]
        while offset is not None:
            page = (
                await client.get(
                    "/api/runs",
                    params={"sort": "-metrics.accuracy", "limit": "3", "offset": str(offset)},
                )
            ).json()
            seen += [r["id"] for r in page["runs"]]
            offset = page["next_offset"]
        assert seen == list(reversed(run_ids))
        # Ascending by a parameter, ties kept newest first; filters combine (AND).
        resp = await client.get(
            "/api/runs",
            params=[
                ("sort", "params.score.lr"),
                ("filter", "params.score.model=large"),
                ("filter", "metrics.accuracy>=0.75"),
                ("columns", "params.score.lr"),
            ],
        )
        body = resp.json()
        assert [r["id"] for r in body["runs"]] == [run_ids[7], run_ids[6]]
        assert body["total"] == 2
        resp = await client.get("/api/runs", params={"filter": "params.score.model~LAR"})
        assert {r["id"] for r in resp.json()["runs"]} == set(run_ids[4:])
        # Run fields sort too.
        resp = await client.get("/api/runs", params={"sort": "id", "limit": "200"})
        ids = [r["id"] for r in resp.json()["runs"]]
        assert ids == sorted(run_ids)


async def test_malformed_columns_sort_and_filters_are_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    async with _app(tmp_path) as (client, _):
        cases = [
            ({"columns": "accuracy"}, "column 'accuracy': expected 'metrics.<name>'"),
            ({"columns": "params.score"}, "column 'params.score': expected"),
            ({"columns": "metrics."}, "column 'metrics.': expected"),
            ({"sort": "-nope"}, "sort: column 'nope': expected"),
            ({"filter": "metrics.accuracy"}, "filter: expected <column><op><value>"),
            ({"filter": "bogus>1"}, "filter: column 'bogus': expected"),
            ({"offset": "3"}, "offset: only with sort or filter"),
            ({"offset": "-1", "sort": "id"}, "offset: expected an integer"),
            (
                {"columns": ",".join(f"metrics.m{i}" for i in range(51))},
                "columns: at most 50 columns, got 51",
            ),
        ]
        for params, message in cases:
            resp = await client.get("/api/runs", params=params)
            assert resp.status_code == 422, params
            error = resp.json()["error"]
            assert error["type"] == "InvalidParameter"
            assert message in error["message"], (params, error["message"])


async def test_columns_endpoint_offers_the_metrics_and_parameters_present(
    tmp_path: Path,
) -> None:
    async with _app(tmp_path) as (client, rt):
        await _sweep(rt)
        resp = await client.get("/api/columns")
        assert resp.status_code == 200
        assert resp.json() == {
            "metrics": ["metrics.accuracy", "metrics.detail.loss"],
            "params": ["params.score.examples"],
            "sweep": ["params.score.lr", "params.score.model"],
        }
        empty = await client.get("/api/columns", params={"experiment_id": "none"})
        assert empty.json() == {"metrics": [], "params": [], "sweep": []}


async def test_sweep_endpoint_summarises_repeats_per_point(tmp_path: Path) -> None:
    sweep_id, run_ids = await _stored_sweep(tmp_path)
    async with _app(tmp_path) as (client, _):
        resp = await client.get(f"/api/sweeps/{sweep_id}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["id"], body["experiment_id"], body["status"]) == (
            sweep_id,
            "grid",
            "completed",
        )
        assert body["parameters"] == SWEEP["sweep"]["parameters"]  # type: ignore[index]
        assert (body["repeats"], body["runs"]) == (2, 8)
        assert body["metrics"] == ["accuracy", "detail.loss"]
        assert [p["parameters"] for p in body["points"]] == [
            {"score.model": "small", "score.lr": 0.1},
            {"score.model": "small", "score.lr": 0.5},
            {"score.model": "large", "score.lr": 0.1},
            {"score.model": "large", "score.lr": 0.5},
        ]
        first = body["points"][0]
        assert [r["run_id"] for r in first["runs"]] == run_ids[:2]
        values = [r["metrics"]["accuracy"] for r in first["runs"]]
        summary = first["summary"]["accuracy"]
        assert summary["n"] == 2
        assert summary["mean"] == pytest.approx(statistics.mean(values))
        assert summary["sd"] == pytest.approx(statistics.stdev(values))
        assert (summary["min"], summary["max"]) == (min(values), max(values))
        resp = await client.get("/api/sweeps/nope")
        assert resp.status_code == 404
        assert resp.json()["error"]["type"] == "SweepNotFound"


async def test_run_detail_names_its_sweep(tmp_path: Path) -> None:
    async with _app(tmp_path) as (client, rt):
        sweep_id, run_ids = await _sweep(rt)
        detail = (await client.get(f"/api/runs/{run_ids[3]}")).json()
        assert detail["sweep_id"] == sweep_id


async def test_outputs_are_paged_and_searched_server_side(tmp_path: Path) -> None:
    async with _app(tmp_path) as (client, rt):
        handle = await rt.submit(
            {"id": "many", "pipeline": [{"name": "score", "options": {"examples": 1797}}]}
        )
        await handle.wait()
        url = f"/api/runs/{handle.run_id}/outputs"
        page = (await client.get(url, params={"offset": "100", "limit": "25"})).json()
        assert (page["total"], page["matched"], page["offset"], page["limit"]) == (
            1797,
            1797,
            100,
            25,
        )
        assert page["fields"] == ["id", "answer", "score"]
        assert [o["index"] for o in page["outputs"]] == list(range(100, 125))
        assert page["outputs"][0]["value"] == {"id": "q100", "answer": "small-100", "score": 0}
        # Search: case-insensitive, over the whole output; indexes stay the originals.
        found = (await client.get(url, params={"q": "Q17", "limit": "500"})).json()
        assert found["matched"] == 10 + 97  # q170..q179 and q1700..q1796
        assert all(o["value"]["id"].startswith("q17") for o in found["outputs"])
        assert found["outputs"][0]["index"] == 170
        none = (await client.get(url, params={"q": "absent"})).json()
        assert (none["matched"], none["outputs"]) == (0, [])
        bad = await client.get(url, params={"limit": "0"})
        assert bad.status_code == 422
        missing = await client.get("/api/runs/nope/outputs")
        assert missing.status_code == 404


async def test_runs_without_a_store_still_have_columns(tmp_path: Path) -> None:
    reg = registry_with(Score)
    async with open_runtime(registry=reg) as rt:
        transport = httpx.ASGITransport(app=create_app(rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            handle = await rt.submit(
                {"id": "mem", "pipeline": [{"name": "score", "options": {"lr": 0.3}}]}
            )
            await handle.wait()
            body = (
                await client.get(
                    "/api/runs",
                    params={"columns": "metrics.accuracy,params.score.lr", "sort": "-id"},
                )
            ).json()
            assert body["runs"][0]["columns"] == {
                "metrics.accuracy": pytest.approx(0.53),
                "params.score.lr": 0.3,
            }
            assert (await client.get("/api/sweeps/x")).status_code == 503
