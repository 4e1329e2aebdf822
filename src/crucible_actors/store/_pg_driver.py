"""The psycopg driver, imported on first use, and how its errors become StoreErrors.

Shared by the PostgreSQL store (:mod:`._postgres`) and its blob store (:mod:`._pg_blobs`).
"""

from __future__ import annotations

from typing import Any

from .._core import MissingDependency, StoreError, StoreUnavailable

__all__ = ["drivers", "wrap_pg_error"]


def drivers() -> tuple[Any, Any]:
    """Return ``(psycopg, psycopg_pool)``, or raise MissingDependency naming the extra."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise MissingDependency("psycopg", "the PostgreSQL store", extra="postgres") from exc
    return psycopg, psycopg_pool


def wrap_pg_error(exc: BaseException, store: str) -> StoreError:
    """Return the StoreError subclass that reports the psycopg error ``exc``."""
    if isinstance(exc, StoreError):
        return exc
    psycopg, psycopg_pool = drivers()
    err: StoreError
    if isinstance(exc, psycopg_pool.PoolTimeout):
        err = StoreUnavailable(f"no database connection available in time ({exc})", store=store)
    elif isinstance(exc, psycopg.errors.DiskFull):
        err = StoreUnavailable(f"the server's disk is full ({exc})", store=store)
    elif isinstance(exc, psycopg.errors.UndefinedTable):
        err = StoreUnavailable(
            f"the crucible-actors tables are missing ({exc}); "
            f"run: crucible-actors db migrate --store {store}",
            store=store,
        )
    elif isinstance(exc, psycopg.OperationalError):
        # libpq's messages span lines ("...failed: Connection refused\n\tIs the server
        # running..."): one line, so that the CLI prints one.
        text = " ".join(str(exc).split())
        err = StoreUnavailable(f"cannot use the server: {text}".strip(), store=store)
    else:
        err = StoreError(f"{type(exc).__name__}: {exc}", store=store)
    err.__cause__ = exc
    return err
