"""``gc`` beside a live run: the blob a run is about to name survives, and the run ends well."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from tests.helpers import missing_extra, registry_with

from crucible_actors import Context, Experiment, Registry, RunStatus, StageDef, open_runtime, stage
from crucible_actors.errors import RunStillRunning
from crucible_actors.store import Checkpoint, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

DATA = os.urandom(1 << 20)  # above the blob threshold: stored by reference


@stage("produce")
def produce(ctx: Context, opts: Any) -> Context:
    return ctx.assign("X", DATA)


@stage("consume")
def consume(ctx: Context, opts: Any) -> Context:
    assert bytes(ctx.assigns["X"]) == DATA
    return ctx.put_metric("size", len(ctx.assigns["X"]))


EXP = Experiment(id="blob", pipeline=[StageDef(name="produce"), StageDef(name="consume")])


class HeldCheckpoint:
    """Wraps a store; holds the checkpoint before stage 1 of run ``held`` until released."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reached = anyio.Event()
        self.release = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def save_checkpoint(self, checkpoint: Checkpoint, **kw: Any) -> None:
        if checkpoint.run_id == "held" and checkpoint.index == 1:
            self.reached.set()
            await self.release.wait()
        await self.inner.save_checkpoint(checkpoint, **kw)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/x.db"
    async with open_store(url) as inner:
        yield HeldCheckpoint(inner)


def registry() -> Registry:
    return registry_with(produce, consume)


@pytest.mark.slow
async def test_a_blob_re_used_by_a_run_whose_checkpoint_is_not_committed_survives_gc(
    store: Any,
) -> None:
    async with open_runtime(store=store, registry=registry()) as rt:
        first = await rt.submit(EXP, run_id="first")
        assert await first.wait() is RunStatus.COMPLETED
        [blob] = list(store.blobs.list())
        await store.delete_runs(["first"])  # the blob is named by nothing now

        held = await rt.submit(EXP, run_id="held")
        await store.reached.wait()  # "produce" stored DATA again (a dedup put), uncommitted
        with pytest.raises(RunStillRunning):
            await store.delete_runs(["held"])
        result = await store.gc()
        assert (result.blobs, result.blobs_kept) == (0, 1)
        assert [b.digest for b in store.blobs.list()] == [blob.digest]

        store.release.set()
        assert await held.wait() is RunStatus.COMPLETED
        assert (await held.result()).metrics["size"] == len(DATA)
    result = await store.gc()
    assert (result.blobs, result.blobs_kept) == (0, 0)  # "held" names it now
    await store.delete_runs(["held"])
    result = await store.gc()
    assert (result.blobs, result.blob_bytes) == (1, blob.size)
    assert list(store.blobs.list()) == []


KEPT: dict[str, Any] = {}


@stage("keep_array")
def keep_array(ctx: Context, opts: Any) -> Context:
    KEPT["x"] = ctx.assigns["X"]  # a read-only array decoded from its blob
    return ctx


@stage("reuse_array")
def reuse_array(ctx: Context, opts: Any) -> Context:
    return ctx.assign("Y", KEPT["x"])  # encoded by identity: the codec recalls its ref


@stage("read_reused")
def read_reused(ctx: Context, opts: Any) -> Context:
    return ctx.put_metric("n", len(ctx.assigns["Y"]))


@pytest.mark.slow
async def test_a_blob_recalled_by_identity_in_a_live_run_survives_gc(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy", reason=missing_extra("dev"))

    @stage("make_array")
    def make_array(ctx: Context, opts: Any) -> Context:
        return ctx.assign("X", np.arange(100_000, dtype="float64"))

    reg = registry_with(make_array, keep_array, reuse_array, read_reused)
    first = Experiment(id="a", pipeline=[StageDef(name="make_array"), StageDef(name="keep_array")])
    second = Experiment(
        id="b", pipeline=[StageDef(name="reuse_array"), StageDef(name="read_reused")]
    )
    async with open_store(f"sqlite:///{tmp_path}/x.db") as inner:
        store = HeldCheckpoint(inner)
        async with open_runtime(store=store, registry=reg) as rt:
            a = await rt.submit(first, run_id="a")
            assert await a.wait() is RunStatus.COMPLETED
            await store.delete_runs(["a"])
            [blob] = list(store.blobs.list())
            hour_ago = blob.mtime - 3600  # written long before the next run starts
            path = store.blobs.root / blob.digest[:2] / blob.digest
            os.utime(path, (hour_ago, hour_ago))
            rt.codec._touched.clear()  # and the codec's last touch long ago too

            held = await rt.submit(second, run_id="held")
            await store.reached.wait()  # "reuse_array" named the blob; not committed yet
            result = await store.gc()
            store.release.set()
            assert (result.blobs, result.blobs_kept) == (0, 1)
            assert await held.wait() is RunStatus.COMPLETED
