"""Provenance in every store (memory, SQLite file and in-memory, PostgreSQL): environments
stored once by content, each run's provenance recorded by a real runtime, and its size."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, Registry, StageDef
from crucible_actors._core._provenance import load_provenance
from crucible_actors.store import EnvironmentRecord, open_store

from .test_contract import experiment, new_run

if TYPE_CHECKING:
    from crucible_actors.store import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ENV = {
    "python": "3.12.1",
    "crucible_actors": "0.1.0",
    "platform": "Linux",
    "host": "h1",
    "packages": {"numpy": "2.0.0"},
    "git": {"commit": "abc", "dirty": False},
}


async def test_an_environment_is_stored_once_and_reads_back(store: Store) -> None:
    env = EnvironmentRecord(id="e" * 32, record=ENV, created_at=T0)
    assert await store.get_environment("e" * 32) is None  # type: ignore[attr-defined]
    assert await store.put_environment(env) is True  # type: ignore[attr-defined]
    changed = EnvironmentRecord(id="e" * 32, record={**ENV, "host": "h2"}, created_at=T0)
    assert await store.put_environment(changed) is False  # type: ignore[attr-defined]
    assert await store.get_environment("e" * 32) == env  # type: ignore[attr-defined]


async def test_a_runs_provenance_round_trips_and_survives_its_outcome(store: Store) -> None:
    prov = {"environment": "e" * 32, "stages": {"a": "f" * 32}, "inputs": {"k": "d" * 32}}
    run = new_run("r1")
    run = ca.store.RunRecord(**{**_fields(run), "provenance": prov})
    await store.start_run(run, experiment=experiment())
    assert (await store.get_run("r1")).provenance == prov
    done = ca.store.RunRecord(**{**_fields(run), "status": "completed", "finished_at": T0})
    await store.finish_run(done, artifacts=[], events=[])
    assert (await store.get_run("r1")).provenance == prov
    assert [r.provenance for r in await store.list_runs()] == [prov]
    # A run recorded without provenance reads back without it.
    await store.start_run(new_run("r2"), experiment=experiment())
    assert (await store.get_run("r2")).provenance is None


def _fields(run: Any) -> dict[str, Any]:
    return {f: getattr(run, f) for f in run.__struct_fields__}


def registry() -> Registry:
    @ca.stage("load")
    def load(ctx: Context, opts: Any) -> Context:
        return ctx.assign("n", len(ctx.assigns["big"]))

    @ca.stage("score")
    def score(ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("n", ctx.assigns["n"])

    return registry_with(load, score)


@pytest.mark.slow
async def test_each_run_records_provenance_sharing_one_environment(store_url: str) -> None:
    reg = registry()
    exp = Experiment(id="prov", pipeline=[StageDef(name="load"), StageDef(name="score")])
    big = np.arange(100_000, dtype=np.float64)  # 800 KB: stored by content
    async with (
        open_store(store_url, migrate=True) as opened,
        ca.open_runtime(registry=reg, store=opened) as rt,
    ):
        handles = [await rt.submit(exp, assigns={"big": big}) for _ in range(3)]
        for h in handles:
            await h.wait()
        store = rt.store
        runs = [await store.get_run(h.run_id) for h in handles]
        provs = [r.provenance for r in runs]
        assert all(p is not None for p in provs)
        assert len({p["environment"] for p in provs if p}) == 1
        first = provs[0]
        assert first is not None
        assert set(first["stages"]) == {"load", "score"}
        assert all(len(fp) == 32 for fp in first["stages"].values())
        (key, digest), *_ = first["inputs"].items()
        assert key == "assigns['big']"
        assert store.blobs.exists(digest)  # the digest is the blob the value went to
        view = await load_provenance(store, first)
        assert view is not None
        assert view["packages"]["numpy"] == np.__version__
        assert view["python"]
        assert view["host"]
        # What one run adds to the store, once the environment record exists.
        assert len(json.dumps(first, separators=(",", ":"))) < 1024
    # The per-run part survives reopening the store (not only this process's memory).
    if not store_url.startswith(("memory:", "sqlite://:memory:")):
        async with open_store(store_url) as reopened:
            assert (await reopened.get_run(handles[0].run_id)).provenance == first


async def test_provenance_off_records_none(store_url: str) -> None:
    reg = registry()
    exp = Experiment(id="prov", pipeline=[StageDef(name="load"), StageDef(name="score")])
    async with (
        open_store(store_url, migrate=True) as opened,
        ca.open_runtime(registry=reg, store=opened, provenance=False) as rt,
    ):
        h = await rt.submit(exp, assigns={"big": [1, 2, 3]})
        await h.wait()
        assert (await rt.store.get_run(h.run_id)).provenance is None
