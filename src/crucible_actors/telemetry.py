"""Callbacks on runtime events, in the spirit of Erlang's ``:telemetry``.

The event names are in :data:`EVENTS`; :func:`attach` documents the handler's arguments.
"""

from ._core import EVENTS as EVENTS
from ._core import attach as attach
from ._core import detach as detach
from ._core import list_handlers as list_handlers

__all__ = ["EVENTS", "attach", "detach", "list_handlers"]
