"""``crucible-actors runs diff A B``, and the provenance part of ``runs show``.

``runs diff`` reads two stored runs and prints what differs between them: options (each
``<stage label>.<option>`` of the run's own definition: stored by content with its
provenance, else from its latest checkpoint, else the stored experiment's), code
fingerprints, environment (Python, crucible-actors, platform, host, git), package
versions, input data digests and metrics. It exits 0 whether or not they differ (2 for
an unknown run). ``--json`` prints ``{"store", "a", "b", "same", "options", "code",
"environment", "packages", "inputs", "metrics"}``, each part a list of ``{"key", "a",
"b"}`` (a value a run does not have is null).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio

from .._core import load_definitions, load_provenance, provenance_diff, to_json_safe
from ._format import _common, _json, _table, store_url

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping

    from .._core import RunRecord

__all__ = ["add_diff", "provenance_lines"]

#: The parts of a diff, in the order they print.
PARTS = ("options", "code", "environment", "packages", "inputs", "metrics")


def add_diff(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``runs diff``."""
    p = cmds.add_parser(
        "diff",
        help="show what differs between two runs: options, code, environment, data, metrics",
    )
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    _common(p)
    p.set_defaults(func=cmd_diff)


def _short(value: Any, limit: int = 60) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(to_json_safe(value), sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def provenance_lines(view: Mapping[str, Any] | None) -> list[str]:
    """Return the ``provenance:`` block of ``runs show`` (indented lines), or ``[]``."""
    if view is None:
        return []
    out = ["provenance:"]
    python = view.get("python") or "?"
    out.append(f"  python           {python}  crucible-actors {view.get('crucible_actors') or '?'}")
    out.append(f"  platform         {view.get('platform') or '?'}")
    out.append(f"  host             {view.get('host') or '?'}")
    git = view.get("git")
    if git:
        out.append(f"  git              {git['commit']}{' (dirty)' if git.get('dirty') else ''}")
    packages = view.get("packages") or {}
    if packages:
        text = ", ".join(f"{k} {v}" for k, v in packages.items())
        out.append(f"  packages         {text}")
    for label, fingerprint in (view.get("stages") or {}).items():
        out.append(f"  code {label:<11} {fingerprint}")
    for key, digest in (view.get("inputs") or {}).items():
        out.append(f"  input {key} {digest}")
    return out


def _options(definition: Mapping[str, Any] | None) -> dict[str, Any]:
    """Flatten a definition's stage options to ``{"<label>.<option path>": value}``."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        else:
            out[prefix] = value

    for sd in (definition or {}).get("pipeline") or ():
        if not isinstance(sd, dict):
            continue
        label = sd.get("name") or sd.get("stage") or "?"
        for key, value in (sd.get("options") or {}).items():
            walk(f"{label}.{key}", value)
    return out


async def _facts(store: Any, run_id: str) -> tuple[RunRecord, dict[str, Any]]:
    run = await store.get_run(run_id)
    (definition,) = await load_definitions(store, [run], checkpoints=True)
    return run, {
        "options": _options(definition),
        "provenance": await load_provenance(store, run.provenance),
    }


def _rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, a.get(k), b.get(k)) for k in sorted({*a, *b}) if a.get(k) != b.get(k)]


def cmd_diff(args: argparse.Namespace) -> int:
    """Print what differs between two stored runs; 0 either way."""
    from ..store import open_store

    url = store_url(args.store)

    async def main() -> tuple[Any, ...]:
        async with open_store(url) as store:
            return (*await _facts(store, args.run_a), *await _facts(store, args.run_b))

    run_a, facts_a, run_b, facts_b = anyio.run(main, backend="trio")
    parts: dict[str, list[tuple[str, Any, Any]]] = {
        "options": _rows(facts_a["options"], facts_b["options"]),
        **provenance_diff(facts_a["provenance"], facts_b["provenance"]),
        "metrics": _rows(run_a.metrics or {}, run_b.metrics or {}),
    }
    same = not any(parts.values())
    if args.json:
        doc: dict[str, Any] = {"store": url, "a": run_a.id, "b": run_b.id, "same": same}
        for part in PARTS:
            doc[part] = [{"key": k, "a": va, "b": vb} for k, va, vb in parts[part]]
        _json(doc)
        return 0
    if same:
        print(
            f"runs {run_a.id} and {run_b.id}: no difference in options, code, environment, "
            "input data or metrics"
        )
    else:
        print(f"runs {run_a.id} (A) and {run_b.id} (B) differ:")
        for part in PARTS:
            rows = parts[part]
            if rows:
                print(f"{part}:")
                table = _table(["", "A", "B"], [[k, _short(va), _short(vb)] for k, va, vb in rows])
                print("\n".join("  " + line for line in table.splitlines()[1:]))
    missing = [r.id for r, f in ((run_a, facts_a), (run_b, facts_b)) if f["provenance"] is None]
    if missing:
        print(f"(no provenance recorded for {', '.join(missing)}: code and environment unknown)")
    return 0
