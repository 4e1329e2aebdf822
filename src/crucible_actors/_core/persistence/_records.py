"""Store records built from a run: artifacts, trace events, checkpoints.

Pure functions the store observer (``_observer.py``), recovery (``_recovery.py``) and the
``serve``/``cli`` adapters share: :func:`artifacts_from_context` and
:func:`events_from_context` turn a final Context into its records,
:func:`decode_checkpoint` reads a checkpoint back. Free-form values go through the one
JSON normaliser, :func:`~crucible_actors._core._encoding.to_json_safe` with
``finite=True`` (NaN and infinities become null), so every store holds the same values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from .._data import use_blob_store
from .._encoding import decode_context, to_json_safe
from .._errors import BlobError, CheckpointDecodeError, MessageError
from .._ir import Experiment
from ._store import ArtifactRecord, TraceEventRecord

if TYPE_CHECKING:
    from .._context import Context
    from ._blobs import BlobStore
    from ._store import Checkpoint


class _ExperimentOf(msgspec.Struct):
    experiment: Experiment


_experiment_of = msgspec.msgpack.Decoder(_ExperimentOf, ext_hook=lambda code, data: None)

__all__ = [
    "artifacts_from_context",
    "checkpoint_definition",
    "decode_checkpoint",
    "events_from_context",
]

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def checkpoint_definition(data: bytes) -> dict[str, Any] | None:
    """Return the JSON-safe Experiment a checkpoint's Context carries, or None.

    That is the run's own definition (a sweep point's options included), where the
    stored experiment record holds the latest one submitted under its id. Decodes only
    the experiment (no user value, no blob read); None if it does not decode.
    """
    try:
        experiment = _experiment_of.decode(data).experiment
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError):
        return None
    found: dict[str, Any] = to_json_safe(experiment, finite=True)
    return found


def decode_checkpoint(
    checkpoint: Checkpoint, *, store: str, blobs: BlobStore | None = None
) -> Context:
    """Decode a stored checkpoint, reading its large values from ``blobs``.

    Raises:
        CheckpointDecodeError: the bytes were written by an incompatible version.
        BlobMissing: a value it references is not in ``blobs`` (naming run, stage, key).
        BlobCorrupt: such a value's blob does not match its digest.
    """
    try:
        with use_blob_store(blobs):
            return decode_context(checkpoint.data)
    except BlobError as exc:
        raise exc.located(
            run_id=checkpoint.run_id, stage=_stage_label(checkpoint), store=store
        ) from exc
    except MessageError as exc:
        raise CheckpointDecodeError(
            f"the checkpoint of run {checkpoint.run_id!r} before stage {checkpoint.index} "
            f"does not decode ({exc}); it was probably written by an incompatible version "
            "of crucible-actors, so the run cannot be resumed",
            store=store,
        ) from exc


def _stage_label(checkpoint: Checkpoint) -> str | None:
    """Return the label of the stage ``checkpoint`` is taken before (None: after the last)."""
    try:
        pipeline = _experiment_of.decode(checkpoint.data).experiment.pipeline
    except (msgspec.DecodeError, TypeError, ValueError):
        return None
    index = checkpoint.index
    return pipeline[index].label if 0 <= index < len(pipeline) else None


def _aware(ts: datetime | None) -> datetime | None:
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


def artifacts_from_context(ctx: Context) -> list[ArtifactRecord]:
    """Return the artifact records of ``ctx``: the ``artifacts`` entries with a location.

    An entry is a dict with ``location`` (and optionally ``name``, ``type``, ``format``,
    ``metadata``), or a list of such dicts; other entries are not files and are skipped.
    Keys other than those five go into ``metadata``.
    """
    out: list[ArtifactRecord] = []
    for key, value in ctx.artifacts.items():
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("location") is None:
                continue
            extra = {
                k: v
                for k, v in entry.items()
                if k not in ("name", "type", "location", "format", "metadata")
            }
            meta = entry.get("metadata")
            if isinstance(meta, dict):
                extra.update(meta)
            kind, fmt = entry.get("type"), entry.get("format")
            out.append(
                ArtifactRecord(
                    run_id=ctx.run_id,
                    name=str(entry.get("name") or key),
                    type=None if kind is None else str(kind),
                    location=str(entry["location"]),
                    format=None if fmt is None else str(fmt),
                    metadata=to_json_safe(extra, finite=True),
                    key=str(key),
                )
            )
    return out


def events_from_context(ctx: Context) -> list[TraceEventRecord]:
    """Return the decision-trace events of ``ctx`` as records, ``seq`` from 1."""
    if ctx.trace is None:
        return []
    return [
        TraceEventRecord(
            run_id=ctx.run_id,
            seq=i,
            type=ev.type,
            stage_id=ev.stage_id,
            timestamp=_aware(ev.timestamp),
            event=to_json_safe(ev, finite=True),
        )
        for i, ev in enumerate(ctx.trace.events, 1)
    ]
