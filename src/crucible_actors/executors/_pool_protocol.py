"""The frames between a warm pool and its workers (see :mod:`._pool_worker`).

Each frame is a 4-byte big-endian length and a msgpack body. The parent sends a
:class:`Attempt` or :class:`Shutdown`; a worker answers an attempt with one byte,
:data:`KEEP` or :data:`RETIRE`, a second saying whether the stage kept the attempt's
Experiment object (``b"\x01"``: the driver may decode the result around its own), and the
encoded ``AttemptDone``/``AttemptFailed``.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

from .._core import DEFAULT_BLOB_THRESHOLD
from .._core import messages as msg

__all__ = ["HEADER", "KEEP", "RETIRE", "Attempt", "Request", "Shutdown", "frame", "request_decoder"]

KEEP = b"\x00"
RETIRE = b"\x01"
HEADER = struct.Struct(">I")


class Attempt(msgspec.Struct, tag="attempt", frozen=True):
    """Run ``command`` (a ``RunStage``) of stage ``stage`` with ``options``.

    ``telemetry``, when set, replaces the snapshot's ``telemetry_context`` (the driver
    sends the run's snapshot as it is, plus the attempt's telemetry, instead of encoding
    the attempt's Context again).

    ``blobs`` is the run's blob store location (``BlobStore.location()``): the worker
    opens it and reads large values from it (mapped, never through the pipe) and writes
    large results to it, by ``blob_threshold``. None: the Context carries its values
    inline and the worker stores nothing (the driver's store is in its own memory).
    """

    stage: str
    label: str
    options: Any
    command: msg.RunStage
    setup: bool = False
    telemetry: dict[str, Any] | None = None
    blobs: str | None = None
    blob_threshold: int = DEFAULT_BLOB_THRESHOLD


class Shutdown(msgspec.Struct, tag="shutdown", frozen=True):
    """Tear down the stateful stages and exit."""


Request = Attempt | Shutdown

request_decoder = msgspec.msgpack.Decoder(Request)


def frame(body: bytes) -> bytes:
    """Return ``body`` with its length header."""
    return HEADER.pack(len(body)) + body
