"""How an attempt's Context crosses to a worker and back, cheaply.

The Context travels as the run's own msgpack snapshot. Two costs are avoided per attempt:
decoding the Experiment again (every snapshot of a run carries the same one, so a worker
keeps the last few it decoded, keyed by their bytes), and replacing the driver's
Experiment object by an equal copy (the reply says whether the stage kept the experiment,
and then the driver decodes the result around its own object, which keeps the run's fast
decoding path).

Large values (blobs; see the data guide) never cross as bytes when
the worker can reach the run's blob store: the snapshot carries references, and a pool
worker opens the store from its ``location()`` (:class:`WorkerBlobStores`), maps each
blob it reads and writes the large values of its result there itself. A store that lives
in the driver's memory has no location: then the driver inlines the values it sends and
externalizes the large values of the reply (:func:`inline_blobs`, :func:`externalize`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import msgspec.structs

from .._core import Experiment, decode_context, decode_context_with, encode_context

if TYPE_CHECKING:
    from .._core import BlobStore, Context

__all__ = ["WorkerBlobStores", "WorkerContexts", "decode_result", "open_worker_blob_store"]


class _ExperimentOnly(msgspec.Struct):
    experiment: msgspec.Raw


_experiment_only = msgspec.msgpack.Decoder(_ExperimentOnly)
_experiment_decoder = msgspec.msgpack.Decoder(Experiment)


class WorkerContexts:
    """A worker's decoder of attempt Contexts, reusing the Experiments it has seen."""

    __slots__ = ("_experiments",)

    def __init__(self) -> None:
        self._experiments: dict[bytes, Experiment] = {}

    def decode(self, data: bytes, telemetry: dict[str, Any] | None) -> Context:
        """Decode an attempt's Context; ``telemetry`` (if given) replaces its telemetry."""
        raw = bytes(_experiment_only.decode(data).experiment)
        experiment = self._experiments.get(raw)
        if experiment is None:
            if len(self._experiments) >= 8:
                self._experiments.clear()
            experiment = self._experiments[raw] = _experiment_decoder.decode(raw)
        ctx = decode_context_with(data, experiment)
        if telemetry is not None:
            ctx = msgspec.structs.replace(ctx, telemetry_context=telemetry)
        return ctx

    @staticmethod
    def encode(given: Context, result: Context) -> tuple[bytes, bool]:
        """Encode ``result``; the flag says the stage kept ``given``'s experiment."""
        return encode_context(result), result.experiment is given.experiment


def decode_result(data: bytes, kept: bool, given: Context) -> Context:
    """Decode a worker's result; with ``kept``, around ``given``'s experiment object."""
    if kept:
        return decode_context_with(data, given.experiment)
    return decode_context(data)


def open_worker_blob_store(location: str) -> BlobStore:
    """Reopen the blob store at ``location`` (a ``BlobStore.location()``) in this process.

    Raises:
        StoreUnavailable: the location names no store this version can open.
    """
    if location.startswith(("postgresql:", "postgres:")):
        from ..store._pg_blobs import PostgresBlobStore

        return PostgresBlobStore.from_location(location)
    from ..store._blobs import open_blob_store

    return open_blob_store(location)


class WorkerBlobStores:
    """A worker's blob stores, opened once per location and kept (with what they verified)."""

    __slots__ = ("_stores",)

    def __init__(self) -> None:
        self._stores: dict[str, BlobStore] = {}

    def get(self, location: str | None) -> BlobStore | None:
        """Return the store at ``location``, opening it the first time; None for None."""
        if location is None:
            return None
        store = self._stores.get(location)
        if store is None:
            store = self._stores[location] = open_worker_blob_store(location)
        return store
