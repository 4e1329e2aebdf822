"""Messages between a run supervisor and its stage actor: a msgspec tagged union.

Commands take the imperative (``RunStage``, ``Cancel``), replies the past tense
(``StageDone``, ``StageFailed``). The Context always travels as msgpack bytes, so the
same messages cross into a worker process unchanged. ``generation`` numbers each
attempt (the idempotency key has it): a reply must carry the generation of the attempt
it answers, and one given after that attempt's deadline fired is dropped as late.

``StageFailed.exception`` carries the live exception object inside one process and is
never encoded; across a process boundary ``error_pickle`` carries it instead.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.structs

__all__ = ["Cancel", "Message", "RunStage", "StageDone", "StageFailed", "decode", "encode"]


class RunStage(msgspec.Struct, tag="run_stage", frozen=True, gc=False):
    """Run stage ``index`` on the Context in ``context`` as attempt ``generation``."""

    generation: int
    index: int
    context: bytes
    attempt: int = 1


class Cancel(msgspec.Struct, tag="cancel", frozen=True, gc=False):
    """Abandon the attempt numbered ``generation``."""

    generation: int


class StageDone(msgspec.Struct, tag="stage_done", frozen=True, gc=False):
    """Attempt ``generation`` succeeded; ``context`` is the resulting Context."""

    generation: int
    index: int
    context: bytes


class StageFailed(msgspec.Struct, tag="stage_failed", frozen=True):
    """Attempt ``generation`` raised ``error_type: message``."""

    generation: int
    index: int
    error_type: str
    message: str
    error_pickle: bytes | None = None
    exception: Any = None


Message = RunStage | Cancel | StageDone | StageFailed

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    """Encode ``message`` for another process (``StageFailed.exception`` is dropped)."""
    if isinstance(message, StageFailed) and message.exception is not None:
        message = msgspec.structs.replace(message, exception=None)
    return _encoder.encode(message)


def decode(data: bytes) -> Message:
    """Decode bytes produced by :func:`encode`."""
    message: Message = _decoder.decode(data)
    return message
