"""Every run ends in a terminal state the store and its caller agree on.

An outcome that does not encode is stored ``failed`` with a short reason (and the handle
fails too); an outcome write that meets an unavailable store is retried until it lands;
one that never lands by the time the runtime closes is reported on the handle as
:class:`OutcomeNotStored`, never as completed; a run resumed too often without finishing
is failed instead of resumed again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from tests.helpers import registry_with

from crucible_actors import Context, Experiment, StageDef, open_runtime, stage
from crucible_actors._core._encoding import encode_context
from crucible_actors.errors import (
    OutcomeNotStored,
    ResumeLimitExceeded,
    StageFailed,
    StoreUnavailable,
)
from crucible_actors.store import open_persistence, open_store

if TYPE_CHECKING:
    from collections.abc import Mapping

    from crucible_actors.store import Store


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@stage("deep_metric")
async def deep_metric(ctx: Context, opts: Mapping[str, Any]) -> Context:
    return ctx.put_metric("deep", _nested(int(opts["depth"])))


@stage("flat_metric")
async def flat_metric(ctx: Context, opts: Mapping[str, Any]) -> Context:
    return ctx.put_metric("acc", 0.5)


def _experiment(stage_name: str, **opts: Any) -> Experiment:
    return Experiment(
        id=f"outcome-{stage_name}", pipeline=[StageDef(name=stage_name, options=opts)]
    )


#: The stages this module's runs use, registered afresh by ``registry_with(*STAGES)``.
STAGES = (deep_metric, flat_metric)


@pytest.mark.parametrize("depth", [600, 2_000])
async def test_metric_nested_too_deep_ends_the_run_failed_in_the_store_and_on_the_handle(
    store: Store, depth: int
) -> None:
    async with open_runtime(store=store, registry=registry_with(*STAGES)) as rt:
        handle = await rt.submit(_experiment("deep_metric", depth=depth))
        status = await handle.wait()
    run = await store.get_run(handle.run_id)
    assert run.status in ("failed", "completed")
    assert run.status == status.value
    if run.status == "failed":
        assert run.failure is not None
        assert len(run.failure["message"]) < 2_100
        with pytest.raises(StageFailed):
            await handle.result()


@stage("loud")
def loud(ctx: Context, opts: Mapping[str, Any]) -> Context:
    raise RuntimeError("x" * 100_000)


async def test_a_failure_message_is_stored_short(store: Store) -> None:
    reg = registry_with(*STAGES)
    reg.register(loud)
    async with open_runtime(store=store, registry=reg) as rt:
        handle = await rt.submit(_experiment("loud"))
        assert await handle.wait() == "failed"
    run = await store.get_run(handle.run_id)
    assert run.status == "failed"
    assert run.failure is not None
    assert run.failure["reason_type"] == "RuntimeError"
    assert 2_000 < len(run.failure["message"]) < 2_100


class FlakyOutcomes:
    """A real store whose ``finish_run`` raises StoreUnavailable its first ``fail`` times."""

    def __init__(self, inner: Store, fail: float) -> None:
        self._inner = inner
        self.fail = fail
        self.calls = 0
        #: Set once the write failed twice (it is being retried).
        self.retrying = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def finish_run(self, run: Any, **kw: Any) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            if self.calls == 2:
                self.retrying.set()
            raise StoreUnavailable("connection lost (injected)", store="flaky")
        await self._inner.finish_run(run, **kw)


@pytest.mark.slow
async def test_an_outcome_write_that_meets_an_unavailable_store_is_retried_until_stored(
    store: Store,
) -> None:
    flaky = FlakyOutcomes(store, fail=3)
    async with open_runtime(store=flaky, registry=registry_with(*STAGES)) as rt:
        handle = await rt.submit(_experiment("flat_metric"))
        ctx = await handle.result()
    assert ctx.metrics == {"acc": 0.5}
    assert flaky.calls == 4
    run = await store.get_run(handle.run_id)
    assert (run.status, run.metrics) == ("completed", {"acc": 0.5})


@pytest.mark.slow
async def test_an_outcome_never_stored_is_reported_on_the_handle_never_completed(
    store: Store,
) -> None:
    flaky = FlakyOutcomes(store, fail=float("inf"))
    async with open_runtime(store=flaky, registry=registry_with(*STAGES), shutdown_grace=0.3) as rt:
        handle = await rt.submit(_experiment("flat_metric"))
        await flaky.retrying.wait()  # the run completed; its outcome write is retried
        assert not handle.done
    assert handle.status == "interrupted"
    with pytest.raises(OutcomeNotStored) as caught:
        await handle.result()
    assert caught.value.run_id == handle.run_id
    assert caught.value.outcome == "completed"
    assert handle.run_id in str(caught.value)
    events = [e.type for e in handle.events_nowait()]
    assert events[-1] == "run_interrupted"
    assert (await store.get_run(handle.run_id)).status == "running"


async def _orphan(store: Store, run_id: str, resumes: int) -> None:
    """Store run ``run_id`` as ``running`` under a dead owner, already resumed ``resumes`` times."""
    from crucible_actors._core import to_json_safe
    from crucible_actors._core.persistence._store import Checkpoint, ExperimentRecord, RunRecord

    exp = _experiment("flat_metric")
    now = datetime.now(UTC)
    record = ExperimentRecord(
        id=exp.id, definition=to_json_safe(exp, finite=True), created_at=now, updated_at=now
    )
    run = RunRecord(
        id=run_id, experiment_id=exp.id, status="running", started_at=now, owner_id="dead"
    )
    snapshot = encode_context(Context.new(exp, run_id=run_id))
    checkpoint = Checkpoint(run_id=run_id, index=0, data=snapshot, created_at=now)
    await store.start_run(run, experiment=record, checkpoint=checkpoint)
    for n in range(1, resumes + 1):  # the caller numbers each resume
        resumed = msgspec.structs.replace(run, resume_count=n)
        await store.start_run(resumed, experiment=record, resume=True)
    assert (await store.get_run(run_id)).resume_count == resumes


@pytest.mark.parametrize(("earlier", "status"), [(2, "completed"), (3, "failed")])
async def test_a_run_resumed_more_than_max_resumes_times_is_failed(
    store: Store, earlier: int, status: str
) -> None:
    await _orphan(store, "poison", earlier)
    async with (
        open_persistence(store, max_resumes=3) as p,
        open_runtime(store=p, registry=registry_with(*STAGES), on_start="resume") as rt,
    ):
        assert p.last_recovery.resumed == ["poison"]
        handle = rt.get("poison")
        assert handle is not None
        assert await handle.wait() == status
    run = await store.get_run("poison")
    assert run.status == status
    assert run.resume_count == earlier + 1
    if status == "failed":
        assert run.failure is not None
        assert run.failure["reason_type"] == "ResumeLimitExceeded"
        with pytest.raises(StageFailed) as caught:
            await handle.result()
        assert isinstance(caught.value.reason, ResumeLimitExceeded)


async def test_resume_count_survives_reopening_a_sqlite_file(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/count.db"
    async with open_store(url) as store:
        await _orphan(store, "r", 2)
    async with open_store(url) as store:
        assert (await store.get_run("r")).resume_count == 2
        assert [r.resume_count for r in await store.list_runs()] == [2]


async def test_a_run_that_fails_or_is_cancelled_before_its_first_stage_has_a_row_saying_so(
    store: Store,
) -> None:
    missing = Experiment(id="missing", pipeline=[StageDef(stage="no_such_module:stage")])
    async with open_runtime(store=store, registry=registry_with(*STAGES)) as rt:
        failed = await rt.submit(missing)
        cancelled = await rt.submit(_experiment("flat_metric"))
        await cancelled.cancel()  # before its task had a turn
        assert await failed.wait() == "failed"
    run = await store.get_run(failed.run_id)
    assert run.status == "failed"
    assert run.failure is not None
    assert run.failure["reason_type"] == "ModuleNotFoundError"
    assert (await store.get_run(cancelled.run_id)).status == "cancelled"
    assert await store.list_attempts(cancelled.run_id) == []
