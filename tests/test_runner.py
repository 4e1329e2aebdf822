"""run() and run_async(): pipeline order, resolution, option validation and failure semantics."""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import anyio.lowlevel
import pytest
import sniffio
from tests.helpers import registry_with

from crucible_actors import (
    Context,
    EncodeError,
    Experiment,
    InvalidExperiment,
    InvalidOptions,
    Registry,
    Stage,
    StageDef,
    StageFailed,
    UnknownStage,
    run,
    run_async,
    stage,
)

FIXTURES = Path(__file__).parent / "fixtures"
BACKENDS = ["trio", "asyncio"]


class Boom(RuntimeError):
    """The failure a test stage raises."""


def recording(name: str) -> Any:
    """A stage that appends its name to ``assigns["order"]``."""

    @stage(name, description=f"records {name}")
    def rec(ctx: Context, opts: Any) -> Context:
        return ctx.assign(order=[*ctx.assigns.get("order", []), name])

    return rec


class NeedsInput(Stage):
    """A stage described by a plain dict: ``input`` (string) is required."""

    name = "needs_input"
    description = "needs an input path"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "required": ["input"],
            "optional": [],
            "types": {"input": "string"},
        }

    def run(self, ctx: Context, opts: Any) -> Context:
        with self.lock:
            self.calls.append(dict(opts))
        return ctx.assign(ran_with=dict(opts))


class ProtocolStage:
    """A stage that follows the protocol without subclassing Stage."""

    name = "protocol_stage"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": "protocol only"}

    def run(self, ctx: Context, opts: Any) -> Context:
        return ctx.assign(protocol=True)


def pipeline(*defs: StageDef | str) -> Experiment:
    return Experiment(
        id="exp", pipeline=[StageDef(name=d) if isinstance(d, str) else d for d in defs]
    )


ABC = registry_with(recording("a"), recording("b"), recording("c"))


# --- the happy path -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_executes_stages_in_pipeline_order_on_either_backend(backend: str) -> None:
    ctx = run(pipeline("c", "a", "b", "a"), registry=ABC, backend=backend)
    assert ctx.assigns["order"] == ["c", "a", "b", "a"]
    assert ctx.completed_stages() == ["c", "a", "b"]


async def test_run_async_executes_stages_in_pipeline_order() -> None:
    ctx = await run_async(pipeline("b", "c", "a"), registry=ABC)
    assert ctx.assigns["order"] == ["b", "c", "a"]
    assert ctx.completed_stages() == ["b", "c", "a"]


async def test_run_async_runs_stages_in_the_callers_loop() -> None:
    def current_loop() -> object:
        if sniffio.current_async_library() == "trio":
            import trio

            return trio.lowlevel.current_root_task()
        import asyncio

        return asyncio.get_running_loop()

    seen: list[object] = []

    @stage("where")
    async def where(ctx: Context, opts: Any) -> Context:
        seen.append(current_loop())
        return ctx

    await run_async(pipeline("where"), registry=registry_with(where))
    assert seen == [current_loop()]


def test_final_context_belongs_to_the_experiment() -> None:
    exp = pipeline("a")
    ctx = run(exp, registry=ABC)
    assert ctx.experiment_id == "exp"
    assert ctx.experiment == exp


def test_run_id_defaults_to_a_fresh_uuid4_string() -> None:
    first = run(pipeline("a"), registry=ABC).run_id
    second = run(pipeline("a"), registry=ABC).run_id
    assert uuid.UUID(first).version == 4
    assert str(uuid.UUID(first)) == first
    assert first != second


def test_explicit_run_id_is_kept() -> None:
    assert run(pipeline("a"), registry=ABC, run_id="nightly-42").run_id == "nightly-42"


def test_assigns_seed_the_context() -> None:
    ctx = run(pipeline("a"), registry=ABC, assigns={"user": "alice", "order": ["seed"]})
    assert ctx.assigns["user"] == "alice"
    assert ctx.assigns["order"] == ["seed", "a"]


def test_disabled_stage_is_skipped_and_listed() -> None:
    exp = pipeline("a", StageDef(name="b", enabled=False), "c", StageDef(name="a", enabled=False))
    ctx = run(exp, registry=ABC)
    assert ctx.assigns["order"] == ["a", "c"]
    assert ctx.assigns["skipped_stages"] == ["b", "a"]
    assert ctx.completed_stages() == ["a", "c"]


def test_disabled_stage_is_not_resolved() -> None:
    ctx = run(pipeline("a", StageDef(name="not_registered", enabled=False)), registry=ABC)
    assert ctx.assigns["skipped_stages"] == ["not_registered"]


def test_trace_is_off_by_default_and_records_stages_when_enabled() -> None:
    assert run(pipeline("a"), registry=ABC).trace is None
    trace = run(pipeline("a", "b"), registry=ABC, enable_trace=True).trace
    assert trace is not None
    assert [(e.type, e.stage_id) for e in trace.events] == [
        ("stage_start", "a"),
        ("stage_complete", "a"),
        ("stage_start", "b"),
        ("stage_complete", "b"),
    ]


def test_run_accepts_an_experiment_file(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('id = "from-file"\n[[stages]]\nname = "a"\n[[stages]]\nname = "b"\n')
    ctx = run(path, registry=ABC)
    assert ctx.experiment_id == "from-file"
    assert ctx.assigns["order"] == ["a", "b"]


def test_run_accepts_a_mapping() -> None:
    ctx = run({"id": "m", "pipeline": [{"name": "b"}]}, registry=ABC)
    assert ctx.assigns["order"] == ["b"]


def test_run_rejects_an_empty_pipeline_before_running() -> None:
    with pytest.raises(InvalidExperiment, match="empty pipeline"):
        run({"id": "m", "pipeline": []}, registry=ABC)


# --- resolution ---------------------------------------------------------------------------


def test_stage_def_stage_takes_precedence_over_the_registry() -> None:
    other = recording("other")
    ctx = run(pipeline(StageDef(name="a", stage=other)), registry=ABC)
    assert ctx.assigns["order"] == ["other"]
    assert ctx.completed_stages() == ["a"]


def test_stage_def_stage_may_be_a_class_following_the_protocol() -> None:
    ctx = run(pipeline(StageDef(stage=ProtocolStage)), registry=Registry())
    assert ctx.assigns["protocol"] is True
    assert ctx.completed_stages() == ["protocol_stage"]


def test_stage_def_stage_that_is_not_a_stage_fails_saying_how_to_fix_it() -> None:
    def plain(ctx: Context, opts: Any) -> Context:
        return ctx

    with pytest.raises(StageFailed) as info:
        run(pipeline("a", StageDef(name="plain", stage=plain)), registry=ABC)
    assert info.value.stage == "plain"
    assert isinstance(info.value.reason, TypeError)
    assert "is not a stage: it has no run() method" in str(info.value.reason)
    assert "decorate a function with @crucible_actors.stage" in str(info.value.reason)


def test_stage_def_stage_may_be_an_import_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    exp = pipeline(StageDef(stage="crucible_demo_plugin:Echo", options={"message": "hi"}))
    ctx = run(exp, registry=Registry())
    assert ctx.assigns["echo"] == "hi"
    assert ctx.completed_stages() == ["crucible_demo_plugin:Echo"]


def test_without_a_registry_run_uses_the_default_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crucible.toml").write_text('[stages]\nlocal_echo = "crucible_demo_plugin:Echo"\n')
    ctx = run(pipeline(StageDef(name="local_echo", options={"message": "from toml"})))
    assert ctx.assigns["echo"] == "from toml"


# --- validate_options ---------------------------------------------------------------------


def test_validate_off_passes_invalid_options_to_the_stage() -> None:
    needs = NeedsInput()
    ctx = run(
        pipeline(StageDef(name="needs_input", options={"input": 3})), registry=registry_with(needs)
    )
    assert ctx.assigns["ran_with"] == {"input": 3}


def test_validate_warn_logs_the_problems_then_runs_the_stage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    needs = NeedsInput()
    with caplog.at_level(logging.WARNING, logger="crucible_actors"):
        ctx = run(
            pipeline(StageDef(name="needs_input", options={"other": 1})),
            registry=registry_with(needs),
            validate_options="warn",
        )
    assert needs.calls == [{"other": 1}]
    assert ctx.completed_stages() == ["needs_input"]
    warnings = [r for r in caplog.records if r.name == "crucible_actors"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "needs_input" in warnings[0].getMessage()
    assert "missing required option: input" in warnings[0].getMessage()


def test_validate_warn_is_silent_for_valid_options(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crucible_actors"):
        run(
            pipeline(StageDef(name="needs_input", options={"input": "data.csv"})),
            registry=registry_with(NeedsInput()),
            validate_options="warn",
        )
    assert [r for r in caplog.records if r.name == "crucible_actors"] == []


def test_validate_error_fails_before_the_stage_runs() -> None:
    needs = NeedsInput()
    exp = pipeline("a", StageDef(name="needs_input", options={"input": 3}), "b")
    reg = registry_with(recording("a"), recording("b"), needs)
    with pytest.raises(StageFailed) as info:
        run(exp, registry=reg, validate_options="error")
    assert needs.calls == []
    assert info.value.stage == "needs_input"
    reason = info.value.reason
    assert isinstance(reason, InvalidOptions)
    assert reason.errors == ["input: expected string, got 3"]
    assert info.value.context is not None
    assert info.value.context.assigns["order"] == ["a"]


@pytest.mark.parametrize("mode", ["strict", "ERROR", None, True])
def test_unknown_validate_mode_is_a_value_error_up_front(mode: Any) -> None:
    needs = NeedsInput()
    with pytest.raises(ValueError, match="validate_options must be one of 'off', 'warn', 'error'"):
        run(pipeline("needs_input"), registry=registry_with(needs), validate_options=mode)
    assert needs.calls == []


async def test_run_async_rejects_an_unknown_validate_mode() -> None:
    with pytest.raises(ValueError, match="validate_options"):
        await run_async(pipeline("a"), registry=ABC, validate_options="loud")


# --- failures -----------------------------------------------------------------------------


@stage("boom")
def boom(ctx: Context, opts: Any) -> Context:
    raise Boom("the GPU caught fire")


@stage("returns_none")
def returns_none(ctx: Context, opts: Any) -> Context:
    return None  # type: ignore[return-value]


@stage("stores_unencodable")
def stores_unencodable(ctx: Context, opts: Any) -> Context:
    return ctx.assign(model=threading.Lock())


FAILURES: dict[str, tuple[StageDef, type[BaseException], str]] = {
    "unknown-stage": (StageDef(name="bxx"), UnknownStage, "no stage named 'bxx'"),
    "invalid-options": (
        StageDef(name="needs_input", options={}),
        InvalidOptions,
        "missing required option: input",
    ),
    "raises": (StageDef(name="boom"), Boom, "the GPU caught fire"),
    "returns-non-context": (
        StageDef(name="returns_none"),
        TypeError,
        "stage 'returns_none' returned NoneType, expected a Context",
    ),
    "unencodable-value": (
        StageDef(name="stores_unencodable"),
        EncodeError,
        "cannot encode assigns['model']",
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("failing", "reason_type", "reason_text"), list(FAILURES.values()), ids=list(FAILURES)
)
def test_failure_stops_the_run_with_stage_failed_and_the_pre_stage_context(
    backend: str, failing: StageDef, reason_type: type[BaseException], reason_text: str
) -> None:
    reg = registry_with(
        recording("a"), recording("c"), NeedsInput(), boom, returns_none, stores_unencodable
    )
    exp = pipeline("a", failing, "c")
    with pytest.raises(StageFailed) as info:
        run(exp, registry=reg, run_id="r1", validate_options="error", backend=backend)
    err = info.value
    assert err.stage == failing.label
    assert isinstance(err.reason, reason_type)
    assert reason_text in str(err.reason)
    assert err.__cause__ is err.reason
    assert err.run_id == "r1"
    assert str(err).startswith(f"stage {failing.label!r} failed after 1 attempt: ")
    ctx = err.context
    assert ctx is not None
    assert ctx.run_id == "r1"
    assert ctx.assigns["order"] == ["a"]  # "c" never ran
    assert ctx.completed_stages() == ["a"]
    assert "model" not in ctx.assigns


async def test_run_async_raises_stage_failed_with_the_pre_stage_context() -> None:
    reg = registry_with(recording("a"), recording("c"), boom)
    with pytest.raises(StageFailed) as info:
        await run_async(pipeline("a", "boom", "c"), registry=reg)
    assert isinstance(info.value.reason, Boom)
    assert info.value.context is not None
    assert info.value.context.assigns["order"] == ["a"]


async def test_failing_async_stage_leaves_nothing_in_the_pre_stage_context() -> None:
    @stage("half_done")
    async def half_done(ctx: Context, opts: Any) -> Context:
        ctx = ctx.put_metric("partial", 1)
        await anyio.lowlevel.checkpoint()
        raise Boom(f"failed after {ctx.metrics}")

    with pytest.raises(StageFailed) as info:
        await run_async(
            pipeline("a", "half_done"), registry=registry_with(recording("a"), half_done)
        )
    assert info.value.context is not None
    assert info.value.context.metrics == {}
    assert info.value.context.completed_stages() == ["a"]
