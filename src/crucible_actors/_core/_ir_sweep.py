"""The sweep definition: one experiment run over a grid (or zip) of option values.

:class:`Sweep` is the ``[sweep]`` table of an experiment file (``Experiment.sweep``);
:func:`coerce_sweep` builds it from its file form and :func:`check_sweep` checks it
against the pipeline it varies. Expanding a sweep into runs and checking its values
against the stages' schemas is :mod:`._sweep`'s job, at submit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ._errors import InvalidExperiment
from ._ir_refs import describe_validation_error

if TYPE_CHECKING:
    from ._ir import StageDef

__all__ = ["Sweep", "SweepMode", "check_sweep", "coerce_sweep"]

SweepMode = Literal["grid", "zip"]
_SWEEP_SETTINGS = ("mode", "repeats", "seed")


class Sweep(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """A set of runs of one experiment over option values (the ``[sweep]`` table).

    ``parameters`` maps option paths (``"stage.option"``, the stage named by its label in
    the pipeline; ``"stage.a.b"`` sets ``options["a"]["b"]``) to the values to try.
    ``mode="grid"`` runs the product of all value lists, ``"zip"`` the i-th value of
    every list together (the lists must then be of equal length). Each point runs
    ``repeats`` times; repeat ``r`` of point ``i`` gets the seed
    ``seed + i * repeats + r`` in ``ctx.telemetry_context["seed"]``.

    In a file the parameters sit beside ``mode``/``repeats``/``seed``, as quoted dotted
    keys or nested tables::

        [sweep]
        mode = "grid"
        repeats = 3
        "call_model.temperature" = [0.0, 0.7]
        call_model.model = ["a", "b"]
    """

    parameters: dict[str, list[Any]]
    mode: SweepMode = "grid"
    repeats: int = 1
    seed: int = 0

    @property
    def size(self) -> int:
        """The number of points (runs without repeats); the grid's product or a list's length."""
        lengths = [len(v) for v in self.parameters.values()]
        if self.mode == "zip":
            return lengths[0] if lengths else 0
        return math.prod(lengths)


def _flatten_paths(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten_paths(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def coerce_sweep(raw: Any) -> Sweep:
    """Build a :class:`Sweep` from its file form or from ``{"parameters": ...}``.

    Keys other than ``mode``/``repeats``/``seed`` (and ``parameters``) are option paths;
    nested tables are flattened into dotted paths.

    Raises:
        InvalidExperiment: the table is malformed; the message names the path under
            ``sweep``.
    """
    if isinstance(raw, Sweep):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidExperiment(f"sweep: expected a table/object, got {type(raw).__name__}")
    settings = {k: raw[k] for k in _SWEEP_SETTINGS if k in raw}
    params: dict[str, Any] = {}
    given = raw.get("parameters")
    if given is not None:
        if not isinstance(given, Mapping):
            raise InvalidExperiment(
                f"sweep.parameters: expected a table/object, got {type(given).__name__}"
            )
        _flatten_paths("", given, params)
    for key, value in raw.items():
        if key not in _SWEEP_SETTINGS and key != "parameters":
            _flatten_paths(str(key), value, params)
    wrong = [
        f"sweep.{path}: expected a list of values, got {type(v).__name__}"
        for path, v in params.items()
        if not isinstance(v, list | tuple)
    ]
    if wrong:
        raise InvalidExperiment(wrong)
    try:
        return msgspec.convert({**settings, "parameters": params}, Sweep, strict=False)
    except msgspec.ValidationError as exc:
        detail = describe_validation_error(exc, root="sweep")
        raise InvalidExperiment(detail.replace("sweep.parameters.", "sweep.")) from exc


def check_sweep(sweep: Sweep, pipeline: list[StageDef]) -> None:
    """Check a sweep against the pipeline it varies (the registry is checked at submit).

    Raises:
        InvalidExperiment: no parameters, an empty value list, a path naming no stage of
            the pipeline, zip lists of unequal length, or ``repeats < 1``.
    """
    errors: list[str] = []
    labels = [sd.label for sd in pipeline]
    if not sweep.parameters:
        errors.append(
            'sweep: no parameters; add option paths and values, e.g. "stage.option" = [1, 2]'
        )
    if sweep.repeats < 1:
        errors.append(f"sweep.repeats: must be >= 1, got {sweep.repeats!r}")
    for path, values in sweep.parameters.items():
        stage, _, option = path.partition(".")
        if not option:
            errors.append(
                f"sweep.{path}: an option path is 'stage.option'; got {path!r} with no option"
            )
        elif stage not in labels:
            hint = _closest(stage, labels)
            errors.append(
                f"sweep.{path}: no stage named {stage!r} in the pipeline"
                + (f"; did you mean {hint!r}?" if hint else f" (stages: {', '.join(labels)})")
            )
        if not values:
            errors.append(f"sweep.{path}: empty value list; give at least one value")
    if sweep.mode == "zip":
        lengths = {path: len(v) for path, v in sweep.parameters.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{p} has {n}" for p, n in lengths.items())
            errors.append(f"sweep: mode 'zip' needs value lists of equal length; {shown}")
    if errors:
        raise InvalidExperiment(errors)


def _closest(name: str, names: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, names, n=1)
    return found[0] if found else None
