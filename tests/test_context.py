"""The Context: its fields, and helpers that return a new Context and leave the receiver alone."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from crucible_actors import Context, Experiment, StageDef

if TYPE_CHECKING:
    from collections.abc import Callable

EXP = Experiment(id="exp-1", pipeline=[StageDef(name="s")])


def make_ctx() -> Context:
    return (
        Context.new(EXP, run_id="run-1", assigns={"user": "alice"})
        .put_metric("loss", 0.5)
        .put_artifact("model", "s3://bucket/model.pt")
        .add_output({"row": 1})
        .mark_stage_complete("load")
    )


def test_context_has_exactly_the_nine_contract_fields_in_order() -> None:
    assert Context.__struct_fields__ == (
        "experiment_id",
        "run_id",
        "experiment",
        "outputs",
        "metrics",
        "artifacts",
        "trace",
        "telemetry_context",
        "assigns",
    )


def test_context_is_frozen() -> None:
    ctx = make_ctx()
    with pytest.raises(AttributeError):
        ctx.metrics = {}  # type: ignore[misc]


def test_new_context_takes_the_experiment_id_and_a_fresh_uuid4_run_id() -> None:
    a, b = Context.new(EXP), Context.new(EXP)
    assert a.experiment_id == "exp-1"
    assert a.experiment is EXP
    assert uuid.UUID(a.run_id).version == 4
    assert a.run_id != b.run_id
    assert (a.outputs, a.metrics, a.artifacts, a.assigns, a.trace) == ([], {}, {}, {}, None)


def test_new_context_copies_the_seed_assigns() -> None:
    seed = {"user": "alice"}
    ctx = Context.new(EXP, run_id="r", assigns=seed)
    seed["user"] = "mallory"
    assert ctx.assigns == {"user": "alice"}
    assert ctx.run_id == "r"


def test_fresh_contexts_do_not_share_mutable_fields() -> None:
    a, b = Context.new(EXP), Context.new(EXP)
    assert a.metrics is not b.metrics
    assert a.assigns is not b.assigns
    assert a.outputs is not b.outputs


HELPERS: list[tuple[str, Callable[[Context], Context]]] = [
    ("put_metric", lambda c: c.put_metric("acc", 0.9)),
    ("put_metric_overwrite", lambda c: c.put_metric("loss", 0.1)),
    ("update_metric", lambda c: c.update_metric("loss", lambda v: v * 2)),
    ("update_metric_absent", lambda c: c.update_metric("steps", lambda v: v + 1, 0)),
    ("merge_metrics", lambda c: c.merge_metrics({"loss": 0.2, "f1": 0.7})),
    ("add_output", lambda c: c.add_output("x")),
    ("add_outputs", lambda c: c.add_outputs(["x", "y"])),
    ("put_artifact", lambda c: c.put_artifact("report", "r.md")),
    ("assign_pair", lambda c: c.assign("user", "bob")),
    ("assign_mapping", lambda c: c.assign({"user": "bob"})),
    ("assign_kwargs", lambda c: c.assign(user="bob")),
    ("mark_stage_complete", lambda c: c.mark_stage_complete("train")),
    ("mark_stage_complete_again", lambda c: c.mark_stage_complete("load")),
]


@pytest.mark.parametrize("helper", [h for _, h in HELPERS], ids=[n for n, _ in HELPERS])
def test_helpers_return_a_new_context_and_leave_the_receiver_unchanged(
    helper: Callable[[Context], Context],
) -> None:
    ctx = make_ctx()
    before = msgspec.msgpack.encode(ctx)
    result = helper(ctx)
    assert isinstance(result, Context)
    assert result is not ctx
    assert msgspec.msgpack.encode(ctx) == before


def test_get_metric_returns_the_value_or_the_default() -> None:
    ctx = make_ctx()
    assert ctx.get_metric("loss") == 0.5
    assert ctx.get_metric("missing") is None
    assert ctx.get_metric("missing", 7) == 7


def test_update_metric_applies_fn_to_the_current_value() -> None:
    assert make_ctx().update_metric("loss", lambda v: v + 1).get_metric("loss") == 1.5


def test_update_metric_on_absent_key_stores_default_without_calling_fn() -> None:
    def fail(value: Any) -> Any:
        raise AssertionError("fn must not be called for an absent key")

    ctx = make_ctx().update_metric("steps", fail, default=10)
    assert ctx.get_metric("steps") == 10
    assert make_ctx().update_metric("other", fail).metrics["other"] is None


def test_merge_metrics_is_shallow_and_the_new_value_wins() -> None:
    ctx = make_ctx().put_metric("nested", {"a": 1, "b": 2})
    merged = ctx.merge_metrics({"nested": {"a": 10}, "f1": 0.7})
    assert merged.metrics == {"loss": 0.5, "nested": {"a": 10}, "f1": 0.7}


def test_has_metric_tells_whether_a_key_exists_even_with_a_none_value() -> None:
    ctx = make_ctx().put_metric("none", None)
    assert ctx.has_metric("loss")
    assert ctx.has_metric("none")
    assert not ctx.has_metric("missing")


def test_outputs_are_appended_in_order() -> None:
    ctx = make_ctx().add_output("a").add_outputs(x for x in ("b", "c"))
    assert ctx.outputs == [{"row": 1}, "a", "b", "c"]


def test_artifacts_can_be_put_read_and_checked() -> None:
    ctx = make_ctx().put_artifact("report", "r.md")
    assert ctx.get_artifact("report") == "r.md"
    assert ctx.get_artifact("missing") is None
    assert ctx.get_artifact("missing", "default") == "default"
    assert ctx.has_artifact("model")
    assert not ctx.has_artifact("missing")


def test_assign_forms_are_equivalent() -> None:
    ctx = make_ctx()
    expected = {**ctx.assigns, "user": "bob", "team": "ml"}
    assert ctx.assign("user", "bob").assign("team", "ml").assigns == expected
    assert ctx.assign({"user": "bob", "team": "ml"}).assigns == expected
    assert ctx.assign(user="bob", team="ml").assigns == expected
    assert ctx.assign({"user": "bob"}, team="ml").assigns == expected


def test_mark_stage_complete_keeps_order_without_duplicates() -> None:
    ctx = make_ctx().mark_stage_complete("train").mark_stage_complete("load")
    ctx = ctx.mark_stage_complete("report")
    assert ctx.completed_stages() == ["load", "train", "report"]
    assert ctx.assigns["completed_stages"] == ["load", "train", "report"]
    assert ctx.stage_completed("train")
    assert not ctx.stage_completed("evaluate")


def test_completed_stages_returns_a_copy() -> None:
    ctx = make_ctx()
    ctx.completed_stages().append("tampered")
    assert ctx.completed_stages() == ["load"]


def test_fresh_context_has_no_completed_stages() -> None:
    ctx = Context.new(EXP)
    assert ctx.completed_stages() == []
    assert not ctx.stage_completed("load")
