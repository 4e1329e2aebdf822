"""Result columns: a run's chosen metrics and parameters, by column path.

One syntax, shared by ``crucible-actors runs list --columns`` and the dashboard's
``GET /api/runs?columns=``:

- ``metrics.<name>``: the run's metric ``<name>`` (``RunRecord.metrics``). A name with
  dots is looked up whole first, then as a path into nested tables
  (``metrics.bench.p_value`` is ``metrics["bench.p_value"]`` if there is such a key,
  else ``metrics["bench"]["p_value"]``).
- ``params.<stage label>.<option>``: the option of the run's stage with that label, as
  the run saw it: the sweep point's value when the run is a point of a sweep that
  varies it (``params.<sweep path>``: the sweep's own paths are ``<label>.<option>``,
  so a sweep column is the same string), else the run's own definition's (the caller
  passes it: :func:`crucible_actors._core._provenance.load_definitions`). The label
  is the part before the first dot, the option path the rest (dots go into nested
  tables). A stage without a ``name`` matches its ``"module:qualname"`` reference or
  that reference's last qualname part (``cv_eval`` for ``"stages:cv_eval"``).

A value the run does not have is None. Options the definition leaves to the stage's
defaults are not known here (None), since reading them needs the stage's code.

This module is self-contained (stdlib only) so that the store's readers, the CLI and
the HTTP service all use this one definition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = ["COLUMN_KINDS", "parse_columns", "run_columns"]

#: The first part of every column path.
COLUMN_KINDS: Final = ("metrics", "params")

_MISSING: Final = object()


def parse_columns(spec: str | Iterable[str]) -> list[str]:
    """Return the column paths of ``spec`` (comma-separated text or a list), checked.

    Blank entries are dropped and duplicates kept once, in first-seen order.

    Raises:
        ValueError: a column is neither ``metrics.<name>`` nor
            ``params.<stage label>.<option>``; the message names it and shows both forms.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    seen: dict[str, None] = {}
    for raw in items:
        column = raw.strip()
        if not column:
            continue
        kind, _, rest = column.partition(".")
        ok = kind == "metrics" and rest != ""
        if kind == "params":
            label, _, option = rest.partition(".")
            ok = bool(label) and bool(option)
        if not ok:
            raise ValueError(
                f"column {column!r}: expected 'metrics.<name>' or "
                "'params.<stage label>.<option>' (e.g. metrics.accuracy, "
                "params.cv_eval.model); separate columns with commas"
            )
        seen.setdefault(column, None)
    return list(seen)


def run_columns(
    run: Any,
    columns: Sequence[str],
    *,
    definition: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return ``{column: value}`` for one run, for each of ``columns`` (in order).

    ``run`` is a :class:`~crucible_actors._core.persistence._store.RunRecord` or its JSON mapping
    (anything with ``metrics``). ``definition`` is the experiment definition the run
    executed, as stored (``DefinitionRecord.definition``, or for a run recorded without
    one ``ExperimentRecord.definition``: a mapping with ``pipeline``), and
    ``parameters`` the run's sweep point parameters (``SweepPointRecord.parameters``)
    when it is a sweep point; either may be None. A value that is not there is None.
    Columns are expected to be checked by :func:`parse_columns`; an unknown kind gives
    None.
    """
    metrics = run.get("metrics") if isinstance(run, Mapping) else getattr(run, "metrics", None)
    out: dict[str, Any] = {}
    for column in columns:
        kind, _, rest = column.partition(".")
        value: Any = _MISSING
        if kind == "metrics":
            value = _lookup(metrics, rest)
        elif kind == "params":
            if parameters and rest in parameters:
                value = parameters[rest]
            else:
                label, _, option = rest.partition(".")
                value = _lookup(_stage_options(definition, label), option)
        out[column] = None if value is _MISSING else value
    return out


def _stage_options(definition: Mapping[str, Any] | None, label: str) -> Any:
    """The stored options of the first stage of ``definition`` labelled ``label``."""
    if not isinstance(definition, Mapping):
        return None
    pipeline = definition.get("pipeline")
    if not isinstance(pipeline, list):
        return None
    fallback: Any = None
    for sd in pipeline:
        if not isinstance(sd, Mapping):
            continue
        name = sd.get("name")
        ref = sd.get("stage")
        if name:
            if name == label:
                return sd.get("options")
            continue
        if isinstance(ref, str):
            if ref == label:
                return sd.get("options")
            if fallback is None and ref.rpartition(":")[2].rpartition(".")[2] == label:
                fallback = sd.get("options")
    return fallback


def _lookup(table: Any, path: str) -> Any:
    """``table[path]``, else a walk down nested tables along the dots of ``path``."""
    if not isinstance(table, Mapping) or not path:
        return _MISSING
    if path in table:
        return table[path]
    head, dot, tail = path.partition(".")
    while dot:
        if head in table:
            found = _lookup(table[head], tail)
            if found is not _MISSING:
                return found
        more, dot, tail = tail.partition(".")
        head = f"{head}.{more}"
    return _MISSING
