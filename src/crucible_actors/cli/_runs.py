"""``crucible-actors runs list|show|resume|delete|diff``: read, resume, delete, compare runs.

``runs delete`` lives in :mod:`._gc`, with ``gc``; ``runs diff`` in :mod:`._diff`.

The store is ``--store``, else ``CRUCIBLE_STORE_URL``, else the embedded
``sqlite:///./.crucible/crucible.db``. Human output is a table; ``--json`` prints one
JSON document whose shape is stable for scripts. The human output is a rich table on a
terminal and plain aligned columns in a pipe or a file (:mod:`._console`).

The ``--json`` documents:

- ``runs list --json``: ``{"store", "runs": [run...], "next_before"}``; pass
  ``next_before`` as ``--before`` to fetch the next (older) page, null on the last one.
  With ``--columns``, also ``"columns": [path...]`` and ``"values": [{path: value}...]``
  (one per run; the column syntax is the dashboard's).
- ``runs show --json``: ``{"store", "run", "stages": [...], "attempts": [...],
  "artifacts": [...], "checkpoint": {"index", "created_at"} | null, "provenance"}``
  (``provenance``: the stored provenance view;
  null for a run stored without it).
- ``runs diff --json``: see :mod:`._diff`.
- ``runs resume --json``: ``{"store", "run_id", "resumed_from", "status", "failure"}``.

Run records carry ``id``, ``experiment_id``, ``status``, ``metrics``, ``outputs``,
``metadata``, ``failure``, ``started_at``, ``finished_at`` (ISO 8601), ``owner_id``,
``resume_count`` and ``provenance`` (as stored: ``{"environment": id, "definition": id,
"stages", "inputs"}`` or null).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import anyio

from .._core import (
    RUN_STATUSES,
    load_definitions,
    load_provenance,
    parse_columns,
    run_columns,
    to_json_safe,
)
from ._console import fancy, stdout_console
from ._diff import add_diff, provenance_lines
from ._format import _common, _elapsed, _json, _positive, _seconds, _table, store_url
from ._gc import add_delete

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from datetime import datetime

    from rich.console import Console

    from .._core import ArtifactRecord, RunRecord, StageAttempt

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``runs`` command and its subcommands."""
    runs = sub.add_parser("runs", help="list, inspect and resume stored runs")
    cmds = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND")
    cmds.required = True

    p = cmds.add_parser("list", help="list runs, newest first")
    p.add_argument("--experiment", metavar="ID", help="only runs of this experiment")
    p.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    p.add_argument("--limit", type=_positive, default=50, metavar="N", help="at most N runs")
    p.add_argument("--before", metavar="RUN_ID", help="only runs stored before this one")
    p.add_argument("--sweep", metavar="ID", help="the runs of this sweep, in point order")
    p.add_argument(
        "--columns",
        metavar="COLS",
        type=_columns_arg,
        default=[],
        help="extra columns, comma-separated: metrics.<name>, params.<stage>.<option> "
        "(e.g. metrics.accuracy,params.cv_eval.model)",
    )
    _common(p)
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("show", help="show one run: stages, attempts, metrics, artifacts")
    p.add_argument("run_id", metavar="RUN_ID")
    _common(p)
    p.set_defaults(func=cmd_show)

    p = cmds.add_parser("resume", help="resume a run from its last checkpoint")
    p.add_argument("run_id", metavar="RUN_ID")
    _common(p)
    p.set_defaults(func=cmd_resume)

    add_delete(cmds)
    add_diff(cmds)


def _columns_arg(text: str) -> list[str]:
    import argparse

    try:
        return parse_columns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- formatting ----------------------------------------------------------------------


def _when(ts: datetime | None) -> str:
    return "-" if ts is None else ts.strftime("%Y-%m-%d %H:%M:%S")


def _failure_text(failure: dict[str, Any] | None) -> str:
    if not failure:
        return ""
    where = f"stage {failure['stage']!r}: " if failure.get("stage") else ""
    tries = failure.get("attempts")
    after = f" (after {tries} attempt{'s' if tries != 1 else ''})" if tries else ""
    return f"{where}{failure.get('reason_type')}: {failure.get('message')}{after}"


_STATUS_STYLES = {
    "completed": "green",
    "cached": "green",
    "failed": "bold red",
    "timeout": "bold red",
    "cancelled": "yellow",
    "interrupted": "yellow",
    "running": "bold cyan",
    "pending": "dim",
}


def _rich_table(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    status_column: int | None = None,
) -> None:
    """Print ``rows`` as a rich table; the cells are text, never markup."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(
            *(
                Text(cell, style=_STATUS_STYLES.get(cell, "") if i == status_column else "")
                for i, cell in enumerate(row)
            )
        )
    console.print(table)


def _stages(attempts: list[StageAttempt]) -> list[dict[str, Any]]:
    stages: dict[int, dict[str, Any]] = {}
    for a in attempts:
        entry = stages.setdefault(
            a.index,
            {
                "index": a.index,
                "stage": a.stage,
                "attempts": 0,
                "status": a.status,
                "duration": 0.0,
            },
        )
        entry["attempts"] += 1
        entry["status"] = a.status
        entry["cache_hit"] = a.cache_hit
        entry["duration"] += a.duration or 0.0
    return [stages[i] for i in sorted(stages)]


# -- commands ------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    """Print a page of runs, newest first."""
    from ..store import open_store

    url = store_url(args.store)
    if args.sweep:
        from ._sweep import list_sweep

        if args.columns:
            print(
                "error: --columns applies to the runs listing, not --sweep (which shows "
                "the swept parameters and metrics already); leave one of them out",
                file=sys.stderr,
            )
            return 2

        return list_sweep(args, url)

    columns: list[str] = args.columns

    async def main() -> tuple[list[RunRecord], list[dict[str, Any]]]:
        async with open_store(url) as store:
            runs = await store.list_runs(
                experiment_id=args.experiment,
                status=args.status,
                limit=args.limit,
                before=args.before,
            )
            return runs, await _columns_of(store, runs, columns) if columns else []

    runs, values = anyio.run(main, backend="trio")
    next_before = runs[-1].id if len(runs) == args.limit else None
    if args.json:
        doc: dict[str, Any] = {"store": url, "runs": runs, "next_before": next_before}
        if columns:
            doc["columns"] = columns
            doc["values"] = values
        _json(doc)
        return 0
    if not runs:
        print(f"no runs in {url}")
        return 0
    rows = [
        [
            r.id,
            r.experiment_id,
            r.status,
            _when(r.started_at),
            _seconds(_elapsed(r)),
            (r.failure or {}).get("stage") or "",
            *(_cell(v.get(c)) for c in columns),
        ]
        for r, v in zip(runs, values or [{}] * len(runs), strict=True)
    ]
    headers = [
        "RUN ID",
        "EXPERIMENT",
        "STATUS",
        "STARTED (UTC)",
        "DURATION",
        "FAILED AT",
        *(c.upper() for c in columns),
    ]
    console = stdout_console()
    if fancy(console):
        _rich_table(
            console,
            ["Run id", "Experiment", "Status", "Started (UTC)", "Duration", "Failed at", *columns],
            rows,
            title=f"runs in {url}",
            status_column=2,
        )
        if next_before is not None:
            console.print(f"more: --before {next_before}", style="dim")
        return 0
    print(_table(headers, rows))
    if next_before is not None:
        print(f"(more: --before {next_before})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print one run with its stages, attempts, metrics, failure and artifacts."""
    from ..store import open_store

    url = store_url(args.store)

    async def main() -> tuple[Any, ...]:
        async with open_store(url) as store:
            run = await store.get_run(args.run_id)
            return (
                run,
                await store.list_attempts(run.id),
                await store.list_artifacts(run.id),
                await store.load_checkpoint(run.id),
                (await load_definitions(store, [run]))[0],
                await load_provenance(store, run.provenance),
            )

    run, attempts, artifacts, checkpoint, definition, provenance = anyio.run(main, backend="trio")
    cp = (
        None
        if checkpoint is None
        else {"index": checkpoint.index, "created_at": checkpoint.created_at}
    )
    if args.json:
        _json(
            {
                "store": url,
                "run": run,
                "stages": _stages(attempts),
                "attempts": attempts,
                "artifacts": artifacts,
                "checkpoint": cp,
                "provenance": provenance,
            }
        )
        return 0
    where = None
    if checkpoint is not None:
        total = len((definition or {}).get("pipeline", ()))
        where = (
            "after the last stage"
            if total and checkpoint.index >= total
            else f"before stage {checkpoint.index}"
        )
    console = stdout_console()
    if fancy(console):
        _show_rich(console, run, attempts, artifacts, where)
        for line in provenance_lines(provenance):
            console.print(line, highlight=False, markup=False)
        return 0
    out = [
        f"run {run.id}",
        f"  experiment  {run.experiment_id}",
        f"  status      {run.status}",
        f"  started     {_when(run.started_at)} UTC",
        f"  finished    {_when(run.finished_at)}{' UTC' if run.finished_at else ''}",
        f"  duration    {_seconds(_elapsed(run))}",
    ]
    if run.failure:
        out.append(f"  failure     {_failure_text(run.failure)}")
    if where is not None:
        out.append(f"  checkpoint  {where}")
    if attempts:
        out.append("stages:")
        table = _table(_ATTEMPT_HEADERS, _attempt_rows(attempts))
        out.extend("  " + line for line in table.splitlines())
    if run.metrics:
        out.append("metrics:")
        for key, value in run.metrics.items():
            out.append(f"  {key}: {_metric_text(value)}")
    if artifacts:
        out.append("artifacts:")
        table = _table(_ARTIFACT_HEADERS, _artifact_rows(artifacts))
        out.extend("  " + line for line in table.splitlines())
    out.extend(provenance_lines(provenance))
    print("\n".join(out))
    return 0


_ATTEMPT_HEADERS = ["#", "STAGE", "ATTEMPT", "STATUS", "DURATION", "ERROR"]
_ARTIFACT_HEADERS = ["NAME", "TYPE", "FORMAT", "LOCATION"]


def _attempt_rows(attempts: Sequence[StageAttempt]) -> list[list[str]]:
    return [
        [
            str(a.index),
            a.stage,
            str(a.attempt),
            "cached" if a.cache_hit else a.status,
            _seconds(a.duration),
            a.error or "",
        ]
        for a in attempts
    ]


def _artifact_rows(artifacts: Sequence[ArtifactRecord]) -> list[list[str]]:
    return [[a.name, a.type or "", a.format or "", a.location] for a in artifacts]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else _metric_text(value, 40)


async def _columns_of(
    store: Any, runs: Sequence[RunRecord], columns: list[str]
) -> list[dict[str, Any]]:
    """The values of ``columns`` for each of ``runs``; options from each run's own
    definition (stored by content; for older runs, their latest checkpoint)."""
    definitions: list[dict[str, Any] | None] = [None] * len(runs)
    if any(c.startswith("params.") for c in columns):
        definitions = await load_definitions(store, runs, checkpoints=True)
    return [run_columns(r, columns, definition=d) for r, d in zip(runs, definitions, strict=True)]


def _metric_text(value: Any, limit: int = 100) -> str:
    text = json.dumps(to_json_safe(value), sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show_rich(
    console: Console,
    run: RunRecord,
    attempts: Sequence[StageAttempt],
    artifacts: Sequence[ArtifactRecord],
    checkpoint: str | None,
) -> None:
    from rich.table import Table
    from rich.text import Text

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    facts.add_row("run", Text(run.id, style="bold"))
    facts.add_row("experiment", Text(run.experiment_id))
    facts.add_row("status", Text(run.status, style=_STATUS_STYLES.get(run.status, "")))
    facts.add_row("started", f"{_when(run.started_at)} UTC")
    facts.add_row("finished", f"{_when(run.finished_at)}{' UTC' if run.finished_at else ''}")
    facts.add_row("duration", _seconds(_elapsed(run)))
    if run.failure:
        facts.add_row("failure", Text(_failure_text(run.failure), style="red"))
    if checkpoint is not None:
        facts.add_row("checkpoint", checkpoint)
    console.print(facts)
    if attempts:
        headers = [h.capitalize() for h in _ATTEMPT_HEADERS]
        _rich_table(console, headers, _attempt_rows(attempts), title="stages", status_column=3)
    if run.metrics:
        rows = [[str(k), _metric_text(v, 200)] for k, v in run.metrics.items()]
        _rich_table(console, ["Metric", "Value"], rows, title="metrics")
    if artifacts:
        headers = [h.capitalize() for h in _ARTIFACT_HEADERS]
        _rich_table(console, headers, _artifact_rows(artifacts), title="artifacts")


def cmd_resume(args: argparse.Namespace) -> int:
    """Resume a run from its last checkpoint and wait for it; 0 when it completes."""
    from .._core import Registry, open_persistence, open_runtime
    from ._progress import LiveProgress, PlainProgress, RunProgress

    url = store_url(args.store)
    # Stored definitions name stages as "module:attr"; import them from here.
    sys.path.insert(0, os.getcwd())
    registry = Registry.default()

    async def main() -> tuple[Any, Any]:
        async with (
            open_persistence(url) as persistence,
            open_runtime(registry=registry, store=persistence, on_start="ignore") as rt,
        ):
            handle = await persistence.resume_run(rt, args.run_id)
            if not args.json:
                console = stdout_console()
                text = f"resuming run {handle.run_id} before stage {handle.resumed_from}"
                progress = RunProgress(
                    handle.experiment, handle.run_id, resumed_from=handle.resumed_from
                )
                view: LiveProgress | PlainProgress
                if fancy(console):
                    console.print(text)
                    view = LiveProgress(progress, console)
                else:
                    print(text, flush=True)
                    view = PlainProgress(progress)
                with view:
                    async for event in handle.events():
                        view.update(event)
            await handle.wait()
            return handle, handle.failure

    handle, failure = anyio.run(main, backend="trio")
    if args.json:
        _json(
            {
                "store": url,
                "run_id": handle.run_id,
                "resumed_from": handle.resumed_from,
                "status": handle.status.value,
                "failure": failure,
            }
        )
    else:
        print(f"run {handle.run_id}: {handle.status.value}")
        if failure:
            print(f"  failure  {_failure_text(failure)}")
    return 0 if handle.status.value == "completed" else 1
