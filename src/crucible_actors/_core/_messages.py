"""Messages between a run supervisor and its stage actor: a msgspec tagged union.

The command takes the imperative (``RunStage``), the replies the past tense
(``AttemptDone``, ``AttemptFailed``; named for the attempt, so the failure reply is never
confused with the exception :class:`~crucible_actors.errors.StageFailed`). Abandoning an
attempt is not a message: the run supervisor cancels the attempt's scope, and the
executor's cleanup runs there. This is the wire of the executor plug-in contract,
public as :mod:`crucible_actors.abc`. The Context always travels as msgpack bytes, so the
same messages cross into a worker process unchanged. ``generation`` numbers each
attempt (the idempotency key has it): a reply must carry the generation of the attempt
it answers, and one given after that attempt's deadline fired is dropped as late.

``AttemptFailed.exception`` carries the live exception object inside one process and is
never encoded; across a process boundary ``error_pickle`` carries it instead.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.structs

__all__ = [
    "AttemptDone",
    "AttemptFailed",
    "Message",
    "RunStage",
    "decode_message",
    "encode_message",
]


class RunStage(msgspec.Struct, tag="run_stage", frozen=True, gc=False):
    """Run stage ``index`` on the Context in ``context`` as attempt ``generation``."""

    generation: int
    index: int
    context: bytes
    attempt: int = 1


class AttemptDone(msgspec.Struct, tag="stage_done", frozen=True, gc=False):
    """Attempt ``generation`` succeeded; ``context`` is the resulting Context."""

    generation: int
    index: int
    context: bytes


class AttemptFailed(msgspec.Struct, tag="stage_failed", frozen=True):
    """Attempt ``generation`` raised ``error_type: message``."""

    generation: int
    index: int
    error_type: str
    message: str
    error_pickle: bytes | None = None
    exception: Any = None


Message = RunStage | AttemptDone | AttemptFailed

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode_message(message: Message) -> bytes:
    """Encode ``message`` for another process (``AttemptFailed.exception`` is dropped)."""
    if isinstance(message, AttemptFailed) and message.exception is not None:
        message = msgspec.structs.replace(message, exception=None)
    return _encoder.encode(message)


def decode_message(data: bytes) -> Message:
    """Decode bytes produced by :func:`encode_message`."""
    message: Message = _decoder.decode(data)
    return message
