"""Runs persisted through the runtime, on every store: what gets written, and when."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest

import crucible_actors
from crucible_actors import Context, Experiment, Registry, RunStatus, StageDef, open_runtime, stage
from crucible_actors._core.persistence._persistence import artifacts_from_context
from crucible_actors.errors import StoreError
from crucible_actors.store import MemoryStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from crucible_actors.store import Store


class Color(enum.Enum):
    RED = "red"


@stage("collect")
async def collect(ctx: Context, opts: Any) -> Context:
    n = ctx.get_metric("n", 0) + 1
    return (
        ctx.put_metric("n", n)
        .put_metric("when", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
        .put_metric("pair", (1, 2))
        .put_metric("color", Color.RED)
        .add_output({"step": n})
    )


@stage("write_report")
async def write_report(ctx: Context, opts: Any) -> Context:
    return ctx.put_artifact(
        "report_markdown",
        {"name": "report", "type": "report", "location": "/out/r.md", "format": "markdown"},
    ).put_artifact("notes", "not a file")


@stage("explode")
async def explode(ctx: Context, opts: Any) -> Context:
    raise ValueError("kaboom")


def pipeline(*stages: Any, **kw: Any) -> Experiment:
    return Experiment(
        id="persist-exp", pipeline=[StageDef(stage=s) for s in stages], owner="ada", **kw
    )


async def test_completed_run_is_recorded_with_its_history(store: Store) -> None:
    exp = pipeline(collect, collect, write_report)
    async with open_runtime(store=store, registry=Registry()) as rt:
        handle = await rt.submit(exp, run_id="run-ok", enable_trace=True)
        assert await handle.wait() is RunStatus.COMPLETED
    run = await store.get_run("run-ok")
    assert run.status == "completed"
    assert run.experiment_id == "persist-exp"
    assert run.metrics == {
        "n": 2,
        "when": "2024-01-02T03:04:05Z",
        "pair": [1, 2],
        "color": "red",
    }
    assert run.outputs == [{"step": 1}, {"step": 2}]
    assert run.failure is None
    assert run.started_at is not None
    assert run.finished_at is not None
    assert run.started_at <= run.finished_at
    assert run.metadata["completed_stages"] == ["collect", "write_report"]
    attempts = await store.list_attempts("run-ok")
    assert [(a.index, a.stage, a.attempt, a.status) for a in attempts] == [
        (0, "collect", 1, "completed"),
        (1, "collect", 1, "completed"),
        (2, "write_report", 1, "completed"),
    ]
    assert all(a.duration is not None and a.duration >= 0 for a in attempts)
    cp = await store.load_checkpoint("run-ok")
    assert cp is not None
    assert cp.index == 3
    final = msgspec.msgpack.decode(cp.data, type=Context)
    assert final.metrics["n"] == 2
    assert [
        (a.name, a.type, a.location, a.format, a.key) for a in await store.list_artifacts("run-ok")
    ] == [("report", "report", "/out/r.md", "markdown", "report_markdown")]
    events = await store.list_events("run-ok")
    assert [e.type for e in events] == ["stage_start", "stage_complete"] * 3
    assert [e.seq for e in events] == list(range(1, 7))
    assert events[0].stage_id == "collect"
    assert events[0].event["decision"] == "Starting stage: collect"
    exp_rec = await store.get_experiment("persist-exp")
    assert exp_rec is not None
    assert exp_rec.owner == "ada"
    assert [s["stage"] for s in exp_rec.definition["pipeline"]] == [
        f"{__name__}:collect",
        f"{__name__}:collect",
        f"{__name__}:write_report",
    ]


async def test_failed_run_records_failure_and_the_pre_stage_context(store: Store) -> None:
    exp = Experiment(
        id="fail-exp",
        pipeline=[
            StageDef(stage=collect),
            StageDef(stage=explode, restart="transient", max_restarts=1),
        ],
    )
    async with open_runtime(store=store, registry=Registry()) as rt:
        handle = await rt.submit(exp, run_id="run-bad")
        assert await handle.wait() is RunStatus.FAILED
    run = await store.get_run("run-bad")
    assert run.status == "failed"
    assert run.failure == {
        "stage": "explode",
        "reason_type": "ValueError",
        "message": "kaboom",
        "attempts": 2,
    }
    assert run.metrics["n"] == 1
    attempts = await store.list_attempts("run-bad")
    assert [(a.index, a.attempt, a.status, a.error) for a in attempts] == [
        (0, 1, "completed", None),
        (1, 1, "failed", "ValueError: kaboom"),
        (1, 2, "failed", "ValueError: kaboom"),
    ]
    cp = await store.load_checkpoint("run-bad")
    assert cp is not None
    assert cp.index == 1


async def test_each_checkpoint_is_committed_before_its_stage_runs(store: Store) -> None:
    seen: list[int | None] = []

    @stage("peek")
    async def peek(ctx: Context, opts: Any) -> Context:
        cp = await store.load_checkpoint(ctx.run_id)
        seen.append(None if cp is None else cp.index)
        return ctx.put_metric("n", len(seen))

    async with open_runtime(store=store, registry=Registry()) as rt:
        handle = await rt.submit(pipeline(peek, peek, peek), run_id="run-peek")
        await handle.result()
    assert seen == [0, 1, 2]
    assert (await store.get_run("run-peek")).status == "completed"
    cp = await store.load_checkpoint("run-peek")
    assert cp is not None
    assert cp.index == 3


async def test_cancelled_run_is_recorded_cancelled(store: Store) -> None:
    started = anyio.Event()

    @stage("hang")
    async def hang(ctx: Context, opts: Any) -> Context:
        started.set()
        await anyio.sleep_forever()
        return ctx

    async with open_runtime(store=store, registry=Registry()) as rt:
        handle = await rt.submit(pipeline(collect, hang), run_id="run-cancel")
        await started.wait()
        await handle.cancel()
    run = await store.get_run("run-cancel")
    assert run.status == "cancelled"
    assert run.failure is not None
    assert run.failure["reason_type"] == "RunCancelled"
    assert run.failure["stage"] == "hang"
    assert run.metrics["n"] == 1
    statuses = [a.status for a in await store.list_attempts("run-cancel")]
    assert statuses == ["completed", "cancelled"]


async def test_persist_false_records_nothing(store: Store) -> None:
    async with open_runtime(store=store, registry=Registry()) as rt:
        handle = await rt.submit(pipeline(collect), run_id="quiet", persist=False)
        await handle.result()
        loud = await rt.submit(pipeline(collect), run_id="loud")
        await loud.result()
    assert [r.id for r in await store.list_runs()] == ["loud"]


async def test_reusing_a_stored_run_id_is_refused_and_keeps_the_old_record(
    store: Store,
) -> None:
    async with open_runtime(store=store, registry=Registry()) as rt:
        await (await rt.submit(pipeline(collect), run_id="same")).result()
        await rt.wait_idle()
        # submit() acknowledges only a recorded run: the store's refusal is raised.
        with pytest.raises(StoreError, match="already exists"):
            await rt.submit(pipeline(collect, collect), run_id="same")
        assert rt.statistics().submitted == 1
    run = await store.get_run("same")
    assert (run.status, run.metrics["n"]) == ("completed", 1)


async def test_owner_row_lives_exactly_as_long_as_the_runtime(store: Store) -> None:
    async with open_runtime(store=store, registry=Registry()):
        owners = await store.list_owners()
        assert len(owners) == 1
    assert await store.list_owners() == []


async def test_runtime_accepts_a_store_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/by-url.db"
    async with open_runtime(store=url, registry=Registry()) as rt:
        await (await rt.submit(pipeline(collect), run_id="u1")).result()
        assert rt.store is not None  # type: ignore[attr-defined]
    async with open_store(url) as store:
        assert (await store.get_run("u1")).status == "completed"


async def test_runtime_accepts_a_path(tmp_path: Path) -> None:
    async with open_runtime(store=tmp_path / "by-path.db", registry=Registry()) as rt:
        await (await rt.submit(pipeline(collect), run_id="p1")).result()
    async with open_store(f"sqlite:///{tmp_path}/by-path.db") as store:
        assert (await store.get_run("p1")).status == "completed"


async def test_runtime_without_store_persists_nothing_and_works() -> None:
    async with open_runtime(registry=Registry()) as rt:
        ctx = await (await rt.submit(pipeline(collect))).result()
        assert rt.store is None  # type: ignore[attr-defined]
    assert ctx.metrics["n"] == 1


def test_blocking_run_persists_to_a_store_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/blocking.db"
    ctx = crucible_actors.run(pipeline(collect), store=url, run_id="b1", registry=Registry())
    assert ctx.metrics["n"] == 1
    crucible_actors.run(
        pipeline(collect), store=url, run_id="b2", persist=False, registry=Registry()
    )

    async def check() -> list[str]:
        async with open_store(url) as store:
            return [r.id for r in await store.list_runs()]

    assert anyio.run(check) == ["b1"]


def test_blocking_run_with_a_memory_store_on_asyncio() -> None:
    store = MemoryStore()
    crucible_actors.run(
        pipeline(collect), store=store, run_id="m1", registry=Registry(), backend="asyncio"
    )
    assert anyio.run(store.get_run, "m1").status == "completed"


async def test_skipped_stage_is_listed_in_run_metadata() -> None:
    store = MemoryStore()
    exp = Experiment(
        id="skip", pipeline=[StageDef(stage=collect), StageDef(stage=collect, enabled=False)]
    )
    async with open_runtime(store=store, registry=Registry()) as rt:
        await (await rt.submit(exp, run_id="s1")).result()
    run = await store.get_run("s1")
    assert run.metadata["skipped_stages"] == ["collect"]
    assert [a.index for a in await store.list_attempts("s1")] == [0]
    cp = await store.load_checkpoint("s1")
    assert cp is not None
    assert cp.index == 2


class Blob:
    def __repr__(self) -> str:
        return "<blob>"


def test_artifact_records_are_json_safe_and_only_files_count() -> None:
    when = datetime(2024, 1, 2, tzinfo=UTC)
    ctx = (
        Context.new(pipeline(collect), run_id="r")
        .put_artifact(
            "plot",
            {
                "location": "out/plot.png",
                "format": "png",
                "dpi": (72, 144),
                "metadata": {"obj": Blob(), "when": when, "color": Color.RED},
            },
        )
        .put_artifact(
            "reports",
            [
                {"name": "report", "type": "report", "location": "r.md", "format": "markdown"},
                {"name": "report", "type": "report", "location": "r.json", "format": "json"},
                {"name": "draft"},
            ],
        )
        .put_artifact("note", "just text")
    )
    records = artifacts_from_context(ctx)
    assert [(r.key, r.name, r.location, r.format) for r in records] == [
        ("plot", "plot", "out/plot.png", "png"),
        ("reports", "report", "r.md", "markdown"),
        ("reports", "report", "r.json", "json"),
    ]
    assert records[0].metadata == {
        "dpi": [72, 144],
        "obj": "<blob>",
        "when": "2024-01-02T00:00:00Z",
        "color": "red",
    }
    assert msgspec.json.decode(msgspec.json.encode(records))[0]["metadata"]["obj"] == "<blob>"
