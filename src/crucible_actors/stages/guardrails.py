"""The ``guardrails`` stage: scan ``assigns["examples"]`` with a guardrail adapter.

An adapter is an object with ``scan(examples, opts) -> list[violation dict]`` (sync or
async), a class with that method (instantiated with no arguments), a plain function
taking ``(examples, opts)``, or a ``"pkg.mod:attr"`` reference to any of these. Without
the ``adapter`` option the stage uses ``[guardrails] adapter`` from the project config
(``crucible.toml``, or ``[tool.crucible.guardrails]`` in ``pyproject.toml``, the nearest at
or above the working directory), else :class:`~crucible_actors.stages.NoopAdapter`. The
shipped adapter that scans is :class:`~crucible_actors.stages.PatternScanner`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import anyio.to_thread
import msgspec
import msgspec.structs

from .._core import ConfigFileError, GuardrailViolation, InvalidOptions, Stage, find_config
from ._patterns import NoopAdapter
from ._plugins import call_plugin, check_ref_or_callable, describe_plugin, load_ref

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from .._core import Context

__all__ = ["GuardrailsOptions", "GuardrailsStage"]

log = logging.getLogger("crucible_actors")


class GuardrailsOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Options of the ``guardrails`` stage (each field's ``Meta`` says what it does).

    ``adapter`` may also be an adapter object, class or function given from Python.
    """

    adapter: Annotated[
        Any,
        msgspec.Meta(
            description="a 'pkg.mod:attr' adapter (scan(examples, opts) -> violations); "
            "unset: [guardrails] adapter of crucible.toml / pyproject.toml, else no-op"
        ),
    ] = None
    fail_on_violation: Annotated[
        bool, msgspec.Meta(description="fail the stage when the adapter reports a violation")
    ] = False

    def __post_init__(self) -> None:
        check_ref_or_callable("adapter", self.adapter, allow_objects=True)


async def configured_adapter(cwd: str | Path | None = None) -> str | None:
    """Return ``adapter`` of the config's ``guardrails`` table at or above ``cwd``, or None.

    Raises:
        InvalidOptions: the config file is unreadable TOML, its guardrails table is not a
            table, or the entry is not a reference string.
    """
    try:
        config = await anyio.to_thread.run_sync(find_config, cwd)
        section = config.table("guardrails") if config is not None else {}
    except ConfigFileError as exc:
        raise InvalidOptions("guardrails", str(exc)) from exc
    ref = section.get("adapter")
    if ref is None:
        return None
    if not isinstance(ref, str):
        assert config is not None
        raise InvalidOptions(
            "guardrails",
            f"{config.path}: {config.table_name('guardrails')} adapter must be a "
            "'pkg.mod:attr' string",
        )
    return ref


async def resolve_adapter(adapter: Any) -> Callable[..., Any]:
    """Return the ``scan`` callable of ``adapter`` (see the module docstring for the forms).

    Raises:
        ImportError: a reference does not load.
        TypeError: the object has no ``scan`` method and is not callable.
    """
    source = adapter
    if source is None:
        source = await configured_adapter()
    if source is None:
        return NoopAdapter().scan
    if isinstance(source, str):
        source = await anyio.to_thread.run_sync(
            functools.partial(load_ref, source, option="adapter")
        )
    if isinstance(source, type):
        source = source()
    scan = getattr(source, "scan", None)
    if callable(scan):
        return scan  # type: ignore[no-any-return]
    if callable(source):
        return source  # type: ignore[no-any-return]
    raise TypeError(
        f"guardrails adapter {describe_plugin(source)} has no scan(examples, opts) method"
    )


class GuardrailsStage(Stage):
    """Scan the examples with a guardrail adapter and record the violations.

    With no list in ``assigns["examples"]`` the Context is returned unchanged. Otherwise
    ``metrics["guardrails"] = {"total", "violations"}`` and
    ``assigns["guardrail_violations"]`` hold the result.

    Raises:
        GuardrailViolation: ``fail_on_violation`` is set and there are violations.
        TypeError: the adapter returned something other than a list of dicts.
        Exception: whatever the adapter raised (the stage fails with that error).
    """

    name = "guardrails"
    description = "Applies safety guardrail checks to examples via configurable adapter"
    Options = GuardrailsOptions

    async def run(self, ctx: Context, opts: GuardrailsOptions) -> Context:
        """Scan ``assigns["examples"]``; see the class docstring."""
        examples = ctx.assigns.get("examples")
        if not isinstance(examples, list):
            return ctx
        scan = await resolve_adapter(opts.adapter)
        result = await call_plugin(scan, examples, msgspec.structs.asdict(opts))
        violations = _as_violations(result, scan)
        if violations:
            log.warning(
                "guardrails: %d violation(s) in %d example(s)", len(violations), len(examples)
            )
        if violations and opts.fail_on_violation:
            raise GuardrailViolation(violations)
        return ctx.put_metric(
            "guardrails", {"total": len(examples), "violations": len(violations)}
        ).assign("guardrail_violations", violations)


def _as_violations(result: object, scan: object) -> list[dict[str, Any]]:
    if isinstance(result, list | tuple) and all(isinstance(v, Mapping) for v in result):
        return [dict(v) for v in result]
    raise TypeError(
        f"guardrails adapter {describe_plugin(scan)} returned {type(result).__name__}, "
        "expected a list of violation dicts"
    )
