"""The data codec: how user values in a Context become bytes and come back.

The Context envelope is msgspec msgpack (``_encoding.py``). Each user value (each
top-level value of ``assigns``, ``metrics``, ``artifacts`` and each item of ``outputs``)
is written one of three ways:

1. **plain** -- only str/int/float/bool/None/bytes in lists and str-keyed dicts, found by a
   bounded walk: msgspec encodes it as it always did (readable, fast).
2. **packed** -- anything else (tuples, sets, dataclasses, Structs, enums, numpy, pandas,
   pyarrow ...): pickle protocol 5 with out-of-band buffers, so array data is never copied
   into the pickle, inline as ``msgspec.msgpack.Ext(EXT_PACKED, payload)``.
3. **by reference** -- a value whose encoding exceeds the threshold is written once to the
   current :class:`~._blobs.BlobStore` under the sha256 of its bytes and replaced by
   ``Ext(EXT_BLOB, BlobRef)``. Reading it back maps the blob read-only: arrays come back
   read-only and zero-copy.

A payload (inline or a blob file) is laid out as a header (magic, kind, type name, buffer
offsets), the pickle or msgpack body, then each buffer at a 64-byte-aligned offset, so a
reader hands ``pickle.loads`` slices of the map. Unpickling only ever happens for Ext
payloads inside bytes the runtime wrote; JSON (HTTP) has no Ext and never reaches it, and
a restricted Unpickler refuses the obvious code-execution globals. The store is still a
trust boundary, as for any pickle-based store.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._blobs import BlobStore

__all__ = [
    "DEFAULT_BLOB_THRESHOLD",
    "EXT_BLOB",
    "EXT_PACKED",
    "BlobRef",
    "blob_digests",
    "externalize",
    "inline_blobs",
    "use_blob_store",
]

#: Values whose encoding is larger than this many bytes are stored by reference.
DEFAULT_BLOB_THRESHOLD = 65536
#: msgpack extension code of an inline packed value (payload layout in the module doc).
EXT_PACKED = 81
#: msgpack extension code of a reference to a blob (a msgpack-encoded :class:`BlobRef`).
EXT_BLOB = 82


class BlobRef(msgspec.Struct, frozen=True, array_like=True):
    """A reference to one value stored by content in the blob store.

    ``digest`` is the sha256 hex of the blob's bytes, ``size`` their length, ``kind``
    ``"packed"`` (pickle + buffers) or ``"msgpack"``, ``type`` the value's type for display
    and errors (``"numpy.ndarray"``, ``"pandas.DataFrame"``).
    """

    digest: str
    size: int
    kind: str
    type: str


@contextmanager
def use_blob_store(
    store: BlobStore | None, *, threshold: int = DEFAULT_BLOB_THRESHOLD
) -> Iterator[None]:
    """Make ``store`` the blob store the codec writes to and reads from, within the block.

    Sets a contextvar, so it flows into child tasks and anyio worker threads started inside
    the block. With ``store=None`` nothing is stored by reference (large values stay
    inline) and reading a reference raises :class:`~crucible_actors.errors.BlobMissing`.
    """
    raise NotImplementedError
    yield


def blob_digests(data: bytes) -> set[str]:
    """Return the digests of every blob referenced by msgpack ``data`` (snapshot, cached result).

    Walks the msgpack without unpickling anything.
    """
    raise NotImplementedError


def inline_blobs(data: bytes, store: BlobStore) -> bytes:
    """Return ``data`` with every blob reference replaced by the blob's inline payload.

    For a worker that cannot open ``store`` (memory).

    Raises:
        BlobMissing: a referenced blob is not in ``store``.
        BlobCorrupt: a referenced blob does not match its digest.
    """
    raise NotImplementedError


def externalize(data: bytes, store: BlobStore, threshold: int) -> bytes:
    """Return ``data`` with every inline packed value larger than ``threshold`` moved to ``store``.

    The reverse of :func:`inline_blobs`: the driver applies it to a reply from a worker
    that could not write to the store.
    """
    raise NotImplementedError
