"""The stage result cache: keys, hits, what a hit records, and concurrent misses.

Every test runs on asyncio and trio against a real SQLite file store (the store contract
of the cache itself, on every store, is in ``tests/store/test_cache_contract.py``).
"""

from __future__ import annotations

import sqlite3
import sys
import textwrap
from contextlib import closing
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import registry_with
from tests.strategies import contexts, json_values

import crucible_actors as ca
from crucible_actors import CacheConfig, Context, Experiment, Registry, StageDef
from crucible_actors._core._cache import RESULT_FIELDS, apply_result, result_of
from crucible_actors._core._encoding import encode_context
from crucible_actors.errors import StoreUnavailable
from crucible_actors.store import open_store
from crucible_actors.testing import capture_spans

if TYPE_CHECKING:
    from pathlib import Path

    from crucible_actors import RunHandle


class Calls:
    """Counts how often each stage really ran."""

    def __init__(self) -> None:
        self.n: dict[str, int] = {}

    def hit(self, name: str) -> None:
        self.n[name] = self.n.get(name, 0) + 1


class ScoreOptions(msgspec.Struct):
    factor: int = 2
    label: str = "x"


def stages(calls: Calls) -> Registry:
    @ca.stage("load")
    async def load(ctx: Context, opts: Any) -> Context:
        calls.hit("load")
        rows = [{"id": i, "text": f"row {i}"} for i in range(opts.get("rows", 3))]
        return ctx.assign("rows", rows).add_outputs(rows)

    @ca.stage("score", options=ScoreOptions)
    async def score(ctx: Context, opts: ScoreOptions) -> Context:
        calls.hit("score")
        total = sum(r["id"] for r in ctx.assigns["rows"]) * opts.factor
        seed = ctx.telemetry_context.get("seed")
        return ctx.put_metric("total", total).put_metric("seed", seed).assign(label=opts.label)

    @ca.stage("score", options=ScoreOptions, version="2")
    async def score_v2(ctx: Context, opts: ScoreOptions) -> Context:
        calls.hit("score_v2")
        return ctx.put_metric("total", -1)

    @ca.stage("tally")
    async def tally(ctx: Context, opts: Any) -> Context:
        calls.hit("tally")
        return ctx.put_metric("tally", len(ctx.outputs))

    @ca.stage("side_effect", cacheable=False)
    async def side_effect(ctx: Context, opts: Any) -> Context:
        calls.hit("side_effect")
        return ctx.put_metric("written", True)

    reg = registry_with(load, score, tally, side_effect)
    reg.register(score_v2, name="score_v2")
    return reg


def pipeline(*, score_cache: bool | None = True, **score_opts: Any) -> list[StageDef]:
    return [
        StageDef(name="load", cache=True),
        StageDef(name="score", options=score_opts, cache=score_cache),
        StageDef(name="tally"),
    ]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cache.db"


async def run_once(
    url: str, reg: Registry, exp: Experiment, **submit: Any
) -> tuple[RunHandle, Context]:
    """Run ``exp`` in a runtime of its own (as separate processes would)."""
    async with ca.open_runtime(registry=reg, store=url) as rt:
        handle = await rt.submit(exp, **submit)
        return handle, await handle.result()


def types(handle: RunHandle) -> list[tuple[str, str | None]]:
    return [(e.type, e.stage) for e in handle.events_nowait()]


async def test_a_cached_stage_runs_once_and_later_runs_replay_its_result(url: str) -> None:
    calls = Calls()
    reg = stages(calls)
    exp = Experiment(id="c", pipeline=pipeline(factor=3))
    first, ctx1 = await run_once(url, reg, exp)
    second, ctx2 = await run_once(url, reg, exp)
    assert calls.n == {"load": 1, "score": 1, "tally": 2}
    for field in RESULT_FIELDS:
        assert getattr(ctx2, field) == getattr(ctx1, field)
    assert ctx2.metrics == {"total": 9, "seed": None, "tally": 3}
    assert ctx2.completed_stages() == ["load", "score", "tally"]
    assert ctx2.run_id == second.run_id != first.run_id
    assert types(second) == [
        ("run_started", None),
        ("stage_cached", "load"),
        ("stage_cached", "score"),
        ("stage_started", "tally"),
        ("stage_completed", "tally"),
        ("run_completed", None),
    ]
    cached = next(e for e in second.events_nowait() if e.type == "stage_cached")
    assert cached.data["source_run"] == first.run_id
    assert len(cached.data["key"]) == 64
    assert [(a.stage, a.status, a.cache_hit) for a in second.attempts] == [
        ("load", "completed", True),
        ("score", "completed", True),
        ("tally", "completed", False),
    ]
    async with open_store(url) as store:
        stored = await store.list_attempts(second.run_id)
        assert [(a.stage, a.status, a.cache_hit) for a in stored] == [
            ("load", "completed", True),
            ("score", "completed", True),
            ("tally", "completed", False),
        ]
        assert [a.cache_hit for a in await store.list_attempts(first.run_id)] == [False] * 3
        results = await store.list_cached_results()
        assert sorted(r.stage for r in results) == ["load", "score"]
        assert {r.run_id for r in results} == {first.run_id}
        run = await store.get_run(second.run_id)
        assert run.status == "completed"
        assert run.metrics == {"total": 9, "seed": None, "tally": 3}
    # No checkpoint commit after a hit (a resume finds the same hit again): the second run
    # wrote the initial Context and the final one only.
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:

        def indexes(run_id: str) -> list[int]:
            rows = conn.execute(
                "SELECT stage_index FROM checkpoints WHERE run_id = ? ORDER BY stage_index",
                (run_id,),
            )
            return [r[0] for r in rows]

        assert indexes(first.run_id) == [0, 1, 2, 3]
        assert indexes(second.run_id) == [0, 3]


async def test_the_key_follows_options_version_input_and_seed_not_run_ids(url: str) -> None:
    calls = Calls()
    reg = stages(calls)
    base = Experiment(id="c", pipeline=pipeline(factor=3))
    await run_once(url, reg, base)
    assert calls.n["score"] == 1
    # Another run id, other (non-seed) telemetry, explicit defaults: the same key.
    await run_once(url, reg, base, run_id="another", telemetry={"sweep_id": "s"})
    await run_once(url, reg, Experiment(id="c", pipeline=pipeline(factor=3, label="x")))
    assert calls.n["score"] == 1
    # Options of a stage are part of its key; a later stage's options are not.
    _, ctx = await run_once(url, reg, Experiment(id="c", pipeline=pipeline(factor=4)))
    assert calls.n["score"] == 2
    assert ctx.metrics["total"] == 12
    # Options changed in place between two runs of one Experiment object: a new key.
    mutable = Experiment(id="c", pipeline=pipeline(factor=5))
    await run_once(url, reg, mutable)
    assert mutable.pipeline[1].options is not None
    mutable.pipeline[1].options["factor"] = 6
    _, ctx = await run_once(url, reg, mutable)
    assert ctx.metrics["total"] == 18
    assert calls.n["score"] == 4
    # Another input Context (assigns seeded differently) misses.
    await run_once(url, reg, base, assigns={"extra": 1})
    assert calls.n["score"] == 5
    # The seed is an input: repeats of a sweep differ by it.
    _, seeded = await run_once(url, reg, base, telemetry={"seed": 7})
    assert calls.n["score"] == 6
    assert seeded.metrics["seed"] == 7
    await run_once(url, reg, base, telemetry={"seed": 7, "sweep_point": 3})
    assert calls.n["score"] == 6
    # A stage's declared version: the same name, options and input, another version.
    v2 = Experiment(
        id="c",
        pipeline=[StageDef(name="load", cache=True), StageDef(name="score_v2", cache=True)],
    )
    await run_once(url, reg, v2)
    await run_once(url, reg, v2)
    assert calls.n["score_v2"] == 1
    # The experiment's description is part of the input (only the pipeline, sweep,
    # cache settings, restart budget and timestamps are left out).
    await run_once(url, reg, Experiment(id="c", pipeline=pipeline(factor=3), description="new"))
    assert calls.n["score"] == 7
    assert calls.n["load"] == 4  # base, other assigns, seed 7, the new description


async def test_experiment_default_caches_every_stage_but_those_opting_out(url: str) -> None:
    calls = Calls()
    reg = stages(calls)
    exp = Experiment(
        id="d",
        pipeline=[
            StageDef(name="load"),
            StageDef(name="score", cache=False),
            StageDef(name="side_effect"),
            StageDef(name="tally"),
        ],
        cache=CacheConfig(default=True),
    )
    for _ in range(3):
        await run_once(url, reg, exp)
    assert calls.n == {"load": 1, "score": 3, "side_effect": 3, "tally": 1}


def test_the_cache_table_loads_from_a_file() -> None:
    exp = ca.load_experiment(
        b'id = "f"\n[cache]\ndefault = true\n[[pipeline]]\nname = "a"\ncache = false\n'
    )
    assert exp.cache == CacheConfig(default=True)
    assert exp.pipeline[0].cache is False
    with pytest.raises(ca.InvalidExperiment, match="cache"):
        ca.load_experiment(b'id = "f"\n[cache]\ndefualt = true\n[[pipeline]]\nname = "a"\n')
    assert Experiment(id="p", pipeline=[StageDef(name="a")], cache={"default": True}).cache == (
        CacheConfig(default=True)
    )


async def test_only_successful_attempts_are_stored(url: str) -> None:
    tries: list[int] = []

    @ca.stage("flaky")
    async def flaky(ctx: Context, opts: Any) -> Context:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("first try fails")
        return ctx.put_metric("try", len(tries))

    @ca.stage("broken")
    async def broken(ctx: Context, opts: Any) -> Context:
        tries.append(1)
        raise RuntimeError("always")

    reg = registry_with(flaky, broken)
    exp = Experiment(id="f", pipeline=[StageDef(name="flaky", restart="transient", cache=True)])
    _, ctx = await run_once(url, reg, exp)
    assert ctx.metrics == {"try": 2}
    handle, again = await run_once(url, reg, exp)
    assert again.metrics == {"try": 2}
    assert len(tries) == 2
    assert [(a.attempt, a.cache_hit) for a in handle.attempts] == [(1, True)]
    bad = Experiment(id="b", pipeline=[StageDef(name="broken", cache=True)])
    for _ in range(2):
        with pytest.raises(ca.StageFailed):
            await run_once(url, reg, bad)
    assert len(tries) == 4
    async with open_store(url) as store:
        assert [r.stage for r in await store.list_cached_results()] == ["flaky"]


async def test_no_cache_runs_every_stage_and_stores_nothing(url: str) -> None:
    calls = Calls()
    reg = stages(calls)
    exp = Experiment(id="n", pipeline=pipeline())
    await run_once(url, reg, exp, cache=False)
    async with open_store(url) as store:
        assert await store.list_cached_results() == []
    await run_once(url, reg, exp)
    handle, _ = await run_once(url, reg, exp, cache=False)
    assert calls.n == {"load": 3, "score": 3, "tally": 3}
    assert not any(a.cache_hit for a in handle.attempts)


async def test_a_hit_replays_removed_and_replaced_fields(url: str) -> None:
    calls = Calls()

    @ca.stage("prune")
    async def prune(ctx: Context, opts: Any) -> Context:
        calls.hit("prune")
        return msgspec.structs.replace(
            ctx, metrics={}, outputs=[*ctx.outputs, "added"], artifacts={"a": {"path": "p"}}
        )

    reg = registry_with(prune)
    exp = Experiment(id="p", pipeline=[StageDef(name="prune", cache=True)])
    seed = {"rows": list(range(5))}
    _, ctx1 = await run_once(url, reg, exp, assigns=seed)
    _, ctx2 = await run_once(url, reg, exp, assigns=seed)
    assert calls.n == {"prune": 1}
    assert ctx2.metrics == {} == ctx1.metrics
    assert ctx2.outputs == ["added"]
    assert ctx2.artifacts == {"a": {"path": "p"}}
    assert ctx2.assigns == {"rows": [0, 1, 2, 3, 4], "completed_stages": ["prune"]}


def test_a_result_holds_only_the_fields_the_stage_changed() -> None:
    exp = Experiment(id="u", pipeline=[StageDef(name="a")])
    before_ctx = Context.new(exp, run_id="r1").add_outputs([{"big": "x" * 1000}] * 50)
    after_ctx = before_ctx.put_metric("m", 1)
    before = msgspec.msgpack.decode(encode_context(before_ctx), type=dict[str, msgspec.Raw])
    result = result_of(before, encode_context(after_ctx))
    assert result is not None
    assert msgspec.msgpack.decode(result) == {"metrics": {"m": 1}}
    applied = msgspec.msgpack.decode(apply_result(before, result), type=Context)
    assert applied == after_ctx
    # A stage that replaced the experiment is not cached.
    other = msgspec.structs.replace(after_ctx, experiment=msgspec.structs.replace(exp, id="v"))
    assert result_of(before, encode_context(other)) is None
    with pytest.raises(ValueError, match="not a result's"):
        apply_result(before, msgspec.msgpack.encode({"run_id": "evil"}))


_edits = st.fixed_dictionaries(
    {},
    optional={
        "outputs": st.lists(json_values, max_size=3),
        "metrics": st.dictionaries(st.text(max_size=4), json_values, max_size=3),
        "artifacts": st.dictionaries(st.text(max_size=4), json_values, max_size=3),
        "assigns": st.dictionaries(st.text(max_size=4), json_values, max_size=3),
        "run_id": st.text(min_size=1, max_size=8),
        "telemetry_context": st.dictionaries(st.text(max_size=4), json_values, max_size=2),
    },
)


@pytest.mark.slow
@given(contexts(), _edits)
def test_applying_a_result_to_its_input_gives_the_output_fields(
    before_ctx: Context, edits: dict[str, Any]
) -> None:
    """For any input and any change of the result fields (and of volatile ones, which a
    result does not carry), a hit reproduces the output's result fields exactly."""
    after_ctx = msgspec.structs.replace(before_ctx, **edits)
    before = msgspec.msgpack.decode(encode_context(before_ctx), type=dict[str, msgspec.Raw])
    result = result_of(before, encode_context(after_ctx))
    assert result is not None
    applied = msgspec.msgpack.decode(apply_result(before, result), type=Context)
    expected = msgspec.msgpack.decode(encode_context(after_ctx), type=Context)
    original = msgspec.msgpack.decode(encode_context(before_ctx), type=Context)
    for field in RESULT_FIELDS:
        assert getattr(applied, field) == getattr(expected, field)
    # Everything else is the input's (the run's own): run id, telemetry, trace.
    assert applied.run_id == original.run_id
    assert applied.telemetry_context == original.telemetry_context
    assert applied.trace == original.trace
    assert applied.experiment == original.experiment


async def test_a_stage_that_replaces_the_experiment_is_not_cached(url: str) -> None:
    calls = Calls()

    @ca.stage("rewrite")
    async def rewrite(ctx: Context, opts: Any) -> Context:
        calls.hit("rewrite")
        new_exp = msgspec.structs.replace(ctx.experiment, description="rewritten")
        return msgspec.structs.replace(ctx, experiment=new_exp)

    reg = registry_with(rewrite)
    exp = Experiment(id="r", pipeline=[StageDef(name="rewrite", cache=True)])
    for _ in range(2):
        _, ctx = await run_once(url, reg, exp)
        assert ctx.experiment.description == "rewritten"
    assert calls.n == {"rewrite": 2}


async def test_two_runs_missing_one_key_at_once_compute_twice_and_store_once(
    tmp_path: Path,
) -> None:
    """Two runtimes on one SQLite file, each running the same stage at the same time."""
    url = f"sqlite:///{tmp_path}/shared.db"
    inside = 0
    both_inside = anyio.Event()
    handles: list[RunHandle] = []

    @ca.stage("slow")
    async def slow(ctx: Context, opts: Any) -> Context:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_inside.set()
        await both_inside.wait()  # neither finishes before both have missed
        return ctx.put_metric("value", 42)

    reg = registry_with(slow)
    exp = Experiment(id="s", pipeline=[StageDef(name="slow", cache=True)])
    async with (
        ca.open_runtime(registry=reg, store=url) as rt1,
        ca.open_runtime(registry=reg, store=url) as rt2,
    ):
        handles = [await rt1.submit(exp), await rt2.submit(exp)]
        ctxs = [await h.result() for h in handles]
    assert inside == 2
    assert [c.metrics for c in ctxs] == [{"value": 42}] * 2
    async with open_store(url) as store:
        results = await store.list_cached_results()
        assert len(results) == 1
        assert results[0].run_id in {h.run_id for h in handles}
    handle, ctx = await run_once(url, reg, exp)
    assert inside == 2
    assert ctx.metrics == {"value": 42}
    assert handle.attempts[0].cache_hit


async def test_a_failing_store_lookup_runs_the_stage(url: str) -> None:
    calls = Calls()
    reg = stages(calls)
    exp = Experiment(id="x", pipeline=pipeline())

    async with open_store(url) as store:

        class Failing:
            def __getattr__(self, name: str) -> Any:
                return getattr(store, name)

            async def get_cached_result(self, key: str) -> Any:
                raise StoreUnavailable("the cache table is gone", store=store.name)

        async with ca.open_runtime(registry=reg, store=Failing()) as rt:
            ctx = await (await rt.submit(exp)).result()
            ctx = await (await rt.submit(exp)).result()
    assert calls.n == {"load": 2, "score": 2, "tally": 2}
    assert ctx.metrics["total"] == 6


async def test_spans_say_whether_the_stage_was_a_hit(url: str) -> None:
    calls = Calls()
    reg = stages(calls)
    exp = Experiment(id="o", pipeline=pipeline()[:2])
    for round_ in range(2):
        with capture_spans() as capture:
            async with ca.open_runtime(
                registry=reg, store=url, tracer_provider=capture.provider
            ) as rt:
                await (await rt.submit(exp)).result()
        stage_spans = capture.spans("crucible.stage")
        attrs = {s.attributes["crucible.stage"]: dict(s.attributes or {}) for s in stage_spans}
        attempts = [s.attributes["crucible.stage"] for s in capture.spans("crucible.attempt")]
        if round_ == 0:
            assert attrs["score"]["crucible.cache_hit"] is False
            assert attempts == ["load", "score"]
        else:
            assert attrs["score"]["crucible.cache_hit"] is True
            assert attrs["load"]["crucible.cache_hit"] is True
            assert len(str(attrs["score"]["crucible.cache_key"])) == 64
            assert attempts == []  # nothing ran
            assert all(s.status.is_ok for s in stage_spans)


async def test_a_traced_run_records_the_cached_stage_in_its_decision_trace(url: str) -> None:
    calls = Calls()
    reg = stages(calls)
    exp = Experiment(id="t", pipeline=pipeline()[:2])
    await run_once(url, reg, exp, enable_trace=True)
    _, ctx = await run_once(url, reg, exp, enable_trace=True)
    assert calls.n == {"load": 1, "score": 1}
    assert ctx.trace is not None
    events = [(e.type, e.stage_id) for e in ctx.trace.events]
    assert events == [
        ("stage_start", "load"),
        ("stage_complete", "load"),
        ("stage_start", "score"),
        ("stage_complete", "score"),
    ]
    assert "from the cache" in ctx.trace.events[-1].reasoning


async def test_a_sweep_run_again_takes_every_point_from_the_cache(url: str) -> None:
    calls = Calls()
    reg = stages(calls)
    exp = Experiment(
        id="sw",
        pipeline=[StageDef(name="load"), StageDef(name="score")],
        cache=CacheConfig(default=True),
        sweep={"score.factor": [1, 2], "score.label": ["a", "b"], "repeats": 2},
    )

    async def sweep() -> list[RunHandle]:
        async with ca.open_runtime(registry=reg, store=url) as rt:
            handle = await rt.submit_sweep(exp, max_concurrent=1)
            await handle.wait()
            return handle.runs()

    first = await sweep()
    # Every run has its own seed, part of every key: nothing is shared between runs.
    assert calls.n == {"load": 8, "score": 8}
    again = await sweep()
    assert calls.n == {"load": 8, "score": 8}
    assert all(a.cache_hit for run in again for a in run.attempts)
    assert [r.context.metrics if r.context else None for r in again] == [
        r.context.metrics if r.context else None for r in first
    ]


STAGES = textwrap.dedent(
    """
    import os
    import crucible_actors as ca

    @ca.stage("pid")
    async def pid(ctx, opts):
        return ctx.put_metric("pid", os.getpid())
    """
)


@pytest.mark.slow
async def test_a_process_isolated_stage_uses_the_same_cache(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    (tmp_path / "cache_iso_stages.py").write_text(STAGES)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("cache_iso_stages", None)
    import cache_iso_stages  # type: ignore[import-not-found]

    reg = registry_with(cache_iso_stages.pid)
    exp = Experiment(id="iso", pipeline=[StageDef(name="pid", isolation="process", cache=True)])
    _, ctx1 = await run_once(url, reg, exp)
    assert ctx1.metrics["pid"] != os.getpid()
    handle, ctx2 = await run_once(url, reg, exp)
    assert ctx2.metrics == ctx1.metrics  # replayed: no worker process ran it again
    assert handle.attempts[0].cache_hit
    # Run inline, the same stage, options and input have the same key.
    inline = Experiment(id="iso", pipeline=[StageDef(name="pid", cache=True)])
    handle, ctx3 = await run_once(url, reg, inline)
    assert handle.attempts[0].cache_hit
    assert ctx3.metrics == ctx1.metrics


def test_the_built_in_stages_with_side_effects_are_not_cacheable() -> None:
    reg = Registry.default()
    not_cacheable = {
        name
        for name in ("validate", "data_checks", "guardrails", "bench", "report", "mlflow_log")
        if getattr(reg.resolve(name), "cacheable", True) is False
    }
    assert not_cacheable == {"validate", "report", "mlflow_log"}


async def test_run_async_uses_the_cache_of_its_store_unless_told_not_to(url: str) -> None:
    calls = Calls()
    reg = stages(calls)
    exp = Experiment(id="ra", pipeline=pipeline())
    first = await ca.run_async(exp, registry=reg, store=url)
    again = await ca.run_async(exp, registry=reg, store=url)
    await ca.run_async(exp, registry=reg, store=url, cache=False)
    assert again.metrics == first.metrics
    assert calls.n == {"load": 2, "score": 2, "tally": 3}
