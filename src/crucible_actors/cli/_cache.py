"""``crucible-actors cache list|clear``: the stage result cache kept in a store.

``cache list [--stage NAME]`` prints the cached results, newest first (key, stage,
version, code fingerprint, size, the run that computed it, when); ``cache clear [--stage
NAME]`` deletes them, so those stages run again on the next run (``run --no-cache``
skips the cache for one run instead). ``--json`` prints ``{"store", "results": [...]}`` and
``{"store", "stage", "removed"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ._format import _common, _json, _positive, _table, store_url
from ._runs import _when

if TYPE_CHECKING:
    import argparse

    from .._core import CachedResult

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``cache`` command and its subcommands."""
    cache = sub.add_parser("cache", help="list or clear the stage result cache")
    cmds = cache.add_subparsers(dest="cache_command", metavar="SUBCOMMAND")
    cmds.required = True

    p = cmds.add_parser("list", help="list cached stage results, newest first")
    p.add_argument("--stage", metavar="NAME", help="only results of this stage (its label)")
    p.add_argument("--limit", type=_positive, default=100, metavar="N", help="at most N results")
    _common(p)
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("clear", help="delete cached stage results (they are computed again)")
    p.add_argument("--stage", metavar="NAME", help="only results of this stage (its label)")
    _common(p)
    p.set_defaults(func=cmd_clear)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def _doc(r: CachedResult) -> dict[str, Any]:
    return {
        "key": r.key,
        "stage": r.stage,
        "version": r.version,
        "code": r.code,
        "size": r.size,
        "run_id": r.run_id,
        "created_at": r.created_at.isoformat(),
    }


def _check(store: Any) -> None:
    from ..errors import CrucibleError

    if not callable(getattr(store, "list_cached_results", None)):
        raise CrucibleError(
            f"the store {getattr(store, 'name', store)!r} keeps no stage result cache (it "
            "has no list_cached_results method; see the Store protocol)"
        )


def cmd_list(args: argparse.Namespace) -> int:
    """Print the cached results; 0 on success."""
    from ..store import open_store

    url = store_url(args.store)

    async def main() -> list[CachedResult]:
        async with open_store(url) as store:
            _check(store)
            found: list[CachedResult] = await store.list_cached_results(
                stage=args.stage, limit=args.limit
            )
            return found

    results = anyio.run(main, backend="trio")
    if args.json:
        _json({"store": url, "results": [_doc(r) for r in results]})
        return 0
    if not results:
        where = f" for stage {args.stage!r}" if args.stage else ""
        print(f"store {url}: no cached results{where}")
        return 0
    headers = ["KEY", "STAGE", "VERSION", "CODE", "SIZE", "COMPUTED BY RUN", "CREATED (UTC)"]
    rows = [
        [
            r.key[:16],
            r.stage,
            r.version,
            r.code[:12] or "-",
            _size(r.size),
            r.run_id,
            _when(r.created_at),
        ]
        for r in results
    ]
    print(_table(headers, rows))
    total = sum(r.size for r in results)
    print(f"{len(results)} result(s), {_size(total)}")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    """Delete cached results and say how many; 0 on success."""
    from ..store import open_store

    url = store_url(args.store)

    async def main() -> int:
        async with open_store(url) as store:
            _check(store)
            removed: int = await store.clear_cached_results(stage=args.stage)
            return removed

    removed = anyio.run(main, backend="trio")
    if args.json:
        _json({"store": url, "stage": args.stage, "removed": removed})
        return 0
    where = f" of stage {args.stage!r}" if args.stage else ""
    print(f"store {url}: removed {removed} cached result(s){where}")
    return 0
