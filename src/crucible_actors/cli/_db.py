"""``crucible-actors db migrate``: bring a store's schema up to date.

PostgreSQL stores are migrated only by this command (schema changes on a shared server
are an operator's decision); the embedded SQLite store migrates itself on open, so the
command only reports its version there.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import anyio

from ._format import store_url

if TYPE_CHECKING:
    import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``db`` command and its ``migrate`` subcommand."""
    db = sub.add_parser("db", help="manage the store's database")
    cmds = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    cmds.required = True
    p = cmds.add_parser("migrate", help="apply the schema migrations the store is missing")
    p.add_argument(
        "--store",
        metavar="URL",
        help="store URL (default: CRUCIBLE_STORE_URL or sqlite:///./.crucible/crucible.db)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply missing migrations and print what was applied; 0 on success."""
    from ..store import open_store

    url = store_url(args.store)

    async def main() -> tuple[list[str], int]:
        async with open_store(url, migrate=True) as store:
            applied: list[str] = list(getattr(store, "applied", []))
            version: int = getattr(store, "schema_version", 0)
            return applied, version

    applied, version = anyio.run(main, backend="trio")
    if args.json:
        doc = {"store": url, "applied": applied, "version": version}
        sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
    elif applied:
        print(f"store {url}: applied {', '.join(applied)}; schema at version {version}")
    else:
        print(f"store {url}: schema already at version {version}; nothing to apply")
    return 0
