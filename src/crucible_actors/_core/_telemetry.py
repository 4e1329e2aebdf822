"""A tiny event API in the spirit of Erlang's ``:telemetry``.

Handlers are attached under an id for a list of event names and called synchronously as
``handler(event_name, measurements, metadata)``. Event names emitted by the runtime:
``crucible.pipeline.run.start|stop|exception`` and
``crucible.pipeline.stage.start|stop|exception|restart|timeout``; measurements carry
``system_time`` (ns since the epoch) and, on stop/exception, ``duration`` (seconds);
metadata carries ``experiment_id``, ``run_id`` and, for stages, ``stage`` and ``attempt``.

A handler that raises is detached with a logged warning; it never breaks a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["EVENTS", "Handler", "attach", "detach", "emit", "handlers_for", "list_handlers"]

log = logging.getLogger("crucible_actors")

Handler = Callable[[str, Mapping[str, Any], Mapping[str, Any]], Any]

RUN_START = "crucible.pipeline.run.start"
RUN_STOP = "crucible.pipeline.run.stop"
RUN_EXCEPTION = "crucible.pipeline.run.exception"
STAGE_START = "crucible.pipeline.stage.start"
STAGE_STOP = "crucible.pipeline.stage.stop"
STAGE_EXCEPTION = "crucible.pipeline.stage.exception"
STAGE_RESTART = "crucible.pipeline.stage.restart"
STAGE_TIMEOUT = "crucible.pipeline.stage.timeout"

EVENTS = (
    RUN_START,
    RUN_STOP,
    RUN_EXCEPTION,
    STAGE_START,
    STAGE_STOP,
    STAGE_EXCEPTION,
    STAGE_RESTART,
    STAGE_TIMEOUT,
)

# event name -> list of (handler_id, handler); the runtime checks ``_by_event`` before
# building measurements, so with no handler attached emitting costs one dict lookup.
_by_event: dict[str, list[tuple[str, Handler]]] = {}
_by_id: dict[str, tuple[tuple[str, ...], Handler]] = {}


def attach(handler_id: str, event_names: Iterable[str] | str, handler: Handler) -> None:
    """Call ``handler`` for each event in ``event_names``.

    Raises:
        ValueError: ``handler_id`` is already attached (detach it first).
    """
    if handler_id in _by_id:
        raise ValueError(f"telemetry handler {handler_id!r} is already attached; detach it first")
    names = (event_names,) if isinstance(event_names, str) else tuple(event_names)
    _by_id[handler_id] = (names, handler)
    for name in names:
        _by_event.setdefault(name, []).append((handler_id, handler))


def detach(handler_id: str) -> bool:
    """Detach the handler attached as ``handler_id``; return whether one was attached."""
    entry = _by_id.pop(handler_id, None)
    if entry is None:
        return False
    for name in entry[0]:
        remaining = [(i, h) for i, h in _by_event.get(name, []) if i != handler_id]
        if remaining:
            _by_event[name] = remaining
        else:
            _by_event.pop(name, None)
    return True


def list_handlers() -> list[str]:
    """Return the ids of the attached handlers."""
    return sorted(_by_id)


def handlers_for(event_name: str) -> bool:
    """Return whether any handler listens to ``event_name`` (cheap; for hot paths)."""
    return event_name in _by_event


def emit(event_name: str, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Call every handler attached to ``event_name``; detach any handler that raises."""
    for handler_id, handler in list(_by_event.get(event_name, ())):
        try:
            handler(event_name, measurements, metadata)
        except Exception:
            log.warning(
                "telemetry handler %r raised on %s and was detached",
                handler_id,
                event_name,
                exc_info=True,
            )
            detach(handler_id)
