"""``crucible-actors run FILE``: run one experiment file, show its progress, then a summary.

Persists to the store named by ``--store``, ``CRUCIBLE_STORE_URL`` or the embedded
``./.crucible/crucible.db`` (printed once at the top), unless ``--no-persist``.

Progress comes from the run's events (:mod:`._progress`): a live table on a terminal,
one plain line per event in a pipe, a file or with ``--no-progress``. ``--json`` prints
only the final Context.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .._core import Registry, RunHandle, RunStatus, load_experiment, to_json_safe
from ..errors import CrucibleError, InvalidExperiment, StageFailed, StoreError
from ._console import fancy, stdout_console
from ._format import store_url
from ._progress import LiveProgress, PlainProgress, RunProgress, fmt_seconds

if TYPE_CHECKING:
    import argparse

    from rich.console import Console

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` command."""
    p = sub.add_parser("run", help="run an experiment file (TOML, JSON or YAML)")
    p.add_argument("file", help="experiment file")
    p.add_argument("--assigns", metavar="FILE", help="JSON or TOML file seeding ctx.assigns")
    p.add_argument(
        "--validate-options",
        choices=("off", "warn", "error"),
        default="off",
        help="check stage options against their schemas before each stage",
    )
    p.add_argument("--run-id", help="run id (default: a new UUID4)")
    p.add_argument("--trace", action="store_true", help="record a decision trace")
    p.add_argument("--json", action="store_true", help="print the final Context as JSON")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no live display on a terminal: plain lines, as in a pipe",
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help="store URL (default: CRUCIBLE_STORE_URL or sqlite:///./.crucible/crucible.db)",
    )
    p.add_argument("--no-persist", action="store_true", help="do not record the run")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="run every stage: neither use nor store cached stage results",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster for isolation='ray' stages (default: RAY_ADDRESS, else address "
        "in [ray] of crucible.toml or [tool.crucible.ray] of pyproject.toml, else a local "
        "Ray started on first use)",
    )
    p.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    from ._sweep import add_run_options

    add_run_options(p)
    p.set_defaults(func=cmd_run)


def _load_assigns(path: str) -> dict[str, Any]:
    import msgspec

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidExperiment(f"cannot read assigns file: {exc.strerror}", source=path) from exc
    try:
        value = msgspec.toml.decode(data) if path.endswith(".toml") else msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidExperiment(f"assigns file does not parse: {exc}", source=path) from exc
    if not isinstance(value, dict):
        raise InvalidExperiment("assigns file must hold an object/table", source=path)
    return value


def _print_summary(handle: RunHandle) -> None:
    out = sys.stdout
    print(
        f"run {handle.run_id}  experiment {handle.experiment_id}  {handle.status.value}", file=out
    )
    print("stages:", file=out)
    by_stage: dict[int, list[Any]] = {}
    for rec in handle.attempts:
        by_stage.setdefault(rec.index, []).append(rec)
    for index, sd in enumerate(handle.experiment.pipeline):
        label = sd.label
        if not sd.enabled:
            print(f"  {index + 1}. {label:<20} skipped", file=out)
            continue
        recs = by_stage.get(index)
        if not recs:
            status = "not run" if index >= handle.resumed_from else "done earlier"
            print(f"  {index + 1}. {label:<20} {status}", file=out)
            continue
        last = recs[-1]
        total = sum((r.finished or r.started) - r.started for r in recs)
        tries = f"  ({len(recs)} attempts)" if len(recs) > 1 else ""
        err = f"  {last.error}" if last.error and last.status != "completed" else ""
        status = "cached" if last.cache_hit else last.status
        print(
            f"  {index + 1}. {label:<20} {status:<10} {fmt_seconds(total)}{tries}{err}",
            file=out,
        )
    ctx = handle.context
    if ctx is not None and ctx.metrics:
        print("metrics:", file=out)
        for key, value in ctx.metrics.items():
            print(f"  {key}: {_metric_text(value)}", file=out)


def _metric_text(value: Any, limit: int = 100) -> str:
    text = json.dumps(to_json_safe(value), sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _print_rich_summary(console: Console, handle: RunHandle) -> None:
    """The terminal's summary: the live table stays on screen; add the metrics below it."""
    from rich.table import Table
    from rich.text import Text

    ctx = handle.context
    if ctx is not None and ctx.metrics:
        table = Table(title="metrics", title_justify="left", header_style="bold")
        table.add_column("Metric")
        table.add_column("Value", overflow="fold")
        for key, value in ctx.metrics.items():
            table.add_row(Text(str(key)), Text(_metric_text(value, 200)))
        console.print(table)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the experiment file; 0 on success, 1 when the run failed, 2 on bad input or a
    store error."""
    exp_path = Path(args.file)
    experiment = load_experiment(exp_path)
    # Stages referenced as "module:attr" next to the experiment file import from there.
    sys.path.insert(0, str(exp_path.resolve().parent))
    assigns = _load_assigns(args.assigns) if args.assigns else None
    url = None if args.no_persist else store_url(args.store)
    console = stdout_console()
    live = not args.json and fancy(console, plain=args.no_progress)
    if url is not None and not args.json:
        if live:
            console.print(f"store: {url}", style="dim")
        else:
            print(f"store: {url}", flush=True)

    registry = Registry.default(cwd=exp_path.resolve().parent)
    if experiment.sweep is not None:
        from ._sweep import run_sweep

        return run_sweep(args, experiment, registry, url, assigns)

    async def main() -> RunHandle:
        from .._core import open_runtime

        async with open_runtime(registry=registry, store=url, ray_address=args.ray_address) as rt:
            handle = await rt.submit(
                experiment,
                run_id=args.run_id,
                assigns=assigns,
                validate_options=args.validate_options,
                enable_trace=args.trace,
                cache=not args.no_cache,
            )
            if args.json:
                await handle.wait()
                return handle
            progress = RunProgress(experiment, handle.run_id, resumed_from=handle.resumed_from)
            view: LiveProgress | PlainProgress = (
                LiveProgress(progress, console) if live else PlainProgress(progress)
            )
            with view:
                async for event in handle.events():
                    view.update(event)
            await handle.wait()
            return handle

    try:
        handle = anyio.run(main, backend=args.backend)
    except KeyboardInterrupt:
        print("interrupted: the run was cancelled", file=sys.stderr)
        return 130
    failure = handle.error.reason if isinstance(handle.error, StageFailed) else handle.error
    if isinstance(failure, StoreError):
        # The store failed, not the experiment: one line, exit 2, as for any store error
        # (issue 21); the stored record of the run is incomplete, so no summary.
        print(f"error: {' '.join(str(failure).split())}", file=sys.stderr)
        return 2
    if args.json:
        from .._core import context_to_json

        ctx = handle.context
        if ctx is not None:
            sys.stdout.write(context_to_json(ctx).decode() + "\n")
    elif live:
        _print_rich_summary(console, handle)
    else:
        _print_summary(handle)
    if handle.status is RunStatus.COMPLETED:
        return 0
    err = handle.error
    if isinstance(err, (StageFailed, CrucibleError)):
        print(f"error: {err}", file=sys.stderr)
    return 1
