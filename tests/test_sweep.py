"""Sweeps: the [sweep] table, its expansion and checks, and sweeps run by the runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, InvalidExperiment, Registry, StageDef
from crucible_actors._core._sweep import check_sweep_options, expand, point_experiment
from crucible_actors.store import open_store

if TYPE_CHECKING:
    from pathlib import Path


class ModelOptions(msgspec.Struct):
    temperature: float = 0.0
    model: str = "a"
    sampling: dict[str, Any] = {}


def model_stage(log: list[dict[str, Any]] | None = None) -> Any:
    @ca.stage("call_model", options=ModelOptions)
    async def call_model(ctx: Context, opts: ModelOptions) -> Context:
        if log is not None:
            log.append(
                {"temperature": opts.temperature, "model": opts.model, **ctx.telemetry_context}
            )
        return ctx.put_metric("temperature", opts.temperature).put_metric("model", opts.model)

    return call_model


def registry(*stages: Any) -> Registry:
    return registry_with(*(stages or (model_stage(),)))


def swept(**sweep: Any) -> Experiment:
    return Experiment(
        id="sw", pipeline=[StageDef(name="load"), StageDef(name="call_model")], sweep=sweep
    )


# -- the [sweep] table ------------------------------------------------------------------

TOML = b"""
id = "sw"
[[pipeline]]
name = "call_model"
[sweep]
repeats = 2
seed = 100
"call_model.temperature" = [0.0, 0.7]
call_model.model = ["a", "b", "c"]
"""


def test_sweep_table_takes_quoted_and_nested_paths() -> None:
    exp = ca.load_experiment(TOML)
    assert exp.sweep == ca.Sweep(
        parameters={"call_model.temperature": [0.0, 0.7], "call_model.model": ["a", "b", "c"]},
        repeats=2,
        seed=100,
    )
    assert exp.sweep.size == 6


def test_sweep_round_trips_through_json() -> None:
    exp = ca.load_experiment(TOML)
    again = ca.load_experiment(msgspec.json.encode(exp), format="json")
    assert again.sweep == exp.sweep


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('"call_model.temperature" = []', "sweep.call_model.temperature: empty value list"),
        (
            '"call_modle.temperature" = [1]',
            "no stage named 'call_modle' in the pipeline; did you mean 'call_model'?",
        ),
        (
            '"call_model.temperature" = 0.5',
            "sweep.call_model.temperature: expected a list of values, got float",
        ),
        ("call_model = [1]", "sweep.call_model: an option path is 'stage.option'"),
        (
            'mode = "zip"\n"call_model.a" = [1]\n"call_model.b" = [1, 2]',
            "mode 'zip' needs value lists of equal length; call_model.a has 1, call_model.b has 2",
        ),
        ('repeats = 0\n"call_model.a" = [1]', "sweep.repeats: must be >= 1, got 0"),
        ('mode = "product"\n"call_model.a" = [1]', "sweep.mode: invalid enum value 'product'"),
        ("", "sweep: no parameters"),
    ],
)
def test_bad_sweep_table_names_the_path(table: str, message: str) -> None:
    data = b'id = "sw"\n[[pipeline]]\nname = "call_model"\n[sweep]\n' + table.encode()
    with pytest.raises(InvalidExperiment) as info:
        ca.load_experiment(data)
    assert message in str(info.value)
    assert info.value.source == "<bytes>"


def test_python_sweep_mapping_is_checked_like_the_file() -> None:
    with pytest.raises(InvalidExperiment, match="no stage named 'nope'"):
        swept(**{"nope.temperature": [1]})


# -- expansion ------------------------------------------------------------------------


def test_grid_is_the_product_with_the_last_path_fastest() -> None:
    sweep = ca.Sweep(parameters={"m.a": [1, 2], "m.b": ["x", "y", "z"]})
    assert sweep.size == 6
    assert expand(sweep) == [{"m.a": a, "m.b": b} for a in (1, 2) for b in ("x", "y", "z")]


def test_zip_pairs_the_lists_position_by_position() -> None:
    sweep = ca.Sweep(parameters={"m.a": [1, 2], "m.b": ["x", "y"]}, mode="zip")
    assert sweep.size == 2
    assert expand(sweep) == [{"m.a": 1, "m.b": "x"}, {"m.a": 2, "m.b": "y"}]


def test_point_experiment_sets_options_and_nested_paths_without_the_sweep() -> None:
    exp = Experiment(
        id="sw",
        pipeline=[StageDef(name="call_model", options={"model": "a", "sampling": {"top_k": 5}})],
        sweep={"call_model.temperature": [0.5], "call_model.sampling.top_p": [0.9]},
    )
    point = point_experiment(exp, {"call_model.temperature": 0.5, "call_model.sampling.top_p": 0.9})
    assert point.sweep is None
    assert point.pipeline[0].options == {
        "model": "a",
        "temperature": 0.5,
        "sampling": {"top_k": 5, "top_p": 0.9},
    }
    assert exp.pipeline[0].options == {"model": "a", "sampling": {"top_k": 5}}  # untouched


# -- checks against the registry ------------------------------------------------------


def test_option_not_in_the_stage_schema_is_rejected_listing_the_options() -> None:
    exp = Experiment(
        id="sw", pipeline=[StageDef(name="call_model")], sweep={"call_model.temprature": [1.0]}
    )
    with pytest.raises(InvalidExperiment) as info:
        check_sweep_options(exp, registry())
    assert str(info.value) == (
        "invalid experiment: sweep.call_model.temprature: stage 'call_model' has no option"
        " 'temprature' in its schema (options: model, sampling, temperature); fix the path or"
        " declare the option"
    )


def test_value_of_the_wrong_type_is_rejected_with_its_position() -> None:
    exp = Experiment(
        id="sw",
        pipeline=[StageDef(name="call_model")],
        sweep={"call_model.temperature": [0.1, "hot"]},
    )
    with pytest.raises(InvalidExperiment, match=r"sweep\.call_model\.temperature\[1\]: "):
        check_sweep_options(exp, registry())


def test_unregistered_stage_is_reported() -> None:
    exp = Experiment(id="sw", pipeline=[StageDef(name="call_model")], sweep={"call_model.t": [1]})
    with pytest.raises(InvalidExperiment, match="stage 'call_model' cannot be resolved"):
        check_sweep_options(exp, Registry())


# -- running a sweep ------------------------------------------------------------------


@ca.stage("load")
def load(ctx: Context, opts: Any) -> Context:
    return ctx.assign("examples", [1, 2, 3])


async def test_every_point_runs_with_its_options_and_a_distinct_recorded_seed(
    tmp_path: Path,
) -> None:
    log: list[dict[str, Any]] = []
    reg = registry(load, model_stage(log))
    exp = swept(
        **{"call_model.temperature": [0.0, 0.7], "call_model.model": ["a", "b"]}, repeats=2, seed=10
    )
    async with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        async with ca.open_runtime(registry=reg, store=store) as rt:
            handle = await rt.submit_sweep(exp)
            assert await handle.wait() == {"completed": 8}
        assert handle.status == "completed"
        seen = sorted((e["temperature"], e["model"], e["seed"]) for e in log)
        assert seen == [
            (0.0, "a", 10),
            (0.0, "a", 11),
            (0.0, "b", 12),
            (0.0, "b", 13),
            (0.7, "a", 14),
            (0.7, "a", 15),
            (0.7, "b", 16),
            (0.7, "b", 17),
        ]
        assert {e["sweep_id"] for e in log} == {handle.sweep_id}
        record = await store.get_sweep(handle.sweep_id)
        assert record is not None
        assert (record.experiment_id, record.runs, record.status) == ("sw", 8, "completed")
        assert record.sweep["repeats"] == 2
        stored = await store.list_sweep_points(handle.sweep_id)
        assert [p.run_id for p in stored] == [p.run_id for p in handle.points]
        for p in stored:
            run = await store.get_run(p.run_id)
            assert run.status == "completed"
            assert run.metrics["temperature"] == p.parameters["call_model.temperature"]
            assert run.metrics["model"] == p.parameters["call_model.model"]
            assert p.seed == 10 + p.index


async def test_at_most_max_concurrent_points_run_at_once() -> None:
    gate = anyio.Event()
    active = 0
    peak = 0

    @ca.stage("call_model", options=ModelOptions)
    async def slow(ctx: Context, opts: ModelOptions) -> Context:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await gate.wait()
        active -= 1
        return ctx

    exp = Experiment(
        id="sw", pipeline=[StageDef(name="call_model")], sweep={"call_model.temperature": [0.1] * 7}
    )
    async with ca.open_runtime(registry=registry(slow)) as rt:
        handle = await rt.submit_sweep(exp, max_concurrent=3)
        await anyio.wait_all_tasks_blocked()
        assert (active, handle.statistics().submitted) == (3, 3)
        gate.set()
        assert await handle.wait() == {"completed": 7}
    assert peak == 3


async def test_a_failing_point_fails_the_sweep_not_its_siblings(tmp_path: Path) -> None:
    @ca.stage("call_model", options=ModelOptions)
    async def picky(ctx: Context, opts: ModelOptions) -> Context:
        if opts.model == "bad":
            raise RuntimeError("no such model")
        return ctx

    exp = Experiment(
        id="sw",
        pipeline=[StageDef(name="call_model")],
        sweep={"call_model.model": ["a", "bad", "b"]},
    )
    async with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        async with ca.open_runtime(registry=registry(picky), store=store) as rt:
            handle = await rt.submit_sweep(exp)
            assert await handle.wait() == {"completed": 2, "failed": 1}
        record = await store.get_sweep(handle.sweep_id)
        assert record is not None
        assert record.status == "failed"


async def test_cancel_stops_feeding_and_cancels_running_points(tmp_path: Path) -> None:
    started: list[str] = []
    both = anyio.Event()  # two points run: the feeder waits for a free slot

    @ca.stage("call_model", options=ModelOptions)
    async def forever(ctx: Context, opts: ModelOptions) -> Context:
        started.append(ctx.run_id)
        if len(started) == 2:
            both.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    exp = Experiment(
        id="sw", pipeline=[StageDef(name="call_model")], sweep={"call_model.temperature": [0.1] * 5}
    )
    async with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        async with ca.open_runtime(registry=registry(forever), store=store) as rt:
            handle = await rt.submit_sweep(exp, max_concurrent=2)
            await both.wait()
            await handle.cancel()
            assert handle.done
            assert await handle.wait() == {"cancelled": 5}
            assert handle.status == "cancelled"
            assert len(handle.runs()) == 2
        record = await store.get_sweep(handle.sweep_id)
        assert record is not None
        assert record.status == "cancelled"


async def test_bad_sweep_runs_nothing_and_records_nothing(tmp_path: Path) -> None:
    bad = Experiment(
        id="sw", pipeline=[StageDef(name="call_model")], sweep={"call_model.nope": [1]}
    )
    huge = Experiment(
        id="sw",
        pipeline=[StageDef(name="call_model")],
        sweep={"call_model.temperature": [0.1] * 101, "call_model.model": ["m"] * 100},
    )
    async with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        async with ca.open_runtime(registry=registry(), store=store) as rt:
            with pytest.raises(InvalidExperiment, match="has no option 'nope'"):
                await rt.submit_sweep(bad)
            with pytest.raises(InvalidExperiment, match=r"10100 runs, more than 10000; pass --yes"):
                await rt.submit_sweep(huge)
            with pytest.raises(InvalidExperiment, match="has no sweep"):
                await rt.submit_sweep(Experiment(id="x", pipeline=[StageDef(name="call_model")]))
            assert rt.statistics().submitted == 0
        assert await store.list_sweeps() == []
        assert await store.list_runs() == []


async def test_a_store_that_cannot_record_sweeps_is_refused_before_any_run() -> None:
    from crucible_actors.store import MemoryStore

    class OldStore(MemoryStore):
        record_sweep = None  # a host's store written before sweeps existed

    store = OldStore()
    exp = Experiment(
        id="sw", pipeline=[StageDef(name="call_model")], sweep={"call_model.model": ["a"]}
    )
    async with ca.open_runtime(registry=registry(), store=store) as rt:
        with pytest.raises(ca.CrucibleError, match=r"cannot record sweeps .* pass persist=False"):
            await rt.submit_sweep(exp)
        handle = await rt.submit_sweep(exp, persist=False)
        assert await handle.wait() == {"completed": 1}
    assert await store.list_runs() == []


async def test_cancel_while_a_point_is_being_recorded_cancels_that_point_too() -> None:
    from crucible_actors.store import MemoryStore

    class SlowStart(MemoryStore):
        """Points start (pending to running) only once ``commit`` is set."""

        def __init__(self) -> None:
            super().__init__()
            self.writing = anyio.Event()
            self.commit = anyio.Event()

        async def start_pending(self, run_id: str, **kw: Any) -> bool:
            self.writing.set()
            await self.commit.wait()
            return await super().start_pending(run_id, **kw)

    @ca.stage("call_model", options=ModelOptions)
    async def forever(ctx: Context, opts: ModelOptions) -> Context:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    exp = Experiment(
        id="sw", pipeline=[StageDef(name="call_model")], sweep={"call_model.temperature": [0.1] * 3}
    )
    store = SlowStart()
    async with ca.open_runtime(registry=registry(forever), store=store) as rt:
        handle = await rt.submit_sweep(exp)
        await store.writing.wait()  # a point's start is committing its row
        async with anyio.create_task_group() as tg:
            tg.start_soon(handle.cancel)
            await anyio.wait_all_tasks_blocked()
            store.commit.set()
        assert await handle.wait() == {"cancelled": 3}
        # The points being recorded when cancel() came were admitted, and cancelled.
        assert handle.runs()
        assert {run.status for run in handle.runs()} == {"cancelled"}
    assert {r.status for r in await store.list_runs()} == {"cancelled"}


# -- durable points: pending rows, shutdown and adoption ------------------------------------


async def _interrupt_a_sweep(url: str) -> str:
    """Run a 4-point sweep (one at a time) until its first point started, then close the
    runtime with ``on_shutdown="interrupt"``; return the sweep id."""
    started = anyio.Event()

    @ca.stage("call_model", options=ModelOptions)
    async def stuck(ctx: Context, opts: ModelOptions) -> Context:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    exp = Experiment(
        id="sw", pipeline=[StageDef(name="call_model")], sweep={"call_model.temperature": [0.1] * 4}
    )
    async with ca.open_runtime(registry=registry(stuck), store=url, on_shutdown="interrupt") as rt:
        handle = await rt.submit_sweep(exp, max_concurrent=1)
        async with open_store(url) as store:  # every point has its row already
            statuses = [(await store.get_run(p.run_id)).status for p in handle.points]
        assert sorted(statuses) == ["pending"] * 4 or sorted(statuses) == [
            "pending",
            "pending",
            "pending",
            "running",
        ]
        await started.wait()
    assert await handle.wait() == {"interrupted": 4}
    return handle.sweep_id


async def test_points_an_interrupting_shutdown_left_pending_are_started_by_the_next_resume(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    sweep_id = await _interrupt_a_sweep(url)
    async with open_store(url) as store:
        points = await store.list_sweep_points(sweep_id)
        before = sorted([(await store.get_run(p.run_id)).status for p in points])
        left = await store.get_sweep(sweep_id)
    assert before == ["interrupted", "pending", "pending", "pending"]
    assert left is not None
    assert left.status == "running"  # not over: its points wait for the next resume

    active = peak = 0

    @ca.stage("call_model", options=ModelOptions)
    async def counted(ctx: Context, opts: ModelOptions) -> Context:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        active -= 1
        return ctx.put_metric("temperature", opts.temperature)

    async with ca.open_runtime(registry=registry(counted), store=url, on_start="resume") as rt:
        assert rt.recovery is not None
        assert len(rt.recovery.resumed) == 4
        await rt.wait_idle()  # waits for the adopted points too
    assert peak == 1  # the sweep's max_concurrent, after the restart too
    async with open_store(url) as store:
        after = [(await store.get_run(p.run_id)) for p in points]
        record = await store.get_sweep(sweep_id)
    assert [r.status for r in after] == ["completed"] * 4
    assert all(r.resume_count <= 1 for r in after)
    assert record is not None
    assert record.status == "completed"


async def test_pending_points_of_a_dead_owner_are_marked_interrupted_by_default(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    sweep_id = await _interrupt_a_sweep(url)
    async with ca.open_runtime(registry=registry(), store=url) as rt:  # mark_interrupted
        assert rt.recovery is not None
        assert len(rt.recovery.interrupted) == 3  # the pending ones; the 4th already was
    async with open_store(url) as store:
        runs = [await store.get_run(p.run_id) for p in await store.list_sweep_points(sweep_id)]
    assert [r.status for r in runs] == ["interrupted"] * 4
    messages = sorted(str((r.failure or {}).get("message")) for r in runs)
    assert sum("was to start it" in m for m in messages) == 3


@pytest.mark.slow
def test_pending_points_are_listed_by_status_and_cannot_be_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from crucible_actors.cli import main

    url = f"sqlite:///{tmp_path}/s.db"
    anyio.run(_interrupt_a_sweep, url)
    capsys.readouterr()
    assert main(["runs", "list", "--store", url, "--status", "pending", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["runs"]
    assert [r["status"] for r in listed] == ["pending"] * 3
    assert main(["runs", "delete", listed[0]["id"], "--store", url, "--yes"]) == 2
    assert "pending" in capsys.readouterr().err
