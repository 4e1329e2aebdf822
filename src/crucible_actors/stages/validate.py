"""The ``validate`` stage: pre-flight checks of the experiment a run executes.

Every ``StageDef`` (the validate stage's own included) must resolve to a stage: an explicit
``stage`` must import and implement ``run``, a ``name`` must be registered. Going further
than CrucibleFramework, each stage's options are checked against its schema (and converted
into its ``Options`` Struct, exactly as the runtime will), each ``OutputSpec`` must name
known formats and a known sink, and ``reliability.stats`` must name known tests. Problems
are reported, never raised one by one: the stage records them all in
``metrics["validation"]`` and, with ``strict``, fails with every message at once.

The stage runs sync (in a worker thread): importing stage modules is blocking IO.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from .. import stats as _stats
from .._core import (
    Registry,
    SchemaError,
    Stage,
    ValidationFailed,
    coerce_stage,
    current_registry,
    describe_validation_error,
    stage_info,
    stage_ref,
    validate_options,
)
from .report import FORMATS, SINKS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._core import Context, Experiment, StageDef

__all__ = ["ValidateOptions", "ValidateStage", "check_experiment"]

log = logging.getLogger("crucible_actors")


class ValidateOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Options of the ``validate`` stage (each field's ``Meta`` says what it does)."""

    strict: Annotated[
        bool,
        msgspec.Meta(
            description="fail with ValidationFailed on any problem instead of recording warnings"
        ),
    ] = False


def _registry_for_run() -> Registry:
    """Return the registry the current run resolves stages with.

    The runtime publishes it in a context variable while a run executes; outside a run
    (or before the runtime sets it) this is :meth:`Registry.default`.
    """
    registry = current_registry.get(None)
    return registry if registry is not None else Registry.default()


def _import_ref(ref: str) -> Any:
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ImportError(f"{ref!r} is not of the form 'package.module:attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _resolve(
    stage_def: StageDef, registry: Registry
) -> tuple[Any, dict[str, Any] | None, list[str]]:
    """Return ``(stage object or None, normalized schema or None, problems)``."""
    if stage_def.stage is not None:
        ref = stage_ref(stage_def.stage)
        target = stage_def.stage
        if isinstance(target, str):
            try:
                target = _import_ref(target)
            except Exception:  # any failure while importing means "cannot be loaded"
                return None, None, [f"Stage module {ref} cannot be loaded"]
        if not callable(getattr(target, "run", None)):
            return None, None, [f"Stage module {ref} does not implement run"]
        try:
            obj = coerce_stage(target, where=ref)
        except Exception as exc:  # e.g. a class whose __init__ needs arguments
            return None, None, [f"Stage module {ref} cannot be instantiated: {exc}"]
        scratch = Registry()
        try:
            scratch.register(obj, name=stage_def.label)  # the registry's contract checks
        except SchemaError as exc:
            detail = "; ".join(exc.errors)
            return (
                obj,
                None,
                [f"Stage {stage_def.label!r} has an invalid describe() schema: {detail}"],
            )
        return obj, scratch.schema(stage_def.label), []

    name = stage_def.name
    if name is None:
        return None, None, ["Stage definition missing both name and stage"]
    if name not in registry:
        return None, None, [f"Stage {name!r} is not registered"]
    try:
        obj = registry.resolve(name)
    except Exception as exc:
        return None, None, [f"Stage {name!r} cannot be loaded: {exc}"]
    try:
        schema = registry.schema(name)
    except SchemaError as exc:
        detail = "; ".join(exc.errors)
        return obj, None, [f"Stage {name!r} has an invalid describe() schema: {detail}"]
    return obj, schema, []


def _check_options(label: str, obj: Any, schema: Mapping[str, Any], options: Any) -> list[str]:
    opts = dict(options or {})
    errors = validate_options(opts, schema)
    if errors:
        return [f"Stage {label!r}: {error}" for error in errors]
    options_type = stage_info(obj).options_type
    if options_type is not None:
        try:
            msgspec.convert(opts, options_type, strict=False)
        except msgspec.ValidationError as exc:
            return [f"Stage {label!r}: {describe_validation_error(exc)}"]
    return []


def _check_stage_def(stage_def: StageDef, registry: Registry) -> list[str]:
    obj, schema, problems = _resolve(stage_def, registry)
    if problems or obj is None or schema is None:
        return problems
    return _check_options(stage_def.label, obj, schema, stage_def.options)


def _check_outputs(experiment: Experiment) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for spec in experiment.outputs:
        if not spec.name:
            problems.append("Output missing name")
            continue
        if spec.name in seen:
            problems.append(
                f"Duplicate output name: {spec.name!r}; its reports would overwrite each other"
            )
        seen.add(spec.name)
        if not spec.formats:
            problems.append(f"Output {spec.name!r} has no formats specified")
        for fmt in spec.formats:
            if fmt not in FORMATS:
                problems.append(
                    f"Unknown format: {fmt} (output {spec.name!r}; expected one of: "
                    f"{', '.join(FORMATS)})"
                )
        if spec.sink not in SINKS:
            problems.append(
                f"Unknown sink: {spec.sink} (output {spec.name!r}; expected one of: "
                f"{', '.join(SINKS)})"
            )
        directory = spec.options.get("dir")
        if directory is not None and not isinstance(directory, str):
            problems.append(f"Output {spec.name!r}: option dir must be a string, got {directory!r}")
    return problems


def _check_stats(experiment: Experiment) -> list[str]:
    stats = experiment.reliability.stats if experiment.reliability else None
    if stats is None:
        return []
    problems: list[str] = []
    invalid = [test for test in stats.tests if test not in _stats.TESTS]
    if invalid:
        problems.append(f"Unknown statistical tests: {invalid!r}")
    correction = stats.multiple_testing_correction
    if correction is not None and correction not in _stats.CORRECTIONS:
        problems.append(
            f"Unknown multiple testing correction: {correction!r}; expected one of: "
            f"{', '.join(_stats.CORRECTIONS)}"
        )
    return problems


def check_experiment(experiment: Experiment, registry: Registry) -> list[str]:
    """Return every problem of ``experiment`` against ``registry``, in pipeline order.

    Blocking: it imports the modules of explicitly referenced stages.
    """
    problems: list[str] = []
    for stage_def in experiment.pipeline:
        problems += _check_stage_def(stage_def, registry)
    problems += _check_outputs(experiment)
    problems += _check_stats(experiment)
    return problems


class ValidateStage(Stage):
    """Check the experiment before anything runs.

    Stores ``metrics["validation"] = {"status": "passed"}`` or ``{"status": "warnings",
    "warnings": [...]}``.

    Raises:
        ValidationFailed: ``strict`` is set and a problem was found; ``messages`` lists all.
    """

    name = "validate"
    description = "Pre-flight validation of experiment pipeline stages, their options and outputs"
    Options = ValidateOptions
    # It reads the whole pipeline and the registry, which the cache key leaves out.
    cacheable = False

    def run(self, ctx: Context, opts: ValidateOptions) -> Context:
        """Validate ``ctx.experiment`` with the run's registry; see the class docstring."""
        problems = check_experiment(ctx.experiment, _registry_for_run())
        if not problems:
            return ctx.put_metric("validation", {"status": "passed"})
        for problem in problems:
            log.warning("validate: %s", problem)
        if opts.strict:
            raise ValidationFailed(problems)
        return ctx.put_metric("validation", {"status": "warnings", "warnings": problems})
