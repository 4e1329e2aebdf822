"""Large values and the warm pool: mapped from the blob store in the worker, never piped.

Real worker processes, real SQLite stores (their blobs in a directory beside the file);
the stages live in ``data_stages.py``. The pipe traffic is what
``PoolExecutor.statistics()`` counts, frame by frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from tests.helpers import missing_extra, registry_with

import crucible_actors as ca
from crucible_actors import Experiment, StageDef
from crucible_actors.executors import PoolExecutor

from . import data_stages

if TYPE_CHECKING:
    from pathlib import Path

np = pytest.importorskip("numpy", reason=missing_extra("dev"))

pytestmark = pytest.mark.slow

MB = 1024 * 1024


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (data_stages.make_array, data_stages.read_array, data_stages.read_array_then_exit_once)


def _pool(rt: ca.Runtime) -> PoolExecutor:
    executor = rt.executors["process"]
    assert isinstance(executor, PoolExecutor)
    return executor


async def test_an_array_reaches_a_process_stage_mapped_read_only_not_through_the_pipe(
    tmp_path: Path,
) -> None:
    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(name="make_array"),
            StageDef(name="read_array", isolation="process"),
            StageDef(name="read_array", isolation="process"),
        ],
    )
    expected = data_stages.big_array()
    url = f"sqlite:///{tmp_path}/x.db"
    async with ca.open_runtime(registry=registry_with(*STAGES), store=url, process_workers=1) as rt:
        ctx = await (await rt.submit(exp)).result()
        stats = _pool(rt).statistics()
    assert ctx.get_metric("sum") == float(expected.sum())
    assert ctx.get_metric("writeable") is False
    assert ctx.get_metric("wrote") is False  # numpy's own read-only error, in the worker
    assert ctx.get_metric("pid") != ctx.get_metric("made_in")
    x = ctx.assigns["X"]
    assert isinstance(x, np.ndarray)
    assert x.dtype == expected.dtype
    assert np.array_equal(x, expected)
    # Two attempts of a 40 MB Context: both ways, a few KB per frame.
    assert stats.bytes_sent < 64 * 1024, stats
    assert stats.bytes_received < 64 * 1024, stats


async def test_an_array_made_in_a_worker_is_stored_by_the_worker(tmp_path: Path) -> None:
    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(name="make_array", isolation="process", options={"seed": 3}),
            StageDef(name="read_array"),
        ],
    )
    url = f"sqlite:///{tmp_path}/x.db"
    async with ca.open_runtime(registry=registry_with(*STAGES), store=url, process_workers=1) as rt:
        ctx = await (await rt.submit(exp)).result()
        stats = _pool(rt).statistics()
    expected = data_stages.big_array(3)
    assert ctx.get_metric("made_in") != ctx.get_metric("pid")  # read in the driver
    assert ctx.get_metric("sum") == float(expected.sum())
    assert ctx.get_metric("writeable") is False
    assert np.array_equal(ctx.assigns["X"], expected)
    assert stats.bytes_received < 64 * 1024, stats


async def test_a_retry_after_a_worker_crash_sees_the_original_array(tmp_path: Path) -> None:
    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(name="make_array"),
            StageDef(name="read_array_then_exit_once", isolation="process", restart="transient"),
        ],
    )
    url = f"sqlite:///{tmp_path}/x.db"
    async with ca.open_runtime(registry=registry_with(*STAGES), store=url, process_workers=1) as rt:
        handle = await rt.submit(exp)
        ctx = await handle.result()
        stats = _pool(rt).statistics()
    assert [a.status for a in handle.attempts[1:]] == ["failed", "completed"]
    assert "WorkerCrashed" in (handle.attempts[1].error or "")
    assert ctx.get_metric("sum") == float(data_stages.big_array().sum())
    assert stats.started == 2
    assert stats.bytes_sent < 64 * 1024, stats


async def test_a_memory_store_sends_values_inline_and_stores_large_results() -> None:
    exp = Experiment(
        id="e",
        pipeline=[
            StageDef(name="make_array", options={"seed": 1}),
            StageDef(name="read_array", isolation="process"),
            StageDef(name="make_array", isolation="process", options={"seed": 2}),
            StageDef(name="read_array"),
        ],
    )
    async with ca.open_runtime(
        registry=registry_with(*STAGES), store="memory://", process_workers=1
    ) as rt:
        ctx = await (await rt.submit(exp)).result()
        stats = _pool(rt).statistics()
    # The worker cannot open a memory store: the array went (and came back) inline ...
    assert stats.bytes_sent > 40 * MB
    assert ctx.get_metric("writeable") is False
    # ... and the reply's new array was moved into the driver's store, read-only.
    expected = data_stages.big_array(2)
    assert ctx.get_metric("sum") == float(expected.sum())
    assert np.array_equal(ctx.assigns["X"], expected)
