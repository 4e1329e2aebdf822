"""Cached msgspec encoders and decoders for Contexts, messages and records.

The supervised runtime ships the Context between the run supervisor and stage actors as
msgpack bytes; the store keeps the same bytes as checkpoints. Stage objects reachable
from the Context (``StageDef.stage``) encode as their ``"module:qualname"`` reference.
User values (``assigns``, ``metrics``, ``artifacts``, ``outputs``) go through the data
codec (``_data.py``): plain values as msgpack, anything else packed, large values as
references to the current blob store. A small Context of plain values is still one
msgspec call.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, NoReturn

import msgspec
from msgspec.structs import replace

from ._context import Context
from ._data import _current as _codec_var
from ._data import (
    all_plain,
    current_codec,
    decode_value,
    encode_value,
    locate_blob_error,
    type_label,
)
from ._errors import BlobError, EncodeError, MessageError
from ._ir import Experiment, StageDef, is_plugin_object, stage_ref
from ._trace_chain import TraceChain

if TYPE_CHECKING:
    from ._data import BlobCodec

__all__ = [
    "context_to_json",
    "decode_context",
    "enc_hook",
    "encode_context",
    "encode_light",
    "encode_small",
    "to_json_safe",
]


def _is_stage_like(obj: Any) -> bool:
    """Whether ``obj`` is what ``StageDef.stage`` accepts: a stage class or object.

    Stage subclasses and ``@stage`` functions carry ``__crucible_stage__``; a plug-in
    that only follows the protocol is recognised by its callable ``run``.
    """
    if getattr(obj, "__crucible_stage__", False) or getattr(
        getattr(obj, "__wrapped__", None), "__crucible_stage__", False
    ):
        return True
    return callable(getattr(obj, "run", None))


def enc_hook(obj: Any) -> Any:
    """Encode a stage class or object as its ``"module:qualname"`` reference.

    Pass it as ``enc_hook=`` to a msgspec encoder to encode an Experiment whose
    ``StageDef.stage`` holds a Python object.

    Raises:
        NotImplementedError: ``obj`` is not a stage (msgspec reports it as unsupported).
    """
    if _is_stage_like(obj):
        return stage_ref(obj)
    raise NotImplementedError(f"cannot encode objects of type {type(obj).__name__}")


_enc_hook = enc_hook


_msgpack_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_json_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
_context_decoder = msgspec.msgpack.Decoder(Context, ext_hook=decode_value)
_ENCODE_ERRORS = (
    TypeError,
    NotImplementedError,
    msgspec.EncodeError,
    OverflowError,
    RecursionError,
)


def _find_bad(value: Any, path: str) -> tuple[str, Any, str] | None:
    """Return (path, value, detail) of the innermost value that does not encode."""
    try:
        _msgpack_encoder.encode(value)
        return None
    except _ENCODE_ERRORS as exc:
        detail = str(exc)
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            found = _find_bad(getattr(value, name), f"{path}.{name}")
            if found is not None:
                return found
    elif isinstance(value, Mapping):
        for k, v in value.items():
            found = _find_bad(v, f"{path}[{k!r}]")
            if found is not None:
                return found
        for k in value:
            if not isinstance(k, str | int):
                return (f"{path} key {k!r}", k, "keys must be str")
    elif isinstance(value, list | tuple | set | frozenset):
        for i, v in enumerate(value):
            found = _find_bad(v, f"{path}[{i}]")
            if found is not None:
                return found
    return (path, value, detail)


def _portable_options(options: Any) -> Any:
    """Return ``options`` with callables and classes replaced by their references."""
    if isinstance(options, dict):
        return {k: _portable_options(v) for k, v in options.items()}
    if isinstance(options, list | tuple):
        return [_portable_options(v) for v in options]
    if is_plugin_object(options):
        return stage_ref(options)
    return options


def _portable_stage(stage_def: StageDef) -> StageDef:
    stage = stage_def.stage
    if stage is not None and not isinstance(stage, str):
        stage_def = replace(stage_def, stage=stage_ref(stage))
    if stage_def.options and any(is_plugin_object(v) for v in _walk(stage_def.options)):
        stage_def = replace(stage_def, options=_portable_options(stage_def.options))
    return stage_def


def _walk(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk(v)
    else:
        yield value


def _portable(ctx: Context) -> Context:
    """Return ``ctx`` with Python objects in the pipeline replaced by their references.

    Whatever object a pipeline names as its stage (even one that is not a stage, which
    fails later with a message saying so) must not make the Context unencodable; nor must
    a function or class given as an option (a bench ``data_source``, a guardrails
    ``adapter``). In-process attempts get the live objects: the run decodes its snapshots
    with the experiment it was given (:func:`decode_context_with`); only a Context decoded
    afresh (a resume in another process) sees the ``"module:qualname"`` strings.
    """
    pipeline = ctx.experiment.pipeline
    refs = [_portable_stage(s) for s in pipeline]
    if all(a is b for a, b in zip(refs, pipeline, strict=True)):
        return ctx
    return replace(ctx, experiment=replace(ctx.experiment, pipeline=refs))


def _user_values(ctx: Context) -> Context:
    """Return ``ctx`` with each user value replaced by what the data codec writes for it."""
    codec = current_codec()

    def field(name: str, values: dict[str, Any]) -> dict[str, Any]:
        return {k: encode_value(v, f"{name}[{k!r}]", codec) for k, v in values.items()}

    return replace(
        ctx,
        assigns=field("assigns", ctx.assigns),
        metrics=field("metrics", ctx.metrics),
        artifacts=field("artifacts", ctx.artifacts),
        outputs=[encode_value(v, f"outputs[{i}]", codec) for i, v in enumerate(ctx.outputs)],
    )


def encode_small(ctx: Context) -> bytes | None:
    """Encode ``ctx`` in one msgspec call if it is small and plain; else return None.

    The hot path of :func:`encode_context`: every user value plain and the whole Context
    within the blob threshold. ``None`` means the Context needs the codec (values to
    pack or store by reference), work a caller on the event loop may move to a thread.
    """
    if all_plain(ctx.assigns, ctx.metrics, ctx.outputs, ctx.artifacts):
        try:
            data = _msgpack_encoder.encode(ctx)
        except _ENCODE_ERRORS:
            return None
        codec = _codec_var.get()
        if codec is None or len(data) <= codec.small or codec.fits(len(data)):
            return data
    return None


# What encode_light lets the loop encode: scalars, short strings and short flat containers
# of them (a tuple, set or dict of a few numbers), and values the codec recalls by
# identity (a read-only array decoded from a blob: no pickling, no hashing).
_LIGHT_ATOMS: Final = frozenset({int, float, bool, type(None)})
_LIGHT_TEXT: Final = frozenset({str, bytes})
_LIGHT_LEN: Final = 64
_LIGHT_BYTES: Final = 4096


def _light_atom(value: Any) -> bool:
    kind = type(value)
    return kind in _LIGHT_ATOMS or (kind in _LIGHT_TEXT and len(value) <= _LIGHT_BYTES)


def _light(value: Any, codec: BlobCodec | None) -> bool:
    if _light_atom(value):
        return True
    kind = type(value)
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        return len(value) <= _LIGHT_LEN and all(_light_atom(v) for v in value)
    if kind is dict:
        return len(value) <= _LIGHT_LEN and all(
            type(k) is str and _light_atom(v) for k, v in value.items()
        )
    return codec is not None and codec.remembers(value)


def encode_light(ctx: Context) -> bytes | None:
    """Encode ``ctx`` if that is cheap enough for the event loop; else return None.

    Cheap: :func:`encode_small`'s case, or every user value light (see ``_light``): no
    value that could take long to pickle, hash or write to the blob store. ``None``
    means: encode it with :func:`encode_context` in a worker thread.

    Raises:
        EncodeError: a light Context that cannot be encoded (as :func:`encode_context`).
    """
    data = encode_small(ctx)
    if data is not None:
        return data
    codec = _codec_var.get()
    for values in (ctx.assigns.values(), ctx.metrics.values(), ctx.outputs, ctx.artifacts.values()):
        for value in values:
            if not _light(value, codec):
                return None
    return encode_context(ctx)


def encode_context(ctx: Context) -> bytes:
    """Encode ``ctx`` to msgpack bytes, writing large values to the current blob store.

    Values that survive as themselves (tuples, sets, dataclasses, Structs, enums, numpy,
    pandas, pyarrow ...) are packed; a value whose encoding exceeds the threshold of
    :func:`~._data.use_blob_store` is written to its blob store first (durably) and
    referenced.

    Raises:
        EncodeError: a value in the Context cannot be encoded; ``path`` names it, e.g.
            ``assigns['model']``.
    """
    data = encode_small(ctx)
    if data is not None:
        return data
    error: BaseException
    wire = _user_values(ctx)
    try:
        return _msgpack_encoder.encode(wire)
    except _ENCODE_ERRORS as exc:
        error = exc
    # Stage classes and objects in the pipeline encode through the hook; anything else
    # given as a stage, and callables given as options, are written as their references.
    portable = _portable(wire)
    if portable is not wire:
        try:
            return _msgpack_encoder.encode(portable)
        except _ENCODE_ERRORS as exc:
            error = exc
    _raise_unencodable(portable, error)


def _raise_unencodable(ctx: Context, exc: BaseException) -> NoReturn:
    """Raise the EncodeError naming the first value of ``ctx`` that cannot be encoded."""
    fields = ("assigns", "metrics", "outputs", "artifacts", "telemetry_context")
    for field in (*fields, "trace", "experiment"):
        found = _find_bad(getattr(ctx, field), field)
        if found is not None:
            raise EncodeError(*found) from exc
    raise EncodeError("context", ctx, str(exc)) from exc


def decode_context(data: bytes) -> Context:
    """Decode msgpack bytes produced by :func:`encode_context`.

    Raises:
        MessageError: the bytes are not an encoded Context of this version.
        BlobMissing: a value stored by reference is not in the current blob store.
        BlobCorrupt: such a value's blob does not match its digest.
    """
    try:
        return _context_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise MessageError(f"cannot decode a Context from {len(data)} bytes: {exc}") from exc
    except BlobError as exc:
        raise locate_blob_error(exc, data) from exc.__cause__


# Arrays up to this many elements are written out in JSON; larger ones as a summary.
_JSON_ARRAY_LIMIT = 1000


def _data_summary(obj: Any) -> Any:
    """Return the JSON form of a numpy/pandas/pyarrow value, or NotImplemented.

    Scalars become numbers, small arrays lists, large arrays and frames a short summary
    (type, shape, dtype): never the ``repr`` of a gigabyte. Nothing is imported here.
    """
    module = type(obj).__module__.partition(".")[0]
    if module not in ("numpy", "pandas", "pyarrow"):
        return NotImplemented
    label = type_label(obj)
    if module == "numpy":
        shape = getattr(obj, "shape", None)
        if shape == () and hasattr(obj, "item"):
            return obj.item()
        if shape is not None and hasattr(obj, "tolist"):
            if obj.size <= _JSON_ARRAY_LIMIT:
                return obj.tolist()
            return {"type": label, "shape": list(shape), "dtype": str(obj.dtype)}
        return NotImplemented
    shape = getattr(obj, "shape", None)
    summary: dict[str, Any] = {"type": label}
    if isinstance(shape, tuple):
        summary["shape"] = list(shape)
    dtype = getattr(obj, "dtype", None)
    if dtype is not None:
        summary["dtype"] = str(dtype)
    columns = getattr(obj, "columns", None)
    if module == "pandas" and columns is not None:
        summary["columns"] = [str(c) for c in list(columns)[:50]]
    elif module == "pyarrow" and getattr(obj, "schema", None) is not None:
        summary["columns"] = list(obj.schema.names)[:50]
        summary["rows"] = getattr(obj, "num_rows", None)
    return summary


def _repr_hook(obj: Any) -> Any:
    try:
        return _enc_hook(obj)
    except NotImplementedError:
        pass
    summary = _data_summary(obj)
    if summary is not NotImplemented:
        return summary
    return repr(obj)


def to_json_safe(value: Any, *, finite: bool = False) -> Any:
    """Return a JSON-safe copy of ``value``: dicts with string keys, lists and scalars.

    The one normaliser of values for JSON (store records, trace metadata, reports, the
    CLI's ``--json``, options sent to worker processes). It never raises and always
    copies, so changing the result never changes ``value``:

    - mappings become dicts; keys become strings (numbers and enums as msgspec spells
      them, tuples, ``None``, booleans and other keys as ``str(key)``);
    - tuples, lists, sets and frozensets become lists;
    - msgspec Structs and dataclasses become dicts of their fields; enums their values;
    - datetimes, dates and times become ISO 8601 strings, timedeltas ISO 8601 durations,
      UUIDs and Decimals strings, bytes base64 strings;
    - stage objects become their ``"module:qualname"`` reference;
    - numpy scalars become Python numbers and arrays of up to 1,000 elements (nested)
      lists; larger arrays and pandas or pyarrow objects become a summary
      (``{"type", "shape", "dtype", ...}``), never the data;
    - NaN and infinities stay floats (a value sent to a worker keeps them; msgspec's
      JSON encoder writes them as ``null``); with ``finite=True`` they become ``None``,
      which is what a JSON column stores, so records are the same from every store;
    - anything else becomes its ``repr``, and so does a container that holds itself.
    """
    try:
        plain = msgspec.to_builtins(value, enc_hook=_repr_hook, str_keys=True)
    except (TypeError, ValueError, RecursionError):
        # A key msgspec cannot spell (a tuple, None, a bool): spell the keys, then again.
        # A container that holds itself fails both times and is written as its repr.
        try:
            plain = msgspec.to_builtins(_spelled_keys(value), enc_hook=_repr_hook, str_keys=True)
        except (TypeError, ValueError, RecursionError):
            return repr(value)
    plain = _lists(plain)
    if finite and plain:
        # The JSON round trip is msgspec's C walk: NaN and infinities become null.
        return msgspec.json.decode(msgspec.json.encode(plain))
    return plain


def _lists(value: Any) -> Any:
    # msgspec.to_builtins keeps tuples as tuples; JSON-safe values want lists.
    if isinstance(value, tuple):
        return [_lists(v) for v in value]
    if isinstance(value, list):
        return (
            [_lists(v) for v in value]
            if any(isinstance(v, list | tuple | dict) for v in value)
            else value
        )
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value


def _spelled_keys(value: Any) -> Any:
    """Copy the containers of ``value`` with every key msgspec refuses turned into ``str``."""
    if isinstance(value, Mapping):
        return {_key(k): _spelled_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_spelled_keys(v) for v in value]
    if isinstance(value, msgspec.Struct):
        return {f: _spelled_keys(getattr(value, f)) for f in value.__struct_fields__}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _spelled_keys(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _key(key: Any) -> Any:
    if key is None or isinstance(key, bool | tuple | frozenset):
        return str(key)
    if isinstance(key, enum.Enum) and not isinstance(key.value, str | int | float):
        return str(key)
    return key


def context_to_json(ctx: Context) -> bytes:
    """Encode ``ctx`` as JSON, never failing: unknown values are written as ``repr``."""
    return msgspec.json.encode(to_json_safe(ctx))


class _ContextSansExperiment(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Context's wire layout with ``experiment`` left as raw bytes (not decoded).

    Must list the same fields as :class:`Context`; used by :func:`decode_context_with`.
    """

    experiment_id: str
    run_id: str
    experiment: msgspec.Raw
    outputs: list[Any] = []
    metrics: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}
    trace: Any = None
    telemetry_context: dict[str, Any] = {}
    assigns: dict[str, Any] = {}


_sans_experiment_decoder = msgspec.msgpack.Decoder(_ContextSansExperiment, ext_hook=decode_value)


def decode_context_with(
    data: bytes, experiment: Experiment, telemetry: Mapping[str, Any] | None = None
) -> Context:
    """Decode a Context whose experiment is known to be ``experiment``, reusing that object.

    The run supervisor knows which experiment every snapshot of a run carries, so stage
    attempts skip rebuilding the Experiment tree from bytes (most of a decode's cost and
    allocations). The bytes stay self-contained for the store and worker processes.
    ``telemetry`` entries, if given, are merged into ``telemetry_context``.

    Raises:
        MessageError: the bytes are not an encoded Context of this version.
        BlobMissing: a value stored by reference is not in the current blob store.
        BlobCorrupt: such a value's blob does not match its digest.
    """
    try:
        lite = _sans_experiment_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise MessageError(f"cannot decode a Context from {len(data)} bytes: {exc}") from exc
    except BlobError as exc:
        raise locate_blob_error(exc, data) from exc.__cause__
    trace = lite.trace
    if trace is not None:
        trace = msgspec.convert(trace, TraceChain, strict=False)
    return Context(
        lite.experiment_id,
        lite.run_id,
        experiment,
        lite.outputs,
        lite.metrics,
        lite.artifacts,
        trace,
        {**lite.telemetry_context, **telemetry} if telemetry else lite.telemetry_context,
        lite.assigns,
    )
