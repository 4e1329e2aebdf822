"""The ``data_checks`` stage: check that every example carries its required fields.

Reads ``assigns["examples"]`` (a list, typically of dicts, put there by a loading stage).
The built-in check is deliberately small; heavier validation plugs in as ``checker``, a
callable ``(examples, opts) -> issues`` (sync or async) or a ``"pkg.mod:attr"`` reference
to one, which replaces the built-in check.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
import msgspec
import msgspec.structs

from .._core import DataChecksFailed, Stage
from ._plugins import call_plugin, check_ref_or_callable, describe_plugin, load_ref

if TYPE_CHECKING:
    from .._core import Context

__all__ = ["DataChecksOptions", "DataChecksStage", "missing_fields"]

log = logging.getLogger("crucible_actors")


class DataChecksOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Options of the ``data_checks`` stage (each field's ``Meta`` says what it does).

    ``checker`` receives the examples and the options as a dict and returns the list of
    issues (dicts).
    """

    required_fields: Annotated[
        list[str],
        msgspec.Meta(description='keys every example must have, not null and not ""'),
    ] = msgspec.field(default_factory=lambda: ["input", "output"])
    fail_fast: Annotated[
        bool, msgspec.Meta(description="fail the stage when any example has an issue")
    ] = False
    checker: Annotated[
        Any,
        msgspec.Meta(
            description="a 'pkg.mod:attr' callable (examples, opts) -> issues replacing "
            "the built-in check"
        ),
    ] = None

    def __post_init__(self) -> None:
        check_ref_or_callable("checker", self.checker)


def missing_fields(examples: Sequence[Any], required_fields: Sequence[str]) -> list[dict[str, Any]]:
    """Return ``{"example", "missing"}`` for each example lacking a required field, in order.

    A field is missing when absent, None or ``""``; an example that is not a mapping misses
    every required field.
    """
    issues: list[dict[str, Any]] = []
    for example in examples:
        if isinstance(example, Mapping):
            missing = [f for f in required_fields if example.get(f) is None or example.get(f) == ""]
        else:
            missing = list(required_fields)
        if missing:
            issues.append({"example": example, "missing": missing})
    return issues


class DataChecksStage(Stage):
    """Check the examples' required fields and record the issues.

    With no list in ``assigns["examples"]`` the Context is returned unchanged. Otherwise
    ``metrics["data_checks"] = {"total", "missing_required", "required_fields"}``
    (``missing_required`` counts the examples with issues) and ``assigns["data_issues"]``
    holds the issues.

    Raises:
        DataChecksFailed: ``fail_fast`` is set and some example has an issue.
        TypeError: the checker returned something other than a list of dicts.
        ImportError: a ``checker`` reference does not load.
    """

    name = "data_checks"
    description = "Lightweight data validation"
    Options = DataChecksOptions

    async def run(self, ctx: Context, opts: DataChecksOptions) -> Context:
        """Check ``assigns["examples"]``; see the class docstring."""
        examples = ctx.assigns.get("examples")
        if not isinstance(examples, list):
            return ctx
        if opts.checker is None:
            issues = missing_fields(examples, opts.required_fields)
        else:
            checker = opts.checker
            if isinstance(checker, str):
                checker = await anyio.to_thread.run_sync(
                    functools.partial(load_ref, checker, option="checker")
                )
            if not callable(checker):
                raise TypeError(
                    f"data_checks checker {describe_plugin(checker)} is not callable; "
                    "give a function (examples, opts) -> issues"
                )
            result = await call_plugin(checker, examples, msgspec.structs.asdict(opts))
            issues = _as_issues(result, checker)
        if issues:
            log.warning("data_checks: %d of %d example(s) have issues", len(issues), len(examples))
        if opts.fail_fast and issues:
            raise DataChecksFailed(issues)
        metrics = {
            "total": len(examples),
            "missing_required": len(issues),
            "required_fields": list(opts.required_fields),
        }
        return ctx.put_metric("data_checks", metrics).assign("data_issues", issues)


def _as_issues(result: object, checker: object) -> list[dict[str, Any]]:
    if isinstance(result, list | tuple) and all(isinstance(i, Mapping) for i in result):
        return [dict(i) for i in result]
    raise TypeError(
        f"data_checks checker {describe_plugin(checker)} returned {type(result).__name__}, "
        "expected a list of issue dicts"
    )
