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
   current :class:`~._blobs.BlobStore` under the digest of its bytes and replaced by
   ``Ext(EXT_BLOB, BlobRef)``. Reading it back maps the blob read-only: arrays come back
   read-only and zero-copy.

What a value is made of (the plain walk, packing, the payload layout shared by inline
values and blob files, the restricted Unpickler) lives in ``_payload.py``; this module
holds the codec state (:func:`use_blob_store`), the per-value decision and the walks over
encoded bytes (:func:`blob_digests`, :func:`inline_blobs`, :func:`externalize`).
Unpickling only ever happens for Ext payloads inside bytes the runtime wrote; JSON (HTTP)
has no Ext and never reaches it. The store is a trust boundary, as for any pickle-based
store.
"""

from __future__ import annotations

import contextlib
import contextvars
import pickle
import sys
import weakref
from contextlib import contextmanager
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any, Final

import msgspec

from ._errors import BlobError, BlobMissing, EncodeError
from ._payload import (
    EXT_BLOB,
    EXT_PACKED,
    KIND_MSGPACK,
    KINDS,
    WALK_DEPTH,
    BlobRef,
    all_plain,
    is_plain,
    pack,
    payload,
    plain_encode,
    read_header,
    ref_decode,
    ref_encode,
    type_label,
    unpack,
)
from .persistence._blobs import digest_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .persistence._blobs import BlobStore

__all__ = [
    "DEFAULT_BLOB_THRESHOLD",
    "EXT_BLOB",
    "EXT_PACKED",
    "LAZY_FLOOR",
    "BlobCodec",
    "BlobRef",
    "all_plain",
    "blob_codec",
    "blob_digests",
    "blob_refs",
    "current_codec",
    "decode_value",
    "encode_value",
    "externalize",
    "inline_blobs",
    "is_plain",
    "locate_blob_error",
    "reset_codec",
    "set_codec",
    "type_label",
    "use_blob_store",
    "use_codec",
]

#: Values whose encoding is larger than this many bytes are stored by reference.
DEFAULT_BLOB_THRESHOLD: Final = 65536

#: Seconds between two touches of one blob recalled by identity (see BlobCodec.recall);
#: must stay below the collector's slack (``store/_reclaim.SLACK``).
TOUCH_INTERVAL: Final = 1.0
_TOUCHED_MAX: Final = 4096

#: A Context of plain values encoded in at most this many bytes is written as it is
#: without looking up a threshold that comes from the configuration file.
LAZY_FLOOR: Final = 4096

# -- the codec state: which blob store, which threshold ------------------------------


class BlobCodec:
    """The blob store and threshold the codec uses, plus its identity memo.

    Obtain one through :func:`use_blob_store`; every codec of one store shares its memo
    (objects decoded from a blob that cannot change in place, id -> (weakref, BlobRef)),
    so a read-only array passed through many stages is pickled and hashed once.
    """

    __slots__ = ("_memo", "_resolve", "_threshold", "_touched", "small", "store")

    def __init__(
        self,
        store: BlobStore | None,
        threshold: int,
        memo: dict[int, Any] | None,
        resolve: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self._threshold = threshold
        # Looks the threshold up (crucible.toml) the first time it matters; see fits().
        self._resolve = resolve
        self._memo = memo
        #: A Context of plain values encoded in at most this many bytes stays as it is
        #: (the encoder's hot path compares with it before calling :meth:`fits`).
        self.small = (
            sys.maxsize if store is None else LAZY_FLOOR if resolve is not None else threshold
        )
        # digest -> monotonic time this codec last touched the blob (see recall()).
        self._touched: dict[str, float] = {}

    @property
    def threshold(self) -> int:
        """The size in bytes above which a value is stored by reference."""
        if self._resolve is not None:
            self._threshold = self._resolve()
            self._resolve = None
            if self.store is not None:
                self.small = self._threshold
        return self._threshold

    @property
    def memo(self) -> dict[int, Any]:
        """The identity memo of this codec's store (shared by every codec of it)."""
        memo = self._memo
        if memo is None:
            memo = self._memo = _memo_of(self.store)
        return memo

    def fits(self, size: int) -> bool:
        """Whether a whole Context of ``size`` bytes of plain values stays as it is.

        A threshold still to be looked up is only looked up for a Context over
        :data:`LAZY_FLOOR` bytes: a small Context of plain values never pays for reading
        the configuration (the hot path of short runs).
        """
        if self.store is None:
            return True
        if self._resolve is not None and size <= LAZY_FLOOR:
            return True
        return size <= self.threshold

    def remember(self, value: Any, ref: BlobRef, fingerprint: Any = None) -> None:
        """Remember that ``value`` (just decoded from a blob) is ``ref``'s.

        ``value`` cannot change in place, or ``fingerprint`` (of a pandas frame, see
        :func:`_frame_print`) tells whether it did.
        """
        memo = self.memo
        key = id(value)

        def forget(dead: weakref.ref[Any], key: int = key) -> None:
            found = memo.get(key)
            if found is not None and found[0] is dead:
                memo.pop(key, None)

        with contextlib.suppress(TypeError):  # not weak-referenceable: no memo for it
            entry = weakref.ref(value, forget), ref
            memo[key] = entry if fingerprint is None else (*entry, fingerprint)

    def _found(self, value: Any) -> Any:
        """The memo's entry for ``value``, if it is still the blob's content."""
        memo = self.memo
        found = memo.get(id(value))
        if found is None or found[0]() is not value:
            return None
        if len(found) == 3 and not _same_print(found[2], _frame_print(value)):
            # Changed since it was read: forget it (and the parts the print holds).
            memo.pop(id(value), None)
            return None
        return found

    def remembers(self, value: Any) -> bool:
        """Whether encoding ``value`` is a lookup: it is in the identity memo and no touch
        of its blob is due (a touch may be a database round trip: PostgreSQL)."""
        found = self._found(value)
        if found is None:
            return False
        last = self._touched.get(found[1].digest)
        return self.store is None or (last is not None and _monotonic() - last < TOUCH_INTERVAL)

    def recall(self, value: Any) -> BlobRef | None:
        """Return the BlobRef ``value`` was decoded from, if it is remembered.

        Naming a blob again without a ``put`` must still refresh its ``mtime``, or a
        collector (which spares blobs touched since the oldest live run started, less
        ``store/_reclaim.SLACK`` = 2 s) could delete a blob a live run is about to name.
        The blob is touched at most once per :data:`TOUCH_INTERVAL` per digest, which is
        less than that slack, so the hot path stays a dict lookup. A blob found gone
        (collected meanwhile) is not recalled: the value is encoded and written again.
        """
        found = self._found(value)
        if found is None:
            return None
        ref: BlobRef = found[1]
        store = self.store
        if store is not None:
            now = _monotonic()
            touched = self._touched
            last = touched.get(ref.digest)
            if last is None or now - last >= TOUCH_INTERVAL:
                if not store.touch(ref.digest):
                    touched.pop(ref.digest, None)
                    return None
                if len(touched) >= _TOUCHED_MAX:
                    touched.clear()
                touched[ref.digest] = now
        return ref


_memos: weakref.WeakKeyDictionary[Any, dict[int, Any]] = weakref.WeakKeyDictionary()
_current: contextvars.ContextVar[BlobCodec | None] = contextvars.ContextVar(
    "crucible_blob_codec", default=None
)


def blob_codec(
    store: BlobStore | None,
    threshold: int = DEFAULT_BLOB_THRESHOLD,
    *,
    resolve: Callable[[], int] | None = None,
) -> BlobCodec:
    """Return a codec writing to ``store`` above ``threshold`` bytes (shares its memo).

    ``resolve``, if given, returns the threshold instead, called the first time a value
    needs it (see :meth:`BlobCodec.fits`).

    Raises:
        ValueError: ``threshold`` is negative.
    """
    if threshold < 0:
        raise ValueError(f"blob_threshold must be >= 0 bytes, got {threshold!r}")
    # The memo is looked up when first needed: a runtime whose runs hold no large value
    # never pays for the weak-keyed registry.
    return BlobCodec(store, threshold, None, resolve)


def _memo_of(store: BlobStore | None) -> dict[int, Any]:
    if store is None:
        return {}
    try:
        return _memos.setdefault(store, {})
    except TypeError:  # a store that is not weak-referenceable gets a private memo
        return {}


@contextmanager
def use_blob_store(
    store: BlobStore | None, *, threshold: int = DEFAULT_BLOB_THRESHOLD
) -> Iterator[BlobCodec]:
    """Make ``store`` the blob store the codec writes to and reads from, within the block.

    Sets a contextvar, so it flows into child tasks and anyio worker threads started inside
    the block. With ``store=None`` nothing is stored by reference (large values stay
    inline) and reading a reference raises :class:`~crucible_actors.errors.BlobMissing`.
    Yields the :class:`BlobCodec` (pass it to :func:`use_codec` to re-enter it elsewhere).

    Raises:
        ValueError: ``threshold`` is negative.
    """
    codec = blob_codec(store, threshold)
    token = _current.set(codec)
    try:
        yield codec
    finally:
        _current.reset(token)


@contextmanager
def use_codec(codec: BlobCodec | None) -> Iterator[None]:
    """Re-enter a codec yielded by :func:`use_blob_store` (a handle decoding later)."""
    token = _current.set(codec)
    try:
        yield
    finally:
        _current.reset(token)


def set_codec(codec: BlobCodec | None) -> contextvars.Token[BlobCodec | None]:
    """Make ``codec`` current; the cheap form of :func:`use_codec` for hot paths.

    A task that sets it for its whole life need not reset it (its context dies with it).
    """
    return _current.set(codec)


def reset_codec(token: contextvars.Token[BlobCodec | None]) -> None:
    """Undo a :func:`set_codec`."""
    _current.reset(token)


def current_codec() -> BlobCodec | None:
    """Return the codec :func:`use_blob_store` made current, or None."""
    return _current.get()


# -- one user value -----------------------------------------------------------------------


def encode_value(value: Any, path: str, codec: BlobCodec | None) -> Any:
    """Return what msgspec should write for the user value ``value`` at ``path``.

    The value itself when plain and small, a ``msgspec.Raw`` of a plain value already
    encoded, or an ``Ext`` (packed inline, or a reference to a blob written now).

    Raises:
        EncodeError: ``value`` can be neither encoded nor pickled.
    """
    if codec is not None:
        ref = codec.recall(value)
        if ref is not None:
            return msgspec.msgpack.Ext(EXT_BLOB, ref_encode(ref))
    if is_plain(value):
        # An int beyond 64 bits is refused, as it always was: JSON views of the run
        # (records, the HTTP API) could not show it either.
        try:
            raw = plain_encode(value)
        except (TypeError, OverflowError, RecursionError, msgspec.EncodeError) as exc:
            raise EncodeError(path, value, str(exc)) from exc
        if codec is None or codec.store is None or len(raw) <= codec.threshold:
            return msgspec.Raw(raw)
        chunks, size = payload(KIND_MSGPACK, raw, [], type_label(value))
        return _store_blob(codec, chunks, size, "msgpack", type_label(value))
    try:
        chunks, size = pack(value)
    except RecursionError as exc:
        raise EncodeError(
            path, value, "nested too deeply to store; flatten it or store it as bytes"
        ) from exc
    except Exception as exc:
        # A class pickle cannot find again (defined inside a function) still travels as
        # msgspec wrote it before values were packed: a Struct or dataclass as a dict.
        try:
            raw = plain_encode(value)
        except (TypeError, OverflowError, RecursionError, msgspec.EncodeError):
            _raise_unpicklable(value, path, exc)
        if codec is None or codec.store is None or len(raw) <= codec.threshold:
            return msgspec.Raw(raw)
        chunks, size = payload(KIND_MSGPACK, raw, [], type_label(value))
        return _store_blob(codec, chunks, size, "msgpack", type_label(value))
    if codec is not None and codec.store is not None and size > codec.threshold:
        return _store_blob(codec, chunks, size, "packed", type_label(value))
    return msgspec.msgpack.Ext(EXT_PACKED, b"".join(chunks))


def _store_blob(
    codec: BlobCodec, chunks: list[bytes | memoryview], size: int, kind: str, type_name: str
) -> msgspec.msgpack.Ext:
    store = codec.store
    assert store is not None
    digest = digest_of(chunks)
    store.put(digest, chunks, size)
    return msgspec.msgpack.Ext(EXT_BLOB, ref_encode(BlobRef(digest, size, kind, type_name)))


def _raise_unpicklable(value: Any, path: str, exc: Exception) -> Any:
    """Raise the EncodeError naming the innermost part of ``value`` that cannot be pickled."""
    detail = f"{type(exc).__name__}: {exc}"
    for _ in range(WALK_DEPTH):
        children: list[tuple[str, Any]] = []
        if isinstance(value, dict):
            children = [(f"[{k!r}]", v) for k, v in value.items()]
        elif isinstance(value, list | tuple | set | frozenset):
            children = [(f"[{i}]", v) for i, v in enumerate(value)]
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            children = [(f".{k}", v) for k, v in vars(value).items()]
        for suffix, child in children:
            try:
                pickle.dumps(child, protocol=5, buffer_callback=lambda _b: None)
            except RecursionError:
                break
            except Exception:
                value, path = child, path + suffix
                break
        else:
            break
    raise EncodeError(path, value, detail) from exc


def decode_value(code: int, data: memoryview) -> Any:
    """The msgspec ``ext_hook`` of Context decoders: load a packed value or a blob.

    Raises:
        BlobMissing: a referenced blob is not in the current blob store (or none is open).
        BlobCorrupt: a referenced blob does not match its digest.
        MessageError: the payload is not one crucible-actors wrote.
    """
    if code == EXT_PACKED:
        return unpack(memoryview(bytes(data)))
    if code == EXT_BLOB:
        ref = ref_decode(data)
        codec = _current.get()
        if codec is None or codec.store is None:
            raise BlobMissing(
                ref.digest,
                detail=f"{ref.type}, {ref.size} bytes; no blob store is open here",
            )
        value = unpack(codec.store.open(ref.digest))
        if _immutable(value):
            codec.remember(value, ref)
        elif _is_frame(value):
            fingerprint = _frame_print(value, freeze=True)
            if fingerprint is not None:
                codec.remember(value, ref, fingerprint)
        return value
    return msgspec.msgpack.Ext(code, bytes(data))


def _immutable(value: Any) -> bool:
    """Whether ``value`` cannot change in place (so its blob stays its encoding)."""
    kind = type(value)
    module = kind.__module__
    if module == "numpy" and kind.__name__ == "ndarray":
        return not value.flags.writeable
    return module.startswith("pyarrow") and kind.__name__ in (
        "Table",
        "RecordBatch",
        "ChunkedArray",
    )


def _is_frame(value: Any) -> bool:
    """Whether ``value`` is exactly a pandas DataFrame or Series (not a subclass)."""
    kind = type(value)
    if kind.__name__ not in ("DataFrame", "Series"):
        return False
    pandas = sys.modules.get("pandas")
    return pandas is not None and (kind is pandas.DataFrame or kind is pandas.Series)


def _frame_print(
    value: Any, *, freeze: bool = False
) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """Return a structural fingerprint of a pandas DataFrame or Series, or None.

    A frame is mutable, but one read from a blob holds only read-only arrays, and under
    pandas' copy-on-write (the only mode of pandas 3) an edit in place either raises
    numpy's read-only error or replaces the block's array (``df.loc[0, "x"] = ...``, a
    string column's Arrow array), the block, the manager's block tuple (column
    assignment, ``del``), or an axis (``rename``, ``df.index = ...``). What can change in
    place is named here too: index and column names (``df.index.name = ...``), a Series'
    name, ``attrs`` and ``flags``. So an unchanged fingerprint means unchanged content, at
    a cost per block and axis, never per row.

    The first part holds objects compared by identity (held, so an id is never reused
    while the memo holds the print), the second values compared by equality (each
    array's data address, shape, strides and dtype; the flags; ``attrs`` pickled). None
    when the frame holds something this cannot vouch for: an object-dtype column (its
    cells may be mutable), an extension array of a kind not known here, a writeable array
    (``freeze``, at decode time, makes the frame's own arrays read-only first: a column
    pandas copies when it reads it back), or ``attrs`` that cannot be pickled.
    """
    try:
        mgr = value._mgr
        attrs = value.attrs
        objs: list[Any] = [mgr, mgr.blocks]
        vals: list[Any] = [
            value.flags.allows_duplicate_labels,
            pickle.dumps(attrs, protocol=5) if attrs else b"",
        ]
        if type(value).__name__ == "Series":
            objs.append(value.name)
        for axis in mgr.axes:
            objs.append(axis)
            objs.extend(axis.names)
        ndarray = sys.modules["numpy"].ndarray
        frozen: list[Any] = []
        for block in mgr.blocks:
            values = block.values
            objs += (block, block.mgr_locs, values)
            if type(values) is ndarray:
                arrays = [values]
            else:
                objs.append(values.dtype)
                inner = getattr(values, "_ndarray", None)
                if inner is not None:
                    arrays = [inner]  # Categorical, DatetimeArray, TimedeltaArray
                elif hasattr(values, "_pa_array"):
                    objs.append(values._pa_array)  # Arrow arrays cannot change in place
                    arrays = []
                elif hasattr(values, "_mask"):
                    arrays = [values._data, values._mask]  # Int64, boolean, Float64
                else:
                    return None
            for array in arrays:
                if type(array) is not ndarray or array.dtype.hasobject:
                    return None
                if array.flags.writeable:
                    if not freeze:
                        return None
                    frozen.append(array)
                objs.append(array)
                vals += (
                    array.__array_interface__["data"][0],
                    array.shape,
                    array.strides,
                    array.dtype,
                )
        for array in frozen:
            array.flags.writeable = False
    except Exception:  # an attribute pandas renamed, attrs that do not pickle: no memo
        return None
    return tuple(objs), tuple(vals)


def _same_print(
    old: tuple[tuple[Any, ...], tuple[Any, ...]],
    new: tuple[tuple[Any, ...], tuple[Any, ...]] | None,
) -> bool:
    if new is None or len(old[0]) != len(new[0]):
        return False
    return all(a is b for a, b in zip(old[0], new[0], strict=True)) and old[1] == new[1]


# -- walking encoded bytes without unpickling -----------------------------------------------


def _walk_ext(data: bytes, hook: Callable[[int, memoryview], Any]) -> Any:
    return msgspec.msgpack.decode(data, ext_hook=hook)


def blob_digests(data: bytes) -> set[str]:
    """Return the digests of every blob referenced by msgpack ``data`` (snapshot, cached result).

    Walks the msgpack without unpickling anything.
    """
    found: set[str] = set()

    def hook(code: int, payload: memoryview) -> None:
        if code == EXT_BLOB:
            found.add(ref_decode(payload).digest)

    _walk_ext(data, hook)
    return found


def blob_refs(data: bytes) -> dict[str, BlobRef]:
    """Return the path (``assigns['X']``) -> BlobRef of every blob ``data`` (a Context) holds."""
    tree = _walk_ext(
        data,
        lambda code, payload: ref_decode(payload) if code == EXT_BLOB else None,
    )
    out: dict[str, BlobRef] = {}
    if not isinstance(tree, dict):
        return out
    for field in ("assigns", "metrics", "artifacts"):
        for key, value in (tree.get(field) or {}).items():
            if isinstance(value, BlobRef):
                out[f"{field}[{key!r}]"] = value
    for i, value in enumerate(tree.get("outputs") or ()):
        if isinstance(value, BlobRef):
            out[f"outputs[{i}]"] = value
    return out


def locate_blob_error(exc: BlobError, data: bytes, *, stage: str | None = None) -> BlobError:
    """Return ``exc`` naming the Context key and run that hold its blob in ``data``."""
    key = None
    run_id = None
    try:
        for path, ref in blob_refs(data).items():
            if ref.digest == exc.digest:
                key = path
                break
        tree = msgspec.msgpack.decode(data, type=dict[str, Any], ext_hook=lambda c, d: None)
        run_id = tree.get("run_id")
    except (msgspec.DecodeError, TypeError, ValueError):  # pragma: no cover - best effort
        pass
    return exc.located(key=key, run_id=run_id if isinstance(run_id, str) else None, stage=stage)


def inline_blobs(data: bytes, store: BlobStore) -> bytes:
    """Return ``data`` with every blob reference replaced by the blob's inline payload.

    For a worker that cannot open ``store`` (memory).

    Raises:
        BlobMissing: a referenced blob is not in ``store``.
        BlobCorrupt: a referenced blob does not match its digest.
    """
    changed = False

    def hook(code: int, payload: memoryview) -> msgspec.msgpack.Ext:
        nonlocal changed
        if code == EXT_BLOB:
            changed = True
            ref = ref_decode(payload)
            return msgspec.msgpack.Ext(EXT_PACKED, bytes(store.open(ref.digest)))
        return msgspec.msgpack.Ext(code, bytes(payload))

    tree = _walk_ext(data, hook)
    return plain_encode(tree) if changed else data


def externalize(data: bytes, store: BlobStore, threshold: int) -> bytes:
    """Return ``data`` with every inline packed value larger than ``threshold`` moved to ``store``.

    The reverse of :func:`inline_blobs`: the driver applies it to a reply from a worker
    that could not write to the store.
    """
    changed = False

    def hook(code: int, payload: memoryview) -> msgspec.msgpack.Ext:
        nonlocal changed
        if code == EXT_PACKED and payload.nbytes > threshold:
            changed = True
            kind, type_name, _, _ = read_header(payload)
            digest = digest_of([payload])
            store.put(digest, [payload], payload.nbytes)
            ref = BlobRef(digest, payload.nbytes, KINDS[kind], type_name)
            return msgspec.msgpack.Ext(EXT_BLOB, ref_encode(ref))
        return msgspec.msgpack.Ext(code, bytes(payload))

    tree = _walk_ext(data, hook)
    return plain_encode(tree) if changed else data
