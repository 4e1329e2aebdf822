"""Each run's own experiment definition, stored once by content, in every store.

The experiment record is overwritten each time its id is submitted again, so the
options of older runs of that id must come from the definition each run recorded
(``provenance["definition"]``): the ``params.*`` columns of ``GET /api/runs``,
``/api/columns``, the run detail and ``runs list --columns``, sorted and filtered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import msgspec
import pytest
from tests.helpers import missing_extra, registry_with

pytest.importorskip("starlette", reason=missing_extra("serve"))

from crucible_actors import Context, Stage, open_runtime
from crucible_actors._core._provenance import definition_id, load_definitions
from crucible_actors.cli import main
from crucible_actors.serve import create_app
from crucible_actors.serve._results import Results
from crucible_actors.store import DefinitionRecord, open_store

if TYPE_CHECKING:
    from crucible_actors.store import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
EXP = "tuned"


class Score(Stage):
    """Metric ``accuracy`` = base[model] + lr/10."""

    name = "score"

    class Options(msgspec.Struct):
        model: str = "small"
        lr: float = 0.1
        examples: int = 3

    async def run(self, ctx: Context, opts: Any) -> Context:
        base = {"small": 0.5, "large": 0.7}[opts.model]
        return ctx.put_metric("accuracy", round(base + opts.lr / 10, 6))


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (Score,)


def _definition(**options: Any) -> dict[str, Any]:
    return {"id": EXP, "pipeline": [{"name": "score", "options": options}]}


async def _record_runs(store: Any) -> list[str]:
    """Run experiment ``tuned`` three times, its options edited between runs.

    The first two runs record provenance (so their own definition); the third, run with
    provenance off, has none and is the latest definition submitted under the id.
    Returns the run ids, oldest first.
    """
    ids = []
    async with open_runtime(registry=registry_with(*STAGES), store=store) as rt:
        for options in (
            {"model": "small", "lr": 0.1, "examples": 2},
            {"model": "large", "lr": 0.5},
        ):
            handle = await rt.submit(_definition(**options))
            await handle.wait()
            ids.append(handle.run_id)
    async with open_runtime(registry=registry_with(*STAGES), store=store, provenance=False) as rt:
        handle = await rt.submit(_definition(model="large", lr=0.9))
        await handle.wait()
        ids.append(handle.run_id)
    return ids


async def test_a_definition_is_stored_once_and_read_back_in_one_call(store: Store) -> None:
    first = _definition(model="small")
    record = DefinitionRecord(id=definition_id(first), definition=first, created_at=T0)
    put = store.put_definition  # type: ignore[attr-defined]
    get = store.get_definitions  # type: ignore[attr-defined]
    assert await get([record.id]) == {}
    assert await put(record) is True
    assert await put(record) is False
    second = _definition(model="large")
    other = DefinitionRecord(id=definition_id(second), definition=second, created_at=T0)
    assert await put(other) is True
    # Missing ids are left out; more ids than one IN (...) query takes still work.
    wanted = [f"{i:032x}" for i in range(1200)] + [other.id, record.id, record.id]
    assert await get(wanted) == {record.id: record, other.id: other}
    # The id is the content's: key order does not matter, a value does.
    assert definition_id({"pipeline": first["pipeline"], "id": EXP}) == record.id
    assert record.id != other.id


async def test_runs_of_one_experiment_id_keep_their_own_options(store_url: str) -> None:
    async with open_store(store_url, migrate=True) as store:
        old, new, bare = await _record_runs(store)
        runs = {r.id: r for r in await store.list_runs(experiment_id=EXP)}
        provs = [runs[old].provenance, runs[new].provenance]
        assert all(p is not None and len(p["definition"]) == 32 for p in provs)
        assert provs[0] != provs[1]
        assert provs[0]["definition"] != provs[1]["definition"]  # type: ignore[index]
        assert runs[bare].provenance is None
        latest = await store.get_experiment(EXP)
        assert latest is not None
        definitions = await load_definitions(store, [runs[old], runs[new], runs[bare]])
        assert [d["pipeline"][0]["options"] for d in definitions if d] == [
            {"model": "small", "lr": 0.1, "examples": 2},
            {"model": "large", "lr": 0.5},
            {"model": "large", "lr": 0.9},
        ]
        assert definitions[2] == latest.definition  # no digest: the experiment record's

        async with open_runtime(registry=registry_with(*STAGES), store=store) as rt:
            transport = httpx.ASGITransport(app=create_app(rt))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await _check_api(client, old, new, bare)


async def _check_api(client: httpx.AsyncClient, old: str, new: str, bare: str) -> None:
    cols = "params.score.model,params.score.lr,metrics.accuracy"
    body = (await client.get("/api/runs", params={"columns": cols})).json()
    values = {r["id"]: r["columns"] for r in body["runs"]}
    assert values[old] == {
        "params.score.model": "small",
        "params.score.lr": 0.1,
        "metrics.accuracy": pytest.approx(0.51),
    }
    assert values[new]["params.score.model"] == "large"
    assert values[new]["params.score.lr"] == 0.5
    assert values[bare]["params.score.lr"] == 0.9
    # Sorted and filtered by the runs' own options, server side.
    for sort, order in (
        ("params.score.lr", [old, new, bare]),
        ("-params.score.lr", [bare, new, old]),
    ):
        body = (await client.get("/api/runs", params={"columns": cols, "sort": sort})).json()
        assert [r["id"] for r in body["runs"]] == order, sort
    body = (await client.get("/api/runs", params={"filter": "params.score.model=small"})).json()
    assert [r["id"] for r in body["runs"]] == [old]
    body = (await client.get("/api/runs", params={"filter": "params.score.lr<0.6"})).json()
    assert {r["id"] for r in body["runs"]} == {old, new}
    # Only the oldest definition sets ``examples``: it is offered as a column all the same.
    offered = (await client.get("/api/columns")).json()
    assert offered["params"] == ["params.score.examples", "params.score.lr", "params.score.model"]
    detail = (await client.get(f"/api/runs/{old}")).json()
    assert detail["experiment"]["pipeline"][0]["options"]["model"] == "small"
    assert detail["provenance"]["definition"] is not None


class CountingStore:
    """A store that counts the definition and experiment reads made through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.definition_calls: list[list[str]] = []
        self.experiment_calls: list[str] = []

    async def get_definitions(self, ids: list[str]) -> dict[str, DefinitionRecord]:
        self.definition_calls.append(list(ids))
        found: dict[str, DefinitionRecord] = await self.inner.get_definitions(ids)
        return found

    async def get_experiment(self, experiment_id: str) -> Any:
        self.experiment_calls.append(experiment_id)
        return await self.inner.get_experiment(experiment_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_columns_read_each_distinct_definition_once_per_request() -> None:
    async with open_store("memory://") as store:
        async with open_runtime(registry=registry_with(*STAGES), store=store) as rt:
            for lr in (0.1, 0.2) * 10:
                handle = await rt.submit(_definition(lr=lr))
                await handle.wait()
        records = await store.list_runs(limit=100)
        counting = CountingStore(store)
        values = await Results().columns_of(counting, records, ["params.score.lr"])
        assert sorted(v["params.score.lr"] for v in values) == [0.1] * 10 + [0.2] * 10
        assert [len(c) for c in counting.definition_calls] == [2]
        assert counting.experiment_calls == []


def test_runs_list_columns_shows_each_runs_own_options(
    shared_store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def record() -> list[str]:
        async with open_store(shared_store_url, migrate=True) as store:
            return await _record_runs(store)

    old, new, bare = anyio.run(record, backend="trio")
    cols = "params.score.model,params.score.lr"
    argv = ["runs", "list", "--store", shared_store_url, "--columns", cols]
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    values = dict(zip((r["id"] for r in doc["runs"]), doc["values"], strict=True))
    assert values == {
        old: {"params.score.model": "small", "params.score.lr": 0.1},
        new: {"params.score.model": "large", "params.score.lr": 0.5},
        bare: {"params.score.model": "large", "params.score.lr": 0.9},
    }
    assert main(argv) == 0
    rows = {line.split()[0]: line.split()[-2:] for line in capsys.readouterr().out.splitlines()}
    assert rows[old] == ["small", "0.1"]
    assert rows[new] == ["large", "0.5"]
    assert main(["runs", "diff", old, new, "--store", shared_store_url, "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    options = {d["key"]: (d["a"], d["b"]) for d in diff["options"]}
    assert options["score.model"] == ("small", "large")
    assert options["score.lr"] == (0.1, 0.5)


class CountingWrites(CountingStore):
    """A store that also counts the definitions written through it."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.puts: list[str] = []

    async def put_definition(self, definition: DefinitionRecord) -> bool:
        self.puts.append(definition.id)
        stored: bool = await self.inner.put_definition(definition)
        return stored


async def test_a_definition_is_written_once_and_sweep_points_keep_their_own() -> None:
    async with open_store("memory://") as inner:
        store = CountingWrites(inner)
        async with open_runtime(registry=registry_with(*STAGES), store=store) as rt:
            exp = _definition(model="small")
            for _ in range(4):
                await (await rt.submit(exp)).wait()
            sweep = await rt.submit_sweep(
                {
                    **_definition(examples=5),
                    "sweep": {"repeats": 2, "parameters": {"score.lr": [0.2, 0.4]}},
                }
            )
            await sweep.wait()
        # One write per distinct definition: the plain runs' one, then one per sweep point
        # (its two repeats share it).
        assert len(store.puts) == len(set(store.puts)) == 3
        runs = await inner.list_runs(limit=100)
        assert len(runs) == 8
        point_runs = [r for r in runs if r.id in {p.run_id for p in sweep.points}]
        by_def = {r.provenance["definition"] for r in point_runs if r.provenance}
        assert len(by_def) == 2
        defs = await load_definitions(inner, point_runs)
        assert {d["pipeline"][0]["options"]["lr"] for d in defs if d} == {0.2, 0.4}
        # Columns the sweep varies come from the point records: no definition is read.
        store.definition_calls.clear()
        values = await Results().columns_of(store, point_runs, ["params.score.lr"])
        assert sorted(v["params.score.lr"] for v in values) == [0.2, 0.2, 0.4, 0.4]
        assert store.definition_calls == []
        values = await Results().columns_of(store, point_runs, ["params.score.examples"])
        assert [v["params.score.examples"] for v in values] == [5] * 4
        assert [len(c) for c in store.definition_calls] == [2]
