"""The blob store port: large Context values stored once, by content.

A value whose encoding exceeds the runtime's blob threshold is written to a
:class:`BlobStore` under the xxh3-128 hash of its bytes and replaced in snapshots,
checkpoints, cached results and executor messages by a small :class:`~._data.BlobRef`
(``_data.py`` does the encoding). Every :class:`~._store.Store` carries one as ``store.blobs``: in
memory for ``memory://`` (:class:`MemoryBlobStore`, here), a directory beside the SQLite
file (``store/_blobs.py``), PostgreSQL's own for PostgreSQL.

Digests are made and checked here only (:func:`digest_of`, :func:`new_hasher`,
:func:`is_digest`, :func:`check_digest`): xxh3-128 as 32 lowercase hex characters. Not a
cryptographic hash, on purpose: the store is a trust boundary anyway (its values are
pickles), so collision resistance against an attacker buys nothing, while sha256 at about
1.8 GB/s costs three times the ``np.save`` of the same array (xxh3: 0.17x). 128 bits make
an accidental collision negligible, and a damaged blob is still detected on first read.

Implementations are synchronous and thread-safe: the codec calls them from the event
loop's thread and from worker threads and processes while it encodes and decodes.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import msgspec
import xxhash

from .._errors import BlobCorrupt, BlobMissing

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = [
    "DIGEST_LENGTH",
    "BlobInfo",
    "BlobStore",
    "Hasher",
    "MemoryBlobStore",
    "check_digest",
    "digest_of",
    "is_digest",
    "new_hasher",
]

#: Characters in a blob digest (xxh3-128 as lowercase hex).
DIGEST_LENGTH: Final = 32

_HEX: Final = frozenset("0123456789abcdef")


class BlobInfo(msgspec.Struct, frozen=True):
    """One stored blob: its hex ``digest``, ``size`` in bytes, last ``mtime`` (epoch s).

    ``mtime`` is when the blob was last written or re-written (a ``put`` of content already
    there touches it), so a garbage collector can spare blobs younger than a grace period.
    """

    digest: str
    size: int
    mtime: float


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed storage for large Context values (one value per blob)."""

    def exists(self, digest: str) -> bool:
        """Return whether a blob with ``digest`` is stored."""
        ...

    def put(self, digest: str, chunks: Sequence[bytes | memoryview], size: int) -> bool:
        """Store the concatenation of ``chunks`` (``size`` bytes) under ``digest``.

        Writes atomically (a reader never sees part of a blob) and returns once the blob is
        durable at the store's durability level, so a checkpoint written afterwards never
        refers to a blob that a crash could lose. An existing blob is not rewritten, only
        touched (its ``mtime`` refreshed); ``False`` says so. Thread-safe.
        """
        ...

    def open(self, digest: str) -> memoryview:
        """Return the blob's bytes as a read-only memoryview (memory-mapped for files).

        The first read of each blob in a process checks the bytes against ``digest``.

        Raises:
            BlobMissing: no blob with ``digest`` is stored.
            BlobCorrupt: the stored bytes do not hash to ``digest``.
        """
        ...

    def location(self) -> str | None:
        """Return a URL another process can reopen with ``open_blob_store``, or ``None``.

        ``None`` means the blobs live only in this process (memory); a worker process
        then gets the values inline instead (``_data.inline_blobs``).
        """
        ...

    def list(self) -> Iterator[BlobInfo]:
        """Yield every stored blob, in no particular order."""
        ...

    def delete(self, digest: str) -> int:
        """Delete the blob with ``digest``; return the bytes freed (0 if it was absent)."""
        ...

    def touch(self, digest: str) -> bool:
        """Refresh the blob's ``mtime`` to now, so a collector spares it; False if absent.

        The codec calls it when it names a blob again without a ``put`` (its identity memo).
        """
        ...


class Hasher(Protocol):
    """An incremental blob hasher (:func:`new_hasher`)."""

    def update(self, data: bytes | memoryview, /) -> None:
        """Feed the next bytes of the blob."""
        ...

    def hexdigest(self) -> str:
        """Return the digest of the bytes fed so far (:data:`DIGEST_LENGTH` hex characters)."""
        ...


def new_hasher() -> Hasher:
    """Return an empty incremental hasher whose ``hexdigest()`` is a blob digest."""
    hasher: Hasher = xxhash.xxh3_128()
    return hasher


def digest_of(chunks: Sequence[bytes | memoryview]) -> str:
    """Return the blob digest (xxh3-128, lowercase hex) of the concatenation of ``chunks``."""
    h = xxhash.xxh3_128()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def is_digest(name: str) -> bool:
    """Return whether ``name`` has the form of a blob digest (32 lowercase hex characters)."""
    return len(name) == DIGEST_LENGTH and _HEX.issuperset(name)


class MemoryBlobStore:
    """A :class:`~crucible_actors.abc.BlobStore` in this process's memory.

    For ``memory://`` stores and store-less runtimes.

    Blobs are immutable ``bytes``; :meth:`open` returns read-only views of them. Nothing
    survives the process, and another process cannot open it (:meth:`location` is None).
    """

    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, float]] = {}
        self._altered: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryBlobStore({len(self._blobs)} blobs)"

    def exists(self, digest: str) -> bool:
        """Return whether a blob with ``digest`` is stored."""
        return digest in self._blobs

    def put(self, digest: str, chunks: Sequence[bytes | memoryview], size: int) -> bool:
        """Store the concatenated ``chunks`` under ``digest``.

        See :meth:`~crucible_actors.abc.BlobStore.put`.
        """
        with self._lock:
            found = self._blobs.get(digest)
            if found is not None:
                self._blobs[digest] = (found[0], time.time())
                return False
        data = b"".join(chunks)
        if len(data) != size:
            raise ValueError(f"blob {digest[:16]}: expected {size} bytes, got {len(data)}")
        with self._lock:
            self._blobs.setdefault(digest, (data, time.time()))
        return True

    def open(self, digest: str) -> memoryview:
        """Return the blob's bytes, read-only (see :meth:`~crucible_actors.abc.BlobStore.open`)."""
        found = self._blobs.get(digest)
        if found is None:
            raise BlobMissing(digest, store="memory")
        if digest in self._altered:
            # Only :meth:`corrupt` puts bytes here that this store did not hash itself.
            check_digest(digest, found[0], store="memory")
        return memoryview(found[0])

    def location(self) -> str | None:
        """Return None: another process cannot open this store."""
        return None

    def list(self) -> Iterator[BlobInfo]:
        """Yield every stored blob."""
        with self._lock:
            items = list(self._blobs.items())
        for digest, (data, mtime) in items:
            yield BlobInfo(digest, len(data), mtime)

    def delete(self, digest: str) -> int:
        """Delete the blob with ``digest``; return the bytes freed."""
        with self._lock:
            found = self._blobs.pop(digest, None)
            self._altered.discard(digest)
        return 0 if found is None else len(found[0])

    def touch(self, digest: str) -> bool:
        """Refresh the blob's ``mtime``; return False if it is absent."""
        with self._lock:
            found = self._blobs.get(digest)
            if found is None:
                return False
            self._blobs[digest] = (found[0], time.time())
        return True

    def corrupt(self, digest: str, data: bytes) -> None:
        """Replace a blob's bytes without updating its digest.

        For tests of :class:`~crucible_actors.errors.BlobCorrupt`.
        """
        with self._lock:
            self._blobs[digest] = (data, time.time())
            self._altered.add(digest)


def check_digest(digest: str, data: memoryview | bytes, *, store: str | None = None) -> None:
    """Raise :class:`BlobCorrupt` unless ``data`` hashes to ``digest`` (see :func:`digest_of`)."""
    found = xxhash.xxh3_128_hexdigest(data)
    if found != digest:
        raise BlobCorrupt(digest, store=store, detail=f"content hashes to {found[:16]}")
