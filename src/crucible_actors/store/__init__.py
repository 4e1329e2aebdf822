"""Stores: where runs are persisted. ``open_store(url)`` picks the adapter by URL scheme.

- ``sqlite:///path.db`` (relative) or ``sqlite:////abs/path.db``: the embedded default,
  one file, created and migrated on open; ``?durability=power`` makes
  every commit survive a power loss (the default, ``process``, survives the process
  being killed), ``?max_batch=N`` and ``?busy_timeout=S`` tune the writer;
- ``sqlite://:memory:``: a private in-memory SQLite database;
- ``postgresql://user@host/db``: a shared PostgreSQL database, migrated with
  ``crucible-actors db migrate`` (needs ``pip install 'crucible-actors[postgres]'``);
  large Context values (blobs) go to its ``blobs`` tables and are read through a cache
  directory on each host (``?blob_cache=/dir``, default ``~/.cache/crucible-actors/blobs``),
  or to a directory every host mounts with ``?blobs=/shared/dir``;
- ``memory://``: a :class:`MemoryStore`.

Pass a store (or a URL) as ``open_runtime(store=...)`` or ``run(..., store=...)``.
:func:`default_store_url` is what the CLI and ``serve`` use when given none.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from .._core import RUN_STATUSES as RUN_STATUSES
from .._core import ArtifactRecord as ArtifactRecord
from .._core import CachedResult as CachedResult
from .._core import Checkpoint as Checkpoint
from .._core import DefinitionRecord as DefinitionRecord
from .._core import DeletedRuns as DeletedRuns
from .._core import EnvironmentRecord as EnvironmentRecord
from .._core import ExperimentRecord as ExperimentRecord
from .._core import GcResult as GcResult
from .._core import MemoryBlobStore as MemoryBlobStore
from .._core import OwnerRecord as OwnerRecord
from .._core import PendingRun as PendingRun
from .._core import Persistence as Persistence
from .._core import RecoveryReport as RecoveryReport
from .._core import RunRecord as RunRecord
from .._core import StageAttempt as StageAttempt
from .._core import Store as Store
from .._core import StoreUnavailable
from .._core import SweepPointRecord as SweepPointRecord
from .._core import SweepRecord as SweepRecord
from .._core import TraceEventRecord as TraceEventRecord
from .._core import open_persistence as open_persistence
from ._blobs import DirectoryBlobStore as DirectoryBlobStore
from ._blobs import open_blob_store as open_blob_store
from ._memory import MemoryStore as MemoryStore
from ._postgres import PostgresStore as PostgresStore
from ._postgres import open_postgres_store as open_postgres_store
from ._sql import redact_url
from ._sqlite import SQLiteStore as SQLiteStore
from ._sqlite import check_durability
from ._sqlite import open_sqlite_store as open_sqlite_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

__all__ = [
    "DEFAULT_STORE_URL",
    "RUN_STATUSES",
    "ArtifactRecord",
    "CachedResult",
    "Checkpoint",
    "DefinitionRecord",
    "DeletedRuns",
    "DirectoryBlobStore",
    "EnvironmentRecord",
    "ExperimentRecord",
    "GcResult",
    "MemoryBlobStore",
    "MemoryStore",
    "OwnerRecord",
    "PendingRun",
    "Persistence",
    "PostgresStore",
    "RecoveryReport",
    "RunRecord",
    "SQLiteStore",
    "StageAttempt",
    "Store",
    "SweepPointRecord",
    "SweepRecord",
    "TraceEventRecord",
    "default_store_url",
    "open_blob_store",
    "open_persistence",
    "open_postgres_store",
    "open_sqlite_store",
    "open_store",
]

#: The store used when neither ``--store`` nor ``CRUCIBLE_STORE_URL`` names one.
DEFAULT_STORE_URL = "sqlite:///./.crucible/crucible.db"

_SQLITE_OPTIONS: dict[str, Callable[[str], Any]] = {
    "max_batch": int,
    "busy_timeout": float,
    "durability": check_durability,
    "retry_for": float,
}


def default_store_url() -> str:
    """Return ``$CRUCIBLE_STORE_URL``, else ``sqlite:///./.crucible/crucible.db``."""
    return os.environ.get("CRUCIBLE_STORE_URL") or DEFAULT_STORE_URL


def _sqlite_target(url: str) -> tuple[str, dict[str, Any]]:
    rest = url.removeprefix("sqlite://")
    path, _, query = rest.partition("?")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _SQLITE_OPTIONS:
            raise StoreUnavailable(
                f"unknown SQLite URL option {key!r}; known: {', '.join(_SQLITE_OPTIONS)}",
                store=url,
            )
        try:
            options[key] = _SQLITE_OPTIONS[key](value)
        except ValueError as exc:
            hint = f" ({exc})" if key == "durability" else ""
            raise StoreUnavailable(
                f"bad value for SQLite URL option {key!r}: {value!r}{hint}", store=url
            ) from exc
    if path in (":memory:", "/:memory:"):
        return ":memory:", options
    if not path.startswith("/") or path == "/":
        raise StoreUnavailable(
            "a SQLite URL needs a path: sqlite:///relative.db or sqlite:////absolute.db",
            store=url,
        )
    return unquote(path[1:]), options


def _pg_options(url: str) -> tuple[str, dict[str, Any]]:
    """Take crucible-actors' own options (``retry_for``) out of a PostgreSQL URL.

    libpq refuses parameters it does not know, so they are removed before connecting.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {}
    kept = []
    for key, value in query:
        if key != "retry_for":
            kept.append((key, value))
            continue
        try:
            options["retry_for"] = float(value)
        except ValueError as exc:
            raise StoreUnavailable(
                f"bad value for the store URL option 'retry_for': {value!r} (seconds)",
                store=redact_url(url),
            ) from exc
    if not options:
        return url, options
    return urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote))), options


@asynccontextmanager
async def open_store(url: str, *, migrate: bool = False) -> AsyncIterator[Store]:
    """Open the store named by ``url`` and close it on exit.

    SQLite databases are created and migrated on open; PostgreSQL ones only with
    ``migrate=True`` (what ``crucible-actors db migrate`` does).

    Raises:
        StoreUnavailable: an unknown scheme, or the store cannot be reached or opened.
        StoreCorrupt: the SQLite file is not a crucible-actors database.
        MissingDependency: the PostgreSQL extra is not installed.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "sqlite":
        path, options = _sqlite_target(url)
        async with open_sqlite_store(path, **options) as store:
            yield store
    elif scheme in ("postgresql", "postgres"):
        if any(key == "durability" for key, _ in parse_qsl(urlsplit(url).query)):
            raise StoreUnavailable(
                "durability= is a SQLite store option; a PostgreSQL store is as durable "
                "as the server's synchronous_commit setting makes it: remove it from the URL",
                store=redact_url(url),
            )
        url, options = _pg_options(url)
        async with open_postgres_store(url, migrate=migrate, **options) as pg:
            yield pg
    elif scheme == "memory":
        yield MemoryStore(url)
    else:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise StoreUnavailable(
            f"unknown store URL ({shown}); use sqlite:///path.db, sqlite://:memory:, "
            "postgresql://user@host/database or memory://",
            store=redact_url(url),
        )
