"""Conformance: every stage of ``Registry.default()`` keeps the stage contract."""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import pytest

from crucible_actors import Context, Experiment, Registry, StageDef
from crucible_actors._core._schema import validate_schema
from crucible_actors._core._schema_options import validate_options
from crucible_actors._core._stage import stage_info

if TYPE_CHECKING:
    from pathlib import Path

BUILTINS = {"validate", "data_checks", "guardrails", "bench", "report"}


def _names() -> list[str]:
    return Registry.default().names()


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    # A scratch working directory: no stray crucible.toml, and reports land in tmp_path.
    monkeypatch.chdir(tmp_path)
    return Registry.default(cwd=tmp_path)


def test_the_builtins_are_registered(registry: Registry) -> None:
    assert set(registry.names()) >= BUILTINS


@pytest.mark.parametrize("name", _names())
def test_name_is_a_lowercase_identifier(name: str) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name)


@pytest.mark.parametrize("name", _names())
def test_describe_is_a_valid_schema_named_after_the_stage(registry: Registry, name: str) -> None:
    schema = registry.resolve(name).describe()
    assert validate_schema(schema) == []
    assert schema["name"] == name
    assert registry.schema(name)["name"] == name


@pytest.mark.parametrize("name", _names())
def test_defaults_validate_against_the_schema(registry: Registry, name: str) -> None:
    schema = registry.schema(name)
    defaults = schema.get("defaults", {})
    assert set(defaults) <= set(schema["optional"])
    assert validate_options(defaults, schema) == []


@pytest.mark.parametrize("name", _names())
async def test_run_on_a_minimal_context_returns_a_context(registry: Registry, name: str) -> None:
    stage_obj = registry.resolve(name)
    info = stage_info(stage_obj)
    opts = info.convert_options(name, {})
    ctx = Context.new(Experiment(id="conformance", pipeline=[StageDef(name=name)]))
    result: Any
    if info.is_async:
        result = await stage_obj.run(ctx, opts)  # type: ignore[misc]
    else:
        result = await anyio.to_thread.run_sync(stage_obj.run, ctx, opts)
        if inspect.isawaitable(result):
            result = await result
    assert isinstance(result, Context)
    assert result.run_id == ctx.run_id
