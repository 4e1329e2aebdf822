"""``crucible-actors trace export RUN_ID``: export a stored decision trace.

Runs record their trace when started with ``--trace`` (``enable_trace=True``) and a store;
this command rebuilds the chain from the stored events and renders it as JSON, a
self-contained HTML page or Markdown.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import msgspec

from .._core import CrucibleError, TraceChain, TraceEvent
from ._format import store_url

if TYPE_CHECKING:
    import argparse

    from .._core import TraceEventRecord

__all__ = ["chain_from_records", "register"]

FORMATS = ("json", "html", "markdown")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``trace`` command group."""
    p = sub.add_parser("trace", help="work with stored decision traces")
    tsub = p.add_subparsers(dest="trace_command", metavar="SUBCOMMAND")
    tsub.required = True
    e = tsub.add_parser("export", help="export the decision trace of a run")
    e.add_argument("run_id", metavar="RUN_ID")
    e.add_argument("--format", choices=FORMATS, default="json")
    e.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    e.add_argument(
        "--store",
        metavar="URL",
        help="store URL (default: CRUCIBLE_STORE_URL or sqlite:///./.crucible/crucible.db)",
    )
    e.set_defaults(func=cmd_export)


def chain_from_records(name: str, run_id: str, records: list[TraceEventRecord]) -> TraceChain:
    """Rebuild a :class:`TraceChain` called ``name`` from a run's stored trace events."""
    events = [msgspec.convert(r.event, TraceEvent, strict=False) for r in records]
    created = events[0].timestamp if events else None
    return TraceChain(id=run_id, name=name, events=events, created_at=created)


class NoTrace(CrucibleError):
    """The run exists but recorded no decision trace."""


async def _load(url: str, run_id: str) -> TraceChain:
    from ..store import open_store

    async with open_store(url) as store:
        run = await store.get_run(run_id)
        records = await store.list_events(run_id)
        if not records:
            raise NoTrace(
                f"run {run_id} has no decision trace; run it with --trace "
                "(enable_trace=True) to record one"
            )
        name = run.experiment_id
        try:
            exp = await store.get_experiment(run.experiment_id)
        except CrucibleError:
            exp = None
        if exp is not None:
            definition = getattr(exp, "definition", None) or {}
            name = definition.get("name") or name
        return chain_from_records(name, run_id, list(records))


def cmd_export(args: argparse.Namespace) -> int:
    """Export the trace; 0 on success, 2 when the run or its trace does not exist."""
    from .. import trace

    chain = anyio.run(_load, store_url(args.store), args.run_id, backend="trio")
    render = {
        "json": trace.export_json_chain,
        "html": trace.export_html_chain,
        "markdown": trace.export_markdown_chain,
    }[args.format]
    text = render(chain)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {args.format} trace of run {args.run_id} to {path}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
