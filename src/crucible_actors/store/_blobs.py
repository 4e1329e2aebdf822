"""Blob stores on disk: one file per blob, named by its digest, read through mmap.

:class:`DirectoryBlobStore` implements the :class:`~crucible_actors.abc.BlobStore`
port for the SQLite store (``DIR/x.db.blobs`` beside ``DIR/x.db``) and for any shared
directory. A blob ``abcdef...`` lives at ``ROOT/ab/abcdef...``; it is written to a
temporary file in ``ROOT/tmp`` and renamed into place, so a reader never sees part of
one, and with ``durability="power"`` the file and its directory are fsynced before
:meth:`~DirectoryBlobStore.put` returns. Reads map the file read-only, so arrays decoded
from it are zero-copy and read-only. :func:`open_blob_store` reopens a store from its
:meth:`location` (how a worker process finds the driver's blobs).
"""

from __future__ import annotations

import mmap
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, get_args
from urllib.parse import unquote, urlparse

from .._core import (
    DIGEST_LENGTH,
    BlobInfo,
    BlobMissing,
    Durability,
    MemoryBlobStore,
    StoreUnavailable,
    check_digest,
    is_digest,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from .._core import BlobStore

__all__ = ["DirectoryBlobStore", "open_blob_store"]


def _check_durability(durability: object) -> Durability:
    for level in get_args(Durability):
        if durability == level:
            return level  # type: ignore[no-any-return]  # get_args is untyped
    raise ValueError(f"unknown blob store durability {durability!r}; use 'process' or 'power'")


class DirectoryBlobStore:
    """A :class:`~crucible_actors.abc.BlobStore` in a directory (see the module docstring).

    ``durability`` is ``"process"`` (a blob survives the process once ``put`` returns:
    the OS has it) or ``"power"`` (also a power loss: file and directory are fsynced).
    Each blob is checked against its digest the first time this object reads it.
    """

    def __init__(self, path: str | os.PathLike[str], *, durability: Durability = "process") -> None:
        self.durability = _check_durability(durability)
        self.root = Path(path).absolute()
        self._verified: set[str] = set()
        self._lock = threading.Lock()
        # Shard directories known to exist; the root is created by the first put, so
        # opening a store that never holds a large value leaves no directory behind.
        self._made: set[str] = set()

    def __repr__(self) -> str:
        return f"DirectoryBlobStore({str(self.root)!r}, durability={self.durability!r})"

    def _path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise ValueError(
                f"not a blob digest: {digest!r}; expected {DIGEST_LENGTH} lowercase hex "
                "characters (an xxh3-128 hex digest)"
            )
        return self.root / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        """Return whether a blob with ``digest`` is stored."""
        return self._path(digest).is_file()

    def put(self, digest: str, chunks: Sequence[bytes | memoryview], size: int) -> bool:
        """Write the concatenated ``chunks`` under ``digest`` (see ``BlobStore.put``).

        Raises:
            StoreUnavailable: the file cannot be written (full disk, permissions).
        """
        target = self._path(digest)
        try:
            if target.is_file() and target.stat().st_size == size:
                # Touched, so a collector spares it for its grace period; not marked
                # verified: this process did not write those bytes. A collector may
                # delete it between the check and the touch: then write it again.
                try:
                    os.utime(target)
                except FileNotFoundError:
                    pass
                else:
                    return False
            shard = target.parent
            if shard.name not in self._made:
                (self.root / "tmp").mkdir(parents=True, exist_ok=True)
                shard.mkdir(exist_ok=True)
                self._made.add(shard.name)
            fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix=digest[:16] + ".")
            try:
                with os.fdopen(fd, "wb") as f:
                    for chunk in chunks:
                        f.write(chunk)
                    if self.durability == "power":
                        f.flush()
                        os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            if self.durability == "power":
                _fsync_dir(shard)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot write blob {digest[:16]} to {self.root}: {exc}", store=str(self.root)
            ) from exc
        self._verified.add(digest)
        return True

    def open(self, digest: str) -> memoryview:
        """Map the blob read-only and return a view of it; verify it on first read.

        Raises:
            BlobMissing: no blob with ``digest`` is stored.
            BlobCorrupt: the file does not hash to ``digest``.
        """
        path = self._path(digest)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    view = memoryview(b"")
                else:
                    view = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        except FileNotFoundError as exc:
            raise BlobMissing(digest, store=str(self.root)) from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot read blob {digest[:16]} in {self.root}: {exc}", store=str(self.root)
            ) from exc
        if digest not in self._verified:
            check_digest(digest, view, store=str(self.root))
            self._verified.add(digest)
        return view

    def location(self) -> str:
        """Return ``file:///abs/dir?durability=...``, which :func:`open_blob_store` reopens."""
        return f"{self.root.as_uri()}?durability={self.durability}"

    def list(self) -> Iterator[BlobInfo]:
        """Yield every stored blob (files under the shard directories)."""
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            # Closed even when the caller stops early (no ResourceWarning).
            with os.scandir(shard) as entries:
                for entry in entries:
                    if is_digest(entry.name):
                        try:
                            st = entry.stat()
                        except FileNotFoundError:  # deleted meanwhile
                            continue
                        yield BlobInfo(entry.name, st.st_size, st.st_mtime)

    def delete(self, digest: str) -> int:
        """Delete the blob with ``digest``; return the bytes freed (0 if absent)."""
        path = self._path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        self._verified.discard(digest)
        return size

    def touch(self, digest: str) -> bool:
        """Refresh the blob file's ``mtime``; return False if it is absent.

        Raises:
            StoreUnavailable: the file exists but cannot be touched (permissions).
        """
        try:
            os.utime(self._path(digest))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot touch blob {digest[:16]} in {self.root}: {exc}", store=str(self.root)
            ) from exc
        return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_blob_store(location: str) -> BlobStore:
    """Reopen the blob store a ``BlobStore.location()`` names.

    ``file:///abs/dir[?durability=power]`` opens a :class:`DirectoryBlobStore`; ``memory://``
    gives a new, empty :class:`MemoryBlobStore` (memory blobs cannot be shared).

    Raises:
        ValueError: the location's scheme is unknown.
    """
    parsed = urlparse(location)
    if parsed.scheme == "file":
        durability: Durability = "process"
        for part in parsed.query.split("&"):
            name, _, value = part.partition("=")
            if name == "durability" and value:
                durability = _check_durability(value)
        return DirectoryBlobStore(unquote(parsed.path), durability=durability)
    if parsed.scheme == "memory":
        return MemoryBlobStore()
    raise ValueError(
        f"unknown blob store location {location!r}; expected file:///path or memory://"
    )
