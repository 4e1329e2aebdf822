"""One user value as bytes: plain or packed, and the payload layout blobs share.

The data codec (``_data.py``) decides where a value goes; this module says what it is
made of. A value is *plain* when a bounded walk finds only str/int/float/bool/None/bytes
in lists and str-keyed dicts (msgspec carries it exactly); anything else is *packed*:
pickle protocol 5 with out-of-band buffers, so array data is never copied into the pickle.

A payload (inline in ``Ext(EXT_PACKED, ...)`` or a blob file) is a header (magic, kind,
type name, buffer offsets), the pickle or msgpack body, then each buffer at a
64-byte-aligned offset, so a reader hands ``pickle.loads`` slices of a memory map. A
restricted Unpickler refuses the obvious code-execution globals; the store stays a trust
boundary, as for any pickle-based store.
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
from typing import Any, Final

import msgspec

from ._errors import MessageError

__all__ = [
    "EXT_BLOB",
    "EXT_PACKED",
    "KINDS",
    "KIND_MSGPACK",
    "KIND_PICKLE",
    "WALK_DEPTH",
    "BlobRef",
    "all_plain",
    "is_plain",
    "pack",
    "payload",
    "plain_encode",
    "read_header",
    "ref_decode",
    "ref_encode",
    "type_label",
    "unpack",
]

#: msgpack extension code of an inline packed value (payload layout in the module doc).
EXT_PACKED: Final = 81
#: msgpack extension code of a reference to a blob (a msgpack-encoded :class:`BlobRef`).
EXT_BLOB: Final = 82


class BlobRef(msgspec.Struct, frozen=True, array_like=True):
    """A reference to one value stored by content in the blob store.

    ``digest`` is the xxh3-128 hex of the blob's bytes, ``size`` their length, ``kind``
    ``"packed"`` (pickle + buffers) or ``"msgpack"``, ``type`` the value's type for display
    and errors (``"numpy.ndarray"``, ``"pandas.DataFrame"``).
    """

    digest: str
    size: int
    kind: str
    type: str


ref_encode = msgspec.msgpack.Encoder().encode
ref_decode = msgspec.msgpack.Decoder(BlobRef).decode
plain_encode = msgspec.msgpack.Encoder().encode

# How many items the plain walk visits before it gives up (the value is then packed),
# and how deep it goes: deeper values are packed too, so msgspec never recurses far.
_WALK_BUDGET: Final = 2000
WALK_DEPTH: Final = 64


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
            if depth >= WALK_DEPTH:
                return False
            budget -= len(item)
            if budget < 0:
                return False
            for v in item:
                if type(v) not in scalars:
                    stack.append((v, depth + 1))
        elif kind is dict:
            if depth >= WALK_DEPTH:
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

    Top-level scalars cost one type check each and allocate nothing; a short list of
    scalars (``completed_stages``) is checked in place; other containers go to
    :func:`_walk_plain`. Written out rather than looped over the four groups: this runs
    once per stage, and generator objects and calls cost more than the checks.
    """
    scalars = _SCALARS
    stack: list[Any] | None = None
    for v in assigns.values():
        kind = type(v)
        if kind in scalars:
            continue
        if kind is list and len(v) <= _SHORT:
            for x in v:
                if type(x) not in scalars:
                    break
            else:
                continue
        if stack is None:
            stack = [v]
        else:
            stack.append(v)
    if metrics:
        for v in metrics.values():
            if type(v) not in scalars:
                if stack is None:
                    stack = [v]
                else:
                    stack.append(v)
    if outputs:
        for v in outputs:
            if type(v) not in scalars:
                if stack is None:
                    stack = [v]
                else:
                    stack.append(v)
    if artifacts:
        for v in artifacts.values():
            if type(v) not in scalars:
                if stack is None:
                    stack = [v]
                else:
                    stack.append(v)
    return True if stack is None else _walk_plain(stack)


# Lists of at most this many items are checked in place by all_plain (within budget).
_SHORT: Final = 64


def _walk_plain(stack: list[Any]) -> bool:
    """Whether the containers on ``stack`` hold only plain values.

    No depth tracking (a value nested deeper than msgspec recurses fails its encode, and
    the slow path then names it); at most ``_WALK_BUDGET`` items are visited.
    """
    scalars = _SCALARS
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
KIND_PICKLE: Final = 0
KIND_MSGPACK: Final = 1
KINDS: Final = {KIND_PICKLE: "packed", KIND_MSGPACK: "msgpack"}
_ZEROS: Final = bytes(_ALIGN)


def _pad(n: int) -> int:
    return -n % _ALIGN


def payload(
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


def read_header(view: memoryview) -> tuple[int, str, memoryview, list[memoryview]]:
    """Return kind, type name, body and buffer views of a payload."""
    if view.nbytes < _HEAD.size:
        raise MessageError(f"a stored value is truncated ({view.nbytes} bytes)")
    magic, kind, nbuf, body_len, name_len = _HEAD.unpack_from(view)
    if magic != _MAGIC or kind not in KINDS:
        raise MessageError("a stored value does not start with crucible's payload header")
    at = _HEAD.size
    type_name = bytes(view[at : at + name_len]).decode()
    at += name_len
    spans = [_SPAN.unpack_from(view, at + i * _SPAN.size) for i in range(nbuf)]
    at += nbuf * _SPAN.size
    at += _pad(at)
    body = view[at : at + body_len]
    return kind, type_name, body, [view[o : o + n] for o, n in spans]


# pyarrow's buffer types (module ``pyarrow.lib``), pickled out of band as a PickleBuffer.
_ARROW_BUFFERS: Final = frozenset({"Buffer", "ResizableBuffer"})


class _Pickler(pickle.Pickler):
    """Pickler that gives every array buffer out of band, always read-only.

    The same content must give the same bytes (the blob's digest), whether an array is a
    fresh writeable one or was read back from a blob (read-only: a view of the map).
    pickle writes a READONLY_BUFFER opcode after each read-only out-of-band buffer, so
    every plain numpy array and every pyarrow buffer is pickled as a read-only view: a
    frame read back and passed on unchanged pickles to the blob it came from. Nothing is
    copied (a read-only view shares the data), and nothing changes for the reader: arrays
    read from a blob are read-only either way.

    numpy pickles a non-contiguous array (a column slice, ``X[:, ::2]``) in band, which
    would come back as a writeable copy and be stored again by the next stage; a
    contiguous read-only copy of it goes out of band like any other array.

    The pickler memoizes the original object before this hook is asked again, so an
    array referenced twice is still written once.
    """

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        module = kind.__module__
        if module == "numpy":
            # Exactly ndarray: a subclass (np.matrix, a memmap) pickles its own way, in band.
            if kind.__name__ != "ndarray" or obj.dtype.hasobject:
                return NotImplemented
            flags = obj.flags
            if not (flags.c_contiguous or flags.f_contiguous):
                view = obj.copy(order="C")
            elif flags.writeable:
                view = obj.view()
            else:
                view = obj
            view.flags.writeable = False
            dtype = view.dtype
            if dtype.kind in "mM":
                # numpy pickles datetime64/timedelta64 in band (a copy, writeable when
                # read back): carry the int64 data out of band and view it back.
                return _view_as, (view.view(f"{dtype.byteorder}i8"), dtype)
            reduced = view.__reduce_ex__(5)
            if len(reduced) != 2:  # in band (a zero-size item): nothing to canonicalise
                return reduced
            rebuild, args = reduced
            # A dtype read back is a copy of numpy's shared one: pickle (which memoizes
            # by identity) would then write it once per array instead of once per pickle.
            canonical = sys.modules["numpy"].dtype(dtype.str)
            if canonical.isbuiltin and canonical == dtype:
                args = (args[0], canonical, *args[2:])
            return rebuild, args
        if module.startswith("pandas") and _extension_array(obj):
            return _pandas_array(obj)
        if module == "pyarrow.lib" and kind.__name__ in _ARROW_BUFFERS and obj.is_mutable:
            rebuild = obj.__reduce_ex__(5)[0]  # pyarrow.py_buffer
            return rebuild, (pickle.PickleBuffer(memoryview(obj).toreadonly()),)
        return NotImplemented


def _view_as(array: Any, dtype: Any) -> Any:
    """Unpickle a datetime64/timedelta64 array: a view of its int64 data (see _Pickler)."""
    return array.view(dtype)


def _extension_array(obj: Any) -> bool:
    base = sys.modules.get("pandas.core.arrays.base")
    return base is not None and isinstance(obj, base.ExtensionArray)


def _pandas_array(obj: Any) -> Any:
    """Reduce a pandas extension array (Categorical, DatetimeArray, Int64...) canonically.

    Its pickle carries its ``__dict__`` with a ``_cache`` of computed properties, filled
    or not depending on what was asked of it, and an NDArrayBacked array's ``__dict__`` is
    restored by ``__dict__.update`` (keys not interned: pickle memoizes strings by
    identity). Either would make an unchanged array read back pickle differently from the
    original. The cache is dropped (pandas recomputes it) and the keys are interned.
    """
    rv = obj.__reduce_ex__(5)
    if len(rv) < 3:
        return rv
    state = rv[2]
    # An empty __dict__ is written as no state at all (as the original would be).
    if type(state) is dict:
        return (*rv[:2], _canonical_attrs(state) or None, *rv[3:])
    if type(state) is tuple and len(state) == 3 and type(state[2]) is dict:
        attrs = _canonical_attrs(state[2])
        return (*rv[:2], (*state[:2], attrs) if attrs else state[:2], *rv[3:])
    return rv


def _canonical_attrs(attrs: dict[Any, Any]) -> dict[Any, Any]:
    return {sys.intern(k) if type(k) is str else k: v for k, v in attrs.items() if k != "_cache"}


def pack(value: Any) -> tuple[list[bytes | memoryview], int]:
    """Pickle ``value`` with its buffers out of band; return the payload's chunks and size."""
    buffers: list[memoryview] = []

    def take(buf: pickle.PickleBuffer) -> None:
        buffers.append(buf.raw())

    out = io.BytesIO()
    _Pickler(out, protocol=5, buffer_callback=take).dump(value)
    return payload(KIND_PICKLE, out.getvalue(), buffers, type_label(value))


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


def unpack(view: memoryview) -> Any:
    kind, _, body, buffers = read_header(view)
    if kind == KIND_MSGPACK:
        return msgspec.msgpack.decode(body)
    try:
        return _Unpickler(io.BytesIO(body), buffers=buffers).load()
    except pickle.UnpicklingError as exc:
        raise MessageError(f"cannot load a stored value: {exc}") from exc
