"""Blobs in PostgreSQL: chunked ``bytea`` rows, read through a local cache directory.

A :class:`PostgresBlobStore` keeps each blob (see :class:`~crucible_actors.abc.BlobStore`) as
one ``blobs`` row (digest, size, created and touched times) and its bytes as
``blob_chunks`` rows of at most :data:`CHUNK_SIZE` bytes (migration ``0004_blobs.sql``).
A blob is durable once its transaction commits, at the server's ``synchronous_commit``
level, like every other write of the PostgreSQL store.

Readers never map the database: :meth:`~PostgresBlobStore.open` copies the chunks once into
a cache directory on the reading host (``$XDG_CACHE_HOME/crucible-actors/blobs`` unless
``?blob_cache=DIR`` names one), checks the file against its digest and maps it
read-only, so arrays decoded from it are zero-copy views. A blob this process writes is
also written to the cache, so a pool worker on the same host maps it without a trip to
the server. The cache is content-addressed, hence safe to share between databases and
processes; a cached file that fails its digest check (a torn write, a damaged disk) is
fetched again from the database, and only a database copy that fails it raises
:class:`~crucible_actors.errors.BlobCorrupt`.

``postgresql://...?blobs=/shared/dir`` keeps blobs in a shared directory instead (a
:class:`~crucible_actors.store._blobs.DirectoryBlobStore`, see :func:`blob_options`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .._core import (
    DIGEST_LENGTH,
    BlobCorrupt,
    BlobInfo,
    BlobMissing,
    StoreUnavailable,
    check_digest,
    is_digest,
    new_hasher,
)
from ._pg_driver import drivers, wrap_pg_error
from ._sql import redact_url

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = [
    "CHUNK_SIZE",
    "PostgresBlobStore",
    "blob_options",
    "default_cache_dir",
]

#: The largest ``blob_chunks.data`` value: big enough that a 1 GB blob is 128 rows, small
#: enough that a reader or writer never holds more than a few of them in memory.
CHUNK_SIZE = 8 * 1024 * 1024

#: The URL options this module reads (and removes before libpq sees the URL).
BLOB_OPTIONS = ("blobs", "blob_cache")


def default_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/crucible-actors/blobs`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "crucible-actors" / "blobs"


def blob_options(url: str) -> tuple[str, str | None, Path | None]:
    """Split ``url`` into (the URL libpq gets, ``blobs=`` directory, ``blob_cache=`` dir).

    Raises:
        StoreUnavailable: an option is given an empty or relative path.
    """
    parts = urlsplit(url)
    if not parts.query:
        return url, None, None
    kept: list[tuple[str, str]] = []
    found: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in BLOB_OPTIONS:
            if not value or not os.path.isabs(value):
                raise StoreUnavailable(
                    f"the URL option {key}= needs an absolute directory path, got {value!r}; "
                    f"write e.g. ?{key}=/shared/crucible-blobs",
                    store=redact_url(url),
                )
            found[key] = value
        else:
            kept.append((key, value))
    if not found:
        return url, None, None
    plain = urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote)))
    cache = found.get("blob_cache")
    return plain, found.get("blobs"), Path(cache) if cache is not None else None


def _pieces(chunks: Sequence[bytes | memoryview], size: int) -> Iterator[bytes | memoryview]:
    """Yield the bytes of ``chunks`` as pieces of exactly CHUNK_SIZE (the last shorter)."""
    pending = bytearray()
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view:
            if not pending and len(view) >= CHUNK_SIZE:
                yield view[:CHUNK_SIZE]  # a whole piece, no copy
                view = view[CHUNK_SIZE:]
                continue
            take = min(len(view), CHUNK_SIZE - len(pending))
            pending += view[:take]
            view = view[take:]
            if len(pending) == CHUNK_SIZE:
                yield bytes(pending)
                pending.clear()
    if pending or size == 0:
        yield bytes(pending)


def _map(path: Path) -> memoryview:
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))


class PostgresBlobStore:
    """A :class:`~crucible_actors.abc.BlobStore` in PostgreSQL tables.

    Give it the store's ``psycopg_pool.ConnectionPool`` (the driver's side), or none: a
    worker process that reopened it from :meth:`location` connects on first need, with
    one connection used under a lock. Thread-safe.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_dir: Path | None = None,
        pool: Any = None,
    ) -> None:
        self._url = url
        self.name = redact_url(url)
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self._explicit_cache = cache_dir is not None
        self._pool = pool
        self._conn: Any = None
        self._conn_lock = threading.Lock()
        self._verified: set[str] = set()

    @classmethod
    def from_location(cls, location: str) -> PostgresBlobStore:
        """Reopen a store from its :meth:`location` (in a worker process, say).

        Raises:
            StoreUnavailable: ``location`` has a bad ``blob_cache=`` option.
        """
        url, _, cache_dir = blob_options(location)
        return cls(url, cache_dir=cache_dir)

    def __repr__(self) -> str:
        return f"PostgresBlobStore({self.name!r}, cache_dir={str(self.cache_dir)!r})"

    # -- connections -----------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        psycopg, psycopg_pool = drivers()
        try:
            if self._pool is not None:
                with self._pool.connection() as conn:
                    yield conn
                return
            with self._conn_lock:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
                try:
                    yield self._conn
                except psycopg.OperationalError:
                    self._conn.close()
                    raise
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise wrap_pg_error(exc, self.name) from exc

    def close(self) -> None:
        """Close this object's own connection (a pool given to it stays open)."""
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- the BlobStore port ----------------------------------------------------------

    def exists(self, digest: str) -> bool:
        """Return whether the database holds blob ``digest``."""
        with self._connection() as conn:
            row = conn.execute("SELECT 1 FROM blobs WHERE digest = %s", (digest,)).fetchone()
        return row is not None

    def put(self, digest: str, chunks: Sequence[bytes | memoryview], size: int) -> bool:
        """Store the blob in one transaction; return False if it was there (then touched).

        The caller vouches that ``digest`` is the ``digest_of`` the concatenated ``chunks``.
        The bytes also go to the local cache, so readers on this host need no fetch.
        """
        with self._connection() as conn, conn.transaction():
            touched = conn.execute(
                "UPDATE blobs SET touched_at = now() WHERE digest = %s", (digest,)
            ).rowcount
            if touched:
                return False
            # A concurrent writer of the same digest makes this wait for its commit,
            # then insert nothing: the blob is then stored whole, by the other one.
            inserted = conn.execute(
                "INSERT INTO blobs (digest, size) VALUES (%s, %s) ON CONFLICT (digest) DO NOTHING",
                (digest, size),
            ).rowcount
            if not inserted:
                return False
            with conn.cursor() as cur:
                for seq, piece in enumerate(_pieces(chunks, size)):
                    cur.execute(
                        "INSERT INTO blob_chunks (digest, seq, data) VALUES (%s, %s, %b)",
                        (digest, seq, piece),
                    )
        with contextlib.suppress(OSError):  # the cache is only a cache
            self._write_cache(digest, chunks)
            self._verified.add(digest)
        return True

    def open(self, digest: str) -> memoryview:
        """Return the blob's bytes, read-only, mapped from the local cache.

        Raises:
            BlobMissing: the database has no blob ``digest``.
            BlobCorrupt: the database's copy does not match its digest.
        """
        path = self._path(digest)
        try:
            view = _map(path)
        except FileNotFoundError:
            self._fetch(digest)  # verifies while writing
            return _map(path)
        if digest not in self._verified:
            try:
                check_digest(digest, view, store=self.name)
            except BlobCorrupt:
                view.release()
                with contextlib.suppress(OSError):
                    path.unlink()
                self._fetch(digest)
                return _map(path)
            self._verified.add(digest)
        return view

    def location(self) -> str:
        """Return the database URL with ``blob_cache=DIR``: reopen it in a worker process.

        The URL keeps its credentials (a worker must log in): never print it.
        """
        parts = urlsplit(self._url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query.append(("blob_cache", str(self.cache_dir)))
        return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))

    def list(self) -> Iterator[BlobInfo]:
        """Yield every blob of the database with its size and last-touched time."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT digest, size, EXTRACT(EPOCH FROM touched_at)::float8 FROM blobs"
                " ORDER BY digest"
            ).fetchall()
        for digest, size, touched in rows:
            yield BlobInfo(digest, size, touched)

    def delete(self, digest: str) -> int:
        """Delete the blob (rows and this host's cached copy); return the bytes freed."""
        with self._connection() as conn:
            row = conn.execute(
                "DELETE FROM blobs WHERE digest = %s RETURNING size", (digest,)
            ).fetchone()
        self._verified.discard(digest)
        with contextlib.suppress(FileNotFoundError):
            self._path(digest).unlink()
        return int(row[0]) if row is not None else 0

    def touch(self, digest: str) -> bool:
        """Refresh the blob's ``touched_at``; return False if the database has no such blob."""
        with self._connection() as conn:
            touched = conn.execute(
                "UPDATE blobs SET touched_at = now() WHERE digest = %s", (digest,)
            ).rowcount
        return bool(touched)

    # -- the cache -------------------------------------------------------------------

    def _path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise ValueError(
                f"not a blob digest: {digest!r}; expected {DIGEST_LENGTH} lowercase hex "
                "characters (an xxh3-128 hex digest)"
            )
        return self.cache_dir / digest[:2] / digest

    def _temp(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")

    def _write_cache(self, digest: str, chunks: Sequence[bytes | memoryview]) -> None:
        path = self._path(digest)
        if path.exists():
            return
        temp = self._temp(path)
        try:
            with open(temp, "wb") as file:
                for chunk in chunks:
                    file.write(chunk)
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _fetch(self, digest: str) -> None:
        """Copy the blob from the database into the cache, checking its digest."""
        path = self._path(digest)
        temp = self._temp(path)
        try:
            hasher = new_hasher()
            with self._connection() as conn, conn.transaction(), open(temp, "wb") as file:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                row = conn.execute("SELECT size FROM blobs WHERE digest = %s", (digest,)).fetchone()
                if row is None:
                    raise BlobMissing(
                        digest,
                        store=self.name,
                        detail="the database has no such blob (deleted by gc?)",
                    )
                size = int(row[0])
                count = max(1, -(-size // CHUNK_SIZE))
                for seq in range(count):
                    # One chunk per query (binary, no hex round trip): memory stays at
                    # one chunk, whatever the blob's size.
                    with conn.cursor(binary=True) as cur:
                        cur.execute(
                            "SELECT data FROM blob_chunks WHERE digest = %s AND seq = %s",
                            (digest, seq),
                        )
                        got = cur.fetchone()
                    if got is None:
                        raise BlobCorrupt(
                            digest, store=self.name, detail=f"chunk {seq} of {count} is missing"
                        )
                    hasher.update(got[0])
                    file.write(got[0])
                written = file.tell()
            if written != size or hasher.hexdigest() != digest:
                raise BlobCorrupt(
                    digest,
                    store=self.name,
                    detail=f"the database's copy ({written} bytes) does not match its digest",
                )
            os.replace(temp, path)
            self._verified.add(digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
