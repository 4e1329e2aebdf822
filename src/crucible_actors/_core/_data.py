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

import contextlib
import contextvars
import io
import pickle
import struct
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import msgspec

from ._blobs import digest_of
from ._errors import BlobError, BlobMissing, EncodeError, MessageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ._blobs import BlobStore

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
    "type_label",
    "use_blob_store",
    "use_codec",
]

#: Values whose encoding is larger than this many bytes are stored by reference.
DEFAULT_BLOB_THRESHOLD: Final = 65536
#: msgpack extension code of an inline packed value (payload layout in the module doc).
EXT_PACKED: Final = 81
#: msgpack extension code of a reference to a blob (a msgpack-encoded :class:`BlobRef`).
EXT_BLOB: Final = 82

#: A Context of plain values encoded in at most this many bytes is written as it is
#: without looking up a threshold that comes from the configuration file.
LAZY_FLOOR: Final = 4096

# How many items the plain walk visits before it gives up (the value is then packed),
# and how deep it goes: deeper values are packed too, so msgspec never recurses far.
_WALK_BUDGET: Final = 2000
_WALK_DEPTH: Final = 64


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


_ref_encode = msgspec.msgpack.Encoder().encode
_ref_decode = msgspec.msgpack.Decoder(BlobRef).decode
_plain_encode = msgspec.msgpack.Encoder().encode

# -- the codec state: which blob store, which threshold ------------------------------


class BlobCodec:
    """The blob store and threshold the codec uses, plus its identity memo.

    Obtain one through :func:`use_blob_store`; every codec of one store shares its memo
    (objects decoded from a blob that cannot change in place, id -> (weakref, BlobRef)),
    so a read-only array passed through many stages is pickled and hashed once.
    """

    __slots__ = ("_resolve", "_threshold", "memo", "store")

    def __init__(
        self,
        store: BlobStore | None,
        threshold: int,
        memo: dict[int, Any],
        resolve: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self._threshold = threshold
        # Looks the threshold up (crucible.toml) the first time it matters; see fits().
        self._resolve = resolve
        self.memo = memo

    @property
    def threshold(self) -> int:
        """The size in bytes above which a value is stored by reference."""
        if self._resolve is not None:
            self._threshold = self._resolve()
            self._resolve = None
        return self._threshold

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

    def remember(self, value: Any, ref: BlobRef) -> None:
        """Remember that ``value`` (immutable, just decoded from a blob) is ``ref``'s."""
        memo = self.memo
        key = id(value)

        def forget(dead: weakref.ref[Any], key: int = key) -> None:
            found = memo.get(key)
            if found is not None and found[0] is dead:
                memo.pop(key, None)

        with contextlib.suppress(TypeError):  # not weak-referenceable: no memo for it
            memo[key] = (weakref.ref(value, forget), ref)

    def recall(self, value: Any) -> BlobRef | None:
        """Return the BlobRef ``value`` was decoded from, if it is remembered."""
        found = self.memo.get(id(value))
        if found is not None and found[0]() is value:
            ref: BlobRef = found[1]
            return ref
        return None


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
    memo: dict[int, Any]
    if store is None:
        memo = {}
    else:
        try:
            memo = _memos.setdefault(store, {})
        except TypeError:  # a store that is not weak-referenceable gets a private memo
            memo = {}
    return BlobCodec(store, threshold, memo, resolve)


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


def current_codec() -> BlobCodec | None:
    """Return the codec :func:`use_blob_store` made current, or None."""
    return _current.get()


# -- plain values ---------------------------------------------------------------------

_SCALARS: Final = frozenset({str, int, float, bool, type(None), bytes})


def is_plain(value: Any) -> bool:
    """Whether msgspec can carry ``value`` exactly: str/int/float/bool/None/bytes in lists
    and str-keyed dicts, found within the walk's budget (else the value is packed)."""
    if type(value) in _SCALARS:
        return True
    budget = _WALK_BUDGET
    stack: list[tuple[Any, int]] = [(value, 0)]
    scalars = _SCALARS
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is list:
            if depth >= _WALK_DEPTH:
                return False
            budget -= len(item)
            if budget < 0:
                return False
            for v in item:
                if type(v) not in scalars:
                    stack.append((v, depth + 1))
        elif kind is dict:
            if depth >= _WALK_DEPTH:
                return False
            budget -= len(item)
            if budget < 0:
                return False
            for k, v in item.items():
                if type(k) is not str:
                    return False
                if type(v) not in scalars:
                    stack.append((v, depth + 1))
        elif kind not in scalars:
            return False
    return True


def all_plain(
    assigns: dict[str, Any], metrics: dict[str, Any], outputs: list[Any], artifacts: dict[str, Any]
) -> bool:
    """Whether every user value of a Context is plain (the encoder's hot path).

    One walk over all of them, without depth tracking (a value nested deeper than msgspec
    recurses fails its encode, and the slow path then names it); at most
    ``_WALK_BUDGET`` items are visited. Top-level scalars cost one type check each.
    """
    scalars = _SCALARS
    stack: list[Any] = []
    for v in assigns.values():
        if type(v) not in scalars:
            stack.extend(v for v in assigns.values() if type(v) not in scalars)
            break
    for v in metrics.values():
        if type(v) not in scalars:
            stack.extend(v for v in metrics.values() if type(v) not in scalars)
            break
    if outputs:
        stack.extend(v for v in outputs if type(v) not in scalars)
    if artifacts:
        stack.extend(v for v in artifacts.values() if type(v) not in scalars)
    if not stack:
        return True
    budget = _WALK_BUDGET
    push = stack.append
    pop = stack.pop
    while stack:
        item = pop()
        kind = type(item)
        if kind is list:
            budget -= len(item)
            if budget < 0:
                return False
            for v in item:
                if type(v) not in scalars:
                    push(v)
        elif kind is dict:
            budget -= len(item)
            if budget < 0:
                return False
            for k, v in item.items():
                if type(k) is not str:
                    return False
                if type(v) not in scalars:
                    push(v)
        else:
            return False
    return True


def type_label(value: Any) -> str:
    """Return a short name of ``value``'s type: ``numpy.ndarray``, ``pandas.DataFrame``."""
    kind = type(value)
    module = kind.__module__
    if module == "builtins":
        return kind.__qualname__
    return f"{module.partition('.')[0]}.{kind.__qualname__}"


# -- payloads: header, body, aligned buffers --------------------------------------------

_MAGIC: Final = b"CRB1"
# magic, kind (0 pickle, 1 msgpack), buffer count, body length, type-name length
_HEAD = struct.Struct("<4sB3xIQI4x")
_SPAN = struct.Struct("<QQ")
_ALIGN: Final = 64
_KIND_PICKLE: Final = 0
_KIND_MSGPACK: Final = 1
_KINDS: Final = {_KIND_PICKLE: "packed", _KIND_MSGPACK: "msgpack"}
_ZEROS: Final = bytes(_ALIGN)


def _pad(n: int) -> int:
    return -n % _ALIGN


def _payload(
    kind: int, body: bytes, buffers: list[memoryview], type_name: str
) -> tuple[list[bytes | memoryview], int]:
    """Lay out a payload; return its chunks (buffers are not copied) and total size."""
    name = type_name.encode()
    header_len = _HEAD.size + len(name) + _SPAN.size * len(buffers)
    offset = header_len + _pad(header_len)
    body_at = offset
    offset += len(body)
    spans = []
    for buf in buffers:
        offset += _pad(offset)
        spans.append((offset, buf.nbytes))
        offset += buf.nbytes
    head = b"".join(
        [
            _HEAD.pack(_MAGIC, kind, len(buffers), len(body), len(name)),
            name,
            *(_SPAN.pack(o, n) for o, n in spans),
        ]
    )
    chunks: list[bytes | memoryview] = [head, _ZEROS[: body_at - len(head)], body]
    end = body_at + len(body)
    for (at, n), buf in zip(spans, buffers, strict=True):
        if at > end:
            chunks.append(_ZEROS[: at - end])
        chunks.append(buf)
        end = at + n
    return chunks, offset


def _read_header(view: memoryview) -> tuple[int, str, memoryview, list[memoryview]]:
    """Return kind, type name, body and buffer views of a payload."""
    if view.nbytes < _HEAD.size:
        raise MessageError(f"a stored value is truncated ({view.nbytes} bytes)")
    magic, kind, nbuf, body_len, name_len = _HEAD.unpack_from(view)
    if magic != _MAGIC or kind not in _KINDS:
        raise MessageError("a stored value does not start with crucible's payload header")
    at = _HEAD.size
    type_name = bytes(view[at : at + name_len]).decode()
    at += name_len
    spans = [_SPAN.unpack_from(view, at + i * _SPAN.size) for i in range(nbuf)]
    at += nbuf * _SPAN.size
    at += _pad(at)
    body = view[at : at + body_len]
    return kind, type_name, body, [view[o : o + n] for o, n in spans]


class _PayloadError(Exception):
    """Why a value could not be packed (becomes an EncodeError naming its path)."""


def _pack(value: Any) -> tuple[list[bytes | memoryview], int]:
    buffers: list[memoryview] = []

    def take(buf: pickle.PickleBuffer) -> None:
        buffers.append(buf.raw())

    body = pickle.dumps(value, protocol=5, buffer_callback=take)
    return _payload(_KIND_PICKLE, body, buffers, type_label(value))


# Globals a pickle written by the runtime never needs and an attacker would (a tampered
# store): refused with a clear error. The store stays a trust boundary all the same.
_BANNED_MODULES: Final = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "shutil",
        "importlib",
        "runpy",
        "code",
        "codeop",
        "pty",
        "pickle",
        "_pickle",
        "marshal",
        "ctypes",
        "socket",
        "webbrowser",
    }
)
_BANNED_BUILTINS: Final = frozenset(
    {"eval", "exec", "compile", "__import__", "open", "breakpoint", "input", "getattr"}
)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        root = module.partition(".")[0]
        if root in _BANNED_MODULES or (
            module in ("builtins", "__builtin__") and name in _BANNED_BUILTINS
        ):
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from a stored value: crucible-actors "
                "never stores it, so the store was tampered with (treat the store as "
                "trusted input, like any pickle)"
            )
        return super().find_class(module, name)


def _unpack(view: memoryview) -> Any:
    kind, _, body, buffers = _read_header(view)
    if kind == _KIND_MSGPACK:
        return msgspec.msgpack.decode(body)
    try:
        return _Unpickler(io.BytesIO(body), buffers=buffers).load()
    except pickle.UnpicklingError as exc:
        raise MessageError(f"cannot load a stored value: {exc}") from exc


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
            return msgspec.msgpack.Ext(EXT_BLOB, _ref_encode(ref))
    if is_plain(value):
        # An int beyond 64 bits is refused, as it always was: JSON views of the run
        # (records, the HTTP API) could not show it either.
        try:
            raw = _plain_encode(value)
        except (TypeError, OverflowError, RecursionError, msgspec.EncodeError) as exc:
            raise EncodeError(path, value, str(exc)) from exc
        if codec is None or codec.store is None or len(raw) <= codec.threshold:
            return msgspec.Raw(raw)
        chunks, size = _payload(_KIND_MSGPACK, raw, [], type_label(value))
        return _store_blob(codec, chunks, size, "msgpack", type_label(value))
    try:
        chunks, size = _pack(value)
    except RecursionError as exc:
        raise EncodeError(
            path, value, "nested too deeply to store; flatten it or store it as bytes"
        ) from exc
    except Exception as exc:
        # A class pickle cannot find again (defined inside a function) still travels as
        # msgspec wrote it before values were packed: a Struct or dataclass as a dict.
        try:
            raw = _plain_encode(value)
        except (TypeError, OverflowError, RecursionError, msgspec.EncodeError):
            _raise_unpicklable(value, path, exc)
        if codec is None or codec.store is None or len(raw) <= codec.threshold:
            return msgspec.Raw(raw)
        chunks, size = _payload(_KIND_MSGPACK, raw, [], type_label(value))
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
    return msgspec.msgpack.Ext(EXT_BLOB, _ref_encode(BlobRef(digest, size, kind, type_name)))


def _raise_unpicklable(value: Any, path: str, exc: Exception) -> Any:
    """Raise the EncodeError naming the innermost part of ``value`` that cannot be pickled."""
    detail = f"{type(exc).__name__}: {exc}"
    for _ in range(_WALK_DEPTH):
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
        return _unpack(memoryview(bytes(data)))
    if code == EXT_BLOB:
        ref = _ref_decode(data)
        codec = _current.get()
        if codec is None or codec.store is None:
            raise BlobMissing(
                ref.digest,
                detail=f"{ref.type}, {ref.size} bytes; no blob store is open here",
            )
        value = _unpack(codec.store.open(ref.digest))
        if _immutable(value):
            codec.remember(value, ref)
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
            found.add(_ref_decode(payload).digest)

    _walk_ext(data, hook)
    return found


def blob_refs(data: bytes) -> dict[str, BlobRef]:
    """Return the path (``assigns['X']``) -> BlobRef of every blob ``data`` (a Context) holds."""
    tree = _walk_ext(
        data,
        lambda code, payload: _ref_decode(payload) if code == EXT_BLOB else None,
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
            ref = _ref_decode(payload)
            return msgspec.msgpack.Ext(EXT_PACKED, bytes(store.open(ref.digest)))
        return msgspec.msgpack.Ext(code, bytes(payload))

    tree = _walk_ext(data, hook)
    return _plain_encode(tree) if changed else data


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
            kind, type_name, _, _ = _read_header(payload)
            digest = digest_of([payload])
            store.put(digest, [payload], payload.nbytes)
            ref = BlobRef(digest, payload.nbytes, _KINDS[kind], type_name)
            return msgspec.msgpack.Ext(EXT_BLOB, _ref_encode(ref))
        return msgspec.msgpack.Ext(code, bytes(payload))

    tree = _walk_ext(data, hook)
    return _plain_encode(tree) if changed else data
