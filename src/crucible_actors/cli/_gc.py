"""``crucible-actors runs delete`` and ``crucible-actors gc``: delete runs, reclaim the space.

``runs delete RUN_ID...`` deletes the named runs with their attempts, checkpoints,
events, artifacts records and sweep points (``Store.delete_runs``); ``runs delete
--older-than DURATION [--status S]`` selects them instead (``7d``, ``12h``, ``30m``;
a selection asks first, or needs ``--yes`` when not on a terminal). A run that is
running or pending is never deleted: naming one fails (exit 2, nothing deleted), and a
selection leaves it alone. ``gc`` then deletes the cached results of deleted runs and
the blobs nothing names any more, and returns the space (``Store.gc``).

``--json`` prints ``{"store", "dry_run", "deleted": {...}}`` for ``runs delete`` and
``{"store", "cached_results", "cached_bytes", "blobs", "blob_bytes", "blobs_kept",
"bytes_before", "bytes_after", "freed"}`` for ``gc``.
"""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio

from .._core import LIVE_STATUSES, RUN_STATUSES
from ._format import _common, _json, store_url

if TYPE_CHECKING:
    import argparse

    from .._core import DeletedRuns, GcResult

__all__ = ["add_delete", "human_bytes", "parse_duration", "register"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")


def parse_duration(text: str) -> timedelta:
    """Return the duration ``text`` names: ``7d``, ``12h``, ``30m``, ``1d12h``, ``90s``, ``2w``.

    Raises:
        argparse.ArgumentTypeError: it is not such a duration.
    """
    import argparse

    value = text.strip().lower()
    if not _DURATION.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 7d, 12h, 30m or 1d12h (units s, m, h, d, w), got {text!r}"
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhdw])", value))
    return timedelta(seconds=seconds)


def human_bytes(n: int) -> str:
    """Return ``n`` bytes in decimal units: ``812 B``, ``41.9 MB``, ``1.2 GB``."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value:.1f} PB"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def add_delete(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``runs delete`` to the ``runs`` subcommands."""
    p = cmds.add_parser(
        "delete",
        help="delete runs with their attempts, checkpoints, events and artifacts records",
    )
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="the runs to delete")
    p.add_argument(
        "--older-than",
        type=parse_duration,
        metavar="DURATION",
        help="select runs that ended more than DURATION ago (7d, 12h, 30m)",
    )
    p.add_argument(
        "--status",
        choices=[s for s in RUN_STATUSES if s not in LIVE_STATUSES],
        help="select runs with this status",
    )
    p.add_argument("--yes", action="store_true", help="delete a selection without asking")
    p.add_argument("--dry-run", action="store_true", help="print what would be deleted, only")
    _common(p)
    p.set_defaults(func=cmd_delete)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``gc`` command."""
    p = sub.add_parser(
        "gc",
        help="delete blobs and cached results no run needs any more and return the space",
    )
    _common(p)
    p.set_defaults(func=cmd_gc)


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _delete(url: str, args: argparse.Namespace, *, dry_run: bool) -> DeletedRuns:
    from ..store import open_store

    async def main() -> DeletedRuns:
        async with open_store(url) as store:
            deleted: DeletedRuns = await store.delete_runs(
                args.run_ids,
                older_than=args.older_than,
                status=args.status,
                dry_run=dry_run,
            )
            return deleted

    return anyio.run(main, backend="trio")


def _confirm(deleted: DeletedRuns) -> bool:
    shown = ", ".join(deleted.run_ids[:10]) + (" ..." if len(deleted.run_ids) > 10 else "")
    answer = input(f"delete {_n(len(deleted.run_ids), 'run')} ({shown})? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete the named or selected runs; 0 on success, 2 when refused."""
    selecting = args.older_than is not None or args.status is not None
    if args.run_ids and selecting:
        return _usage("name runs or select them with --older-than/--status, not both")
    if not args.run_ids and not selecting:
        return _usage("name the runs to delete, or select them with --older-than DURATION")
    url = store_url(args.store)
    dry_run = args.dry_run
    if selecting and not (args.yes or dry_run):
        preview = _delete(url, args, dry_run=True)
        if not preview.run_ids:
            return _report(url, preview, dry_run=False, json_out=args.json)
        if not sys.stdin.isatty():
            print(
                f"error: would delete {_n(len(preview.run_ids), 'run')}; "
                "pass --yes to delete them (or --dry-run to list them)",
                file=sys.stderr,
            )
            return 2
        if not _confirm(preview):
            print("nothing deleted")
            return 0
    deleted = _delete(url, args, dry_run=dry_run)
    return _report(url, deleted, dry_run=dry_run, json_out=args.json)


def _report(url: str, deleted: DeletedRuns, *, dry_run: bool, json_out: bool) -> int:
    if json_out:
        _json({"store": url, "dry_run": dry_run, "deleted": deleted})
        return 0
    verb = "would delete" if dry_run else "deleted"
    if not deleted.run_ids:
        print(f"store {url}: no runs to delete")
    else:
        parts = [
            _n(deleted.attempts, "attempt"),
            f"{_n(deleted.checkpoints, 'checkpoint')} ({human_bytes(deleted.checkpoint_bytes)})",
            _n(deleted.events, "trace event"),
            _n(deleted.artifacts, "artifact record"),
        ]
        if deleted.sweep_points:
            parts.append(_n(deleted.sweep_points, "sweep point"))
        if deleted.sweeps:
            parts.append(_n(deleted.sweeps, "sweep"))
        print(f"{verb} {_n(len(deleted.run_ids), 'run')}: {', '.join(parts)}")
        for run_id in deleted.run_ids:
            print(f"  {run_id}")
        if not dry_run:
            print(f"free their blobs and the space: crucible-actors gc --store {url}")
    if deleted.skipped:
        print(
            f"left {_n(len(deleted.skipped), 'running or pending run')} alone: "
            + ", ".join(deleted.skipped)
        )
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """Collect garbage in the store and print what it freed; 0 on success."""
    from ..store import open_store

    url = store_url(args.store)

    async def main() -> GcResult:
        async with open_store(url) as store:
            result: GcResult = await store.gc()
            return result

    result = anyio.run(main, backend="trio")
    if args.json:
        doc: dict[str, Any] = {f: getattr(result, f) for f in result.__struct_fields__}
        _json({"store": url, **doc, "freed": result.freed})
        return 0
    print(
        f"freed {human_bytes(result.freed)}: {_n(result.blobs, 'blob')} "
        f"({human_bytes(result.blob_bytes)}), {_n(result.cached_results, 'cached result')} "
        f"({human_bytes(result.cached_bytes)}); store {human_bytes(result.bytes_before)} -> "
        f"{human_bytes(result.bytes_after)}"
    )
    if result.blobs_kept:
        print(
            f"kept {_n(result.blobs_kept, 'unreferenced blob')} written since the oldest "
            "running run started (its checkpoint may not be committed yet); run gc again "
            "once it ended"
        )
    return 0
