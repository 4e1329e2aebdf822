"""The stage contract: class and function forms, Options Structs, and where ``run`` executes."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import msgspec
import pytest
from tests.helpers import registry_with

from crucible_actors import (
    Context,
    Experiment,
    InvalidOptions,
    Registry,
    SchemaError,
    Stage,
    StageDef,
    StageFailed,
    run,
    run_async,
    stage,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable


class TrainOptions(msgspec.Struct):
    """Options of the train stage."""

    epochs: int
    lr: float = 0.01
    tags: list[str] = []


class Train(Stage):
    name = "train"
    description = "Trains a model"
    Options = TrainOptions

    def run(self, ctx: Context, opts: Any) -> Context:
        assert isinstance(opts, TrainOptions)
        return ctx.assign(opts=opts, opts_type=type(opts).__name__)


def one_stage(name: str, **options: Any) -> Experiment:
    return Experiment(id="e", pipeline=[StageDef(name=name, options=options)])


def plain_schema(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"the {name} stage"}


# --- class form ---------------------------------------------------------------------------


def test_options_struct_derives_describe() -> None:
    schema = Train().describe()
    assert schema["name"] == "train"
    assert schema["description"] == "Trains a model"
    assert schema["required"] == ["epochs"]
    assert schema["optional"] == ["lr", "tags"]
    assert schema["types"] == {"epochs": "integer", "lr": "float", "tags": ("list", "string")}
    assert schema["defaults"] == {"lr": 0.01, "tags": []}


def test_options_stage_without_description_uses_its_docstring_summary() -> None:
    class Evaluate(Stage):
        """Scores the model on the held-out split.

        Details that are not part of the description.
        """

        name = "evaluate"
        Options = TrainOptions

    assert Evaluate().describe()["description"] == "Scores the model on the held-out split."
    assert Registry().register(Evaluate).name == "evaluate"


def test_class_stage_run_receives_a_validated_options_instance() -> None:
    ctx = run(one_stage("train", epochs="3"), registry=registry_with(Train))
    assert ctx.assigns["opts_type"] == "TrainOptions"
    # The options Struct the stage stored comes back as itself (types survive the trip).
    assert ctx.assigns["opts"] == TrainOptions(epochs=3, lr=0.01, tags=[])


def test_options_that_do_not_fit_the_struct_fail_with_invalid_options() -> None:
    with pytest.raises(StageFailed) as info:
        run(one_stage("train", epochs="many"), registry=registry_with(Train))
    reason = info.value.reason
    assert isinstance(reason, InvalidOptions)
    assert reason.stage == "train"
    assert reason.errors == ["epochs: expected int, got str"]


def test_stage_without_describe_or_options_fails_at_registration() -> None:
    class NoSchema(Stage):
        name = "no_schema"
        description = "has no schema"

        def run(self, ctx: Context, opts: Any) -> Context:
            return ctx

    with pytest.raises(SchemaError) as info:
        Registry().register(NoSchema)
    assert info.value.stage == "no_schema"
    message = str(info.value)
    assert "NoSchema implements neither describe() nor an Options Struct" in message
    assert "declare an Options msgspec Struct" in message


def test_protocol_object_without_describe_fails_at_registration() -> None:
    class RunOnly:
        name = "run_only"

        def run(self, ctx: Context, opts: Any) -> Context:
            return ctx

    with pytest.raises(SchemaError, match="does not implement describe"):
        Registry().register(RunOnly())


def test_object_without_run_is_not_a_stage() -> None:
    class NotAStage:
        name = "nope"

        def describe(self) -> dict[str, Any]:
            return plain_schema("nope")

    with pytest.raises(SchemaError, match=r"is not a stage: it has no run\(\) method"):
        Registry().register(NotAStage)


def test_describe_that_raises_fails_registration_with_schema_error() -> None:
    class Broken(Stage):
        name = "broken"

        def describe(self) -> dict[str, Any]:
            raise KeyError("oops")

        def run(self, ctx: Context, opts: Any) -> Context:
            return ctx

    with pytest.raises(SchemaError, match=r"describe\(\) raised KeyError"):
        Registry().register(Broken)


def test_describe_with_malformed_extensions_fails_registration_with_schema_error() -> None:
    class Odd(Stage):
        name = "odd"

        def describe(self) -> dict[str, Any]:
            return {**plain_schema("odd"), "__extensions__": ["not", "a", "map"]}

        def run(self, ctx: Context, opts: Any) -> Context:
            return ctx

    with pytest.raises(SchemaError, match="__extensions__ must be a map"):
        Registry().register(Odd)


def test_invalid_describe_schema_fails_registration_listing_the_problems() -> None:
    class BadSchema(Stage):
        name = "bad_schema"

        def describe(self) -> dict[str, Any]:
            return {"name": "bad_schema", "description": "", "required": ["x"], "types": {}}

        def run(self, ctx: Context, opts: Any) -> Context:
            return ctx

    with pytest.raises(SchemaError) as info:
        Registry().register(BadSchema)
    assert info.value.errors == [
        "description is required and must be a non-empty string",
        "required keys missing from types: ['x']",
    ]


# --- function form ------------------------------------------------------------------------


class ScaleOptions(msgspec.Struct):
    factor: float = 2.0


@stage("scale", description="Scales the loss", options=ScaleOptions)
def scale(ctx: Context, opts: ScaleOptions) -> Context:
    return ctx.put_metric("loss", ctx.get_metric("loss", 1.0) * opts.factor)


@stage("async_scale", options=ScaleOptions)
async def async_scale(ctx: Context, opts: ScaleOptions) -> Context:
    """Scales the loss, asynchronously.

    More detail that is not part of the description.
    """
    await anyio.lowlevel.checkpoint()
    return ctx.put_metric("loss", ctx.get_metric("loss", 1.0) * opts.factor)


def test_function_stage_takes_name_description_and_options() -> None:
    assert scale.name == "scale"
    assert scale.description == "Scales the loss"
    schema = scale.describe()
    assert schema["optional"] == ["factor"]
    assert schema["defaults"] == {"factor": 2.0}


def test_function_stage_description_defaults_to_the_docstring_summary() -> None:
    assert async_scale.description == "Scales the loss, asynchronously."


def test_bare_stage_decorator_uses_the_function_name() -> None:
    @stage
    def tidy(ctx: Context, opts: Any) -> Context:
        return ctx

    assert tidy.name == "tidy"
    assert Registry().register(tidy) is tidy


def test_decorated_function_can_still_be_called_directly() -> None:
    ctx = Context.new(one_stage("scale"))
    result = scale(ctx, ScaleOptions(factor=3.0))
    assert isinstance(result, Context)
    assert result.get_metric("loss") == 3.0


@pytest.mark.parametrize("fn", [scale, async_scale], ids=["sync", "async"])
def test_function_stage_run_receives_a_validated_options_instance(fn: Any) -> None:
    ctx = run(one_stage(fn.name, factor="4"), registry=registry_with(fn))
    assert ctx.get_metric("loss") == 4.0
    assert ctx.completed_stages() == [fn.name]


# --- where run executes -------------------------------------------------------------------


async def test_sync_stage_runs_in_a_worker_thread_without_blocking_the_loop() -> None:
    entered = anyio.Event()
    release = threading.Event()
    loop_thread = threading.get_ident()

    class Blocking(Stage):
        name = "blocking"
        description = "blocks on a threading.Event"

        def describe(self) -> dict[str, Any]:
            return plain_schema(self.name)

        def run(self, ctx: Context, opts: Any) -> Context:
            anyio.from_thread.run_sync(entered.set)
            released = release.wait(timeout=30)
            return ctx.assign(thread=threading.get_ident(), released=released)

    result: list[Context] = []

    async def go() -> None:
        result.append(await run_async(one_stage("blocking"), registry=registry_with(Blocking)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        with anyio.fail_after(30):
            await entered.wait()  # reached only if the loop runs while the stage blocks
        release.set()

    assert result[0].assigns["released"] is True
    assert result[0].assigns["thread"] != loop_thread


async def test_async_stage_runs_on_the_event_loop_thread() -> None:
    loop_thread = threading.get_ident()

    @stage("where")
    async def where(ctx: Context, opts: Any) -> Context:
        return ctx.assign(thread=threading.get_ident())

    ctx = await run_async(one_stage("where"), registry=registry_with(where))
    assert ctx.assigns["thread"] == loop_thread


def test_sync_run_that_returns_an_awaitable_is_awaited() -> None:
    class Delegating(Stage):
        name = "delegating"
        description = "returns a coroutine from a plain def"

        def describe(self) -> dict[str, Any]:
            return plain_schema(self.name)

        async def _run(self, ctx: Context) -> Context:
            await anyio.lowlevel.checkpoint()
            return ctx.assign(done=True)

        def run(self, ctx: Context, opts: Any) -> Awaitable[Context]:
            return self._run(ctx)

    ctx = run(one_stage("delegating"), registry=registry_with(Delegating))
    assert ctx.assigns["done"] is True
